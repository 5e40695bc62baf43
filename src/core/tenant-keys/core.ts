/**
 * The shared core of tenant key providers: the tenant's state (created on first use), the default
 * provider's root key (created lazily, race-safe), provider resolution by fingerprint, and the one place
 * that wraps a DEK under a provider and unwraps a wrapped value (the codec of docs/tenant-key-providers.md).
 * `service.ts`, `data-keys.ts` and `migration.ts` build on it.
 */
import { performance } from 'node:perf_hooks'
import type { EnvelopeEngine } from '../engine.js'
import { EngineError } from '../errors.js'
import { encodeHeader, encodeOpaqueCiphertext, Mechanism } from '../format/ciphertext.js'
import { encodeWrappedDek, parseWrappedDek, type ParsedWrappedDek } from '../format/wrapped-dek.js'
import type { Clock } from '../ports.js'
import type {
  DataKeyStore,
  ExternalKey,
  ExternalKeyBackend,
  KeyProviderRecord,
  KeyProviderStore,
  TenantKeyState,
} from '../ports-tenant-keys.js'
import { SecretBytes } from '../secret-bytes.js'

/** The name of the engine root key that backs a tenant's default provider. */
export const DEFAULT_PROVIDER_KEY_NAME = 'tenant-default-key-provider'

/**
 * The resource CRN of the registration that keeps a provider's engine root key from being deleted (the
 * default provider's key: fingerprint `default`; an engine-key provider's key: its fingerprint). The
 * registration has `preventKeyDeletion`, so Key Protect's delete — even forced — answers PREV_KEY_DEL_ERR
 * while the provider exists (docs/tenant-key-providers.md).
 */
export function providerKeyCrn(fingerprint: string): string {
  return `crn:v1:envelope-kms:private:key-providers:global:tenant:key-providers:${fingerprint}`
}

/** The store roles tenant key providers use. */
export type TenantKeysStore = KeyProviderStore & DataKeyStore

/** A provider resolved from a fingerprint: what wraps and unwraps under it. */
export interface ResolvedProvider {
  readonly kind: 'default' | 'engine-key' | 'aws-kms'
  readonly fingerprint: string
  /** default / engine-key: the engine root key id; aws-kms: the record's UUID (the inner key id). */
  readonly keyId: string
  /** undefined for the default provider. */
  readonly record: KeyProviderRecord | undefined
}

/** A DEK wrapped under a provider, with its plaintext (the caller zeroizes it). */
export interface WrappedUnder {
  readonly wrapped: string
  readonly fingerprint: string
  readonly plaintext: SecretBytes
}

/** What unwrapping a stored or application-held value gives. */
export interface Unwrapped {
  readonly plaintext: SecretBytes
  readonly provider: ResolvedProvider
  /**
   * The same DEK, one layer under the current provider, when the value is not under it; undefined
   * otherwise.
   */
  readonly rewrapped: { readonly wrapped: string; readonly fingerprint: string } | undefined
}

const AAD_DOMAIN = Buffer.from('envelope-kms/key-provider/dek/v1\0', 'ascii')

/**
 * The AAD of a DEK wrapped under an external key (bound as the KMS encryption context): a domain string,
 * the tenant (length-prefixed), the provider's fingerprint, the 22 header bytes of the inner ciphertext and
 * the DEK length. A blob moved to another tenant, another provider or another header does not decrypt.
 */
export function externalAad(tenant: string, fingerprint: string, header: Buffer, dekLength: number): Buffer {
  const t = Buffer.from(tenant, 'utf8')
  const f = Buffer.from(fingerprint, 'ascii')
  const out = Buffer.alloc(AAD_DOMAIN.length + 2 + t.length + f.length + header.length + 2)
  let o = AAD_DOMAIN.copy(out, 0)
  o = out.writeUInt16BE(t.length, o)
  o += t.copy(out, o)
  o += f.copy(out, o)
  o += header.copy(out, o)
  out.writeUInt16BE(dekLength, o)
  return out
}

function mismatch(what: string): EngineError {
  return new EngineError('CIPHERTEXT_INVALID', `ciphertext: ${what}`, {
    target: { type: 'field', name: 'ciphertext' },
  })
}

/** The shared state and codec of one TenantKeyProviders instance. */
export class TenantKeysCore {
  readonly #external = new Map<string, ExternalKey>()
  readonly #defaultKeyInFlight = new Map<string, Promise<string>>()
  /** Tenants whose default key this process has seen registered (protected from deletion). */
  readonly #defaultProtected = new Set<string>()
  readonly #migrating = new Map<string, number>()
  #foregroundInFlight = 0
  #foregroundLastEnd = Number.NEGATIVE_INFINITY

