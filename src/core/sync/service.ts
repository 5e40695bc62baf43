/**
 * {@link createKeySync}: the library implementation of {@link KeySync} (connections, synchronization jobs,
 * linked keys). The rules live in connections.ts (validation, CRUD, test, open sources), job.ts (the job),
 * linked-keys.ts (wrap/unwrap) and views.ts (views); docs/key-sync.md describes the model.
 */
import { EngineError, invalidField } from '../errors.js'
import { checkTenant } from '../jobs/job-records.js'
import type { JobHandler, Jobs, JobView } from '../jobs/job-types.js'
import type { Clock } from '../ports.js'
import {
  SYNC_CLOUDS,
  type ConnectionRecord,
  type SecretResolver,
  type SyncCloud,
  type SyncSourceFactories,
} from '../ports-sync.js'
import { SyncConnections, type SyncStore } from './connections.js'
import { createSyncHandlers, type SyncHandlerOptions } from './job.js'
import { mustGetLinkedKey, purgeLinked, unwrapLinked, wrapLinked } from './linked-keys.js'
import { createSecretResolver } from './secrets.js'
import { syncJobType, type KeySync, type SyncOverallStatus } from './types.js'
import {
  cloudOfJobType,
  connectionView,
  linkedKeyView,
  statesOf,
  syncJobView,
  type SyncJobParams,
  type SyncUnit,
} from './views.js'

/** Options of {@link createKeySync}. */
export interface KeySyncOptions {
  /** The connection and linked-key roles (the SQLite store implements both). */
  readonly store: SyncStore
  /** The job system the synchronizations run in; register {@link KeySyncService.handlers} (or {@link lazySyncHandlers}). */
  readonly jobs: Jobs
  /** One factory per cloud that can be connected; a cloud without one is PROVIDER_UNSUPPORTED. */
  readonly sources: SyncSourceFactories
  readonly clock?: Clock
  /** How secret references are read (default: environment variables and files of this process). */
  readonly secrets?: SecretResolver
  /** Batch size of the synchronization job. */
  readonly job?: SyncHandlerOptions
}

/** {@link KeySync} plus the job handlers to register with the job runner. */
export interface KeySyncService extends KeySync {
  /** The `cckm-sync:<cloud>` job handlers, one per cloud. */
  readonly handlers: readonly JobHandler[]
  /** Closes the open sources (not the store or the job runner). */
  close(): Promise<void>
}

/**
 * The sync job handlers of a service made later: the job runner needs its handlers at construction and the
 * service needs the runner, so the runner gets these and the service is created after it.
 * @example
 * let sync: KeySyncService | undefined
 * const jobs = createJobRunner({ store, clock, handlers: lazySyncHandlers(() => sync) })
 * sync = createKeySync({ store, jobs, sources, clock })
 * await jobs.start()
 */
export function lazySyncHandlers(get: () => KeySyncService | undefined): JobHandler[] {
  return SYNC_CLOUDS.map((cloud): JobHandler => {
    const type = syncJobType(cloud)
    const handler = (): JobHandler => {
      const h = get()?.handlers.find((x) => x.type === type)
      if (h === undefined) throw new EngineError('ENGINE_CLOSED', 'key synchronization is not ready')
      return h
    }
    return {
      type,
      validate: (tenant, params) => handler().validate?.(tenant, params),
      run: (ctl) => handler().run(ctl),
    }
  })
}

const SYSTEM_CLOCK: Clock = { now: () => Date.now() }
const AWS_REGION_RE = /^[a-z]{2}(-[a-z]+)+-\d+$/
const STATUSES: readonly SyncOverallStatus[] = ['in_progress', 'completed', 'failed', 'cancelled']

function cloudArg(cloud: unknown, field = 'cloud'): SyncCloud {
  if (typeof cloud !== 'string' || !(SYNC_CLOUDS as readonly string[]).includes(cloud)) {
    throw invalidField(field, `must be one of ${SYNC_CLOUDS.join(', ')}`)
  }
  return cloud as SyncCloud
}

function intArg(v: unknown, field: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalidField(field, `must be an integer ${min}-${max}`)
  }
  return v
}

function jobNotFound(): EngineError {
  return new EngineError('JOB_NOT_FOUND', 'no synchronization job of this tenant has that id')
}

/** Printable, bounded echo of a caller's vault reference for a message. */
function echo(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?')
  return clean.length > 64 ? `${clean.slice(0, 64)}…` : clean
}

/**
 * Creates key synchronization over a store, a job runner and the sources' factories.
 * @example
 * const sync = createKeySync({ store, jobs, sources: { pkcs11: openPkcs11Source } })
 * const c = await sync.createConnection('acme', { name: 'hsm', params: { cloud: 'pkcs11', … } })
 * const job = await sync.startSync('acme', { cloud: 'pkcs11', vaults: [c.name] })
 */
