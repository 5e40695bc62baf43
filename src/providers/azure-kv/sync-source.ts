/**
 * The Azure Key Vault source of key synchronization (core/ports-sync.ts `SyncSource`; docs/key-sync-sources.md):
 * one vault of a connection, through the official `@azure/keyvault-keys` client, as the root-key provider
 * reaches it (client.ts credentials, calls.ts error mapping, blobs.ts wrapped-DEK layouts).
 *
 * Discovery: `listPropertiesOfKeys`, then per key `listPropertiesOfKeyVersions` and one `getKey` of the
 * latest version (`kty`, `key_ops`: the listings carry neither). Soft-deleted keys are not listed: that is
 * how a deletion at the source shows (the synchronization marks the keys it no longer sees).
 *
 * Wrap / unwrap by the versioned `kid` (the version's `ref`), always sent to this connection's vault URL:
 * - `RSA` / `RSA-HSM` (key_ops wrapKey + unwrapKey): `wrapKey` of `DEK ‖ SHA-256(AAD)` with RSA-OAEP-256
 *   (layout 0x02), as the provider. RSA-OAEP-256 binds no AAD, hence its hash inside the wrapped bytes, checked
 *   after the unwrap. A vault that refuses RSA-OAEP-256 (PROVIDER_UNSUPPORTED: an HSM without SHA-256 OAEP,
 *   such as the SoftHSM2 behind this project's listener) gets RSA-OAEP (SHA-1 OAEP, layout 0x03) from then on.
 * - `oct` / `oct-HSM` with encrypt + decrypt: `A256GCM` with SHA-256(AAD) as its AAD (layout 0x01), as the
 *   provider; with only wrapKey + unwrapKey: `A256KW` of `DEK ‖ SHA-256(AAD)` (layout 0x04).
 * Unwrap follows the blob's layout byte.
 */
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import type { CryptographyClient, KeyClient, KeyClientOptions, KeyProperties } from '@azure/keyvault-keys'
import { EngineError, invalidField } from '../../core/errors.js'
import type { CallOptions } from '../../core/ports.js'
import type {
  ConnectionCheck,
  ConnectionRecord,
  DiscoveredKey,
  LinkedKeyVersion,
  SecretResolver,
  SyncSource,
} from '../../core/ports-sync.js'
import type { SecretBytes } from '../../core/secret-bytes.js'
import { openBlob, sealBlob, type AzureBlobAlgorithm, type AzureCallOptions } from './blobs.js'
import { azurePages, callAzure, rememberBounded, type AzureListing } from './calls.js'
import {
  buildCredential,
  loadKeysSdk,
  readTokenCredential,
  type AzureKvCredential,
  type AzureTokenCredential,
} from './client.js'
import { toAzureEngineError, type AzureOp } from './errors.js'
import { parseRef } from './provider.js'

/** Tuning of {@link createAzureSyncSource} (not part of a connection: tests and embedders). */
export interface AzureSyncSourceOptions {
  /** Milliseconds a request may take (default 10000). */
  readonly requestTimeoutMs?: number
  /** The SDK's retry policy (default: the SDK's, 3 retries with exponential backoff). */
  readonly retry?: { readonly maxRetries?: number; readonly retryDelayInMs?: number }
}

/** How a key version wraps: what its `kty` and `key_ops` allow. */
type WrapKind = 'rsa' | 'gcm' | 'kw'

function opsAllow(ops: readonly string[] | undefined, ...wanted: string[]): boolean {
  return ops === undefined || wanted.every((w) => ops.includes(w))
}

/** How a version of type `kty` with `ops` (undefined: not restricted) wraps; undefined when it cannot. */
export function azureWrapKind(
  kty: string | undefined,
  ops: readonly string[] | undefined,
): WrapKind | undefined {
  if (kty === 'RSA' || kty === 'RSA-HSM') return opsAllow(ops, 'wrapKey', 'unwrapKey') ? 'rsa' : undefined
  if (kty === 'oct' || kty === 'oct-HSM') {
    if (opsAllow(ops, 'encrypt', 'decrypt')) return 'gcm'
    if (opsAllow(ops, 'wrapKey', 'unwrapKey')) return 'kw'
  }
  return undefined
}

