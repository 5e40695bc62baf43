/**
 * KeyDirectory: key metadata and the alias cache over the catalog. It answers "which key is this reference,
 * in this instance, now?" — synchronously from memory on the hot path ({@link KeyDirectory.peek}), or from
 * the catalog. Entries live `metadataCacheTtlMs`; changes made through this engine invalidate them at once,
 * and changes by other processes are noticed by polling the store's change counter.
 */
import { EngineError } from '../errors.js'
import {
  appendAad,
  encodeHeader,
  hsmAadPrefix,
  Mechanism,
  sameKeyId,
  type MechanismId,
  type ParsedCiphertext,
} from '../format/ciphertext.js'
import type {
  Clock,
  DekCache,
  KeyPolicyRecord,
  KeyRecord,
  KeyVersionRecord,
  MetadataStore,
} from '../ports.js'
import { isUuid, validateInstance, validateKeyRef } from '../validate.js'

/** A version with its encoded ciphertext header and HSM AAD prefix, computed once per cache fill. */
export interface VersionEntry extends KeyVersionRecord {
  readonly header: Buffer
  /** {@link hsmAadPrefix} for a 32-byte DEK in the cache entry's instance (the common case). */
  readonly aadPrefix32: Buffer
  /** The whole HSM AAD for a 32-byte DEK and no caller AAD (the most common call): built once per fill. */
  readonly aadEmpty32: Buffer
  /**
   * This version's usage counter, attached by the usage meter on first use so that the hot path finds it
   * without building a key string; the meter owns it (entries come and go, the counter stays).
   */
  usageSlot?: UsageSlot
}

/** AES-GCM invocations this process holds for one root-key version (owned by wrap/usage-meter.ts). */
export interface UsageSlot {
  /** Reserved in the catalog and not used yet. */
  remaining: number
  /** Used by this process. */
  used: number
}

/** A key as the directory holds it: the record with its versions, aliases and policies. */
export interface CachedKey {
  readonly record: KeyRecord
  readonly versions: ReadonlyMap<number, VersionEntry>
  readonly aliases: readonly string[]
  readonly policies: readonly KeyPolicyRecord[]
  readonly expires: number
}

/** Options of {@link KeyDirectory}. */
export interface KeyDirectoryOptions {
  readonly store: MetadataStore
  readonly clock: Clock
  /** How long an entry is served from memory; 0 disables caching. */
  readonly ttlMs: number
  /** How often to ask the store whether another process committed a change (0 = every time). */
  readonly pollMs: number
  /** The mechanism byte of the ciphertext headers this engine writes (0x01 GCM, 0x10 opaque). */
  readonly mechanism: MechanismId
  /** Invalidated together with a key's metadata. */
  readonly dekCache?: DekCache | undefined
}

