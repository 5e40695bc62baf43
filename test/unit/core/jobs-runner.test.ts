/**
 * The job runner's rules (src/core/jobs/runner.ts) over the in-memory job store and a manual clock: submit,
 * run and complete; one active job of a type per tenant; cancel (queued, running, from another runner);
 * failure codes; monotonic progress; resume from the checkpoint after close and after a crashed owner's
 * lease expired; lease takeover fencing; progress events; the concurrency limit.
 */
import { spawnSync } from 'node:child_process'
import { describe, expect, it, vi } from 'vitest'
import { EngineError } from '../../../src/core/errors.js'
import { createJobRunner, type JobRunner } from '../../../src/core/jobs/runner.js'
import { localOwnerGone, localOwnerId } from '../../../src/core/jobs/local-owner.js'
import type { JobControl, JobHandler, JobView } from '../../../src/core/jobs/job-types.js'
import type { JobRecord } from '../../../src/core/ports-jobs.js'
import { expectCode } from '../../helpers/expect-code.js'
import { ManualClock } from '../../fakes/manual-clock.js'
import { MemoryJobStore } from '../../fakes/memory-jobs.js'

const T = 'tenant-a'

/** Steps that wait for the test: `release(n)` lets n waiting steps go; an abort rejects the waiter. */
class Gate {
  #waiters: (() => void)[] = []
  #credit = 0

  get waiting(): number {
    return this.#waiters.length
  }

  wait(signal: AbortSignal): Promise<void> {
    if (this.#credit > 0) {
      this.#credit--
      return Promise.resolve()
    }
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason as Error)
        return
      }
      const go = (): void => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      }
      const onAbort = (): void => {
        this.#waiters = this.#waiters.filter((w) => w !== go)
        reject(signal.reason as Error)
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.#waiters.push(go)
    })
  }

  release(n = 1): void {
    for (let i = 0; i < n; i++) {
      const w = this.#waiters.shift()
      if (w === undefined) this.#credit++
      else w()
    }
  }
}

/**
 * Counts from its checkpoint to `params.n`, one checkpoint per item, each item after a gate step (or at
 * once with `gate` undefined). Records which items it processed and what it saw.
 */
class Counter implements JobHandler {
  readonly processed: number[] = []
  readonly resumedFrom: (string | undefined)[] = []
  readonly aborts: unknown[] = []
  running = 0
  maxRunning = 0

  constructor(
    readonly type = 'count',
    readonly gate?: Gate,
  ) {}

  validate(_tenant: string, params: unknown): void {
    const n = (params as { n?: unknown } | null)?.n
    if (typeof n !== 'number') throw new EngineError('INVALID_FIELD_ERR', 'n: must be a number')
  }

  async run(ctl: JobControl): Promise<unknown> {
    this.running++
    this.maxRunning = Math.max(this.maxRunning, this.running)
    try {
      this.resumedFrom.push(ctl.job.checkpoint)
      const { n } = JSON.parse(ctl.job.params) as { n: number }
      let i = ctl.job.checkpoint === undefined ? 0 : (JSON.parse(ctl.job.checkpoint) as number)
      while (i < n) {
        if (this.gate !== undefined) {
          try {
            await this.gate.wait(ctl.signal)
          } catch (err) {
            this.aborts.push(ctl.signal.reason)
            throw err
          }
        }
        i++
        this.processed.push(i)
        await ctl.checkpoint(i, { done: i, total: n })
      }
      return { counted: i }
    } finally {
      this.running--
    }
  }
}

function runner(
  store: MemoryJobStore,
  clock: ManualClock,
  handlers: JobHandler[],
  concurrency = 2,
): JobRunner {
  return createJobRunner({ store, clock, handlers, concurrency, pollIntervalMs: 5, sweepIntervalMs: 10_000 })
}

async function stored(store: MemoryJobStore, id: string): Promise<JobRecord> {
  const r = await store.getJob(id)
  expect(r).toBeDefined()
  return r as JobRecord
}

