/**
 * The job store role of the SQLite catalog (store/sqlite/jobs.ts, migration 11) on a real file: the
 * conformance suite, and the cross-connection rules (the unique partial index and the compare-and-set hold
 * between two connections, as between two processes).
 */
import { describe, expect, it } from 'vitest'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'
import { jobRecord, runJobStoreConformance } from '../../conformance/job-store.js'
import { tempCatalogPath } from '../../helpers/engine.js'

runJobStoreConformance('sqlite file', () => openSqliteStore({ path: tempCatalogPath() }))

describe('SQLite job store across connections', () => {
  it('a second connection cannot insert a second active job of a type for a tenant, nor win a stale CAS', async () => {
    const path = tempCatalogPath()
    const a = await openSqliteStore({ path })
    const b = await openSqliteStore({ path })
    try {
      const j = jobRecord()
      expect(await a.insertJob(j)).toBe(true)
      expect(await b.insertJob(jobRecord({ tenant: j.tenant }))).toBe(false)
      expect(await b.insertJob(jobRecord({ tenant: j.tenant, state: 'running' }))).toBe(false)
      const claimed = await b.updateJob(j.id, 1, { state: 'running', leaseOwner: 'b', leaseUntil: 5 })
      expect(claimed?.revision).toBe(2)
      expect(await a.updateJob(j.id, 1, { state: 'running', leaseOwner: 'a', leaseUntil: 5 })).toBeUndefined()
      expect((await a.getJob(j.id))?.leaseOwner).toBe('b')
      await b.updateJob(j.id, 2, { state: 'cancelled', finishedAt: 6 })
      expect(await a.insertJob(jobRecord({ tenant: j.tenant }))).toBe(true)
    } finally {
      await a.close()
      await b.close()
    }
  })
})
