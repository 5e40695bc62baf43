/**
 * Key Protect's `X-Kms-Key-Ring` scope, checked in core: every method that addresses a key takes an optional
 * `keyRingId`; a key outside that ring is KEY_NOT_FOUND_ERR, as if it did not exist, whether its metadata is
 * cached (the synchronous hot path) or read from the catalog. Real SoftHSM2 token, real SQLite catalog.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { expectCode } from '../../helpers/expect-code.js'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'

const I = 'ring-scope'
let t: TestEngine
let inRing: string
let elsewhere: string

beforeAll(async () => {
  t = await openTestEngine()
  await t.engine.createKeyRing(I, 'scoped')
  inRing = (
    await t.engine.createKey(I, { name: 'in-the-ring', keyRingId: 'scoped', aliases: ['scoped-alias'] })
  ).id
  elsewhere = (await t.engine.createKey(I, { name: 'in-default' })).id
})
afterAll(async () => {
  await t.engine.close()
})

describe('key-ring scope (keyRingId)', () => {
  it('a key in the named ring is found by id and by alias; one elsewhere is KEY_NOT_FOUND_ERR', async () => {
    expect((await t.engine.getKey(I, inRing, { keyRingId: 'scoped' })).id).toBe(inRing)
    expect((await t.engine.getKey(I, 'scoped-alias', { keyRingId: 'scoped' })).id).toBe(inRing)
    await expectCode(t.engine.getKey(I, elsewhere, { keyRingId: 'scoped' }), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.getKey(I, inRing, { keyRingId: 'default' }), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.getKey(I, inRing, { keyRingId: 'no-such-ring' }), 'KEY_NOT_FOUND_ERR')
  })

  it('wrap, unwrap and rewrap honour the scope with the key metadata cached and uncached', async () => {
    const w = await t.engine.wrap(I, inRing, { keyRingId: 'scoped' })
    // The metadata of `inRing` is now cached: the synchronous path must check the ring too.
    await expectCode(t.engine.wrap(I, inRing, { keyRingId: 'default' }), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.unwrap(I, inRing, w.ciphertext, { keyRingId: 'default' }), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.rewrap(I, inRing, w.ciphertext, { keyRingId: 'default' }), 'KEY_NOT_FOUND_ERR')
    const u = await t.engine.unwrap(I, inRing, w.ciphertext, { keyRingId: 'scoped' })
    expect(u.plaintext.equals(w.plaintext as Buffer)).toBe(true)
    await expectCode(t.engine.wrapMany(I, inRing, 2, { keyRingId: 'default' }), 'KEY_NOT_FOUND_ERR')
    const many = await t.engine.wrapMany(I, inRing, 2, { keyRingId: 'scoped' })
    expect(many.every((r) => r.ok)).toBe(true)
  })

  it('lifecycle, policies and aliases refuse a key outside the ring before doing anything', async () => {
    const out = { keyRingId: 'default' }
    await expectCode(t.engine.disable(I, inRing, out), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.rotate(I, inRing, out), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.listKeyVersions(I, inRing, out), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.getKeyPolicies(I, inRing, undefined, out), 'KEY_NOT_FOUND_ERR')
    await expectCode(
      t.engine.setKeyPolicies(I, inRing, { rotation: { enabled: false } }, out),
      'KEY_NOT_FOUND_ERR',
    )
    await expectCode(t.engine.addAlias(I, inRing, 'another-alias', out), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.deleteKey(I, inRing, out), 'KEY_NOT_FOUND_ERR')
    // Nothing happened to the key.
    const k = await t.engine.getKey(I, inRing)
    expect(k.state).toBe(1)
    expect(k.keyVersion.number).toBe(1)
    expect(k.aliases).toEqual(['scoped-alias'])
    expect(k.deleted).toBe(false)
  })

  it('after a move, the old ring no longer finds the key and the new one does', async () => {
    await t.engine.createKeyRing(I, 'other')
    await t.engine.moveKey(I, inRing, 'other')
    await expectCode(t.engine.wrap(I, inRing, { keyRingId: 'scoped' }), 'KEY_NOT_FOUND_ERR')
    expect((await t.engine.wrap(I, inRing, { keyRingId: 'other' })).keyVersion.number).toBe(1)
  })
})
