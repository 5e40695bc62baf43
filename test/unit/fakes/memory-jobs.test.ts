/**
 * The in-memory job store passes the same conformance suite as the SQLite role (test/integration/sqlite):
 * the runner's unit tests see the semantics of the real catalog.
 */
import { runJobStoreConformance } from '../../conformance/job-store.js'
import { MemoryJobStore } from '../../fakes/memory-jobs.js'

runJobStoreConformance('in-memory fake (test/fakes)', async () => new MemoryJobStore())
