/**
 * An in-memory {@link JobStore} for unit tests, with the SQLite role's semantics: `insertJob` refuses a
 * second active (queued or running) job of a type per tenant (the unique partial index), `updateJob` is a
 * compare-and-set on `revision`, records are copied in and out (a caller never holds the stored object).
 * Two runners given the same MemoryJobStore behave like two processes sharing one catalog.
 * `failNext` makes the next calls of a method throw (a store outage); `writes` counts successful updates.
 */
import type { JobPatch, JobRecord, JobStore, ListJobsQuery } from '../../src/core/ports-jobs.js'

const active = (j: JobRecord): boolean => j.state === 'queued' || j.state === 'running'

export class MemoryJobStore implements JobStore {
  readonly #jobs = new Map<string, JobRecord>()
  readonly #failures = new Map<keyof JobStore, number>()
  /** Successful updateJob calls. */
  writes = 0

  /** The next `times` calls of `method` throw a plain Error (as a driver would). */
  failNext(method: keyof JobStore, times = 1): void {
    this.#failures.set(method, times)
  }

  #maybeFail(method: keyof JobStore): void {
    const n = this.#failures.get(method) ?? 0
    if (n > 0) {
      this.#failures.set(method, n - 1)
      throw new Error(`memory job store: ${method} failed`)
    }
  }

  async insertJob(job: JobRecord): Promise<boolean> {
    this.#maybeFail('insertJob')
    if (this.#jobs.has(job.id)) throw new Error('memory job store: duplicate id')
    if (active(job)) {
      for (const j of this.#jobs.values()) {
        if (active(j) && j.tenant === job.tenant && j.type === job.type) return false
      }
    }
    this.#jobs.set(job.id, { ...job })
    return true
  }

  async getJob(id: string): Promise<JobRecord | undefined> {
    this.#maybeFail('getJob')
    const j = this.#jobs.get(id)
    return j === undefined ? undefined : { ...j }
  }

  async listJobs(q: ListJobsQuery): Promise<{ jobs: JobRecord[]; total: number }> {
    this.#maybeFail('listJobs')
    const all = [...this.#jobs.values()]
      .filter(
        (j) =>
          (q.tenant === undefined || j.tenant === q.tenant) &&
          (q.type === undefined || j.type === q.type) &&
          (q.states === undefined || q.states.includes(j.state)),
      )
      .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
    return { jobs: all.slice(q.offset, q.offset + q.limit).map((j) => ({ ...j })), total: all.length }
  }

  async updateJob(id: string, expectedRevision: number, patch: JobPatch): Promise<JobRecord | undefined> {
    this.#maybeFail('updateJob')
    const j = this.#jobs.get(id)
    if (j === undefined || j.revision !== expectedRevision) return undefined
    const next: JobRecord = { ...j, ...patch, revision: j.revision + 1 }
    if (active(next) && !active(j)) {
      for (const o of this.#jobs.values()) {
        if (o.id !== id && active(o) && o.tenant === next.tenant && o.type === next.type) {
          throw new Error('memory job store: unique constraint (tenant, type) of active jobs')
        }
      }
    }
    this.#jobs.set(id, next)
    this.writes++
    return { ...next }
  }

  async listActiveJobs(): Promise<JobRecord[]> {
    this.#maybeFail('listActiveJobs')
    return [...this.#jobs.values()]
      .filter(active)
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((j) => ({ ...j }))
  }
}
