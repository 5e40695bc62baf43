/**
 * A separate process for the job system's crash test (test/integration/sqlite/jobs-crash.test.ts):
 *   job-child.ts <catalog> <side db> <n> <batch> <delayMs>
 * opens the SQLite catalog, starts a job runner with the toy handler below, submits the `toy` job of tenant
 * `crash` when there is none yet, follows it (printing `P <done>` on each progress event) and prints
 * `END <state>` when it is final. The parent kills it with SIGKILL at random points and starts it again.
 *
 * The toy handler processes items 0..n-1 in batches: one transaction in the side database per batch
 * (`INSERT OR IGNORE` of each item into `processed`, and a row per item and run into `attempts`), a little
 * work time, then the checkpoint `{ next }` through the runner. A crash between the two repeats at most
 * that batch on resume (at-least-once steps, made idempotent by the primary key: the handler contract).
 */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { createJobRunner, type JobHandler } from '../../src/index.js'
import { openSqliteStore } from '../../src/store/sqlite/index.js'

const [catalog, sidePath, nArg, batchArg, delayArg] = process.argv.slice(2)
const TENANT = 'crash'
// A pending promise alone does not keep Node alive: this timer does until the end.
const keepAlive = setInterval(() => undefined, 60_000)

const side = new Database(sidePath ?? '')
side.pragma('journal_mode = WAL')
side.pragma('synchronous = FULL')
side.exec(`
  CREATE TABLE IF NOT EXISTS processed (item INTEGER PRIMARY KEY, run TEXT NOT NULL) STRICT;
  CREATE TABLE IF NOT EXISTS attempts (item INTEGER NOT NULL, run TEXT NOT NULL) STRICT;
`)
const run = randomUUID()
const insertProcessed = side.prepare('INSERT OR IGNORE INTO processed (item, run) VALUES (?, ?)')
const insertAttempt = side.prepare('INSERT INTO attempts (item, run) VALUES (?, ?)')
const processBatch = side.transaction((from: number, to: number) => {
  for (let i = from; i < to; i++) {
    insertProcessed.run(i, run)
    insertAttempt.run(i, run)
  }
})
const delayMs = Number(delayArg)

const toy: JobHandler = {
  type: 'toy',
  async run(ctl) {
    const { n, batch } = JSON.parse(ctl.job.params) as { n: number; batch: number }
    let next =
      ctl.job.checkpoint === undefined ? 0 : (JSON.parse(ctl.job.checkpoint) as { next: number }).next
    while (next < n && !ctl.signal.aborted) {
      const to = Math.min(n, next + batch)
      processBatch(next, to)
      await sleep(delayMs)
      next = to
      await ctl.checkpoint({ next }, { done: next, total: n })
    }
    return { processed: next }
  },
}

const store = await openSqliteStore({ path: catalog ?? '' })
const jobs = createJobRunner({
  store,
  clock: { now: () => Date.now() },
  handlers: [toy],
  leaseMs: 300,
  sweepIntervalMs: 50,
  pollIntervalMs: 50,
})
await jobs.start()
const existing = (await jobs.list(TENANT, { type: 'toy' })).jobs[0]
const job = existing ?? (await jobs.submit(TENANT, 'toy', { n: Number(nArg), batch: Number(batchArg) }))
jobs.subscribe(TENANT, job.id, (j) => process.stdout.write(`P ${j.done}\n`))
process.stdout.write(`READY ${job.id}\n`)
const end = await jobs.waitFor(TENANT, job.id)
process.stdout.write(`END ${end.state}\n`)
await jobs.close()
await store.close()
side.close()
clearInterval(keepAlive)