describe('job runner: submit, run, complete', () => {
  it('runs a submitted job to completed with its result, progress 100, times set and no lease left', async () => {
    const store = new MemoryJobStore()
    const clock = new ManualClock()
    const h = new Counter()
    const jobs = runner(store, clock, [h])
    await jobs.start()
    const v = await jobs.submit(T, 'count', { n: 3 }, { createdBy: 'alice' })
    expect(v.state).toBe('queued')
    expect(v.params).toEqual({ n: 3 })
    const end = await jobs.waitFor(T, v.id)
    expect(end.state).toBe('completed')
    expect(end.result).toEqual({ counted: 3 })
    expect([end.done, end.total, end.progress]).toEqual([3, 3, 100])
    expect(end.createdBy).toBe('alice')
    expect(end.startedAt).toBeInstanceOf(Date)
    expect(end.finishedAt).toBeInstanceOf(Date)
    const r = await stored(store, v.id)
    expect([r.leaseOwner, r.leaseUntil, r.checkpoint, r.error]).toEqual([
      undefined,
      undefined,
      '3',
      undefined,
    ])
    expect(h.processed).toEqual([1, 2, 3])
    expect((await jobs.list(T)).jobs.map((j) => j.id)).toEqual([v.id])
    await jobs.close()
  })

  it('refuses an unknown type and params the handler rejects, storing nothing', async () => {
    const store = new MemoryJobStore()
    const jobs = runner(store, new ManualClock(), [new Counter()])
    await expectCode(jobs.submit(T, 'nope', { n: 1 }), 'INVALID_FIELD_ERR')
    await expectCode(jobs.submit(T, 'count', { n: 'x' }), 'INVALID_FIELD_ERR')
    await expectCode(jobs.submit('', 'count', { n: 1 }), 'INVALID_FIELD_ERR')
    expect(await store.listActiveJobs()).toEqual([])
  })

  it('a job submitted before start() stays queued until start() runs it', async () => {
    const store = new MemoryJobStore()
    const jobs = runner(store, new ManualClock(), [new Counter()])
    const v = await jobs.submit(T, 'count', { n: 1 })
    expect((await stored(store, v.id)).state).toBe('queued')
    await jobs.start()
    expect((await jobs.waitFor(T, v.id)).state).toBe('completed')
    await jobs.close()
  })
})

describe('job runner: one active job of a type per tenant', () => {
  it('JOB_CONFLICT while one is active, in this runner or another sharing the store; free again once finished', async () => {
    const store = new MemoryJobStore()
    const clock = new ManualClock()
    const gate = new Gate()
    const a = runner(store, clock, [new Counter('count', gate)])
    const b = runner(store, clock, [new Counter('count', gate)])
    await a.start()
    const first = await a.submit(T, 'count', { n: 1 })
    await expectCode(a.submit(T, 'count', { n: 1 }), 'JOB_CONFLICT')
    await expectCode(b.submit(T, 'count', { n: 1 }), 'JOB_CONFLICT')
    const other = await b.submit('tenant-b', 'count', { n: 1 }) // another tenant: its own slot
    expect(other.state).toBe('queued')
    await a.sweep() // a job queued by another process: this runner's sweep picks it up
    gate.release(1)
    expect((await a.waitFor(T, first.id)).state).toBe('completed')
    const again = await a.submit(T, 'count', { n: 1 })
    gate.release(2)
    expect((await a.waitFor(T, again.id)).state).toBe('completed')
    expect((await a.waitFor('tenant-b', other.id)).state).toBe('completed')
    await a.close()
  })
})

