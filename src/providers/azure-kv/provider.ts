/**
 * Root keys in Azure Key Vault or Azure Managed HSM (through the official `@azure/keyvault-keys` client).
 *
 * Each engine key is one Key Vault key named `<prefix><keyId>`; each engine key version is one Key Vault
 * version of it (`createKey` on the name: Key Vault adds a version when the name exists), tagged with the
 * catalog id, the engine key id and the version number; the version's `kid` is the engine's opaque `ref`.
 * Ciphertexts are this provider's own blobs (`capabilities.ciphertext: 'opaque'`), bound to the engine's AAD
 * through its SHA-256 (layouts in {@link BLOB_A256GCM} and {@link BLOB_RSA_OAEP_256}):
 *
 * - `oct-HSM` keys (the default; Managed HSM): `encrypt` / `decrypt` with `A256GCM`, the SHA-256 of the AAD
 *   as `additionalAuthenticatedData`, the IV made by the HSM;
 * - `RSA-HSM` keys (optional): `wrapKey` / `unwrapKey` of `DEK ‖ SHA-256(AAD)` with RSA-OAEP-256 (or RSA-OAEP,
 *   which the SDK computes locally with the public key). RSA-OAEP is not malleable, so a changed AAD, blob
 *   or key fails the unwrap or the AAD check.
 *
 * Destroying a version disables it (Key Vault cannot delete one version); once every version of the key is
 * disabled the key is deleted (soft) and, when the vault allows, purged. Random bytes come from the Managed
 * HSM's RNG (`getRandomBytes`, `POST /rng`); a vault without one fails with PROVIDER_UNSUPPORTED unless
 * `randomSource: 'node'` was chosen explicitly.
 */
import { randomBytes } from 'node:crypto'
import type { CryptographyClient, KeyClient, KeyClientOptions } from '@azure/keyvault-keys'
import { EngineError } from '../../core/errors.js'
import type {
  CallOptions,
  CreateVersionRequest,
  GcmSealed,
  OutputOptions,
  ProviderCapabilities,
  ProviderHealth,
  ProviderObject,
  RootKeyProvider,
} from '../../core/ports.js'
import { SecretBytes } from '../../core/secret-bytes.js'
import { openBlob, sealBlob, type AzureCallOptions } from './blobs.js'
import { azurePages, callAzure, rememberBounded, type AzureListing } from './calls.js'
import { buildCredential, loadKeysSdk, type AzureKvCredential, type AzureTokenCredential } from './client.js'
import type { AzureOp } from './errors.js'

export { BLOB_A256GCM, BLOB_RSA_OAEP_256, BLOB_RSA_OAEP, BLOB_A256KW } from './blobs.js'

