/**
 * What core needs from the outside: a root-key provider, a metadata store (as role interfaces), a DEK cache,
 * a batch runner and a clock. Providers, stores, the cache and the pool implement these; core never imports
 * a concrete one. Over 500 lines because it is the whole contract, each member with its TSDoc: one file to
 * read before writing a provider or a store.
 */
import type { KeyStateValue } from './key-state.js'
import type { SecretBytes } from './secret-bytes.js'
import type {
  ImportTokenStore,
  InstancePolicyStore,
  KeyEventLog,
  RegistrationStore,
} from './ports-services.js'

export type * from './ports-services.js'

/** Per-call options every provider honours. */
export interface CallOptions {
  readonly signal?: AbortSignal | undefined
}

/** Options of the calls that return secret bytes. */
export interface OutputOptions extends CallOptions {
  /**
   * Zero-filled memory outside V8's heap that the provider writes the secret into when it can (decrypt: at
   * least the encrypted length + 16 bytes; generateRandom: `length` bytes); the SecretBytes returned is then
   * a view of it. A provider that cannot returns memory of its own. Batches pass regions of a
   * `SecretSlab` (secret-bytes.ts).
   */
  readonly output?: Buffer | undefined
}

/** What a provider can do; the engine checks these before calling it. */
export interface ProviderCapabilities {
  /** Root keys can be created from caller-supplied material. */
  readonly importMaterial: boolean
  /** Accepted lengths of imported material, in bytes. */
  readonly importLengths: readonly number[]
  /**
   * The shape of the provider's ciphertexts. `gcm` (the default when absent): {@link RootKeyProvider.encrypt}
   * returns AES-GCM parts, stored as ciphertext mechanism 0x01. `opaque`: the provider returns its own blob
   * ({@link RootKeyProvider.encryptOpaque}, e.g. an AWS KMS `CiphertextBlob`), stored as mechanism 0x10;
   * its GCM methods refuse with PROVIDER_UNSUPPORTED.
   */
  readonly ciphertext?: 'gcm' | 'opaque'
  /**
   * Import tokens (Key Protect secure import): the `encryptionAlgorithm`s the provider can unwrap inside the
   * device. Absent or empty: no import tokens (PROVIDER_UNSUPPORTED); the provider then has none of
   * {@link RootKeyProvider.createImportKeyPair}, `destroyImportKeyPair`, `matchesSealedMaterial`.
   */
  readonly importTokens?: readonly ImportAlgorithm[]
}

/** RSA-OAEP variants of a secure import: SHA-256 or SHA-1, each with MGF1 of the same hash and no label. */
export type ImportAlgorithm = 'RSAES_OAEP_SHA_256' | 'RSAES_OAEP_SHA_1'

/**
 * Root-key material RSA-OAEP-encrypted under an import token's public key, with the token's nonce AES-GCM
 * encrypted under that material (spec digest §4.5). The provider unwraps it inside the device: the material
 * never reaches this process.
 */
export interface SealedMaterial {
  /** The provider ref of the import token's key pair. */
  readonly tokenRef: string
  readonly algorithm: ImportAlgorithm
  readonly encryptedMaterial: Buffer
  /** AES-GCM of the nonce under the material: ciphertext followed by the 16-byte tag. */
  readonly encryptedNonce: Buffer
  /** The 12-byte GCM IV of `encryptedNonce`. */
  readonly iv: Buffer
  /** The nonce the import token issued; the decrypted `encryptedNonce` must equal it. */
  readonly nonce: Buffer
}

/** The three parts of an AES-GCM encryption. */
export interface GcmSealed {
  readonly iv: Buffer
  readonly encrypted: Buffer
  readonly tag: Buffer
}

/** A root-key version object the provider holds, as found by {@link RootKeyProvider.listObjects}. */
export interface ProviderObject {
  readonly ref: string
  readonly catalogId: string
  readonly keyId: string
  readonly version: number
}