/** The token scope of a vault host: `https://<host less its first label>/.default` (Key Vault's resource). */
function scopeOf(host: string): string {
  const h = host.replace(/:\d+$/, '')
  const dot = h.indexOf('.')
  if (isIP(h) !== 0 || dot < 0) return 'https://vault.azure.net/.default'
  return `https://${h.slice(dot + 1)}/.default`
}

/** Drops undefined values; dates as ISO strings (attributes must be JSON-serialisable). */
function jsonSafe(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue
    out[k] = v instanceof Date ? v.toISOString() : v
  }
  return out
}

class AzureSyncSource implements SyncSource {
  readonly cloud = 'azure' as const
  readonly #origin: string
  readonly #host: string
  readonly #credential: AzureTokenCredential
  readonly #clientOptions: KeyClientOptions
  readonly #keys: KeyClient
  readonly #timeoutMs: number
  readonly #crypto = new Map<string, CryptographyClient>()
  readonly #kinds = new Map<string, WrapKind>()
  #rsaAlg: 'RSA-OAEP-256' | 'RSA-OAEP' = 'RSA-OAEP-256'
  #closed = false

  constructor(
    url: URL,
    credential: AzureTokenCredential,
    clientOptions: KeyClientOptions,
    timeoutMs: number,
  ) {
    this.#origin = url.origin
    this.#host = url.host
    this.#credential = credential
    this.#clientOptions = clientOptions
    this.#timeoutMs = timeoutMs
    const { KeyClient: Keys } = loadKeysSdk()
    this.#keys = new Keys(this.#origin, credential, { ...clientOptions })
  }

  async *discover(options: { readonly signal?: AbortSignal | undefined } = {}): AsyncIterable<DiscoveredKey> {
    const opts: CallOptions = options.signal === undefined ? {} : { signal: options.signal }
    for await (const k of this.#pages('list', opts, (o) => this.#keys.listPropertiesOfKeys(o))) {
      const key = await this.#describe(k, opts)
      if (key !== undefined) yield key
    }
  }