const TAG_CATALOG = 'envelope-kms-catalog'
const TAG_KEY = 'envelope-kms-key'
const TAG_VERSION = 'envelope-kms-version'
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** Options of {@link createAzureKvProvider}. */
export interface AzureKvProviderOptions {
  /** `https://<vault>.vault.azure.net`, `https://<hsm>.managedhsm.azure.net`, or a compatible server. */
  readonly vaultUrl: string
  /** Where access tokens come from (never logged). */
  readonly credential: AzureKvCredential
  /** The key type of new versions: `oct-HSM` (default; Managed HSM) or `RSA-HSM`. */
  readonly keyType?: 'oct-HSM' | 'RSA-HSM'
  /** `RSA-HSM` only: modulus bits (2048 default, 3072, 4096). */
  readonly rsaKeySize?: 2048 | 3072 | 4096
  /**
   * `RSA-HSM` only: the wrap algorithm. `RSA-OAEP-256` (default) runs in the vault; `RSA-OAEP` (SHA-1) is
   * wrapped locally by the SDK with the public key and unwrapped in the vault.
   */
  readonly rsaAlgorithm?: 'RSA-OAEP-256' | 'RSA-OAEP'
  /** Prefix of the Key Vault key names (default `ekms-`; letters, digits and dashes). */
  readonly keyNamePrefix?: string
  /** Purge a key after deleting it (default true; a vault with purge protection refuses, and keeps it). */
  readonly purgeOnDestroy?: boolean
  /**
   * Where `generateRandom` takes its bytes: `vault` (default; the Managed HSM RNG, `POST /rng`) or `node`
   * (node:crypto's CSPRNG — only when chosen here, for a Key Vault that has no RNG endpoint).
   */
  readonly randomSource?: 'vault' | 'node'
  /** The Key Vault api-version (default: the SDK's, 2025-07-01 for 4.10); `7.4` and later work. */
  readonly serviceVersion?: string
  /** Milliseconds a request may take before it counts as failed (default 10000). */
  readonly requestTimeoutMs?: number
  /** The SDK's retry policy (defaults: the SDK's, 3 retries with exponential backoff). */
  readonly retry?: {
    readonly maxRetries?: number
    readonly retryDelayInMs?: number
    readonly maxRetryDelayInMs?: number
  }
  /**
   * Skip the SDK's check that the vault's host ends with the challenge's resource host. Needed only for a
   * compatible server reached by an IP address or a host outside the resource's domain (loopback tests).
   */
  readonly disableChallengeResourceVerification?: boolean
  /** TLS options of the SDK's HTTP client, e.g. `{ ca }` to trust a private CA. */
  readonly tlsOptions?: KeyClientOptions['tlsOptions']
  /** Extra pipeline policies of the SDK (proxies, headers, tests). */
  readonly additionalPolicies?: KeyClientOptions['additionalPolicies']
  /** How often a deletion is polled until it is complete (default 1000 ms). */
  readonly deletePollIntervalMs?: number
}

/** The name and version of a `kid` (`https://host/keys/<name>/<version>`). @throws EngineError CIPHERTEXT_INVALID */
export function parseRef(ref: string): { name: string; version: string } {
  let url: URL
  try {
    url = new URL(ref)
  } catch {
    throw new EngineError('CIPHERTEXT_INVALID', 'azure-kv: the key reference is not a Key Vault key id')
  }
  const m = /^\/keys\/([0-9A-Za-z-]{1,127})\/([0-9A-Za-z]{1,64})$/.exec(url.pathname)
  if (m === null)
    throw new EngineError(
      'CIPHERTEXT_INVALID',
      'azure-kv: the key reference is not a versioned Key Vault key id',
    )
  return { name: m[1] ?? '', version: m[2] ?? '' }
}

function nonNegative(v: number | undefined, dflt: number, name: string): number {
  const n = v ?? dflt
  if (!Number.isFinite(n) || n < 0) throw new EngineError('CONFIG_INVALID', `azure-kv: ${name} must be >= 0`)
  return n
}

export class AzureKvProvider implements RootKeyProvider {
  readonly name = 'azure-kv'
  readonly capabilities: ProviderCapabilities = {
    importMaterial: false,
    importLengths: [],
    ciphertext: 'opaque',
  }
  readonly #vaultUrl: string
  readonly #credential: AzureTokenCredential
  readonly #clientOptions: KeyClientOptions
  readonly #keys: KeyClient
  readonly #crypto = new Map<string, CryptographyClient>()
  readonly #keyType: 'oct-HSM' | 'RSA-HSM'
  readonly #rsaSize: number
  readonly #rsaAlg: 'RSA-OAEP-256' | 'RSA-OAEP'
  readonly #prefix: string
  readonly #purge: boolean
  readonly #random: 'vault' | 'node'
  readonly #timeoutMs: number
  readonly #pollMs: number
  #closed = false
  #health: { readonly at: number; readonly result: Promise<ProviderHealth> } | undefined

