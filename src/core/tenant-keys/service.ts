/**
 * {@link createTenantKeyProviders}: the library implementation of {@link TenantKeyProviders} (tenant key
 * providers, their migrations as jobs, the data-key catalog). The rules live in providers.ts (registry),
 * data-keys.ts (catalog and application ciphertexts), migration.ts (the job) and core.ts (the codec).
 */
import type { EnvelopeEngine } from '../engine.js'
import { EngineError } from '../errors.js'
import type { JobHandler, Jobs, JobView } from '../jobs/job-types.js'
import type { Clock } from '../ports.js'
import type { ExternalKeyBackend } from '../ports-tenant-keys.js'
import { validateInstance } from '../validate.js'
import { TenantKeysCore, type TenantKeysStore, type ResolvedProvider } from './core.js'
import * as dataKeys from './data-keys.js'
import { createMigrationHandler, ensurePromoted, type MigrationHandlerOptions } from './migration.js'
import { registerProvider, testProvider, validatePatch } from './providers.js'
import {
  DEFAULT_PROVIDER_ARN,
  type KeyProviderPatchOp,
  type KeyProviderView,
  type MigrationView,
  type TenantKeyProviders,
} from './types.js'
import { defaultView, MIGRATION_JOB_TYPE, migrationParams, migrationView, recordView } from './views.js'

/** Options of {@link createTenantKeyProviders}. */
export interface TenantKeyProvidersOptions {
  readonly engine: EnvelopeEngine
  /** The store's key-provider and data-key roles (the SQLite store implements both). */
  readonly store: TenantKeysStore
  /** The job system the migrations run in; register {@link TenantKeyProvidersService.migrationHandler}. */
  readonly jobs: Jobs
  /** External key backends; without `awsKms`, AWS-KMS providers cannot be registered. */
  readonly backends?: { readonly awsKms?: ExternalKeyBackend | undefined }
  readonly clock?: Clock
  /** The tenant's home region (AWS keys should have their primary there); default `eu-west-1`. */
  readonly homeRegion?: string
  /** The disaster-recovery region (AWS keys need a replica there to be DR compliant); default `eu-west-3`. */
  readonly drRegion?: string
  /** Batch size, concurrency and batch rewrap of the migration handler. */
  readonly migration?: MigrationHandlerOptions
}

/** {@link TenantKeyProviders} plus the migration job handler to register with the job runner. */
export interface TenantKeyProvidersService extends TenantKeyProviders {
  /** The `key-provider-migration` job handler. */
  readonly migrationHandler: JobHandler
  /** Closes the opened external keys (not the engine, store, jobs or backends). */
  close(): Promise<void>
}

/**
 * The migration handler of a service made later: the job runner needs its handlers at construction and the
 * service needs the runner, so the runner gets this and the service is created after it.
 * @example
 * let tenantKeys: TenantKeyProvidersService | undefined
 * const jobs = createJobRunner({ store, clock, handlers: [lazyMigrationHandler(() => tenantKeys)] })
 * tenantKeys = createTenantKeyProviders({ engine, store, jobs })
 * await jobs.start()
 */
export function lazyMigrationHandler(get: () => TenantKeyProvidersService | undefined): JobHandler {
  const handler = (): JobHandler => {
    const s = get()
    if (s === undefined) throw new EngineError('ENGINE_CLOSED', 'tenant key providers are not ready')
    return s.migrationHandler
  }
  return {
    type: MIGRATION_JOB_TYPE,
    validate: (tenant, params) => handler().validate?.(tenant, params),
    run: (ctl) => handler().run(ctl),
  }
}

const SYSTEM_CLOCK: Clock = { now: () => Date.now() }
const ACTIVE = ['queued', 'running'] as const

function fpArg(fingerprint: unknown): string {
  if (typeof fingerprint !== 'string' || fingerprint.length === 0) {
    throw new EngineError('KEY_PROVIDER_NOT_FOUND', 'no key provider of this tenant has that fingerprint')
  }
  return fingerprint
}

/**
 * Creates the tenant key providers service.
 * @example
 * const tenantKeys = createTenantKeyProviders({ engine, store, jobs })
 * jobs.register(tenantKeys.migrationHandler) // or pass it to the runner at construction
 * const { ciphertext, plaintext } = await tenantKeys.wrapDek('acme')
 */
