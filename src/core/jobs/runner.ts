/**
 * The job runner: executes durable jobs ({@link JobRecord}s in a {@link JobStore}) with one
 * {@link JobHandler} per job type, and offers {@link Jobs} to the services that submit them.
 *
 * ## Protocol
 *
 * - **One active job of a type per tenant.** `submit` inserts a `queued` record; the store's unique partial
 *   index over (tenant, type) of the active (`queued`, `running`) records refuses a second one, in any
 *   process (→ JOB_CONFLICT). The runner does no check of its own that could race.
 * - **Every write is a compare-and-set** on the record's `revision` ({@link JobStore.updateJob}). Within one
 *   runner the writes of one job are serialised; a failed CAS means another process wrote: the runner
 *   re-reads the record and decides again from what it finds.
 * - **Leases.** A runner (one per process, `owner` a {@link localOwnerId}: this machine's boot, PID namespace
 *   and pid, and a random UUID) runs a job only after claiming it: a CAS that sets `state: running`,
 *   `leaseOwner: owner`, `leaseUntil: now + leaseMs`. It claims a job that is `queued`, or `running` with no
 *   lease or an expired one (its owner crashed, or closed and released it), or a lease whose owner was a
 *   process of this machine that no longer exists (a crash: taken over at once, see local-owner.ts).
 *   While the handler runs, every checkpoint and a heartbeat every `leaseMs / 3` renew the lease. A runner
 *   that finds another owner on its record (a failed CAS, then a re-read) has lost the job: it aborts the
 *   handler and writes nothing more. Because the takeover itself bumps the revision, a runner that lost its
 *   lease cannot write a checkpoint or a final state afterwards (the revision fences it); only the
 *   handler's own side effects since its last checkpoint can overlap, and those must be idempotent anyway
 *   (the handler contract, for crash recovery). A runner whose lease lapsed because its renewals failed
 *   (store unreachable) aborts the handler as well. Processes sharing a store need clocks that agree to
 *   well within `leaseMs`.
 * - **Resume.** `start()` enqueues every active job of a known type; a periodic sweep (every
 *   `sweepIntervalMs`) enqueues jobs whose lease expired and jobs queued by other processes. A resumed
 *   handler gets the record with its last durable `checkpoint`.
 * - **Checkpoint.** `ctl.checkpoint()` writes the checkpoint and progress (`done` never decreases: the
 *   larger of the stored and the given value is recorded) and renews the lease, in one CAS. It throws
 *   ABORTED, recording nothing, once a cancel was requested (seen locally or on the re-read after a failed
 *   CAS) or the lease was lost. While the runner is closing it still records (progress is kept).
 * - **Cancel.** A queued job, or a running one whose lease expired, is cancelled at once. A running job gets
 *   `cancelRequested: true` durably, then its handler's signal is aborted (here, or in the owning process at
 *   its next heartbeat or checkpoint); when the handler returns or throws with its signal aborted by the
 *   cancel, the job ends `cancelled`. A handler that returns normally without having been signalled has
 *   finished its work: the job ends `completed` even when a cancel arrived at the very end.
 * - **Outcome.** The handler returns → `completed` (with its result). It throws an EngineError → `failed`
 *   with that code and message; anything else → `failed` with INTERNAL_ERROR and a generic message (the
 *   cause goes to `log` by name only: messages of foreign errors may carry secrets).
 * - **Close.** `close()` aborts the running handlers with reason "closing", waits for them, and releases
 *   their leases (the records stay `running` with their checkpoint): the next `start()`, here or in another
 *   process, resumes them at once. Close never marks a job cancelled or failed.
 * - **Events.** Subscribers get the record after each durable change this runner makes (claim, checkpoint,
 *   cancel, final state). `waitFor` also polls the store every `pollIntervalMs`, so it sees jobs that other
 *   processes run.
 * - **Concurrency.** At most `concurrency` handlers run at once in this runner; the other jobs stay
 *   `queued` (unclaimed) until a slot frees, or another process's runner claims them.
 *
 * Beside it: `job-records.ts` (the view of a record, JSON, checks), `job-events.ts` (listeners, waitFor).
 */
import { randomUUID } from 'node:crypto'
import { EngineError, invalidField } from '../errors.js'
import type { Clock } from '../ports.js'
import type { JobPatch, JobRecord, JobState, JobStore } from '../ports-jobs.js'
import { JobEvents } from './job-events.js'
import { checkTenant, codeOf, isFinalJobState, storeCall, toJobView, toJson } from './job-records.js'
import type { JobControl, JobHandler, JobView, Jobs } from './job-types.js'
import { localOwnerGone, localOwnerId } from './local-owner.js'

