/**
 * The public contract of tenant key providers and the per-tenant data-key catalog (library API; the Qlik
 * HTTP adapter in `src/http/qlik/` and the CLI translate to and from it). Implemented by `service.ts`.
 */
import type { SecretBytes } from '../secret-bytes.js'
import type { KeyProviderKind, ReplicaKey } from '../ports-tenant-keys.js'

/** The fingerprint, name and description of the built-in default provider (Qlik's "Qlik managed"). */
export const DEFAULT_PROVIDER_ARN = '#QLIK_MANAGED_KEY_PROVIDER#'
export const DEFAULT_PROVIDER_NAME = 'Qlik Internal Kms'
export const DEFAULT_PROVIDER_DESCRIPTION = 'Default key management service'
/** Prefix of catalog values wrapped under a customer-managed provider: `#BYOKv1#:<fingerprint>:`. */
export const BYOK_PREFIX = '#BYOKv1#:'

/** A key provider as the library returns it. `undefined` times are "never" (Qlik's zero time on the wire). */
export interface KeyProviderView {
  readonly fingerprint: string
  readonly tenant: string
  /** `default` = the built-in provider (a root key in the engine's HSM); its fingerprint is the tenant id. */
  readonly kind: KeyProviderKind | 'default'
  readonly arn: string
  readonly name: string
  readonly description: string | undefined
  readonly current: boolean
  /** undefined for the default provider (Qlik shows "Qlik managed"). */
  readonly createdAt: Date | undefined
  readonly multiRegion: boolean
  readonly replicaKeys: readonly ReplicaKey[]
  readonly promotedToCurrentAt: Date | undefined
  readonly demotedFromCurrentAt: Date | undefined
  /** From the last test; undefined before the first test. */
  readonly drCompliant: boolean | undefined
  readonly complianceError:
    { readonly code: string; readonly region: string; readonly message: string } | undefined
}

/** Qlik's MigrationInformation. */
export interface MigrationView {
  /** The job id. */
  readonly id: string
  readonly tenant: string
  /** `New` (queued), `InProgress` (running), `Completed` (done; also after a failure was retried to the end). */
  readonly state: 'New' | 'InProgress' | 'Completed'
  /** 0-100. */
  readonly progress: number
  readonly done: number
  readonly total: number
  readonly initiatedAt: Date
  readonly completedAt: Date | undefined
  /** The ARN migrated from (the default provider: `#QLIK_MANAGED_KEY_PROVIDER#`). */
  readonly migratingFrom: string
  readonly migratingTo: string
  readonly migratingToFingerprint: string
  /** `#BYOKv1#:<fingerprint>`; for a migration to the default provider, the empty string. */
  readonly migratingToPrefix: string
  /** The underlying job's state, including `failed` and `cancelled`, which Qlik's enum lacks. */
  readonly jobState: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled'
  readonly error: { readonly code: string; readonly message: string } | undefined
}

export interface RegisterKeyProviderInput {
  readonly arn: string
  readonly name: string
  readonly description?: string | undefined
  /** `aws-kms` (default; Qlik's `AWS-KMS`) or `engine-key` (`arn` is a root key id of this tenant). */
  readonly kind?: KeyProviderKind | undefined
  readonly createdBy?: string | undefined
}

/** One operation of a JSON Patch (RFC 6902) of a provider: only `replace` of `/name` or `/description`. */
export interface KeyProviderPatchOp {
  readonly op: 'replace'
  readonly path: '/name' | '/description'
  readonly value: string
}

/** A data-key catalog entry without its secret. */
export interface DataKeyInfo {
  readonly name: string
  readonly providerFingerprint: string
  readonly createdAt: Date
  readonly updatedAt: Date
}

/** A data-key catalog entry with its plaintext DEK: zeroize `plaintext` when done. */
export interface DataKeyWithSecret extends DataKeyInfo {
  readonly plaintext: SecretBytes
}

/** A DEK wrapped under the tenant's current provider, for the application to keep. */
export interface WrappedDek {
  /** The wrapped form (see docs/tenant-key-providers.md). */
  readonly ciphertext: string
  readonly providerFingerprint: string
}

/** {@link TenantKeyProviders.unwrapDek}'s result: zeroize `plaintext` when done. */
export interface UnwrappedDek {
  readonly plaintext: SecretBytes
  readonly providerFingerprint: string
  /**
   * Present when the ciphertext is not under the current provider (an older one): the same DEK wrapped
   * under the current provider, for the application to store instead (as Key Protect's unwrap returns
   * `rewrappedKey` after a rotation).
   */
  readonly rewrapped: string | undefined
}

