/**
 * EnvelopeEngine: root-key lifecycle and versions, DEK generation, wrap / unwrap / rewrap.
 * Depends only on the ports (provider, store, clock); see DESIGN.md.
 */
import { randomUUID, createDecipheriv } from 'node:crypto'
import {
  appendAad,
  encodeGcmCiphertext,
  encodeOpaqueCiphertext,
  hsmAadPrefix,
  encodeHeader,
  GENERATED_DEK_BYTES,
  Mechanism,
  MAX_DEK_BYTES,
  MIN_DEK_BYTES,
  keyIdOf,
  parseCiphertext,
  sameKeyId,
  validateAad,
  type ParsedCiphertext,
} from './ciphertext.js'
import { EngineError, ERROR_CODES, invalidField, toEngineError, type ErrorCode } from './errors.js'
import { executeBatch, type BatchItemResult, type BatchTask, type BatchVersion } from './batch.js'
import {
  assertActionAllowed,
  effectiveState,
  KeyState,
  type KeyAction,
  type KeyStateValue,
} from './key-state.js'
import type {
  BatchRunner,
  CachedDek,
  CallOptions,
  Clock,
  DataKeyLease,
  DekCache,
  DekMemo,
  GcmSealed,
  KeyPatch,
  KeyPolicyRecord,
  KeyPolicyType,
  KeyRecord,
  KeyVersionRecord,
  MetadataStore,
  RootKeyProvider,
  TagPair,
} from './ports.js'
import { systemClock } from './ports.js'
import { SecretBytes } from './secret-bytes.js'
import { Transform } from 'node:stream'
import {
  encodeContext,
  MessageDecryptor,
  MessageEncryptor,
  type EncodedContext,
  type EncryptionContext,
  type MessageHeader,
  type OpenLimits,
} from './message.js'
import { newKeyRecord } from './key-record.js'
import {
  lookupTarget,
  matchesSearch,
  parseFilter,
  parseSearch,
  parseSort,
  type KeyFilter,
  type KeySearch,
} from './key-query.js'
import {
  isUuid,
  validateActor,
  validateAlias,
  validateBytes,
  validateDate,
  validateDescription,
  validateInstance,
  validateKeyRef,
  validateKeyRingId,
  validateName,
  validatePaging,
  validateStates,
  validateTags,
  optionsObject,
} from './validate.js'

const LOWER_UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

/** Time rules of the key lifecycle. Defaults are Key Protect's (spec digest §4.12). */
export interface LifecyclePolicy {
  /** A deleted key can be restored for this long (30 days). */
  readonly restoreWindowMs: number
  /** ...but not sooner than this after deletion (30 s). */
  readonly restoreNotBeforeMs: number
  /** A deleted key can be purged this long after deletion (4 h). */
  readonly purgeNotBeforeMs: number
  /** Enable is refused this soon after a state change (30 s). */
  readonly enableCooldownMs: number
  /** At most one rotation per this interval (1 h); 0 turns the limit off. */
  readonly minRotationIntervalMs: number
  /** Aliases per key (5). */
  readonly maxAliasesPerKey: number
  /** Metadata kept after deletion before the automatic purge date (90 days). */
  readonly purgeScheduledAfterMs: number
  /** How long a setKeyForDeletion authorisation stays valid (7 days, IBM's product documentation). */
  readonly dualAuthWindowMs: number
  /** Key rings per instance besides `default` (Key Protect gives no number; 100). */
  readonly maxKeyRingsPerInstance: number
  /** Keys a search, filter or custom sort may look at (Key Protect: 5000). */
  readonly maxSearchSpace: number
}

export const KEY_PROTECT_LIFECYCLE: LifecyclePolicy = {
  restoreWindowMs: 30 * DAY,
  restoreNotBeforeMs: 30_000,
  purgeNotBeforeMs: 4 * HOUR,
  enableCooldownMs: 30_000,
  minRotationIntervalMs: HOUR,
  maxAliasesPerKey: 5,
  purgeScheduledAfterMs: 90 * DAY,
  maxKeyRingsPerInstance: 100,
  dualAuthWindowMs: 7 * DAY,
  maxSearchSpace: 5000,
}

/** An alias name (AWS KMS `alias/...`) as the API shows it. */
export interface AliasNameInfo {
  readonly name: string
  readonly keyId: string
  readonly createdAt: Date
  readonly updatedAt: Date
}

/** What {@link EnvelopeEngine.reencrypt} returns. */
export interface ReencryptResult {
  readonly ciphertext: string
  readonly sourceKeyId: string
  readonly sourceKeyVersion: KeyVersionInfo
  readonly keyId: string
  readonly keyVersion: KeyVersionInfo
}

/** Options of {@link createEngine}. Wiring is explicit: the caller builds the provider and the store. */
export interface EngineOptions {
  readonly provider: RootKeyProvider
  readonly store: MetadataStore
  readonly clock?: Clock
  readonly lifecycle?: Partial<LifecyclePolicy>
  /**
   * How long key metadata may be served from memory (default 1000 ms); 0 disables caching. Changes made
   * through this engine invalidate its cache at once.
   */
  readonly metadataCacheTtlMs?: number
  /**
   * How often to ask a store that can report commits by other processes (SQLite's `data_version`) whether
   * anything changed (default 50 ms; 0 = before every operation). This bounds how long a disable, rotate or
   * delete made by another process can go unnoticed here. Asking costs a read transaction (~2-5 µs on SQLite
   * in WAL mode), which is why it is not done on every call by default.
   */
  readonly catalogPollIntervalMs?: number
  /** Reconcile provider objects against the catalog on start (default true). */
  readonly reconcileOnStart?: boolean
  /** Pending provider objects younger than this are left alone by reconciliation (default 60 s). */
  readonly reconcileGraceMs?: number
  /** Close the provider and the store in {@link EnvelopeEngine.close} (default true). */
  readonly ownsDependencies?: boolean
  /**
   * Cache of plaintext DEKs (unwrap results and reusable data keys for seal); none by default.
   * `createDekCache()` from `envelope-kms/cache` is the lru-cache implementation.
   */
  readonly dekCache?: DekCache
  /**
   * AES-GCM operations allowed per root-key version (default 2^32, NIST SP 800-38D §8.3 for random 96-bit
   * IVs), reserved from the catalog `block` at a time (default 65,536; a process that stops forfeits the
   * rest of its block, which only errs on the safe side).
   */
  readonly usage?: { readonly limit?: number; readonly block?: number }
  /**
   * Runs wrapMany / unwrapMany / rewrapMany off the event loop (`createWorkerPool()` from
   * `envelope-kms/pool`); without one, batches run on the event loop, yielding between chunks.
   */
  readonly pool?: BatchRunner
}

/** Options of the batch operations. */
export interface BatchOptions extends CallOptions {
  /** AAD shared by every item of the batch. */
  readonly aad?: readonly string[]
  /** Called after each chunk with the number of items done and the total. */
  readonly onProgress?: (done: number, total: number) => void
  /** Items per task sent to a worker (default 256). */
  readonly chunkSize?: number
}

/** One item's outcome in a batch: a failure of one item does not fail the others. */
export type BatchResult<T> = ({ readonly ok: true } & T) | { readonly ok: false; readonly error: EngineError }

/** Options of {@link EnvelopeEngine.seal} and {@link EnvelopeEngine.sealStream}. */
export interface SealOptions extends CallOptions {
  /** Encryption context: bound to the message and its wrapped DEK; open must present the same. */
  readonly context?: EncryptionContext
  /** Plaintext bytes per frame (default 256 KiB). */
  readonly frameSize?: number
  /**
   * Streams only: the total plaintext length, when known. With a DEK cache, a stream reuses cached data
   * keys only when this is given (the byte bound cannot be checked otherwise).
   */
  readonly plaintextLength?: number
}

/** Options of {@link EnvelopeEngine.open} and {@link EnvelopeEngine.openStream}. */
export interface OpenOptions extends CallOptions {
  /** Must equal the context the message was sealed with (none = empty). */
  readonly context?: EncryptionContext
  /** Largest plaintext accepted (default: unlimited for streams, 1 GiB for open). */
  readonly maxBodySize?: number
  /** Largest header accepted (default 64 KiB). */
  readonly maxHeaderBytes?: number
  /** Largest frame size accepted (default 16 MiB). */
  readonly maxFrameSize?: number
}

/** A key version as the API shows it. */
export interface KeyVersionInfo {
  /** Key Protect version id (the key id for version 1). */
  readonly id: string
  /** 1 for the version created with the key, +1 per rotation. */
  readonly number: number
  readonly createdAt: Date
}

/** Public view of a key. Never carries key material. */
export interface KeyInfo {
  readonly id: string
  readonly instance: string
  readonly name: string
  readonly description: string | undefined
  /** false = root key (material stays in the HSM); true = standard key (material retrievable). */
  readonly extractable: boolean
  readonly imported: boolean
  /** Stored state, or 3 when the expiration date has passed. */
  readonly state: KeyStateValue
  readonly keyRingId: string
  readonly aliases: readonly string[]
  readonly tags: readonly string[]
  readonly createdAt: Date
  readonly createdBy: string | undefined
  readonly updatedAt: Date
  readonly lastRotatedAt: Date | undefined
  readonly expirationDate: Date | undefined
  readonly keyVersion: KeyVersionInfo
  readonly deleted: boolean
  readonly deletedAt: Date | undefined
  readonly deletedBy: string | undefined
  readonly restoreAllowed: boolean
  readonly restoreExpirationDate: Date | undefined
  readonly purgeAllowed: boolean
  readonly purgeAllowedFrom: Date | undefined
  readonly purgeScheduledOn: Date | undefined
  /** The key's rotation policy, when one was set. */
  readonly rotation: { readonly enabled: boolean; readonly intervalMonth: number | undefined } | undefined
  /** Dual authorization of deletes: `keySetForDeletion` once a first user authorised it, until `authExpiration`. */
  readonly dualAuthDelete: {
    readonly enabled: boolean
    readonly keySetForDeletion: boolean | undefined
    readonly authExpiration: Date | undefined
  }
}

/** Key-level policies as given by a caller (Key Protect `rotation`, `dualAuthDelete`). */
export interface KeyPoliciesInput {
  /** Automatic rotation every `intervalMonth` × 30 days (1–12); needed when enabled. */
  readonly rotation?: { readonly enabled: boolean; readonly intervalMonth?: number | undefined }
  /** Stored now; enforced (two-person delete) with the dual-authorization endpoints. Cannot be turned off. */
  readonly dualAuthDelete?: { readonly enabled: boolean }
}

/** One key-level policy with its bookkeeping. */
export interface KeyPolicyInfo {
  readonly type: KeyPolicyType
  readonly id: string
  readonly enabled: boolean
  readonly intervalMonth: number | undefined
  readonly createdAt: Date
  readonly createdBy: string | undefined
  readonly updatedAt: Date
  readonly updatedBy: string | undefined
}

/** A key ring; `default` exists in every instance and has no dates. */
export interface KeyRingInfo {
  readonly id: string
  readonly createdAt: Date | undefined
  readonly createdBy: string | undefined
}

export interface CreateKeyOptions {
  readonly name: string
  readonly description?: string
  /** false (default): a root key in the HSM. true: a standard key whose material the API returns. */
  readonly extractable?: boolean
  /** Key material to import instead of generating it. Root keys: 16, 24 or 32 bytes. Standard keys: 1-4096. */
  readonly payload?: Uint8Array
  readonly aliases?: readonly string[]
  readonly tags?: readonly string[]
  readonly expirationDate?: Date
  readonly createdBy?: string
  /** The key ring to create the key in (default `default`); it must exist. */
  readonly keyRingId?: string
  /** Key-level policies set in the same transaction as the key (root keys only). */
  readonly policies?: KeyPoliciesInput
}

export interface WrapOptions extends CallOptions {
  /** The DEK to wrap (1-4096 bytes). Absent: the engine generates a 32-byte DEK and returns it. */
  readonly plaintext?: Uint8Array
  /** Additional authenticated data; the same list must be given to unwrap and rewrap. */
  readonly aad?: readonly string[]
}

export interface WrapResult {
  /** The wrapped DEK, ciphertext format v1 in standard base64. */
  readonly ciphertext: string
  readonly keyVersion: KeyVersionInfo
  /** Only when the engine generated the DEK: a copy the caller owns (zero it when done). */
  readonly plaintext: Buffer | undefined
}

export interface UnwrapOptions extends CallOptions {
  readonly aad?: readonly string[]
}

export interface UnwrapResult {
  /** The DEK: a copy the caller owns (zero it when done). */
  readonly plaintext: Buffer
  /** The version that wrapped the input. */
  readonly keyVersion: KeyVersionInfo
  /** Present when the input was wrapped under an older version: the same DEK wrapped under the latest. */
  readonly rewrapped: { readonly ciphertext: string; readonly keyVersion: KeyVersionInfo } | undefined
}

export interface RewrapResult {
  readonly ciphertext: string
  /** The version that wrapped the input. */
  readonly keyVersion: KeyVersionInfo
  /** The latest version, which wraps the output. */
  readonly rewrappedKeyVersion: KeyVersionInfo
}

export interface ListKeysOptions {
  readonly limit?: number
  readonly offset?: number
  /** Key Protect search: `[not:][exact:][alias:|name:][escape:]term` (spec digest §4.11). */
  readonly search?: string
  /** Key Protect filter: space-separated `prop=value` terms, e.g. `lastRotateDate=none state=1,2`. */
  readonly filter?: string
  /** Key Protect sort: comma list of fields, `-` for descending (default: creation order). */
  readonly sort?: string
  /** Default: 0,1,2,3 (deleted keys are listed only when 5 is asked for). */
  readonly states?: readonly KeyStateValue[]
  readonly extractable?: boolean
  readonly keyRingId?: string
}

export interface ListVersionsOptions {
  readonly limit?: number
  readonly offset?: number
  /** Also list versions of a deleted key. */
  readonly allKeyStates?: boolean
}

/** What {@link EnvelopeEngine.reconcile} found and did. */
export interface ReconcileReport {
  /** Provider objects of unfinished creations that were destroyed (never acknowledged to a caller). */
  readonly destroyed: readonly string[]
  /** Provider objects of this catalog with no version row, adopted as versions of their key. */
  readonly adopted: readonly string[]
  /** Provider objects of this catalog that match no key: left in place for an operator to inspect. */
  readonly unknown: readonly string[]
  /** Creations still in progress (younger than the grace period), left alone. */
  readonly inProgress: number
}

/** A version with its encoded ciphertext header and HSM AAD prefix, computed once per cache fill. */
interface VersionEntry extends KeyVersionRecord {
  readonly header: Buffer
  /** {@link hsmAadPrefix} for a 32-byte DEK in the cache entry's instance (the common case). */
  readonly aadPrefix32: Buffer
}

interface CachedKey {
  readonly record: KeyRecord
  readonly versions: ReadonlyMap<number, VersionEntry>
  readonly aliases: readonly string[]
  readonly policies: readonly KeyPolicyRecord[]
  readonly expires: number
}

/** Imported root-key material lengths (AES-128/192/256). */
const ROOT_MATERIAL_LENGTHS = [16, 24, 32]

/**
 * The envelope-encryption engine. Create it with {@link createEngine}; every method takes the instance
 * (tenant) first, and an instance never sees another instance's keys.
 */
export class EnvelopeEngine {
  readonly #provider: RootKeyProvider
  readonly #store: MetadataStore
  readonly #clock: Clock
  readonly #life: LifecyclePolicy
  readonly #ttl: number
  readonly #pollMs: number
  #lastPoll = Number.NEGATIVE_INFINITY
  readonly #graceMs: number
  readonly #ownsDeps: boolean
  readonly #dekCache: DekCache | undefined
  readonly #usageLimit: number
  readonly #usageBlock: number
  readonly #usage = new Map<string, { remaining: number; used: number }>()
  readonly #usageInflight = new Map<string, Promise<void>>()
  readonly #pool: BatchRunner | undefined
  readonly #cache = new Map<string, CachedKey>()
  readonly #aliasCache = new Map<string, { id: string; expires: number }>()
  readonly #locks = new Map<string, Promise<unknown>>()
  readonly #systemKeyInflight = new Map<string, Promise<KeyRecord>>()
  /** Mechanism of the ciphertexts this engine writes: 0x01 (GCM providers) or 0x10 (opaque providers). */
  readonly #mechanism: (typeof Mechanism)[keyof typeof Mechanism]
  #lastChange: number | undefined
  #closed = false

