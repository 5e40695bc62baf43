/**
 * Crash safety of the job system on a real SQLite file: a child process (test/helpers/job-child.ts) runs a
 * toy job of N items (one side-database transaction per batch, then a checkpoint) and is killed with
 * SIGKILL at random points, again and again; each new child resumes from the last checkpoint once the dead
 * one's lease expired. After every kill: progress never went back, the checkpoint never runs ahead of the
 * work (every item below it is processed), the record is active and consistent. At the end: the job
 * completed, every item processed exactly once in `processed`, and at most one batch repeated per kill.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import type { JobRecord } from '../../../src/index.js'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'
import { tempCatalogPath } from '../../helpers/engine.js'

const CHILD = join(import.meta.dirname, '../../helpers/job-child.ts')
const N = 12_000
const BATCH = 10
const DELAY_MS = 2
const KILLS = 12

interface ChildRun {
  /** The `P <done>` values the child printed, in order. */
  progress: number[]
  ended: string | undefined
  killed: boolean
}

/** Starts a child; with `killAfterMs`, kills it that long after its first progress event (the job runs). */
async function runChild(catalog: string, sideDb: string, killAfterMs: number | undefined): Promise<ChildRun> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CHILD, catalog, sideDb, `${N}`, `${BATCH}`, `${DELAY_MS}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  )
  let killed = false
  if (killAfterMs !== undefined) {
    const deadline = Date.now() + 30_000
    while (!/^P \d+$/m.test(out) && child.exitCode === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5))
    }
    await new Promise((r) => setTimeout(r, killAfterMs))
    if (child.exitCode === null) {
      killed = child.kill('SIGKILL')
    }
  }
  const exit = await exited
  if (!killed) expect(exit.code, `child failed: ${err}`).toBe(0)
  else expect(exit.signal).toBe('SIGKILL')
  const progress = [...out.matchAll(/^P (\d+)$/gm)].map((m) => Number(m[1]))
  const ended = /^END (\w+)$/m.exec(out)?.[1]
  return { progress, ended, killed }
}

function nonDecreasing(xs: readonly number[]): boolean {
  return xs.every((x, i) => i === 0 || x >= (xs[i - 1] ?? 0))
}

describe('job system: SIGKILL at random points', () => {
  it(`a ${N}-item job killed ${KILLS}+ times resumes from its checkpoint and completes; nothing lost, progress monotonic`, async () => {
    const catalog = tempCatalogPath()
    const sideDb = `${catalog}.side`
    const store = await openSqliteStore({ path: catalog })
    const side = (): Database.Database => new Database(sideDb, { readonly: true, fileMustExist: true })
    let lastDone = 0
    let kills = 0
    const seen: number[] = []
    /** The job's `done` after each kill: the kills land all along the job, not at one spot. */
    const killedAt: number[] = []
    try {
      for (let runs = 0; kills < KILLS; runs++) {
        expect(runs, 'the job finished before enough kills landed: raise N').toBeLessThan(40)
        const r = await runChild(catalog, sideDb, Math.floor(Math.random() * 300))
        expect(nonDecreasing(r.progress)).toBe(true)
        seen.push(...r.progress)
        const job = (await store.listJobs({ tenant: 'crash', limit: 10, offset: 0 })).jobs
        expect(job).toHaveLength(1)
        const rec = job[0] as JobRecord
        expect(rec.done).toBeGreaterThanOrEqual(lastDone)
        lastDone = rec.done
        // The checkpoint never runs ahead of the work: every item below it is processed.
        expect(rec.checkpoint === undefined ? 0 : (JSON.parse(rec.checkpoint) as { next: number }).next).toBe(
          rec.done,
        )
        const db = side()
        const below = db.prepare('SELECT COUNT(*) FROM processed WHERE item < ?').pluck().get(rec.done)
        db.close()
        expect(below).toBe(rec.done)
        if (!r.killed || rec.state === 'completed') break
        expect(rec.state).toBe('running')
        expect(rec.error).toBeUndefined()
        kills++
        killedAt.push(rec.done)
      }
      expect(kills).toBe(KILLS)
      expect(new Set(killedAt).size).toBeGreaterThanOrEqual(KILLS / 2)
      const last = await runChild(catalog, sideDb, undefined)
      expect(last.ended).toBe('completed')
      seen.push(...last.progress)
      expect(nonDecreasing(seen)).toBe(true)
      const rec = (await store.listJobs({ tenant: 'crash', limit: 10, offset: 0 })).jobs[0] as JobRecord
      expect(rec.state).toBe('completed')
      expect([rec.done, rec.total, rec.checkpoint, rec.result]).toEqual([
        N,
        N,
        `{"next":${N}}`,
        `{"processed":${N}}`,
      ])
      expect([rec.cancelRequested, rec.error, rec.leaseOwner, rec.leaseUntil]).toEqual([
        false,
        undefined,
        undefined,
        undefined,
      ])
      expect(rec.finishedAt).toBeGreaterThanOrEqual(rec.startedAt ?? Infinity)
      const db = side()
      const processed = db.prepare('SELECT item FROM processed ORDER BY item').pluck().all() as number[]
      const attempts = db.prepare('SELECT COUNT(*) FROM attempts').pluck().get() as number
      db.close()
      expect(processed).toEqual(Array.from({ length: N }, (_, i) => i))
      // Only the batch in flight at a kill is done again.
      expect(attempts - N).toBeLessThanOrEqual(kills * BATCH)
    } finally {
      await store.close()
    }
  }, 300_000)
})
