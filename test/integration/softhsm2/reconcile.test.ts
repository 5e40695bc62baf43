/**
 * Reconciliation of HSM objects with the catalog, for each state a crash can leave behind.
 * "A key/version row is committed only after the HSM object exists" (DESIGN decision 7).
 */
import { randomUUID } from 'node:crypto'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { createEngine } from '../../../src/index.js'
import { expectCode } from '../../helpers/expect-code.js'
import { openTestEngine } from '../../helpers/engine.js'

const GRACE = 60_000

describe('reconcile', () => {
  it('destroys the HSM object of a key creation that crashed before its catalog commit', async () => {
    const t = await openTestEngine()
    const keyId = randomUUID()
    await t.store.addPending({ instance: 'r', keyId, version: 1, startedAt: t.clock.now() })
    const ref = await t.provider.createVersion({ catalogId: t.store.catalogId, keyId, version: 1 })
    // a young pending creation is left alone: another process may be about to commit it
    const early = await t.engine.reconcile()
    expect(early).toMatchObject({ destroyed: [], inProgress: 1 })
    t.clock.advance(GRACE)
    const report = await t.engine.reconcile()
    expect(report.destroyed).toEqual([ref])
    expect((await t.provider.listObjects()).some((o) => o.ref === ref)).toBe(false)
    expect(await t.store.listPending()).toEqual([])
    await t.engine.close()
  })

  it('destroys the object of a rotation that crashed before its commit; the key keeps its current version', async () => {
    const t = await openTestEngine()
    const key = await t.engine.createKey('r', { name: 'rotating' })
    await t.store.addPending({ instance: 'r', keyId: key.id, version: 2, startedAt: t.clock.now() })
    const ref = await t.provider.createVersion({ catalogId: t.store.catalogId, keyId: key.id, version: 2 })
    t.clock.advance(GRACE)
    expect((await t.engine.reconcile()).destroyed).toEqual([ref])
    expect((await t.engine.getKey('r', key.id)).keyVersion.number).toBe(1)
    expect((await t.engine.rotate('r', key.id)).keyVersion.number).toBe(2)
    await t.engine.close()
  })

  it('adopts a version object of a known key whose row was lost (catalog restored from an older backup)', async () => {
    const t = await openTestEngine()
    const key = await t.engine.createKey('r', { name: 'restored' })
    await t.engine.rotate('r', key.id)
    const w = await t.engine.wrap('r', key.id, { aad: ['v2'] })
    await t.engine.close()
    // roll the catalog back to "before the rotation"
    const db = new Database(t.catalogPath)
    db.prepare('DELETE FROM key_versions WHERE key_id = ? AND version = 2').run(key.id)
    db.prepare('UPDATE keys SET current_version = 1 WHERE id = ?').run(key.id)
    db.close()
    const t2 = await openTestEngine({ catalogPath: t.catalogPath, engine: { reconcileOnStart: false } })
    await expectCode(t2.engine.unwrap('r', key.id, w.ciphertext, { aad: ['v2'] }), 'KEY_VERSION_NOT_FOUND')
    const report = await t2.engine.reconcile()
    expect(report.adopted).toHaveLength(1)
    const u = await t2.engine.unwrap('r', key.id, w.ciphertext, { aad: ['v2'] })
    expect(u.plaintext.equals(w.plaintext ?? Buffer.alloc(0))).toBe(true)
    await t2.engine.close()
  })

  it("reports, and never destroys, objects of this catalog that match no key, and ignores other catalogs' objects", async () => {
    const t = await openTestEngine()
    const stray = await t.provider.createVersion({
      catalogId: t.store.catalogId,
      keyId: randomUUID(),
      version: 1,
    })
    const foreign = await t.provider.createVersion({
      catalogId: randomUUID(),
      keyId: randomUUID(),
      version: 1,
    })
    t.clock.advance(GRACE)
    const report = await t.engine.reconcile()
    expect(report.unknown).toEqual([stray])
    expect(report.destroyed).toEqual([])
    const refs = (await t.provider.listObjects()).map((o) => o.ref)
    expect(refs).toContain(stray)
    expect(refs).toContain(foreign)
    await t.provider.destroyVersion(stray)
    await t.provider.destroyVersion(foreign)
    await t.engine.close()
  })

  it('a create that fails after the HSM object exists (alias taken meanwhile) removes that object', async () => {
    const t = await openTestEngine()
    await t.engine.createKey('r', { name: 'owner', aliases: ['taken'] })
    const before = (await t.provider.listObjects()).filter((o) => o.catalogId === t.store.catalogId).length
    // Race the alias check: make the store refuse the alias only at commit time.
    const store = t.store
    const racing = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'getKeyIdByAlias') return async () => undefined
        const v = Reflect.get(target, prop, receiver) as unknown
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
      },
    })
    const engine = await createEngine({
      provider: t.provider,
      store: racing,
      clock: t.clock,
      ownsDependencies: false,
    })
    await expectCode(engine.createKey('r', { name: 'loser', aliases: ['taken'] }), 'KEY_ALIAS_NOT_UNIQUE_ERR')
    const after = (await t.provider.listObjects()).filter((o) => o.catalogId === t.store.catalogId).length
    expect(after).toBe(before)
    expect(await t.store.listPending()).toEqual([])
    await engine.close()
    await t.engine.close()
  })
})
