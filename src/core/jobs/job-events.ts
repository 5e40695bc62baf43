/**
 * The job runner's progress events: listeners per job (and tenant), and `waitFor`, which listens and also
 * polls the store so that it sees a job that another process runs.
 */
import { EngineError } from '../errors.js'
import type { JobRecord } from '../ports-jobs.js'
import { codeOf, isFinalJobState, toJobView } from './job-records.js'
import type { JobView } from './job-types.js'

interface Listener {
  readonly tenant: string
  readonly fn: (job: JobView) => void
}

export class JobEvents {
  readonly #listeners = new Map<string, Set<Listener>>()
  readonly #onListenerError: (jobId: string, code: string) => void

  constructor(onListenerError: (jobId: string, code: string) => void) {
    this.#onListenerError = onListenerError
  }

  /** Calls `listener` with each record of job `id` that {@link JobEvents.emit} gets, when of `tenant`. */
  subscribe(tenant: string, id: string, listener: (job: JobView) => void): () => void {
    let set = this.#listeners.get(id)
    if (set === undefined) {
      set = new Set()
      this.#listeners.set(id, set)
    }
    const entry: Listener = { tenant, fn: listener }
    set.add(entry)
    return () => {
      const s = this.#listeners.get(id)
      s?.delete(entry)
      if (s?.size === 0) this.#listeners.delete(id)
    }
  }

  /** Tells the job's listeners (a throwing listener is reported, never propagated). */
  emit(r: JobRecord): void {
    const set = this.#listeners.get(r.id)
    if (set === undefined) return
    const view = toJobView(r)
    for (const l of [...set]) {
      if (l.tenant !== r.tenant) continue
      try {
        l.fn(view)
      } catch (err) {
        this.#onListenerError(r.id, codeOf(err))
      }
    }
  }

  /**
   * Resolves with the job once final: from an event, or from `read()` (called at once and every
   * `pollMs`). Rejects with what `read` throws (JOB_NOT_FOUND), or ABORTED on `signal`.
   */
  waitFor(
    tenant: string,
    id: string,
    read: () => Promise<JobView>,
    pollMs: number,
    signal: AbortSignal | undefined,
  ): Promise<JobView> {
    return new Promise<JobView>((resolve, reject) => {
      let done = false
      const cleanups: (() => void)[] = []
      const finish = (outcome: { job: JobView } | { err: Error }): void => {
        if (done) return
        done = true
        for (const c of cleanups) c()
        if ('job' in outcome) resolve(outcome.job)
        else reject(outcome.err)
      }
      const aborted = (): void => {
        finish({ err: new EngineError('ABORTED', 'job: wait aborted') })
      }
      const check = (job: JobView): void => {
        if (isFinalJobState(job.state)) finish({ job })
      }
      if (signal !== undefined) {
        if (signal.aborted) {
          aborted()
          return
        }
        signal.addEventListener('abort', aborted, { once: true })
        cleanups.push(() => {
          signal.removeEventListener('abort', aborted)
        })
      }
      cleanups.push(this.subscribe(tenant, id, check))
      const poll = (): void => {
        read().then(check, (err: unknown) => {
          finish({ err: err instanceof Error ? err : new EngineError('INTERNAL_ERROR', 'job: wait failed') })
        })
      }
      const timer = setInterval(poll, pollMs)
      cleanups.push(() => {
        clearInterval(timer)
      })
      poll()
    })
  }
}
