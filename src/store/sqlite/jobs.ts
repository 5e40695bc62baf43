/**
 * The job store role of the SQLite catalog ({@link JobStore} in core/ports-jobs.ts), migration 11. The
 * unique partial index `jobs_one_active` over (tenant, type) of the active rows is what refuses a second
 * active job of a type for a tenant, across processes; every update is a compare-and-set on `revision`.
 */
import type { Database as Db, Statement } from 'better-sqlite3'
import type { JobPatch, JobRecord, JobState, JobStore, ListJobsQuery } from '../../core/ports-jobs.js'

interface JobRow {
  id: string
  type: string
  tenant: string
  state: string
  params: string
  checkpoint: string | null
  done: number
  total: number
  cancel_requested: number
  error_code: string | null
  error_message: string | null
  result: string | null
  created_by: string | null
  created_at: number
  updated_at: number
  started_at: number | null
  finished_at: number | null
  revision: number
  lease_owner: string | null
  lease_until: number | null
}

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v)

function toJob(r: JobRow): JobRecord {
  return {
    id: r.id,
    type: r.type,
    tenant: r.tenant,
    state: r.state as JobState,
    params: r.params,
    checkpoint: opt(r.checkpoint),
    done: r.done,
    total: r.total,
    cancelRequested: r.cancel_requested === 1,
    error: r.error_code === null ? undefined : { code: r.error_code, message: r.error_message ?? '' },
    result: opt(r.result),
    createdBy: opt(r.created_by),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    startedAt: opt(r.started_at),
    finishedAt: opt(r.finished_at),
    revision: r.revision,
    leaseOwner: opt(r.lease_owner),
    leaseUntil: opt(r.lease_until),
  }
}

/** Each patchable field: its column(s) and the SQL values of a patch value. */
const PATCH: { readonly [K in keyof Required<JobPatch>]: (v: JobPatch[K]) => [string, unknown][] } = {
  state: (v) => [['state', v ?? null]],
  checkpoint: (v) => [['checkpoint', v ?? null]],
  done: (v) => [['done', v ?? 0]],
  total: (v) => [['total', v ?? 0]],
  cancelRequested: (v) => [['cancel_requested', v === true ? 1 : 0]],
  error: (v) => [
    ['error_code', v?.code ?? null],
    ['error_message', v?.message ?? null],
  ],
  result: (v) => [['result', v ?? null]],
  updatedAt: (v) => [['updated_at', v ?? null]],
  startedAt: (v) => [['started_at', v ?? null]],
  finishedAt: (v) => [['finished_at', v ?? null]],
  leaseOwner: (v) => [['lease_owner', v ?? null]],
  leaseUntil: (v) => [['lease_until', v ?? null]],
}

function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === 'SQLITE_CONSTRAINT_UNIQUE'
}

/** The {@link JobStore} methods over `db` (SqliteStore delegates to them). */
export function jobStore(db: Db): JobStore {
  const insert = db.prepare(
    `INSERT INTO jobs (id, type, tenant, state, params, checkpoint, done, total, cancel_requested, error_code,
       error_message, result, created_by, created_at, updated_at, started_at, finished_at, revision,
       lease_owner, lease_until)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  )
  const get = db.prepare<[string], JobRow>('SELECT * FROM jobs WHERE id = ?')
  // The WHERE matches the partial index's, so SQLite can use jobs_one_active.
  const active = db.prepare<[], JobRow>(
    "SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY created_at, id",
  )
  /** UPDATE statements by the patch's field list (a handful of shapes: the runner's few kinds of write). */
  const updates = new Map<string, Statement>()
  const updateFor = (columns: readonly string[]): Statement => {
    const key = columns.join(',')
    let st = updates.get(key)
    if (st === undefined) {
      const sets = columns.map((c) => `${c} = ?`).join(', ')
      st = db.prepare(
        `UPDATE jobs SET ${sets}${sets === '' ? '' : ', '}revision = revision + 1
         WHERE id = ? AND revision = ? RETURNING *`,
      )
      updates.set(key, st)
    }
    return st
  }
  return {
    insertJob: async (j) => {
      try {
        insert.run(
          j.id,
          j.type,
          j.tenant,
          j.state,
          j.params,
          j.checkpoint ?? null,
          j.done,
          j.total,
          j.cancelRequested ? 1 : 0,
          j.error?.code ?? null,
          j.error?.message ?? null,
          j.result ?? null,
          j.createdBy ?? null,
          j.createdAt,
          j.updatedAt,
          j.startedAt ?? null,
          j.finishedAt ?? null,
          j.revision,
          j.leaseOwner ?? null,
          j.leaseUntil ?? null,
        )
        return true
      } catch (err) {
        if (isUniqueViolation(err)) return false
        throw err
      }
    },
    getJob: async (id) => {
      const r = get.get(id)
      return r === undefined ? undefined : toJob(r)
    },
    listJobs: async (q: ListJobsQuery) => {
      const where: string[] = []
      const args: unknown[] = []
      if (q.tenant !== undefined) {
        where.push('tenant = ?')
        args.push(q.tenant)
      }
      if (q.type !== undefined) {
        where.push('type = ?')
        args.push(q.type)
      }
      if (q.states !== undefined) {
        where.push(`state IN (${q.states.map(() => '?').join(', ') || 'NULL'})`)
        args.push(...q.states)
      }
      const w = where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`
      const rows = db
        .prepare<unknown[], JobRow>(
          `SELECT * FROM jobs ${w} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`,
        )
        .all(...args, q.limit, q.offset)
      const total =
        db
          .prepare<unknown[], number>(`SELECT COUNT(*) FROM jobs ${w}`)
          .pluck()
          .get(...args) ?? 0
      return { jobs: rows.map(toJob), total }
    },
    updateJob: async (id, expectedRevision, patch) => {
      const pairs: [string, unknown][] = []
      for (const k of Object.keys(patch) as (keyof JobPatch)[]) {
        const f = PATCH[k] as ((v: unknown) => [string, unknown][]) | undefined
        if (f !== undefined) pairs.push(...f(patch[k]))
      }
      const r = updateFor(pairs.map((p) => p[0])).get(...pairs.map((p) => p[1]), id, expectedRevision) as
        JobRow | undefined
      return r === undefined ? undefined : toJob(r)
    },
    listActiveJobs: async () => active.all().map(toJob),
  }
}