  constructor(
    readonly engine: EnvelopeEngine,
    readonly store: TenantKeysStore,
    readonly clock: Clock,
    readonly awsKms: ExternalKeyBackend | undefined,
  ) {}

  now(): number {
    return this.clock.now()
  }

  /** The tenant's key-provider state, created (default provider current) on first use. */
  async state(tenant: string): Promise<TenantKeyState> {
    const s = await this.store.getTenantKeyState(tenant)
    if (s !== undefined) return s
    const now = this.now()
    return this.store.initTenantKeyState({
      tenant,
      currentFingerprint: tenant,
      defaultKeyId: undefined,
      defaultPromotedAt: now,
      defaultDemotedAt: 0,
      revision: 1,
    })
  }

  /**
   * The default provider's root key, created on first need. Two processes may race: the first recorded
   * key wins and the loser deletes its own.
   */
  async defaultKeyId(tenant: string): Promise<string> {
    const s = await this.state(tenant)
    if (s.defaultKeyId !== undefined) {
      // Once per tenant and process: a crash between recording the key and registering it, or a catalog
      // of an earlier build, leaves the key unprotected until here.
      if (!this.#defaultProtected.has(tenant)) await this.#protectDefault(tenant, s.defaultKeyId)
      return s.defaultKeyId
    }
    let p = this.#defaultKeyInFlight.get(tenant)
    if (p === undefined) {
      p = this.#createDefaultKey(tenant).finally(() => this.#defaultKeyInFlight.delete(tenant))
      this.#defaultKeyInFlight.set(tenant, p)
    }
    return p
  }

  async #createDefaultKey(tenant: string): Promise<string> {
    const key = await this.engine.createKey(tenant, {
      name: DEFAULT_PROVIDER_KEY_NAME,
      description: 'The root key of the tenant default key provider (tenant key providers)',
    })
    const stored = await this.store.setDefaultKey(tenant, key.id)
    if (stored.defaultKeyId !== key.id) {
      // Another process recorded its key first: ours was never used.
      await this.engine.deleteKey(tenant, key.id).catch(() => undefined)
    }
    if (stored.defaultKeyId === undefined) throw new EngineError('STORE_ERROR', 'default key not recorded')
    await this.#protectDefault(tenant, stored.defaultKeyId)
    return stored.defaultKeyId
  }

