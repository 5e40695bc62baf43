/**
 * envelope-kms: envelope encryption with versioned root keys held in an HSM or KMS.
 * Re-exports only. Heavy optional parts have subpath exports: `envelope-kms/providers/pkcs11`,
 * `envelope-kms/store/sqlite`.
 */
export { createEngine, EnvelopeEngine, KEY_PROTECT_LIFECYCLE } from './core/engine.js'
export type {
  EngineOptions,
  LifecyclePolicy,
  KeyInfo,
  KeyVersionInfo,
  CreateKeyOptions,
  WrapOptions,
  WrapResult,
  UnwrapOptions,
  UnwrapResult,
  RewrapResult,
  ListKeysOptions,
  ListVersionsOptions,
  ReconcileReport,
  SealOptions,
  OpenOptions,
  BatchOptions,
  BatchResult,
  KeyPoliciesInput,
  KeyPolicyInfo,
  KeyRingInfo,
  AliasNameInfo,
  AddAliasOptions,
  KeyAliasInfo,
  AutoPurgeResult,
  ReencryptResult,
  ReencryptManyOptions,
  ReencryptManyItem,
  KeyScope,
  EnableOptions,
  ImportTokenOptions,
  ImportTokenInfo,
  ImportTokenRetrieval,
  SecureImportInput,
  InstancePolicyAttributes,
  InstancePolicyInfo,
  InstancePolicyInput,
  RegistrationInput,
  RegistrationInfo,
  ListRegistrationsOptions,
  KeyEventInfo,
  EventAckInput,
} from './core/engine.js'
export { parseSearch, parseFilter, parseSort, parseStateList } from './core/keys/query-language.js'
export type { KeySearch, KeyFilter, KeyQueryItem } from './core/keys/query-language.js'
export { DEFAULT_FRAME_SIZE, MESSAGE_FORMAT_V1 } from './core/format/message.js'
export type { EncryptionContext } from './core/format/message.js'
export { EngineError, ERROR_CODES, isEngineError } from './core/errors.js'
export type { ErrorCode, ErrorTarget } from './core/errors.js'
export { KeyState } from './core/key-state.js'
export type { KeyStateValue } from './core/key-state.js'
export { SecretBytes } from './core/secret-bytes.js'
export {
  parseCiphertext,
  CIPHERTEXT_FORMAT_V1,
  MAX_DEK_BYTES,
  GENERATED_DEK_BYTES,
} from './core/format/ciphertext.js'
export type { ParsedCiphertext } from './core/format/ciphertext.js'
export type {
  RootKeyProvider,
  MetadataStore,
  InstancePolicyType,
  Clock,
  CallOptions,
  OutputOptions,
  ProviderCapabilities,
  GcmSealed,
  ProviderObject,
  CreateVersionRequest,
  KeyRecord,
  KeyVersionRecord,
  KeyRingRecord,
  KeyPolicyRecord,
  KeyPolicyType,
  DekCache,
  DekCacheStats,
  DataKeyLease,
  CachedDek,
  BatchRunner,
  AliasNameRecord,
  TagPair,
  DeletionScheduleRecord,
  MetadataStoreNamesAndSchedules,
  KeyCatalog,
  UsageLedger,
  AliasStore,
  KeyRingStore,
  PolicyStore,
  TagStore,
  DeletionSchedule,
  PurgeJournal,
  PurgingKey,
  DeletedKey,
  UpdateCondition,
  ImportAlgorithm,
  SealedMaterial,
  ImportTokenRecord,
  ImportTokenStore,
  RegistrationRecord,
  RegistrationStore,
  KeyEventType,
  KeyEventRecord,
  KeyEventLog,
} from './core/ports.js'
export type { BatchTask, BatchItemResult, BatchVersion } from './core/ports.js'
export type { KeyRegionRecord, KeyRegionStore } from './core/ports-key-regions.js'
export { startRotationScheduler } from './core/jobs/scheduler.js'
export type { RotationScheduler, RotationSchedulerOptions } from './core/jobs/scheduler.js'
export { createJobRunner, JobRunner } from './core/jobs/runner.js'
export { isFinalJobState, toJobView } from './core/jobs/job-records.js'
export type { JobLogEntry, JobRunnerOptions } from './core/jobs/runner.js'
export type { JobControl, JobEvent, JobHandler, JobView, Jobs } from './core/jobs/job-types.js'
export type { JobPatch, JobRecord, JobState, JobStore, ListJobsQuery } from './core/ports-jobs.js'
export { createTenantKeyProviders, lazyMigrationHandler } from './core/tenant-keys/service.js'
export type { TenantKeyProvidersOptions, TenantKeyProvidersService } from './core/tenant-keys/service.js'
export {
  providerFingerprint,
  FINGERPRINT_DOMAIN,
  MAX_FINGERPRINT_LENGTH,
} from './core/tenant-keys/fingerprint.js'
export { COMPLIANCE_CODES, MIGRATION_JOB_TYPE } from './core/tenant-keys/views.js'
export type { MigrationParams, MigrationResult } from './core/tenant-keys/views.js'
export type { MigrationHandlerOptions, ReencryptMany } from './core/tenant-keys/migration.js'
export {
  BYOK_PREFIX,
  DEFAULT_PROVIDER_ARN,
  DEFAULT_PROVIDER_DESCRIPTION,
  DEFAULT_PROVIDER_NAME,
} from './core/tenant-keys/types.js'
export type {
  DataKeyInfo,
  DataKeyWithSecret,
  KeyProviderPatchOp,
  KeyProviderView,
  MigrationView,
  RegisterKeyProviderInput,
  TenantKeyProviders,
  UnwrappedDek,
  WrappedDek,
} from './core/tenant-keys/types.js'
export type {
  ComplianceRecord,
  DataKeyRecord,
  DataKeyStore,
  ExternalKey,
  ExternalKeyBackend,
  ExternalKeyDescription,
  KeyProviderKind,
  KeyProviderPatch,
  KeyProviderRecord,
  KeyProviderStore,
  ProbeResult,
  ReplicaKey,
  TenantKeyState,
} from './core/ports-tenant-keys.js'
export { createKeySync, lazySyncHandlers } from './core/sync/service.js'
export type { KeySyncOptions, KeySyncService } from './core/sync/service.js'
export type { SyncHandlerOptions } from './core/sync/job.js'
export { createSecretResolver } from './core/sync/secrets.js'
export { validateConnectionParams, validateSecretSource } from './core/sync/connection-params.js'
export { syncJobType } from './core/sync/types.js'
export type {
  ConnectionInput,
  ConnectionView,
  KeySync,
  LinkedKeyView,
  LinkedUnwrapResult,
  LinkedWrapResult,
  SyncCounts,
  SyncJobRequest,
  SyncJobView,
  SyncOverallStatus,
} from './core/sync/types.js'
export { SYNC_CLOUDS } from './core/ports-sync.js'
export type {
  AwsConnectionParams,
  AzureConnectionParams,
  ConnectionCheck,
  ConnectionParams,
  ConnectionPatch,
  ConnectionRecord,
  ConnectionStore,
  ConnectionTestRecord,
  DiscoveredKey,
  LinkedKeyQuery,
  LinkedKeyRecord,
  LinkedKeyStore,
  LinkedKeyVersion,
  Pkcs11ConnectionParams,
  SecretResolver,
  SecretSource,
  SyncCloud,
  SyncSource,
  SyncSourceFactories,
  SyncSourceFactory,
  UpsertOutcome,
} from './core/ports-sync.js'
export { encodeWrappedDek, parseWrappedDek, BYOK_PREFIX_V1 } from './core/format/wrapped-dek.js'
export type { ParsedWrappedDek } from './core/format/wrapped-dek.js'
export { loadConfig, describeConfig, defaultSoftHsmConf, resolveTenantKeysConfig } from './config.js'
export type { EngineConfig, Pkcs11Config, TenantKeysConfig } from './config.js'
export {
  createEngineFromConfig,
  createEngineServicesFromConfig,
  defaultSyncSources,
} from './default-engine.js'
export type { DefaultEngineOptions, EngineServices, EngineServicesOptions } from './default-engine.js'