const LOWER_UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export class KeyDirectory {
  readonly #store: MetadataStore
  readonly #clock: Clock
  readonly #ttl: number
  readonly #pollMs: number
  readonly #mechanism: MechanismId
  readonly #dekCache: DekCache | undefined
  /** instance → key id → entry: two lookups of strings the caller already holds, no key string to build. */
  readonly #cache = new Map<string, Map<string, CachedKey>>()
  readonly #aliasCache = new Map<string, { id: string; expires: number }>()
  /**
   * Bumped by every invalidate() and clear(): a load that started before a bump may have read the catalog
   * before a change this engine made, and must not put what it read back in the cache. One counter for all
   * keys keeps this bounded; a load overtaken by another key's change is just not cached that time.
   */
  #epoch = 0
  /** Bumped whenever the alias cache is cleared, for the same reason. */
  #aliasEpoch = 0
  #lastPoll = Number.NEGATIVE_INFINITY
  #lastChange: number | undefined

  constructor(o: KeyDirectoryOptions) {
    this.#store = o.store
    this.#clock = o.clock
    this.#ttl = o.ttlMs
    this.#pollMs = o.pollMs
    this.#mechanism = o.mechanism
    this.#dekCache = o.dekCache
    this.#lastChange = o.store.changeCounter?.()
  }

  /**
   * The cached key for a UUID reference, without any await; undefined when it must be loaded (or the
   * reference is an alias, or invalid, or outside `keyRingId`: {@link resolve} then reports why).
   */
  peek(instance: string, idOrAlias: string, now: number, keyRingId?: string): CachedKey | undefined {
    // A hit proves the instance string was validated when the entry was filled; only its type is checked.
    if (typeof instance !== 'string' || typeof idOrAlias !== 'string') return undefined
    this.#syncWithStore(now)
    const byId = this.#cache.get(instance)
    if (byId === undefined) return undefined
    // Entries are keyed by lower-case key ids only, and an alias is never a UUID: a key present as given
    // needs no pattern check.
    let hit = byId.get(idOrAlias)
    if (hit === undefined) {
      if (LOWER_UUID_RE.test(idOrAlias) || !isUuid(idOrAlias)) return undefined
      hit = byId.get(idOrAlias.toLowerCase())
    }
    if (hit === undefined || hit.expires <= now || hit.record.internal) return undefined
    if (keyRingId !== undefined && hit.record.keyRingId !== keyRingId) return undefined
    return hit
  }

  /**
   * Resolves a key id or alias within the instance; internal keys are invisible, and so is a key outside
   * `keyRingId` when one is given.
   * @throws EngineError KEY_NOT_FOUND_ERR, INVALID_FIELD_ERR
   */
  async resolve(instance: string, idOrAlias: string, fresh = false, keyRingId?: string): Promise<CachedKey> {
    validateInstance(instance)
    let id: string | undefined
    if (typeof idOrAlias === 'string' && isUuid(idOrAlias)) {
      id = idOrAlias.toLowerCase()
    } else {
      validateKeyRef(idOrAlias)
      this.#syncWithStore()
      const ak = `${instance}\u0000${idOrAlias}`
      const hit = this.#aliasCache.get(ak)
      if (hit !== undefined && hit.expires > this.#clock.now() && !fresh) {
        id = hit.id
      } else {
        const epoch = this.#aliasEpoch
        id = await this.#store.getKeyIdByAlias(instance, idOrAlias)
        if (id !== undefined && this.#ttl > 0 && epoch === this.#aliasEpoch)
          this.#aliasCache.set(ak, { id, expires: this.#clock.now() + this.#ttl })
      }
      if (id === undefined) throw new EngineError('KEY_NOT_FOUND_ERR', 'key: not found')
    }
    const k = await this.load(instance, id, fresh)
    if (k.record.internal) throw new EngineError('KEY_NOT_FOUND_ERR', 'key: not found')
    if (keyRingId !== undefined) checkRing(k, keyRingId)
    return k
  }

  /**
   * The key with this id, from memory unless `fresh` (or expired).
   * @throws EngineError KEY_NOT_FOUND_ERR
   */
  async load(instance: string, id: string, fresh = false): Promise<CachedKey> {
    this.#syncWithStore()
    const now = this.#clock.now()
    if (!fresh) {
      const hit = this.#cache.get(instance)?.get(id)
      if (hit !== undefined && hit.expires > now) return hit
    }
    const epoch = this.#epoch
    const record = await this.#store.getKey(instance, id)
    if (record === undefined) {
      this.#cache.get(instance)?.delete(id)
      throw new EngineError('KEY_NOT_FOUND_ERR', 'key: not found')
    }
    const versions = new Map<number, VersionEntry>()
    if (!record.extractable) {
      for (const v of await this.#store.listVersions(instance, id)) {
        versions.set(v.version, entryOf(v, encodeHeader(this.#mechanism, id, v.version)))
      }
    } else {
      const v = {
        instance,
        keyId: id,
        version: 1,
        versionId: id,
        providerRef: '',
        createdAt: record.createdAt,
      }
      versions.set(1, entryOf(v, encodeHeader(Mechanism.AES_GCM, id, 1)))
    }
    const aliases = await this.#store.listAliases(instance, id)
    const policies = record.extractable ? [] : await this.#store.listKeyPolicies(instance, id)
    const entry: CachedKey = { record, versions, aliases, policies, expires: now + this.#ttl }
    // Cached only if no invalidate() overtook this load: otherwise it may hold the state before a change
    // this engine already made (the caller still gets what it read, as any read racing a write may).
    if (this.#ttl > 0 && epoch === this.#epoch) {
      let byId = this.#cache.get(instance)
      if (byId === undefined) {
        byId = new Map()
        this.#cache.set(instance, byId)
      }
      byId.set(id, entry)
    }
    return entry
  }

  /** Drops a key's metadata, every alias mapping, and the key's cached DEKs: after any change to the key. */
  invalidate(instance: string, keyId: string): void {
    this.#cache.get(instance)?.delete(keyId)
    this.#epoch++
    this.#clearAliases()
    this.#dekCache?.invalidateKey(instance, keyId)
  }

  /** Drops all metadata (a key ring was deleted, or the engine closes); cached DEKs are not touched. */
  clear(): void {
    this.#cache.clear()
    this.#epoch++
    this.#clearAliases()
  }

  #clearAliases(): void {
    this.#aliasCache.clear()
    this.#aliasEpoch++
  }

  #syncWithStore(now: number = this.#clock.now()): void {
    if (this.#store.changeCounter === undefined) return
    if (this.#pollMs > 0 && now - this.#lastPoll < this.#pollMs) return
    this.#lastPoll = now
    const c = this.#store.changeCounter()
    if (c !== this.#lastChange) {
      this.#lastChange = c
      this.clear()
    }
  }
}

/** A version with its header and the HSM AAD parts that depend only on it (computed once per fill). */
function entryOf(v: KeyVersionRecord, header: Buffer): VersionEntry {
  const aadPrefix32 = hsmAadPrefix(header, 32, v.instance)
  return { ...v, header, aadPrefix32, aadEmpty32: appendAad(aadPrefix32, []) }
}

/**
 * Key Protect's `X-Kms-Key-Ring`: a key outside the named ring is "not found", as if it did not exist.
 * @throws EngineError KEY_NOT_FOUND_ERR
 */
export function checkRing(k: CachedKey, keyRingId: string): void {
  if (k.record.keyRingId !== keyRingId) {
    throw new EngineError('KEY_NOT_FOUND_ERR', 'key: not found in the given key ring')
  }
}

/** The key's current version. */
export function currentVersion(k: CachedKey): VersionEntry {
  const v = k.versions.get(k.record.currentVersion)
  if (v === undefined) throw new EngineError('INTERNAL_ERROR', 'key: current version row is missing')
  return v
}

/**
 * The version of `k` a parsed ciphertext names.
 * @throws EngineError CIPHERTEXT_INVALID (another key), KEY_VERSION_NOT_FOUND
 */
export function versionOf(k: CachedKey, parsed: ParsedCiphertext): VersionEntry {
  if (!sameKeyId(parsed, currentVersion(k).header)) throw notThisKey()
  const v = k.versions.get(parsed.keyVersion)
  if (v === undefined) throw unknownVersion(parsed.keyVersion)
  return v
}

/** A ciphertext that names another key (single calls and batches say the same). */
export function notThisKey(): EngineError {
  return new EngineError('CIPHERTEXT_INVALID', 'ciphertext: was not wrapped by this key', {
    target: { type: 'field', name: 'ciphertext' },
  })
}

/** A ciphertext that names a version the key does not have (single calls and batches say the same). */
export function unknownVersion(version: number): EngineError {
  return new EngineError(
    'KEY_VERSION_NOT_FOUND',
    `ciphertext: names key version ${version}, which this key does not have`,
    { target: { type: 'field', name: 'ciphertext' } },
  )
}
