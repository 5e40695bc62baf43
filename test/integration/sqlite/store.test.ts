import { statSync } from 'node:fs'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'
import { dataKeyStore } from '../../../src/store/sqlite/data-keys.js'
import { MIGRATIONS } from '../../../src/store/sqlite/migrations.js'
import { keyRecord, runMetadataStoreConformance, versionOf } from '../../conformance/metadata-store.js'
import { tempCatalogPath } from '../../helpers/engine.js'
import { expectCode } from '../../helpers/expect-code.js'

runMetadataStoreConformance('sqlite file', () => openSqliteStore({ path: tempCatalogPath() }))

describe('SQLite catalog', () => {
  it('creates the file with mode 0600, in WAL mode, and keeps its catalog id across reopen', async () => {
    const path = tempCatalogPath()
    const s = await openSqliteStore({ path })
    const id = s.catalogId
    await s.close()
    expect(statSync(path).mode & 0o777).toBe(0o600)
    const db = new Database(path)
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length)
    db.close()
    const again = await openSqliteStore({ path })
    expect(again.catalogId).toBe(id)
    await again.close()
  })

  it('migrates a version-1 catalog forward without losing keys', async () => {
    const path = tempCatalogPath()
    const db = new Database(path)
    db.exec(MIGRATIONS[0] ?? '')
    db.prepare(
      "INSERT INTO catalog_meta (k, v) VALUES ('catalog_id', '11111111-1111-4111-8111-111111111111')",
    ).run()
    db.pragma('user_version = 1')
    db.prepare('INSERT INTO instances VALUES (?, ?)').run('old', 1)
    db.prepare(
      "INSERT INTO keys (instance, id, name, extractable, imported, state, created_at, updated_at, state_changed_at, current_version) VALUES ('old', 'k1', 'n', 0, 0, 1, 1, 1, 1, 1)",
    ).run()
    db.prepare("INSERT INTO key_versions VALUES ('old', 'k1', 1, 'k1', 'ref', 1)").run()
    db.prepare("INSERT INTO aliases VALUES ('old', 'old-alias', 'k1', 7)").run()
    db.close()
    const s = await openSqliteStore({ path })
    expect(s.catalogId).toBe('11111111-1111-4111-8111-111111111111')
    expect((await s.getKey('old', 'k1'))?.name).toBe('n')
    expect(await s.usageReserved('old', 'k1', 1)).toBe(0)
    // Migration 9: an alias stored before its creator was recorded has none.
    expect(await s.addAlias('old', 'k1', 'old-alias', 99, 5, 'later')).toEqual({
      result: 'exists',
      createdAt: 7,
      createdBy: undefined,
    })
    await s.close()
  })

  it('refuses a catalog whose schema is newer than this build with STORE_ERROR', async () => {
    const path = tempCatalogPath()
    await (await openSqliteStore({ path })).close()
    const db = new Database(path)
    db.pragma('user_version = 99')
    db.close()
    await expectCode(openSqliteStore({ path }), 'STORE_ERROR')
  })

  it('reports commits by other processes through changeCounter', async () => {
    const path = tempCatalogPath()
    const a = await openSqliteStore({ path })
    const b = await openSqliteStore({ path })
    const before = a.changeCounter()
    const k = keyRecord('cc')
    await b.insertKey(k, versionOf(k), [])
    expect(a.changeCounter()).not.toBe(before)
    expect((await a.getKey('cc', k.id))?.id).toBe(k.id)
    await a.close()
    await b.close()
  })

  it('a file that is not a database fails with STORE_ERROR', async () => {
    const { writeFileSync } = await import('node:fs')
    const path = tempCatalogPath()
    writeFileSync(path, 'not a database, just text '.repeat(100))
    await expectCode(openSqliteStore({ path }), 'STORE_ERROR')
  })
})

describe('data-key catalog: replaceWrapped with a deferred flush (durable: false)', () => {
  /** A catalog connection as openSqliteStore sets it up (WAL, synchronous = FULL, every migration). */
  function catalog(): Database.Database {
    const db = new Database(tempCatalogPath())
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    for (const m of MIGRATIONS) db.exec(m)
    return db
  }

  it('compare-and-sets like a durable write and leaves the connection at synchronous = FULL', async () => {
    const db = catalog()
    const keys = dataKeyStore(db)
    for (const name of ['a', 'b', 'c']) {
      await keys.insertDataKey({
        tenant: 't',
        name,
        wrapped: `old-${name}`,
        providerFingerprint: 't',
        createdAt: 1,
        updatedAt: 1,
      })
    }
    const n = await keys.replaceWrapped(
      't',
      [
        { name: 'a', expectedWrapped: 'old-a', wrapped: 'new-a', providerFingerprint: 'fp', updatedAt: 2 },
        { name: 'b', expectedWrapped: 'changed', wrapped: 'new-b', providerFingerprint: 'fp', updatedAt: 2 },
      ],
      { durable: false },
    )
    expect(n).toBe(1)
    expect((await keys.getDataKey('t', 'a'))?.wrapped).toBe('new-a')
    expect((await keys.getDataKey('t', 'b'))?.wrapped).toBe('old-b')
    expect(await keys.countDataKeys('t', 'fp')).toBe(1)
    expect(db.pragma('synchronous', { simple: true })).toBe(2) // FULL again for every other write

    // A failing transaction (a text where STRICT wants an integer) rolls back and restores FULL too.
    const bad = { name: 'c', expectedWrapped: 'old-c', wrapped: 'x', providerFingerprint: 'fp' }
    await expect(
      keys.replaceWrapped('t', [{ ...bad, updatedAt: 'late' as unknown as number }], { durable: false }),
    ).rejects.toThrow()
    expect(db.pragma('synchronous', { simple: true })).toBe(2)
    expect((await keys.getDataKey('t', 'c'))?.wrapped).toBe('old-c')
    db.close()
  })
})
