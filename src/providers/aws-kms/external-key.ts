/**
 * AWS KMS keys as tenant key providers ({@link ExternalKeyBackend} of core/ports-tenant-keys.ts): a
 * customer's symmetric KMS key by ARN, optionally multi-region with replicas. `describe` reads the key in
 * its ARN's region; `open` wraps with `Encrypt` and unwraps with `Decrypt` in the primary region first and
 * in the replica regions when the primary is unavailable (through {@link AwsKmsProvider}'s failover);
 * `probe` runs GenerateDataKey, Encrypt and Decrypt in every region once, without failover, and reports
 * each outcome (the Qlik test action).
 */
import { createHash } from 'node:crypto'
import { EngineError } from '../../core/errors.js'
import type {
  ExternalKey,
  ExternalKeyBackend,
  ExternalKeyDescription,
  ProbeResult,
  ReplicaKey,
} from '../../core/ports-tenant-keys.js'
import type { CallOptions } from '../../core/ports.js'
import { SecretBytes } from '../../core/secret-bytes.js'
import { toKmsEngineError } from './errors.js'
import { createSdkKmsClient, type KmsCalls } from './kms-client.js'
import { AwsKmsProvider, arnInRegion, type AwsKmsProviderOptions } from './provider.js'

/**
 * Options of {@link createAwsKmsKeyBackend}: the AWS KMS provider's client settings (credentials — never
 * logged —, timeouts, retries, region cooldown, client factory; a request timeout ends as
 * PROVIDER_UNAVAILABLE, Qlik's 408), with the endpoint per region instead of a region list: the regions
 * come from each key's ARN and its replicas.
 */
export type AwsKmsKeyBackendOptions = Pick<
  AwsKmsProviderOptions,
  'credentials' | 'connectTimeoutMs' | 'requestTimeoutMs' | 'retry' | 'regionCooldownMs' | 'clientFactory'
> & {
  /** Endpoint override: one URL for every region (a KMS-compatible server), or one per region. */
  readonly endpoint?: string | ((region: string) => string | undefined) | undefined
}

const ARN_REGION_RE = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/[A-Za-z0-9-]+$/

function regionOf(arn: string): string {
  const m = ARN_REGION_RE.exec(arn)
  if (m?.[1] === undefined) {
    throw new EngineError('KEY_PROVIDER_ARN_INVALID', 'arn: not an AWS KMS key ARN', {
      target: { type: 'field', name: 'arn' },
    })
  }
  return m[1]
}

/** The probe's encryption context (nothing secret: a random DEK that is thrown away). */
const PROBE_CONTEXT = { 'envelope-kms:probe': 'key-provider-test' }

/** The failure kind of a probe error. */
function kindOf(e: EngineError): NonNullable<ProbeResult['failure']>['kind'] {
  const c = e.code
  if (c === 'PROVIDER_ACCESS_DENIED' || c === 'PROVIDER_LOGIN_FAILED') return 'access-denied'
  if (c === 'PROVIDER_UNAVAILABLE' || c === 'PROVIDER_THROTTLED') return 'timeout'
  if (c === 'KEY_VERSION_NOT_FOUND') return 'not-found'
  if (c === 'KEY_ACTION_INVALID_STATE_ERR') return 'disabled'
  return 'other'
}

/**
 * Creates the AWS KMS key backend of tenant key providers.
 * @example
 * const awsKms = createAwsKmsKeyBackend({ endpoint: 'http://127.0.0.1:4599', credentials })
 * const tenantKeys = createTenantKeyProviders({ engine, store, jobs, backends: { awsKms } })
 */
