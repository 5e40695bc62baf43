/** Test wiring: a real SoftHSM2 token (from global-setup) and a real SQLite file per engine. */
import { existsSync, mkdtempSync } from 'node:fs'
import { join } from 'node:path'
import { createEngine, type EngineOptions, type EnvelopeEngine } from '../../src/index.js'
import {
  createPkcs11Provider,
  type Pkcs11Provider,
  type Pkcs11ProviderOptions,
} from '../../src/providers/pkcs11/index.js'
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js'

export const SOFTHSM_MODULE =
  ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so'].find((p) =>
    existsSync(p),
  ) ?? '/usr/lib/softhsm/libsofthsm2.so'

export function env(name: string): string {
  const v = process.env[name]
  if (v === undefined) throw new Error(`${name} is not set: run the tests through vitest (global-setup.ts)`)
  return v
}

/** A clock the test moves by hand. */
export class ManualClock {
  t = Date.parse('2026-01-01T00:00:00Z')
  now(): number {
    return this.t
  }
  advance(ms: number): void {
    this.t += ms
  }
}

export function tempCatalogPath(): string {
  return join(mkdtempSync(join(env('EKMS_TEST_DIR'), 'catalog-')), 'catalog.sqlite')
}

export async function openProvider(overrides: Partial<Pkcs11ProviderOptions> = {}): Promise<Pkcs11Provider> {
  return createPkcs11Provider({
    module: SOFTHSM_MODULE,
    tokenLabel: env('EKMS_TEST_TOKEN'),
    pin: env('EKMS_TEST_PIN'),
    ...overrides,
  })
}

export interface TestEngine {
  engine: EnvelopeEngine
  provider: Pkcs11Provider
  store: SqliteStore
  clock: ManualClock
  catalogPath: string
}

export async function openTestEngine(
  options: {
    catalogPath?: string
    provider?: Partial<Pkcs11ProviderOptions>
    engine?: Partial<Omit<EngineOptions, 'provider' | 'store'>>
    clock?: ManualClock
  } = {},
): Promise<TestEngine> {
  const catalogPath = options.catalogPath ?? tempCatalogPath()
  const store = await openSqliteStore({ path: catalogPath })
  const provider = await openProvider(options.provider)
  const clock = options.clock ?? new ManualClock()
  const engine = await createEngine({ provider, store, clock, ...options.engine })
  return { engine, provider, store, clock, catalogPath }
}
