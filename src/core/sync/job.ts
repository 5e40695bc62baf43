/**
 * The synchronization job (type `cckm-sync:<cloud>`, one handler per cloud): for each unit of the job (a
 * connection; AWS: a connection × one of its regions), open the connection's source, iterate its
 * `discover()`, upsert the keys into the linked-key catalog in batches, and once the unit's discovery
 * completed mark the keys the source no longer has as deleted at the source.
 *
 * Idempotency and resume:
 * - the units are fixed at submission (params), so a resumed run walks the same list;
 * - a checkpoint (unit index, keys of the unit already counted, counters) is written after each batch and
 *   after each unit; a run resumed mid-unit discovers that unit again from its start and upserts every key
 *   again (same job id: the upsert is idempotent, a key keeps its id), counting only the keys beyond those
 *   already counted, so the counters match what a run without the crash would report;
 * - `markMissingDeleted` runs only after a unit's discovery completed, and only for keys whose
 *   `lastSyncJobId` is not this job: a key the unit saw (in this run or the interrupted one) is never marked.
 *
 * A cancel (or the runner closing) stops the job at the next key or batch: no key is upserted once the
 * signal is aborted. A source failure fails the job with the source's code (PROVIDER_UNAVAILABLE, …).
 */
import { randomUUID } from 'node:crypto'
import { EngineError } from '../errors.js'
import type { JobControl, JobHandler } from '../jobs/job-types.js'
import { SYNC_CLOUDS, type DiscoveredKey, type SyncCloud, type SyncSource } from '../ports-sync.js'
import type { SyncConnections } from './connections.js'
import { syncJobType, type SyncCounts } from './types.js'
import { checkpointOf, type SyncJobParams, type SyncUnit } from './views.js'

/** Options of {@link createSyncHandler}. */
export interface SyncHandlerOptions {
  /** Keys per upsert transaction (and per checkpoint); default 100. */
  readonly batchSize?: number
}

function badParams(what: string): EngineError {
  return new EngineError('INVALID_FIELD_ERR', `params: ${what}`, {
    target: { type: 'field', name: 'params' },
  })
}

/** Reads and checks the params of a sync job of `cloud`. @throws EngineError INVALID_FIELD_ERR */
export function readSyncParams(cloud: SyncCloud, params: unknown): SyncJobParams {
  const p = (typeof params === 'string' ? parseJson(params) : params) as Partial<SyncJobParams> | null
  if (p === null || typeof p !== 'object') throw badParams('must be an object')
  if (p.cloud !== cloud) throw badParams(`cloud must be ${cloud}`)
  if (!Array.isArray(p.units) || !Array.isArray(p.vaults)) throw badParams('units and vaults are required')
  const units: SyncUnit[] = []
  for (const u of p.units as unknown[]) {
    const o = u as Partial<SyncUnit> | null
    if (o === null || typeof o !== 'object' || typeof o.connectionId !== 'string') {
      throw badParams('each unit names a connection')
    }
    if (o.region !== undefined && (typeof o.region !== 'string' || cloud !== 'aws')) {
      throw badParams('only AWS units name a region')
    }
    units.push(
      o.region === undefined
        ? { connectionId: o.connectionId }
        : { connectionId: o.connectionId, region: o.region },
    )
  }
  return {
    cloud,
    vaults: p.vaults,
    regions: Array.isArray(p.regions) ? p.regions : undefined,
    synchronizeAll: p.synchronizeAll === true,
    units,
  }
}

/** Runs a catalog call; anything but an EngineError becomes STORE_ERROR (never mistaken for the source's). */
async function storeCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof EngineError) throw err
    throw new EngineError('STORE_ERROR', 'synchronization: catalog call failed', { cause: err })
  }
}

/** A checkpoint's JSON, or undefined (absent or unreadable: the job starts from the first unit again). */
function parseJson(s: string | undefined): unknown {
  if (s === undefined) return undefined
  try {
    return JSON.parse(s) as unknown
  } catch {
    return undefined
  }
}

function aborted(cause?: unknown): EngineError {
  return new EngineError('ABORTED', 'synchronization: stopped', cause === undefined ? {} : { cause })
}