/** One line of the runner's log. Never carries params, checkpoints, results or foreign error messages. */
export interface JobLogEntry {
  readonly level: 'info' | 'warn' | 'error'
  readonly msg: string
  readonly jobId?: string | undefined
  readonly type?: string | undefined
  readonly tenant?: string | undefined
  /** The error code of a failure, or the name of a foreign error's class. */
  readonly code?: string | undefined
}

/** Options of {@link createJobRunner}. */
export interface JobRunnerOptions {
  readonly store: JobStore
  readonly clock: Clock
  /** One handler per job type (types must be unique). */
  readonly handlers: readonly JobHandler[]
  /** How many jobs run at once in this runner (default 2). */
  readonly concurrency?: number
  /** How long a claim holds a job without renewal (default 30 s); renewed every `leaseMs / 3`. */
  readonly leaseMs?: number
  /** How often the runner looks for jobs to take over or queued by other processes (default 5 s). */
  readonly sweepIntervalMs?: number
  /** How often `waitFor` re-reads the job from the store (default 1 s). */
  readonly pollIntervalMs?: number
  /**
   * This runner's lease owner id (default: {@link localOwnerId}, which lets a restarted process take over the
   * jobs of a crashed one on the same machine at once). Must be unique among live runners.
   */
  readonly owner?: string
  readonly log?: (entry: JobLogEntry) => void
}

type AbortReason = 'cancel' | 'closing' | 'lease'

/** A job this runner has claimed and whose handler runs. */
interface Run {
  /** The newest record this runner knows (the CAS base of its next write). */
  record: JobRecord
  readonly controller: AbortController
  reason: AbortReason | undefined
  /** The tail of this job's serialised writes. */
  chain: Promise<unknown>
  /** Resolves once the handler returned and the final write is done. */
  settled: Promise<void>
}

/** What a write step decides from the current record: a patch, or nothing to write. */
type Decide = (current: JobRecord) => JobPatch | undefined

/**
 * The job system of one process: {@link Jobs} plus `start`, `close` and `sweep`.
 * Create it with {@link createJobRunner}.
 */
export class JobRunner implements Jobs {
  /** This runner's lease owner id. */
  readonly owner: string
  readonly #store: JobStore
  readonly #clock: Clock
  readonly #handlers: ReadonlyMap<string, JobHandler>
  readonly #concurrency: number
  readonly #leaseMs: number
  readonly #sweepMs: number
  readonly #pollMs: number
  readonly #log: (entry: JobLogEntry) => void
  readonly #pending: string[] = []
  readonly #running = new Map<string, Run>()
  /** Claims in flight (a slot is reserved for each). */
  readonly #claiming = new Set<Promise<void>>()
  readonly #events: JobEvents
  #slots = 0
  #started = false
  #closing = false
  #sweepTimer: ReturnType<typeof setInterval> | undefined
  #sweeping: Promise<void> | undefined

