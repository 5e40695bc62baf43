/**
 * The AWS KMS source of key synchronization (core/ports-sync.ts `SyncSource`; docs/key-sync-sources.md): one
 * account's KMS keys in the connection's regions, through `@aws-sdk/client-kms` (kms-client.ts), one client
 * per region, with the AWS provider's retries, timeouts and error mapping (errors.ts).
 *
 * Discovery, per region: `ListAliases` once (all pages; aliases mapped to their target key), then `ListKeys`
 * (paged) and `DescribeKey` of each key. Keys pending deletion are still listed by KMS and reported (not
 * enabled, their `keyState` and `deletionDate` in the attributes); a key whose deletion completed is no
 * longer listed (the synchronization marks it). Each key has one version: its key id, reached by its ARN.
 *
 * Wrap / unwrap: KMS `Encrypt` / `Decrypt` in the ARN's region through {@link AwsKmsProvider}'s
 * `encryptOpaque` / `decryptOpaque`, so the blob is KMS's own ciphertext and the AAD is bound as the
 * provider binds it: the encryption context `{"envelope-kms:aad-sha256": hex SHA-256(AAD)}`. Another AAD
 * fails `Decrypt` (InvalidCiphertextException → UNWRAP_AAD_MISMATCH).
 */
import { EngineError, invalidField } from '../../core/errors.js'
import type { CallOptions } from '../../core/ports.js'
import type {
  ConnectionCheck,
  ConnectionRecord,
  DiscoveredKey,
  SecretResolver,
  SyncSource,
} from '../../core/ports-sync.js'
import type { SecretBytes } from '../../core/secret-bytes.js'
import { toKmsEngineError, withKmsRetries, type KmsOp, type KmsRetryPolicy } from './errors.js'
import { createSdkKmsClient, type KmsCalls, type KmsClientConfig } from './kms-client.js'
import { AwsKmsProvider, type AwsKmsProviderOptions } from './provider.js'

/** Tuning of {@link createAwsSyncSource} (not part of a connection: tests and embedders). */
export type AwsSyncSourceOptions = Pick<
  AwsKmsProviderOptions,
  'connectTimeoutMs' | 'requestTimeoutMs' | 'retry' | 'clientFactory'
>

const REGION_RE = /^[a-z0-9-]{1,64}$/
const ARN_RE = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/[A-Za-z0-9-]+$/

type Described = NonNullable<Awaited<ReturnType<KmsCalls['describeKey']>>['KeyMetadata']>

/** Drops undefined values; dates as ISO strings (attributes must be JSON-serialisable). */
function jsonSafe(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue
    out[k] = v instanceof Date ? v.toISOString() : v
  }
  return out
}

/** The discovered form of a described key in `region`, its aliases (full `alias/…` names) sorted. */
function discovered(
  m: Described,
  listedArn: string,
  region: string,
  aliases: readonly string[],
): DiscoveredKey {
  const arn = m.Arn ?? listedArn
  const keyId = m.KeyId ?? arn.slice(arn.lastIndexOf('/') + 1)
  const keySpec = m.KeySpec ?? 'SYMMETRIC_DEFAULT'
  const keyUsage = m.KeyUsage ?? 'ENCRYPT_DECRYPT'
  const enabled = m.KeyState === 'Enabled'
  const first = aliases[0]
  return {
    sourceKeyId: arn,
    vault: region,
    name: first === undefined ? keyId : first.replace(/^alias\//, ''),
    keyType: keySpec,
    usable: keySpec === 'SYMMETRIC_DEFAULT' && keyUsage === 'ENCRYPT_DECRYPT',
    enabled,
    versions: [{ version: keyId, ref: arn, enabled, createdAt: m.CreationDate?.getTime() }],
    attributes: jsonSafe({
      aliases: [...aliases],
      keyState: m.KeyState,
      keyManager: m.KeyManager,
      multiRegion: m.MultiRegion === true,
      multiRegionKeyType: m.MultiRegionConfiguration?.MultiRegionKeyType,
      description: m.Description,
      keyUsage,
      origin: m.Origin,
      deletionDate: m.DeletionDate,
    }),
  }
}

/** A key KMS no longer has (its deletion completed) is KEY_VERSION_MATERIAL_MISSING for wrap and unwrap. */
async function gone<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof EngineError && err.code === 'KEY_VERSION_NOT_FOUND')
      throw new EngineError('KEY_VERSION_MATERIAL_MISSING', err.message, { cause: err })
    throw err
  }
}

interface Region {
  readonly client: KmsCalls
  /** Encrypt / Decrypt with the AWS provider's AAD binding, retries and mapping (over the same client). */
  readonly provider: AwsKmsProvider
}

class AwsSyncSource implements SyncSource {
  readonly cloud = 'aws' as const
  readonly #regions: readonly string[]
  readonly #endpoint: string | undefined
  readonly #credentials: KmsClientConfig['credentials']
  readonly #options: AwsSyncSourceOptions
  readonly #policy: KmsRetryPolicy
  readonly #open = new Map<string, Region>()
  #closed = false