/** A request to create one root-key version in the provider. */
export interface CreateVersionRequest {
  /** The catalog the version belongs to; providers record it so orphans can be told apart per catalog. */
  readonly catalogId: string
  readonly keyId: string
  readonly version: number
  /** Imported material (AES key bytes). Absent: the provider generates the key inside the HSM/KMS. */
  readonly material?: SecretBytes | undefined
  /**
   * Securely imported material (instead of `material`): unwrapped inside the device, the nonce proven there.
   * @throws EngineError INVALID_FIELD_ERR (payload or encryptedNonce), PROVIDER_UNSUPPORTED
   */
  readonly sealed?: SealedMaterial | undefined
}

/**
 * A place where root keys live (an HSM through PKCS#11, a KMS). Root key material never leaves it:
 * the engine only ever holds an opaque `ref` per key version.
 */
export interface RootKeyProvider {
  /** For example `pkcs11:softhsm2`. */
  readonly name: string
  readonly capabilities: ProviderCapabilities
  /**
   * Creates one root-key version and returns its opaque reference (persisted in the catalog).
   * @throws EngineError PROVIDER_UNAVAILABLE, PROVIDER_ERROR, PROVIDER_UNSUPPORTED, INVALID_FIELD_ERR
   */
  createVersion(req: CreateVersionRequest, opts?: CallOptions): Promise<string>
  /**
   * Destroys a root-key version. Destroying one that no longer exists succeeds (a purge finished after a
   * crash destroys again what it had destroyed).
   */
  destroyVersion(ref: string, opts?: CallOptions): Promise<void>
  /**
   * AES-GCM encryption of `plaintext` under the root-key version `ref` with `aad`; the IV comes from the
   * provider (its RNG or the device itself).
   * @throws EngineError KEY_VERSION_MATERIAL_MISSING (the provider answers and has no such object; not retryable), PROVIDER_UNAVAILABLE, PROVIDER_ERROR
   */
  encrypt(ref: string, plaintext: SecretBytes, aad: Buffer, opts?: CallOptions): Promise<GcmSealed>
  /**
   * AES-GCM decryption; fails with UNWRAP_AAD_MISMATCH when authentication fails.
   * @throws EngineError UNWRAP_AAD_MISMATCH, KEY_VERSION_NOT_FOUND, KEY_VERSION_MATERIAL_MISSING, PROVIDER_UNAVAILABLE, PROVIDER_ERROR
   */
  decrypt(ref: string, sealed: GcmSealed, aad: Buffer, opts?: OutputOptions): Promise<SecretBytes>
  /**
   * Opaque providers only: encrypts `plaintext` under `ref`, binding `aad`, and returns the provider's blob.
   * @throws EngineError PROVIDER_UNAVAILABLE, PROVIDER_ERROR, KEY_ACTION_INVALID_STATE_ERR, PROVIDER_ACCESS_DENIED
   */
  encryptOpaque?(ref: string, plaintext: SecretBytes, aad: Buffer, opts?: CallOptions): Promise<Buffer>
  /**
   * Opaque providers only: decrypts a blob of {@link encryptOpaque}; fails with UNWRAP_AAD_MISMATCH when it
   * does not authenticate under `ref` with `aad` (another AAD, an altered blob, another key).
   */
  decryptOpaque?(ref: string, blob: Buffer, aad: Buffer, opts?: CallOptions): Promise<SecretBytes>
  /**
   * Opaque providers that can re-encrypt inside the backend (AWS KMS `ReEncrypt`): the plaintext never
   * reaches this process. Fails as {@link decryptOpaque} for the source.
   */
  reencryptOpaque?(
    from: { readonly ref: string; readonly blob: Buffer; readonly aad: Buffer },
    to: { readonly ref: string; readonly aad: Buffer },
    opts?: CallOptions,
  ): Promise<Buffer>
  /**
   * Import tokens: generates an RSA-2048 key pair in the device (the private key a sensitive, non-extractable
   * token object for RSA-OAEP decrypt/unwrap only) and returns its ref and the public key (SPKI PEM).
   */
  createImportKeyPair?(
    req: { readonly catalogId: string; readonly createdAt: number },
    opts?: CallOptions,
  ): Promise<{ ref: string; publicKeyPem: string }>
  /** Destroys an import token's key pair. Destroying one that no longer exists succeeds. */
  destroyImportKeyPair?(ref: string, opts?: CallOptions): Promise<void>
  /**
   * Every import-token key pair the provider holds, with the catalog and time given at creation: pairs no
   * token row refers to (a crash between the pair and its row) are swept by `expireImportTokens`.
   */
  listImportKeyPairs?(
    opts?: CallOptions,
  ): Promise<{ readonly ref: string; readonly catalogId: string; readonly createdAt: number }[]>
  /**
   * True when `sealed` (unwrapped into a temporary device object, its nonce proven) is the material of the
   * root-key version `ref` (restore of an imported key). The temporary object is destroyed.
   * @throws EngineError INVALID_FIELD_ERR (payload or encryptedNonce)
   */
  matchesSealedMaterial?(ref: string, sealed: SealedMaterial, opts?: CallOptions): Promise<boolean>
  /** `length` random bytes from the provider's RNG (DEK generation). */
  generateRandom(length: number, opts?: OutputOptions): Promise<SecretBytes>
  /** Every root-key version object this provider holds that carries the engine's naming scheme. */
  listObjects(opts?: CallOptions): Promise<ProviderObject[]>
  /**
   * Whether the provider can serve now, by a cheap real probe of the backend (PKCS#11: C_GetTokenInfo on the
   * token, with its recovery when that fails; AWS KMS: GenerateRandom of one byte). `/ready` calls it on every
   * request: a provider that probes something costly caches the answer (PKCS#11: one second, single-flight).
   */
  health(): Promise<ProviderHealth>
  /** Releases sessions and handles. Idempotent. */
  close(): Promise<void>
}

