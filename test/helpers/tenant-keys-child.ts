/**
 * A separate process for the key-provider migration crash test (test/integration/softhsm2/
 * tenant-keys-crash.test.ts): opens createEngineServicesFromConfig on the shared test token and the catalog
 * given, starts the migration of `tenant` to `fingerprint` unless one exists (the job runner resumes an
 * interrupted one at start), prints `P <done> <total>` on every durable progress change and `DONE <json>`
 * once the migration is final, then exits. The parent SIGKILLs it at random points.
 *
 *   node --import tsx tenant-keys-child.ts <catalog> <tenant> <fingerprint>
 */
import type { MigrationView } from '../../src/index.js'
import { openServices } from './tenant-keys.js'

const [catalog, tenant, fingerprint] = process.argv.slice(2)
if (catalog === undefined || tenant === undefined || fingerprint === undefined) {
  throw new Error('usage: tenant-keys-child.ts <catalog> <tenant> <fingerprint>')
}
const s = await openServices(catalog, {
  // One entry a batch, a durable checkpoint each: the job outlasts the kills even though a restarted child
  // takes the dead one's lease over at once (core/jobs/local-owner.ts), and every step is a kill point.
  migration: { batchSize: 1, checkpointIntervalMs: 0 },
  jobs: { leaseMs: 600, sweepIntervalMs: 100, pollIntervalMs: 20 },
})
const tk = s.tenantKeys
let m: MigrationView | undefined
try {
  m = await tk.migration(tenant)
} catch {
  m = undefined
}
if (m === undefined) m = await tk.migrate(tenant, fingerprint)
process.stdout.write(`STARTED ${m.id}\n`)
tk.subscribeMigration(tenant, m.id, (v) => process.stdout.write(`P ${v.done} ${v.total}\n`))
const done = await tk.waitForMigration(tenant, m.id)
process.stdout.write(`DONE ${JSON.stringify(done)}\n`)
await s.close()
process.exit(0)