  /** @internal use {@link createEngine} */
  constructor(options: EngineOptions) {
    this.#provider = options.provider
    this.#store = options.store
    this.#clock = options.clock ?? systemClock
    this.#life = { ...KEY_PROTECT_LIFECYCLE, ...options.lifecycle }
    this.#ttl = options.metadataCacheTtlMs ?? 1000
    this.#pollMs = options.catalogPollIntervalMs ?? 50
    this.#graceMs = options.reconcileGraceMs ?? 60_000
    this.#ownsDeps = options.ownsDependencies ?? true
    this.#dekCache = options.dekCache
    this.#pool = options.pool
    this.#usageLimit = options.usage?.limit ?? 2 ** 32
    this.#usageBlock = options.usage?.block ?? 65_536
    if (!(this.#usageLimit >= 1) || !Number.isSafeInteger(this.#usageLimit)) {
      throw new EngineError('CONFIG_INVALID', 'usage.limit: must be a positive integer')
    }
    if (!(this.#usageBlock >= 1) || !Number.isSafeInteger(this.#usageBlock)) {
      throw new EngineError('CONFIG_INVALID', 'usage.block: must be a positive integer')
    }
    this.#lastChange = this.#store.changeCounter?.()
    const p = this.#provider
    if (p.capabilities.ciphertext === 'opaque') {
      if (p.encryptOpaque === undefined || p.decryptOpaque === undefined) {
        throw new EngineError(
          'CONFIG_INVALID',
          `provider: ${p.name} declares opaque ciphertexts without encryptOpaque/decryptOpaque`,
        )
      }
      if (this.#pool !== undefined) {
        throw new EngineError('CONFIG_INVALID', 'pool: runs PKCS#11 providers only')
      }
      this.#mechanism = Mechanism.OPAQUE
    } else {
      this.#mechanism = Mechanism.AES_GCM
    }
  }

  /** The provider's name, e.g. `pkcs11:softhsm2`. */
  get providerName(): string {
    return this.#provider.name
  }

  // ---------------------------------------------------------------- key lifecycle

  /**
   * Creates a root key (version 1 in the HSM) or a standard key.
   * @throws EngineError INVALID_FIELD_ERR, MISSING_FIELD_ERR, KEY_ALIAS_NOT_UNIQUE_ERR, PROVIDER_UNAVAILABLE, ...
   * @example
   * const key = await engine.createKey('acme', { name: 'payments-root' })
   */
  async createKey(instance: string, options: CreateKeyOptions): Promise<KeyInfo> {
    return this.#guard('createKey', async () => {
      validateInstance(instance)
      if (typeof options !== 'object' || options === null) throw invalidField('options', 'must be an object')
      const name = validateName(options.name)
      const description = validateDescription(options.description)
      const tags = validateTags(options.tags)
      const extractable = options.extractable ?? false
      if (typeof extractable !== 'boolean') throw invalidField('extractable', 'must be a boolean')
      const aliases = this.#validateAliasList(options.aliases)
      const keyRingId = options.keyRingId === undefined ? 'default' : validateKeyRingId(options.keyRingId)
      const expirationDate = validateDate(options.expirationDate, 'expirationDate')
      const createdBy = validateActor(options.createdBy, 'createdBy')
      const now = this.#clock.now()
      if (expirationDate !== undefined && expirationDate <= now) {
        throw invalidField('expirationDate', 'must be in the future')
      }
      for (const a of aliases) {
        if ((await this.#store.getKeyIdByAlias(instance, a)) !== undefined) {
          throw new EngineError(
            'KEY_ALIAS_NOT_UNIQUE_ERR',
            `aliases: "${a}" is already in use in this instance`,
          )
        }
      }
      const id = randomUUID()
      const policies =
        options.policies === undefined
          ? []
          : this.#policyRecords(instance, id, [], optionsObject(options.policies), createdBy, now)
      if (policies.length > 0 && extractable) {
        throw new EngineError(
          'KEY_INVALID_STATE_ERR',
          'policies: apply only to root keys (extractable=false)',
        )
      }
      if (keyRingId !== 'default' && (await this.#store.getKeyRing(instance, keyRingId)) === undefined) {
        throw new EngineError('KEY_RING_NOT_FOUND_ERR', `keyRingID: "${keyRingId}" does not exist`)
      }
      const base = newKeyRecord(instance, id, name, now, {
        description,
        tags,
        keyRingId,
        createdBy,
        expirationDate,
      })
      if (extractable) {
        await this.#createStandardKey(base, options.payload, aliases)
      } else {
        let material: SecretBytes | undefined
        if (options.payload !== undefined) {
          material = this.#rootMaterial(options.payload)
        }
        try {
          await this.#createRootKey(
            { ...base, imported: material !== undefined },
            material,
            aliases,
            policies,
          )
        } finally {
          material?.zeroize()
        }
      }
      return this.#info(await this.#load(instance, id, true))
    })
  }

  /**
   * Returns a key's metadata (never its material). Works in every state, including deleted.
   * @throws EngineError KEY_NOT_FOUND_ERR
   */
  async getKey(instance: string, idOrAlias: string): Promise<KeyInfo> {
    return this.#guard('getKey', async () => this.#info(await this.#resolve(instance, idOrAlias, true)))
  }

  /**
   * Returns a standard key's material (Key Protect `payload`); a copy the caller owns.
   * @throws EngineError KEY_NOT_FOUND_ERR, KEY_NOT_EXTRACTABLE_ERR (root key), KEY_DELETED_ERR
   */
  async getKeyPayload(instance: string, idOrAlias: string, opts: CallOptions = {}): Promise<Buffer> {
    return this.#guard('getKeyPayload', async () => {
      opts = optionsObject(opts)
      const k = await this.#resolve(instance, idOrAlias)
      const r = k.record
      if (!r.extractable)
        throw new EngineError(
          'KEY_NOT_EXTRACTABLE_ERR',
          'key: is a root key; its material never leaves the HSM',
        )
      if (r.state === KeyState.DESTROYED) throw new EngineError('KEY_DELETED_ERR', 'key: is deleted')
      if (r.wrappedPayload === undefined)
        throw new EngineError('INTERNAL_ERROR', 'key: standard key without payload')
      const secret = await this.#unwrapInternal(instance, r.wrappedPayload, ['standard-key', r.id], opts)
      try {
        return secret.release()
      } finally {
        secret.zeroize()
      }
    })
  }

  /**
   * Lists an instance's keys, ordered by creation time then id (stable paging) unless `sort` says
   * otherwise; never returns material. `search`, `filter` and `sort` follow Key Protect (spec digest §4.11)
   * and look at most at `maxSearchSpace` keys (after the state, kind and ring selection).
   * @throws EngineError INVALID_FIELD_ERR, KEY_SEARCH_TOO_BROAD
   */
  async listKeys(
    instance: string,
    options: ListKeysOptions = {},
  ): Promise<{ keys: KeyInfo[]; total: number; incompleteSearch?: boolean }> {
    return this.#guard('listKeys', async () => {
      validateInstance(instance)
      options = optionsObject(options)
      const { limit, offset } = validatePaging(options.limit, options.offset)
      const search = optionalString(options.search, 'search', parseSearch)
      const filter = optionalString(options.filter, 'filter', parseFilter)
      const sort = optionalString(options.sort, 'sort', parseSort)
      if (filter?.hasState === true && options.states !== undefined) {
        throw invalidField('state', 'give state either as a parameter or inside filter, not both')
      }
      if (filter?.hasExtractable === true && options.extractable !== undefined) {
        throw invalidField('extractable', 'give extractable either as a parameter or inside filter, not both')
      }
      const states = filter?.hasState === true ? [...KEY_STATES_ALL] : validateStates(options.states)
      if (options.extractable !== undefined && typeof options.extractable !== 'boolean') {
        throw invalidField('extractable', 'must be a boolean')
      }
      const keyRingId = options.keyRingId === undefined ? undefined : validateKeyRingId(options.keyRingId)
      const base = { states, extractable: options.extractable, keyRingId }
      if (search === undefined && filter === undefined && sort === undefined) {
        const { keys, total } = await this.#store.listKeys(instance, { ...base, limit, offset })
        const out: KeyInfo[] = []
        for (const r of keys) out.push(this.#info(await this.#load(instance, r.id, true)))
        return { keys: out, total }
      }
      return this.#queryKeys(instance, base, { search, filter, sort }, limit, offset)
    })
  }

  async #queryKeys(
    instance: string,
    base: { states: KeyStateValue[]; extractable: boolean | undefined; keyRingId: string | undefined },
    q: {
      search: KeySearch | undefined
      filter: KeyFilter | undefined
      sort: ((a: KeyInfo, b: KeyInfo) => number) | undefined
    },
    limit: number,
    offset: number,
  ): Promise<{ keys: KeyInfo[]; total: number; incompleteSearch?: boolean }> {
    const max = this.#life.maxSearchSpace
    const { keys: rows } = await this.#store.listKeys(instance, { ...base, limit: max + 1, offset: 0 })
    const target = q.search === undefined ? undefined : lookupTarget(q.search)
    let first: KeyInfo | undefined
    if (target !== undefined) {
      const id =
        target.kind === 'id' ? target.value : await this.#store.getKeyIdByAlias(instance, target.value)
      const r = id === undefined ? undefined : await this.#store.getKey(instance, id)
      if (r !== undefined && !r.internal) {
        const info = this.#info(await this.#load(instance, r.id, true))
        const inScope =
          base.states.includes(info.state) &&
          (base.extractable === undefined || base.extractable === info.extractable) &&
          (base.keyRingId === undefined || base.keyRingId === info.keyRingId) &&
          (q.filter === undefined || q.filter.predicates.every((f) => f(info)))
        if (inScope) first = info
      }
    }
    if (rows.length > max) {
      if (first !== undefined) return { keys: [first], total: 1, incompleteSearch: true }
      throw new EngineError(
        'KEY_SEARCH_TOO_BROAD',
        `search: more than ${max} keys to look at; narrow it with state, extractable or a key ring`,
        { target: { type: 'param', name: q.search !== undefined ? 'search' : 'filter' } },
      )
    }
    let infos: KeyInfo[] = []
    for (const r of rows) infos.push(this.#info(await this.#load(instance, r.id, true)))
    if (q.filter !== undefined) {
      const preds = q.filter.predicates
      infos = infos.filter((k) => base.states.includes(k.state) && preds.every((f) => f(k)))
    }
    if (q.search !== undefined) {
      const s = q.search
      infos = infos.filter((k) => matchesSearch(k, s))
    }
    if (q.sort !== undefined) infos.sort(q.sort)
    if (first !== undefined) {
      const id = first.id
      infos = [first, ...infos.filter((k) => k.id !== id)]
    }
    return { keys: infos.slice(offset, offset + limit), total: infos.length }
  }

  /**
   * Lists a root key's versions, oldest first.
   * @throws EngineError KEY_NOT_FOUND_ERR, KEY_DELETED_ERR (unless allKeyStates), KEY_ROOT_REQ_ERR
   */
  async listKeyVersions(
    instance: string,
    idOrAlias: string,
    options: ListVersionsOptions = {},
  ): Promise<{ versions: KeyVersionInfo[]; total: number }> {
    return this.#guard('listKeyVersions', async () => {
      options = optionsObject(options)
      const { limit, offset } = validatePaging(options.limit, options.offset)
      const k = await this.#resolve(instance, idOrAlias, true)
      if (k.record.extractable)
        throw new EngineError('KEY_ROOT_REQ_ERR', 'key: versions exist only for root keys')
      if (options.allKeyStates !== true) assertActionAllowed('listVersions', this.#state(k.record), false)
      const all = [...k.versions.values()].sort((a, b) => a.version - b.version)
      return { versions: all.slice(offset, offset + limit).map(versionInfo), total: all.length }
    })
  }

  /**
   * Creates a new version of a root key; wrap uses it from now on, older versions still unwrap.
   * Imported keys must be given new material.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR, KEY_DELETED_ERR, KEY_ROTATION_NOT_PERMITTED, MISSING_FIELD_ERR
   */
  async rotate(
    instance: string,
    idOrAlias: string,
    options: { payload?: Uint8Array } = {},
  ): Promise<KeyInfo> {
    return this.#guard('rotate', async () => {
      options = optionsObject(options)
      const k0 = await this.#resolve(instance, idOrAlias)
      return this.#withKeyLock(instance, k0.record.id, async () => {
        const k = await this.#load(instance, k0.record.id, true)
        const r = k.record
        this.#assert('rotate', r)
        const now = this.#clock.now()
        if (
          this.#life.minRotationIntervalMs > 0 &&
          r.lastRotatedAt !== undefined &&
          now - r.lastRotatedAt < this.#life.minRotationIntervalMs
        ) {
          throw new EngineError(
            'KEY_ROTATION_NOT_PERMITTED',
            'key: was rotated less than the minimum interval ago',
          )
        }
        let material: SecretBytes | undefined
        if (r.imported) {
          if (options.payload === undefined) {
            throw new EngineError(
              'MISSING_FIELD_ERR',
              'payload: an imported key needs new material to rotate',
              {
                target: { type: 'field', name: 'payload' },
              },
            )
          }
          material = this.#rootMaterial(options.payload)
        } else if (options.payload !== undefined) {
          throw invalidField('payload', 'only imported keys take material at rotation')
        }
        try {
          const version = r.currentVersion + 1
          const ref = await this.#createProviderObject(instance, r.id, version, material)
          const v: KeyVersionRecord = {
            instance,
            keyId: r.id,
            version,
            versionId: randomUUID(),
            providerRef: ref,
            createdAt: now,
          }
          const ok = await this.#storeCall(() =>
            this.#store.insertVersion(v, { lastRotatedAt: now, updatedAt: now }),
          )
          if (!ok) {
            await this.#discardProviderObject(instance, r.id, version, ref)
            throw new EngineError(
              'KEY_ACTION_INVALID_STATE_ERR',
              'key: was changed concurrently; retry the rotation',
              {
                retryable: true,
              },
            )
          }
        } finally {
          material?.zeroize()
        }
        this.#invalidate(instance, r.id)
        return this.#info(await this.#load(instance, r.id, true))
      })
    })
  }

  /**
   * Suspends a root key (state 1 → 2): wrap and unwrap are refused until {@link enable}.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR, KEY_DELETED_ERR, KEY_ROOT_REQ_ERR
   */
  async disable(instance: string, idOrAlias: string): Promise<KeyInfo> {
    return this.#transition(instance, idOrAlias, 'disable', (_r, now) => ({
      state: KeyState.SUSPENDED,
      stateChangedAt: now,
      updatedAt: now,
    }))
  }

  /**
   * Re-activates a suspended root key (state 2 → 1); refused within 30 s of its last state change.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR, KEY_DELETED_ERR, KEY_ROOT_REQ_ERR
   */
  async enable(instance: string, idOrAlias: string): Promise<KeyInfo> {
    const pending = await this.#pendingDeletion(instance, idOrAlias)
    if (pending !== undefined) throw pending
    return this.#transition(instance, idOrAlias, 'enable', (r, now) => {
      if (now - r.stateChangedAt < this.#life.enableCooldownMs) {
        throw new EngineError(
          'KEY_ACTION_INVALID_STATE_ERR',
          'key: its state changed too recently; retry in 30 s',
          {
            retryable: true,
          },
        )
      }
      return { state: KeyState.ACTIVE, stateChangedAt: now, updatedAt: now }
    })
  }

  /**
   * Soft-deletes a key (state 5). It can be restored within the restore window and purged after 4 h.
   * @throws EngineError KEY_DELETED_ERR (already deleted), KEY_NOT_FOUND_ERR
   */
  async deleteKey(
    instance: string,
    idOrAlias: string,
    options: { deletedBy?: string } = {},
  ): Promise<KeyInfo> {
    let deletedBy: string | undefined
    try {
      deletedBy = validateActor(optionsObject(options).deletedBy, 'deletedBy')
    } catch (err) {
      throw toEngineError(err, 'deleteKey')
    }
    let dualAuth = false
    const info = await this.#transition(instance, idOrAlias, 'delete', (_r, now, k) => {
      const d = dualAuthInfo(k, now, this.#life.dualAuthWindowMs)
      if (d.enabled) {
        dualAuth = true
        const by = k.policies.find((p) => p.type === 'dualAuthDelete')?.authBy
        if (d.keySetForDeletion !== true || by === undefined) {
          throw new EngineError(
            'AUTHORIZATIONS_NOT_MET',
            'key: has dual authorization for deletes; another user must set it for deletion first',
          )
        }
        if (deletedBy === undefined || deletedBy === by) {
          throw new EngineError(
            'AUTHORIZATIONS_NOT_MET',
            'key: the user who set it for deletion cannot also delete it (dual authorization)',
          )
        }
      }
      return { state: KeyState.DESTROYED, stateChangedAt: now, updatedAt: now, deletedAt: now, deletedBy }
    })
    if (dualAuth) {
      await this.#storeCall(() => this.#store.setDeletionAuth(instance, info.id, undefined, undefined))
      this.#invalidate(instance, info.id)
      return this.getKey(instance, info.id)
    }
    return info
  }

  /**
   * First authorisation of a two-person delete: a key with an enabled dualAuthDelete policy can then be
   * deleted by another user within `dualAuthWindowMs` (7 days).
   * @throws EngineError NOT_DUAL_AUTH_ERR, KEY_DELETED_ERR, KEY_NOT_FOUND_ERR, MISSING_FIELD_ERR
   */
  async setKeyForDeletion(
    instance: string,
    idOrAlias: string,
    options: { by?: string } = {},
  ): Promise<KeyInfo> {
    return this.#deletionAuth('setKeyForDeletion', instance, idOrAlias, optionsObject(options).by, true)
  }

  /**
   * Withdraws a setKeyForDeletion authorisation.
   * @throws EngineError NOT_DUAL_AUTH_ERR, KEY_DELETED_ERR, KEY_NOT_FOUND_ERR
   */
  async unsetKeyForDeletion(
    instance: string,
    idOrAlias: string,
    options: { by?: string } = {},
  ): Promise<KeyInfo> {
    return this.#deletionAuth('unsetKeyForDeletion', instance, idOrAlias, optionsObject(options).by, false)
  }

  async #deletionAuth(
    op: string,
    instance: string,
    idOrAlias: string,
    byRaw: unknown,
    set: boolean,
  ): Promise<KeyInfo> {
    return this.#guard(op, async () => {
      const by = validateActor(byRaw, 'by')
      if (set && by === undefined) {
        throw new EngineError('MISSING_FIELD_ERR', 'by: the authorising user is required', {
          target: { type: 'field', name: 'by' },
        })
      }
      const k0 = await this.#resolve(instance, idOrAlias, true)
      return this.#withKeyLock(instance, k0.record.id, async () => {
        const k = await this.#load(instance, k0.record.id, true)
        if (k.record.state === KeyState.DESTROYED) throw new EngineError('KEY_DELETED_ERR', 'key: is deleted')
        const now = this.#clock.now()
        if (!dualAuthInfo(k, now, this.#life.dualAuthWindowMs).enabled) {
          throw new EngineError(
            'NOT_DUAL_AUTH_ERR',
            'key: is not dual-auth enabled and cannot be set for deletion',
          )
        }
        await this.#storeCall(() =>
          this.#store.setDeletionAuth(
            instance,
            k.record.id,
            set ? by : undefined,
            set ? now + this.#life.dualAuthWindowMs : undefined,
          ),
        )
        this.#invalidate(instance, k.record.id)
        return this.#info(await this.#load(instance, k.record.id, true))
      })
    })
  }

  /**
   * Restores a deleted key to Active (state 5 → 1), from 30 s to 30 days after deletion. Imported root keys
   * must be given their original material, which is checked against the HSM copy.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR, REQ_TOO_EARLY_ERR, MISSING_FIELD_ERR, INVALID_FIELD_ERR
   */
  async restoreKey(
    instance: string,
    idOrAlias: string,
    options: { payload?: Uint8Array } = {},
  ): Promise<KeyInfo> {
    return this.#guard('restoreKey', async () => {
      options = optionsObject(options)
      const k = await this.#resolve(instance, idOrAlias, true)
      const r = k.record
      if (r.state !== KeyState.DESTROYED) {
        throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'key: only a deleted key can be restored')
      }
      const now = this.#clock.now()
      const deletedAt = r.deletedAt ?? r.stateChangedAt
      if (now - deletedAt < this.#life.restoreNotBeforeMs) {
        throw new EngineError('REQ_TOO_EARLY_ERR', 'key: was deleted less than 30 s ago; retry later', {
          retryable: true,
        })
      }
      if (now - deletedAt > this.#life.restoreWindowMs) {
        throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'key: the restore window has passed')
      }
      if (r.imported && !r.extractable) {
        if (options.payload === undefined) {
          throw new EngineError(
            'MISSING_FIELD_ERR',
            'payload: an imported key is restored with its original material',
            {
              target: { type: 'field', name: 'payload' },
            },
          )
        }
        await this.#checkMaterialMatches(k, options.payload)
      } else if (options.payload !== undefined) {
        throw invalidField('payload', 'only imported root keys take material at restore')
      }
      return this.#transition(instance, r.id, 'restore', (_r, t) => ({
        state: KeyState.ACTIVE,
        stateChangedAt: t,
        updatedAt: t,
        deletedAt: undefined,
        deletedBy: undefined,
      }))
    })
  }

  /**
   * Permanently destroys a deleted key (≥ 4 h after deletion): its HSM objects, then its catalog rows.
   * Irreversible: every ciphertext under it becomes undecryptable.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR (not deleted), REQ_TOO_EARLY_ERR
   */
  async purgeKey(instance: string, idOrAlias: string): Promise<void> {
    return this.#guard('purgeKey', async () => {
      const k0 = await this.#resolve(instance, idOrAlias, true)
      await this.#withKeyLock(instance, k0.record.id, async () => {
        const k = await this.#load(instance, k0.record.id, true)
        const r = k.record
        if (r.state !== KeyState.DESTROYED) {
          throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'key: only a deleted key can be purged')
        }
        const deletedAt = r.deletedAt ?? r.stateChangedAt
        if (this.#clock.now() - deletedAt < this.#life.purgeNotBeforeMs) {
          throw new EngineError('REQ_TOO_EARLY_ERR', 'key: can be purged 4 h after deletion')
        }
        for (const v of k.versions.values()) await this.#provider.destroyVersion(v.providerRef)
        await this.#storeCall(() => this.#store.deleteKeyRows(instance, r.id))
        this.#invalidate(instance, r.id)
      })
    })
  }

  // ---------------------------------------------------------------- policies and key rings

  /**
   * A root key's policies (rotation, dualAuthDelete), optionally of one type.
   * @throws EngineError KEY_NOT_FOUND_ERR
   */
  async getKeyPolicies(instance: string, idOrAlias: string, type?: KeyPolicyType): Promise<KeyPolicyInfo[]> {
    return this.#guard('getKeyPolicies', async () => {
      if (type !== undefined && type !== 'rotation' && type !== 'dualAuthDelete') {
        throw invalidField('policy', 'must be rotation or dualAuthDelete')
      }
      const k = await this.#resolve(instance, idOrAlias, true)
      return k.policies.filter((p) => type === undefined || p.type === type).map(policyInfo)
    })
  }

  /**
   * Sets key-level policies of a root key in state 1. A dualAuthDelete policy, once enabled, stays enabled.
   * @throws EngineError KEY_INVALID_STATE_ERR, KEY_DELETED_ERR, INVALID_FIELD_ERR
   */
  async setKeyPolicies(
    instance: string,
    idOrAlias: string,
    policies: KeyPoliciesInput,
    options: { updatedBy?: string } = {},
  ): Promise<KeyPolicyInfo[]> {
    return this.#guard('setKeyPolicies', async () => {
      const input = optionsObject(policies)
      const actor = validateActor(optionsObject(options).updatedBy, 'updatedBy')
      const k0 = await this.#resolve(instance, idOrAlias, true)
      return this.#withKeyLock(instance, k0.record.id, async () => {
        const k = await this.#load(instance, k0.record.id, true)
        const state = this.#state(k.record)
        if (state === KeyState.DESTROYED) throw new EngineError('KEY_DELETED_ERR', 'key: is deleted')
        if (k.record.extractable || state !== KeyState.ACTIVE) {
          throw new EngineError(
            'KEY_INVALID_STATE_ERR',
            'key: policies need a root key (extractable=false) in the Active (1) state',
          )
        }
        const now = this.#clock.now()
        const records = this.#policyRecords(instance, k.record.id, k.policies, input, actor, now)
        if (records.length === 0) throw invalidField('policies', 'give rotation and/or dualAuthDelete')
        for (const p of records) await this.#storeCall(() => this.#store.putKeyPolicy(p))
        this.#invalidate(instance, k.record.id)
        const fresh = await this.#load(instance, k.record.id, true)
        const types = new Set(records.map((p) => p.type))
        return fresh.policies.filter((p) => types.has(p.type)).map(policyInfo)
      })
    })
  }

  #policyRecords(
    instance: string,
    keyId: string,
    existing: readonly KeyPolicyRecord[],
    input: KeyPoliciesInput,
    actor: string | undefined,
    now: number,
  ): KeyPolicyRecord[] {
    const out: KeyPolicyRecord[] = []
    const base = (type: KeyPolicyType): Omit<KeyPolicyRecord, 'enabled' | 'intervalMonth'> => {
      const prev = existing.find((p) => p.type === type)
      return {
        instance,
        keyId,
        type,
        policyId: prev?.policyId ?? randomUUID(),
        createdAt: prev?.createdAt ?? now,
        createdBy: prev === undefined ? actor : prev.createdBy,
        updatedAt: now,
        updatedBy: actor,
      }
    }
    if (input.rotation !== undefined) {
      const r = optionsObject(input.rotation)
      if (typeof r.enabled !== 'boolean') throw invalidField('rotation.enabled', 'must be a boolean')
      const prev = existing.find((p) => p.type === 'rotation')
      let interval = r.intervalMonth ?? prev?.intervalMonth
      if (r.intervalMonth !== undefined) {
        if (!Number.isInteger(r.intervalMonth) || r.intervalMonth < 1 || r.intervalMonth > 12) {
          throw invalidField('rotation.interval_month', 'must be an integer from 1 to 12')
        }
        interval = r.intervalMonth
      }
      if (r.enabled && interval === undefined) {
        throw new EngineError(
          'MISSING_FIELD_ERR',
          'rotation.interval_month: is required to enable rotation',
          {
            target: { type: 'field', name: 'interval_month' },
          },
        )
      }
      out.push({ ...base('rotation'), enabled: r.enabled, intervalMonth: interval })
    }
    if (input.dualAuthDelete !== undefined) {
      const d = optionsObject(input.dualAuthDelete)
      if (typeof d.enabled !== 'boolean') throw invalidField('dualAuthDelete.enabled', 'must be a boolean')
      const prev = existing.find((p) => p.type === 'dualAuthDelete')
      if (prev?.enabled === true && !d.enabled) {
        throw invalidField('dualAuthDelete.enabled', 'cannot be turned off once enabled')
      }
      out.push({ ...base('dualAuthDelete'), enabled: d.enabled, intervalMonth: undefined })
    }
    return out
  }

  /**
   * Rotates every root key whose rotation policy is due: `intervalMonth` × 30 days after its last rotation
   * (or creation). A key overdue by several intervals (the engine was down) rotates once. Imported keys
   * need new material and are reported, not rotated; keys not in state 1 or 3 are skipped.
   */
  async rotateDueKeys(): Promise<{
    rotated: string[]
    skipped: string[]
    failed: { id: string; code: ErrorCode }[]
  }> {
    return this.#guard('rotateDueKeys', async () => {
      const now = this.#clock.now()
      const rotated: string[] = []
      const skipped: string[] = []
      const failed: { id: string; code: ErrorCode }[] = []
      for (const p of await this.#storeCall(() => this.#store.listEnabledRotationPolicies())) {
        if (p.intervalMonth === undefined) continue
        const r = await this.#store.getKey(p.instance, p.keyId)
        if (r === undefined || r.extractable) continue
        const last = r.lastRotatedAt ?? r.createdAt
        if (now - last < p.intervalMonth * 30 * DAY) continue
        const state = effectiveState(r.state, r.expirationDate, now)
        if (r.imported || (state !== KeyState.ACTIVE && state !== KeyState.DEACTIVATED)) {
          skipped.push(r.id)
          continue
        }
        try {
          await this.rotate(p.instance, r.id)
          rotated.push(r.id)
        } catch (err) {
          failed.push({ id: r.id, code: toEngineError(err, 'rotateDueKeys').code })
        }
      }
      return { rotated, skipped, failed }
    })
  }

  /**
   * Moves a key to another key ring. `expectedRing`, when given, must be the key's current ring.
   * @throws EngineError KEY_NOT_FOUND_ERR, KEY_RING_NOT_FOUND_ERR, KEY_DELETED_ERR, INVALID_FIELD_ERR
   */
  async moveKey(
    instance: string,
    idOrAlias: string,
    keyRingId: string,
    options: { expectedRing?: string } = {},
  ): Promise<KeyInfo> {
    return this.#guard('moveKey', async () => {
      const to = validateKeyRingId(keyRingId)
      const expected = optionsObject(options).expectedRing
      const k0 = await this.#resolve(instance, idOrAlias, true)
      return this.#withKeyLock(instance, k0.record.id, async () => {
        const r = (await this.#load(instance, k0.record.id, true)).record
        if (r.state === KeyState.DESTROYED) throw new EngineError('KEY_DELETED_ERR', 'key: is deleted')
        if (expected !== undefined && expected !== r.keyRingId) {
          throw new EngineError('KEY_NOT_FOUND_ERR', 'key: not found in the given key ring')
        }
        if (to !== r.keyRingId) {
          const ok = await this.#storeCall(() =>
            this.#store.moveKey(instance, r.id, r.keyRingId, to, this.#clock.now()),
          )
          this.#invalidate(instance, r.id)
          if (!ok) {
            throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'key: moved concurrently; retry', {
              retryable: true,
            })
          }
        }
        return this.#info(await this.#load(instance, r.id, true))
      })
    })
  }

  /**
   * Creates a key ring. `default` is reserved.
   * @throws EngineError INVALID_FIELD_ERR, KEY_RING_RESOURCE_QUOTA_ERR
   */
  async createKeyRing(
    instance: string,
    id: string,
    options: { createdBy?: string } = {},
  ): Promise<{ created: boolean }> {
    return this.#guard('createKeyRing', async () => {
      validateInstance(instance)
      const ring = validateKeyRingId(id)
      if (ring === 'default') throw invalidField('keyRingID', '"default" is reserved')
      const createdBy = validateActor(optionsObject(options).createdBy, 'createdBy')
      const res = await this.#storeCall(() =>
        this.#store.createKeyRing(
          { instance, id: ring, createdAt: this.#clock.now(), createdBy },
          this.#life.maxKeyRingsPerInstance,
        ),
      )
      return { created: res === 'created' }
    })
  }

  /** The instance's key rings, `default` first. */
  async listKeyRings(instance: string): Promise<KeyRingInfo[]> {
    return this.#guard('listKeyRings', async () => {
      validateInstance(instance)
      const rings = await this.#storeCall(() => this.#store.listKeyRings(instance))
      return [
        { id: 'default', createdAt: undefined, createdBy: undefined },
        ...rings.map((r) => ({ id: r.id, createdAt: new Date(r.createdAt), createdBy: r.createdBy })),
      ]
    })
  }

  /**
   * Deletes an empty key ring; with `force`, a ring whose keys are all deleted (they move to `default`).
   * @throws EngineError KEY_RING_NOT_FOUND_ERR, KEY_RING_NOT_EMPTY_ERR, KEY_RING_KEYS_NOT_DELETED_ERR, INVALID_FIELD_ERR
   */
  async deleteKeyRing(instance: string, id: string, options: { force?: boolean } = {}): Promise<void> {
    return this.#guard('deleteKeyRing', async () => {
      validateInstance(instance)
      const ring = validateKeyRingId(id)
      if (ring === 'default') throw invalidField('keyRingID', '"default" cannot be deleted')
      const force = optionsObject(options).force ?? false
      if (typeof force !== 'boolean') throw invalidField('force', 'must be a boolean')
      const ok = await this.#storeCall(() =>
        this.#store.deleteKeyRing(instance, ring, force, this.#clock.now()),
      )
      if (!ok) throw new EngineError('KEY_RING_NOT_FOUND_ERR', `keyRingID: "${ring}" does not exist`)
      this.#cache.clear()
    })
  }

  /**
   * Adds an alias to a key; `created` false when the key already had it.
   * @throws EngineError INVALID_FIELD_ERR, KEY_ALIAS_NOT_UNIQUE_ERR, KEY_ALIAS_QUOTA_ERR, KEY_DELETED_ERR
   */
  async addAlias(instance: string, idOrAlias: string, alias: string): Promise<{ created: boolean }> {
    return this.#guard('addAlias', async () => {
      validateAlias(alias)
      const k = await this.#resolve(instance, idOrAlias, true)
      this.#assert('addAlias', k.record)
      const res = await this.#storeCall(() =>
        this.#store.addAlias(instance, k.record.id, alias, this.#clock.now(), this.#life.maxAliasesPerKey),
      )
      this.#invalidate(instance, k.record.id)
      return { created: res === 'created' }
    })
  }

  /**
   * Removes an alias (the key stays).
   * @throws EngineError ALIAS_NOT_FOUND_ERR, KEY_NOT_FOUND_ERR
   */
  async removeAlias(instance: string, idOrAlias: string, alias: string): Promise<void> {
    return this.#guard('removeAlias', async () => {
      validateAlias(alias)
      const k = await this.#resolve(instance, idOrAlias, true)
      const removed = await this.#storeCall(() => this.#store.removeAlias(instance, k.record.id, alias))
      this.#invalidate(instance, k.record.id)
      if (!removed)
        throw new EngineError('ALIAS_NOT_FOUND_ERR', `alias: "${alias}" does not exist on this key`)
    })
  }

  // ---------------------------------------------------------------- wrap / unwrap / rewrap

  /**
   * Wraps a DEK under the key's latest version. Without `plaintext` it generates a 32-byte DEK from the
   * provider's RNG and returns it.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR, KEY_DELETED_ERR, KEY_NOT_FOUND_ERR, INVALID_FIELD_ERR, PROVIDER_UNAVAILABLE
   * @example
   * const { plaintext, ciphertext } = await engine.wrap('acme', keyId, { aad: ['order-42'] })
   */
  async wrap(instance: string, idOrAlias: string, options: WrapOptions = {}): Promise<WrapResult> {
    // The hot path avoids nested async helpers: each costs a promise and a microtask per call.
    if (this.#closed) throw new EngineError('ENGINE_CLOSED', 'wrap: the engine is closed')
    let dek: SecretBytes | undefined
    try {
      options = optionsObject(options)
      const now = this.#clock.now()
      const aad = validateAad(options.aad)
      const generated = options.plaintext === undefined
      /* Precondition: a caller DEK is 1..4096 bytes. */
      if (!generated)
        dek = SecretBytes.copyOf(validateBytes(options.plaintext, 'plaintext', MIN_DEK_BYTES, MAX_DEK_BYTES))
      const k = this.#cached(instance, idOrAlias, now) ?? (await this.#resolve(instance, idOrAlias))
      this.#assert('wrap', k.record, now)
      this.#checkAborted(options.signal)
      dek ??= await this.#provider.generateRandom(GENERATED_DEK_BYTES, options)
      /* Postcondition: a generated DEK is 32 bytes. */
      if (generated && dek.length !== GENERATED_DEK_BYTES) {
        throw new EngineError('PROVIDER_ERROR', 'provider: random output has an unexpected length')
      }
      const v = currentVersion(k)
      const ciphertext = await this.#wrapWith(instance, v, dek, aad, options)
      return { ciphertext, keyVersion: versionInfo(v), plaintext: generated ? dek.release() : undefined }
    } catch (err) {
      throw toEngineError(err, 'wrap')
    } finally {
      dek?.zeroize()
    }
  }

  /**
   * Unwraps a DEK. A ciphertext made under an older version also comes back rewrapped under the latest.
   * @throws EngineError UNWRAP_AAD_MISMATCH, CIPHERTEXT_INVALID, KEY_VERSION_NOT_FOUND, KEY_ACTION_INVALID_STATE_ERR, KEY_DELETED_ERR
   */
  async unwrap(
    instance: string,
    idOrAlias: string,
    ciphertext: string | Uint8Array,
    options: UnwrapOptions = {},
  ): Promise<UnwrapResult> {
    if (this.#closed) throw new EngineError('ENGINE_CLOSED', 'unwrap: the engine is closed')
    let dek: SecretBytes | undefined
    try {
      options = optionsObject(options)
      const opened =
        this.#openDekCached('unwrap', instance, idOrAlias, ciphertext, options) ??
        (await this.#openDek('unwrap', instance, idOrAlias, ciphertext, options))
      dek = opened.dek
      const latest = currentVersion(opened.k)
      const rewrapped =
        latest.version === opened.from.version
          ? undefined
          : {
              ciphertext: await this.#wrapWith(instance, latest, dek, opened.aad, options),
              keyVersion: versionInfo(latest),
            }
      return { plaintext: dek.release(), keyVersion: versionInfo(opened.from), rewrapped }
    } catch (err) {
      throw toEngineError(err, 'unwrap')
    } finally {
      dek?.zeroize()
    }
  }

  /**
   * Re-wraps a ciphertext under the key's latest version. The DEK is held only inside this call (AES-GCM
   * on SoftHSM2 cannot re-encrypt inside the HSM; see docs/ciphertext-format.md) and is zeroed at once.
   * @throws EngineError as {@link unwrap}
   */
  async rewrap(
    instance: string,
    idOrAlias: string,
    ciphertext: string | Uint8Array,
    options: UnwrapOptions = {},
  ): Promise<RewrapResult> {
    if (this.#closed) throw new EngineError('ENGINE_CLOSED', 'rewrap: the engine is closed')
    let dek: SecretBytes | undefined
    try {
      options = optionsObject(options)
      if (this.#provider.reencryptOpaque !== undefined && this.#dekCache === undefined) {
        return await this.#rewrapInProvider(instance, idOrAlias, idOrAlias, ciphertext, options, options.aad)
      }
      const opened =
        this.#openDekCached('rewrap', instance, idOrAlias, ciphertext, options) ??
        (await this.#openDek('rewrap', instance, idOrAlias, ciphertext, options))
      dek = opened.dek
      const latest = currentVersion(opened.k)
      return {
        ciphertext: await this.#wrapWith(instance, latest, dek, opened.aad, options),
        keyVersion: versionInfo(opened.from),
        rewrappedKeyVersion: versionInfo(latest),
      }
    } catch (err) {
      throw toEngineError(err, 'rewrap')
    } finally {
      dek?.zeroize()
    }
  }

  /** The first half of unwrap and rewrap: parse, resolve, check the state, decrypt the DEK in the HSM. */
  /**
   * The first half of unwrap and rewrap from the DEK cache alone, without any await: undefined unless the
   * key's metadata and this exact (ciphertext, AAD) are both cached. A hit means this ciphertext was
   * unwrapped with this AAD by this key of this instance before, so it is not parsed again; the key's state
   * is checked as on every call.
   */
  #openDekCached(
    action: 'unwrap' | 'rewrap',
    instance: string,
    idOrAlias: string,
    ciphertext: string | Uint8Array,
    options: UnwrapOptions,
  ): { k: CachedKey; from: VersionEntry; aad: readonly string[]; dek: SecretBytes } | undefined {
    const cache = this.#dekCache
    if (cache === undefined || typeof ciphertext !== 'string') return undefined
    const now = this.#clock.now()
    const k = this.#cached(instance, idOrAlias, now)
    if (k === undefined) return undefined
    const aad = validateAad(options.aad)
    this.#assert(action, k.record, now)
    const hit = cache.peek(instance, k.record.id, cacheKeyOf(ciphertext, aad))
    if (hit === undefined) return undefined
    const from = k.versions.get(hit.version)
    if (from === undefined) {
      hit.dek.zeroize()
      return undefined
    }
    return { k, from, aad, dek: hit.dek }
  }

  /** The first half of unwrap and rewrap: resolve, check the state, decrypt the DEK (or take it from the cache). */
  async #openDek(
    action: 'unwrap' | 'rewrap',
    instance: string,
    idOrAlias: string,
    ciphertext: string | Uint8Array,
    options: UnwrapOptions,
    parsedAlready?: ParsedCiphertext,
    givenCacheKey?: string,
  ): Promise<{
    k: CachedKey
    from: VersionEntry
    aad: readonly string[]
    dek: SecretBytes
    memo?: DekMemo | undefined
  }> {
    const now = this.#clock.now()
    const aad = validateAad(options.aad)
    const k = this.#cached(instance, idOrAlias, now) ?? (await this.#resolve(instance, idOrAlias))
    this.#assert(action, k.record, now)
    const cache = this.#dekCache
    if (cache === undefined) {
      const parsed = parsedAlready ?? parseCiphertext(ciphertext)
      const from = versionOf(k, parsed)
      return { k, from, aad, dek: await this.#unwrapWith(instance, from, parsed, aad, options) }
    }
    const cacheKey =
      givenCacheKey ??
      cacheKeyOf(
        typeof ciphertext === 'string' ? ciphertext : Buffer.from(ciphertext).toString('base64'),
        aad,
      )
    const hit = cache.peek(instance, k.record.id, cacheKey)
    const hitVersion = hit === undefined ? undefined : k.versions.get(hit.version)
    if (hit !== undefined && hitVersion !== undefined)
      return { k, from: hitVersion, aad, dek: hit.dek, memo: hit.memo }
    hit?.dek.zeroize()
    const parsed = parsedAlready ?? parseCiphertext(ciphertext)
    const from = versionOf(k, parsed)
    const dek = await cache.unwrap(instance, k.record.id, cacheKey, from.version, () =>
      this.#unwrapWith(instance, from, parsed, aad, options),
    )
    return { k, from, aad, dek } // an owned copy
  }

  // ---------------------------------------------------------------- batches

  /**
   * Wraps many DEKs under the key's latest version: `items` is a count of DEKs to generate, or the DEKs.
   * Runs on the worker pool when there is one. Results come in input order; an item fails alone.
   * @throws EngineError for the whole call: KEY_NOT_FOUND_ERR, KEY_ACTION_INVALID_STATE_ERR, ABORTED, ...
   */
  async wrapMany(
    instance: string,
    idOrAlias: string,
    items: number | readonly Uint8Array[],
    options: BatchOptions = {},
  ): Promise<
    BatchResult<{ ciphertext: string; keyVersion: KeyVersionInfo; plaintext: Buffer | undefined }>[]
  > {
    return this.#guard('wrapMany', async () => {
      let inputs: readonly unknown[]
      if (typeof items === 'number') {
        if (!Number.isInteger(items) || items < 0 || items > 10_000_000)
          throw invalidField('items', 'must be a count 0-10,000,000')
        const generate = new Uint8Array(0)
        inputs = Array.from({ length: items }, () => generate)
      } else if (Array.isArray(items)) {
        inputs = items
      } else {
        throw invalidField('items', 'must be a count or an array of DEKs')
      }
      const check = (d: unknown): Uint8Array | EngineError =>
        (d instanceof Uint8Array && d.length >= MIN_DEK_BYTES && d.length <= MAX_DEK_BYTES) ||
        (typeof items === 'number' && d instanceof Uint8Array)
          ? d
          : invalidField('plaintext', `must be ${MIN_DEK_BYTES}-${MAX_DEK_BYTES} bytes`)
      return this.#runBatch('wrap', instance, idOrAlias, inputs, check, options, (r, k, info) => ({
        ok: true as const,
        ciphertext: r.ciphertext ?? '',
        keyVersion: info(currentVersion(k)),
        plaintext: r.plaintext === undefined ? undefined : asBuffer(r.plaintext),
      }))
    })
  }

  /**
   * Unwraps many ciphertexts of one key; those under older versions also come back rewrapped.
   * @throws EngineError for the whole call (key, state, abort); per-item errors are in the results
   */
  async unwrapMany(
    instance: string,
    idOrAlias: string,
    ciphertexts: readonly (string | Uint8Array)[],
    options: BatchOptions = {},
  ): Promise<
    BatchResult<{
      plaintext: Buffer
      keyVersion: KeyVersionInfo
      rewrapped: { ciphertext: string; keyVersion: KeyVersionInfo } | undefined
    }>[]
  > {
    return this.#guard('unwrapMany', async () =>
      this.#runBatch(
        'unwrap',
        instance,
        idOrAlias,
        arrayOf(ciphertexts),
        ciphertextItem,
        options,
        (r, k, info) => {
          const latest = currentVersion(k)
          return {
            ok: true as const,
            plaintext: asBuffer(r.plaintext),
            keyVersion: info(k.versions.get(r.fromVersion ?? 0) ?? latest),
            rewrapped:
              r.ciphertext === undefined ? undefined : { ciphertext: r.ciphertext, keyVersion: info(latest) },
          }
        },
      ),
    )
  }

  /**
   * Re-wraps many ciphertexts of one key under its latest version (after a rotation, for a migration).
   * @throws EngineError for the whole call (key, state, abort); per-item errors are in the results
   * @example
   * const results = await engine.rewrapMany('acme', keyId, ciphertexts, { onProgress: (done, total) => bar.update(done / total) })
   */
  async rewrapMany(
    instance: string,
    idOrAlias: string,
    ciphertexts: readonly (string | Uint8Array)[],
    options: BatchOptions = {},
  ): Promise<
    BatchResult<{ ciphertext: string; keyVersion: KeyVersionInfo; rewrappedKeyVersion: KeyVersionInfo }>[]
  > {
    return this.#guard('rewrapMany', async () =>
      this.#runBatch(
        'rewrap',
        instance,
        idOrAlias,
        arrayOf(ciphertexts),
        ciphertextItem,
        options,
        (r, k, info) => {
          const latest = currentVersion(k)
          return {
            ok: true as const,
            ciphertext: r.ciphertext ?? '',
            keyVersion: info(k.versions.get(r.fromVersion ?? 0) ?? latest),
            rewrappedKeyVersion: info(latest),
          }
        },
      ),
    )
  }

  /**
   * Splits a batch into chunks, accounts their AES-GCM usage, runs them on the pool (or inline), and maps
   * each chunk's results as it completes: no step touches more than one chunk at a time, so the event loop
   * stays responsive however large the batch.
   */
  async #runBatch<T>(
    op: BatchTask['op'],
    instance: string,
    idOrAlias: string,
    inputs: readonly unknown[],
    check: (input: unknown) => Uint8Array | string | EngineError,
    options: BatchOptions,
    map: (
      r: Extract<BatchItemResult, { ok: true }>,
      k: CachedKey,
      info: (v: KeyVersionRecord) => KeyVersionInfo,
    ) => T,
  ): Promise<(T | { ok: false; error: EngineError })[]> {
    options = optionsObject(options)
    const aad = validateAad(options.aad)
    const chunkSize = options.chunkSize ?? 256
    if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > 100_000)
      throw invalidField('chunkSize', 'must be an integer 1-100,000')
    const k = await this.#resolve(instance, idOrAlias, true)
    this.#assert(op, k.record)
    const latest = currentVersion(k)
    const toBatch = (v: VersionEntry): BatchVersion => ({
      number: v.version,
      ref: v.providerRef,
      header: v.header,
    })
    const versions = [...k.versions.values()].map(toBatch)
    const latestBatch = toBatch(latest)
    // One frozen KeyVersionInfo per version for the whole batch: a result object fewer (and a Date fewer)
    // per item for the garbage collector to copy, which keeps its pauses short on large batches.
    const infos = new Map<number, KeyVersionInfo>()
    const info = (v: KeyVersionRecord): KeyVersionInfo => {
      let i = infos.get(v.version)
      if (i === undefined) {
        i = Object.freeze(versionInfo(v))
        infos.set(v.version, i)
      }
      return i
    }
    const results: (T | { ok: false; error: EngineError })[] = new Array<
      T | { ok: false; error: EngineError }
    >(inputs.length)
    if (op !== 'unwrap') await this.#reserveAhead(instance, latest, inputs.length)
    const runner: BatchRunner = this.#pool ?? {
      threads: 1,
      run: async (task) => {
        await new Promise((r) => setImmediate(r)) // yield to the event loop between inline chunks
        return executeBatch(this.#provider, task)
      },
      close: async () => undefined,
    }
    let done = 0
    const total = inputs.length
    const runChunk = async (start: number): Promise<void> => {
      const end = Math.min(start + chunkSize, total)
      const items: (Uint8Array | string)[] = []
      const at: number[] = []
      for (let i = start; i < end; i++) {
        const x = check(inputs[i])
        if (x instanceof EngineError) results[i] = { ok: false, error: x }
        else {
          items.push(x)
          at.push(i)
        }
      }
      try {
        if (items.length > 0) {
          this.#checkAborted(options.signal)
          await this.#takeUsage(instance, latest, encryptionsNeeded(op, items, latest.version))
          const task: BatchTask = { op, instance, aad, versions, latest: latestBatch, items }
          let out: BatchItemResult[]
          try {
            out = await runner.run(task, options.signal)
          } catch (err) {
            if (!(err instanceof EngineError) || err.code !== 'POOL_WORKER_FAILED') throw err
            out = await runner.run(task, options.signal) // once more: the pool replaced the worker
          }
          out.forEach((r, j) => {
            results[at[j] as number] = r.ok ? map(r, k, info) : { ok: false, error: batchError(r) }
          })
        }
      } catch (err) {
        const e = toEngineError(err, `${op}Many`)
        if (e.code === 'ABORTED' || e.code === 'ENGINE_CLOSED') throw e
        for (const i of at) results[i] = { ok: false, error: e }
      }
      done += end - start
      try {
        options.onProgress?.(done, total)
      } catch {
        /* a failing progress callback does not fail the batch */
      }
    }
    const starts: number[] = []
    for (let i = 0; i < total; i += chunkSize) starts.push(i)
    const lanes = Math.max(1, runner.threads * 2)
    let next = 0
    await Promise.all(
      Array.from({ length: Math.min(lanes, starts.length) }, async () => {
        while (next < starts.length) await runChunk(starts[next++] as number)
      }),
    )
    return results
  }

  /**
   * Reserves, in one catalog transaction, the whole blocks that `n` more AES-GCM invocations of version `v`
   * will need beyond what this process holds. A batch calls it once before its first chunk: each reservation
   * is a synchronous, durable (fsync'ed) SQLite commit on the event loop (2 ms typical, 14 ms seen), and a
   * 100k rewrap used to make two of them mid-batch. At the limit it reserves what is left; the chunks then
   * fail their items past the limit as before.
   */
  async #reserveAhead(instance: string, v: VersionEntry, n: number): Promise<void> {
    const key = `${instance}\u0000${v.keyId}\u0000${v.version}`
    const missing = n - (this.#usage.get(key)?.remaining ?? 0)
    if (missing <= 0) return
    try {
      await this.#reserveUsage(instance, v, key, Math.ceil(missing / this.#usageBlock) * this.#usageBlock)
    } catch (err) {
      if (!(err instanceof EngineError) || err.code !== 'KEY_USAGE_LIMIT_ERR') throw err
    }
  }

  /** Takes `n` AES-GCM invocations of version `v` from this process's reservation (reserving more as needed). */
  async #takeUsage(instance: string, v: VersionEntry, n: number): Promise<void> {
    const key = `${instance}\u0000${v.keyId}\u0000${v.version}`
    for (;;) {
      const u = this.#usage.get(key)
      if (u !== undefined && u.remaining >= n) {
        u.remaining -= n
        u.used += n
        return
      }
      await this.#reserveUsage(instance, v, key)
    }
  }

  // ---------------------------------------------------------------- envelope encryption of data

  /**
   * Encrypts `data` into a self-describing message (docs/message-format.md): a fresh or cached DEK wrapped
   * under the key's latest version, the context bound, AES-256-GCM frames under a per-message key derived
   * from the DEK (AES-256 nonce-based derivation under an HKDF-SHA-256 derivation key), key-committed.
   * @throws EngineError as {@link wrap}, INVALID_FIELD_ERR
   * @example
   * const sealed = await engine.seal('acme', keyId, data, { context: { table: 'orders' } })
   */
  async seal(
    instance: string,
    idOrAlias: string,
    data: Uint8Array,
    options: SealOptions = {},
  ): Promise<Buffer> {
    if (this.#closed) throw new EngineError('ENGINE_CLOSED', 'seal: the engine is closed')
    let lease: DataKeyLease | undefined
    try {
      options = optionsObject(options)
      if (!(data instanceof Uint8Array)) throw invalidField('data', 'must be bytes (Uint8Array or Buffer)')
      const ctx = encodeContext(options.context)
      lease =
        this.#cachedSealMaterial(instance, idOrAlias, ctx, data.length) ??
        (await this.#sealMaterial(instance, idOrAlias, ctx, data.length, options))
      const enc = new MessageEncryptor(lease, ctx.bytes, options.frameSize)
      return enc.sealAll(
        Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      )
    } catch (err) {
      throw toEngineError(err, 'seal')
    } finally {
      lease?.release()
    }
  }

  /**
   * Decrypts a message made by {@link seal} or {@link sealStream}. The key comes from the message itself;
   * the instance must own it and the context must match.
   * @throws EngineError MESSAGE_INVALID, MESSAGE_AUTH_FAILED, MESSAGE_TOO_LARGE, CONTEXT_MISMATCH, and as {@link unwrap}
   */
  async open(instance: string, message: Uint8Array, options: OpenOptions = {}): Promise<Buffer> {
    if (this.#closed) throw new EngineError('ENGINE_CLOSED', 'open: the engine is closed')
    let dec: MessageDecryptor | undefined
    try {
      options = optionsObject(options)
      if (!(message instanceof Uint8Array))
        throw invalidField('message', 'must be bytes (Uint8Array or Buffer)')
      dec = new MessageDecryptor(openLimits(options, 1024 * 1024 * 1024))
      const out: Buffer[] = []
      dec.push(
        Buffer.isBuffer(message)
          ? message
          : Buffer.from(message.buffer, message.byteOffset, message.byteLength),
        out,
      )
      const header = dec.readHeader()
      if (header === undefined)
        throw new EngineError('MESSAGE_INVALID', 'message: is truncated (no complete header)')
      if (!this.#openHeaderCached(instance, dec, header, options))
        await this.#openHeader(instance, dec, header, options)
      dec.push(Buffer.alloc(0), out)
      dec.end()
      return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out)
    } catch (err) {
      throw toEngineError(err, 'open')
    } finally {
      dec?.destroy()
    }
  }

  /**
   * A Transform stream that seals what is written to it. Memory stays within about one frame whatever the
   * stream's length.
   * @example
   * await pipeline(fs.createReadStream('big.bin'), engine.sealStream('acme', keyId, { context }), fs.createWriteStream('big.sealed'))
   */
  sealStream(instance: string, idOrAlias: string, options: SealOptions = {}): Transform {
    let ready: Promise<{ enc: MessageEncryptor; lease: DataKeyLease }> | undefined
    let state: { enc: MessageEncryptor; lease: DataKeyLease } | undefined
    const start = (stream: Transform): Promise<{ enc: MessageEncryptor; lease: DataKeyLease }> => {
      ready ??= (async () => {
        if (this.#closed) throw new EngineError('ENGINE_CLOSED', 'sealStream: the engine is closed')
        const opts = optionsObject(options)
        const ctx = encodeContext(opts.context)
        const lease = await this.#sealMaterial(instance, idOrAlias, ctx, opts.plaintextLength, opts)
        try {
          state = { enc: new MessageEncryptor(lease, ctx.bytes, opts.frameSize), lease }
        } catch (err) {
          lease.release()
          throw err
        }
        stream.push(state.enc.header)
        return state
      })()
      return ready
    }
    const fail = (err: unknown): EngineError => toEngineError(err, 'sealStream')
    return new Transform({
      transform(chunk: Buffer, _encoding, cb) {
        start(this).then(
          ({ enc }) => {
            const out: Buffer[] = []
            enc.push(chunk, out)
            for (const b of out) this.push(b)
            cb()
          },
          (err: unknown) => {
            cb(fail(err))
          },
        )
      },
      flush(cb) {
        start(this).then(
          ({ enc, lease }) => {
            const out: Buffer[] = []
            enc.finish(out)
            lease.release()
            for (const b of out) this.push(b)
            cb()
          },
          (err: unknown) => {
            cb(fail(err))
          },
        )
      },
      destroy(err, cb) {
        state?.enc.destroy()
        state?.lease.release()
        cb(err === null ? null : fail(err))
      },
    })
  }

  /**
   * A Transform stream that opens a message written to it; it emits a frame's plaintext only after that
   * frame authenticated, and fails (typed) on truncation, reordering, tampering or a wrong context.
   */
  openStream(instance: string, options: OpenOptions = {}): Transform {
    let dec: MessageDecryptor | undefined
    let keyed: Promise<void> | undefined
    const fail = (err: unknown): EngineError => toEngineError(err, 'openStream')
    const stream: Transform = new Transform({
      transform: (chunk: Buffer, _encoding, cb) => {
        try {
          if (this.#closed) throw new EngineError('ENGINE_CLOSED', 'openStream: the engine is closed')
          const opts = optionsObject(options)
          dec ??= new MessageDecryptor(openLimits(opts, Number.POSITIVE_INFINITY))
          const d = dec
          const out: Buffer[] = []
          d.push(chunk, out)
          const header = d.readHeader()
          if (header === undefined) {
            cb()
            return
          }
          keyed ??= this.#openHeader(instance, d, header, opts)
          keyed.then(
            () => {
              d.push(Buffer.alloc(0), out)
              for (const b of out) stream.push(b)
              cb()
            },
            (err: unknown) => {
              cb(fail(err))
            },
          )
        } catch (err) {
          cb(fail(err))
        }
      },
      flush: (cb) => {
        try {
          if (dec === undefined) throw new EngineError('MESSAGE_INVALID', 'message: is empty')
          dec.end()
          cb()
        } catch (err) {
          cb(fail(err))
        }
      },
      destroy: (err, cb) => {
        dec?.destroy()
        cb(err === null ? null : fail(err))
      },
    })
    return stream
  }

  /** The DEK (fresh or cached) and its wrapped form for one message. */
  async #sealMaterial(
    instance: string,
    idOrAlias: string,
    ctx: EncodedContext,
    bytes: number | undefined,
    options: CallOptions,
  ): Promise<DataKeyLease> {
    const aad = ctx.aad
    const fresh = async (): Promise<CachedDek> => {
      const w = await this.wrap(instance, idOrAlias, { aad, signal: options.signal })
      return { dek: SecretBytes.adopt(w.plaintext as Buffer), wrapped: Buffer.from(w.ciphertext, 'base64') }
    }
    const cache = this.#dekCache
    if (cache === undefined || bytes === undefined) {
      const m = await fresh()
      return {
        ...m,
        release: () => {
          m.dek.zeroize()
        },
      }
    }
    if (!Number.isSafeInteger(bytes) || bytes < 0)
      throw invalidField('plaintextLength', 'must be a non-negative integer')
    // Resolve first: the key must exist and be usable now, even when a cached data key would do.
    const k =
      this.#cached(instance, idOrAlias, this.#clock.now()) ?? (await this.#resolve(instance, idOrAlias))
    this.#assert('wrap', k.record)
    const partition = partitionOf(k, ctx)
    return cache.acquireDataKey(instance, k.record.id, partition, bytes, fresh)
  }

  /**
   * {@link #sealMaterial} without any await, when both the key's metadata and a usable data key are cached;
   * undefined otherwise. The key's state is checked as on every seal.
   */
  #cachedSealMaterial(
    instance: string,
    idOrAlias: string,
    ctx: EncodedContext,
    bytes: number,
  ): DataKeyLease | undefined {
    const cache = this.#dekCache
    if (cache?.tryAcquireDataKey === undefined) return undefined
    const k = this.#cached(instance, idOrAlias, this.#clock.now())
    if (k === undefined) return undefined
    this.#assert('wrap', k.record)
    return cache.tryAcquireDataKey(instance, partitionOf(k, ctx), bytes)
  }

  /** Checks the context, unwraps the message's DEK (through the cache when there is one) and keys `dec`. */
  async #openHeader(
    instance: string,
    dec: MessageDecryptor,
    header: MessageHeader,
    options: OpenOptions,
  ): Promise<void> {
    const expected = expectedContext(header, options)
    const keyId = keyIdOf(header.wrapped) // parsed in full only on a cache miss
    if (keyId === undefined) throw new EngineError('MESSAGE_INVALID', 'message: the wrapped DEK is malformed')
    // Not the public unwrap: a message under an older version needs no rewrapped DEK.
    const cacheKey = messageCacheKey(header, expected)
    const opened = await this.#openDek(
      'unwrap',
      instance,
      keyId,
      header.wrapped,
      { aad: expected.aad, signal: options.signal },
      undefined,
      cacheKey,
    )
    try {
      dec.useDek(opened.dek.bytes, opened.memo)
    } finally {
      opened.dek.zeroize()
    }
  }

  /**
   * {@link #openHeader} without any await, when the key's metadata and the message's DEK are both cached:
   * true when `dec` was keyed, false when the caller must take the full path. The context and the key's
   * state are checked as on every open, and the key commitment as on every message.
   */
  #openHeaderCached(
    instance: string,
    dec: MessageDecryptor,
    header: MessageHeader,
    options: OpenOptions,
  ): boolean {
    const cache = this.#dekCache
    if (cache?.peekWith === undefined) return false
    const expected = expectedContext(header, options)
    const keyId = keyIdOf(header.wrapped)
    if (keyId === undefined) return false
    const now = this.#clock.now()
    const k = this.#cached(instance, keyId, now)
    if (k === undefined) return false
    this.#assert('unwrap', k.record, now)
    // The DEK is used in place, within this synchronous call: no copy to make and wipe.
    const keyed = cache.peekWith(instance, k.record.id, messageCacheKey(header, expected), (dek, v, memo) => {
      if (!k.versions.has(v)) return false
      dec.useDek(dek, memo)
      return true
    })
    return keyed === true
  }

  // ---------------------------------------------------------------- operations

  /**
   * Compares the provider's objects with the catalog: destroys objects of creations that never committed,
   * adopts objects of this catalog that lost their row, and reports objects it cannot place.
   */
  async reconcile(): Promise<ReconcileReport> {
    return this.#guard('reconcile', async () => {
      const now = this.#clock.now()
      const destroyed: string[] = []
      const adopted: string[] = []
      const unknown: string[] = []
      let inProgress = 0
      const pending = await this.#store.listPending()
      const pendingKey = (i: string, k: string, v: number): string => `${i}\u0000${k}\u0000${v}`
      const pendingMap = new Map(pending.map((p) => [pendingKey(p.instance, p.keyId, p.version), p]))
      const objects = (await this.#provider.listObjects()).filter(
        (o) => o.catalogId === this.#store.catalogId,
      )
      // Objects name catalog, key and version but not the instance; find the key's instance through the
      // pending rows or the catalog.
      const instanceOfKey = new Map<string, string>()
      for (const p of pending) instanceOfKey.set(p.keyId, p.instance)
      for (const o of objects) {
        const inst = instanceOfKey.get(o.keyId) ?? (await this.#store.findInstanceOfKey(o.keyId))
        if (inst === undefined) {
          unknown.push(o.ref)
          continue
        }
        const versions = await this.#store.listVersions(inst, o.keyId)
        const row = versions.find((v) => v.version === o.version)
        if (row?.providerRef === o.ref) continue
        const p = pendingMap.get(pendingKey(inst, o.keyId, o.version))
        if (p !== undefined && now - p.startedAt < this.#graceMs) {
          inProgress++
          continue
        }
        if (row !== undefined || p !== undefined) {
          // Either another writer committed this version with its own object, or the creation never
          // committed: in both cases no ciphertext can name this object.
          await this.#provider.destroyVersion(o.ref)
          destroyed.push(o.ref)
          continue
        }
        const key = await this.#store.getKey(inst, o.keyId)
        if (key === undefined) {
          unknown.push(o.ref)
          continue
        }
        await this.#store.adoptVersion({
          instance: inst,
          keyId: o.keyId,
          version: o.version,
          versionId: o.version === 1 ? o.keyId : randomUUID(),
          providerRef: o.ref,
          createdAt: now,
        })
        adopted.push(o.ref)
        this.#invalidate(inst, o.keyId)
      }
      for (const p of pending) {
        if (now - p.startedAt >= this.#graceMs)
          await this.#store.removePending(p.instance, p.keyId, p.version)
      }
      return { destroyed, adopted, unknown, inProgress }
    })
  }

  /**
   * AES-GCM usage of each root-key version: reserved in the catalog (all processes) and used by this process.
   * @throws EngineError KEY_NOT_FOUND_ERR, KEY_ROOT_REQ_ERR
   */
  async usage(
    instance: string,
    idOrAlias: string,
  ): Promise<{ limit: number; versions: { number: number; reserved: number; usedByThisProcess: number }[] }> {
    return this.#guard('usage', async () => {
      const k = await this.#resolve(instance, idOrAlias, true)
      if (k.record.extractable)
        throw new EngineError('KEY_ROOT_REQ_ERR', 'key: usage is counted for root keys')
      const versions = []
      for (const v of [...k.versions.values()].sort((a, b) => a.version - b.version)) {
        versions.push({
          number: v.version,
          reserved: await this.#store.usageReserved(instance, v.keyId, v.version),
          usedByThisProcess: this.#usage.get(`${instance}\u0000${v.keyId}\u0000${v.version}`)?.used ?? 0,
        })
      }
      return { limit: this.#usageLimit, versions }
    })
  }

  /** Provider liveness. */
  async health(): Promise<{ ok: boolean; provider: string; detail: string; store: boolean }> {
    if (this.#closed)
      return { ok: false, provider: this.#provider.name, detail: 'engine closed', store: false }
    const h = await this.#provider.health()
    let store = true
    try {
      await this.#store.ping()
    } catch {
      store = false
    }
    return {
      ok: h.ok && store,
      provider: this.#provider.name,
      detail: store ? h.detail : `${h.detail}; catalog unavailable`,
      store,
    }
  }

  /** Closes the engine (and, unless `ownsDependencies: false`, its provider and store). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#cache.clear()
    this.#aliasCache.clear()
    this.#dekCache?.close()
    await this.#pool?.close() // before the provider: workers share the process's PKCS#11 library
    if (this.#ownsDeps) {
      await this.#provider.close()
      await this.#store.close()
    }
  }

  // ---------------------------------------------------------------- names, tag pairs, scheduled deletion,
  // cross-key re-encryption and random bytes (what the AWS KMS API needs; core stays HTTP-agnostic)

  /**
   * `length` (1–1024) random bytes from the provider's RNG (the HSM's `C_GenerateRandom`, KMS `GenerateRandom`).
   * @throws EngineError INVALID_FIELD_ERR, PROVIDER_UNAVAILABLE
   */
  async generateRandom(length: number, opts: CallOptions = {}): Promise<Buffer> {
    return this.#guard('generateRandom', async () => {
      opts = optionsObject(opts)
      /* Precondition: 1..1024 bytes. */
      if (typeof length !== 'number' || !Number.isInteger(length) || length < 1 || length > 1024) {
        throw invalidField('length', 'must be an integer 1-1024')
      }
      this.#checkAborted(opts.signal)
      const r = await this.#provider.generateRandom(length, opts)
      /* Postcondition: the provider returned exactly `length` bytes. */
      if (r.length !== length) {
        r.zeroize()
        throw new EngineError('PROVIDER_ERROR', 'provider: random output has an unexpected length')
      }
      return r.release()
    })
  }

  /**
   * Creates an alias name: a path-like name (`[A-Za-z0-9/_-]`, 1–256 characters; AWS KMS `alias/...`) for a
   * key, in a namespace of its own (Key Protect aliases are separate). Any state but deleted.
   * @throws EngineError KEY_ALIAS_NOT_UNIQUE_ERR (name taken), KEY_NOT_FOUND_ERR, KEY_DELETED_ERR, INVALID_FIELD_ERR
   */
  async createAliasName(instance: string, name: string, idOrAlias: string): Promise<void> {
    return this.#guard('createAliasName', async () => {
      validateAliasName(name)
      const k = await this.#resolve(instance, idOrAlias, true)
      if (k.record.state === KeyState.DESTROYED) throw new EngineError('KEY_DELETED_ERR', 'key: is deleted')
      const ok = await this.#storeCall(() =>
        this.#store.createAliasName(instance, name, k.record.id, this.#clock.now()),
      )
      if (!ok) throw new EngineError('KEY_ALIAS_NOT_UNIQUE_ERR', `alias: "${name}" already exists`)
    })
  }

  /**
   * Points an existing alias name at another key.
   * @throws EngineError ALIAS_NOT_FOUND_ERR, KEY_NOT_FOUND_ERR, KEY_DELETED_ERR
   */
  async updateAliasName(instance: string, name: string, idOrAlias: string): Promise<void> {
    return this.#guard('updateAliasName', async () => {
      validateAliasName(name)
      const k = await this.#resolve(instance, idOrAlias, true)
      if (k.record.state === KeyState.DESTROYED) throw new EngineError('KEY_DELETED_ERR', 'key: is deleted')
      const ok = await this.#storeCall(() =>
        this.#store.updateAliasName(instance, name, k.record.id, this.#clock.now()),
      )
      if (!ok) throw new EngineError('ALIAS_NOT_FOUND_ERR', `alias: "${name}" does not exist`)
    })
  }

  /** @throws EngineError ALIAS_NOT_FOUND_ERR */
  async deleteAliasName(instance: string, name: string): Promise<void> {
    return this.#guard('deleteAliasName', async () => {
      validateInstance(instance)
      validateAliasName(name)
      const ok = await this.#storeCall(() => this.#store.deleteAliasName(instance, name))
      if (!ok) throw new EngineError('ALIAS_NOT_FOUND_ERR', `alias: "${name}" does not exist`)
    })
  }

  /**
   * The key id an alias name points at.
   * @throws EngineError ALIAS_NOT_FOUND_ERR
   */
  async resolveAliasName(instance: string, name: string): Promise<string> {
    return this.#guard('resolveAliasName', async () => {
      validateInstance(instance)
      validateAliasName(name)
      const a = await this.#store.getAliasName(instance, name)
      if (a === undefined) throw new EngineError('ALIAS_NOT_FOUND_ERR', `alias: "${name}" does not exist`)
      return a.keyId
    })
  }

  /**
   * Alias names of the instance (or of one key) in name order, `limit` (1–1000) after the name `after`.
   * @throws EngineError INVALID_FIELD_ERR, KEY_NOT_FOUND_ERR (keyId given and unknown)
   */
  async listAliasNames(
    instance: string,
    options: { keyId?: string; after?: string; limit?: number } = {},
  ): Promise<{ aliases: AliasNameInfo[]; more: boolean }> {
    return this.#guard('listAliasNames', async () => {
      validateInstance(instance)
      options = optionsObject(options)
      const limit = options.limit ?? 100
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw invalidField('limit', 'must be an integer 1-1000')
      }
      if (options.after !== undefined) validateAliasName(options.after, 'after')
      const keyId =
        options.keyId === undefined
          ? undefined
          : (await this.#resolve(instance, options.keyId, true)).record.id
      const rows = await this.#store.listAliasNames(instance, {
        keyId,
        after: options.after,
        limit: limit + 1,
      })
      return {
        aliases: rows.slice(0, limit).map((r) => ({
          name: r.name,
          keyId: r.keyId,
          createdAt: new Date(r.createdAt),
          updatedAt: new Date(r.updatedAt),
        })),
        more: rows.length > limit,
      }
    })
  }

  /**
   * Adds or replaces key/value tags of a key (at most 50 per key; keys 1–128, values 0–256 characters).
   * Separate from Key Protect's string `tags`.
   * @throws EngineError TAG_QUOTA_ERR, INVALID_FIELD_ERR, KEY_NOT_FOUND_ERR, KEY_DELETED_ERR
   */
  async tagKey(instance: string, idOrAlias: string, tags: readonly TagPair[]): Promise<void> {
    return this.#guard('tagKey', async () => {
      const pairs = validateTagPairs(tags)
      const k = await this.#resolve(instance, idOrAlias, true)
      if (k.record.state === KeyState.DESTROYED) throw new EngineError('KEY_DELETED_ERR', 'key: is deleted')
      await this.#storeCall(() => this.#store.putTagPairs(instance, k.record.id, pairs, MAX_TAG_PAIRS))
    })
  }

  /** Removes key/value tags by key (absent ones are ignored). */
  async untagKey(instance: string, idOrAlias: string, keys: readonly string[]): Promise<void> {
    return this.#guard('untagKey', async () => {
      if (!Array.isArray(keys) || keys.some((t) => typeof t !== 'string' || t.length < 1 || t.length > 128)) {
        throw invalidField('tagKeys', 'must be an array of 1-128 character strings')
      }
      const k = await this.#resolve(instance, idOrAlias, true)
      if (k.record.state === KeyState.DESTROYED) throw new EngineError('KEY_DELETED_ERR', 'key: is deleted')
      await this.#storeCall(() => this.#store.removeTagPairs(instance, k.record.id, keys))
    })
  }

  /** A key's key/value tags in key order. @throws EngineError KEY_NOT_FOUND_ERR */
  async listKeyTags(instance: string, idOrAlias: string): Promise<TagPair[]> {
    return this.#guard('listKeyTags', async () => {
      const k = await this.#resolve(instance, idOrAlias, true)
      return this.#store.listTagPairs(instance, k.record.id)
    })
  }

  /**
   * Schedules a root key's deletion `pendingWindowDays` (7–30, default 30) days from now (AWS KMS
   * `ScheduleKeyDeletion`): the key is suspended (state 2) at once, so nothing can wrap or unwrap with it,
   * and {@link enable} is refused until {@link cancelKeyDeletion}. {@link runScheduledDeletions} destroys it
   * once the date has passed.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR (not in state 1 or 2, or already scheduled), KEY_DELETED_ERR
   */
  async scheduleKeyDeletion(
    instance: string,
    idOrAlias: string,
    options: { pendingWindowDays?: number } = {},
  ): Promise<{ deletionDate: Date }> {
    return this.#guard('scheduleKeyDeletion', async () => {
      options = optionsObject(options)
      const days = options.pendingWindowDays ?? 30
      if (typeof days !== 'number' || !Number.isInteger(days) || days < 7 || days > 30) {
        throw invalidField('pendingWindowDays', 'must be an integer 7-30')
      }
      const k0 = await this.#resolve(instance, idOrAlias, true)
      return this.#withKeyLock(instance, k0.record.id, async () => {
        const r = (await this.#load(instance, k0.record.id, true)).record
        if (r.state === KeyState.DESTROYED) throw new EngineError('KEY_DELETED_ERR', 'key: is deleted')
        if (r.extractable) throw new EngineError('KEY_ROOT_REQ_ERR', 'key: is a standard key')
        if (r.state !== KeyState.ACTIVE && r.state !== KeyState.SUSPENDED) {
          throw new EngineError(
            'KEY_ACTION_INVALID_STATE_ERR',
            `key: cannot schedule deletion in state ${r.state}`,
          )
        }
        if ((await this.#store.getDeletionSchedule(instance, r.id)) !== undefined) {
          throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'key: is already pending deletion')
        }
        const now = this.#clock.now()
        const deletionDate = now + days * DAY
        const patch: KeyPatch =
          r.state === KeyState.SUSPENDED
            ? { updatedAt: now }
            : { state: KeyState.SUSPENDED, stateChangedAt: now, updatedAt: now }
        const ok = await this.#storeCall(() =>
          this.#store.scheduleDeletion(instance, r.id, r.state, patch, deletionDate),
        )
        this.#invalidate(instance, r.id)
        if (!ok) {
          throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'key: state changed concurrently', {
            retryable: true,
          })
        }
        return { deletionDate: new Date(deletionDate) }
      })
    })
  }

  /**
   * Cancels a scheduled deletion; the key stays suspended (state 2) until {@link enable}.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR (not pending deletion), KEY_NOT_FOUND_ERR
   */
  async cancelKeyDeletion(instance: string, idOrAlias: string): Promise<void> {
    return this.#guard('cancelKeyDeletion', async () => {
      const k0 = await this.#resolve(instance, idOrAlias, true)
      await this.#withKeyLock(instance, k0.record.id, async () => {
        const ok = await this.#storeCall(() => this.#store.cancelDeletion(instance, k0.record.id))
        this.#invalidate(instance, k0.record.id)
        if (!ok) throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'key: is not pending deletion')
      })
    })
  }

  /** When a key is scheduled to be deleted; undefined when it is not. @throws EngineError KEY_NOT_FOUND_ERR */
  async getKeyDeletionDate(instance: string, idOrAlias: string): Promise<Date | undefined> {
    return this.#guard('getKeyDeletionDate', async () => {
      const k = await this.#resolve(instance, idOrAlias, true)
      const s = await this.#store.getDeletionSchedule(instance, k.record.id)
      return s === undefined ? undefined : new Date(s.deletionDate)
    })
  }

  /**
   * Destroys every key whose scheduled deletion date has passed: its provider objects, then its catalog
   * rows (irreversible, like {@link purgeKey}). Run it periodically; returns what it destroyed.
   */
  async runScheduledDeletions(): Promise<{ destroyed: { instance: string; keyId: string }[] }> {
    return this.#guard('runScheduledDeletions', async () => {
      const destroyed: { instance: string; keyId: string }[] = []
      for (const due of await this.#store.listDueDeletions(this.#clock.now())) {
        await this.#withKeyLock(due.instance, due.keyId, async () => {
          const still = await this.#store.getDeletionSchedule(due.instance, due.keyId)
          if (still === undefined || still.deletionDate > this.#clock.now()) return
          const k = await this.#load(due.instance, due.keyId, true)
          for (const v of k.versions.values()) await this.#provider.destroyVersion(v.providerRef)
          await this.#storeCall(() => this.#store.deleteKeyRows(due.instance, due.keyId))
          this.#invalidate(due.instance, due.keyId)
          destroyed.push({ instance: due.instance, keyId: due.keyId })
        })
      }
      return { destroyed }
    })
  }

  /**
   * Moves a ciphertext from its key (`sourceKeyId`, or the key the ciphertext names) to the latest version
   * of `destinationKeyId`, with another AAD if asked (AWS KMS `ReEncrypt`). The source key must allow
   * unwrap, the destination wrap. With an opaque provider that can re-encrypt (AWS KMS), the DEK never
   * enters this process; otherwise it is held only inside this call and zeroed.
   * @throws EngineError as {@link unwrap} for the source, as {@link wrap} for the destination
   */
  async reencrypt(
    instance: string,
    ciphertext: string | Uint8Array,
    options: {
      sourceKeyId?: string
      sourceAad?: readonly string[]
      destinationKeyId: string
      destinationAad?: readonly string[]
    } & CallOptions,
  ): Promise<ReencryptResult> {
    return this.#guard('reencrypt', async () => {
      options = optionsObject(options)
      const parsed = parseCiphertext(ciphertext)
      const source = options.sourceKeyId ?? parsed.keyId
      if (this.#provider.reencryptOpaque !== undefined && this.#dekCache === undefined) {
        const r = await this.#rewrapInProvider(
          instance,
          source,
          options.destinationKeyId,
          parsed,
          options,
          options.sourceAad,
          options.destinationAad,
        )
        const dest = await this.#resolve(instance, options.destinationKeyId)
        return {
          ciphertext: r.ciphertext,
          sourceKeyId: parsed.keyId,
          sourceKeyVersion: r.keyVersion,
          keyId: dest.record.id,
          keyVersion: r.rewrappedKeyVersion,
        }
      }
      let dek: SecretBytes | undefined
      try {
        const opened = await this.#openDek(
          'rewrap',
          instance,
          source,
          ciphertext,
          { signal: options.signal, ...(options.sourceAad === undefined ? {} : { aad: options.sourceAad }) },
          parsed,
        )
        dek = opened.dek
        const now = this.#clock.now()
        const dest = await this.#resolve(instance, options.destinationKeyId)
        this.#assert('wrap', dest.record, now)
        const aad = validateAad(options.destinationAad)
        const latest = currentVersion(dest)
        return {
          ciphertext: await this.#wrapWith(instance, latest, dek, aad, options),
          sourceKeyId: opened.k.record.id,
          sourceKeyVersion: versionInfo(opened.from),
          keyId: dest.record.id,
          keyVersion: versionInfo(latest),
        }
      } finally {
        dek?.zeroize()
      }
    })
  }

  /** Rewrap inside an opaque provider (KMS `ReEncrypt`): from `sourceId`'s version to `destId`'s latest. */
  async #rewrapInProvider(
    instance: string,
    sourceId: string,
    destId: string,
    ciphertext: string | Uint8Array | ParsedCiphertext,
    opts: CallOptions,
    sourceAad: unknown,
    destAad: unknown = sourceAad,
  ): Promise<RewrapResult> {
    const provider = this.#provider
    if (provider.reencryptOpaque === undefined) {
      throw new EngineError('INTERNAL_ERROR', 'provider: cannot re-encrypt')
    }
    const now = this.#clock.now()
    const fromAad = validateAad(sourceAad)
    const toAad = validateAad(destAad)
    const k = this.#cached(instance, sourceId, now) ?? (await this.#resolve(instance, sourceId))
    this.#assert('rewrap', k.record, now)
    const parsed =
      typeof ciphertext === 'string' || ciphertext instanceof Uint8Array
        ? parseCiphertext(ciphertext)
        : ciphertext
    const from = versionOf(k, parsed)
    if (parsed.mechanism !== Mechanism.OPAQUE) {
      throw new EngineError('CIPHERTEXT_INVALID', 'ciphertext: was not made by this provider', {
        target: { type: 'field', name: 'ciphertext' },
      })
    }
    const dest =
      destId === sourceId
        ? k
        : (this.#cached(instance, destId, now) ?? (await this.#resolve(instance, destId)))
    this.#assert('wrap', dest.record, now)
    const latest = currentVersion(dest)
    this.#checkAborted(opts.signal)
    const blob = await provider.reencryptOpaque(
      {
        ref: from.providerRef,
        blob: parsed.encrypted,
        aad: hsmAad(from, parsed.dekLength, instance, fromAad),
      },
      { ref: latest.providerRef, aad: hsmAad(latest, parsed.dekLength, instance, toAad) },
      opts,
    )
    return {
      ciphertext: encodeOpaqueCiphertext(latest.header, parsed.dekLength, blob).toString('base64'),
      keyVersion: versionInfo(from),
      rewrappedKeyVersion: versionInfo(latest),
    }
  }

  // ---------------------------------------------------------------- internals

  /** A typed error when the key is pending deletion (enable is refused then); undefined otherwise. */
  async #pendingDeletion(instance: string, idOrAlias: string): Promise<EngineError | undefined> {
    try {
      const k = await this.#resolve(instance, idOrAlias, true)
      if ((await this.#store.getDeletionSchedule(instance, k.record.id)) === undefined) return undefined
      return new EngineError(
        'KEY_ACTION_INVALID_STATE_ERR',
        'key: is pending deletion; cancel the deletion first',
      )
    } catch {
      return undefined // the transition reports the real error
    }
  }

  async #guard<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new EngineError('ENGINE_CLOSED', `${op}: the engine is closed`)
    try {
      return await fn()
    } catch (err) {
      throw toEngineError(err, op)
    }
  }

  async #storeCall<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof EngineError) throw err
      throw new EngineError('STORE_ERROR', 'catalog: write failed', { cause: err })
    }
  }

  #checkAborted(signal: AbortSignal | undefined): void {
    if (signal?.aborted === true) throw new EngineError('ABORTED', 'operation: aborted by the caller')
  }

  #state(r: KeyRecord): KeyStateValue {
    return effectiveState(r.state, r.expirationDate, this.#clock.now())
  }

  #assert(action: KeyAction, r: KeyRecord, now: number = this.#clock.now()): void {
    assertActionAllowed(action, effectiveState(r.state, r.expirationDate, now), r.extractable)
  }

  #validateAliasList(aliases: unknown): string[] {
    if (aliases === undefined) return []
    if (!Array.isArray(aliases)) throw invalidField('aliases', 'must be an array of strings')
    if (aliases.length > this.#life.maxAliasesPerKey) {
      throw new EngineError('KEY_ALIAS_QUOTA_ERR', `aliases: at most ${this.#life.maxAliasesPerKey} per key`)
    }
    const out = aliases.map((a) => validateAlias(a, 'aliases'))
    if (new Set(out).size !== out.length) throw invalidField('aliases', 'must not repeat')
    return out
  }

  #rootMaterial(payload: unknown): SecretBytes {
    const bytes = validateBytes(payload, 'payload', 16, 32)
    if (!ROOT_MATERIAL_LENGTHS.includes(bytes.length))
      throw invalidField('payload', 'must be 16, 24 or 32 bytes (AES)')
    if (!this.#provider.capabilities.importMaterial) {
      throw new EngineError(
        'PROVIDER_UNSUPPORTED',
        `payload: provider ${this.#provider.name} cannot import key material`,
      )
    }
    return SecretBytes.copyOf(bytes)
  }

  /** Writes the pending row, creates the provider object, and returns its ref. */
  async #createProviderObject(
    instance: string,
    keyId: string,
    version: number,
    material: SecretBytes | undefined,
  ): Promise<string> {
    await this.#storeCall(() =>
      this.#store.addPending({ instance, keyId, version, startedAt: this.#clock.now() }),
    )
    try {
      return await this.#provider.createVersion({
        catalogId: this.#store.catalogId,
        keyId,
        version,
        material,
      })
    } catch (err) {
      await this.#store.removePending(instance, keyId, version).catch(() => undefined)
      throw err
    }
  }

  async #discardProviderObject(instance: string, keyId: string, version: number, ref: string): Promise<void> {
    // Best effort: if this fails, the pending row stays and reconcile() destroys the object later.
    try {
      await this.#provider.destroyVersion(ref)
      await this.#store.removePending(instance, keyId, version)
    } catch {
      /* left for reconciliation */
    }
  }

  async #createRootKey(
    record: KeyRecord,
    material: SecretBytes | undefined,
    aliases: readonly string[],
    policies: readonly KeyPolicyRecord[] = [],
  ): Promise<void> {
    const ref = await this.#createProviderObject(record.instance, record.id, 1, material)
    const v: KeyVersionRecord = {
      instance: record.instance,
      keyId: record.id,
      version: 1,
      versionId: record.id,
      providerRef: ref,
      createdAt: record.createdAt,
    }
    try {
      await this.#storeCall(() => this.#store.insertKey(record, v, aliases, policies))
    } catch (err) {
      await this.#discardProviderObject(record.instance, record.id, 1, ref)
      throw err
    }
  }

  async #createStandardKey(
    base: KeyRecord,
    payload: Uint8Array | undefined,
    aliases: readonly string[],
  ): Promise<void> {
    const instance = base.instance
    const secret =
      payload === undefined
        ? await this.#provider.generateRandom(GENERATED_DEK_BYTES)
        : SecretBytes.copyOf(validateBytes(payload, 'payload', MIN_DEK_BYTES, MAX_DEK_BYTES))
    try {
      const sys = await this.#systemKey(instance)
      const sysCached = await this.#load(instance, sys.id, true)
      const wrapped = await this.#wrapWith(
        instance,
        currentVersion(sysCached),
        secret,
        ['standard-key', base.id],
        {},
      )
      const record: KeyRecord = {
        ...base,
        extractable: true,
        imported: payload !== undefined,
        wrappedPayload: Buffer.from(wrapped, 'base64'),
      }
      const v: KeyVersionRecord = {
        instance,
        keyId: base.id,
        version: 1,
        versionId: base.id,
        providerRef: '',
        createdAt: base.createdAt,
      }
      await this.#storeCall(() => this.#store.insertKey(record, v, aliases))
    } finally {
      secret.zeroize()
    }
  }

  /** The instance's hidden root key that protects standard-key payloads; created on first use. */
  async #systemKey(instance: string): Promise<KeyRecord> {
    const existing = await this.#store.getSystemKey(instance)
    if (existing !== undefined) return existing
    const inflight = this.#systemKeyInflight.get(instance)
    if (inflight !== undefined) return inflight
    const p = (async () => {
      const now = this.#clock.now()
      const record = newKeyRecord(instance, randomUUID(), 'system:standard-key-protection', now, {
        description: 'Protects the payloads of standard keys in this instance',
        internal: true,
      })
      await this.#createRootKey(record, undefined, [])
      return record
    })()
    this.#systemKeyInflight.set(instance, p)
    try {
      return await p
    } finally {
      this.#systemKeyInflight.delete(instance)
    }
  }

  async #unwrapInternal(
    instance: string,
    wrapped: Buffer,
    aad: readonly string[],
    opts: CallOptions,
  ): Promise<SecretBytes> {
    const parsed = parseCiphertext(wrapped)
    const k = await this.#load(instance, parsed.keyId, true)
    return this.#unwrapWith(instance, versionOf(k, parsed), parsed, aad, opts)
  }

  /** Encrypts `dek` under version `v` in the HSM and encodes ciphertext v1 (no async frame of its own). */
  #wrapWith(
    instance: string,
    v: VersionEntry,
    dek: SecretBytes,
    aad: readonly string[],
    opts: CallOptions,
  ): Promise<string> {
    this.#checkAborted(opts.signal)
    const len = dek.length
    const p = this.#provider
    if (this.#mechanism === Mechanism.OPAQUE && p.encryptOpaque !== undefined) {
      // KMS providers bound their own usage; the GCM invocation limit applies to 0x01 only.
      return p
        .encryptOpaque(v.providerRef, dek, hsmAad(v, len, instance, aad), opts)
        .then((blob) => encodeOpaqueCiphertext(v.header, len, blob).toString('base64'))
    }
    return this.#encrypt(instance, v, dek, hsmAad(v, len, instance, aad), opts).then((sealed) =>
      encodeSealed(v, len, sealed),
    )
  }

  /**
   * Every AES-GCM encryption under a root-key version goes through here: it counts the invocation against
   * the version's limit (NIST SP 800-38D §8.3: 2^32 with random 96-bit IVs). Invocations are reserved from
   * the catalog in blocks, so that processes sharing the catalog never exceed the limit together.
   */
  #encrypt(
    instance: string,
    v: VersionEntry,
    dek: SecretBytes,
    aad: Buffer,
    opts: CallOptions = {},
  ): Promise<GcmSealed> {
    const key = `${instance}\u0000${v.keyId}\u0000${v.version}`
    const u = this.#usage.get(key)
    if (u !== undefined && u.remaining > 0) {
      u.remaining--
      u.used++
      return this.#provider.encrypt(v.providerRef, dek, aad, opts)
    }
    return this.#reserveUsage(instance, v, key).then(() => this.#encrypt(instance, v, dek, aad, opts))
  }

  #reserveUsage(instance: string, v: VersionEntry, key: string, block = this.#usageBlock): Promise<void> {
    const inflight = this.#usageInflight.get(key)
    if (inflight !== undefined) return inflight
    const p = (async () => {
      const granted = await this.#storeCall(() =>
        this.#store.reserveUsage(instance, v.keyId, v.version, block, this.#usageLimit),
      )
      if (granted === 0) {
        throw new EngineError(
          'KEY_USAGE_LIMIT_ERR',
          `key: version ${v.version} reached its limit of ${this.#usageLimit} AES-GCM operations; rotate the key`,
        )
      }
      const u = this.#usage.get(key) ?? { remaining: 0, used: 0 }
      u.remaining += granted
      this.#usage.set(key, u)
    })()
    this.#usageInflight.set(key, p)
    p.then(
      () => this.#usageInflight.delete(key),
      () => this.#usageInflight.delete(key),
    )
    return p
  }

  /** Decrypts a parsed ciphertext of version `v` in the HSM (no async frame of its own). */
  #unwrapWith(
    instance: string,
    v: VersionEntry,
    parsed: ParsedCiphertext,
    aad: readonly string[],
    opts: CallOptions,
  ): Promise<SecretBytes> {
    this.#checkAborted(opts.signal)
    /* Precondition: the ciphertext was written by a provider of this engine's kind. */
    if (parsed.mechanism !== this.#mechanism) {
      throw new EngineError(
        'CIPHERTEXT_INVALID',
        `ciphertext: mechanism ${parsed.mechanism} is not the one of provider ${this.#provider.name}`,
        { target: { type: 'field', name: 'ciphertext' } },
      )
    }
    const sealedAad = hsmAad(v, parsed.dekLength, instance, aad)
    const p = this.#provider
    if (parsed.mechanism === Mechanism.OPAQUE && p.decryptOpaque !== undefined) {
      return p
        .decryptOpaque(v.providerRef, parsed.encrypted, sealedAad, opts)
        .then((dek) => checkDek(dek, parsed))
    }
    return p.decrypt(v.providerRef, parsed, sealedAad, opts).then((dek) => checkDek(dek, parsed))
  }

  /**
   * Checks that `payload` is the material of the key's current version: the HSM encrypts a probe under
   * its copy, and the probe must authenticate under `payload` in process. No material leaves the HSM.
   */
  async #checkMaterialMatches(k: CachedKey, payload: Uint8Array): Promise<void> {
    const material = this.#rootMaterial(payload)
    const probe = SecretBytes.adopt(Buffer.alloc(16))
    try {
      const aad = Buffer.from('envelope-kms/material-check/v1', 'ascii')
      const sealed = await this.#encrypt(k.record.instance, currentVersion(k), probe, aad)
      const alg = `aes-${material.length * 8}-gcm` as 'aes-256-gcm'
      const d = createDecipheriv(alg, material.bytes, sealed.iv, { authTagLength: 16 })
      d.setAAD(aad)
      d.setAuthTag(sealed.tag)
      d.update(sealed.encrypted)
      try {
        d.final()
      } catch {
        throw invalidField('payload', 'does not match the key material of this key')
      }
    } finally {
      material.zeroize()
      probe.zeroize()
    }
  }

  async #transition(
    instance: string,
    idOrAlias: string,
    action: KeyAction,
    patchFor: (r: KeyRecord, now: number, k: CachedKey) => KeyPatch,
  ): Promise<KeyInfo> {
    return this.#guard(action, async () => {
      const k0 = await this.#resolve(instance, idOrAlias, true)
      return this.#withKeyLock(instance, k0.record.id, async () => {
        const k = await this.#load(instance, k0.record.id, true)
        const r = k.record
        this.#assert(action, r)
        const now = this.#clock.now()
        const patch = patchFor(r, now, k)
        const ok = await this.#storeCall(() => this.#store.updateKey(instance, r.id, r.state, patch))
        this.#invalidate(instance, r.id)
        if (!ok) {
          throw new EngineError(
            'KEY_ACTION_INVALID_STATE_ERR',
            `key: state changed concurrently; ${action} not applied`,
            {
              retryable: true,
            },
          )
        }
        return this.#info(await this.#load(instance, r.id, true))
      })
    })
  }

  async #withKeyLock<T>(instance: string, keyId: string, fn: () => Promise<T>): Promise<T> {
    const lockKey = `${instance}\u0000${keyId}`
    const prev = this.#locks.get(lockKey) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => undefined)
    this.#locks.set(lockKey, tail)
    try {
      return await run
    } finally {
      if (this.#locks.get(lockKey) === tail) this.#locks.delete(lockKey)
    }
  }

  #invalidate(instance: string, keyId: string): void {
    this.#cache.delete(`${instance}\u0000${keyId}`)
    this.#aliasCache.clear()
    this.#dekCache?.invalidateKey(instance, keyId)
  }

  #syncWithStore(now: number = this.#clock.now()): void {
    if (this.#store.changeCounter === undefined) return
    if (this.#pollMs > 0 && now - this.#lastPoll < this.#pollMs) return
    this.#lastPoll = now
    const c = this.#store.changeCounter()
    if (c !== this.#lastChange) {
      this.#lastChange = c
      this.#cache.clear()
      this.#aliasCache.clear()
    }
  }

  /**
   * The cached key for a UUID reference, without any await; undefined when it must be loaded (or the
   * reference is an alias, or invalid: {@link resolve} then reports why).
   */
  #cached(instance: string, idOrAlias: string, now: number): CachedKey | undefined {
    // A hit proves the instance string was validated when the entry was filled; only its type is checked.
    if (typeof instance !== 'string' || typeof idOrAlias !== 'string') return undefined
    // Entries are keyed by lower-case key ids only, and an alias is never a UUID: a key present as given
    // needs no pattern check.
    let key = `${instance}\u0000${idOrAlias}`
    if (!this.#cache.has(key) && !LOWER_UUID_RE.test(idOrAlias)) {
      if (!isUuid(idOrAlias)) return undefined
      key = `${instance}\u0000${idOrAlias.toLowerCase()}`
    }
    this.#syncWithStore(now)
    const hit = this.#cache.get(key)
    if (hit === undefined || hit.expires <= now || hit.record.internal) return undefined
    return hit
  }

  /** Resolves a key id or alias within the instance; internal keys are invisible. */
  async #resolve(instance: string, idOrAlias: string, fresh = false): Promise<CachedKey> {
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
        id = await this.#store.getKeyIdByAlias(instance, idOrAlias)
        if (id !== undefined && this.#ttl > 0)
          this.#aliasCache.set(ak, { id, expires: this.#clock.now() + this.#ttl })
      }
      if (id === undefined) throw new EngineError('KEY_NOT_FOUND_ERR', 'key: not found')
    }
    const k = await this.#load(instance, id, fresh)
    if (k.record.internal) throw new EngineError('KEY_NOT_FOUND_ERR', 'key: not found')
    return k
  }

  async #load(instance: string, id: string, fresh = false): Promise<CachedKey> {
    this.#syncWithStore()
    const ck = `${instance}\u0000${id}`
    const now = this.#clock.now()
    if (!fresh) {
      const hit = this.#cache.get(ck)
      if (hit !== undefined && hit.expires > now) return hit
    }
    const record = await this.#store.getKey(instance, id)
    if (record === undefined) {
      this.#cache.delete(ck)
      throw new EngineError('KEY_NOT_FOUND_ERR', 'key: not found')
    }
    const versions = new Map<number, VersionEntry>()
    if (!record.extractable) {
      for (const v of await this.#store.listVersions(instance, id)) {
        const header = encodeHeader(this.#mechanism, id, v.version)
        versions.set(v.version, { ...v, header, aadPrefix32: hsmAadPrefix(header, 32, instance) })
      }
    } else {
      versions.set(1, {
        instance,
        keyId: id,
        version: 1,
        versionId: id,
        providerRef: '',
        createdAt: record.createdAt,
        header: encodeHeader(Mechanism.AES_GCM, id, 1),
        aadPrefix32: hsmAadPrefix(encodeHeader(Mechanism.AES_GCM, id, 1), 32, instance),
      })
    }
    const aliases = await this.#store.listAliases(instance, id)
    const policies = record.extractable ? [] : await this.#store.listKeyPolicies(instance, id)
    const entry: CachedKey = { record, versions, aliases, policies, expires: now + this.#ttl }
    if (this.#ttl > 0) this.#cache.set(ck, entry)
    return entry
  }

  #info(k: CachedKey): KeyInfo {
    const r = k.record
    const rotation = k.policies.find((p) => p.type === 'rotation')
    const v = currentVersion(k)
    const deleted = r.state === KeyState.DESTROYED
    const now = this.#clock.now()
    const deletedAt = deleted ? (r.deletedAt ?? r.stateChangedAt) : undefined
    const date = (t: number | undefined): Date | undefined => (t === undefined ? undefined : new Date(t))
    return {
      id: r.id,
      instance: r.instance,
      name: r.name,
      description: r.description,
      extractable: r.extractable,
      imported: r.imported,
      state: this.#state(r),
      keyRingId: r.keyRingId,
      aliases: k.aliases,
      tags: r.tags,
      createdAt: new Date(r.createdAt),
      createdBy: r.createdBy,
      updatedAt: new Date(r.updatedAt),
      lastRotatedAt: date(r.lastRotatedAt),
      expirationDate: date(r.expirationDate),
      keyVersion: versionInfo(v),
      deleted,
      deletedAt: date(deletedAt),
      deletedBy: r.deletedBy,
      restoreAllowed:
        deletedAt !== undefined &&
        now - deletedAt >= this.#life.restoreNotBeforeMs &&
        now - deletedAt <= this.#life.restoreWindowMs,
      restoreExpirationDate: date(
        deletedAt === undefined ? undefined : deletedAt + this.#life.restoreWindowMs,
      ),
      purgeAllowed: deletedAt !== undefined && now - deletedAt >= this.#life.purgeNotBeforeMs,
      purgeAllowedFrom: date(deletedAt === undefined ? undefined : deletedAt + this.#life.purgeNotBeforeMs),
      purgeScheduledOn: date(
        deletedAt === undefined ? undefined : deletedAt + this.#life.purgeScheduledAfterMs,
      ),
      rotation:
        rotation === undefined
          ? undefined
          : { enabled: rotation.enabled, intervalMonth: rotation.intervalMonth },
      dualAuthDelete: dualAuthInfo(k, now, this.#life.dualAuthWindowMs),
    }
  }
}

function currentVersion(k: CachedKey): VersionEntry {
  const v = k.versions.get(k.record.currentVersion)
  if (v === undefined) throw new EngineError('INTERNAL_ERROR', 'key: current version row is missing')
  return v
}

function versionOf(k: CachedKey, parsed: ParsedCiphertext): VersionEntry {
  if (!sameKeyId(parsed, currentVersion(k).header)) {
    throw new EngineError('CIPHERTEXT_INVALID', 'ciphertext: was not wrapped by this key', {
      target: { type: 'field', name: 'ciphertext' },
    })
  }
  const v = k.versions.get(parsed.keyVersion)
  if (v === undefined) {
    throw new EngineError(
      'KEY_VERSION_NOT_FOUND',
      `ciphertext: names key version ${parsed.keyVersion}, which this key does not have`,
      {
        target: { type: 'field', name: 'ciphertext' },
      },
    )
  }
  return v
}

/** The HSM AAD for a DEK of `dekLength` bytes under version `v`, using the cached prefix when it fits. */
function hsmAad(v: VersionEntry, dekLength: number, instance: string, aad: readonly string[]): Buffer {
  return appendAad(dekLength === 32 ? v.aadPrefix32 : hsmAadPrefix(v.header, dekLength, instance), aad)
}

function arrayOf<T>(items: readonly T[]): readonly T[] {
  const value: unknown = items
  if (!Array.isArray(value)) throw invalidField('ciphertexts', 'must be an array')
  return items
}

/** A batch ciphertext as the task takes it: base64 strings are decoded (strictly) where the batch runs. */
function ciphertextItem(c: unknown): Uint8Array | string | EngineError {
  if (c instanceof Uint8Array || typeof c === 'string') return c
  return new EngineError('CIPHERTEXT_INVALID', 'ciphertext: must be a base64 string or bytes', {
    target: { type: 'field', name: 'ciphertext' },
  })
}

/** The key version a ciphertext names (bytes 18..21), read without parsing the rest; NaN if unreadable. */
function versionNamed(item: Uint8Array | string): number {
  if (typeof item === 'string') {
    const head = Buffer.from(item.slice(24, 32), 'base64') // base64 chars 24..31 are bytes 18..23
    return head.length >= 4 ? head.readUInt32BE(0) : Number.NaN
  }
  return item.byteLength >= 22
    ? Buffer.from(item.buffer, item.byteOffset, item.byteLength).readUInt32BE(18)
    : Number.NaN
}

/** AES-GCM encryptions a batch chunk will make: every item, except unwraps already at the latest version. */
function encryptionsNeeded(
  op: BatchTask['op'],
  items: readonly (Uint8Array | string)[],
  latest: number,
): number {
  if (op !== 'unwrap') return items.length
  let n = 0
  for (const item of items) if (versionNamed(item) !== latest) n++
  return n
}

function batchError(r: { code: string; message: string }): EngineError {
  const code = (ERROR_CODES as readonly string[]).includes(r.code) ? (r.code as ErrorCode) : 'INTERNAL_ERROR'
  return new EngineError(code, r.message)
}

/** The DEK cache key of a ciphertext (base64) and its AAD; the cache adds the instance and key. */
function cacheKeyOf(ciphertext: string, aad: readonly string[]): string {
  return aad.length === 0 ? ciphertext : `${ciphertext}\u0000${JSON.stringify(aad)}`
}

/** Open bounds from options, validated. */
function openLimits(o: OpenOptions, defaultMaxBody: number): OpenLimits {
  const num = (v: unknown, name: string, dflt: number): number => {
    if (v === undefined) return dflt
    if (typeof v !== 'number' || !(v >= 0)) throw invalidField(name, 'must be a non-negative number')
    return v
  }
  return {
    maxBodySize: num(o.maxBodySize, 'maxBodySize', defaultMaxBody),
    maxHeaderBytes: num(o.maxHeaderBytes, 'maxHeaderBytes', 64 * 1024),
    maxFrameSize: num(o.maxFrameSize, 'maxFrameSize', 16 * 1024 * 1024),
  }
}

/** Serialises a provider's GCM output as ciphertext v1, after checking its shape. */
function encodeSealed(v: VersionEntry, dekLength: number, sealed: GcmSealed): string {
  /* Postcondition: GCM output is as long as the input, with a 16-byte tag and a 12-byte IV. */
  if (sealed.encrypted.length !== dekLength || sealed.tag.length !== 16 || sealed.iv.length !== 12) {
    throw new EngineError('PROVIDER_ERROR', 'provider: AES-GCM output has an unexpected shape')
  }
  return encodeGcmCiphertext(v.header, sealed.iv, sealed.encrypted, sealed.tag).toString('base64')
}

/** Postcondition of a decryption: the DEK is as long as its encryption. */
function checkDek(dek: SecretBytes, parsed: ParsedCiphertext): SecretBytes {
  if (dek.length !== parsed.dekLength) {
    dek.zeroize()
    throw new EngineError('PROVIDER_ERROR', 'provider: decryption output has an unexpected length')
  }
  return dek
}

/** The data-key cache partition of a seal: key, latest version and canonical context. */
function partitionOf(k: CachedKey, ctx: EncodedContext): string {
  return `${k.record.id}\u0000${currentVersion(k).version}\u0000${ctx.key}`
}

/**
 * The caller's context, which must equal the message's (checked before any HSM call).
 * @throws EngineError CONTEXT_MISMATCH, INVALID_FIELD_ERR
 */
function expectedContext(header: MessageHeader, options: OpenOptions): EncodedContext {
  const expected = encodeContext(options.context)
  if (!expected.bytes.equals(header.context)) {
    throw new EngineError(
      'CONTEXT_MISMATCH',
      'context: differs from the context the message was sealed with',
      {
        target: { type: 'field', name: 'context' },
      },
    )
  }
  return expected
}

/**
 * DEK-cache key of a message: wrapped DEK and canonical context, both length-delimited ('m:' never starts a
 * base64 key of the unwrap API). `expected` has the header's context bytes (checked by expectedContext).
 */
function messageCacheKey(header: MessageHeader, expected: EncodedContext): string {
  return `m:${header.wrapped.toString('latin1')}\u0000${expected.key}`
}

/** A DEK from a batch result as a Buffer (it usually is one already: no second view). */
function asBuffer(p: Uint8Array | undefined): Buffer {
  if (p === undefined) return Buffer.alloc(0)
  return Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength)
}

function versionInfo(v: KeyVersionRecord): KeyVersionInfo {
  return { id: v.versionId, number: v.version, createdAt: new Date(v.createdAt) }
}

/**
 * Creates an engine over a provider and a store, and reconciles the provider's objects with the catalog.
 * @throws EngineError PROVIDER_UNAVAILABLE, STORE_ERROR
 * @example
 * const engine = await createEngine({ provider, store })
 */
export async function createEngine(options: EngineOptions): Promise<EnvelopeEngine> {
  const engine = new EnvelopeEngine(options)
  if (options.reconcileOnStart ?? true) await engine.reconcile()
  return engine
}

const KEY_STATES_ALL: readonly KeyStateValue[] = [0, 1, 2, 3, 5]

function optionalString<T>(v: unknown, field: string, parse: (s: string) => T): T | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw invalidField(field, 'must be a string')
  return parse(v)
}