export interface ProviderHealth {
  readonly ok: boolean
  readonly detail: string
}

/** A key as stored in the catalog. Times are milliseconds since the epoch. */
export interface KeyRecord {
  readonly instance: string
  readonly id: string
  readonly name: string
  readonly description: string | undefined
  readonly extractable: boolean
  readonly imported: boolean
  readonly state: KeyStateValue
  readonly keyRingId: string
  readonly tags: readonly string[]
  readonly createdAt: number
  readonly createdBy: string | undefined
  readonly updatedAt: number
  /** When `state` last changed (Key Protect refuses enable within 30 s of a state change). */
  readonly stateChangedAt: number
  readonly lastRotatedAt: number | undefined
  readonly expirationDate: number | undefined
  readonly deletedAt: number | undefined
  readonly deletedBy: string | undefined
  readonly currentVersion: number
  /** Standard keys only: the payload wrapped (ciphertext v1) under the instance's system key. */
  readonly wrappedPayload: Buffer | undefined
  /** The instance's hidden system key that protects standard-key payloads. Never listed. */
  readonly internal: boolean
  /**
   * When a purge (or a scheduled deletion) of this key started destroying its provider objects
   * ({@link PurgeJournal.markPurging}); undefined for a key that is not being purged. Such a key only goes
   * forward: it is never restored, and the purge is finished by a retry or by reconcile().
   */
  readonly purgingSince?: number | undefined
}

/** One root-key version. */
export interface KeyVersionRecord {
  readonly instance: string
  readonly keyId: string
  readonly version: number
  /** Key Protect version id: the key id for version 1, a fresh UUID afterwards. */
  readonly versionId: string
  readonly providerRef: string
  readonly createdAt: number
}

/** A provider object whose catalog row may not exist yet (written before the provider call). */
export interface PendingVersion {
  readonly instance: string
  readonly keyId: string
  readonly version: number
  readonly startedAt: number
}

/** A key ring (Key Protect). The `default` ring exists in every instance and has no row. */
export interface KeyRingRecord {
  readonly instance: string
  readonly id: string
  readonly createdAt: number
  readonly createdBy: string | undefined
}

/** Key policy types (Key Protect key-level policies). */
export type KeyPolicyType = 'rotation' | 'dualAuthDelete'