/** Tenant key providers and the data-key catalog (tenant = engine instance). */
export interface TenantKeyProviders {
  /**
   * Registers a customer-managed key (not current). The key is described at its source (multi-region,
   * replicas); the fingerprint is derived (fingerprint.ts).
   * @throws EngineError KEY_PROVIDER_ARN_INVALID (417), KEY_PROVIDER_EXISTS (409), PROVIDER_ACCESS_DENIED
   * (403), PROVIDER_UNAVAILABLE (408), KEY_PROVIDER_NOT_FOUND (the key does not exist at the source),
   * INVALID_FIELD_ERR, MISSING_FIELD_ERR
   */
  register(tenant: string, input: RegisterKeyProviderInput): Promise<KeyProviderView>
  /** The registered providers (without the default), oldest first. */
  list(tenant: string): Promise<KeyProviderView[]>
  /** The default provider first, then the registered ones. */
  listAll(tenant: string): Promise<KeyProviderView[]>
  /** @throws EngineError KEY_PROVIDER_NOT_FOUND; the tenant id gives the default provider */
  get(tenant: string, fingerprint: string): Promise<KeyProviderView>
  /**
   * Applies a JSON Patch of name and description, all operations or none.
   * @throws EngineError KEY_PROVIDER_NOT_FOUND, INVALID_FIELD_ERR (another op or path, a non-string value)
   */
  patch(tenant: string, fingerprint: string, ops: readonly KeyProviderPatchOp[]): Promise<KeyProviderView>
  /**
   * Deletes an inactive provider under which nothing is wrapped.
   * @throws EngineError KEY_PROVIDER_NOT_FOUND, KEY_PROVIDER_IN_USE (current, migrating, or entries under it;
   * also the default provider)
   */
  delete(tenant: string, fingerprint: string): Promise<void>
  /**
   * Probes GenerateDataKey, Encrypt and Decrypt in the primary region and every replica; records and
   * returns the provider with `drCompliant` and `complianceError`.
   * @throws EngineError KEY_PROVIDER_NOT_FOUND
   */
  test(tenant: string, fingerprint: string): Promise<KeyProviderView>
  /**
   * Promotes the provider to current now and starts the background migration of every catalog entry to it.
   * @throws EngineError KEY_PROVIDER_NOT_FOUND, KEY_PROVIDER_ALREADY_CURRENT, MIGRATION_IN_PROGRESS
   */
  migrate(
    tenant: string,
    fingerprint: string,
    options?: { readonly createdBy?: string },
  ): Promise<MigrationView>
  /**
   * Migrates back to the default provider.
   * @throws EngineError KEY_PROVIDER_ALREADY_CURRENT (already default), MIGRATION_IN_PROGRESS
   */
  resetToDefault(tenant: string, options?: { readonly createdBy?: string }): Promise<MigrationView>
  /**
   * The ongoing migration, or the last one when none runs.
   * @throws EngineError MIGRATION_NOT_FOUND (never migrated)
   */
  migration(tenant: string): Promise<MigrationView>
  /** Calls `listener` on every durable progress or state change of the tenant's migration `id`. */
  subscribeMigration(tenant: string, id: string, listener: (m: MigrationView) => void): () => void
  /** Resolves when the migration `id` is final. */
  waitForMigration(
    tenant: string,
    id: string,
    options?: { readonly signal?: AbortSignal },
  ): Promise<MigrationView>

  // ---------------------------------------------------------------- the data-key catalog

  /**
   * Generates a 32-byte DEK (the HSM's RNG), wraps it under the current provider and stores it as `name`.
   * Returns the entry with its plaintext.
   * @throws EngineError DATA_KEY_EXISTS, INVALID_FIELD_ERR (name), and the provider's errors
   */
  createDataKey(tenant: string, name: string): Promise<DataKeyWithSecret>
  /** @throws EngineError DATA_KEY_NOT_FOUND, and the provider's errors */
  getDataKey(tenant: string, name: string): Promise<DataKeyWithSecret>
  /** Entries by name, after `after`, at most `limit` (default 100, at most 1000). */
  listDataKeys(
    tenant: string,
    options?: { readonly after?: string; readonly limit?: number },
  ): Promise<DataKeyInfo[]>
  /** @throws EngineError DATA_KEY_NOT_FOUND */
  deleteDataKey(tenant: string, name: string): Promise<void>

  // ---------------------------------------------------------------- application-held ciphertexts

  /** Wraps `dek` (or a fresh 32-byte DEK) under the current provider. The caller zeroizes its DEK. */
  wrapDek(tenant: string, dek?: Uint8Array): Promise<WrappedDek & { plaintext: SecretBytes }>
  /**
   * Unwraps a ciphertext of {@link wrapDek} (or a catalog value) under whichever of the tenant's providers
   * made it; `rewrapped` when that is not the current one.
   * @throws EngineError CIPHERTEXT_INVALID, UNWRAP_AAD_MISMATCH, KEY_PROVIDER_NOT_FOUND (its provider was
   * deleted), and the provider's errors
   */
  unwrapDek(tenant: string, ciphertext: string): Promise<UnwrappedDek>
}
