/**
 * The automatic purge on SoftHSM2 + SQLite (issue 13 item 6): 90 days after deletion the key's HSM objects
 * and catalog rows are gone after one pass, a second pass does nothing, and a purge a crash interrupted
 * (the durable purging mark written, some HSM objects already destroyed) is finished by the next pass.
 */
import { describe, expect, it } from 'vitest'
import { DAY } from '../../../src/core/engine-types.js'
import { expectCode } from '../../helpers/expect-code.js'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'

const I = 'auto-purge-hsm'

async function objectsOf(t: TestEngine, keyId: string): Promise<string[]> {
  return (await t.provider.listObjects()).filter((o) => o.keyId === keyId).map((o) => o.ref)
}

describe('automatic purge on SoftHSM2 + SQLite', () => {
  it('destroys the HSM objects and catalog rows of a key deleted 90 days ago, once', async () => {
    const t = await openTestEngine({ engine: { lifecycle: { minRotationIntervalMs: 0 } } })
    try {
      const k = await t.engine.createKey(I, { name: 'purged-after-90-days', aliases: ['auto-purged'] })
      await t.engine.rotate(I, k.id)
      const keep = await t.engine.createKey(I, { name: 'deleted-later' })
      expect(await objectsOf(t, k.id)).toHaveLength(2)
      await t.engine.deleteKey(I, k.id)
      t.clock.advance(DAY)
      await t.engine.deleteKey(I, keep.id)
      t.clock.advance(89 * DAY)

      const r = await t.engine.runAutoPurge()
      expect(r).toEqual({ purged: [{ instance: I, keyId: k.id, deletedAt: expect.any(Date) }], failed: [] })
      expect(await objectsOf(t, k.id)).toEqual([])
      expect(await t.store.getKey(I, k.id)).toBeUndefined()
      expect(await t.store.listVersions(I, k.id)).toEqual([])
      expect(await t.store.getKeyIdByAlias(I, 'auto-purged')).toBeUndefined()
      await expectCode(t.engine.getKey(I, k.id), 'KEY_NOT_FOUND_ERR')
      // The key deleted a day later is not due yet: untouched.
      expect(await objectsOf(t, keep.id)).toHaveLength(1)
      expect((await t.engine.getKey(I, keep.id)).state).toBe(5)

      const objectsBefore = (await t.provider.listObjects()).length
      expect(await t.engine.runAutoPurge()).toEqual({ purged: [], failed: [] })
      expect((await t.provider.listObjects()).length).toBe(objectsBefore)
    } finally {
      await t.engine.close()
    }
  })

  it('finishes a purge a crash interrupted after the purging mark (an object already gone)', async () => {
    const t = await openTestEngine({ engine: { lifecycle: { minRotationIntervalMs: 0 } } })
    try {
      const k = await t.engine.createKey(I, { name: 'interrupted-purge' })
      await t.engine.rotate(I, k.id)
      await t.engine.rotate(I, k.id)
      await t.engine.deleteKey(I, k.id)
      t.clock.advance(90 * DAY)
      // What a crash in the middle of destroyKey leaves: the mark, and only some objects destroyed.
      expect(await t.store.markPurging(I, k.id, 5, { updatedAt: t.clock.now() }, t.clock.now())).toBe(true)
      const [first] = await t.store.listVersions(I, k.id)
      await t.provider.destroyVersion(first?.providerRef ?? '')
      expect(await objectsOf(t, k.id)).toHaveLength(2)

      const r = await t.engine.runAutoPurge()
      expect(r.purged.map((p) => p.keyId)).toEqual([k.id])
      expect(await objectsOf(t, k.id)).toEqual([])
      expect(await t.store.listPurging()).toEqual([])
      expect(await t.engine.runAutoPurge()).toEqual({ purged: [], failed: [] })
    } finally {
      await t.engine.close()
    }
  })
})