/** One key-level policy. `intervalMonth` only for rotation (a month is 30 days). */
export interface KeyPolicyRecord {
  readonly instance: string
  readonly keyId: string
  readonly type: KeyPolicyType
  /** Stable id of the policy (Key Protect returns it with its CRN). */
  readonly policyId: string
  readonly enabled: boolean
  readonly intervalMonth: number | undefined
  readonly createdAt: number
  readonly createdBy: string | undefined
  readonly updatedAt: number
  readonly updatedBy: string | undefined
  /** dualAuthDelete: who set the key for deletion (setKeyForDeletion), until when. */
  readonly authBy?: string | undefined
  readonly authExpiresAt?: number | undefined
}

export interface ListKeysQuery {
  readonly limit: number
  readonly offset: number
  readonly states: readonly KeyStateValue[]
  readonly extractable: boolean | undefined
  readonly keyRingId: string | undefined
}

/** Extra conditions of {@link KeyCatalog.updateKey}'s compare-and-set. */
export interface UpdateCondition {
  /** Refuse (return false) while the key has a deletion schedule: enable must not race ScheduleKeyDeletion. */
  readonly unlessPendingDeletion?: boolean
  /**
   * Refuse while the key has registrations (`any`), or registrations with preventKeyDeletion (`protected`):
   * a key delete must not race a registration created by another process.
   */
  readonly unlessRegistered?: 'any' | 'protected'
}

export type KeyPatch = Partial<
  Pick<
    KeyRecord,
    'state' | 'stateChangedAt' | 'updatedAt' | 'deletedAt' | 'deletedBy' | 'keyRingId' | 'lastRotatedAt'
  >
>

/**
 * The catalog role: instances' keys and versions, the pending-creation rows of the crash-safety protocol
 * (DESIGN decision 7) and the compare-and-set writes. Writes that depend on a read take the expected value
 * and report whether it still held, so that several engine processes can share one catalog.
 */
export interface KeyCatalog {
  /** Random id of this catalog, fixed at creation; provider objects carry it. */
  readonly catalogId: string
  /**
   * A number that changes whenever any process committed a change to the catalog, when the store can
   * tell cheaply (SQLite's `data_version`); the engine then drops its metadata cache.
   */
  changeCounter?(): number
  getKey(instance: string, id: string): Promise<KeyRecord | undefined>
  getSystemKey(instance: string): Promise<KeyRecord | undefined>
  /** The instance owning a key id (for reconciliation only; key ids are globally unique UUIDs). */
  findInstanceOfKey(keyId: string): Promise<string | undefined>
  listKeys(instance: string, query: ListKeysQuery): Promise<{ keys: KeyRecord[]; total: number }>
  listVersions(instance: string, keyId: string): Promise<KeyVersionRecord[]>
  /** Records the intent to create a provider object (before the provider call). */
  addPending(p: PendingVersion): Promise<void>
  removePending(instance: string, keyId: string, version: number): Promise<void>
  listPending(): Promise<PendingVersion[]>
  /**
   * Inserts a key with its first version, aliases and policies, and clears the pending row, in one
   * transaction. The key's ring must exist (`default` always does).
   * @throws EngineError KEY_ALIAS_NOT_UNIQUE_ERR, KEY_RING_NOT_FOUND_ERR
   */
  insertKey(
    key: KeyRecord,
    version: KeyVersionRecord,
    aliases: readonly string[],
    policies?: readonly KeyPolicyRecord[],
  ): Promise<void>
  /**
   * Inserts version `v.version` if the key's current version is still `v.version - 1` and the key is not
   * being purged, sets it current and clears the pending row. Returns false when another writer got there
   * first.
   */
  insertVersion(v: KeyVersionRecord, patch: KeyPatch): Promise<boolean>
  /** Adopts a version found in the provider (reconciliation); does not change the current version. */
  adoptVersion(v: KeyVersionRecord): Promise<void>
  /**
   * Applies `patch` if the key's state is still `expectState`, the key is not being purged (and, with
   * `unlessPendingDeletion`, the key has no deletion schedule), in one atomic step. Returns false otherwise.
   */
  updateKey(
    instance: string,
    id: string,
    expectState: KeyStateValue,
    patch: KeyPatch,
    condition?: UpdateCondition,
  ): Promise<boolean>
  /** Removes the key, its versions and aliases. */
  deleteKeyRows(instance: string, id: string): Promise<void>
  /** Every version row of every key of every instance (reconcile() checks each has its provider object). */
  listAllVersions(): Promise<KeyVersionRecord[]>
  /** Cheap liveness probe of the catalog (one read). */
  ping(): Promise<void>
  close(): Promise<void>
}