export function createKeySync(options: KeySyncOptions): KeySyncService {
  const clock = options.clock ?? SYSTEM_CLOCK
  const connections = new SyncConnections(
    options.store,
    options.sources,
    clock,
    options.secrets ?? createSecretResolver(),
  )
  const jobs = options.jobs
  const handlers = createSyncHandlers(connections, options.job)

  async function syncJob(tenant: string, id: string): Promise<JobView> {
    if (typeof id !== 'string' || id.length === 0) throw jobNotFound()
    const j = await jobs.get(tenant, id)
    if (cloudOfJobType(j.type) === undefined) throw jobNotFound()
    return j
  }

  /** The connections a request names (deduplicated, in the request's order) or all of the cloud. */
  async function selectConnections(
    tenant: string,
    cloud: SyncCloud,
    vaults: unknown,
    all: boolean,
  ): Promise<ConnectionRecord[]> {
    if (all) {
      const list = await connections.store.listConnections(tenant, cloud)
      if (list.length === 0) {
        throw invalidField('synchronizeAll', `the tenant has no ${cloud} connection to synchronize`)
      }
      return list
    }
    if (!Array.isArray(vaults) || vaults.length === 0 || vaults.length > 1000) {
      throw invalidField('vaults', 'must list 1-1000 connection names or ids')
    }
    const out: ConnectionRecord[] = []
    for (const v of vaults as unknown[]) {
      if (typeof v !== 'string' || v.length === 0) throw invalidField('vaults', 'must list names or ids')
      const c = await connections.find(tenant, v, { cloud, byLabel: cloud === 'pkcs11' })
      if (c === undefined) {
        throw new EngineError(
          'CONNECTION_NOT_FOUND',
          `no ${cloud} connection of this tenant is named ${echo(v)}`,
        )
      }
      if (!out.some((x) => x.id === c.id)) out.push(c)
    }
    return out
  }

  function regionsArg(
    cloud: SyncCloud,
    regions: unknown,
    selected: readonly ConnectionRecord[],
  ): string[] | undefined {
    if (regions === undefined) return undefined
    if (cloud !== 'aws') throw invalidField('regions', 'applies to AWS synchronizations only')
    if (!Array.isArray(regions) || regions.length === 0)
      throw invalidField('regions', 'must list at least one region')
    const out: string[] = []
    for (const r of regions as unknown[]) {
      if (typeof r !== 'string' || !AWS_REGION_RE.test(r))
        throw invalidField('regions', 'must hold AWS region names')
      if (!out.includes(r)) out.push(r)
    }
    for (const c of selected) {
      const own = c.params.cloud === 'aws' ? c.params.regions : []
      const missing = out.find((r) => !own.includes(r))
      if (missing !== undefined) {
        throw invalidField('regions', `${missing} is not a region of the connection ${c.name}`)
      }
    }
    return out
  }

  async function listAcross(
    tenant: string,
    types: readonly string[],
    states: readonly JobView['state'][] | undefined,
    skip: number,
    limit: number,
  ): Promise<{ jobs: JobView[]; total: number }> {
    const want = skip + limit
    const all: JobView[] = []
    let total = 0
    for (const type of types) {
      let offset = 0
      for (;;) {
        const page = await jobs.list(tenant, {
          type,
          ...(states === undefined ? {} : { states }),
          limit: Math.min(1000, Math.max(1, want - offset)),
          offset,
        })
        if (offset === 0) total += page.total
        all.push(...page.jobs)
        offset += page.jobs.length
        if (page.jobs.length === 0 || offset >= want || offset >= page.total) break
      }
    }
    all.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1))
    return { jobs: all.slice(skip, skip + limit), total }
  }

  return {
    handlers,
    close: () => connections.close(),

    async createConnection(tenant, input) {
      return connectionView(await connections.create(checkTenant(tenant), input))
    },
    async getConnection(tenant, idOrName) {
      return connectionView(await connections.get(checkTenant(tenant), idOrName))
    },
    async listConnections(tenant, query = {}) {
      const cloud = query.cloud === undefined ? undefined : cloudArg(query.cloud)
      return (await connections.store.listConnections(checkTenant(tenant), cloud)).map(connectionView)
    },
    async updateConnection(tenant, idOrName, patch) {
      return connectionView(await connections.update(checkTenant(tenant), idOrName, patch))
    },
    async deleteConnection(tenant, idOrName, options = {}) {
      await connections.delete(checkTenant(tenant), idOrName, options)
    },
    async testConnection(tenant, idOrName) {
      return connectionView(await connections.test(checkTenant(tenant), idOrName))
    },

    async startSync(tenant, request) {
      tenant = checkTenant(tenant)
      if (typeof request !== 'object' || request === null) throw invalidField('request', 'must be an object')
      const cloud = cloudArg(request.cloud)
      const hasVaults = request.vaults !== undefined
      const all = request.synchronizeAll === true
      if (request.synchronizeAll !== undefined && typeof request.synchronizeAll !== 'boolean') {
        throw invalidField('synchronizeAll', 'must be a boolean')
      }
      if (hasVaults && all) {
        throw invalidField('vaults', 'vaults and synchronizeAll are mutually exclusive')
      }
      if (!hasVaults && !all)
        throw invalidField('vaults', 'name the vaults to synchronize, or synchronizeAll')
      if (request.createdBy !== undefined && typeof request.createdBy !== 'string') {
        throw invalidField('createdBy', 'must be a string')
      }
      const selected = await selectConnections(tenant, cloud, request.vaults, all)
      const regions = regionsArg(cloud, request.regions, selected)
      const units: SyncUnit[] = []
      for (const c of selected) {
        if (c.params.cloud === 'aws') {
          for (const region of regions ?? c.params.regions) units.push({ connectionId: c.id, region })
        } else {
          units.push({ connectionId: c.id })
        }
      }
      const params: SyncJobParams = {
        cloud,
        vaults: selected.map((c) => ({ name: c.name, id: c.id })),
        ...(regions === undefined ? {} : { regions }),
        synchronizeAll: all,
        units,
      }
      const job = await jobs.submit(
        tenant,
        syncJobType(cloud),
        params,
        request.createdBy === undefined ? {} : { createdBy: request.createdBy },
      )
      return syncJobView(job)
    },

    async getSyncJob(tenant, id) {
      return syncJobView(await syncJob(checkTenant(tenant), id))
    },

    async listSyncJobs(tenant, query = {}) {
      tenant = checkTenant(tenant)
      const cloud = query.cloud === undefined ? undefined : cloudArg(query.cloud)
      if (query.overallStatus !== undefined && !STATUSES.includes(query.overallStatus)) {
        throw invalidField('overallStatus', `must be one of ${STATUSES.join(', ')}`)
      }
      const skip = intArg(query.skip, 'skip', 0, 1_000_000, 0)
      const limit = intArg(query.limit, 'limit', 1, 1000, 100)
      const states = query.overallStatus === undefined ? undefined : statesOf(query.overallStatus)
      const types = cloud === undefined ? SYNC_CLOUDS.map(syncJobType) : [syncJobType(cloud)]
      const r = await listAcross(tenant, types, states, skip, limit)
      return { jobs: r.jobs.map(syncJobView), total: r.total }
    },

    async cancelSync(tenant, id) {
      tenant = checkTenant(tenant)
      await syncJob(tenant, id)
      return syncJobView(await jobs.cancel(tenant, id))
    },

    async waitForSync(tenant, id, opts = {}) {
      tenant = checkTenant(tenant)
      await syncJob(tenant, id)
      return syncJobView(await jobs.waitFor(tenant, id, opts))
    },

    subscribeSync(tenant, id, listener): () => void {
      return jobs.subscribe(tenant, id, (j) => {
        if (cloudOfJobType(j.type) !== undefined) listener(syncJobView(j))
      })
    },

    async getLinkedKey(tenant, id) {
      return linkedKeyView(await mustGetLinkedKey(connections, checkTenant(tenant), id))
    },

    async listLinkedKeys(tenant, query = {}) {
      tenant = checkTenant(tenant)
      const cloud = query.cloud === undefined ? undefined : cloudArg(query.cloud)
      if (
        query.sourceState !== undefined &&
        query.sourceState !== 'present' &&
        query.sourceState !== 'deleted'
      ) {
        throw invalidField('sourceState', "must be 'present' or 'deleted'")
      }
      if (query.after !== undefined && typeof query.after !== 'string')
        throw invalidField('after', 'must be an id')
      const limit = intArg(query.limit, 'limit', 1, 1000, 100)
      let connectionId: string | undefined
      if (query.connection !== undefined) connectionId = (await connections.get(tenant, query.connection)).id
      const filter = { cloud, connectionId, sourceState: query.sourceState }
      const keys = await connections.store.listLinkedKeys(tenant, { ...filter, after: query.after, limit })
      const total = await connections.store.countLinkedKeys(tenant, filter)
      return { keys: keys.map(linkedKeyView), total }
    },

    purgeLinkedKey: async (tenant, id) => purgeLinked(connections, checkTenant(tenant), id),

    wrap: async (tenant, id, input) => wrapLinked(connections, checkTenant(tenant), id, input),
    unwrap: async (tenant, input) => unwrapLinked(connections, checkTenant(tenant), input),
  }
}