export function createTenantKeyProviders(options: TenantKeyProvidersOptions): TenantKeyProvidersService {
  const core = new TenantKeysCore(
    options.engine,
    options.store,
    options.clock ?? SYSTEM_CLOCK,
    options.backends?.awsKms,
  )
  const jobs = options.jobs
  const regions = { home: options.homeRegion ?? 'eu-west-1', dr: options.drRegion ?? 'eu-west-3' }
  const handler = createMigrationHandler(core, options.migration)

  const tenantOf = (tenant: string): string => validateInstance(tenant)
  const arnOf = (p: ResolvedProvider): string =>
    p.record === undefined ? DEFAULT_PROVIDER_ARN : p.record.arn

  async function view(tenant: string, fingerprint: string): Promise<KeyProviderView> {
    const state = await core.state(tenant)
    if (fingerprint === tenant) return defaultView(state)
    const r = await core.store.getKeyProvider(tenant, fingerprint)
    if (r === undefined) {
      throw new EngineError('KEY_PROVIDER_NOT_FOUND', 'no key provider of this tenant has that fingerprint')
    }
    return recordView(r, state)
  }

  async function activeMigrations(tenant: string): Promise<JobView[]> {
    return (await jobs.list(tenant, { type: MIGRATION_JOB_TYPE, states: ACTIVE, limit: 10 })).jobs
  }

  async function startMigration(
    tenant: string,
    fingerprint: string,
    createdBy: string | undefined,
  ): Promise<MigrationView> {
    const state = await core.state(tenant)
    const target = await core.mustResolve(tenant, fingerprint)
    if (state.currentFingerprint === fingerprint) {
      // Already current: refused unless entries are left under other providers (a migration that was
      // cancelled or failed): then the migration runs again to finish the job.
      const left =
        (await core.store.countDataKeys(tenant)) - (await core.store.countDataKeys(tenant, fingerprint))
      if (left === 0) {
        throw new EngineError('KEY_PROVIDER_ALREADY_CURRENT', 'the tenant already uses this key provider')
      }
    }
    const from = await core.mustResolve(tenant, state.currentFingerprint)
    let job: JobView
    try {
      job = await jobs.submit(
        tenant,
        MIGRATION_JOB_TYPE,
        { from: from.fingerprint, to: target.fingerprint, fromArn: arnOf(from), toArn: arnOf(target) },
        createdBy === undefined ? {} : { createdBy },
      )
    } catch (err) {
      if (err instanceof EngineError && err.code === 'JOB_CONFLICT') {
        throw new EngineError('MIGRATION_IN_PROGRESS', 'a key-provider migration is already running', {
          cause: err,
        })
      }
      throw err
    }
    // Promotion at migration start: new wraps go to the target at once (the handler repeats this).
    await ensurePromoted(core, tenant, fingerprint)
    return migrationView(job)
  }

  async function migrationJob(tenant: string, id: string): Promise<JobView> {
    const j = await jobs.get(tenant, id).catch((err: unknown) => {
      if (err instanceof EngineError && err.code === 'JOB_NOT_FOUND') {
        throw new EngineError('MIGRATION_NOT_FOUND', 'no such migration', { cause: err })
      }
      throw err
    })
    if (j.type !== MIGRATION_JOB_TYPE) throw new EngineError('MIGRATION_NOT_FOUND', 'no such migration')
    return j
  }

  return {
    migrationHandler: handler,
    close: () => core.close(),

    async register(tenant, input) {
      tenant = tenantOf(tenant)
      const r = await registerProvider(core, tenant, input)
      return recordView(r, await core.state(tenant))
    },

    async list(tenant) {
      tenant = tenantOf(tenant)
      const state = await core.state(tenant)
      return (await core.store.listKeyProviders(tenant)).map((r) => recordView(r, state))
    },

    async listAll(tenant) {
      tenant = tenantOf(tenant)
      const state = await core.state(tenant)
      const records = await core.store.listKeyProviders(tenant)
      return [defaultView(state), ...records.map((r) => recordView(r, state))]
    },

    async get(tenant, fingerprint) {
      tenant = tenantOf(tenant)
      return view(tenant, fpArg(fingerprint))
    },

    async patch(tenant, fingerprint, ops: readonly KeyProviderPatchOp[]) {
      tenant = tenantOf(tenant)
      fingerprint = fpArg(fingerprint)
      const changes = validatePatch(ops)
      if (fingerprint === tenant) {
        throw new EngineError('INVALID_FIELD_ERR', 'the default key provider cannot be changed', {
          target: { type: 'field', name: 'patch' },
        })
      }
      if (!(await core.store.updateKeyProvider(tenant, fingerprint, changes))) {
        throw new EngineError('KEY_PROVIDER_NOT_FOUND', 'no key provider of this tenant has that fingerprint')
      }
      return view(tenant, fingerprint)
    },

    async delete(tenant, fingerprint) {
      tenant = tenantOf(tenant)
      fingerprint = fpArg(fingerprint)
      if (fingerprint === tenant) {
        throw new EngineError('KEY_PROVIDER_IN_USE', 'the default key provider cannot be deleted')
      }
      const r = await core.store.getKeyProvider(tenant, fingerprint)
      if (r === undefined) {
        throw new EngineError('KEY_PROVIDER_NOT_FOUND', 'no key provider of this tenant has that fingerprint')
      }
      const state = await core.state(tenant)
      if (state.currentFingerprint === fingerprint) {
        throw new EngineError('KEY_PROVIDER_IN_USE', 'the key provider is current')
      }
      for (const j of await activeMigrations(tenant)) {
        const p = migrationParams(j)
        if (p.from === fingerprint || p.to === fingerprint) {
          throw new EngineError(
            'KEY_PROVIDER_IN_USE',
            'a migration reads from or writes to this key provider',
          )
        }
      }
      const outcome = await core.store.deleteKeyProvider(tenant, fingerprint)
      if (outcome === 'not-found') {
        throw new EngineError('KEY_PROVIDER_NOT_FOUND', 'no key provider of this tenant has that fingerprint')
      }
      if (outcome === 'in-use') {
        throw new EngineError('KEY_PROVIDER_IN_USE', 'data keys are still wrapped under this key provider')
      }
      if (r.kind === 'engine-key') await core.unprotectKey(tenant, r.arn, fingerprint)
      await core.forget(tenant, fingerprint)
    },

    async test(tenant, fingerprint) {
      tenant = tenantOf(tenant)
      fingerprint = fpArg(fingerprint)
      const compliance = await testProvider(core, tenant, fingerprint, regions)
      if (fingerprint === tenant) return defaultView(await core.state(tenant), compliance)
      if (!(await core.store.updateKeyProvider(tenant, fingerprint, { compliance }))) {
        throw new EngineError('KEY_PROVIDER_NOT_FOUND', 'no key provider of this tenant has that fingerprint')
      }
      return view(tenant, fingerprint)
    },

    async migrate(tenant, fingerprint, opts = {}) {
      tenant = tenantOf(tenant)
      return startMigration(tenant, fpArg(fingerprint), opts.createdBy)
    },

    async resetToDefault(tenant, opts = {}) {
      tenant = tenantOf(tenant)
      return startMigration(tenant, tenant, opts.createdBy)
    },

    async migration(tenant) {
      tenant = tenantOf(tenant)
      const active = await activeMigrations(tenant)
      const job = active[0] ?? (await jobs.list(tenant, { type: MIGRATION_JOB_TYPE, limit: 1 })).jobs[0]
      if (job === undefined) {
        throw new EngineError('MIGRATION_NOT_FOUND', 'the tenant has no ongoing or completed migration')
      }
      return migrationView(job)
    },

    subscribeMigration(tenant, id, listener) {
      return jobs.subscribe(tenant, id, (j) => {
        if (j.type === MIGRATION_JOB_TYPE) listener(migrationView(j))
      })
    },

    async waitForMigration(tenant, id, opts = {}) {
      tenant = tenantOf(tenant)
      await migrationJob(tenant, id)
      return migrationView(await jobs.waitFor(tenant, id, opts))
    },

    // The data plane: foreground calls, which a running migration gives way to (MigrationHandlerOptions).
    createDataKey: async (tenant, name) =>
      core.foreground(() => dataKeys.createDataKey(core, tenantOf(tenant), name)),
    getDataKey: async (tenant, name) =>
      core.foreground(() => dataKeys.getDataKey(core, tenantOf(tenant), name)),
    listDataKeys: async (tenant, opts) =>
      core.foreground(() => dataKeys.listDataKeys(core, tenantOf(tenant), opts)),
    deleteDataKey: async (tenant, name) =>
      core.foreground(() => dataKeys.deleteDataKey(core, tenantOf(tenant), name)),
    wrapDek: async (tenant, dek) => core.foreground(() => dataKeys.wrapDek(core, tenantOf(tenant), dek)),
    unwrapDek: async (tenant, ciphertext) =>
      core.foreground(() => dataKeys.unwrapDek(core, tenantOf(tenant), ciphertext)),
  }
}
