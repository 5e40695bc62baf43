/**
 * The embedded default: a PKCS#11 provider (SoftHSM2 unless configured otherwise) and an SQLite catalog,
 * wired from {@link loadConfig}. pkcs11js and better-sqlite3 load only when this is called.
 */
import {
  defaultSoftHsmConf,
  ensureCatalogDir,
  loadConfig,
  resolveTenantKeysConfig,
  type EngineConfig,
} from './config.js'
import { createEngine, type EngineOptions, type EnvelopeEngine } from './core/engine.js'
import type { JobRunner, JobRunnerOptions } from './core/jobs/runner.js'
import type { ExternalKeyBackend } from './core/ports-tenant-keys.js'
import type { SyncSourceFactories } from './core/ports-sync.js'
import type { KeySyncService } from './core/sync/service.js'
import type { SyncHandlerOptions } from './core/sync/job.js'
import type { MigrationHandlerOptions } from './core/tenant-keys/migration.js'
import type { TenantKeyProvidersService } from './core/tenant-keys/service.js'
import { VaultKeys } from './core/vault-keys/vault-keys.js'
import { createVaultKeyMaintenance, type VaultKeyMaintenance } from './core/jobs/vault-key-maintenance.js'

/** Engine options other than the provider and the store. */
export type DefaultEngineOptions = Omit<EngineOptions, 'provider' | 'store'>

/**
 * Opens the engine described by `config` (default: {@link loadConfig} from the environment).
 * @throws EngineError CONFIG_INVALID, PROVIDER_*, STORE_ERROR
 * @example
 * const engine = await createEngineFromConfig()
 */
export async function createEngineFromConfig(
  config: EngineConfig = loadConfig(),
  options: DefaultEngineOptions = {},
): Promise<EnvelopeEngine> {
  defaultSoftHsmConf(config)
  ensureCatalogDir(config)
  const { createPkcs11Provider } = await import('./providers/pkcs11/provider.js')
  const { openSqliteStore } = await import('./store/sqlite/store.js')
  const store = await openSqliteStore({ path: config.catalog.path })
  try {
    return await engineOver(config, options, store, createPkcs11Provider)
  } catch (err) {
    await store.close()
    throw err
  }
}

async function engineOver(
  config: EngineConfig,
  options: DefaultEngineOptions,
  store: EngineOptions['store'],
  createPkcs11Provider: typeof import('./providers/pkcs11/provider.js').createPkcs11Provider,
): Promise<EnvelopeEngine> {
  const provider = await createPkcs11Provider(config.pkcs11)
  try {
    const dekCache = config.dekCache ? (await import('./cache/dek-cache.js')).createDekCache() : undefined
    return await createEngine({
      ...(dekCache === undefined ? {} : { dekCache }),
      ...options,
      provider,
      store,
    })
  } catch (err) {
    await provider.close()
    throw err
  }
}

/** Options of {@link createEngineServicesFromConfig}. */
export interface EngineServicesOptions extends DefaultEngineOptions {
  /** Job runner settings (concurrency, lease, sweep and poll intervals, log). */
  readonly jobs?: Partial<Omit<JobRunnerOptions, 'store' | 'clock' | 'handlers'>>
  /** Batch size, checkpoint interval, foreground sharing, concurrency and backoff of key-provider migrations. */
  readonly migration?: MigrationHandlerOptions
  /** The AWS KMS backend of customer-managed keys (default: built from `config.tenantKeys`). */
  readonly awsKms?: ExternalKeyBackend
  /** The sources key synchronization can open, by cloud (default: {@link defaultSyncSources}). */
  readonly syncSources?: SyncSourceFactories
  /** Batch size of synchronization jobs (keys per upsert and checkpoint; default 100). */
  readonly syncJob?: SyncHandlerOptions
}

/**
 * The sync sources of the embedded default, by cloud: the Azure Key Vault, AWS KMS and PKCS#11 sources of
 * `src/providers/*` (docs/key-sync-sources.md), each module loaded when a connection of its cloud is first
 * opened. Azure needs the optional peers `@azure/keyvault-keys` (and `@azure/identity` for client-secret
 * and managed-identity credentials); without them opening an Azure connection is PROVIDER_UNSUPPORTED.
 */
export function defaultSyncSources(): SyncSourceFactories {
  return {
    azure: async (connection, secrets) =>
      (await import('./providers/azure-kv/sync-source.js')).createAzureSyncSource(connection, secrets),
    aws: async (connection, secrets) =>
      (await import('./providers/aws-kms/sync-source.js')).createAwsSyncSource(connection, secrets),
    pkcs11: async (connection, secrets) =>
      (await import('./providers/pkcs11/sync-source.js')).createPkcs11SyncSource(connection, secrets),
  }
}

/** What {@link createEngineServicesFromConfig} opens: close it once, when done. */
export interface EngineServices {
  readonly engine: EnvelopeEngine
  /** The job runner (started): key-provider migrations and any other job type registered here. */
  readonly jobs: JobRunner
  /** Tenant key providers and the per-tenant data-key catalog. */
  readonly tenantKeys: TenantKeyProvidersService
  /** Key synchronization: cloud connections, synchronization jobs, linked keys (docs/key-sync.md). */
  readonly sync: KeySyncService
  /** Stops the runner (jobs stay active and resume at the next start), then closes everything. */
  close(): Promise<void>
}

