/**
 * The key-synchronization roles of the SQLite catalog (store/sqlite/connections.ts and linked-keys.ts,
 * migrations 15-16) on a real file: the conformance suite, and the rules that hold across connections.
 */
import { describe, expect, it } from 'vitest'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'
import { connectionRecord, discovered, runSyncStoreConformance } from '../../conformance/sync-store.js'
import { tempCatalogPath } from '../../helpers/engine.js'

runSyncStoreConformance('sqlite file', () => openSqliteStore({ path: tempCatalogPath() }))

describe('SQLite sync roles across connections', () => {
  it("a second connection sees the first one's names and linked keys (unique name, unchanged upsert, delete in-use)", async () => {
    const path = tempCatalogPath()
    const a = await openSqliteStore({ path })
    const b = await openSqliteStore({ path })
    try {
      const c = connectionRecord()
      expect(await a.insertConnection(c)).toBe(true)
      expect(
        await b.insertConnection({ ...connectionRecord({ tenant: c.tenant }), name: c.name.toUpperCase() }),
      ).toBe(false)
      expect(
        await b.upsertLinkedKeys(c.tenant, c.id, 'aws', [{ ...discovered(1), id: crypto.randomUUID() }], {
          at: 1,
          jobId: 'j',
        }),
      ).toEqual(['inserted'])
      expect(
        await a.upsertLinkedKeys(c.tenant, c.id, 'aws', [{ ...discovered(1), id: crypto.randomUUID() }], {
          at: 2,
          jobId: 'j',
        }),
      ).toEqual(['unchanged'])
      expect(await a.deleteConnection(c.tenant, c.id)).toBe('in-use')
    } finally {
      await a.close()
      await b.close()
    }
  })
})
