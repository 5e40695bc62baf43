/**
 * Translates AWS KMS failures into engine error codes. Decides on the SDK error's `name` (the AWS error
 * type), its HTTP status and Node's network error codes, never on message text.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { EngineError, type ErrorCode } from '../../core/errors.js'

/** AWS error types that mean "too many requests": retried with backoff, then PROVIDER_THROTTLED. */
const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'LimitExceededException',
  'SlowDown',
])

/** Transient failures: retried with backoff, then PROVIDER_UNAVAILABLE (and another region is tried). */
const TRANSIENT_NAMES = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'KMSInternalException',
  'DependencyTimeoutException',
  'InternalFailure',
  'ServiceUnavailable',
])
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ECONNABORTED',
])

interface AwsLike {
  name?: unknown
  code?: unknown
  $metadata?: { httpStatusCode?: unknown }
  cause?: unknown
}

function fields(err: unknown): { name: string; status: number; code: string } {
  const e = (typeof err === 'object' && err !== null ? err : {}) as AwsLike
  const cause = (typeof e.cause === 'object' && e.cause !== null ? e.cause : {}) as AwsLike
  const status = e.$metadata?.httpStatusCode
  return {
    name: typeof e.name === 'string' ? e.name : '',
    status: typeof status === 'number' ? status : 0,
    code: typeof e.code === 'string' ? e.code : typeof cause.code === 'string' ? cause.code : '',
  }
}

export type Retry = 'throttled' | 'transient' | 'no'

/** Whether a failure is worth another attempt, and why. */
export function retryClass(err: unknown): Retry {
  const f = fields(err)
  if (f.name === 'AbortError') return 'no'
  if (THROTTLING.has(f.name) || f.status === 429) return 'throttled'
  if (TRANSIENT_NAMES.has(f.name) || NETWORK_CODES.has(f.code) || f.status >= 500) return 'transient'
  return 'no'
}

/** What a failed call was doing; authentication failures of decryption read as AAD mismatches. */
export type KmsOp =
  'encrypt' | 'decrypt' | 'reencrypt' | 'random' | 'create' | 'destroy' | 'describe' | 'list'

/** The engine error for a KMS failure (the original is kept as `cause`; messages carry no key material). */
export function toKmsEngineError(err: unknown, op: KmsOp, ref?: string): EngineError {
  if (err instanceof EngineError) return err
  const f = fields(err)
  const at = ref === undefined ? `aws-kms ${op}` : `aws-kms ${op} (${ref})`
  const make = (code: ErrorCode, what: string, retryable?: boolean): EngineError =>
    new EngineError(code, `${at}: ${what}`, {
      cause: err,
      ...(retryable === undefined ? {} : { retryable }),
    })
  if (f.name === 'AbortError') return make('ABORTED', 'aborted by the caller')
  switch (f.name) {
    case 'AccessDeniedException':
      return make('PROVIDER_ACCESS_DENIED', 'access denied by the key policy or IAM')
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
    case 'IncompleteSignature':
    case 'MissingAuthenticationTokenException':
    case 'ExpiredTokenException':
    case 'InvalidClientTokenId':
      return make('PROVIDER_LOGIN_FAILED', `credentials refused (${f.name})`)
    case 'KMSInvalidStateException':
    case 'DisabledException':
    case 'KeyUnavailableException':
      return make('KEY_ACTION_INVALID_STATE_ERR', `the KMS key's state does not allow this (${f.name})`)
    case 'NotFoundException':
      return make('KEY_VERSION_NOT_FOUND', 'the KMS key does not exist')
    case 'InvalidCiphertextException':
    case 'IncorrectKeyException':
      // KMS, like AES-GCM, cannot tell another encryption context from an altered blob or another key.
      return op === 'decrypt' || op === 'reencrypt'
        ? make('UNWRAP_AAD_MISMATCH', 'the ciphertext does not authenticate under this key and AAD')
        : make('CIPHERTEXT_INVALID', 'the ciphertext is not valid')
    case 'UnsupportedOperationException':
      return make('PROVIDER_UNSUPPORTED', 'operation not supported by this KMS')
  }
  const r = retryClass(err)
  if (r === 'throttled') return make('PROVIDER_THROTTLED', 'throttled; retries did not get through')
  if (r === 'transient') {
    return make('PROVIDER_UNAVAILABLE', `unreachable or failing (${f.name || f.code || f.status})`)
  }
  return make('PROVIDER_ERROR', `unexpected failure (${f.name || 'unknown'})`)
}

/** Retries of one region's calls: `maxAttempts` in all, exponential backoff from `baseDelayMs` capped at `maxDelayMs`, full jitter. */
export interface KmsRetryPolicy {
  readonly maxAttempts: number
  readonly baseDelayMs: number
  readonly maxDelayMs: number
}

/**
 * Runs `call`, again after a throttling or transient failure ({@link retryClass}) while attempts remain;
 * what still fails is mapped by {@link toKmsEngineError}.
 * @throws EngineError ABORTED (the caller's signal), the mapping of the last failure
 */
export async function withKmsRetries<T>(
  op: KmsOp,
  ref: string | undefined,
  signal: AbortSignal | undefined,
  policy: KmsRetryPolicy,
  call: () => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted === true) throw new EngineError('ABORTED', `aws-kms ${op}: aborted by the caller`)
    try {
      return await call()
    } catch (err) {
      if (aborted(signal)) {
        throw new EngineError('ABORTED', `aws-kms ${op}: aborted by the caller`, { cause: err })
      }
      if (attempt >= policy.maxAttempts || retryClass(err) === 'no') throw toKmsEngineError(err, op, ref)
      const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1))
      try {
        await sleep(Math.random() * cap, undefined, { signal })
      } catch (abort) {
        throw new EngineError('ABORTED', `aws-kms ${op}: aborted by the caller`, { cause: abort })
      }
    }
  }
}

function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}