  constructor(
    regions: readonly string[],
    endpoint: string | undefined,
    credentials: KmsClientConfig['credentials'],
    options: AwsSyncSourceOptions,
  ) {
    this.#regions = regions
    this.#endpoint = endpoint
    this.#credentials = credentials
    this.#options = options
    const r = options.retry
    this.#policy = {
      maxAttempts: Math.max(1, Math.floor(r?.maxAttempts ?? 4)),
      baseDelayMs: r?.baseDelayMs ?? 50,
      maxDelayMs: r?.maxDelayMs ?? 2000,
    }
  }

  /** The region's client and provider, made on first use (one client per region). */
  #region(region: string): Region {
    if (this.#closed) throw new EngineError('PROVIDER_UNAVAILABLE', 'aws-kms: closed')
    let r = this.#open.get(region)
    if (r === undefined) {
      const factory = this.#options.clientFactory ?? createSdkKmsClient
      const client = factory({
        region,
        endpoint: this.#endpoint,
        credentials: this.#credentials,
        connectTimeoutMs: this.#options.connectTimeoutMs ?? 2000,
        requestTimeoutMs: this.#options.requestTimeoutMs ?? 5000,
      })
      const provider = new AwsKmsProvider({
        regions: [{ region, endpoint: this.#endpoint }],
        credentials: this.#credentials,
        ...(this.#options.retry === undefined ? {} : { retry: this.#options.retry }),
        clientFactory: () => client,
      })
      r = { client, provider }
      this.#open.set(region, r)
    }
    return r
  }

  /** The regions asked for: the connection's by default; others are refused. */
  #regionsOf(asked: readonly string[] | undefined): readonly string[] {
    if (asked === undefined) return this.#regions
    if (asked.length === 0) throw invalidField('regions', 'must list at least one region')
    for (const r of asked)
      if (!this.#regions.includes(r))
        throw invalidField('regions', `${r.slice(0, 64)} is not a region of this connection`)
    return [...new Set(asked)]
  }

  #call<T>(
    op: KmsOp,
    ref: string | undefined,
    opts: CallOptions,
    fn: (o: { abortSignal?: AbortSignal | undefined }) => Promise<T>,
  ): Promise<T> {
    if (this.#closed) throw new EngineError('PROVIDER_UNAVAILABLE', 'aws-kms: closed')
    return withKmsRetries(op, ref, opts.signal, this.#policy, () => fn({ abortSignal: opts.signal }))
  }

  async *discover(
    options: {
      readonly regions?: readonly string[] | undefined
      readonly signal?: AbortSignal | undefined
    } = {},
  ): AsyncIterable<DiscoveredKey> {
    const opts: CallOptions = options.signal === undefined ? {} : { signal: options.signal }
    for (const region of this.#regionsOf(options.regions)) {
      const { client } = this.#region(region)
      const aliases = await this.#aliases(client, opts)
      let marker: string | undefined
      do {
        const page = await this.#call('list', undefined, opts, (o) =>
          client.listKeys({ Limit: 1000, ...(marker === undefined ? {} : { Marker: marker }) }, o),
        )
        for (const k of page.Keys ?? []) {
          const id = k.KeyArn ?? k.KeyId
          if (id === undefined) continue
          let m: Described | undefined
          try {
            m = (await this.#call('describe', id, opts, (o) => client.describeKey({ KeyId: id }, o)))
              .KeyMetadata
          } catch (err) {
            // Gone between the listing and now: not seen by this discovery.
            if (err instanceof EngineError && err.code === 'KEY_VERSION_NOT_FOUND') continue
            throw err
          }
          if (m === undefined)
            throw new EngineError('PROVIDER_ERROR', 'aws-kms describe: the response has no key')
          const keyId = m.KeyId ?? k.KeyId ?? ''
          yield discovered(m, k.KeyArn ?? id, region, aliases.get(keyId) ?? [])
        }
        marker = page.Truncated === true ? page.NextMarker : undefined
      } while (marker !== undefined)
    }
  }

  /** Every alias of the region by target key id, names sorted. */
  async #aliases(client: KmsCalls, opts: CallOptions): Promise<Map<string, string[]>> {
    const listAliases = client.listAliases?.bind(client)
    if (listAliases === undefined)
      throw new EngineError('PROVIDER_UNSUPPORTED', 'aws-kms: this KMS client has no ListAliases')
    const byKey = new Map<string, string[]>()
    let marker: string | undefined
    do {
      const page = await this.#call('list', undefined, opts, (o) =>
        listAliases({ Limit: 100, ...(marker === undefined ? {} : { Marker: marker }) }, o),
      )
      for (const a of page.Aliases ?? []) {
        if (a.TargetKeyId === undefined || a.AliasName === undefined) continue
        const names = byKey.get(a.TargetKeyId) ?? []
        names.push(a.AliasName)
        byKey.set(a.TargetKeyId, names)
      }
      marker = page.Truncated === true ? page.NextMarker : undefined
    } while (marker !== undefined)
    for (const names of byKey.values()) names.sort()
    return byKey
  }

  /** The region of a key ARN (a version's `ref`). */
  #regionOfRef(ref: string): string {
    const m = ARN_RE.exec(ref)
    if (m?.[1] === undefined)
      throw new EngineError('CIPHERTEXT_INVALID', 'aws-kms: the key reference is not a KMS key ARN')
    return m[1]
  }

  async wrap(ref: string, plaintext: SecretBytes, aad: Buffer, opts: CallOptions = {}): Promise<Buffer> {
    return gone(() => this.#region(this.#regionOfRef(ref)).provider.encryptOpaque(ref, plaintext, aad, opts))
  }

  async unwrap(ref: string, blob: Buffer, aad: Buffer, opts: CallOptions = {}): Promise<SecretBytes> {
    return gone(() => this.#region(this.#regionOfRef(ref)).provider.decryptOpaque(ref, blob, aad, opts))
  }

  /**
   * Per region: `connect` (ListKeys of one key: the endpoint answers and takes the credentials) and `list`
   * (ListAliases of one alias and DescribeKey of the key listed: the other calls discovery makes).
   */
  async test(opts: CallOptions = {}): Promise<ConnectionCheck[]> {
    const checks: ConnectionCheck[] = []
    for (const where of this.#regions) {
      const failed = (check: string, err: unknown, op: KmsOp): ConnectionCheck => {
        const e = toKmsEngineError(err, op)
        return { check, where, ok: false, error: { code: e.code, message: e.message } }
      }
      let first: string | undefined
      try {
        const { client } = this.#region(where)
        const page = await this.#call('list', undefined, opts, (o) => client.listKeys({ Limit: 1 }, o))
        first = page.Keys?.[0]?.KeyArn ?? page.Keys?.[0]?.KeyId
        checks.push({ check: 'connect', where, ok: true })
      } catch (err) {
        checks.push(failed('connect', err, 'list'))
      }
      try {
        const { client } = this.#region(where)
        if (client.listAliases === undefined)
          throw new EngineError('PROVIDER_UNSUPPORTED', 'aws-kms: this KMS client has no ListAliases')
        const listAliases = client.listAliases.bind(client)
        await this.#call('list', undefined, opts, (o) => listAliases({ Limit: 1 }, o))
        const id = first
        if (id !== undefined)
          await this.#call('describe', id, opts, (o) => client.describeKey({ KeyId: id }, o))
        checks.push({ check: 'list', where, ok: true })
      } catch (err) {
        checks.push(failed('list', err, 'list'))
      }
    }
    return checks
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const r of this.#open.values()) await r.provider.close() // destroys the region's client
    this.#open.clear()
  }
}

/**
 * Opens the AWS KMS source of a connection (`params.cloud` `aws`): resolves static credentials through
 * `secrets` (never logged), or leaves them to the SDK's default provider chain. No network call until first
 * use.
 * @throws EngineError INVALID_FIELD_ERR (not an AWS connection, regions, endpoint, an unreadable secret),
 * PROVIDER_MODULE_LOAD_FAILED (`@aws-sdk/client-kms` not installed; on first use)
 */
export async function createAwsSyncSource(
  connection: ConnectionRecord,
  secrets: SecretResolver,
  options: AwsSyncSourceOptions = {},
): Promise<SyncSource> {
  const p = connection.params
  if (p.cloud !== 'aws') throw invalidField('cloud', 'must be aws for an AWS KMS source')
  if (!Array.isArray(p.regions) || p.regions.length === 0)
    throw invalidField('regions', 'must list at least one region')
  for (const r of p.regions)
    if (typeof r !== 'string' || !REGION_RE.test(r)) throw invalidField('regions', 'must be region names')
  if (p.endpoint !== undefined) {
    let u: URL | undefined
    try {
      u = new URL(p.endpoint)
    } catch {
      u = undefined
    }
    if (u === undefined || (u.protocol !== 'https:' && u.protocol !== 'http:'))
      throw invalidField('endpoint', 'must be an http(s) URL')
  }
  const c = p.credentials
  let credentials: KmsClientConfig['credentials']
  if (c.kind === 'static') {
    const sessionToken = c.sessionToken === undefined ? undefined : await secrets(c.sessionToken)
    credentials = {
      accessKeyId: await secrets(c.accessKeyId),
      secretAccessKey: await secrets(c.secretAccessKey),
      ...(sessionToken === undefined ? {} : { sessionToken }),
    }
  } else if (c.kind !== 'default') {
    throw invalidField('credentials.kind', 'must be default or static')
  }
  return new AwsSyncSource([...new Set(p.regions)], p.endpoint, credentials, options)
}