/** The usage-ledger role: AES-GCM invocations reserved per root-key version, across processes. */
export interface UsageLedger {
  /**
   * Reserves up to `block` more AES-GCM invocations of a root-key version, never beyond `limit` in all,
   * atomically across processes. Returns how many were granted (0 once the limit is reached).
   */
  reserveUsage(
    instance: string,
    keyId: string,
    version: number,
    block: number,
    limit: number,
  ): Promise<number>
  /** Invocations reserved so far for a version (0 when the version does not exist). */
  usageReserved(instance: string, keyId: string, version: number): Promise<number>
}

/**
 * The alias role, both namespaces: Key Protect aliases (several per key, fixed to their key) and alias names
 * (AWS KMS `alias/...`, one key each, re-pointable). See core/keys/aliases.ts.
 */
export interface AliasStore {
  getKeyIdByAlias(instance: string, alias: string): Promise<string | undefined>
  listAliases(instance: string, keyId: string): Promise<string[]>
  /**
   * Adds a Key Protect alias to `keyId`, or finds it already there; either way returns the stored record
   * (an existing alias keeps its first `createdAt` and `createdBy`).
   * @throws EngineError KEY_ALIAS_NOT_UNIQUE_ERR (another key has it), KEY_ALIAS_QUOTA_ERR
   */
  addAlias(
    instance: string,
    keyId: string,
    alias: string,
    createdAt: number,
    maxPerKey: number,
    createdBy?: string,
  ): Promise<AliasAddResult>
  removeAlias(instance: string, keyId: string, alias: string): Promise<boolean>
  /** Creates an alias name. Returns false when the instance already has that name. */
  createAliasName(instance: string, name: string, keyId: string, now: number): Promise<boolean>
  /** Points an existing alias name at another key. Returns false when the name does not exist. */
  updateAliasName(instance: string, name: string, keyId: string, now: number): Promise<boolean>
  /** Returns false when the name does not exist. */
  deleteAliasName(instance: string, name: string): Promise<boolean>
  getAliasName(instance: string, name: string): Promise<AliasNameRecord | undefined>
  /** Alias names ordered by name, after `after` (exclusive), at most `limit`; only of `keyId` when given. */
  listAliasNames(
    instance: string,
    query: {
      readonly keyId?: string | undefined
      readonly after?: string | undefined
      readonly limit: number
    },
  ): Promise<AliasNameRecord[]>
}

/** The key-ring role. */
export interface KeyRingStore {
  /**
   * Creates a key ring unless the instance already has `max` rings.
   * @throws EngineError KEY_RING_RESOURCE_QUOTA_ERR
   */
  createKeyRing(ring: KeyRingRecord, max: number): Promise<'created' | 'exists'>
  getKeyRing(instance: string, id: string): Promise<KeyRingRecord | undefined>
  /** The instance's rings (without `default`), oldest first. */
  listKeyRings(instance: string): Promise<KeyRingRecord[]>
  /**
   * Deletes an empty ring; with `force`, a ring whose keys are all deleted (state 5), moving them to
   * `default`. Returns false when the ring does not exist.
   * @throws EngineError KEY_RING_NOT_EMPTY_ERR, KEY_RING_KEYS_NOT_DELETED_ERR
   */
  deleteKeyRing(instance: string, id: string, force: boolean, now: number): Promise<boolean>
  /**
   * Moves a key to ring `to` if it is still in ring `from` and `to` exists. Returns false when the key
   * moved concurrently.
   * @throws EngineError KEY_RING_NOT_FOUND_ERR
   */
  moveKey(instance: string, id: string, from: string, to: string, now: number): Promise<boolean>
}

