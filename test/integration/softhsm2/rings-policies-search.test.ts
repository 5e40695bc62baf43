/**
 * Key rings, key policies, the Key Protect search/filter/sort language and scheduled rotation, through the
 * engine on a real SoftHSM2 token and a real SQLite catalog.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KeyState } from '../../../src/index.js'
import { expectCode } from '../../helpers/expect-code.js'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'

const DAY = 86_400_000
const A = 'rings-a'
const B = 'rings-b'

let t: TestEngine
beforeAll(async () => {
  t = await openTestEngine()
})
afterAll(async () => {
  await t.engine.close()
})

describe('key rings', () => {
  it('creates, lists, refuses duplicates quietly, and keeps instances apart', async () => {
    expect(await t.engine.createKeyRing(A, 'ring-one', { createdBy: 'alice' })).toEqual({ created: true })
    expect(await t.engine.createKeyRing(A, 'ring-one')).toEqual({ created: false })
    const rings = await t.engine.listKeyRings(A)
    expect(rings.map((r) => r.id)).toEqual(['default', 'ring-one'])
    expect(rings[1]?.createdBy).toBe('alice')
    expect((await t.engine.listKeyRings(B)).map((r) => r.id)).toEqual(['default'])
    await expectCode(
      t.engine.createKey(B, { name: 'other-tenant', keyRingId: 'ring-one' }),
      'KEY_RING_NOT_FOUND_ERR',
    )
  })

  it('refuses default, bad ids, and enforces delete rules (not empty, force with live keys, force moves deleted keys)', async () => {
    await expectCode(t.engine.createKeyRing(A, 'default'), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.createKeyRing(A, 'has_underscore'), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.deleteKeyRing(A, 'default'), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.deleteKeyRing(A, 'never-made'), 'KEY_RING_NOT_FOUND_ERR')
    await t.engine.createKeyRing(A, 'ring-del')
    const k = await t.engine.createKey(A, { name: 'in-ring', keyRingId: 'ring-del' })
    expect(k.keyRingId).toBe('ring-del')
    await expectCode(t.engine.deleteKeyRing(A, 'ring-del'), 'KEY_RING_NOT_EMPTY_ERR')
    await expectCode(t.engine.deleteKeyRing(A, 'ring-del', { force: true }), 'KEY_RING_KEYS_NOT_DELETED_ERR')
    await t.engine.deleteKey(A, k.id)
    await expectCode(t.engine.deleteKeyRing(A, 'ring-del'), 'KEY_RING_NOT_EMPTY_ERR')
    await t.engine.deleteKeyRing(A, 'ring-del', { force: true })
    expect((await t.engine.getKey(A, k.id)).keyRingId).toBe('default')
    expect((await t.engine.listKeyRings(A)).map((r) => r.id)).not.toContain('ring-del')
  })

  it('moves a key between rings, checking the expected ring and the target', async () => {
    await t.engine.createKeyRing(A, 'ring-move')
    const k = await t.engine.createKey(A, { name: 'mover' })
    await expectCode(t.engine.moveKey(A, k.id, 'nope-ring'), 'KEY_RING_NOT_FOUND_ERR')
    await expectCode(
      t.engine.moveKey(A, k.id, 'ring-move', { expectedRing: 'ring-move' }),
      'KEY_NOT_FOUND_ERR',
    )
    const moved = await t.engine.moveKey(A, k.id, 'ring-move', { expectedRing: 'default' })
    expect(moved.keyRingId).toBe('ring-move')
    const listed = await t.engine.listKeys(A, { keyRingId: 'ring-move' })
    expect(listed.keys.map((x) => x.id)).toEqual([k.id])
    await expectCode(t.engine.moveKey(B, k.id, 'default'), 'KEY_NOT_FOUND_ERR')
  })
})

describe('key policies', () => {
  it('sets and reads rotation and dualAuthDelete; dual auth cannot be turned off', async () => {
    const k = await t.engine.createKey(A, { name: 'policy-key' })
    expect(await t.engine.getKeyPolicies(A, k.id)).toEqual([])
    const set = await t.engine.setKeyPolicies(
      A,
      k.id,
      { rotation: { enabled: true, intervalMonth: 3 }, dualAuthDelete: { enabled: true } },
      { updatedBy: 'bob' },
    )
    expect(set.map((p) => [p.type, p.enabled, p.intervalMonth]).sort()).toEqual([
      ['dualAuthDelete', true, undefined],
      ['rotation', true, 3],
    ])
    const info = await t.engine.getKey(A, k.id)
    expect(info.rotation).toEqual({ enabled: true, intervalMonth: 3 })
    expect(info.dualAuthDelete).toEqual({
      enabled: true,
      keySetForDeletion: false,
      authExpiration: undefined,
    })
    const rot = await t.engine.getKeyPolicies(A, k.id, 'rotation')
    expect(rot).toHaveLength(1)
    const again = await t.engine.setKeyPolicies(A, k.id, { rotation: { enabled: false } })
    expect(again[0]).toMatchObject({ id: rot[0]?.id, enabled: false, intervalMonth: 3, createdBy: 'bob' })
    await expectCode(
      t.engine.setKeyPolicies(A, k.id, { dualAuthDelete: { enabled: false } }),
      'INVALID_FIELD_ERR',
    )
    expect((await t.engine.getKey(A, k.id)).dualAuthDelete.enabled).toBe(true)
  })

  it('refuses bad intervals, standard keys and keys not in state 1', async () => {
    const k = await t.engine.createKey(A, { name: 'policy-bad' })
    for (const intervalMonth of [0, 13, 1.5]) {
      await expectCode(
        t.engine.setKeyPolicies(A, k.id, { rotation: { enabled: true, intervalMonth } }),
        'INVALID_FIELD_ERR',
      )
    }
    await expectCode(t.engine.setKeyPolicies(A, k.id, { rotation: { enabled: true } }), 'MISSING_FIELD_ERR')
    const std = await t.engine.createKey(A, { name: 'std', extractable: true })
    await expectCode(
      t.engine.setKeyPolicies(A, std.id, { rotation: { enabled: true, intervalMonth: 1 } }),
      'KEY_INVALID_STATE_ERR',
    )
    await t.engine.disable(A, k.id)
    await expectCode(
      t.engine.setKeyPolicies(A, k.id, { rotation: { enabled: true, intervalMonth: 1 } }),
      'KEY_INVALID_STATE_ERR',
    )
    await t.engine.deleteKey(A, k.id)
    await expectCode(
      t.engine.setKeyPolicies(A, k.id, { rotation: { enabled: true, intervalMonth: 1 } }),
      'KEY_DELETED_ERR',
    )
    expect(await t.engine.getKeyPolicies(A, k.id)).toEqual([])
  })

  it('creates a key with policy overrides atomically', async () => {
    const k = await t.engine.createKey(A, {
      name: 'with-overrides',
      policies: { rotation: { enabled: true, intervalMonth: 2 } },
    })
    expect(k.rotation).toEqual({ enabled: true, intervalMonth: 2 })
    await expectCode(
      t.engine.createKey(A, {
        name: 'bad-overrides',
        policies: { rotation: { enabled: true, intervalMonth: 44 } },
      }),
      'INVALID_FIELD_ERR',
    )
    const before = (await t.engine.listKeys(A, { search: 'exact:bad-overrides', states: [0, 1, 2, 3, 5] }))
      .total
    expect(before).toBe(0)
  })
})

describe('dual authorization of deletes', () => {
  it('needs a setKeyForDeletion by another user, valid for 7 days; unset withdraws it', async () => {
    const k = await t.engine.createKey(A, {
      name: 'dual-auth',
      policies: { dualAuthDelete: { enabled: true } },
    })
    expect(k.dualAuthDelete).toEqual({ enabled: true, keySetForDeletion: false, authExpiration: undefined })
    await expectCode(t.engine.deleteKey(A, k.id, { deletedBy: 'alice' }), 'AUTHORIZATIONS_NOT_MET')
    await expectCode(t.engine.setKeyForDeletion(A, k.id), 'MISSING_FIELD_ERR')
    const set = await t.engine.setKeyForDeletion(A, k.id, { by: 'alice' })
    expect(set.dualAuthDelete.keySetForDeletion).toBe(true)
    expect(set.dualAuthDelete.authExpiration?.getTime()).toBe(t.clock.now() + 7 * DAY)
    await expectCode(t.engine.deleteKey(A, k.id, { deletedBy: 'alice' }), 'AUTHORIZATIONS_NOT_MET')
    await expectCode(t.engine.deleteKey(A, k.id), 'AUTHORIZATIONS_NOT_MET')
    await t.engine.unsetKeyForDeletion(A, k.id, { by: 'bob' })
    await expectCode(t.engine.deleteKey(A, k.id, { deletedBy: 'bob' }), 'AUTHORIZATIONS_NOT_MET')
    await t.engine.setKeyForDeletion(A, k.id, { by: 'alice' })
    t.clock.advance(7 * DAY + 1)
    expect((await t.engine.getKey(A, k.id)).dualAuthDelete.keySetForDeletion).toBe(false)
    await expectCode(t.engine.deleteKey(A, k.id, { deletedBy: 'bob' }), 'AUTHORIZATIONS_NOT_MET')
    await t.engine.setKeyForDeletion(A, k.id, { by: 'alice' })
    const deleted = await t.engine.deleteKey(A, k.id, { deletedBy: 'bob' })
    expect(deleted.state).toBe(KeyState.DESTROYED)
    expect(deleted.dualAuthDelete.keySetForDeletion).toBe(false)
    await expectCode(t.engine.setKeyForDeletion(A, k.id, { by: 'alice' }), 'KEY_DELETED_ERR')
    // An authorisation from before the delete never carries over to the restored key, even if it was left
    // in the catalog (as a crash between the delete and its clean-up would leave it).
    t.clock.advance(31_000)
    await t.engine.restoreKey(A, k.id)
    await t.store.setDeletionAuth(A, k.id, 'alice', deleted.deletedAt!.getTime() + DAY)
    expect((await t.engine.getKey(A, k.id)).dualAuthDelete.keySetForDeletion).toBe(false)
    await expectCode(t.engine.deleteKey(A, k.id, { deletedBy: 'bob' }), 'AUTHORIZATIONS_NOT_MET')
    await t.engine.setKeyForDeletion(A, k.id, { by: 'alice' })
    t.clock.advance(1000)
    await t.engine.disable(A, k.id)
    await expectCode(t.engine.deleteKey(A, k.id, { deletedBy: 'bob' }), 'AUTHORIZATIONS_NOT_MET')
    const plain = await t.engine.createKey(A, { name: 'no-dual-auth' })
    await expectCode(t.engine.setKeyForDeletion(A, plain.id, { by: 'alice' }), 'NOT_DUAL_AUTH_ERR')
    await expectCode(t.engine.unsetKeyForDeletion(A, plain.id, { by: 'alice' }), 'NOT_DUAL_AUTH_ERR')
  })
})

describe('scheduled rotation', () => {
  it('rotates due keys once (catching up after downtime), skips imported and suspended keys', async () => {
    const inst = 'rot-sched'
    const due = await t.engine.createKey(inst, {
      name: 'due',
      policies: { rotation: { enabled: true, intervalMonth: 1 } },
    })
    const imported = await t.engine.createKey(inst, {
      name: 'imp',
      payload: Buffer.alloc(32, 7),
      policies: { rotation: { enabled: true, intervalMonth: 1 } },
    })
    const off = await t.engine.createKey(inst, {
      name: 'off',
      policies: { rotation: { enabled: false, intervalMonth: 1 } },
    })
    const suspended = await t.engine.createKey(inst, {
      name: 'susp',
      policies: { rotation: { enabled: true, intervalMonth: 1 } },
    })
    await t.engine.disable(inst, suspended.id)
    const mine = (ids: string[]): string[] =>
      ids.filter((id) => [due.id, imported.id, off.id, suspended.id].includes(id))

    let r = await t.engine.rotateDueKeys()
    expect(mine(r.rotated)).toEqual([])
    t.clock.advance(29 * DAY)
    r = await t.engine.rotateDueKeys()
    expect(mine(r.rotated)).toEqual([])
    t.clock.advance(95 * DAY) // down for three intervals
    r = await t.engine.rotateDueKeys()
    expect(mine(r.rotated)).toEqual([due.id])
    expect(mine(r.skipped).sort()).toEqual([imported.id, suspended.id].sort())
    expect((await t.engine.getKey(inst, due.id)).keyVersion.number).toBe(2)
    r = await t.engine.rotateDueKeys()
    expect(mine(r.rotated)).toEqual([])
    t.clock.advance(30 * DAY)
    r = await t.engine.rotateDueKeys()
    expect(mine(r.rotated)).toEqual([due.id])
    expect((await t.engine.getKey(inst, off.id)).keyVersion.number).toBe(1)
    expect((await t.engine.getKey(inst, due.id)).state).toBe(KeyState.ACTIVE)
  })
})

describe('search, filter, sort', () => {
  const S = 'search-inst'
  const ids: Record<string, string> = {}
  beforeAll(async () => {
    for (const [name, aliases] of [
      ['Alpha-Root', ['alpha-alias']],
      ['beta-root', ['not-really']],
      ['foobar', []],
      ['xfoobar', ['foo']],
    ] as const) {
      ids[name] = (await t.engine.createKey(S, { name, aliases: [...aliases] })).id
      t.clock.advance(1000)
    }
    ids['std'] = (await t.engine.createKey(S, { name: 'standard-one', extractable: true })).id
    await t.engine.deleteKey(S, ids['beta-root'] ?? '')
  })
  const names = async (o: Parameters<typeof t.engine.listKeys>[1]): Promise<string[]> =>
    (await t.engine.listKeys(S, o)).keys.map((k) => k.name)

  it('contains / exact / not / scopes / escape, case-insensitively', async () => {
    expect(await names({ search: 'ALPHA' })).toEqual(['Alpha-Root'])
    expect(await names({ search: 'foobar' })).toEqual(['foobar', 'xfoobar'])
    expect(await names({ search: 'exact:foobar' })).toEqual(['foobar'])
    expect(await names({ search: 'not:exact:foobar' })).toEqual(['Alpha-Root', 'xfoobar', 'standard-one'])
    expect(await names({ search: 'alias:foo' })).toEqual(['xfoobar'])
    expect(await names({ search: 'name:alias' })).toEqual([])
    expect(await names({ search: 'alias:alpha', states: [0, 1, 2, 3, 5] })).toEqual(['Alpha-Root'])
    expect(await names({ search: 'escape:not:really', states: [5] })).toEqual([])
    expect(await names({ search: 'alias:escape:not-really', states: [5] })).toEqual(['beta-root'])
    expect(await names({ search: 'foobar,' })).toEqual(['foobar', 'xfoobar']) // Go client's trailing comma
    expect(await names({ search: ids['foobar'] ?? '' })).toEqual(['foobar'])
  })

  it('an exact alias lookup comes first', async () => {
    expect(await names({ search: 'alias:exact:foo' })).toEqual(['xfoobar'])
    const r = await t.engine.listKeys(S, { search: 'alias:foo' })
    expect(r.keys[0]?.name).toBe('xfoobar')
  })

  it('filters by dates, none, extractable and state', async () => {
    expect(await names({ filter: 'lastRotateDate=none extractable=TRUE' })).toEqual(['standard-one'])
    const created = (await t.engine.getKey(S, ids['foobar'] ?? '')).createdAt
      .toISOString()
      .replace('.000', '')
    expect(await names({ filter: `creationDate=gte:"${created}" extractable=false` })).toEqual([
      'foobar',
      'xfoobar',
    ])
    expect(await names({ filter: `creationDate=lt:"${created}"` })).toEqual(['Alpha-Root'])
    expect(await names({ filter: 'state=5' })).toEqual(['beta-root'])
    expect(await names({ filter: ' state=1,5 deletionDate=none' })).toEqual([
      'Alpha-Root',
      'foobar',
      'xfoobar',
      'standard-one',
    ])
    await expectCode(t.engine.listKeys(S, { filter: 'state=1', states: [1] }), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.listKeys(S, { filter: 'colour=red' }), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.listKeys(S, { filter: 'creationDate=gt:2020-01-01' }), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.listKeys(S, { filter: 'state=1 state=2 state=3 state=5' }), 'INVALID_FIELD_ERR')
  })

  it('sorts by fields ascending and descending, and pages after sorting', async () => {
    expect(await names({ sort: '-creationDate' })).toEqual([
      'standard-one',
      'xfoobar',
      'foobar',
      'Alpha-Root',
    ])
    expect(await names({ sort: 'extractable,-creationDate', limit: 2, offset: 1 })).toEqual([
      'foobar',
      'Alpha-Root',
    ])
    await expectCode(t.engine.listKeys(S, { sort: 'name' }), 'INVALID_FIELD_ERR')
  })

  it('refuses a search over more keys than the search space, except a unique lookup', async () => {
    const small = await openTestEngine({ engine: { lifecycle: { maxSearchSpace: 2 } } })
    try {
      const I = 'small-space'
      const keys = []
      for (let i = 0; i < 3; i++)
        keys.push(await small.engine.createKey(I, { name: `k${i}`, aliases: [`al-${i}`] }))
      await expectCode(small.engine.listKeys(I, { search: 'k' }), 'KEY_SEARCH_TOO_BROAD')
      const r = await small.engine.listKeys(I, { search: 'alias:al-2' })
      expect(r.incompleteSearch).toBe(true)
      expect(r.keys.map((k) => k.id)).toEqual([keys[2]?.id])
      expect((await small.engine.listKeys(I, {})).total).toBe(3)
    } finally {
      await small.engine.close()
    }
  })
})
