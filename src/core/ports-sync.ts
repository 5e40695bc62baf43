/**
 * Ports of key synchronization (the CipherTrust CCKM model, docs/key-sync.md): cloud connections, the
 * catalog of linked (externally managed) root keys, and the sources the synchronization job discovers keys
 * in. Implemented by `store/sqlite` (the two store roles) and by one `SyncSource` per cloud in `providers/`
 * (Azure Key Vault, AWS KMS, a PKCS#11 token); core never imports a concrete one. Like {@link JobStore},
 * these roles sit beside `MetadataStore`, not in it.
 */
import type { SecretBytes } from './secret-bytes.js'
import type { CallOptions } from './ports.js'

/** The clouds a connection and a synchronization job can be for (the `{cloud}` of the CCKM paths). */
export const SYNC_CLOUDS = ['azure', 'aws', 'pkcs11'] as const
export type SyncCloud = (typeof SYNC_CLOUDS)[number]

/**
 * Where a secret (a PIN, a client secret, an access key) is read from when a connection is opened. The
 * catalog stores only this reference, never the secret: `env` reads an environment variable of the engine's
 * process, `file` the first line of a file (trailing newline removed). Resolved by `core/sync/secrets.ts`.
 */
export type SecretSource =
  { readonly kind: 'env'; readonly name: string } | { readonly kind: 'file'; readonly path: string }

/** An Azure Key Vault / Managed HSM connection: one vault. */
export interface AzureConnectionParams {
  readonly cloud: 'azure'
  /** `https://<vault>.vault.azure.net` or any Key Vault compatible URL (the engine's own listener). */
  readonly vaultUrl: string
  readonly credential:
    | {
        readonly kind: 'client-secret'
        readonly tenantId: string
        readonly clientId: string
        readonly secret: SecretSource
        /** Authority host for sovereign clouds (optional). */
        readonly authorityHost?: string | undefined
      }
    | { readonly kind: 'managed-identity'; readonly clientId?: string | undefined }
    /** A bearer token read from the source on every token request (tests, the engine's own listener). */
    | { readonly kind: 'static-token'; readonly token: SecretSource }
  /** The SDK's challenge-resource check; off only for a vault on a host name that cannot match (loopback). */
  readonly disableChallengeResourceVerification?: boolean | undefined
  /** PEM file of an extra CA to trust for this vault's TLS (a private vault, the test set-up). */
  readonly caFile?: string | undefined
}

/** An AWS KMS connection: one account's keys in one or more regions. */
export interface AwsConnectionParams {
  readonly cloud: 'aws'
  /** At least one; the first is the default. */
  readonly regions: readonly string[]
  /** A KMS-compatible endpoint (the engine's own AWS listener); undefined = AWS's regional endpoints. */
  readonly endpoint?: string | undefined
  readonly credentials:
    | { readonly kind: 'default' }
    | {
        readonly kind: 'static'
        readonly accessKeyId: SecretSource
        readonly secretAccessKey: SecretSource
        readonly sessionToken?: SecretSource | undefined
      }
}

/** A PKCS#11 connection: one token of one module. */
export interface Pkcs11ConnectionParams {
  readonly cloud: 'pkcs11'
  /** Absolute path of the PKCS#11 module (.so). */
  readonly module: string
  readonly tokenLabel: string
  readonly pin: SecretSource
}

export type ConnectionParams = AzureConnectionParams | AwsConnectionParams | Pkcs11ConnectionParams

/** The outcome of one probe of a connection's `test` action. */
export interface ConnectionCheck {
  /** What was probed: `connect`, `list`, `wrap`, `unwrap` (source specific names allowed). */
  readonly check: string
  /** The region or vault it was probed in (AWS: the region; others: the vault or token). */
  readonly where: string
  readonly ok: boolean
  /** A stable code (`PROVIDER_ACCESS_DENIED`, `PROVIDER_UNAVAILABLE`, …) and a message, when not ok. */
  readonly error?: { readonly code: string; readonly message: string } | undefined
}

export interface ConnectionTestRecord {
  readonly testedAt: number
  readonly ok: boolean
  readonly checks: readonly ConnectionCheck[]
}

/** A tenant's connection to one cloud source. Times in ms since the epoch. */
export interface ConnectionRecord {
  readonly tenant: string
  /** UUID. */
  readonly id: string
  /** 1-64 characters `[A-Za-z0-9._-]`, unique per tenant (case-insensitive). */
  readonly name: string
  readonly cloud: SyncCloud
  readonly description: string | undefined
  readonly params: ConnectionParams
  readonly createdAt: number
  readonly updatedAt: number
  readonly lastTest: ConnectionTestRecord | undefined
}