/** The key-policy role: rotation and dualAuthDelete policies, with the deletion authorisation. */
export interface PolicyStore {
  /**
   * Inserts or replaces a key policy (the first `policyId`, `createdAt` and `createdBy` are kept; the
   * deletion authorisation is left as it is).
   */
  putKeyPolicy(p: KeyPolicyRecord): Promise<void>
  /**
   * Sets (or, with `by` undefined, clears) the deletion authorisation of a key's dualAuthDelete policy.
   * Returns false when the key has no such policy.
   */
  setDeletionAuth(
    instance: string,
    keyId: string,
    by: string | undefined,
    expiresAt: number | undefined,
  ): Promise<boolean>
  listKeyPolicies(instance: string, keyId: string): Promise<KeyPolicyRecord[]>
  /** Every enabled rotation policy of every instance (for the rotation scheduler). */
  listEnabledRotationPolicies(): Promise<KeyPolicyRecord[]>
}

/** The tag role: key/value tags (AWS KMS `TagKey`/`TagValue`), separate from Key Protect's string tags. */
export interface TagStore {
  /**
   * Adds or replaces tag pairs of a key, in one transaction.
   * @throws EngineError TAG_QUOTA_ERR when the key would have more than `max` tags
   */
  putTagPairs(instance: string, keyId: string, tags: readonly TagPair[], max: number): Promise<void>
  /** Removes the tags with these keys (absent ones are ignored). */
  removeTagPairs(instance: string, keyId: string, keys: readonly string[]): Promise<void>
  /** A key's tags ordered by key. */
  listTagPairs(instance: string, keyId: string): Promise<TagPair[]>
}

/** The deletion-schedule role (AWS KMS `ScheduleKeyDeletion`). */
export interface DeletionSchedule {
  /**
   * Applies `patch` if the key's state is still `expectState` and records the deletion date, in one
   * transaction. Returns false when the state changed.
   */
  scheduleDeletion(
    instance: string,
    keyId: string,
    expectState: KeyStateValue,
    patch: KeyPatch,
    deletionDate: number,
  ): Promise<boolean>
  /** Removes a key's deletion schedule. Returns false when there was none, or the key is being purged. */
  cancelDeletion(instance: string, keyId: string): Promise<boolean>
  getDeletionSchedule(instance: string, keyId: string): Promise<DeletionScheduleRecord | undefined>
  /** Every schedule whose date is at or before `now`, of every instance. */
  listDueDeletions(now: number): Promise<DeletionScheduleRecord[]>
}

/** A key whose purge started ({@link PurgeJournal.markPurging}) and has not finished. */
export interface PurgingKey {
  readonly instance: string
  readonly keyId: string
  readonly since: number
}

/**
 * The purge-journal role: the durable "purging" mark that makes a purge crash-safe. The mark is written
 * before the first provider object of the key is destroyed; from then on the key only goes forward (the
 * catalog refuses every other change to its row: {@link KeyCatalog.updateKey}, {@link KeyCatalog.insertVersion}
 * and {@link DeletionSchedule.cancelDeletion} return false for it), and {@link KeyCatalog.deleteKeyRows}
 * ends it.
 */
export interface PurgeJournal {
  /**
   * Marks the key as being purged at `since` and applies `patch`, if its state is still `expectState` and it
   * is not marked yet, in one atomic step. Returns false otherwise.
   */
  markPurging(
    instance: string,
    keyId: string,
    expectState: KeyStateValue,
    patch: KeyPatch,
    since: number,
  ): Promise<boolean>
  /** Every key marked as being purged, of every instance, oldest mark first. */
  listPurging(): Promise<PurgingKey[]>
  /**
   * Keys in state 5 (deleted, marked for purging or not) whose deletion date (`deletedAt`, else
   * `stateChangedAt`) is at or before `before`, of every instance, oldest deletion first, at most `limit`:
   * the candidates of the automatic purge.
   */
  listDeletedBefore(before: number, limit: number): Promise<DeletedKey[]>
}

/** A deleted key ({@link PurgeJournal.listDeletedBefore}). */
export interface DeletedKey {
  readonly instance: string
  readonly keyId: string
  readonly deletedAt: number
}

/** An instance's import token (Key Protect): one per instance. Times are milliseconds since the epoch. */
/**
 * The catalog of instances, keys, versions and aliases: the intersection of its roles, so that a second
 * store (PostgreSQL) can be built and conformance-tested role by role. Every row belongs to an instance.
 */
