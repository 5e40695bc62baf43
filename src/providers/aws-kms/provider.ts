/**
 * Root keys in AWS KMS. Each engine key version is its own symmetric KMS key (created with `CreateKey`,
 * destroyed with `ScheduleKeyDeletion`); its ARN is the version's opaque `ref`. Wrapping is KMS `Encrypt`
 * with the engine's AAD bound as the encryption context, unwrapping `Decrypt`, rewrapping `ReEncrypt` (the
 * DEK never enters this process), DEK generation `GenerateRandom`. KMS returns its own ciphertext blob, so
 * this provider declares `ciphertext: 'opaque'` and the engine stores the blob as mechanism 0x10.
 *
 * Multi-region: `regions` lists the primary first and then replicas. For a multi-region key the same key
 * id lives in every region; the provider rewrites the region of the ARN and fails over to the next region
 * when a region is unavailable or throttling after its retries, and prefers healthy regions for a while.
 */
import { createHash } from 'node:crypto'
import { EngineError } from '../../core/errors.js'
import type {
  CallOptions,
  CreateVersionRequest,
  GcmSealed,
  ProviderCapabilities,
  ProviderHealth,
  ProviderObject,
  RootKeyProvider,
} from '../../core/ports.js'
import { SecretBytes } from '../../core/secret-bytes.js'
import { toKmsEngineError, withKmsRetries, type KmsOp } from './errors.js'
import { createSdkKmsClient, type KmsCalls, type KmsClientConfig } from './kms-client.js'

/** One region the provider can reach. */
export interface AwsKmsRegion {
  readonly region: string
  /** Endpoint override (VPC endpoint, FIPS endpoint, a KMS-compatible server). */
  readonly endpoint?: string | undefined
}

/** Options of {@link createAwsKmsProvider}. */
export interface AwsKmsProviderOptions {
  /** The primary region first (new versions are created there), then replica regions for failover. */
  readonly regions: readonly AwsKmsRegion[]
  /** Static credentials; absent: the AWS SDK's default credential provider chain. */
  readonly credentials?:
    | { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string }
    | undefined
  /** Milliseconds to connect (default 2000). */
  readonly connectTimeoutMs?: number
  /** Milliseconds to wait for a response (default 5000); a timeout is retried, then PROVIDER_UNAVAILABLE. */
  readonly requestTimeoutMs?: number
  /**
   * Retries per region on throttling, 5xx, timeouts and network errors: `maxAttempts` in all (default 4),
   * exponential backoff from `baseDelayMs` (default 50) capped at `maxDelayMs` (default 2000), full jitter.
   */
  readonly retry?: {
    readonly maxAttempts?: number
    readonly baseDelayMs?: number
    readonly maxDelayMs?: number
  }
  /** A region that failed is tried after the healthy ones for this long (default 30 s). */
  readonly regionCooldownMs?: number
  /** Waiting period of `ScheduleKeyDeletion` when a version is destroyed (7-30 days, default 7). */
  readonly pendingWindowInDays?: number
  /** Builds the client of a region (default: `@aws-sdk/client-kms`). */
  readonly clientFactory?: (config: KmsClientConfig) => KmsCalls
}

const DESCRIPTION_RE =
  /^envelope-kms root-key version; catalog=([0-9a-f-]{36}); key=([0-9a-f-]{36}); version=(\d{1,10})$/
const CONTEXT_KEY = 'envelope-kms:aad-sha256'
const PENDING = new Set(['PendingDeletion', 'PendingReplicaDeletion'])

/** The encryption context binding the engine's AAD: its SHA-256, so that any AAD fits KMS's limits. */
function contextOf(aad: Buffer): Record<string, string> {
  return { [CONTEXT_KEY]: createHash('sha256').update(aad).digest('hex') }
}

/** The same key's ARN in another region (multi-region keys share their id); non-ARN refs are unchanged. */
export function arnInRegion(ref: string, region: string): string {
  if (!ref.startsWith('arn:')) return ref
  const parts = ref.split(':')
  if (parts.length < 6) return ref
  parts[3] = region
  return parts.join(':')
}

function positive(v: number | undefined, dflt: number, name: string): number {
  const n = v ?? dflt
  if (!Number.isFinite(n) || n < 0) throw new EngineError('CONFIG_INVALID', `aws-kms: ${name} must be >= 0`)
  return n
}