function policyInfo(p: KeyPolicyRecord): KeyPolicyInfo {
  return {
    type: p.type,
    id: p.policyId,
    enabled: p.enabled,
    intervalMonth: p.intervalMonth,
    createdAt: new Date(p.createdAt),
    createdBy: p.createdBy,
    updatedAt: new Date(p.updatedAt),
    updatedBy: p.updatedBy,
  }
}

/**
 * The dual-authorization state of a key. An authorisation counts only until it expires and only if it was
 * given after the key's last state change: one given before a delete (or a disable) never carries over to
 * the restored (or re-enabled) key, even if clearing it after the delete did not happen.
 */
function dualAuthInfo(k: CachedKey, now: number, windowMs: number): KeyInfo['dualAuthDelete'] {
  const p = k.policies.find((x) => x.type === 'dualAuthDelete')
  if (p?.enabled !== true) return { enabled: false, keySetForDeletion: undefined, authExpiration: undefined }
  const valid =
    p.authBy !== undefined &&
    p.authExpiresAt !== undefined &&
    p.authExpiresAt > now &&
    p.authExpiresAt - windowMs >= k.record.stateChangedAt
  return {
    enabled: true,
    keySetForDeletion: valid,
    authExpiration: valid && p.authExpiresAt !== undefined ? new Date(p.authExpiresAt) : undefined,
  }
}