export type ConnectionPatch = Partial<
  Pick<ConnectionRecord, 'description' | 'params' | 'lastTest' | 'updatedAt'>
>

/** The connections of every tenant. */
export interface ConnectionStore {
  /** Inserts a connection; false (nothing inserted) when the tenant has that name or id. */
  insertConnection(r: ConnectionRecord): Promise<boolean>
  getConnection(tenant: string, id: string): Promise<ConnectionRecord | undefined>
  getConnectionByName(tenant: string, name: string): Promise<ConnectionRecord | undefined>
  /** The tenant's connections (of `cloud` when given), by name. */
  listConnections(tenant: string, cloud?: SyncCloud): Promise<ConnectionRecord[]>
  /** false when the connection does not exist. */
  updateConnection(tenant: string, id: string, patch: ConnectionPatch): Promise<boolean>
  /**
   * Deletes the connection unless linked keys still refer to it, atomically: 'deleted', 'not-found' or
   * 'in-use'. With `purgeDeleted`, the connection's linked keys marked deleted at their source are deleted
   * with it in the same transaction; it is still 'in-use' (and nothing is deleted) while a key of the
   * connection is present at its source.
   */
  deleteConnection(
    tenant: string,
    id: string,
    options?: { readonly purgeDeleted?: boolean | undefined },
  ): Promise<'deleted' | 'not-found' | 'in-use'>
}

/** One version of a linked key, as the source names it. */
export interface LinkedKeyVersion {
  /** The source's version name (Azure: the version id; AWS: the key id, one version; PKCS#11: `1`). */
  readonly version: string
  /**
   * What the source's `wrap`/`unwrap` take to reach this version (Azure: the versioned `kid`; AWS: the key
   * ARN; PKCS#11: `id:<hex CKA_ID>` or `label:<CKA_LABEL>`).
   */
  readonly ref: string
  readonly enabled: boolean
  /** At the source; undefined when the source does not say. */
  readonly createdAt: number | undefined
}

/** A key as a source reports it during discovery. */
export interface DiscoveredKey {
  /**
   * The key's stable identity within its connection (Azure: the key name; AWS: the key ARN; PKCS#11:
   * `id:<hex CKA_ID>`, or `label:<CKA_LABEL>` when the object has no CKA_ID).
   */
  readonly sourceKeyId: string
  /** The region / vault / token it lives in (AWS: the region; Azure: the vault host; PKCS#11: the token label). */
  readonly vault: string
  /** Display name (Azure: key name; AWS: the first alias without `alias/`, else the key id; PKCS#11: label). */
  readonly name: string
  /** Source key type: Azure `kty` (`RSA-HSM`, `oct-HSM`, …), AWS `KeySpec`, PKCS#11 `AES`. */
  readonly keyType: string
  /** The engine can wrap and unwrap with it (symmetric AWS ENCRYPT_DECRYPT, Azure RSA/oct with wrap ops, AES). */
  readonly usable: boolean
  readonly enabled: boolean
  /** Oldest first; the newest enabled one wraps. At least one. */
  readonly versions: readonly LinkedKeyVersion[]
  /** Source metadata kept for display (aliases, tags, key_ops, key usage, key state, …); JSON-serialisable. */
  readonly attributes: Readonly<Record<string, unknown>>
}

/** A linked (externally managed) root key: a key discovered by a synchronization job. */
export interface LinkedKeyRecord extends DiscoveredKey {
  readonly tenant: string
  /** UUID given at first sight; the key id of the ciphertext v1 framing of its wrapped DEKs. */
  readonly id: string
  readonly cloud: SyncCloud
  readonly connectionId: string
  /** `present`, or `deleted` once a complete synchronization of its vault no longer found it. */
  readonly sourceState: 'present' | 'deleted'
  readonly deletedAtSourceAt: number | undefined
  readonly firstSyncedAt: number
  readonly lastSyncedAt: number
  /** The job that last saw it at the source. */
  readonly lastSyncJobId: string
}

/** What {@link LinkedKeyStore.upsertLinkedKeys} did with one key. */
export type UpsertOutcome = 'inserted' | 'updated' | 'unchanged'

export interface LinkedKeyQuery {
  readonly cloud?: SyncCloud | undefined
  readonly connectionId?: string | undefined
  readonly sourceState?: 'present' | 'deleted' | undefined
  /** Keyset paging by id (exclusive). */
  readonly after?: string | undefined
  readonly limit: number
}

