/**
 * The job system's contract: what a job handler implements and what the runner offers to the services that
 * submit jobs (key-provider migration, synchronization). The runner itself is `runner.ts`.
 */
import type { JobRecord, JobState } from '../ports-jobs.js'

/** What a handler may do while it runs one job. */
export interface JobControl {
  /** The job as it was when this run started (after a restart: with the last durable checkpoint). */
  readonly job: JobRecord
  /**
   * Aborted when a cancel is requested or the runner is closing. The handler stops at its next safe
   * point and returns (or throws ABORTED); the runner then records `cancelled`, or leaves the job active
   * for the next start when it is closing.
   */
  readonly signal: AbortSignal
  /**
   * Durably records the handler's checkpoint (JSON-serialisable) and progress. Resolves once the store has
   * it. `done` never goes down: a smaller value is recorded as the previous one (progress is monotonic).
   * @throws EngineError ABORTED when a cancel was requested in the meantime (nothing recorded)
   */
  checkpoint(checkpoint: unknown, progress: { readonly done: number; readonly total: number }): Promise<void>
}

/**
 * One job type. `run` executes a job from its checkpoint to the end; it is called again, with the last
 * durable checkpoint, after a crash or a restart, so every step between two checkpoints must be safe to
 * repeat (idempotent).
 */
export interface JobHandler {
  readonly type: string
  /** Checks a submission's params before the job is stored. @throws EngineError INVALID_FIELD_ERR, … */
  validate?(tenant: string, params: unknown): Promise<void> | void
  /**
   * Runs the job. Returns its result (JSON-serialisable) or undefined. Throwing an EngineError fails the
   * job with that code (unless the signal was aborted: then cancelled, or left for resume on close).
   */
  run(ctl: JobControl): Promise<unknown>
}

/** What listeners of {@link Jobs.subscribe} receive: the record after each durable change. */
export type JobEvent = { readonly job: JobRecord }

/** A job as the library returns it (params and result parsed). */
export interface JobView {
  readonly id: string
  readonly type: string
  readonly tenant: string
  readonly state: JobState
  readonly params: unknown
  readonly done: number
  readonly total: number
  /** `done / total` in percent, 0-100 (100 when completed; 0 when `total` is 0 and not completed). */
  readonly progress: number
  readonly cancelRequested: boolean
  readonly error: { readonly code: string; readonly message: string } | undefined
  readonly result: unknown
  /**
   * The handler's last durable checkpoint (parsed), or undefined before the first one: what a service reads
   * its progress counters from while the job runs, or after it was cancelled or failed.
   */
  readonly checkpoint: unknown
  readonly createdBy: string | undefined
  readonly createdAt: Date
  readonly updatedAt: Date
  readonly startedAt: Date | undefined
  readonly finishedAt: Date | undefined
}

/** The job system as services and applications use it. */
export interface Jobs {
  /**
   * Stores a job (queued) and starts it when a slot is free. One active job of a type per tenant.
   * @throws EngineError JOB_CONFLICT (one is active), INVALID_FIELD_ERR (unknown type or the handler's
   * validation), STORE_ERROR
   */
  submit(
    tenant: string,
    type: string,
    params: unknown,
    options?: { readonly createdBy?: string },
  ): Promise<JobView>
  /** @throws EngineError JOB_NOT_FOUND (also for another tenant's job) */
  get(tenant: string, id: string): Promise<JobView>
  list(
    tenant: string,
    query?: {
      readonly type?: string
      readonly states?: readonly JobState[]
      readonly limit?: number
      readonly offset?: number
    },
  ): Promise<{ jobs: JobView[]; total: number }>
  /**
   * Asks an active job to stop; it ends `cancelled` at the handler's next safe point. Returns the record
   * with `cancelRequested`.
   * @throws EngineError JOB_NOT_FOUND, JOB_FINISHED
   */
  cancel(tenant: string, id: string): Promise<JobView>
  /** Resolves when the job reaches a final state (or rejects with ABORTED on `signal`). */
  waitFor(tenant: string, id: string, options?: { readonly signal?: AbortSignal }): Promise<JobView>
  /** Calls `listener` after each durable change of the job (progress, state). Returns the unsubscribe. */
  subscribe(tenant: string, id: string, listener: (job: JobView) => void): () => void
}
