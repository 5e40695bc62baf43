/**
 * Record → view mappings of key synchronization: connections to {@link ConnectionView} (params as stored:
 * secret references only), linked keys to {@link LinkedKeyView}, and sync jobs to {@link SyncJobView}
 * (`overallStatus`: queued and running show as `in_progress`), with the params and checkpoint shapes of the
 * job (job.ts writes them).
 */
import type { JobView } from '../jobs/job-types.js'
import type { JobState } from '../ports-jobs.js'
import { SYNC_CLOUDS, type ConnectionRecord, type LinkedKeyRecord, type SyncCloud } from '../ports-sync.js'
import {
  syncJobType,
  type ConnectionView,
  type LinkedKeyView,
  type SyncCounts,
  type SyncJobView,
  type SyncOverallStatus,
} from './types.js'

/** One unit of a sync job: a connection (AWS: one of its regions). */
export interface SyncUnit {
  readonly connectionId: string
  /** AWS only: the region discovered in this unit. */
  readonly region?: string | undefined
}

/** The params of a sync job, resolved at submission. */
export interface SyncJobParams {
  readonly cloud: SyncCloud
  readonly vaults: readonly { readonly name: string; readonly id: string }[]
  readonly regions?: readonly string[] | undefined
  readonly synchronizeAll: boolean
  /** What the job runs through, in order: fixed at submission so that a resume finds the same list. */
  readonly units: readonly SyncUnit[]
}

/** The durable checkpoint of a sync job. */
export interface SyncCheckpoint {
  /** Units finished (their discovery complete and their missing keys marked). */
  readonly unit: number
  /** Keys of unit `unit` already counted (a resumed run upserts them again without counting them). */
  readonly seen: number
  readonly counts: SyncCounts
}

export const ZERO_COUNTS: SyncCounts = {
  discovered: 0,
  inserted: 0,
  updated: 0,
  unchanged: 0,
  markedDeleted: 0,
}

const SYNC_TYPES: ReadonlyMap<string, SyncCloud> = new Map(SYNC_CLOUDS.map((c) => [syncJobType(c), c]))

/** The cloud of a sync job type, or undefined for any other job type. */
export function cloudOfJobType(type: string): SyncCloud | undefined {
  return SYNC_TYPES.get(type)
}

export function overallStatusOf(state: JobState): SyncOverallStatus {
  switch (state) {
    case 'queued':
    case 'running':
      return 'in_progress'
    case 'completed':
    case 'failed':
    case 'cancelled':
      return state
  }
}

/** The job states of an `overallStatus` filter. */
export function statesOf(status: SyncOverallStatus): readonly JobState[] {
  return status === 'in_progress' ? ['queued', 'running'] : [status]
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0
}

/** Counters from a JSON value (a result or a checkpoint's `counts`). */
export function countsOf(v: unknown): SyncCounts {
  if (typeof v !== 'object' || v === null) return ZERO_COUNTS
  const o = v as Record<string, unknown>
  return {
    discovered: num(o['discovered']),
    inserted: num(o['inserted']),
    updated: num(o['updated']),
    unchanged: num(o['unchanged']),
    markedDeleted: num(o['markedDeleted']),
  }
}

/** A checkpoint from its JSON value (a fresh one when absent or malformed). */
export function checkpointOf(v: unknown): SyncCheckpoint {
  if (typeof v !== 'object' || v === null) return { unit: 0, seen: 0, counts: ZERO_COUNTS }
  const o = v as Record<string, unknown>
  return { unit: num(o['unit']), seen: num(o['seen']), counts: countsOf(o['counts']) }
}

function paramsOf(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {}
}

/** The view of a sync job (the caller checked that `job.type` is a sync type). */
export function syncJobView(job: JobView): SyncJobView {
  const p = paramsOf(job.params) as { vaults?: unknown; regions?: unknown; synchronizeAll?: unknown }
  const cloud = cloudOfJobType(job.type) ?? 'azure'
  const counts =
    job.result !== undefined && job.result !== null
      ? countsOf(job.result)
      : countsOf((job.checkpoint as { counts?: unknown } | undefined)?.counts)
  return {
    id: job.id,
    tenant: job.tenant,
    cloud,
    overallStatus: overallStatusOf(job.state),
    state: job.state,
    abort: job.cancelRequested,
    vaults: Array.isArray(p.vaults)
      ? (p.vaults as readonly { name: unknown; id: unknown }[]).map((v) => ({
          name: String(v.name),
          id: String(v.id),
        }))
      : [],
    regions: Array.isArray(p.regions) ? (p.regions as readonly unknown[]).map(String) : undefined,
    synchronizeAll: p.synchronizeAll === true,
    done: job.done,
    total: job.total,
    progress: job.progress,
    counts,
    error: job.error,
    createdBy: job.createdBy,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
  }
}

export function connectionView(r: ConnectionRecord): ConnectionView {
  return {
    id: r.id,
    name: r.name,
    cloud: r.cloud,
    description: r.description,
    params: r.params,
    createdAt: new Date(r.createdAt),
    updatedAt: new Date(r.updatedAt),
    lastTest:
      r.lastTest === undefined
        ? undefined
        : { testedAt: new Date(r.lastTest.testedAt), ok: r.lastTest.ok, checks: r.lastTest.checks },
  }
}

export function linkedKeyView(r: LinkedKeyRecord): LinkedKeyView {
  return {
    id: r.id,
    cloud: r.cloud,
    connectionId: r.connectionId,
    vault: r.vault,
    sourceKeyId: r.sourceKeyId,
    name: r.name,
    keyType: r.keyType,
    usable: r.usable,
    enabled: r.enabled,
    versions: r.versions,
    attributes: r.attributes,
    sourceState: r.sourceState,
    deletedAtSourceAt: r.deletedAtSourceAt === undefined ? undefined : new Date(r.deletedAtSourceAt),
    firstSyncedAt: new Date(r.firstSyncedAt),
    lastSyncedAt: new Date(r.lastSyncedAt),
    lastSyncJobId: r.lastSyncJobId,
  }
}