  constructor(options: AzureKvProviderOptions) {
    let url: URL
    try {
      url = new URL(options.vaultUrl)
    } catch {
      throw new EngineError('CONFIG_INVALID', 'azure-kv: vaultUrl must be an https URL')
    }
    if (url.protocol !== 'https:' || (url.pathname !== '/' && url.pathname !== ''))
      throw new EngineError('CONFIG_INVALID', 'azure-kv: vaultUrl must be an https URL without a path')
    this.#vaultUrl = url.origin
    this.#keyType = options.keyType ?? 'oct-HSM'
    if (this.#keyType !== 'oct-HSM' && this.#keyType !== 'RSA-HSM')
      throw new EngineError('CONFIG_INVALID', 'azure-kv: keyType must be oct-HSM or RSA-HSM')
    this.#rsaSize = options.rsaKeySize ?? 2048
    if (![2048, 3072, 4096].includes(this.#rsaSize))
      throw new EngineError('CONFIG_INVALID', 'azure-kv: rsaKeySize must be 2048, 3072 or 4096')
    this.#rsaAlg = options.rsaAlgorithm ?? 'RSA-OAEP-256'
    if (this.#rsaAlg !== 'RSA-OAEP-256' && this.#rsaAlg !== 'RSA-OAEP')
      throw new EngineError('CONFIG_INVALID', 'azure-kv: rsaAlgorithm must be RSA-OAEP-256 or RSA-OAEP')
    this.#prefix = options.keyNamePrefix ?? 'ekms-'
    if (!/^[0-9A-Za-z-]{1,80}$/.test(this.#prefix))
      throw new EngineError(
        'CONFIG_INVALID',
        'azure-kv: keyNamePrefix must be 1-80 letters, digits and dashes',
      )
    this.#purge = options.purgeOnDestroy ?? true
    this.#random = options.randomSource ?? 'vault'
    if (this.#random !== 'vault' && this.#random !== 'node')
      throw new EngineError('CONFIG_INVALID', 'azure-kv: randomSource must be vault or node')
    this.#timeoutMs = nonNegative(options.requestTimeoutMs, 10_000, 'requestTimeoutMs')
    this.#pollMs = nonNegative(options.deletePollIntervalMs, 1000, 'deletePollIntervalMs')
    const r = options.retry
    this.#clientOptions = {
      ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion }),
      ...(options.disableChallengeResourceVerification === true
        ? { disableChallengeResourceVerification: true }
        : {}),
      ...(options.tlsOptions === undefined ? {} : { tlsOptions: options.tlsOptions }),
      ...(options.additionalPolicies === undefined ? {} : { additionalPolicies: options.additionalPolicies }),
      ...(r === undefined
        ? {}
        : {
            retryOptions: {
              ...(r.maxRetries === undefined
                ? {}
                : { maxRetries: nonNegative(r.maxRetries, 3, 'retry.maxRetries') }),
              ...(r.retryDelayInMs === undefined ? {} : { retryDelayInMs: r.retryDelayInMs }),
              ...(r.maxRetryDelayInMs === undefined ? {} : { maxRetryDelayInMs: r.maxRetryDelayInMs }),
            },
          }),
    }
    const { KeyClient: Keys } = loadKeysSdk()
    this.#credential = buildCredential(options.credential)
    this.#keys = new Keys(this.#vaultUrl, this.#credential, { ...this.#clientOptions })
  }

  /** The vault's origin (`https://host[:port]`). */
  get vaultUrl(): string {
    return this.#vaultUrl
  }

  /** The Key Vault key name of an engine key. */
  keyName(keyId: string): string {
    return `${this.#prefix}${keyId}`
  }

  async createVersion(req: CreateVersionRequest, opts: CallOptions = {}): Promise<string> {
    if (req.material !== undefined || req.sealed !== undefined)
      throw new EngineError('PROVIDER_UNSUPPORTED', 'azure-kv: importing key material is not supported')
    if (!UUID_RE.test(req.keyId) || !UUID_RE.test(req.catalogId))
      throw new EngineError('INVALID_FIELD_ERR', 'azure-kv: catalog and key ids must be UUIDs')
    const tags = { [TAG_CATALOG]: req.catalogId, [TAG_KEY]: req.keyId, [TAG_VERSION]: String(req.version) }
    const key = await this.#call('create', undefined, opts, (o) =>
      this.#keyType === 'oct-HSM'
        ? this.#keys.createKey(this.keyName(req.keyId), 'oct-HSM', {
            ...o,
            keySize: 256,
            keyOps: ['encrypt', 'decrypt'],
            tags,
          })
        : this.#keys.createKey(this.keyName(req.keyId), 'RSA-HSM', {
            ...o,
            keySize: this.#rsaSize,
            keyOps: ['wrapKey', 'unwrapKey'],
            tags,
          }),
    )
    const kid = key.id
    if (typeof kid !== 'string' || kid === '')
      throw new EngineError('PROVIDER_ERROR', 'azure-kv create: the response has no key id')
    parseRef(kid)
    return kid
  }

  async destroyVersion(ref: string, opts: CallOptions = {}): Promise<void> {
    const { name, version } = parseRef(ref)
    this.#crypto.delete(`${name}/${version}`)
    try {
      await this.#call('destroy', ref, opts, (o) =>
        this.#keys.updateKeyProperties(name, version, { ...o, enabled: false }),
      )
    } catch (err) {
      if (!(err instanceof EngineError && err.code === 'KEY_VERSION_NOT_FOUND')) throw err
      await this.#purgeIfDeleted(name, opts) // the key is gone or soft-deleted already
      return
    }
    // Key Vault deletes keys, not versions: the key goes once none of its versions is enabled.
    for await (const v of this.#pages('destroy', opts, (o) =>
      this.#keys.listPropertiesOfKeyVersions(name, o),
    )) {
      if (v.enabled !== false) return
    }
    try {
      await this.#call('destroy', ref, opts, async (o) => {
        const poller = await this.#keys.beginDeleteKey(name, { ...o, intervalInMs: this.#pollMs })
        await poller.pollUntilDone(o.abortSignal === undefined ? {} : { abortSignal: o.abortSignal })
      })
    } catch (err) {
      if (!(err instanceof EngineError && err.code === 'KEY_VERSION_NOT_FOUND')) throw err
    }
    await this.#purgeIfDeleted(name, opts)
  }

  /** Purges a soft-deleted key when configured to; nothing when it is not (or no longer) deleted. */
  async #purgeIfDeleted(name: string, opts: CallOptions): Promise<void> {
    if (!this.#purge) return
    try {
      await this.#call('destroy', undefined, opts, (o) => this.#keys.purgeDeletedKey(name, o))
    } catch (err) {
      if (err instanceof EngineError && err.code === 'KEY_VERSION_NOT_FOUND') return
      // Purge protection: the vault keeps the deleted key until its retention ends.
      if (err instanceof EngineError && err.code === 'PROVIDER_ACCESS_DENIED') return
      throw err
    }
  }

  encrypt(): Promise<GcmSealed> {
    return Promise.reject(
      new EngineError('PROVIDER_UNSUPPORTED', 'azure-kv: ciphertexts are Key Vault blobs; use encryptOpaque'),
    )
  }

  decrypt(): Promise<SecretBytes> {
    return Promise.reject(
      new EngineError('PROVIDER_UNSUPPORTED', 'azure-kv: ciphertexts are Key Vault blobs; use decryptOpaque'),
    )
  }

  async encryptOpaque(
    ref: string,
    plaintext: SecretBytes,
    aad: Buffer,
    opts: CallOptions = {},
  ): Promise<Buffer> {
    const c = this.#cryptoClient(ref)
    const alg = this.#keyType === 'oct-HSM' ? 'A256GCM' : this.#rsaAlg
    return this.#call('encrypt', ref, opts, (o) => sealBlob(c, alg, plaintext, aad, o))
  }

  async decryptOpaque(ref: string, blob: Buffer, aad: Buffer, opts: CallOptions = {}): Promise<SecretBytes> {
    const c = this.#cryptoClient(ref)
    return this.#call('decrypt', ref, opts, (o) => openBlob(c, blob, aad, o))
  }

  async generateRandom(length: number, opts: OutputOptions = {}): Promise<SecretBytes> {
    if (!Number.isInteger(length) || length < 1 || length > 128)
      throw new EngineError('INVALID_FIELD_ERR', 'azure-kv: random lengths are 1 to 128 bytes')
    if (this.#random === 'node') return SecretBytes.adopt(randomBytes(length))
    let out: Uint8Array
    try {
      out = await this.#call('random', undefined, opts, (o) => this.#keys.getRandomBytes(length, o))
    } catch (err) {
      if (
        err instanceof EngineError &&
        (err.code === 'KEY_VERSION_NOT_FOUND' || err.code === 'PROVIDER_UNSUPPORTED')
      )
        throw new EngineError(
          'PROVIDER_UNSUPPORTED',
          'azure-kv random: the vault has no RNG endpoint (Managed HSM only); set randomSource: node to use node:crypto',
          { cause: err },
        )
      throw err
    }
    if (out.length !== length) {
      out.fill(0)
      throw new EngineError('PROVIDER_ERROR', 'azure-kv random: unexpected response length')
    }
    const s = SecretBytes.copyOf(out)
    out.fill(0)
    return s
  }

  async listObjects(opts: CallOptions = {}): Promise<ProviderObject[]> {
    const found: ProviderObject[] = []
    for await (const k of this.#pages('list', opts, (o) => this.#keys.listPropertiesOfKeys(o))) {
      if (!k.name.startsWith(this.#prefix)) continue
      for await (const v of this.#pages('list', opts, (o) =>
        this.#keys.listPropertiesOfKeyVersions(k.name, o),
      )) {
        const t = v.tags ?? {}
        const catalogId = t[TAG_CATALOG]
        const keyId = t[TAG_KEY]
        const version = Number(t[TAG_VERSION])
        if (v.enabled === false || catalogId === undefined || keyId === undefined) continue
        if (!UUID_RE.test(catalogId) || !UUID_RE.test(keyId) || !Number.isSafeInteger(version) || version < 1)
          continue
        if (v.id === undefined) continue
        found.push({ ref: v.id, catalogId, keyId, version })
      }
    }
    return found
  }

  /**
   * The first page (one key) of `listPropertiesOfKeys`: token, TLS and vault all checked by one cheap call.
   * Callers within a second of the last probe share its answer (single-flight and cached).
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
    if (this.#closed) return { ok: false, detail: 'azure-kv: closed' }
    try {
      await this.#call('health', undefined, {}, (o) =>
        this.#keys.listPropertiesOfKeys(o).byPage({ maxPageSize: 1 }).next(),
      )
      return { ok: true, detail: `azure-kv: ${this.#vaultUrl} answered` }
    } catch (err) {
      return { ok: false, detail: err instanceof EngineError ? err.message : 'azure-kv: unreachable' }
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#crypto.clear()
  }

  // ------------------------------------------------------------------ calls

  #cryptoClient(ref: string): CryptographyClient {
    const { name, version } = parseRef(ref)
    const id = `${name}/${version}`
    let c = this.#crypto.get(id)
    if (c === undefined) {
      const { CryptographyClient: Crypto } = loadKeysSdk()
      c = new Crypto(`${this.#vaultUrl}/keys/${name}/${version}`, this.#credential, {
        ...this.#clientOptions,
      })
      rememberBounded(this.#crypto, id, c)
    }
    return c
  }

  /** One SDK call with the caller's signal and the request timeout; failures become EngineErrors. */
  async #call<T>(
    op: AzureOp,
    ref: string | undefined,
    opts: CallOptions,
    fn: (o: AzureCallOptions) => Promise<T>,
  ): Promise<T> {
    if (this.#closed) throw new EngineError('PROVIDER_UNAVAILABLE', 'azure-kv: closed')
    return callAzure(op, ref, opts, this.#timeoutMs, fn)
  }

  /** The items of a paged listing, each page fetched through {@link #call}. */
  #pages<T>(op: AzureOp, opts: CallOptions, list: AzureListing<T>): AsyncGenerator<T> {
    return azurePages((fn) => this.#call(op, undefined, opts, fn), list)
  }
}

/**
 * Builds an Azure Key Vault provider (no network call until first use).
 * @throws EngineError CONFIG_INVALID, PROVIDER_MODULE_LOAD_FAILED (`@azure/keyvault-keys` or, for a client
 * secret or a managed identity, `@azure/identity` not installed)
 */
export async function createAzureKvProvider(options: AzureKvProviderOptions): Promise<AzureKvProvider> {
  return new AzureKvProvider(options)
}