/** A source failure as an EngineError (a foreign error's message is not kept: it may carry secrets). */
function sourceFailure(err: unknown): EngineError {
  if (err instanceof EngineError) return err
  return new EngineError(
    'PROVIDER_ERROR',
    `synchronization: the source failed (${err instanceof Error ? err.name : 'error'})`,
    { cause: err },
  )
}

/** The sync job handler of `cloud` over `connections` (its store, sources and clock). */
export function createSyncHandler(
  cloud: SyncCloud,
  connections: SyncConnections,
  options: SyncHandlerOptions = {},
): JobHandler {
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? 100))
  const store = connections.store

  async function run(ctl: JobControl): Promise<SyncCounts> {
    const { tenant, id: jobId } = ctl.job
    const params = readSyncParams(cloud, ctl.job.params)
    const signal = ctl.signal
    const cp = checkpointOf(parseJson(ctl.job.checkpoint))
    const counts = { ...cp.counts }
    const total = params.units.length

    for (let i = cp.unit; i < total; i++) {
      if (signal.aborted) throw aborted()
      const unit = params.units[i]
      if (unit === undefined) break
      const conn = await storeCall(() => store.getConnection(tenant, unit.connectionId))
      if (conn === undefined || conn.cloud !== cloud) {
        throw new EngineError(
          'CONNECTION_NOT_FOUND',
          'synchronization: a connection of the job no longer exists',
        )
      }
      const skip = i === cp.unit ? cp.seen : 0
      let seen = 0
      let batch: DiscoveredKey[] = []

      const flush = async (): Promise<void> => {
        if (batch.length === 0) return
        if (signal.aborted) throw aborted()
        const keys = batch.map((k) => ({ ...k, id: randomUUID() }))
        const outcomes = await storeCall(() =>
          store.upsertLinkedKeys(tenant, conn.id, cloud, keys, { at: connections.clock.now(), jobId }),
        )
        for (const [j, o] of outcomes.entries()) {
          if (seen + j < skip) continue
          counts.discovered++
          counts[o]++
        }
        seen += batch.length
        batch = []
        await ctl.checkpoint({ unit: i, seen: Math.max(seen, skip), counts }, { done: i, total })
      }

      let source: SyncSource
      try {
        source = await connections.source(conn)
      } catch (err) {
        throw connections.failure(tenant, conn.id, sourceFailure(err))
      }
      const regions = unit.region === undefined ? undefined : [unit.region]
      const it = source.discover({ regions, signal })[Symbol.asyncIterator]()
      try {
        for (;;) {
          let next: IteratorResult<DiscoveredKey>
          try {
            next = await it.next()
          } catch (err) {
            if (signal.aborted) throw aborted(err)
            // A failed source may be broken (expired session, closed socket): the next use reopens it.
            await connections.forget(tenant, conn.id)
            throw connections.failure(tenant, conn.id, sourceFailure(err))
          }
          if (next.done === true) break
          if (signal.aborted) throw aborted()
          batch.push(next.value)
          if (batch.length >= batchSize) await flush()
        }
      } catch (err) {
        await it.return?.().catch(() => undefined)
        throw err
      }
      await flush()
      if (signal.aborted) throw aborted()
      // The unit's discovery is complete: what it did not see is no longer at the source.
      counts.markedDeleted += await storeCall(() =>
        store.markMissingDeleted(
          tenant,
          conn.id,
          jobId,
          connections.clock.now(),
          unit.region === undefined ? undefined : [unit.region],
        ),
      )
      await ctl.checkpoint({ unit: i + 1, seen: 0, counts }, { done: i + 1, total })
    }
    return counts
  }

  return {
    type: syncJobType(cloud),
    validate: (_tenant, params) => {
      readSyncParams(cloud, params)
    },
    run,
  }
}

/** One handler per cloud. */
export function createSyncHandlers(
  connections: SyncConnections,
  options: SyncHandlerOptions = {},
): JobHandler[] {
  return SYNC_CLOUDS.map((c) => createSyncHandler(c, connections, options))
}