describe('job runner: cancel', () => {
  it('cancels a queued job at once (its handler never runs); a finished job answers JOB_FINISHED', async () => {
    const store = new MemoryJobStore()
    const clock = new ManualClock()
    const gate = new Gate()
    const busy = new Counter('busy', gate)
    const h = new Counter()
    const jobs = runner(store, clock, [busy, h], 1)
    await jobs.start()
    const blocker = await jobs.submit(T, 'busy', { n: 1 })
    const queued = await jobs.submit(T, 'count', { n: 2 })
    await vi.waitFor(() => expect(busy.running).toBe(1))
    expect((await stored(store, queued.id)).state).toBe('queued')
    const c = await jobs.cancel(T, queued.id)
    expect(c.state).toBe('cancelled')
    expect(c.cancelRequested).toBe(true)
    expect(c.finishedAt).toBeInstanceOf(Date)
    gate.release(1)
    expect((await jobs.waitFor(T, blocker.id)).state).toBe('completed')
    expect(h.processed).toEqual([])
    await expectCode(jobs.cancel(T, queued.id), 'JOB_FINISHED')
    await expectCode(jobs.cancel(T, blocker.id), 'JOB_FINISHED')
    await expectCode(jobs.cancel('tenant-b', blocker.id), 'JOB_NOT_FOUND')
    await jobs.close()
  })

  it('cancels a running job: cancelRequested is durable first, the handler is aborted, the job ends cancelled', async () => {
    const store = new MemoryJobStore()
    const gate = new Gate()
    const h = new Counter('count', gate)
    const jobs = runner(store, new ManualClock(), [h])
    await jobs.start()
    const v = await jobs.submit(T, 'count', { n: 10 })
    gate.release(2)
    await vi.waitFor(async () => expect((await stored(store, v.id)).done).toBe(2))
    const c = await jobs.cancel(T, v.id)
    expect(c.state).toBe('running')
    expect(c.cancelRequested).toBe(true)
    const end = await jobs.waitFor(T, v.id)
    expect(end.state).toBe('cancelled')
    expect(end.done).toBe(2)
    expect(h.processed).toEqual([1, 2])
    expect(h.aborts).toHaveLength(1)
    expect((h.aborts[0] as EngineError).code).toBe('ABORTED')
    expect((await stored(store, v.id)).leaseOwner).toBeUndefined()
    await jobs.close()
  })

  it('a checkpoint after a cancel throws ABORTED and records nothing (a handler that ignores its signal)', async () => {
    const store = new MemoryJobStore()
    let release: () => void = () => undefined
    const paused = new Promise<void>((r) => (release = r))
    const seen: unknown[] = []
    const h: JobHandler = {
      type: 'stubborn',
      async run(ctl) {
        await ctl.checkpoint('one', { done: 1, total: 3 })
        await paused // ignores ctl.signal
        try {
          await ctl.checkpoint('two', { done: 2, total: 3 })
        } catch (err) {
          seen.push(err)
          throw err
        }
        return 'unreachable'
      },
    }
    const jobs = runner(store, new ManualClock(), [h])
    await jobs.start()
    const v = await jobs.submit(T, 'stubborn', null)
    await vi.waitFor(async () => expect((await stored(store, v.id)).done).toBe(1))
    await jobs.cancel(T, v.id)
    release()
    const end = await jobs.waitFor(T, v.id)
    expect(end.state).toBe('cancelled')
    expect((seen[0] as EngineError).code).toBe('ABORTED')
    const r = await stored(store, v.id)
    expect([r.checkpoint, r.done]).toEqual(['"one"', 1])
    await jobs.close()
  })

  it('a cancel from another runner (process) stops the handler at its next checkpoint: the CAS fails, the re-read sees it', async () => {
    const store = new MemoryJobStore()
    const clock = new ManualClock()
    const gate = new Gate()
    const h = new Counter('count', gate)
    const owner = runner(store, clock, [h])
    const other = runner(store, clock, []) // knows no handler: it only submits and cancels
    await owner.start()
    const v = await owner.submit(T, 'count', { n: 10 })
    gate.release(1)
    await vi.waitFor(async () => expect((await stored(store, v.id)).done).toBe(1))
    const c = await other.cancel(T, v.id) // lease is live: only requested
    expect([c.state, c.cancelRequested]).toEqual(['running', true])
    // The handler does not know yet: one more item, whose checkpoint fails the CAS, re-reads, aborts.
    gate.release(1)
    const end = await other.waitFor(T, v.id)
    expect(end.state).toBe('cancelled')
    expect(end.done).toBe(1)
    expect(h.processed).toEqual([1, 2])
    await owner.close()
  })

  it('a running job whose owner is gone (lease expired) is cancelled at once', async () => {
    const store = new MemoryJobStore()
    const clock = new ManualClock()
    const jobs = runner(store, clock, [])
    await store.insertJob(orphan({ leaseUntil: clock.now() - 1 }))
    const c = await jobs.cancel(T, 'orphan')
    expect(c.state).toBe('cancelled')
  })
})

