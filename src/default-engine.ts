/**
 * The embedded default: a PKCS#11 provider (SoftHSM2 unless configured otherwise) and an SQLite catalog,
 * wired from {@link loadConfig}. pkcs11js and better-sqlite3 load only when this is called.
 */
import { defaultSoftHsmConf, ensureCatalogDir, loadConfig, type EngineConfig } from './config.js'
import { createEngine, type EngineOptions, type EnvelopeEngine } from './core/engine.js'

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
