/** Test wiring of tenant key providers: createEngineServicesFromConfig on the test token and a temp catalog. */
import { createHash } from 'node:crypto'
import {
  createEngineServicesFromConfig,
  type EngineConfig,
  type EngineServices,
  type EngineServicesOptions,
} from '../../src/index.js'
import { SOFTHSM_MODULE, env, tempCatalogPath } from './engine.js'

/** The engine configuration of the test token and `catalogPath` (default: a fresh temp catalog). */
export function testConfig(
  catalogPath = tempCatalogPath(),
  tenantKeys: Partial<NonNullable<EngineConfig['tenantKeys']>> = {},
): EngineConfig {
  return {
    pkcs11: {
      module: SOFTHSM_MODULE,
      tokenLabel: env('EKMS_TEST_TOKEN'),
      pin: env('EKMS_TEST_PIN'),
      profile: 'softhsm2',
    },
    catalog: { path: catalogPath },
    dekCache: false,
    tenantKeys: {
      homeRegion: 'eu-west-1',
      drRegion: 'eu-west-3',
      awsEndpoint: undefined,
      awsCredentials: undefined,
      ...tenantKeys,
    },
  }
}

/** The services over the test token; fast job polling. */
export function openServices(
  catalogPath?: string,
  options: EngineServicesOptions = {},
  tenantKeys: Partial<NonNullable<EngineConfig['tenantKeys']>> = {},
): Promise<EngineServices> {
  return createEngineServicesFromConfig(testConfig(catalogPath, tenantKeys), {
    ...options,
    jobs: { pollIntervalMs: 20, sweepIntervalMs: 200, ...options.jobs },
  })
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