export interface MetadataStore
  extends
    KeyCatalog,
    UsageLedger,
    AliasStore,
    KeyRingStore,
    PolicyStore,
    TagStore,
    DeletionSchedule,
    PurgeJournal,
    ImportTokenStore,
    InstancePolicyStore,
    RegistrationStore,
    KeyEventLog {}

/**
 * Alias names, tag pairs and scheduled deletion (migration 4). Kept for compatibility: {@link MetadataStore}
 * has them through {@link AliasStore}, {@link TagStore} and {@link DeletionSchedule}.
 */
export interface MetadataStoreNamesAndSchedules
  extends
    Pick<
      AliasStore,
      'createAliasName' | 'updateAliasName' | 'deleteAliasName' | 'getAliasName' | 'listAliasNames'
    >,
    TagStore,
    DeletionSchedule {}

/** {@link AliasStore.addAlias}: whether the alias was added, and the stored alias. */
export interface AliasAddResult {
  readonly result: 'created' | 'exists'
  readonly createdAt: number
  /** Undefined for an alias stored before its creator was recorded (SQLite migration 9). */
  readonly createdBy: string | undefined
}

/** A path-like alias name (AWS KMS `alias/...`), separate from Key Protect aliases and re-pointable. */
export interface AliasNameRecord {
  readonly instance: string
  readonly name: string
  readonly keyId: string
  readonly createdAt: number
  readonly updatedAt: number
}

/** A key/value tag (AWS KMS `TagKey`/`TagValue`), separate from Key Protect's string tags. */
export interface TagPair {
  readonly key: string
  readonly value: string
}

/** A key scheduled for deletion (AWS KMS `ScheduleKeyDeletion`). */
export interface DeletionScheduleRecord {
  readonly instance: string
  readonly keyId: string
  readonly deletionDate: number
}