/** A running job left by a runner that is gone (as after a crash), checkpoint 2 of 5. */
function orphan(over: Partial<JobRecord> = {}): JobRecord {
  return {
    id: 'orphan',
    type: 'count',
    tenant: T,
    state: 'running',
    params: '{"n":5}',
    checkpoint: '2',
    done: 2,
    total: 5,
    cancelRequested: false,
    error: undefined,
    result: undefined,
    createdBy: undefined,
    createdAt: 1,
    updatedAt: 1,
    startedAt: 1,
    finishedAt: undefined,
    revision: 7,
    leaseOwner: 'dead-process',
    leaseUntil: 0,
    ...over,
  }
}

describe('job runner: failures', () => {
  it('an EngineError fails the job with its code and message', async () => {
    const store = new MemoryJobStore()
    const h: JobHandler = {
      type: 'boom',
      async run() {
        throw new EngineError('PROVIDER_UNAVAILABLE', 'kms: unreachable')
      },
    }
    const jobs = runner(store, new ManualClock(), [h])
    await jobs.start()
    const v = await jobs.submit(T, 'boom', {})
    const end = await jobs.waitFor(T, v.id)
    expect(end.state).toBe('failed')
    expect(end.error).toEqual({ code: 'PROVIDER_UNAVAILABLE', message: 'kms: unreachable' })
    await jobs.close()
  })

  it('any other error fails the job with INTERNAL_ERROR and a generic message (no secret from the error)', async () => {
    const store = new MemoryJobStore()
    const logged: string[] = []
    const h: JobHandler = {
      type: 'boom',
      async run() {
        throw new TypeError('pin=123456 leaked')
      },
    }
    const jobs = createJobRunner({
      store,
      clock: new ManualClock(),
      handlers: [h],
      pollIntervalMs: 5,
      log: (e) => logged.push(JSON.stringify(e)),
    })
    await jobs.start()
    const v = await jobs.submit(T, 'boom', {})
    const end = await jobs.waitFor(T, v.id)
    expect(end.state).toBe('failed')
    expect(end.error?.code).toBe('INTERNAL_ERROR')
    expect(end.error?.message).not.toContain('123456')
    expect(logged.join('\n')).not.toContain('123456')
    await vi.waitFor(() => expect(logged.join('\n')).toContain('TypeError'))
    await jobs.close()
  })
})

describe('job runner: progress', () => {
  it('done never decreases: a smaller done is recorded as the previous one; events see it non-decreasing', async () => {
    const store = new MemoryJobStore()
    const h: JobHandler = {
      type: 'wobbly',
      async run(ctl) {
        for (const d of [2, 5, 3, 4, 7, 1]) await ctl.checkpoint(d, { done: d, total: 10 })
        return undefined
      },
    }
    const jobs = runner(store, new ManualClock(), [h])
    const seen: number[] = []
    const v = await jobs.submit(T, 'wobbly', {})
    jobs.subscribe(T, v.id, (j) => seen.push(j.done))
    await jobs.start()
    const end = await jobs.waitFor(T, v.id)
    expect(end.done).toBe(7)
    expect(end.result).toBeUndefined()
    expect(seen).toEqual([0, 2, 5, 5, 5, 7, 7, 7]) // claim, six checkpoints, completed
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1] ?? 0)
    await jobs.close()
  })

  it('refuses a progress that is not a non-negative integer (the job fails INVALID_FIELD_ERR)', async () => {
    const store = new MemoryJobStore()
    const h: JobHandler = {
      type: 'bad',
      async run(ctl) {
        await ctl.checkpoint(0, { done: Number.NaN, total: 1 })
      },
    }
    const jobs = runner(store, new ManualClock(), [h])
    await jobs.start()
    const v = await jobs.submit(T, 'bad', {})
    expect((await jobs.waitFor(T, v.id)).error?.code).toBe('INVALID_FIELD_ERR')
    await jobs.close()
  })
})

