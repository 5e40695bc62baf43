/**
 * A separate process for the synchronization crash test (test/integration/softhsm2/key-sync-crash.test.ts):
 * opens createEngineServicesFromConfig on the test token and the catalog given (batches of 5 keys), starts
 * the pkcs11 synchronization of `tenant` unless one exists (the job runner resumes an interrupted one at
 * start), prints `P <discovered>` on every durable change and `DONE <json>` once it is final, then exits.
 * The parent SIGKILLs it at random points.
 *
 *   node --import tsx sync-child.ts <catalog> <tenant>
 */
import type { SyncJobView } from '../../src/index.js'
import { openServices } from './tenant-keys.js'

const [catalog, tenant] = process.argv.slice(2)
if (catalog === undefined || tenant === undefined) throw new Error('usage: sync-child.ts <catalog> <tenant>')
const s = await openServices(catalog, {
  syncJob: { batchSize: 5 },
  jobs: { leaseMs: 600, sweepIntervalMs: 100, pollIntervalMs: 20 },
})
let job: SyncJobView | undefined = (await s.sync.listSyncJobs(tenant, { cloud: 'pkcs11' })).jobs[0]
if (job === undefined) job = await s.sync.startSync(tenant, { cloud: 'pkcs11', synchronizeAll: true })
process.stdout.write(`STARTED ${job.id}\n`)
s.sync.subscribeSync(tenant, job.id, (v) => process.stdout.write(`P ${v.counts.discovered}\n`))
const done = await s.sync.waitForSync(tenant, job.id)
process.stdout.write(`DONE ${JSON.stringify(done)}\n`)
await s.close()
process.exit(0)
