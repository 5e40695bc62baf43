/**
 * Ports of tenant key providers (the Qlik Cloud encryption key providers model) and of the per-tenant
 * data-key catalog: the store roles and the external-key backend (AWS KMS keys by ARN). Implemented by
 * `store/sqlite` (the roles) and `providers/aws-kms` (the backend); core never imports a concrete one.
 * Like {@link JobStore}, these roles sit beside `MetadataStore`, not in it.
 */
import type { SecretBytes } from './secret-bytes.js'
import type { CallOptions } from './ports.js'

/**
 * What a registered key provider is. `aws-kms`: an AWS KMS key by ARN (the Qlik `AWS-KMS` type).
 * `engine-key`: a root key of this engine (in its own HSM) in the same tenant, by key id — an extension
 * for tenants who keep their customer-managed key in the engine itself. The built-in default provider (the
 * Qlik-managed one) is not a record: it is the tenant's {@link TenantKeyState}.
 */
export type KeyProviderKind = 'aws-kms' | 'engine-key'

/** A replica of a multi-region key. */
export interface ReplicaKey {
  readonly arn: string
  readonly region: string
}

/** The outcome of the last test of a provider (Qlik `drCompliant`, `complianceError`). */
export interface ComplianceRecord {
  readonly testedAt: number
  /** Every required operation works in the primary region and in every replica region. */
  readonly drCompliant: boolean
  /** The first failure; undefined when compliant. `code` is a stable code (`Encryption-<n>`, see docs). */
  readonly error: { readonly code: string; readonly region: string; readonly message: string } | undefined
}

/** One registered key provider of a tenant. Times in ms since the epoch; 0 = never (Qlik's zero time). */
export interface KeyProviderRecord {
  readonly tenant: string
  /** The provider's id in paths (Qlik `arnFingerPrint`): 32 lower-case hex characters, see fingerprint.ts. */
  readonly fingerprint: string
  /** UUID; the key id of the ciphertext v1 framing of this provider's blobs. */
  readonly id: string
  readonly kind: KeyProviderKind
  /** The key reference: an AWS KMS key ARN, or (engine-key) the engine key id. */
  readonly arn: string
  readonly name: string
  readonly description: string | undefined
  readonly multiRegion: boolean
  readonly replicaKeys: readonly ReplicaKey[]
  readonly createdAt: number
  readonly createdBy: string | undefined
  readonly promotedToCurrentAt: number
  readonly demotedFromCurrentAt: number
  readonly compliance: ComplianceRecord | undefined
}

/**
 * The tenant's key-provider state: which provider is current, and the built-in default's own record (its
 * root key in the engine, its promotion times). Created on first use with the default current.
 */
export interface TenantKeyState {
  readonly tenant: string
  /** Fingerprint of the current provider; the default provider's fingerprint is the tenant id itself. */
  readonly currentFingerprint: string
  /** The engine root key (in this tenant) that the default provider wraps with; undefined until made. */
  readonly defaultKeyId: string | undefined
  readonly defaultPromotedAt: number
  readonly defaultDemotedAt: number
  /** Incremented by every write; the compare-and-set token of {@link KeyProviderStore.switchCurrent}. */
  readonly revision: number
}

export type KeyProviderPatch = Partial<
  Pick<KeyProviderRecord, 'name' | 'description' | 'multiRegion' | 'replicaKeys' | 'compliance'>
>

/** The key-provider registry of every tenant. */
export interface KeyProviderStore {
  /** Inserts a provider. Returns false, inserting nothing, when the tenant has that ARN or fingerprint. */
  insertKeyProvider(r: KeyProviderRecord): Promise<boolean>
  getKeyProvider(tenant: string, fingerprint: string): Promise<KeyProviderRecord | undefined>
  /** The tenant's registered providers (not the default), oldest first. */
  listKeyProviders(tenant: string): Promise<KeyProviderRecord[]>
  /** Applies `patch`; false when the provider does not exist. */
  updateKeyProvider(tenant: string, fingerprint: string, patch: KeyProviderPatch): Promise<boolean>
  /**
   * Deletes the provider if it is not current and no data-key entry is wrapped under it, atomically;
   * 'deleted', 'not-found' or 'in-use'.
   */
  deleteKeyProvider(tenant: string, fingerprint: string): Promise<'deleted' | 'not-found' | 'in-use'>
  /** The tenant's state; undefined before first use. */
  getTenantKeyState(tenant: string): Promise<TenantKeyState | undefined>
  /** Creates the tenant's state (default current) unless it exists; returns the stored state. */
  initTenantKeyState(state: TenantKeyState): Promise<TenantKeyState>
  /** Records the default provider's root key if none is recorded yet; returns the stored state. */
  setDefaultKey(tenant: string, keyId: string): Promise<TenantKeyState>
  /**
   * Makes `toFingerprint` current at `at` if the state is still at `expectedRevision`, in one transaction:
   * the old current's `demotedFromCurrentAt` and the new one's `promotedToCurrentAt` are both `at` (for the
   * default provider: the state's own fields). Returns the new state, or undefined when the revision moved.
   */
  switchCurrent(
    tenant: string,
    expectedRevision: number,
    toFingerprint: string,
    at: number,
  ): Promise<TenantKeyState | undefined>
}