describe('job runner: close and resume', () => {
  it('close aborts with reason closing and leaves the job running without lease; the next start resumes from the checkpoint', async () => {
    const store = new MemoryJobStore()
    const clock = new ManualClock()
    const gate = new Gate()
    const h1 = new Counter('count', gate)
    const first = runner(store, clock, [h1])
    await first.start()
    const v = await first.submit(T, 'count', { n: 5 })
    gate.release(2)
    await vi.waitFor(async () => expect((await stored(store, v.id)).done).toBe(2))
    await first.close()
    expect(h1.aborts.map((a) => (a as EngineError).message)).toEqual(['job: the runner is closing'])
    const r = await stored(store, v.id)
    expect([r.state, r.checkpoint, r.done, r.cancelRequested, r.leaseOwner, r.error]).toEqual([
      'running',
      '2',
      2,
      false,
      undefined,
      undefined,
    ])
    const h2 = new Counter()
    const second = runner(store, clock, [h2])
    await second.start()
    const end = await second.waitFor(T, v.id)
    expect(end.state).toBe('completed')
    expect(h2.resumedFrom).toEqual(['2'])
    expect(h2.processed).toEqual([3, 4, 5])
    await second.close()
  })

  it("a crashed owner's job is taken over only once its lease expired (start, then a sweep)", async () => {
    const store = new MemoryJobStore()
    const clock = new ManualClock()
    await store.insertJob(orphan({ leaseUntil: clock.now() + 30_000 }))
    const h = new Counter()
    const jobs = runner(store, clock, [h])
    await jobs.start()
    await jobs.sweep()
    expect(h.resumedFrom).toEqual([])
    expect((await stored(store, 'orphan')).leaseOwner).toBe('dead-process')
    clock.advance(30_000)
    await jobs.sweep()
    const end = await jobs.waitFor(T, 'orphan')
    expect(end.state).toBe('completed')
    expect(h.resumedFrom).toEqual(['2'])
    expect(h.processed).toEqual([3, 4, 5])
    await jobs.close()
  })

  it("a lease of a dead process of this machine is taken over at start, before it expires; a live one's is not", async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid
    const mine = localOwnerId()
    expect(mine).toMatch(/^local:[0-9a-f-]{36}:\d+:\d+:[0-9a-f-]{36}$/)
    const withPid = (pid: number): string => mine.replace(/:\d+:([0-9a-f-]{36})$/, `:${pid}:$1`)
    expect(localOwnerGone(mine)).toBe(false) // this process
    expect(localOwnerGone(withPid(dead))).toBe(true)
    expect(localOwnerGone(withPid(process.ppid))).toBe(false) // alive
    expect(
      localOwnerGone(mine.replace(/^local:[0-9a-f-]{36}/, 'local:00000000-0000-0000-0000-000000000000')),
    ).toBe(false) // another boot or machine
    expect(localOwnerGone('dead-process')).toBe(false)

    const store = new MemoryJobStore()
    const clock = new ManualClock()
    await store.insertJob(orphan({ leaseOwner: withPid(process.ppid), leaseUntil: clock.now() + 30_000 }))
    await store.insertJob(
      orphan({
        id: 'orphan-2',
        tenant: 'tenant-b',
        leaseOwner: withPid(dead),
        leaseUntil: clock.now() + 30_000,
      }),
    )
    const h = new Counter()
    const jobs = runner(store, clock, [h])
    await jobs.start()
    const end = await jobs.waitFor('tenant-b', 'orphan-2')
    expect(end.state).toBe('completed')
    expect(h.resumedFrom).toEqual(['2'])
    expect((await stored(store, 'orphan')).leaseOwner).toBe(withPid(process.ppid)) // its owner lives: not taken
    await jobs.close()
  })

  it('a runner that lost its lease to another stops at its next write and writes nothing more', async () => {
    const store = new MemoryJobStore()
    const clock = new ManualClock()
    const gate = new Gate()
    const h = new Counter('count', gate)
    const jobs = runner(store, clock, [h])
    await jobs.start()
    const v = await jobs.submit(T, 'count', { n: 5 })
    gate.release(1)
    await vi.waitFor(async () => expect((await stored(store, v.id)).done).toBe(1))
    // Another runner took the job over (as after this one's lease expired while it hung).
    const r = await stored(store, v.id)
    const taken = await store.updateJob(v.id, r.revision, {
      leaseOwner: 'other',
      leaseUntil: clock.now() + 1e6,
    })
    gate.release(1)
    await vi.waitFor(() => expect(h.running).toBe(0))
    const after = await stored(store, v.id)
    expect(after).toEqual(taken)
    // Its slot is free again: another job runs.
    const next = await jobs.submit('tenant-b', 'count', { n: 1 })
    gate.release(1)
    expect((await jobs.waitFor('tenant-b', next.id)).state).toBe('completed')
    await jobs.close()
  })
})

