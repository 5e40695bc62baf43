/**
 * The job store role: durable records of long-running jobs (key-provider migrations, synchronization jobs,
 * any future bulk operation). The job system (`core/jobs/runner.ts`) is the only writer; a job's handler
 * persists its checkpoint through the runner. A store implements this beside {@link MetadataStore}; it is
 * not part of it (a store without jobs still serves the engine).
 */

/** Where a job is in its life. `queued` and `running` are *active*; the other three are final. */
export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled'

/** One job. Times are milliseconds since the epoch. */
export interface JobRecord {
  /** UUID. */
  readonly id: string
  /** The runner that executes it, e.g. `key-provider-migration`. */
  readonly type: string
  /** The tenant (engine instance) it works for. */
  readonly tenant: string
  readonly state: JobState
  /** The job's input, JSON as the submitter gave it (validated by the handler). */
  readonly params: string
  /** The handler's last durable checkpoint (JSON), or undefined before the first one. */
  readonly checkpoint: string | undefined
  /** Units done and in all (entries, keys); `total` may grow while the job runs. */
  readonly done: number
  readonly total: number
  /** Set when a cancel was asked; the runner stops the handler at its next checkpoint. */
  readonly cancelRequested: boolean
  /** Why the job failed (state `failed`): a stable error code and a message. */
  readonly error: { readonly code: string; readonly message: string } | undefined
  /** The job's result (JSON) once completed, when the handler returns one. */
  readonly result: string | undefined
  /** Who submitted it (audit subject), when known. */
  readonly createdBy: string | undefined
  readonly createdAt: number
  readonly updatedAt: number
  readonly startedAt: number | undefined
  readonly finishedAt: number | undefined
  /** Incremented by every write; the compare-and-set token of {@link JobStore.updateJob}. */
  readonly revision: number
  /**
   * The runner (one per process) that holds the job while it runs, and until when (ms since the epoch) its
   * lease is valid; both undefined when no runner holds it. Another runner takes a job over only once the
   * lease expired (its owner crashed or hung), see `core/jobs/runner.ts`.
   */
  readonly leaseOwner: string | undefined
  readonly leaseUntil: number | undefined
}

/**
 * The fields {@link JobStore.updateJob} may change. A field present in the patch is written, even when its
 * value is undefined (which clears it); an absent field is left as it is.
 */
export type JobPatch = Partial<
  Pick<
    JobRecord,
    | 'state'
    | 'checkpoint'
    | 'done'
    | 'total'
    | 'cancelRequested'
    | 'error'
    | 'result'
    | 'updatedAt'
    | 'startedAt'
    | 'finishedAt'
    | 'leaseOwner'
    | 'leaseUntil'
  >
>

export interface ListJobsQuery {
  readonly tenant?: string | undefined
  readonly type?: string | undefined
  /** Only jobs in these states (absent: all). */
  readonly states?: readonly JobState[] | undefined
  /** Newest first; at most `limit` (1-1000) after skipping `offset`. */
  readonly limit: number
  readonly offset: number
}

/** Durable job records. Several engine processes may share one store: every write is a compare-and-set. */
export interface JobStore {
  /**
   * Inserts a job (state `queued`, revision 1). Returns false, inserting nothing, when an *active* job of
   * the same type already exists for the tenant: one job of a type per tenant at a time, enforced by the
   * store itself (a unique partial index), so two processes cannot both start one.
   */
  insertJob(job: JobRecord): Promise<boolean>
  getJob(id: string): Promise<JobRecord | undefined>
  /** Jobs matching `query`, newest first, and how many match in all. */
  listJobs(query: ListJobsQuery): Promise<{ jobs: JobRecord[]; total: number }>
  /**
   * Applies `patch` if the job is still at `expectedRevision`; returns the updated record (revision + 1),
   * or undefined when the revision moved on (another writer) or the job does not exist.
   */
  updateJob(id: string, expectedRevision: number, patch: JobPatch): Promise<JobRecord | undefined>
  /** Every active (queued or running) job of every tenant: what a restarted runner resumes. */
  listActiveJobs(): Promise<JobRecord[]>
}