/** Key/value tags per key (AWS KMS: 50). */
const MAX_TAG_PAIRS = 50
const ALIAS_NAME_RE = /^[A-Za-z0-9/_-]{1,256}$/
const TAG_CONTROL_RE = /[\u0000-\u001f\u007f]/

/** An alias name: 1–256 characters `[A-Za-z0-9/_-]`. */
function validateAliasName(name: unknown, field = 'aliasName'): string {
  if (typeof name !== 'string' || !ALIAS_NAME_RE.test(name)) {
    throw invalidField(field, 'must be 1-256 characters [A-Za-z0-9/_-]')
  }
  return name
}

/** Key/value tags: keys 1–128, values 0–256 printable characters, keys unique, at most 50. */
function validateTagPairs(tags: unknown): TagPair[] {
  if (!Array.isArray(tags) || tags.length > MAX_TAG_PAIRS) {
    throw invalidField('tags', `must be an array of at most ${MAX_TAG_PAIRS} {key, value}`)
  }
  const seen = new Set<string>()
  return tags.map((t: unknown) => {
    const o = t as { key?: unknown; value?: unknown } | null
    if (typeof o !== 'object' || o === null || typeof o.key !== 'string' || typeof o.value !== 'string') {
      throw invalidField('tags', 'each tag must be {key: string, value: string}')
    }
    if (o.key.length < 1 || o.key.length > 128 || TAG_CONTROL_RE.test(o.key)) {
      throw invalidField('tags', 'a tag key must be 1-128 printable characters')
    }
    if (o.value.length > 256 || TAG_CONTROL_RE.test(o.value)) {
      throw invalidField('tags', 'a tag value must be at most 256 printable characters')
    }
    if (seen.has(o.key)) throw invalidField('tags', `key "${o.key}" repeats`)
    seen.add(o.key)
    return { key: o.key, value: o.value }
  })
}