describe('job runner: events and waiting', () => {
  it('subscribers get each durable change of their job; unsubscribe stops them; another tenant sees nothing', async () => {
    const store = new MemoryJobStore()
    const jobs = runner(store, new ManualClock(), [new Counter()])
    const v = await jobs.submit(T, 'count', { n: 2 })
    const seen: JobView[] = []
    const stranger: JobView[] = []
    const off = jobs.subscribe(T, v.id, (j) => seen.push(j))
    jobs.subscribe('tenant-b', v.id, (j) => stranger.push(j))
    await jobs.start()
    await jobs.waitFor(T, v.id)
    expect(seen.map((j) => [j.state, j.done])).toEqual([
      ['running', 0],
      ['running', 1],
      ['running', 2],
      ['completed', 2],
    ])
    expect(stranger).toEqual([])
    off()
    const w = await jobs.submit(T, 'count', { n: 1 })
    await jobs.waitFor(T, w.id)
    expect(seen).toHaveLength(4)
    await jobs.close()
  })

  it('waitFor rejects with ABORTED on its signal, JOB_NOT_FOUND for an unknown job, and sees jobs run elsewhere', async () => {
    const store = new MemoryJobStore()
    const clock = new ManualClock()
    const gate = new Gate()
    const worker = runner(store, clock, [new Counter('count', gate)])
    const watcher = runner(store, clock, []) // runs nothing: learns the end by polling the store
    await worker.start()
    const v = await worker.submit(T, 'count', { n: 1 })
    const ac = new AbortController()
    const aborted = watcher.waitFor(T, v.id, { signal: ac.signal })
    ac.abort()
    await expectCode(aborted, 'ABORTED')
    await expectCode(watcher.waitFor(T, 'no-such-job'), 'JOB_NOT_FOUND')
    const done = watcher.waitFor(T, v.id)
    gate.release(1)
    expect((await done).state).toBe('completed')
    await worker.close()
  })
})

describe('job runner: concurrency', () => {
  it('runs at most `concurrency` handlers at once; the others wait queued and start as slots free', async () => {
    const store = new MemoryJobStore()
    const gate = new Gate()
    const h = new Counter('count', gate)
    const jobs = runner(store, new ManualClock(), [h], 2)
    await jobs.start()
    const ids = []
    for (const t of ['t1', 't2', 't3', 't4'])
      ids.push({ t, id: (await jobs.submit(t, 'count', { n: 1 })).id })
    await vi.waitFor(() => expect(gate.waiting).toBe(2))
    const states = await Promise.all(ids.map(async ({ id }) => (await stored(store, id)).state))
    expect(states.filter((s) => s === 'running')).toHaveLength(2)
    expect(states.filter((s) => s === 'queued')).toHaveLength(2)
    gate.release(4)
    for (const { t, id } of ids) expect((await jobs.waitFor(t, id)).state).toBe('completed')
    expect(h.maxRunning).toBe(2)
    await jobs.close()
  })
})