/** Time source; tests inject one to move past restore and purge windows. */
export interface Clock {
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

/** A DEK held by a cache: use it synchronously, never keep the Buffer. */
export interface CachedDek {
  readonly dek: SecretBytes
  readonly wrapped: Buffer
  /** Public values derived from `dek`, shared by every message sealed under this cached data key. */
  readonly memo?: DekMemo
}

/**
 * Values derived from one DEK, kept beside a cached DEK so that they are computed once per DEK instead of
 * once per message; only the holder of that DEK fills it. `commitment` is public (it is in every message
 * header). `deriver` holds key material: a cache that wipes the DEK must wipe the memo with it
 * (`wipeDekMemo` in core/message), after which no deriver is made for it again.
 */
export interface DekMemo {
  commitment?: Buffer
  /** The DEK's message-key deriver (a `MessageKeyDeriver`); see docs/message-format.md, "Keys". */
  deriver?: DataKeyDeriver
}

/** What {@link DekMemo.deriver} offers: a message's data key from its id, or undefined once wiped. */
export interface DataKeyDeriver {
  derive(messageId: Buffer): Buffer | undefined
  destroy(): void
}

/** A data key lent to one seal; {@link DataKeyLease.release} when the message is done. */
export interface DataKeyLease extends CachedDek {
  release(): void
}

/** Counters a cache exposes. */
export interface DekCacheStats {
  readonly unwrapHits: number
  readonly unwrapMisses: number
  readonly dataKeyHits: number
  readonly dataKeyMisses: number
  readonly evictions: number
  readonly entries: number
  /** Messages sealed per live data key, by partition (GCM data-key derivations under each cached DEK). */
  readonly dataKeyMessages: number
}

/**
 * Bounded cache of plaintext DEKs (implemented in src/cache with lru-cache). Every entry belongs to an
 * instance and a root key, and is zeroed when evicted, expired, invalidated or closed. Loads are
 * single-flight: concurrent misses for one entry cause one provider call.
 */
export interface DekCache {
  /**
   * The DEK of a wrapped DEK (keyed by instance, key, wrapped bytes and AAD), as a copy the caller owns;
   * `load` runs on a miss and `version` (the root-key version that wrapped it) is kept with the entry.
   */
  unwrap(
    instance: string,
    keyId: string,
    cacheKey: string,
    version: number,
    load: () => Promise<SecretBytes>,
  ): Promise<SecretBytes>
  /**
   * A cached DEK (a copy the caller owns), its version and the entry's {@link DekMemo}, without loading;
   * undefined on a miss.
   */
  peek(
    instance: string,
    keyId: string,
    cacheKey: string,
  ): { dek: SecretBytes; version: number; memo?: DekMemo } | undefined
  /**
   * A data key for sealing `bytes` more bytes in `partition` (instance + key + context), reused within the
   * cache's age / message / byte bounds; `create` runs when none is usable.
   */
  acquireDataKey(
    instance: string,
    keyId: string,
    partition: string,
    bytes: number,
    create: () => Promise<CachedDek>,
  ): Promise<DataKeyLease>
  /**
   * Runs `use` synchronously on a cached DEK's own bytes (no copy; `use` must not keep them), its version
   * and memo, and returns what `use` returns; undefined on a miss (and `use` does not run).
   */
  peekWith?<R>(
    instance: string,
    keyId: string,
    cacheKey: string,
    use: (dek: Buffer, version: number, memo: DekMemo) => R,
  ): R | undefined
  /**
   * A usable cached data key for sealing `bytes` more bytes in `partition`, leased at once, or undefined
   * (none cached, or past its bounds: {@link acquireDataKey} then replaces it). Synchronous, so that a seal
   * under a cached data key needs no await.
   */
  tryAcquireDataKey?(instance: string, partition: string, bytes: number): DataKeyLease | undefined
  /** Drops (and zeroes) every entry of a root key: on rotate, disable, delete. */
  invalidateKey(instance: string, keyId: string): void
  stats(): DekCacheStats
  close(): void
}

/**
 * Runs batches off the event loop (src/pool: piscina worker threads, each with its own PKCS#11 sessions).
 * Without one, the engine runs batches on the event loop, yielding between chunks.
 */
export interface BatchRunner {
  /** Worker threads. */
  readonly threads: number
  /**
   * @throws EngineError POOL_SATURATED (queue full), POOL_WORKER_FAILED (retryable), ABORTED, PROVIDER_UNAVAILABLE
   */
  run(task: BatchTask, signal?: AbortSignal): Promise<BatchItemResult[]>
  close(): Promise<void>
}

/** A root-key version as a batch needs it (plain data: it crosses thread boundaries). */
export interface BatchVersion {
  readonly number: number
  readonly ref: string
  /** The 22 ciphertext header bytes of this version. */
  readonly header: Uint8Array
}

/**
 * One batch. `items` are ciphertexts (unwrap, rewrap, reencrypt) or DEKs to wrap, as bytes. `reencrypt`
 * reads ciphertexts of one key (`versions`) and wraps their DEKs under another key's latest version
 * (`latest`); the DEKs stay where the batch runs.
 */
export interface BatchTask {
  readonly op: 'wrap' | 'unwrap' | 'rewrap' | 'reencrypt'
  readonly instance: string
  /** AAD of every item: the one it was wrapped with and the one it is wrapped with again. */
  readonly aad: readonly string[]
  /** Versions the ciphertexts may name (unwrap, rewrap; reencrypt: the source key's). */
  readonly versions: readonly BatchVersion[]
  /**
   * The version new ciphertexts are made under (wrap, rewrap, unwrap of older versions; reencrypt: the
   * destination key's latest).
   */
  readonly latest: BatchVersion
  /** DEKs to wrap (empty = generate one), or ciphertexts as bytes or base64 (decoded strictly here). */
  readonly items: readonly (Uint8Array | string)[]
}

/** Per-item outcome. Errors are per item: one bad ciphertext does not fail its batch. */
export type BatchItemResult =
  | {
      readonly ok: true
      /** unwrap: the DEK; wrap: the DEK when generated (item was empty). */
      readonly plaintext?: Uint8Array
      /** wrap, rewrap, reencrypt, and unwrap of an older version: ciphertext v1 under `latest`, base64. */
      readonly ciphertext?: string
      /** The version that wrapped the input (unwrap, rewrap, reencrypt). */
      readonly fromVersion?: number
    }
  | { readonly ok: false; readonly code: string; readonly message: string }
