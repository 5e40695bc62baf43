/**
 * Helpers of the job system over {@link JobRecord}s: the library's view of a record, final states, the JSON
 * of params, checkpoints and results, the tenant check, and the store-error wrapping.
 */
import { EngineError, invalidField } from '../errors.js'
import type { JobRecord, JobState } from '../ports-jobs.js'
import type { JobView } from './job-types.js'

const ACTIVE: ReadonlySet<JobState> = new Set(['queued', 'running'])
const TENANT_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

/** True for `completed`, `failed` and `cancelled`. */
export function isFinalJobState(state: JobState): boolean {
  return !ACTIVE.has(state)
}

/** The library's view of a record: params and result parsed, times as Dates, a percentage. */
export function toJobView(r: JobRecord): JobView {
  const progress =
    r.state === 'completed' ? 100 : r.total > 0 ? Math.min(100, Math.floor((r.done * 100) / r.total)) : 0
  return {
    id: r.id,
    type: r.type,
    tenant: r.tenant,
    state: r.state,
    params: parseJson(r.params),
    done: r.done,
    total: r.total,
    progress,
    cancelRequested: r.cancelRequested,
    error: r.error,
    result: r.result === undefined ? undefined : parseJson(r.result),
    checkpoint: r.checkpoint === undefined ? undefined : parseJson(r.checkpoint),
    createdBy: r.createdBy,
    createdAt: new Date(r.createdAt),
    updatedAt: new Date(r.updatedAt),
    startedAt: r.startedAt === undefined ? undefined : new Date(r.startedAt),
    finishedAt: r.finishedAt === undefined ? undefined : new Date(r.finishedAt),
  }
}

function parseJson(s: string): unknown {
  try {
    return JSON.parse(s) as unknown
  } catch {
    return undefined
  }
}

/** `value` as JSON (undefined as `null`). @throws EngineError INVALID_FIELD_ERR naming `field` */
export function toJson(value: unknown, field: string): string {
  let s: string | undefined
  try {
    s = JSON.stringify(value ?? null)
  } catch (err) {
    throw invalidField(field, `is not JSON-serialisable (${err instanceof Error ? err.name : 'error'})`)
  }
  if (s === undefined) throw invalidField(field, 'is not JSON-serialisable')
  return s
}

/** Runs a store call; anything but an EngineError becomes STORE_ERROR. */
export async function storeCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof EngineError) throw err
    throw new EngineError('STORE_ERROR', 'jobs: store call failed', { cause: err })
  }
}

/** A tenant id: 1-128 characters `[A-Za-z0-9._:-]`, starting with a letter or digit (as an instance id). */
export function checkTenant(tenant: unknown): string {
  if (typeof tenant !== 'string' || !TENANT_RE.test(tenant)) {
    throw invalidField('tenant', 'must be 1-128 characters [A-Za-z0-9._:-]')
  }
  return tenant
}

/** An error's code for logs: the EngineError code, or a foreign error's class name (never its message). */
export function codeOf(err: unknown): string {
  if (err instanceof EngineError) return err.code
  return err instanceof Error ? err.name : 'unknown'
}
