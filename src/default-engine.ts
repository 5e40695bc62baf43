/**
 * The embedded default: a PKCS#11 provider (SoftHSM2 unless configured otherwise) and an SQLite catalog,
 * wired from {@link loadConfig}. pkcs11js and better-sqlite3 load only when this is called.
 */
import { defaultSoftHsmConf, ensureCatalogDir, loadConfig, type EngineConfig } from './config.js'
import { createEngine, type EngineOptions, type EnvelopeEngine } from './core/engine.js'
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
  } catch (err) {
    await store.close()
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