/** One entry of a tenant's data-key catalog: a named DEK, stored only wrapped. */
export interface DataKeyRecord {
  readonly tenant: string
  /** 1-256 characters, unique per tenant. */
  readonly name: string
  /** The wrapped DEK as the catalog keeps it (see docs: default provider plain, others `#BYOKv1#:<fp>:…`). */
  readonly wrapped: string
  /** The provider it is wrapped under. */
  readonly providerFingerprint: string
  readonly createdAt: number
  readonly updatedAt: number
}

/** The per-tenant data-key catalog. */
export interface DataKeyStore {
  /** Inserts an entry; false (nothing inserted) when the tenant has that name. */
  insertDataKey(r: DataKeyRecord): Promise<boolean>
  getDataKey(tenant: string, name: string): Promise<DataKeyRecord | undefined>
  /** Entries by name after `after` (exclusive), at most `limit`, ascending. */
  listDataKeys(
    tenant: string,
    query: { readonly after?: string | undefined; readonly limit: number },
  ): Promise<DataKeyRecord[]>
  deleteDataKey(tenant: string, name: string): Promise<boolean>
  /** How many entries the tenant has, in all and under `fingerprint`. */
  countDataKeys(tenant: string, fingerprint?: string): Promise<number>
  /**
   * Entries NOT wrapped under `fingerprint`, by name after `after` (exclusive), at most `limit`: what a
   * migration to `fingerprint` still has to do.
   */
  listDataKeysNotUnder(
    tenant: string,
    fingerprint: string,
    after: string | undefined,
    limit: number,
  ): Promise<DataKeyRecord[]>
  /**
   * Replaces wrapped values in one transaction, each only if the entry still holds `expectedWrapped`
   * (compare-and-set: an entry deleted or rewritten meanwhile is left as it is). Returns how many changed.
   * `durable: false` (a migration's batches) lets the commit reach the disk with the next durable write
   * instead of its own flush: a process crash cannot undo it, a power loss can undo it together with every
   * later write (never an earlier one without the later), which leaves those entries under their previous
   * provider, as valid as before. Default true.
   */
  replaceWrapped(
    tenant: string,
    updates: readonly {
      readonly name: string
      readonly expectedWrapped: string
      readonly wrapped: string
      readonly providerFingerprint: string
      readonly updatedAt: number
    }[],
    options?: { readonly durable?: boolean },
  ): Promise<number>
}

/** What {@link ExternalKeyBackend.describe} learns about a key. */
export interface ExternalKeyDescription {
  readonly arn: string
  readonly enabled: boolean
  /** Symmetric encrypt/decrypt key (the only kind a provider can be). */
  readonly symmetric: boolean
  readonly multiRegion: boolean
  readonly replicaKeys: readonly ReplicaKey[]
}

/** One required operation probed in one region by {@link ExternalKey.probe}. */
export interface ProbeResult {
  readonly region: string
  readonly operation: 'GenerateDataKey' | 'Encrypt' | 'Decrypt'
  /** undefined = it worked. `kind` sorts the failure for the Qlik codes (403, 408, …). */
  readonly failure:
    | {
        readonly kind: 'access-denied' | 'timeout' | 'not-found' | 'disabled' | 'other'
        readonly message: string
      }
    | undefined
}

/** An external key (e.g. an AWS KMS key and its replicas) opened for use. */
export interface ExternalKey {
  /** Encrypts a DEK, binding `aad` (KMS encryption context); the primary region first, replicas on failure. */
  encrypt(plaintext: SecretBytes, aad: Buffer, opts?: CallOptions): Promise<Buffer>
  /**
   * Decrypts a blob of {@link encrypt}; UNWRAP_AAD_MISMATCH when it does not authenticate.
   * @throws EngineError UNWRAP_AAD_MISMATCH, PROVIDER_UNAVAILABLE, PROVIDER_ACCESS_DENIED, PROVIDER_ERROR
   */
  decrypt(blob: Buffer, aad: Buffer, opts?: CallOptions): Promise<SecretBytes>
  /** Runs GenerateDataKey, Encrypt and Decrypt in the primary region and each replica region. */
  probe(opts?: CallOptions): Promise<ProbeResult[]>
  close(): Promise<void>
}

/** Reaches external keys by reference (AWS KMS: by ARN, in the ARN's region and its replicas' regions). */
export interface ExternalKeyBackend {
  readonly kind: 'aws-kms'
  /**
   * Reads the key's description from its region.
   * @throws EngineError KEY_PROVIDER_ARN_INVALID, PROVIDER_ACCESS_DENIED, PROVIDER_UNAVAILABLE (timeout),
   * KEY_PROVIDER_NOT_FOUND (no such key), PROVIDER_ERROR
   */
  describe(arn: string, opts?: CallOptions): Promise<ExternalKeyDescription>
  /** Opens the key for wrap/unwrap with failover to `replicaKeys`. Cheap; cached by the caller. */
  open(arn: string, replicaKeys: readonly ReplicaKey[]): ExternalKey
  close(): Promise<void>
}