  async #protectDefault(tenant: string, keyId: string): Promise<void> {
    try {
      await this.protectKey(tenant, keyId, 'default')
    } catch (err) {
      // A default key that is not Active (disabled by an operator) cannot take a registration; its wraps
      // fail anyway, visibly. Anything else is a real failure.
      if (!(err instanceof EngineError && err.code === 'KEY_INVALID_STATE_ERR')) throw err
    }
    this.#defaultProtected.add(tenant)
  }

  /**
   * Registers {@link providerKeyCrn} with `preventKeyDeletion` on an engine root key a provider wraps with:
   * deleting the key would make every DEK under the provider unreadable. Idempotent.
   * @throws EngineError KEY_INVALID_STATE_ERR (the key is not Active), KEY_NOT_FOUND_ERR
   */
  async protectKey(tenant: string, keyId: string, fingerprint: string): Promise<void> {
    await this.engine.createRegistration(tenant, keyId, providerKeyCrn(fingerprint), {
      preventKeyDeletion: true,
      description: `envelope-kms: the root key of tenant key provider ${fingerprint}; deleting it would make the DEKs under it unreadable`,
    })
  }

  /** Removes the registration of {@link protectKey} (the provider is gone). Missing is fine. */
  async unprotectKey(tenant: string, keyId: string, fingerprint: string): Promise<void> {
    await this.engine.deleteRegistration(tenant, keyId, providerKeyCrn(fingerprint)).catch((err: unknown) => {
      if (
        err instanceof EngineError &&
        (err.code === 'REGISTRATION_NOT_FOUND_ERR' || err.code === 'KEY_NOT_FOUND_ERR')
      ) {
        return
      }
      throw err
    })
  }

  /** Makes `to` current if the state is still at `revision` (see KeyProviderStore.switchCurrent). */
  switchCurrentTo(tenant: string, revision: number, to: string): Promise<TenantKeyState | undefined> {
    return this.store.switchCurrent(tenant, revision, to, this.now())
  }

  /** The provider of `fingerprint` in `tenant`, or undefined. The tenant id names the default provider. */
  async resolve(tenant: string, fingerprint: string): Promise<ResolvedProvider | undefined> {
    if (fingerprint === tenant) {
      return { kind: 'default', fingerprint, keyId: await this.defaultKeyId(tenant), record: undefined }
    }
    const r = await this.store.getKeyProvider(tenant, fingerprint)
    if (r === undefined) return undefined
    return { kind: r.kind, fingerprint, keyId: r.kind === 'engine-key' ? r.arn : r.id, record: r }
  }

  /** Like {@link resolve}. @throws EngineError KEY_PROVIDER_NOT_FOUND */
  async mustResolve(tenant: string, fingerprint: string): Promise<ResolvedProvider> {
    const p = await this.resolve(tenant, fingerprint)
    if (p === undefined) {
      throw new EngineError('KEY_PROVIDER_NOT_FOUND', 'no key provider of this tenant has that fingerprint')
    }
    return p
  }

  /** The tenant's current provider. */
  async current(tenant: string): Promise<ResolvedProvider> {
    const s = await this.state(tenant)
    return this.mustResolve(tenant, s.currentFingerprint)
  }

  /** The opened external key of an aws-kms provider (cached per tenant and fingerprint). */
  externalKey(record: KeyProviderRecord): ExternalKey {
    const k = `${record.tenant}\0${record.fingerprint}`
    let key = this.#external.get(k)
    if (key === undefined) {
      if (this.awsKms === undefined) {
        throw new EngineError(
          'PROVIDER_UNSUPPORTED',
          'tenant key providers: no AWS KMS backend is configured',
        )
      }
      key = this.awsKms.open(record.arn, record.replicaKeys)
      this.#external.set(k, key)
    }
    return key
  }

  /** Forgets the opened external key of a provider (deleted, or its replicas changed). */
  async forget(tenant: string, fingerprint: string): Promise<void> {
    const k = `${tenant}\0${fingerprint}`
    const key = this.#external.get(k)
    this.#external.delete(k)
    await key?.close()
  }

  /**
   * Wraps `dek` (undefined: a fresh 32-byte DEK from the engine's RNG) under `p`. The plaintext returned is
   * a copy the caller owns; `dek` itself is left to its owner.
   */
  async wrapUnder(tenant: string, p: ResolvedProvider, dek?: Uint8Array): Promise<WrappedUnder> {
    if (p.kind === 'aws-kms') {
      const record = p.record
      if (record === undefined) throw new EngineError('INTERNAL_ERROR', 'aws-kms provider without record')
      const plaintext =
        dek === undefined ? SecretBytes.adopt(await this.engine.generateRandom(32)) : SecretBytes.copyOf(dek)
      try {
        const header = encodeHeader(Mechanism.OPAQUE, record.id, 1)
        const aad = externalAad(tenant, p.fingerprint, header, plaintext.length)
        const blob = await this.externalKey(record).encrypt(plaintext, aad)
        const inner = encodeOpaqueCiphertext(header, plaintext.length, blob).toString('base64')
        return { wrapped: encodeWrappedDek(p.fingerprint, inner), fingerprint: p.fingerprint, plaintext }
      } catch (err) {
        plaintext.zeroize()
        throw err
      }
    }
    const r = await this.engine.wrap(tenant, p.keyId, dek === undefined ? {} : { plaintext: dek })
    const plaintext =
      r.plaintext !== undefined ? SecretBytes.adopt(r.plaintext) : SecretBytes.copyOf(dek ?? new Uint8Array())
    const prefixFp = p.kind === 'default' ? undefined : p.fingerprint
    return {
      wrapped: encodeWrappedDek(prefixFp, r.ciphertext),
      fingerprint: p.fingerprint,
      plaintext,
    }
  }

  /**
   * Parses a wrapped value and checks that its inner ciphertext names the key of the provider it claims.
   * @throws EngineError CIPHERTEXT_INVALID, KEY_PROVIDER_NOT_FOUND
   */
  async parse(
    tenant: string,
    value: string,
    memo?: Map<string, Promise<ResolvedProvider>>,
  ): Promise<{ parsed: ParsedWrappedDek; provider: ResolvedProvider }> {
    const parsed = parseWrappedDek(value)
    const fp = parsed.fingerprint ?? tenant
    let resolving = memo?.get(fp)
    if (resolving === undefined) {
      resolving = this.#resolveNamed(tenant, parsed.fingerprint)
      memo?.set(fp, resolving)
    }
    const provider = await resolving
    const c = parsed.ciphertext
    if (provider.kind === 'aws-kms') {
      if (c.mechanism !== Mechanism.OPAQUE || c.keyVersion !== 1) throw mismatch('not a KMS-wrapped DEK')
    }
    if (c.keyId !== provider.keyId) throw mismatch('does not belong to the provider it names')
    return { parsed, provider }
  }

  /** The provider a wrapped value names (no prefix: the default provider, whose key must exist). */
  async #resolveNamed(tenant: string, fingerprint: string | undefined): Promise<ResolvedProvider> {
    if (fingerprint === undefined) {
      const s = await this.state(tenant)
      if (s.defaultKeyId === undefined) throw mismatch('no default provider key exists for this tenant')
    }
    return this.mustResolve(tenant, fingerprint ?? tenant)
  }

  /**
   * Runs a foreground call (a data-key or DEK call of the service) counted as such: a running migration
   * gives way while {@link foregroundRecent} says so.
   */
  async foreground<T>(fn: () => Promise<T>): Promise<T> {
    this.#foregroundInFlight++
    try {
      return await fn()
    } finally {
      this.#foregroundInFlight--
      this.#foregroundLastEnd = performance.now()
    }
  }

  /** Whether a foreground call is in flight or ended less than `withinMs` ago. */
  foregroundRecent(withinMs: number): boolean {
    return this.#foregroundInFlight > 0 || performance.now() - this.#foregroundLastEnd < withinMs
  }

  /** Marks a migration of `tenant` as running in this process until the returned function is called. */
  migrationRunning(tenant: string): () => void {
    this.#migrating.set(tenant, (this.#migrating.get(tenant) ?? 0) + 1)
    let done = false
    return () => {
      if (done) return
      done = true
      const n = (this.#migrating.get(tenant) ?? 1) - 1
      if (n <= 0) this.#migrating.delete(tenant)
      else this.#migrating.set(tenant, n)
    }
  }

  /** Whether a migration of `tenant` runs in this process (it rewrites every entry not yet moved). */
  isMigrating(tenant: string): boolean {
    return this.#migrating.has(tenant)
  }

  /**
   * Unwraps a wrapped value under whichever of the tenant's providers made it; `rewrapped` when that is not
   * the current provider (unless `rewrap` is false).
   */
  async unwrapValue(
    tenant: string,
    value: string,
    options: { readonly rewrap?: boolean } = {},
  ): Promise<Unwrapped> {
    const { parsed, provider } = await this.parse(tenant, value)
    const plaintext = await this.unwrapParsed(tenant, parsed, provider)
    if (options.rewrap === false) return { plaintext, provider, rewrapped: undefined }
    try {
      const current = await this.current(tenant)
      if (current.fingerprint !== provider.fingerprint) {
        const w = await this.wrapUnder(tenant, current, plaintext.bytes)
        w.plaintext.zeroize()
        return { plaintext, provider, rewrapped: { wrapped: w.wrapped, fingerprint: w.fingerprint } }
      }
      return { plaintext, provider, rewrapped: undefined }
    } catch (err) {
      plaintext.zeroize()
      throw err
    }
  }

  /** Unwraps a parsed value under its (checked) provider. */
  async unwrapParsed(tenant: string, parsed: ParsedWrappedDek, p: ResolvedProvider): Promise<SecretBytes> {
    if (p.kind === 'aws-kms') {
      const record = p.record
      if (record === undefined) throw new EngineError('INTERNAL_ERROR', 'aws-kms provider without record')
      const c = parsed.ciphertext
      const aad = externalAad(tenant, p.fingerprint, c.header, c.dekLength)
      const dek = await this.externalKey(record).decrypt(c.encrypted, aad)
      if (dek.length !== c.dekLength) {
        dek.zeroize()
        throw new EngineError('UNWRAP_AAD_MISMATCH', 'ciphertext: the unwrapped DEK has the wrong length')
      }
      return dek
    }
    const r = await this.engine.unwrap(tenant, p.keyId, parsed.inner)
    return SecretBytes.adopt(r.plaintext)
  }

  async close(): Promise<void> {
    const keys = [...this.#external.values()]
    this.#external.clear()
    await Promise.all(keys.map((k) => k.close()))
  }
}
