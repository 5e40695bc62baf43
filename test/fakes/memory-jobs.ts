/**
 * A minimal in-memory {@link Jobs} for unit tests of job handlers and the services that submit jobs: one
 * active job of a type per tenant, handlers run at once in this process, checkpoints and progress kept in
 * memory (monotonic done), cancel through the signal. Not durable: the real runner is
 * src/core/jobs/runner.ts over the store's JobStore role.
 */
import { randomUUID } from 'node:crypto'
import { EngineError } from '../../src/core/errors.js'
import type { JobControl, JobHandler, Jobs, JobView } from '../../src/core/jobs/job-types.js'
import type { JobRecord, JobState } from '../../src/core/ports-jobs.js'

const FINAL: readonly JobState[] = ['completed', 'failed', 'cancelled']

export class MemoryJobs implements Jobs {
  readonly records = new Map<string, JobRecord>()
  readonly #handlers = new Map<string, JobHandler>()
  readonly #listeners = new Map<string, Set<(j: JobView) => void>>()
  readonly #aborts = new Map<string, AbortController>()
  readonly #runs = new Set<Promise<void>>()
  #seq = 0
  /** Hold new jobs queued until {@link start} (to test `New`). */
  paused = false

  register(h: JobHandler): void {
    this.#handlers.set(h.type, h)
  }

  view(r: JobRecord): JobView {
    return {
      id: r.id,
      type: r.type,
      tenant: r.tenant,
      state: r.state,
      params: JSON.parse(r.params),
      done: r.done,
      total: r.total,
      progress:
        r.state === 'completed'
          ? 100
          : r.total === 0
            ? 0
            : Math.min(100, Math.floor((r.done / r.total) * 100)),
      cancelRequested: r.cancelRequested,
      error: r.error,
      result: r.result === undefined ? undefined : JSON.parse(r.result),
      createdBy: r.createdBy,
      createdAt: new Date(r.createdAt),
      updatedAt: new Date(r.updatedAt),
      startedAt: r.startedAt === undefined ? undefined : new Date(r.startedAt),
      finishedAt: r.finishedAt === undefined ? undefined : new Date(r.finishedAt),
    }
  }

  #set(id: string, patch: Partial<JobRecord>): JobRecord {
    const r = { ...this.records.get(id)!, ...patch, updatedAt: Date.now() }
    this.records.set(id, { ...r, revision: r.revision + 1 })
    const v = this.view(this.records.get(id)!)
    for (const l of this.#listeners.get(id) ?? []) l(v)
    return this.records.get(id)!
  }

  async submit(
    tenant: string,
    type: string,
    params: unknown,
    options: { createdBy?: string } = {},
  ): Promise<JobView> {
    const h = this.#handlers.get(type)
    if (h === undefined) throw new EngineError('INVALID_FIELD_ERR', 'type: unknown job type')
    await h.validate?.(tenant, params)
    for (const r of this.records.values()) {
      if (r.tenant === tenant && r.type === type && !FINAL.includes(r.state)) {
        throw new EngineError('JOB_CONFLICT', 'one is active')
      }
    }
    const now = Date.now()
    const r: JobRecord = {
      id: randomUUID(),
      type,
      tenant,
      state: 'queued',
      params: JSON.stringify(params),
      checkpoint: undefined,
      done: 0,
      total: 0,
      cancelRequested: false,
      error: undefined,
      result: undefined,
      createdBy: options.createdBy,
      createdAt: now + this.#seq++ / 1000,
      updatedAt: now,
      startedAt: undefined,
      finishedAt: undefined,
      revision: 1,
    }
    this.records.set(r.id, r)
    if (!this.paused) this.#start(r.id)
    return this.view(r)
  }

  /** Starts every queued job (after {@link paused}). */
  start(): void {
    this.paused = false
    for (const r of this.records.values()) if (r.state === 'queued') this.#start(r.id)
  }

  #start(id: string): void {
    const ac = new AbortController()
    this.#aborts.set(id, ac)
    const run = (async () => {
      await Promise.resolve()
      const r = this.#set(id, { state: 'running', startedAt: Date.now() })
      const h = this.#handlers.get(r.type)!
      const ctl: JobControl = {
        job: r,
        signal: ac.signal,
        checkpoint: async (cp, p) => {
          const cur = this.records.get(id)!
          if (cur.cancelRequested) throw new EngineError('ABORTED', 'cancelled')
          this.#set(id, { checkpoint: JSON.stringify(cp), done: Math.max(cur.done, p.done), total: p.total })
        },
      }
      try {
        const result = await h.run(ctl)
        this.#set(id, {
          state: 'completed',
          finishedAt: Date.now(),
          result: result === undefined ? undefined : JSON.stringify(result),
        })
      } catch (err) {
        const e = err instanceof EngineError ? err : new EngineError('INTERNAL_ERROR', String(err))
        if (ac.signal.aborted || this.records.get(id)!.cancelRequested) {
          this.#set(id, { state: 'cancelled', finishedAt: Date.now() })
        } else {
          this.#set(id, {
            state: 'failed',
            finishedAt: Date.now(),
            error: { code: e.code, message: e.message },
          })
        }
      }
    })()
    this.#runs.add(run)
    void run.finally(() => this.#runs.delete(run))
  }

  async get(tenant: string, id: string): Promise<JobView> {
    const r = this.records.get(id)
    if (r === undefined || r.tenant !== tenant) throw new EngineError('JOB_NOT_FOUND', 'no such job')
    return this.view(r)
  }

  async list(
    tenant: string,
    q: { type?: string; states?: readonly JobState[]; limit?: number; offset?: number } = {},
  ): Promise<{ jobs: JobView[]; total: number }> {
    const all = [...this.records.values()]
      .filter((r) => r.tenant === tenant && (q.type === undefined || r.type === q.type))
      .filter((r) => q.states === undefined || q.states.includes(r.state))
      .sort((a, b) => b.createdAt - a.createdAt)
    const off = q.offset ?? 0
    return { jobs: all.slice(off, off + (q.limit ?? 100)).map((r) => this.view(r)), total: all.length }
  }

  async cancel(tenant: string, id: string): Promise<JobView> {
    const r = await this.get(tenant, id)
    if (FINAL.includes(r.state)) throw new EngineError('JOB_FINISHED', 'finished')
    this.#set(id, { cancelRequested: true })
    this.#aborts.get(id)?.abort()
    return this.view(this.records.get(id)!)
  }

  async waitFor(tenant: string, id: string): Promise<JobView> {
    await this.get(tenant, id)
    return new Promise((resolve) => {
      // Subscribe first, then look: a job that ends in between is not missed.
      const off = this.subscribe(tenant, id, (j) => {
        if (FINAL.includes(j.state)) {
          off()
          resolve(j)
        }
      })
      const now = this.view(this.records.get(id)!)
      if (FINAL.includes(now.state)) {
        off()
        resolve(now)
      }
    })
  }

  subscribe(_tenant: string, id: string, listener: (job: JobView) => void): () => void {
    let set = this.#listeners.get(id)
    if (set === undefined) this.#listeners.set(id, (set = new Set()))
    set.add(listener)
    return () => set.delete(listener)
  }

  /** Waits for every running handler. */
  async idle(): Promise<void> {
    while (this.#runs.size > 0) await Promise.all([...this.#runs])
  }
}