/** Takes the bytes out of an SDK buffer into SecretBytes and zeroes the SDK's copy. */
function secretFrom(u: Uint8Array | undefined, expected: number | undefined, what: string): SecretBytes {
  if (u === undefined || (expected !== undefined && u.length !== expected)) {
    u?.fill(0)
    throw new EngineError('PROVIDER_ERROR', `aws-kms ${what}: unexpected response`)
  }
  const s = SecretBytes.copyOf(u)
  u.fill(0)
  return s
}

export class AwsKmsProvider implements RootKeyProvider {
  readonly name = 'aws-kms'
  readonly capabilities: ProviderCapabilities = {
    importMaterial: false,
    importLengths: [],
    ciphertext: 'opaque',
  }
  readonly #regions: readonly { readonly region: string; readonly client: KmsCalls }[]
  readonly #downUntil: number[]
  readonly #maxAttempts: number
  readonly #baseDelay: number
  readonly #maxDelay: number
  readonly #cooldown: number
  readonly #pendingDays: number
  #closed = false
  /** The last health probe, reused for a second (`/ready` calls health on every request). */
  #health: { readonly at: number; readonly result: Promise<ProviderHealth> } | undefined

  constructor(options: AwsKmsProviderOptions) {
    if (options.regions.length === 0) {
      throw new EngineError('CONFIG_INVALID', 'aws-kms: regions must list at least the primary region')
    }
    const factory = options.clientFactory ?? createSdkKmsClient
    const connectTimeoutMs = positive(options.connectTimeoutMs, 2000, 'connectTimeoutMs')
    const requestTimeoutMs = positive(options.requestTimeoutMs, 5000, 'requestTimeoutMs')
    this.#regions = options.regions.map((r) => {
      if (typeof r.region !== 'string' || !/^[a-z0-9-]{1,64}$/.test(r.region)) {
        throw new EngineError('CONFIG_INVALID', 'aws-kms: regions[].region must be a region name')
      }
      return {
        region: r.region,
        client: factory({
          region: r.region,
          endpoint: r.endpoint,
          credentials: options.credentials,
          connectTimeoutMs,
          requestTimeoutMs,
        }),
      }
    })
    this.#downUntil = this.#regions.map(() => 0)
    this.#maxAttempts = Math.max(1, Math.floor(positive(options.retry?.maxAttempts, 4, 'retry.maxAttempts')))
    this.#baseDelay = positive(options.retry?.baseDelayMs, 50, 'retry.baseDelayMs')
    this.#maxDelay = positive(options.retry?.maxDelayMs, 2000, 'retry.maxDelayMs')
    this.#cooldown = positive(options.regionCooldownMs, 30_000, 'regionCooldownMs')
    const days = options.pendingWindowInDays ?? 7
    if (!Number.isInteger(days) || days < 7 || days > 30) {
      throw new EngineError('CONFIG_INVALID', 'aws-kms: pendingWindowInDays must be an integer 7-30')
    }
    this.#pendingDays = days
  }

  /** The primary region's name. */
  get primaryRegion(): string {
    return this.#regions[0]?.region ?? ''
  }

  async createVersion(req: CreateVersionRequest, opts: CallOptions = {}): Promise<string> {
    if (req.material !== undefined) {
      throw new EngineError('PROVIDER_UNSUPPORTED', 'aws-kms: importing key material is not supported')
    }
    const out = await this.#primary('create', undefined, opts, (c, _ref, o) =>
      c.createKey(
        {
          Description: `envelope-kms root-key version; catalog=${req.catalogId}; key=${req.keyId}; version=${req.version}`,
          Tags: [
            { TagKey: 'envelope-kms:catalog', TagValue: req.catalogId },
            { TagKey: 'envelope-kms:key', TagValue: req.keyId },
            { TagKey: 'envelope-kms:version', TagValue: String(req.version) },
          ],
        },
        o,
      ),
    )
    const arn = out.KeyMetadata?.Arn
    if (typeof arn !== 'string' || arn.length === 0) {
      throw new EngineError('PROVIDER_ERROR', 'aws-kms create: the response has no key ARN')
    }
    return arn
  }

  async destroyVersion(ref: string, opts: CallOptions = {}): Promise<void> {
    try {
      await this.#primary('destroy', ref, opts, (c, r, o) =>
        c.scheduleKeyDeletion({ KeyId: r, PendingWindowInDays: this.#pendingDays }, o),
      )
    } catch (err) {
      if (err instanceof EngineError && err.code === 'KEY_VERSION_NOT_FOUND') return // already gone
      if (err instanceof EngineError && err.code === 'KEY_ACTION_INVALID_STATE_ERR') {
        const d = await this.#primary('describe', ref, opts, (c, r, o) => c.describeKey({ KeyId: r }, o))
        if (PENDING.has(d.KeyMetadata?.KeyState ?? '')) return // already scheduled
      }
      throw err
    }
  }

  encrypt(): Promise<GcmSealed> {
    return Promise.reject(
      new EngineError('PROVIDER_UNSUPPORTED', 'aws-kms: ciphertexts are KMS blobs; use encryptOpaque'),
    )
  }

  decrypt(): Promise<SecretBytes> {
    return Promise.reject(
      new EngineError('PROVIDER_UNSUPPORTED', 'aws-kms: ciphertexts are KMS blobs; use decryptOpaque'),
    )
  }

  async encryptOpaque(
    ref: string,
    plaintext: SecretBytes,
    aad: Buffer,
    opts: CallOptions = {},
  ): Promise<Buffer> {
    const ctx = contextOf(aad)
    const out = await this.#failover('encrypt', ref, opts, (c, r, o) =>
      c.encrypt({ KeyId: r, Plaintext: plaintext.bytes, EncryptionContext: ctx }, o),
    )
    if (out.CiphertextBlob === undefined || out.CiphertextBlob.length === 0) {
      throw new EngineError('PROVIDER_ERROR', 'aws-kms encrypt: the response has no ciphertext')
    }
    return Buffer.from(out.CiphertextBlob)
  }

  async decryptOpaque(ref: string, blob: Buffer, aad: Buffer, opts: CallOptions = {}): Promise<SecretBytes> {
    const ctx = contextOf(aad)
    const out = await this.#failover('decrypt', ref, opts, (c, r, o) =>
      c.decrypt({ KeyId: r, CiphertextBlob: blob, EncryptionContext: ctx }, o),
    )
    return secretFrom(out.Plaintext, undefined, 'decrypt')
  }

  async reencryptOpaque(
    from: { readonly ref: string; readonly blob: Buffer; readonly aad: Buffer },
    to: { readonly ref: string; readonly aad: Buffer },
    opts: CallOptions = {},
  ): Promise<Buffer> {
    const out = await this.#failover('reencrypt', from.ref, opts, (c, r, o, region) =>
      c.reEncrypt(
        {
          CiphertextBlob: from.blob,
          SourceKeyId: r,
          SourceEncryptionContext: contextOf(from.aad),
          DestinationKeyId: arnInRegion(to.ref, region),
          DestinationEncryptionContext: contextOf(to.aad),
        },
        o,
      ),
    )
    if (out.CiphertextBlob === undefined || out.CiphertextBlob.length === 0) {
      throw new EngineError('PROVIDER_ERROR', 'aws-kms reencrypt: the response has no ciphertext')
    }
    return Buffer.from(out.CiphertextBlob)
  }

  async generateRandom(length: number, opts: CallOptions = {}): Promise<SecretBytes> {
    const out = await this.#failover('random', undefined, opts, (c, _r, o) =>
      c.generateRandom({ NumberOfBytes: length }, o),
    )
    return secretFrom(out.Plaintext, length, 'random')
  }

  async listObjects(opts: CallOptions = {}): Promise<ProviderObject[]> {
    const found: ProviderObject[] = []
    let marker: string | undefined
    do {
      const page = await this.#primary('list', undefined, opts, (c, _r, o) =>
        c.listKeys({ Limit: 1000, ...(marker === undefined ? {} : { Marker: marker }) }, o),
      )
      for (const k of page.Keys ?? []) {
        const id = k.KeyArn ?? k.KeyId
        if (id === undefined) continue
        const d = await this.#primary('describe', id, opts, (c, r, o) => c.describeKey({ KeyId: r }, o))
        const m = DESCRIPTION_RE.exec(d.KeyMetadata?.Description ?? '')
        if (m === null || PENDING.has(d.KeyMetadata?.KeyState ?? '')) continue
        found.push({
          ref: d.KeyMetadata?.Arn ?? id,
          catalogId: m[1] ?? '',
          keyId: m[2] ?? '',
          version: Number(m[3]),
        })
      }
      marker = page.Truncated === true ? page.NextMarker : undefined
    } while (marker !== undefined)
    return found
  }

  /**
   * `GenerateRandom` of one byte, with the region failover of every call. Callers within a second of the
   * last probe share its answer (single-flight and cached), so polling `/ready` costs at most one KMS call
   * per second.
   */
  health(): Promise<ProviderHealth> {
    const now = Date.now()
    const cached = this.#health
    if (cached !== undefined && now - cached.at < 1000 && now >= cached.at) return cached.result
    const result = this.#probe()
    this.#health = { at: now, result }
    return result
  }

  async #probe(): Promise<ProviderHealth> {
    if (this.#closed) return { ok: false, detail: 'aws-kms: closed' }
    try {
      let served = ''
      await this.#failover('random', undefined, {}, (c, _r, o, region) => {
        served = region
        return c.generateRandom({ NumberOfBytes: 1 }, o)
      })
      return { ok: true, detail: `aws-kms: ${served} answered` }
    } catch (err) {
      return { ok: false, detail: err instanceof EngineError ? err.message : 'aws-kms: unreachable' }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const r of this.#regions) r.client.destroy()
  }

  // ------------------------------------------------------------------ calls, retries, failover

  /** Control-plane calls (create, destroy, list) go to the primary region only. */
  #primary<T>(op: KmsOp, ref: string | undefined, opts: CallOptions, fn: RegionCall<T>): Promise<T> {
    const r = this.#regions[0]
    if (r === undefined) throw new EngineError('INTERNAL_ERROR', 'aws-kms: no region')
    return this.#withRetries(op, ref, opts, () =>
      fn(r.client, ref ?? '', { abortSignal: opts.signal }, r.region),
    )
  }

  /**
   * Data-plane calls: the regions in order, healthy ones first; a region that stays unavailable or
   * throttled through its retries is skipped for `regionCooldownMs`, and the next one is tried.
   */
  async #failover<T>(op: KmsOp, ref: string | undefined, opts: CallOptions, fn: RegionCall<T>): Promise<T> {
    const now = Date.now()
    const order = this.#regions
      .map((r, i) => ({ ...r, i }))
      .sort(
        (a, b) =>
          Number((this.#downUntil[a.i] ?? 0) > now) - Number((this.#downUntil[b.i] ?? 0) > now) || a.i - b.i,
      )
    let last: EngineError | undefined
    for (const r of order) {
      const regional = ref === undefined ? '' : arnInRegion(ref, r.region)
      try {
        const out = await this.#withRetries(op, regional, opts, () =>
          fn(r.client, regional, { abortSignal: opts.signal }, r.region),
        )
        this.#downUntil[r.i] = 0
        return out
      } catch (err) {
        const e = toKmsEngineError(err, op, ref === undefined ? undefined : regional)
        if (e.code !== 'PROVIDER_UNAVAILABLE' && e.code !== 'PROVIDER_THROTTLED') throw e
        this.#downUntil[r.i] = Date.now() + this.#cooldown
        last = e
      }
    }
    throw last ?? new EngineError('PROVIDER_UNAVAILABLE', `aws-kms ${op}: no region answered`)
  }

  #withRetries<T>(op: KmsOp, ref: string | undefined, opts: CallOptions, call: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new EngineError('PROVIDER_UNAVAILABLE', 'aws-kms: closed')
    return withKmsRetries(
      op,
      ref,
      opts.signal,
      { maxAttempts: this.#maxAttempts, baseDelayMs: this.#baseDelay, maxDelayMs: this.#maxDelay },
      call,
    )
  }
}

/** One KMS call made against one region's client. */
type RegionCall<T> = (
  c: KmsCalls,
  ref: string,
  o: { abortSignal?: AbortSignal | undefined },
  region: string,
) => Promise<T>

/** Builds an AWS KMS provider (no network call until first use). */
export async function createAwsKmsProvider(options: AwsKmsProviderOptions): Promise<AwsKmsProvider> {
  return new AwsKmsProvider(options)
}