/**
 * Opens the engine, the job runner (with the key-provider migration and key synchronization handlers,
 * started: interrupted jobs resume), tenant key providers and key synchronization over one SQLite catalog.
 * @throws EngineError CONFIG_INVALID, PROVIDER_*, STORE_ERROR
 * @example
 * const { tenantKeys, close } = await createEngineServicesFromConfig()
 * const key = await tenantKeys.createDataKey('acme', 'orders')
 * key.plaintext.zeroize()
 * await close()
 */
export async function createEngineServicesFromConfig(
  config: EngineConfig = loadConfig(),
  options: EngineServicesOptions = {},
): Promise<EngineServices> {
  defaultSoftHsmConf(config)
  ensureCatalogDir(config)
  const { createPkcs11Provider } = await import('./providers/pkcs11/provider.js')
  const { openSqliteStore } = await import('./store/sqlite/store.js')
  const { createJobRunner } = await import('./core/jobs/runner.js')
  const { createTenantKeyProviders, lazyMigrationHandler } = await import('./core/tenant-keys/service.js')
  const { createKeySync, lazySyncHandlers } = await import('./core/sync/service.js')
  const { jobs: jobOptions, migration, awsKms: awsOverride, syncSources, syncJob, ...engineOptions } = options
  const store = await openSqliteStore({ path: config.catalog.path })
  const closers: (() => Promise<void>)[] = [() => store.close()]
  const closeAll = async (): Promise<void> => {
    for (const c of closers.reverse()) await c().catch(() => undefined)
  }
  try {
    const engine = await engineOver(config, engineOptions, store, createPkcs11Provider)
    closers.push(() => engine.close())
    const tk = config.tenantKeys ?? resolveTenantKeysConfig({})
    let awsKms = awsOverride
    if (awsKms === undefined) {
      const { createAwsKmsKeyBackend } = await import('./providers/aws-kms/external-key.js')
      awsKms = createAwsKmsKeyBackend({ endpoint: tk.awsEndpoint, credentials: tk.awsCredentials })
      const backend = awsKms
      closers.push(() => backend.close())
    }
    const ref: { service?: TenantKeyProvidersService; sync?: KeySyncService } = {}
    const clock = engineOptions.clock ?? { now: () => Date.now() }
    const jobs = createJobRunner({
      ...jobOptions,
      store,
      clock,
      handlers: [lazyMigrationHandler(() => ref.service), ...lazySyncHandlers(() => ref.sync)],
    })
    const tenantKeys = createTenantKeyProviders({
      engine,
      store,
      jobs,
      backends: { awsKms },
      clock,
      homeRegion: tk.homeRegion,
      drRegion: tk.drRegion,
      migration: {
        ...(tk.migrationBatchSize === undefined ? {} : { batchSize: tk.migrationBatchSize }),
        ...(tk.migrationCheckpointIntervalMs === undefined
          ? {}
          : { checkpointIntervalMs: tk.migrationCheckpointIntervalMs }),
        ...migration,
      },
    })
    ref.service = tenantKeys
    closers.push(() => tenantKeys.close())
    const sync = createKeySync({
      store,
      jobs,
      sources: syncSources ?? defaultSyncSources(),
      clock,
      ...(syncJob === undefined ? {} : { job: syncJob }),
    })
    ref.sync = sync
    closers.push(() => sync.close())
    closers.push(() => jobs.close())
    await jobs.start()
    let closed = false
    return {
      engine,
      jobs,
      tenantKeys,
      sync,
      close: async () => {
        if (closed) return
        closed = true
        await closeAll()
      },
    }
  } catch (err) {
    await closeAll()
    throw err
  }
}

/** The vault-key service of {@link createVaultKeysFromConfig} and how to release it. */
export interface DefaultVaultKeys {
  readonly vault: VaultKeys
  /** The purge at the scheduled purge date and the orphan sweep, for the scheduler (`serve` runs it). */
  readonly maintenance: VaultKeyMaintenance
  /** Closes the service's own provider sessions and catalog connection. */
  close(): Promise<void>
}

/**
 * Opens the vault keys (the Azure-Key-Vault-compatible API's keys) of the token and catalog described by
 * `config`, over a provider and a catalog connection of their own (the PKCS#11 module is shared in-process):
 * nothing of the engine's is reached from it.
 * @throws EngineError CONFIG_INVALID, PROVIDER_*, STORE_ERROR
 */
export async function createVaultKeysFromConfig(
  config: EngineConfig = loadConfig(),
  options: { readonly retentionDays?: number } = {},
): Promise<DefaultVaultKeys> {
  defaultSoftHsmConf(config)
  ensureCatalogDir(config)
  const { createPkcs11Provider } = await import('./providers/pkcs11/provider.js')
  const { openSqliteStore } = await import('./store/sqlite/store.js')
  const store = await openSqliteStore({ path: config.catalog.path })
  try {
    const provider = await createPkcs11Provider(config.pkcs11)
    const vault = new VaultKeys({
      backend: provider,
      store: store.vaultKeys,
      ...(options.retentionDays === undefined ? {} : { retentionDays: options.retentionDays }),
    })
    return {
      vault,
      maintenance: createVaultKeyMaintenance({ vault, store: store.vaultKeys, backend: provider }),
      close: async () => {
        await provider.close()
        await store.close()
      },
    }
  } catch (err) {
    await store.close()
    throw err
  }
}