  constructor(options: JobRunnerOptions) {
    this.#store = options.store
    this.#clock = options.clock
    const handlers = new Map<string, JobHandler>()
    for (const h of options.handlers) {
      if (handlers.has(h.type)) throw invalidField('handlers', `two handlers for job type ${h.type}`)
      handlers.set(h.type, h)
    }
    this.#handlers = handlers
    this.#concurrency = positiveInt(options.concurrency ?? 2, 'concurrency')
    this.#leaseMs = positiveInt(options.leaseMs ?? 30_000, 'leaseMs')
    this.#sweepMs = positiveInt(options.sweepIntervalMs ?? 5_000, 'sweepIntervalMs')
    this.#pollMs = positiveInt(options.pollIntervalMs ?? 1_000, 'pollIntervalMs')
    this.owner = options.owner ?? localOwnerId()
    const log = options.log ?? (() => undefined)
    this.#log = log
    this.#events = new JobEvents((jobId, code) => {
      log({ level: 'warn', msg: 'job listener threw', jobId, code })
    })
  }

  /**
   * Starts running: resumes every active job of a known type (running ones from their checkpoint, queued
   * ones from the start) and sweeps for work every `sweepIntervalMs`. Idempotent.
   * @throws EngineError STORE_ERROR
   */
  async start(): Promise<void> {
    if (this.#started && !this.#closing) return
    this.#started = true
    this.#closing = false
    await this.#scan()
    this.#sweepTimer = setInterval(() => void this.sweep(), this.#sweepMs)
    this.#sweepTimer.unref()
  }

  /**
   * Stops: no new job starts, running handlers are aborted with reason "closing" and awaited, and their
   * leases released. Their records stay active, and the next {@link JobRunner.start} (of any process)
   * resumes them from their last checkpoint. Jobs are never cancelled or failed by a close.
   */
  async close(): Promise<void> {
    this.#closing = true
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer)
    this.#sweepTimer = undefined
    this.#pending.length = 0
    await this.#sweeping
    await Promise.all([...this.#claiming])
    for (const run of this.#running.values()) {
      this.#abort(run, 'closing')
    }
    await Promise.all([...this.#running.values()].map((r) => r.settled))
  }

  /**
   * Looks for work now: active jobs of a known type that no live runner holds (queued, or with an expired
   * lease) are enqueued, then started as slots allow. `start()` calls it, and then a timer.
   */
  async sweep(): Promise<void> {
    if (this.#sweeping !== undefined) return this.#sweeping
    this.#sweeping = this.#scan()
      .catch((err: unknown) => {
        this.#log({ level: 'warn', msg: 'job sweep failed', code: codeOf(err) })
      })
      .finally(() => {
        this.#sweeping = undefined
      })
    return this.#sweeping
  }

  async #scan(): Promise<void> {
    if (this.#closing || !this.#started) return
    const active = await storeCall(() => this.#store.listActiveJobs())
    const now = this.#clock.now()
    active.sort((a, b) => a.createdAt - b.createdAt)
    for (const r of active) {
      if (!this.#handlers.has(r.type) || this.#running.has(r.id) || this.#pending.includes(r.id)) continue
      if (this.#heldByOther(r, now)) continue
      this.#pending.push(r.id)
    }
    this.#pump()
  }

  async submit(
    tenant: string,
    type: string,
    params: unknown,
    options: { readonly createdBy?: string } = {},
  ): Promise<JobView> {
    checkTenant(tenant)
    const handler = this.#handlers.get(type)
    if (handler === undefined) throw invalidField('type', 'is not a known job type')
    await handler.validate?.(tenant, params)
    const now = this.#clock.now()
    const record: JobRecord = {
      id: randomUUID(),
      type,
      tenant,
      state: 'queued',
      params: toJson(params, 'params'),
      checkpoint: undefined,
      done: 0,
      total: 0,
      cancelRequested: false,
      error: undefined,
      result: undefined,
      createdBy: options.createdBy,
      createdAt: now,
      updatedAt: now,
      startedAt: undefined,
      finishedAt: undefined,
      revision: 1,
      leaseOwner: undefined,
      leaseUntil: undefined,
    }
    if (!(await storeCall(() => this.#store.insertJob(record)))) {
      throw new EngineError('JOB_CONFLICT', `job: a ${type} job is already active for this tenant`)
    }
    this.#log({ level: 'info', msg: 'job submitted', jobId: record.id, type, tenant })
    this.#emit(record)
    if (this.#started && !this.#closing) {
      this.#pending.push(record.id)
      this.#pump()
    }
    return toJobView(record)
  }

  async get(tenant: string, id: string): Promise<JobView> {
    return toJobView(await this.#read(tenant, id))
  }

  async list(
    tenant: string,
    query: {
      readonly type?: string | undefined
      readonly states?: readonly JobState[]
      readonly limit?: number
      readonly offset?: number
    } = {},
  ): Promise<{ jobs: JobView[]; total: number }> {
    checkTenant(tenant)
    const limit = query.limit ?? 100
    const offset = query.offset ?? 0
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw invalidField('limit', 'must be 1-1000')
    if (!Number.isInteger(offset) || offset < 0) throw invalidField('offset', 'must be an integer >= 0')
    const res = await storeCall(() =>
      this.#store.listJobs({ tenant, type: query.type, states: query.states, limit, offset }),
    )
    return { jobs: res.jobs.map(toJobView), total: res.total }
  }

  async cancel(tenant: string, id: string): Promise<JobView> {
    for (;;) {
      const current = await this.#read(tenant, id)
      if (isFinalJobState(current.state)) throw finished(current)
      const run = this.#running.get(id)
      if (run !== undefined) {
        // Ours: through the job's write chain (serialised with its checkpoints), then signal the handler.
        const rec = await this.#write(run, (r) => {
          if (isFinalJobState(r.state)) throw finished(r)
          return r.cancelRequested ? undefined : { cancelRequested: true }
        })
        this.#abort(run, 'cancel')
        this.#log({ level: 'info', msg: 'job cancel requested', jobId: id, type: rec.type, tenant })
        return toJobView(rec)
      }
      const now = this.#clock.now()
      const atOnce = current.state === 'queued' || !this.#leaseLive(current, now)
      const patch: JobPatch = atOnce
        ? { ...finalPatch('cancelled', now), cancelRequested: true }
        : { cancelRequested: true, updatedAt: now }
      const updated = await storeCall(() => this.#store.updateJob(id, current.revision, patch))
      if (updated === undefined) continue // another writer: decide again
      this.#log({
        level: 'info',
        msg: atOnce ? 'job cancelled' : 'job cancel requested',
        jobId: id,
        type: updated.type,
        tenant,
      })
      this.#emit(updated)
      return toJobView(updated)
    }
  }

  waitFor(tenant: string, id: string, options: { readonly signal?: AbortSignal } = {}): Promise<JobView> {
    return this.#events.waitFor(tenant, id, () => this.get(tenant, id), this.#pollMs, options.signal)
  }

  subscribe(tenant: string, id: string, listener: (job: JobView) => void): () => void {
    return this.#events.subscribe(tenant, id, listener)
  }

  // ------------------------------------------------------------------------------------------- internals

  async #read(tenant: string, id: string): Promise<JobRecord> {
    const r = await storeCall(() => this.#store.getJob(id))
    if (r === undefined || r.tenant !== tenant) throw new EngineError('JOB_NOT_FOUND', 'job: not found')
    return r
  }

  #leaseLive(r: JobRecord, now: number): boolean {
    if (r.leaseOwner === undefined || r.leaseUntil === undefined || r.leaseUntil <= now) return false
    // A lease of a process of this machine that no longer exists (a crash) is over now (local-owner.ts).
    return r.leaseOwner === this.owner || !localOwnerGone(r.leaseOwner)
  }

  #heldByOther(r: JobRecord, now: number): boolean {
    return this.#leaseLive(r, now) && r.leaseOwner !== this.owner
  }

  #emit(r: JobRecord): void {
    this.#events.emit(r)
  }

  /** Starts queued work while slots are free. */
  #pump(): void {
    while (!this.#closing && this.#slots < this.#concurrency && this.#pending.length > 0) {
      const id = this.#pending.shift()
      if (id === undefined || this.#running.has(id)) continue
      this.#slots++
      const p = this.#claimAndRun(id)
      this.#claiming.add(p)
      void p.finally(() => this.#claiming.delete(p))
    }
  }

  async #claimAndRun(id: string): Promise<void> {
    let claimed: { record: JobRecord; handler: JobHandler } | undefined
    try {
      claimed = await this.#claim(id)
    } catch (err) {
      this.#log({ level: 'warn', msg: 'job claim failed', jobId: id, code: codeOf(err) })
    }
    if (claimed === undefined || this.#closing) {
      if (claimed !== undefined) await this.#release(claimed.record)
      this.#slots--
      this.#pump()
      return
    }
    this.#startRun(claimed.record, claimed.handler)
  }

  /** Takes the job (CAS), or returns undefined when it is not ours to run. */
  async #claim(id: string): Promise<{ record: JobRecord; handler: JobHandler } | undefined> {
    for (;;) {
      const r = await storeCall(() => this.#store.getJob(id))
      if (r === undefined || isFinalJobState(r.state)) return undefined
      const handler = this.#handlers.get(r.type)
      if (handler === undefined) return undefined
      const now = this.#clock.now()
      if (this.#heldByOther(r, now)) return undefined
      if (r.cancelRequested) {
        const c = await storeCall(() => this.#store.updateJob(id, r.revision, finalPatch('cancelled', now)))
        if (c === undefined) continue
        this.#log({ level: 'info', msg: 'job cancelled', jobId: id, type: r.type, tenant: r.tenant })
        this.#emit(c)
        return undefined
      }
      const updated = await storeCall(() =>
        this.#store.updateJob(id, r.revision, {
          state: 'running',
          startedAt: r.startedAt ?? now,
          leaseOwner: this.owner,
          leaseUntil: now + this.#leaseMs,
          updatedAt: now,
        }),
      )
      if (updated === undefined) continue
      this.#log({
        level: 'info',
        msg: r.state === 'queued' ? 'job started' : 'job resumed',
        jobId: id,
        type: r.type,
        tenant: r.tenant,
      })
      this.#emit(updated)
      return { record: updated, handler }
    }
  }

  /** Gives a claimed job back (lease cleared) without running it: close came during the claim. */
  async #release(r: JobRecord): Promise<void> {
    try {
      const u = await storeCall(() =>
        this.#store.updateJob(r.id, r.revision, {
          leaseOwner: undefined,
          leaseUntil: undefined,
          updatedAt: this.#clock.now(),
        }),
      )
      if (u !== undefined) this.#emit(u)
    } catch (err) {
      this.#log({ level: 'warn', msg: 'job lease release failed', jobId: r.id, code: codeOf(err) })
    }
  }

  #startRun(record: JobRecord, handler: JobHandler): void {
    const controller = new AbortController()
    let settle: () => void = () => undefined
    const run: Run = {
      record,
      controller,
      reason: undefined,
      chain: Promise.resolve(),
      settled: new Promise<void>((resolve) => (settle = resolve)),
    }
    this.#running.set(record.id, run)
    const heartbeat = setInterval(() => void this.#heartbeat(run), Math.max(1, Math.floor(this.#leaseMs / 3)))
    heartbeat.unref()
    const ctl: JobControl = {
      job: record,
      signal: controller.signal,
      checkpoint: (checkpoint, progress) => this.#checkpoint(run, checkpoint, progress),
    }
    void (async () => {
      let outcome: { ok: true; result: unknown } | { ok: false; err: unknown }
      try {
        outcome = { ok: true, result: await handler.run(ctl) }
      } catch (err) {
        outcome = { ok: false, err }
      }
      clearInterval(heartbeat)
      try {
        await this.#finish(run, outcome)
      } catch (err) {
        // The record stays active; its lease expires and a sweep (here or elsewhere) runs it again.
        this.#log({ level: 'error', msg: 'job final write failed', jobId: record.id, code: codeOf(err) })
      }
      this.#running.delete(record.id)
      this.#slots--
      settle()
      this.#pump()
    })()
  }

  #abort(run: Run, reason: AbortReason): void {
    if (run.reason !== undefined) return
    run.reason = reason
    const message =
      reason === 'cancel'
        ? 'job: cancelled'
        : reason === 'closing'
          ? 'job: the runner is closing'
          : 'job: lease lost'
    run.controller.abort(new EngineError('ABORTED', message))
  }

  /**
   * One serialised write of a running job: `decide` sees the newest record and returns the patch (or
   * throws, or undefined for nothing to write); a failed CAS re-reads and decides again. Stops (ABORTED)
   * when another runner took the job over.
   */
  #write(run: Run, decide: Decide): Promise<JobRecord> {
    const step = run.chain.then(async () => {
      for (;;) {
        const patch = decide(run.record)
        if (patch === undefined) return run.record
        const now = this.#clock.now()
        const updated = await storeCall(() =>
          this.#store.updateJob(run.record.id, run.record.revision, { ...patch, updatedAt: now }),
        )
        if (updated !== undefined) {
          run.record = updated
          this.#emit(updated)
          return updated
        }
        const fresh = await storeCall(() => this.#store.getJob(run.record.id))
        if (fresh === undefined || fresh.leaseOwner !== this.owner || isFinalJobState(fresh.state)) {
          this.#abort(run, 'lease')
          this.#log({ level: 'warn', msg: 'job taken over by another runner', jobId: run.record.id })
          throw new EngineError('ABORTED', 'job: lease lost')
        }
        run.record = fresh
      }
    })
    run.chain = step.catch(() => undefined)
    return step
  }

  async #checkpoint(
    run: Run,
    checkpoint: unknown,
    progress: { readonly done: number; readonly total: number },
  ): Promise<void> {
    const { done, total } = progress
    if (!Number.isSafeInteger(done) || done < 0)
      throw invalidField('progress.done', 'must be an integer >= 0')
    if (!Number.isSafeInteger(total) || total < 0) {
      throw invalidField('progress.total', 'must be an integer >= 0')
    }
    const json = toJson(checkpoint, 'checkpoint')
    await this.#write(run, (r) => {
      if (run.reason === 'cancel' || run.reason === 'lease') {
        throw new EngineError('ABORTED', run.reason === 'cancel' ? 'job: cancelled' : 'job: lease lost')
      }
      if (r.cancelRequested) {
        this.#abort(run, 'cancel')
        throw new EngineError('ABORTED', 'job: cancelled')
      }
      return {
        checkpoint: json,
        done: Math.max(r.done, done),
        total,
        leaseUntil: this.#clock.now() + this.#leaseMs,
      }
    })
  }

  async #heartbeat(run: Run): Promise<void> {
    if (run.reason !== undefined) return
    try {
      await this.#write(run, (r) => {
        if (r.cancelRequested) {
          this.#abort(run, 'cancel')
          return undefined
        }
        return { leaseUntil: this.#clock.now() + this.#leaseMs }
      })
    } catch (err) {
      if (run.reason === undefined && (run.record.leaseUntil ?? 0) <= this.#clock.now()) {
        this.#abort(run, 'lease')
      }
      this.#log({ level: 'warn', msg: 'job lease renewal failed', jobId: run.record.id, code: codeOf(err) })
    }
  }

  async #finish(
    run: Run,
    outcome: { ok: true; result: unknown } | { ok: false; err: unknown },
  ): Promise<void> {
    const { id, type, tenant } = run.record
    const reason = run.reason
    if (reason === 'lease') return
    if (reason === 'closing') {
      await this.#write(run, () => ({ leaseOwner: undefined, leaseUntil: undefined }))
      this.#log({ level: 'info', msg: 'job paused (runner closing)', jobId: id, type, tenant })
      return
    }
    let patch: JobPatch
    if (reason === 'cancel') {
      patch = finalPatch('cancelled', this.#clock.now())
    } else if (outcome.ok) {
      let result: string | undefined
      try {
        result = outcome.result === undefined ? undefined : toJson(outcome.result, 'result')
        patch = { ...finalPatch('completed', this.#clock.now()), result }
      } catch (err) {
        patch = failedPatch(err, type, this.#clock.now())
      }
    } else {
      patch = failedPatch(outcome.err, type, this.#clock.now())
    }
    const rec = await this.#write(run, () => patch)
    this.#log({
      level: rec.state === 'failed' ? 'error' : 'info',
      msg: `job ${rec.state}`,
      jobId: id,
      type,
      tenant,
      code: outcome.ok ? rec.error?.code : codeOf(outcome.err),
    })
  }
}

function finalPatch(state: 'completed' | 'failed' | 'cancelled', now: number): JobPatch {
  return { state, finishedAt: now, updatedAt: now, leaseOwner: undefined, leaseUntil: undefined }
}

function failedPatch(err: unknown, type: string, now: number): JobPatch {
  const error =
    err instanceof EngineError
      ? { code: err.code, message: err.message }
      : { code: 'INTERNAL_ERROR', message: `${type}: unexpected failure` }
  return { ...finalPatch('failed', now), error }
}

function finished(r: JobRecord): EngineError {
  return new EngineError('JOB_FINISHED', `job: is ${r.state}`)
}

function positiveInt(n: number, field: string): number {
  if (!Number.isInteger(n) || n < 1) throw invalidField(field, 'must be an integer >= 1')
  return n
}

/**
 * Creates the job system of a process. Call `start()` once the handlers' dependencies are ready (it resumes
 * the jobs a previous process left active), and `close()` before closing the store.
 *
 * @example
 * ```ts
 * const jobs = createJobRunner({
 *   store,                        // a JobStore, e.g. the SqliteStore of openSqliteStore()
 *   clock: { now: () => Date.now() },
 *   handlers: [{
 *     type: 'count-to',
 *     async run(ctl) {
 *       const { to } = ctl.job.params === undefined ? { to: 0 } : (JSON.parse(ctl.job.params) as { to: number })
 *       let next = ctl.job.checkpoint === undefined ? 0 : (JSON.parse(ctl.job.checkpoint) as number)
 *       while (next < to && !ctl.signal.aborted) {
 *         next++                                         // one idempotent step
 *         await ctl.checkpoint(next, { done: next, total: to })
 *       }
 *       return { counted: next }
 *     },
 *   }],
 * })
 * await jobs.start()
 * const job = await jobs.submit('tenant-1', 'count-to', { to: 10 })
 * const unsubscribe = jobs.subscribe('tenant-1', job.id, (j) => console.log(j.progress))
 * console.log((await jobs.waitFor('tenant-1', job.id)).state) // 'completed'
 * unsubscribe()
 * await jobs.close()
 * ```
 */
export function createJobRunner(options: JobRunnerOptions): JobRunner {
  return new JobRunner(options)
}