  /** One listed key with its versions and its latest version's type; undefined when it went meanwhile. */
  async #describe(k: KeyProperties, opts: CallOptions): Promise<DiscoveredKey | undefined> {
    const props: KeyProperties[] = []
    let latest: Awaited<ReturnType<KeyClient['getKey']>>
    try {
      for await (const v of this.#pages('list', opts, (o) =>
        this.#keys.listPropertiesOfKeyVersions(k.name, o),
      ))
        props.push(v)
      latest = await this.#call('list', undefined, opts, (o) => this.#keys.getKey(k.name, o))
    } catch (err) {
      // Deleted between the listing and now: not seen by this discovery (the next one marks it).
      if (err instanceof EngineError && err.code === 'KEY_VERSION_NOT_FOUND') return undefined
      throw err
    }
    const versions: LinkedKeyVersion[] = props
      .filter((v) => typeof v.id === 'string' && typeof v.version === 'string')
      .sort(
        (a, b) =>
          (a.createdOn?.getTime() ?? 0) - (b.createdOn?.getTime() ?? 0) ||
          (a.version ?? '').localeCompare(b.version ?? ''),
      )
      .map((v) => ({
        version: v.version ?? '',
        ref: v.id ?? '',
        enabled: v.enabled !== false,
        createdAt: v.createdOn?.getTime(),
      }))
    if (versions.length === 0) {
      const p = latest.properties
      if (p.id === undefined || p.version === undefined) return undefined
      versions.push({
        version: p.version,
        ref: p.id,
        enabled: p.enabled !== false,
        createdAt: p.createdOn?.getTime(),
      })
    }
    const kty = latest.keyType ?? latest.key?.kty
    const keyOps = latest.keyOperations ?? latest.key?.keyOps
    const p = latest.properties
    return {
      sourceKeyId: k.name,
      vault: this.#host,
      name: k.name,
      keyType: kty ?? 'unknown',
      usable: azureWrapKind(kty, keyOps) !== undefined,
      enabled: p.enabled !== false,
      versions,
      attributes: jsonSafe({
        tags: { ...(p.tags ?? {}) },
        keyOps: keyOps === undefined ? undefined : [...keyOps],
        managed: p.managed,
        recoveryLevel: p.recoveryLevel,
        recoverableDays: p.recoverableDays,
        exportable: p.exportable,
        hsmPlatform: p.hsmPlatform,
        notBefore: p.notBefore,
        expiresOn: p.expiresOn,
        createdOn: p.createdOn,
        updatedOn: p.updatedOn,
        latestVersion: p.version,
      }),
    }
  }

  async wrap(ref: string, plaintext: SecretBytes, aad: Buffer, opts: CallOptions = {}): Promise<Buffer> {
    const c = this.#cryptoClient(ref)
    const kind = await this.#kindOf(ref, opts)
    if (kind === 'gcm')
      return this.#call('encrypt', ref, opts, (o) => sealBlob(c, 'A256GCM', plaintext, aad, o))
    if (kind === 'kw')
      return this.#call('encrypt', ref, opts, (o) => sealBlob(c, 'A256KW', plaintext, aad, o))
    const alg: AzureBlobAlgorithm = this.#rsaAlg
    try {
      return await this.#call('encrypt', ref, opts, (o) => sealBlob(c, alg, plaintext, aad, o))
    } catch (err) {
      if (!(alg === 'RSA-OAEP-256' && err instanceof EngineError && err.code === 'PROVIDER_UNSUPPORTED'))
        throw err
      this.#rsaAlg = 'RSA-OAEP'
      return this.#call('encrypt', ref, opts, (o) => sealBlob(c, 'RSA-OAEP', plaintext, aad, o))
    }
  }

  async unwrap(ref: string, blob: Buffer, aad: Buffer, opts: CallOptions = {}): Promise<SecretBytes> {
    const c = this.#cryptoClient(ref)
    return this.#call('decrypt', ref, opts, (o) => openBlob(c, blob, aad, o))
  }

  /** How the version `ref` wraps (one `getKey` of it, then remembered). */
  async #kindOf(ref: string, opts: CallOptions): Promise<WrapKind> {
    const known = this.#kinds.get(ref)
    if (known !== undefined) return known
    const { name, version } = parseRef(ref)
    const key = await this.#call('encrypt', ref, opts, (o) => this.#keys.getKey(name, { ...o, version }))
    const kind = azureWrapKind(key.keyType ?? key.key?.kty, key.keyOperations ?? key.key?.keyOps)
    if (kind === undefined)
      throw new EngineError(
        'PROVIDER_UNSUPPORTED',
        `azure-kv encrypt (${ref}): a ${key.keyType ?? 'key'} with these key_ops cannot wrap`,
      )
    rememberBounded(this.#kinds, ref, kind)
    return kind
  }

  async test(opts: CallOptions = {}): Promise<ConnectionCheck[]> {
    const where = this.#host
    const failed = (check: string, err: unknown, op: AzureOp): ConnectionCheck => {
      const e = toAzureEngineError(err, op, undefined, opts.signal?.aborted === true)
      return { check, where, ok: false, error: { code: e.code, message: e.message } }
    }
    const checks: ConnectionCheck[] = []
    try {
      if (this.#closed) throw new EngineError('PROVIDER_UNAVAILABLE', 'azure-kv: closed')
      const token = await this.#credential.getToken(scopeOf(this.#host), {
        ...(opts.signal === undefined ? {} : { abortSignal: opts.signal }),
      })
      if (token === null || token.token === '')
        throw new EngineError('PROVIDER_LOGIN_FAILED', 'azure-kv health: the credential gave no token')
      checks.push({ check: 'connect', where, ok: true })
    } catch (err) {
      checks.push(failed('connect', err, 'health'))
    }
    try {
      await this.#call('health', undefined, opts, (o) =>
        this.#keys.listPropertiesOfKeys(o).byPage({ maxPageSize: 1 }).next(),
      )
      checks.push({ check: 'list', where, ok: true })
    } catch (err) {
      checks.push(failed('list', err, 'list'))
    }
    return checks
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#crypto.clear()
    this.#kinds.clear()
  }

  #cryptoClient(ref: string): CryptographyClient {
    const { name, version } = parseRef(ref)
    const id = `${name}/${version}`
    let c = this.#crypto.get(id)
    if (c === undefined) {
      const { CryptographyClient: Crypto } = loadKeysSdk()
      // Always this connection's vault: a ref naming another host never receives its token.
      c = new Crypto(`${this.#origin}/keys/${name}/${version}`, this.#credential, { ...this.#clientOptions })
      rememberBounded(this.#crypto, id, c)
    }
    return c
  }

  async #call<T>(
    op: AzureOp,
    ref: string | undefined,
    opts: CallOptions,
    fn: (o: AzureCallOptions) => Promise<T>,
  ): Promise<T> {
    if (this.#closed) throw new EngineError('PROVIDER_UNAVAILABLE', 'azure-kv: closed')
    return callAzure(op, ref, opts, this.#timeoutMs, fn)
  }

  #pages<T>(op: AzureOp, opts: CallOptions, list: AzureListing<T>): AsyncGenerator<T> {
    return azurePages((fn) => this.#call(op, undefined, opts, fn), list)
  }
}

/**
 * Opens the Azure Key Vault source of a connection (`params.cloud` `azure`): resolves its secret (a client
 * secret once; a static token on every token request), reads its CA file. No network call until first use.
 * @throws EngineError INVALID_FIELD_ERR (not an Azure connection, vault URL, credential fields, an unreadable
 * secret or CA file), PROVIDER_MODULE_LOAD_FAILED (`@azure/keyvault-keys`, or `@azure/identity` for a client
 * secret or a managed identity, not installed)
 */
export async function createAzureSyncSource(
  connection: ConnectionRecord,
  secrets: SecretResolver,
  options: AzureSyncSourceOptions = {},
): Promise<SyncSource> {
  const p = connection.params
  if (p.cloud !== 'azure') throw invalidField('cloud', 'must be azure for an Azure Key Vault source')
  let url: URL
  try {
    url = new URL(p.vaultUrl)
  } catch {
    throw invalidField('vaultUrl', 'must be an https URL')
  }
  if (url.protocol !== 'https:' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '')
    throw invalidField('vaultUrl', 'must be an https URL without a path')
  let ca: string | undefined
  if (p.caFile !== undefined) {
    try {
      ca = readFileSync(p.caFile, 'utf8')
    } catch (err) {
      throw new EngineError('INVALID_FIELD_ERR', 'caFile: cannot be read', {
        cause: err,
        target: { type: 'field', name: 'caFile' },
      })
    }
  }
  const c = p.credential
  let credential: AzureTokenCredential
  if (c.kind === 'static-token') {
    const source = c.token
    credential = readTokenCredential(() => secrets(source))
  } else {
    let cfg: AzureKvCredential
    if (c.kind === 'client-secret') {
      cfg = {
        kind: 'client-secret',
        tenantId: c.tenantId,
        clientId: c.clientId,
        clientSecret: await secrets(c.secret),
        authorityHost: c.authorityHost,
      }
    } else if (c.kind === 'managed-identity') {
      cfg = { kind: 'managed-identity', clientId: c.clientId }
    } else {
      throw invalidField('credential.kind', 'must be client-secret, managed-identity or static-token')
    }
    try {
      credential = buildCredential(cfg)
    } catch (err) {
      if (err instanceof EngineError && err.code === 'CONFIG_INVALID')
        throw new EngineError('INVALID_FIELD_ERR', err.message, {
          cause: err,
          target: { type: 'field', name: 'credential' },
        })
      throw err
    }
  }
  const timeoutMs = options.requestTimeoutMs ?? 10_000
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0)
    throw new EngineError('CONFIG_INVALID', 'azure-kv: requestTimeoutMs must be >= 0')
  const r = options.retry
  const clientOptions: KeyClientOptions = {
    ...(p.disableChallengeResourceVerification === true
      ? { disableChallengeResourceVerification: true }
      : {}),
    ...(ca === undefined ? {} : { tlsOptions: { ca } }),
    ...(r === undefined
      ? {}
      : {
          retryOptions: {
            ...(r.maxRetries === undefined ? {} : { maxRetries: r.maxRetries }),
            ...(r.retryDelayInMs === undefined ? {} : { retryDelayInMs: r.retryDelayInMs }),
          },
        }),
  }
  return new AzureSyncSource(url, credential, clientOptions, timeoutMs)
}
