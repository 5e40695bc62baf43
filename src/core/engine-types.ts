/**
 * The public types of the engine: lifecycle rules, options and results of {@link EnvelopeEngine}'s methods.
 * Kept apart from the facade so that operation modules can use them without importing engine.ts.
 */
import type { EngineError, ErrorCode } from './errors.js'
import type { KeyStateValue } from './key-state.js'
import type { EncryptionContext } from './format/message.js'
import type {
  BatchRunner,
  CallOptions,
  Clock,
  DekCache,
  ImportAlgorithm,
  InstancePolicyType,
  KeyEventType,
  KeyPolicyType,
  MetadataStore,
  RootKeyProvider,
} from './ports.js'

const MINUTE = 60_000
export const HOUR = 60 * MINUTE
/** One day in milliseconds. */
export const DAY = 24 * HOUR

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
  /** At most one sync of a key's registrations per this interval (default 1 h, REQ_TOO_EARLY_ERR); 0: no limit. */
  readonly minSyncIntervalMs?: number
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

/** What {@link EnvelopeEngine.addAlias} returns: the stored alias (an existing one keeps its creator and date). */
export interface KeyAliasInfo {
  /** True when this call added the alias, false when the key already had it. */
  readonly created: boolean
  readonly keyId: string
  readonly alias: string
  readonly createdAt: Date
  /** Undefined for an alias added before its creator was recorded. */
  readonly createdBy: string | undefined
}