export function createAwsKmsKeyBackend(options: AwsKmsKeyBackendOptions = {}): ExternalKeyBackend {
  const factory = options.clientFactory ?? createSdkKmsClient
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000
  const requestTimeoutMs = options.requestTimeoutMs ?? 5000
  const endpointOf = (region: string): string | undefined =>
    typeof options.endpoint === 'function' ? options.endpoint(region) : options.endpoint
  const clients = new Map<string, KmsCalls>()
  const opened = new Set<AwsKmsProvider>()
  let closed = false

  const client = (region: string): KmsCalls => {
    if (closed) throw new EngineError('PROVIDER_UNAVAILABLE', 'aws-kms: closed')
    let c = clients.get(region)
    if (c === undefined) {
      c = factory({
        region,
        endpoint: endpointOf(region),
        credentials: options.credentials,
        connectTimeoutMs,
        requestTimeoutMs,
      })
      clients.set(region, c)
    }
    return c
  }

  async function describe(arn: string, opts: CallOptions = {}): Promise<ExternalKeyDescription> {
    const region = regionOf(arn)
    let out: Awaited<ReturnType<KmsCalls['describeKey']>>
    try {
      out = await client(region).describeKey({ KeyId: arn }, { abortSignal: opts.signal })
    } catch (err) {
      const e = toKmsEngineError(err, 'describe', arn)
      if (e.code === 'KEY_VERSION_NOT_FOUND') {
        throw new EngineError('KEY_PROVIDER_NOT_FOUND', `aws-kms describe (${arn}): the key does not exist`, {
          cause: err,
        })
      }
      throw e
    }
    const m = out.KeyMetadata
    if (m === undefined) throw new EngineError('PROVIDER_ERROR', 'aws-kms describe: the response has no key')
    const mr = m.MultiRegionConfiguration
    const all: ReplicaKey[] = []
    if (mr?.PrimaryKey?.Arn !== undefined && mr.PrimaryKey.Region !== undefined) {
      all.push({ arn: mr.PrimaryKey.Arn, region: mr.PrimaryKey.Region })
    }
    for (const r of mr?.ReplicaKeys ?? []) {
      if (r.Arn !== undefined && r.Region !== undefined) all.push({ arn: r.Arn, region: r.Region })
    }
    return {
      arn,
      enabled: (m.Enabled ?? m.KeyState === 'Enabled') && m.KeyState === 'Enabled',
      symmetric:
        (m.KeySpec ?? 'SYMMETRIC_DEFAULT') === 'SYMMETRIC_DEFAULT' &&
        (m.KeyUsage ?? 'ENCRYPT_DECRYPT') === 'ENCRYPT_DECRYPT',
      multiRegion: m.MultiRegion === true,
      replicaKeys: all.filter((r) => r.region !== region),
    }
  }

  function open(arn: string, replicaKeys: readonly ReplicaKey[]): ExternalKey {
    const primary = regionOf(arn)
    const regions = [primary, ...replicaKeys.map((r) => r.region).filter((r) => r !== primary)]
    const provider = new AwsKmsProvider({
      regions: regions.map((region) => ({ region, endpoint: endpointOf(region) })),
      credentials: options.credentials,
      connectTimeoutMs,
      requestTimeoutMs,
      retry: { maxAttempts: options.retry?.maxAttempts ?? 3, ...options.retry },
      ...(options.regionCooldownMs === undefined ? {} : { regionCooldownMs: options.regionCooldownMs }),
      clientFactory: factory,
    })
    opened.add(provider)
    const arnIn = (region: string): string =>
      replicaKeys.find((r) => r.region === region)?.arn ?? arnInRegion(arn, region)

    async function probeRegion(region: string, opts: CallOptions): Promise<ProbeResult[]> {
      const c = client(region)
      const keyId = arnIn(region)
      const o = { abortSignal: opts.signal }
      const fail = (
        operation: ProbeResult['operation'],
        err: unknown,
        op: 'encrypt' | 'decrypt',
      ): ProbeResult => {
        const e = toKmsEngineError(err, op, keyId)
        return { region, operation, failure: { kind: kindOf(e), message: e.message } }
      }
      const out: ProbeResult[] = []
      let blob: Uint8Array | undefined
      try {
        if (c.generateDataKey === undefined)
          throw new EngineError('PROVIDER_UNSUPPORTED', 'no GenerateDataKey')
        const g = await c.generateDataKey(
          { KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: PROBE_CONTEXT },
          o,
        )
        g.Plaintext?.fill(0)
        blob = g.CiphertextBlob
        out.push({ region, operation: 'GenerateDataKey', failure: undefined })
      } catch (err) {
        out.push(fail('GenerateDataKey', err, 'encrypt'))
      }
      const probe = SecretBytes.copyOf(createHash('sha256').update(`probe ${region} ${Date.now()}`).digest())
      try {
        const e = await c.encrypt(
          { KeyId: keyId, Plaintext: probe.bytes, EncryptionContext: PROBE_CONTEXT },
          o,
        )
        blob = e.CiphertextBlob ?? blob
        out.push({ region, operation: 'Encrypt', failure: undefined })
      } catch (err) {
        out.push(fail('Encrypt', err, 'encrypt'))
      } finally {
        probe.zeroize()
      }
      if (blob === undefined) {
        out.push({
          region,
          operation: 'Decrypt',
          failure: { kind: 'other', message: 'nothing to decrypt: GenerateDataKey and Encrypt failed' },
        })
        return out
      }
      try {
        const d = await c.decrypt({ KeyId: keyId, CiphertextBlob: blob, EncryptionContext: PROBE_CONTEXT }, o)
        d.Plaintext?.fill(0)
        out.push({ region, operation: 'Decrypt', failure: undefined })
      } catch (err) {
        out.push(fail('Decrypt', err, 'decrypt'))
      }
      return out
    }

    return {
      encrypt: (plaintext, aad, opts) => provider.encryptOpaque(arn, plaintext, aad, opts),
      decrypt: (blob, aad, opts) => provider.decryptOpaque(arn, blob, aad, opts),
      probe: async (opts = {}) => (await Promise.all(regions.map((r) => probeRegion(r, opts)))).flat(),
      close: async () => {
        opened.delete(provider)
        await provider.close()
      },
    }
  }

  return {
    kind: 'aws-kms',
    describe,
    open,
    close: async () => {
      closed = true
      for (const p of opened) await p.close()
      opened.clear()
      for (const c of clients.values()) c.destroy()
      clients.clear()
    },
  }
}