/** The linked-key catalog of every tenant. */
export interface LinkedKeyStore {
  /**
   * Inserts or updates keys by (tenant, connectionId, sourceKeyId), in one transaction. An existing key
   * keeps its `id` and `firstSyncedAt`; everything the source reports is replaced, `lastSyncedAt` and
   * `lastSyncJobId` are set, and a key marked deleted becomes present again (it reappeared). `unchanged` when
   * nothing the source reports differs (the sync times are still written). `keys[i].id` is used only on
   * insert.
   */
  upsertLinkedKeys(
    tenant: string,
    connectionId: string,
    cloud: SyncCloud,
    keys: readonly (DiscoveredKey & { readonly id: string })[],
    seen: { readonly at: number; readonly jobId: string },
  ): Promise<UpsertOutcome[]>
  getLinkedKey(tenant: string, id: string): Promise<LinkedKeyRecord | undefined>
  listLinkedKeys(tenant: string, query: LinkedKeyQuery): Promise<LinkedKeyRecord[]>
  countLinkedKeys(tenant: string, query?: Omit<LinkedKeyQuery, 'after' | 'limit'>): Promise<number>
  /**
   * Marks `deleted` (at `at`) every present key of the connection — within `vaults` when given — whose
   * `lastSyncJobId` is not `jobId`: the keys a complete discovery by that job did not see. Returns how many.
   */
  markMissingDeleted(
    tenant: string,
    connectionId: string,
    jobId: string,
    at: number,
    vaults?: readonly string[],
  ): Promise<number>
  /**
   * Deletes a linked key, atomically, only when it is marked deleted at its source: 'deleted', 'not-found',
   * or 'present' (nothing deleted: its source still has it). A key is never dropped otherwise.
   */
  deleteLinkedKey(tenant: string, id: string): Promise<'deleted' | 'not-found' | 'present'>
}

/**
 * A cloud source opened over one connection: discovery, and wrap/unwrap with the keys it holds. Opened by
 * the cloud's {@link SyncSourceFactory}; the secrets are resolved by then.
 */
export interface SyncSource {
  readonly cloud: SyncCloud
  /**
   * Every key of the connection (AWS: in `regions`, default the connection's regions), every version of
   * each, in a stable order. Pages lazily.
   * @throws EngineError PROVIDER_UNAVAILABLE, PROVIDER_ACCESS_DENIED, PROVIDER_ERROR
   */
  discover(options?: {
    readonly regions?: readonly string[] | undefined
    readonly signal?: AbortSignal | undefined
  }): AsyncIterable<DiscoveredKey>
  /**
   * Encrypts a DEK under the key version `ref` (a {@link LinkedKeyVersion.ref}), binding `aad` where the
   * source can (AWS encryption context, AES-GCM AAD); returns the source's blob, self-contained.
   * @throws EngineError PROVIDER_UNAVAILABLE, PROVIDER_ACCESS_DENIED, KEY_VERSION_MATERIAL_MISSING, PROVIDER_ERROR
   */
  wrap(ref: string, plaintext: SecretBytes, aad: Buffer, opts?: CallOptions): Promise<Buffer>
  /**
   * Decrypts a blob of {@link wrap}. Fails with UNWRAP_AAD_MISMATCH when it does not authenticate.
   * @throws EngineError UNWRAP_AAD_MISMATCH, PROVIDER_UNAVAILABLE, PROVIDER_ACCESS_DENIED, KEY_VERSION_MATERIAL_MISSING, PROVIDER_ERROR
   */
  unwrap(ref: string, blob: Buffer, aad: Buffer, opts?: CallOptions): Promise<SecretBytes>
  /** Probes the connection: reach it, list keys (per region for AWS). Never throws for a probe failure. */
  test(opts?: CallOptions): Promise<ConnectionCheck[]>
  close(): Promise<void>
}

/** Reads a {@link SecretSource}. @throws EngineError INVALID_FIELD_ERR (unset variable, unreadable file) */
export type SecretResolver = (source: SecretSource) => Promise<string>

/** Opens a source for a connection of its cloud. */
export type SyncSourceFactory = (connection: ConnectionRecord, secrets: SecretResolver) => Promise<SyncSource>

/** The factories by cloud; a cloud without one cannot be connected (its optional SDK is not installed). */
export type SyncSourceFactories = Partial<Record<SyncCloud, SyncSourceFactory>>