/** Options of {@link EnvelopeEngine.addAlias}. */
export interface AddAliasOptions extends KeyScope {
  /** Who adds the alias (stored; answered as the alias's creator from then on). */
  readonly createdBy?: string | undefined
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
export interface BatchOptions extends CallOptions, KeyScope {
  /** AAD shared by every item of the batch. */
  readonly aad?: readonly string[]
  /** Called after each chunk with the number of items done and the total. */
  readonly onProgress?: (done: number, total: number) => void
  /** Items per task sent to a worker (default 256). */
  readonly chunkSize?: number
}

/**
 * Options of {@link EnvelopeEngine.reencryptMany}: the batch options (`aad` binds every item, read and
 * written; `keyRingId` scopes both keys) and the source key.
 */
export interface ReencryptManyOptions extends BatchOptions {
  /** The key the ciphertexts were wrapped by (id or alias); default: the key the first ciphertext names. */
  readonly sourceKeyId?: string
}

/** What {@link EnvelopeEngine.reencryptMany} returns per item (besides `ok`). */
export interface ReencryptManyItem {
  /** Ciphertext v1 under the destination key's latest version, base64. */
  readonly ciphertext: string
  readonly sourceKeyId: string
  /** The source version that wrapped the input. */
  readonly sourceKeyVersion: KeyVersionInfo
  /** The destination version it is wrapped under now. */
  readonly keyVersion: KeyVersionInfo
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

/**
 * Attributes of an instance policy, in Key Protect's names (spec digest §4.7): `interval_month` (rotation,
 * 1–12), `allowed_network` (allowedNetwork), `allowed_ip` (allowedIP: IPv4/IPv6 CIDRs or addresses),
 * `create_root_key`, `create_standard_key`, `import_root_key`, `import_standard_key` (default true) and
 * `enforce_token` (default false) for keyCreateImportAccess. dualAuthDelete and metrics have none.
 */
export interface InstancePolicyAttributes {
  readonly interval_month?: number | undefined
  readonly allowed_network?: 'public-and-private' | 'private-only' | undefined
  readonly allowed_ip?: readonly string[] | undefined
  readonly create_root_key?: boolean | undefined
  readonly create_standard_key?: boolean | undefined
  readonly import_root_key?: boolean | undefined
  readonly import_standard_key?: boolean | undefined
  readonly enforce_token?: boolean | undefined
}

/** One instance policy as given by a caller. Attributes are needed when enabled, ignored when disabled. */
export interface InstancePolicyInput {
  readonly type: InstancePolicyType
  readonly enabled: boolean
  readonly attributes?: InstancePolicyAttributes | undefined
}

/** One instance policy with its bookkeeping; `attributes` completed with the defaults, none when disabled. */
export interface InstancePolicyInfo {
  readonly type: InstancePolicyType
  readonly enabled: boolean
  readonly attributes: InstancePolicyAttributes | undefined
  readonly createdAt: Date
  readonly createdBy: string | undefined
  readonly updatedAt: Date
  readonly updatedBy: string | undefined
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
  /** Root keys: material encrypted under the instance's import token (instead of `payload`). */
  readonly secureImport?: SecureImportInput
}

/**
 * Narrows a key reference to one key ring (Key Protect's `X-Kms-Key-Ring` header). Additive: every method
 * that addresses a key accepts it.
 */
export interface KeyScope {
  /** When given, a key outside this key ring is reported as KEY_NOT_FOUND_ERR, as if it did not exist. */
  readonly keyRingId?: string | undefined
}

/** Options of {@link EnvelopeEngine.enable}. */
export interface EnableOptions extends KeyScope {
  /**
   * Apply the lifecycle's enable cool-down (`enableCooldownMs`, Key Protect's 30 s after a state change);
   * default true. The AWS-KMS-compatible API passes false: AWS KMS `EnableKey` has no cool-down.
   */
  readonly cooldown?: boolean
}

export interface WrapOptions extends CallOptions, KeyScope {
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

export interface UnwrapOptions extends CallOptions, KeyScope {
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

export interface ListVersionsOptions extends KeyScope {
  readonly limit?: number
  readonly offset?: number
  /** Also list versions of a deleted key. */
  readonly allKeyStates?: boolean
}

/** What {@link EnvelopeEngine.runAutoPurge} did. */
export interface AutoPurgeResult {
  /** Keys destroyed for good by this pass (their provider objects and catalog rows are gone). */
  readonly purged: readonly { readonly instance: string; readonly keyId: string; readonly deletedAt: Date }[]
  /** Keys whose purge failed (e.g. the provider is unavailable): the next pass tries them again. */
  readonly failed: readonly {
    readonly instance: string
    readonly keyId: string
    readonly code: ErrorCode
    readonly message: string
  }[]
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
  /**
   * Keys whose purge (or scheduled deletion) had started and not finished — a crash or a provider failure
   * after the "purging" mark — and that this reconcile finished: their provider objects and catalog rows
   * are gone.
   */
  readonly purged: readonly { readonly instance: string; readonly keyId: string }[]
  /**
   * Catalog versions (of keys not being purged) whose provider object does not exist: ciphertexts under
   * them fail with KEY_VERSION_MATERIAL_MISSING for good. Reported for an operator (restore the token
   * from a backup); never changed by reconcile.
   */
  readonly missing: readonly {
    readonly instance: string
    readonly keyId: string
    readonly version: number
    readonly ref: string
  }[]
}

/** Options of `createImportToken` (Key Protect `POST /import_token`). */
export interface ImportTokenOptions {
  /** Seconds until the token expires: 300-86400, default 600. */
  readonly expirationSec?: number
  /** How many times `getImportToken` may return it: 1-500, default 1 (as IBM's `kp import-token create`). */
  readonly maxAllowedRetrievals?: number
}

/** An import token's counters and dates. */
export interface ImportTokenInfo {
  readonly createdAt: Date
  readonly expiresAt: Date
  readonly maxAllowedRetrievals: number
  readonly remainingRetrievals: number
}

/** An import token as `getImportToken` returns it: the public key to encrypt material under, and the nonce. */
export interface ImportTokenRetrieval extends ImportTokenInfo {
  /** The RSA-2048 public key, SPKI PEM. */
  readonly publicKeyPem: string
  /** 12 bytes; AES-GCM encrypt it under the material being imported (`encryptedNonce`). */
  readonly nonce: Buffer
}

/**
 * Key material encrypted under the instance's import token (Key Protect secure import): unwrapped inside
 * the HSM, so that it never exists in this process.
 */
export interface SecureImportInput {
  /** RSA-OAEP(token public key, material), empty label. */
  readonly payload: Uint8Array
  /** AES-GCM(material, iv, token nonce): ciphertext followed by the 16-byte tag. */
  readonly encryptedNonce: Uint8Array
  /** 12 bytes. */
  readonly iv: Uint8Array
  /** Default `RSAES_OAEP_SHA_256`; the provider lists what it supports in `capabilities.importTokens`. */
  readonly encryptionAlgorithm?: ImportAlgorithm
}

/** What a registration says (Key Protect registration create, PATCH, PUT). */
export interface RegistrationInput {
  /** The resource must not lose its key (WORM, retention): the key's deletion is refused, even forced. */
  readonly preventKeyDeletion?: boolean | undefined
  readonly description?: string | undefined
  /** Opaque service-to-service metadata, up to 4096 characters. */
  readonly registrationMetadata?: string | undefined
  /** The key version the resource uses (a version id of the key). */
  readonly keyVersionId?: string | undefined
}

/** A registration as the API shows it. */
export interface RegistrationInfo {
  readonly keyId: string
  readonly keyName: string
  readonly resourceCrn: string
  readonly description: string | undefined
  readonly registrationMetadata: string | undefined
  readonly preventKeyDeletion: boolean
  /** The version named by `keyVersionId`, else the key's current version. */
  readonly keyVersion: KeyVersionInfo
  /**
   * Follows the key's state: 1 while the key is Active, 2 (Suspended) while it is disabled or deleted, 3 once
   * deactivated (`deactivateRegistration`) or while the key is Deactivated, 0 while it is Pre-activation.
   */
  readonly state: KeyStateValue
  readonly createdAt: Date
  readonly createdBy: string | undefined
  readonly updatedAt: Date
  readonly updatedBy: string | undefined
}

/** Options of {@link EnvelopeEngine.listRegistrations}. */
export interface ListRegistrationsOptions extends KeyScope {
  /** 1–5000, default 200. */
  readonly limit?: number
  readonly offset?: number
  /**
   * A resource CRN pattern: `*` as a segment matches any segment, a `*` in the last segment makes it a prefix
   * search. Across keys it must name at least the service instance (8 segments, no `*` among them).
   */
  readonly resourceCrnQuery?: string
  readonly preventKeyDeletion?: boolean
}

/** One event of a key's event log. */
export interface KeyEventInfo {
  readonly eventId: string
  readonly keyId: string
  readonly type: KeyEventType
  readonly keyVersion: number
  /** The registration notified (sync), else undefined. */
  readonly resourceCrn: string | undefined
  readonly createdAt: Date
  readonly createdBy: string | undefined
  readonly ackedAt: Date | undefined
  readonly ackState: string | undefined
}

/** One acknowledgement of {@link EnvelopeEngine.acknowledgeEvents} (Key Protect `POST /event_ack`). */
export interface EventAckInput {
  readonly eventId: string
  /** The key state the service adopted, e.g. `DEK_ENABLED`. */
  readonly adopterKeyState: string
  readonly timestamp: Date
}
