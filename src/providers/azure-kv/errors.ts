/**
 * Translates Azure Key Vault failures into engine error codes. Decides on the SDK error's HTTP status, Key
 * Vault's error code (`{"error":{"code","innererror":{"code"}}}`), the credential error names of
 * `@azure/identity` and Node's network error codes, never on message text. Retries happen inside the SDK
 * (its retry policy: 408, 429 with Retry-After, 5xx, network errors); what still fails arrives here.
 */
import { EngineError, type ErrorCode } from '../../core/errors.js'

/** Network failures (and the pipeline's own send error): the vault was not reached. */
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
  'REQUEST_SEND_ERROR',
])

/** `@azure/identity` errors: no token could be had. */
const CREDENTIAL_ERRORS = new Set([
  'CredentialUnavailableError',
  'AuthenticationError',
  'AggregateAuthenticationError',
])

/** Inner error codes with which Key Vault says "your principal may not" (rather than "this key may not"). */
const ACCESS_INNER = new Set([
  'ForbiddenByPolicy',
  'ForbiddenByRbac',
  'ForbiddenByConnection',
  'AccessDenied',
])

interface RestLike {
  name?: unknown
  code?: unknown
  statusCode?: unknown
  details?: { error?: { code?: unknown; innerError?: { code?: unknown } } }
  cause?: unknown
}

function fields(err: unknown): { name: string; status: number; code: string; inner: string } {
  const e = (typeof err === 'object' && err !== null ? err : {}) as RestLike
  const cause = (typeof e.cause === 'object' && e.cause !== null ? e.cause : {}) as RestLike
  const inner = e.details?.error?.innerError?.code
  return {
    name: typeof e.name === 'string' ? e.name : '',
    status: typeof e.statusCode === 'number' ? e.statusCode : 0,
    code: typeof e.code === 'string' ? e.code : typeof cause.code === 'string' ? cause.code : '',
    inner: typeof inner === 'string' ? inner : '',
  }
}

/** What a failed call was doing: data-plane operations read authentication failures as AAD mismatches. */
export type AzureOp = 'encrypt' | 'decrypt' | 'create' | 'destroy' | 'list' | 'random' | 'health'

const CRYPTO: ReadonlySet<AzureOp> = new Set(['encrypt', 'decrypt'])

/**
 * The engine error for a Key Vault failure (the original kept as `cause`; messages carry no key material, no
 * token and no response body). `aborted`: the caller's signal fired (a timeout of the SDK is not an abort).
 */
export function toAzureEngineError(err: unknown, op: AzureOp, ref?: string, aborted = false): EngineError {
  if (err instanceof EngineError) return err
  const f = fields(err)
  const at = ref === undefined ? `azure-kv ${op}` : `azure-kv ${op} (${ref})`
  const make = (code: ErrorCode, what: string): EngineError =>
    new EngineError(code, `${at}: ${what}`, { cause: err })
  if (aborted) return make('ABORTED', 'aborted by the caller')
  if (CREDENTIAL_ERRORS.has(f.name)) return make('PROVIDER_LOGIN_FAILED', `no access token (${f.name})`)
  if (f.status === 401) return make('PROVIDER_LOGIN_FAILED', 'the vault refused the access token (401)')
  if (f.status === 403) {
    if (CRYPTO.has(op) && !ACCESS_INNER.has(f.inner)) {
      // A disabled, expired or not-yet-valid key version, or one whose key_ops exclude the operation.
      return make('KEY_ACTION_INVALID_STATE_ERR', "the key version's state does not allow this (403)")
    }
    return make('PROVIDER_ACCESS_DENIED', `access denied by the vault's policy (${f.inner || f.code || 403})`)
  }
  if (f.status === 404) {
    return CRYPTO.has(op)
      ? make('KEY_VERSION_MATERIAL_MISSING', 'the vault has no such key version (deleted or purged)')
      : make('KEY_VERSION_NOT_FOUND', 'the vault has no such key')
  }
  if (f.status === 400) {
    // Key Vault, like AES-GCM, cannot tell another AAD from an altered ciphertext or another key.
    if (op === 'decrypt')
      return make('UNWRAP_AAD_MISMATCH', 'the ciphertext does not authenticate under this key and AAD')
    return make(
      'PROVIDER_UNSUPPORTED',
      `the vault refused the request's algorithm or parameters (${f.code || 400})`,
    )
  }
  if (f.status === 409)
    return make('KEY_ACTION_INVALID_STATE_ERR', `conflict in the vault (${f.code || 409})`)
  if (f.status === 429) return make('PROVIDER_THROTTLED', 'throttled; the retries did not get through')
  if (f.status >= 500 || NETWORK_CODES.has(f.code) || f.name === 'AbortError') {
    return make('PROVIDER_UNAVAILABLE', `unreachable or failing (${f.status || f.code || f.name})`)
  }
  return make(
    'PROVIDER_ERROR',
    `unexpected failure (${f.name || 'unknown'}${f.status ? ` ${f.status}` : ''})`,
  )
}
