/**
 * The conformance suite every MetadataStore must pass against the real database.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type {
  InstancePolicyType,
  KeyEventRecord,
  KeyRecord,
  KeyVersionRecord,
  MetadataStore,
  RegistrationRecord,
} from '../../src/index.js'
import { newKeyRecord } from '../../src/core/keys/key-record.js'
import { expectCode } from '../helpers/expect-code.js'

export function keyRecord(instance: string, overrides: Partial<KeyRecord> = {}): KeyRecord {
  return newKeyRecord(instance, randomUUID(), 'k', 1000, {
    description: 'desc',
    tags: ['t1'],
    createdBy: 'alice',
    ...overrides,
  })
}

export function versionOf(k: KeyRecord, version = 1): KeyVersionRecord {
  return {
    instance: k.instance,
    keyId: k.id,
    version,
    versionId: version === 1 ? k.id : randomUUID(),
    providerRef: randomUUID().replaceAll('-', ''),
    createdAt: 1000 + version,
  }
}

export function runMetadataStoreConformance(name: string, open: () => Promise<MetadataStore>): void {
  describe(`MetadataStore conformance: ${name}`, () => {
    let s: MetadataStore
    beforeAll(async () => {
      s = await open()
    })
    afterAll(async () => {
      await s.close()
    })

    it('stores and returns every field of a key and its first version', async () => {
      const k = keyRecord('i1', { expirationDate: 5000, wrappedPayload: undefined, tags: ['a', 'b'] })
      await s.insertKey(k, versionOf(k), ['alias-one'])
      expect(await s.getKey('i1', k.id)).toEqual(k)
      expect(await s.listVersions('i1', k.id)).toEqual(
        [versionOf(k)].map((v) => ({ ...v, providerRef: expect.any(String) as string })),
      )
      expect(await s.getKeyIdByAlias('i1', 'alias-one')).toBe(k.id)
      expect(await s.listAliases('i1', k.id)).toEqual(['alias-one'])
      expect(await s.findInstanceOfKey(k.id)).toBe('i1')
      const std = keyRecord('i1', { extractable: true, wrappedPayload: Buffer.from([1, 2, 3]) })
      await s.insertKey(std, versionOf(std), [])
      expect((await s.getKey('i1', std.id))?.wrappedPayload).toEqual(Buffer.from([1, 2, 3]))
      expect(await s.listVersions('i1', std.id)).toEqual([])
    })

    it('keeps instances apart: keys, aliases and listings', async () => {
      const a = keyRecord('iso-a')
      await s.insertKey(a, versionOf(a), ['same'])
      const b = keyRecord('iso-b')
      await s.insertKey(b, versionOf(b), ['same'])
      expect(await s.getKey('iso-b', a.id)).toBeUndefined()
      expect(await s.getKeyIdByAlias('iso-a', 'same')).toBe(a.id)
      expect(await s.getKeyIdByAlias('iso-b', 'same')).toBe(b.id)
      const q = {
        limit: 10,
        offset: 0,
        states: [0, 1, 2, 3] as const,
        extractable: undefined,
        keyRingId: undefined,
      }
      expect((await s.listKeys('iso-a', { ...q, states: [...q.states] })).keys.map((k) => k.id)).toEqual([
        a.id,
      ])
      expect(await s.listVersions('iso-b', a.id)).toEqual([])
    })

    it('refuses a duplicate alias within an instance with KEY_ALIAS_NOT_UNIQUE_ERR and writes nothing', async () => {
      const a = keyRecord('dup')
      await s.insertKey(a, versionOf(a), ['x1'])
      const b = keyRecord('dup')
      await expectCode(s.insertKey(b, versionOf(b), ['x2', 'x1']), 'KEY_ALIAS_NOT_UNIQUE_ERR')
      expect(await s.getKey('dup', b.id)).toBeUndefined()
      expect(await s.getKeyIdByAlias('dup', 'x2')).toBeUndefined()
      await expectCode(s.addAlias('dup', b.id, 'x1', 1, 5), 'KEY_ALIAS_NOT_UNIQUE_ERR')
      // x1 came with the key: the stored record carries the key's creation date and creator.
      expect(await s.addAlias('dup', a.id, 'x1', 1, 5, 'someone-else')).toEqual({
        result: 'exists',
        createdAt: a.createdAt,
        createdBy: a.createdBy,
      })
      for (const n of ['x3', 'x4', 'x5', 'x6']) {
        expect((await s.addAlias('dup', a.id, n, 1, 5)).result).toBe('created')
      }
      await expectCode(s.addAlias('dup', a.id, 'x7', 1, 5), 'KEY_ALIAS_QUOTA_ERR')
      expect(await s.removeAlias('dup', a.id, 'x6')).toBe(true)
      expect(await s.removeAlias('dup', a.id, 'x6')).toBe(false)
    })

    it('addAlias keeps the first creator and date of an alias: a second add returns the stored record', async () => {
      const k = keyRecord('alias-by')
      await s.insertKey(k, versionOf(k), [])
      expect(await s.addAlias('alias-by', k.id, 'first', 1000, 5, 'alice')).toEqual({
        result: 'created',
        createdAt: 1000,
        createdBy: 'alice',
      })
      expect(await s.addAlias('alias-by', k.id, 'first', 9000, 5, 'bob')).toEqual({
        result: 'exists',
        createdAt: 1000,
        createdBy: 'alice',
      })
      expect(await s.addAlias('alias-by', k.id, 'anonymous', 2000, 5)).toEqual({
        result: 'created',
        createdAt: 2000,
        createdBy: undefined,
      })
      expect(await s.addAlias('alias-by', k.id, 'anonymous', 3000, 5, 'bob')).toEqual({
        result: 'exists',
        createdAt: 2000,
        createdBy: undefined,
      })
    })

    it('insertVersion is compare-and-set on the current version', async () => {
      const k = keyRecord('cas')
      await s.insertKey(k, versionOf(k), [])
      await s.addPending({ instance: 'cas', keyId: k.id, version: 2, startedAt: 1 })
      expect(await s.insertVersion(versionOf(k, 2), { updatedAt: 2000, lastRotatedAt: 2000 })).toBe(true)
      expect(await s.insertVersion(versionOf(k, 2), { updatedAt: 2001 })).toBe(false)
      expect(await s.insertVersion(versionOf(k, 4), { updatedAt: 2001 })).toBe(false)
      const r = await s.getKey('cas', k.id)
      expect(r).toMatchObject({ currentVersion: 2, lastRotatedAt: 2000, updatedAt: 2000 })
      expect((await s.listVersions('cas', k.id)).map((v) => v.version)).toEqual([1, 2])
      expect((await s.listPending()).filter((p) => p.keyId === k.id)).toEqual([])
    })

    it('updateKey applies only while the state is still the expected one', async () => {
      const k = keyRecord('upd')
      await s.insertKey(k, versionOf(k), [])
      expect(await s.updateKey('upd', k.id, 2, { state: 5 })).toBe(false)
      expect(
        await s.updateKey('upd', k.id, 1, { state: 5, deletedAt: 9, deletedBy: 'bob', stateChangedAt: 9 }),
      ).toBe(true)
      expect(await s.getKey('upd', k.id)).toMatchObject({
        state: 5,
        deletedAt: 9,
        deletedBy: 'bob',
        stateChangedAt: 9,
      })
      expect(
        await s.updateKey('upd', k.id, 5, { state: 1, deletedAt: undefined, deletedBy: undefined }),
      ).toBe(true)
      expect(await s.getKey('upd', k.id)).toMatchObject({
        state: 1,
        deletedAt: undefined,
        deletedBy: undefined,
      })
      expect(await s.updateKey('other', k.id, 1, { state: 2 })).toBe(false)
    })

    it('updateKey with unlessPendingDeletion refuses while the key has a deletion schedule', async () => {
      const k = keyRecord('upd-pending')
      await s.insertKey(k, versionOf(k), [])
      expect(await s.scheduleDeletion('upd-pending', k.id, 1, { state: 2 }, 500)).toBe(true)
      const cond = { unlessPendingDeletion: true }
      expect(await s.updateKey('upd-pending', k.id, 2, { state: 1 }, cond)).toBe(false)
      expect((await s.getKey('upd-pending', k.id))?.state).toBe(2)
      expect(await s.cancelDeletion('upd-pending', k.id)).toBe(true)
      expect(await s.updateKey('upd-pending', k.id, 2, { state: 1 }, cond)).toBe(true)
      expect((await s.getKey('upd-pending', k.id))?.state).toBe(1)
    })

    it('lists with state and kind filters, stable order and a total', async () => {
      const inst = 'list'
      const ids: string[] = []
      for (let i = 0; i < 6; i++) {
        const k = keyRecord(inst, { createdAt: 100 + i, state: i === 5 ? 5 : 1, extractable: i === 4 })
        ids.push(k.id)
        await s.insertKey(k, versionOf(k), [])
      }
      const sys = keyRecord(inst, { internal: true, createdAt: 1 })
      await s.insertKey(sys, versionOf(sys), [])
      const q = {
        limit: 2,
        offset: 0,
        states: [0, 1, 2, 3] as (0 | 1 | 2 | 3 | 5)[],
        extractable: undefined,
        keyRingId: undefined,
      }
      const p1 = await s.listKeys(inst, q)
      const p2 = await s.listKeys(inst, { ...q, offset: 2 })
      const p3 = await s.listKeys(inst, { ...q, offset: 4 })
      expect(p1.total).toBe(5)
      expect([...p1.keys, ...p2.keys, ...p3.keys].map((k) => k.id)).toEqual(ids.slice(0, 5))
      expect((await s.listKeys(inst, { ...q, limit: 10, states: [5] })).keys.map((k) => k.id)).toEqual([
        ids[5],
      ])
      expect((await s.listKeys(inst, { ...q, limit: 10, extractable: true })).keys.map((k) => k.id)).toEqual([
        ids[4],
      ])
      expect((await s.getSystemKey(inst))?.id).toBe(sys.id)
      expect(await s.getSystemKey('nobody')).toBeUndefined()
    })

    it('deleteKeyRows removes the key with its versions and aliases', async () => {
      const k = keyRecord('del')
      await s.insertKey(k, versionOf(k), ['gone'])
      await s.deleteKeyRows('del', k.id)
      expect(await s.getKey('del', k.id)).toBeUndefined()
      expect(await s.listVersions('del', k.id)).toEqual([])
      expect(await s.getKeyIdByAlias('del', 'gone')).toBeUndefined()
    })

    it('pending creations are recorded, listed, and cleared by the commit of their key', async () => {
      const k = keyRecord('pend')
      await s.addPending({ instance: 'pend', keyId: k.id, version: 1, startedAt: 7 })
      expect(await s.listPending()).toContainEqual({
        instance: 'pend',
        keyId: k.id,
        version: 1,
        startedAt: 7,
      })
      await s.insertKey(k, versionOf(k), [])
      expect((await s.listPending()).some((p) => p.keyId === k.id)).toBe(false)
      await s.addPending({ instance: 'pend', keyId: k.id, version: 9, startedAt: 7 })
      await s.removePending('pend', k.id, 9)
      expect((await s.listPending()).some((p) => p.keyId === k.id)).toBe(false)
    })

    it('reserveUsage grants blocks up to the limit, atomically, per version', async () => {
      const k = keyRecord('usage')
      await s.insertKey(k, versionOf(k), [])
      expect(await s.reserveUsage('usage', k.id, 1, 4, 10)).toBe(4)
      expect(await s.reserveUsage('usage', k.id, 1, 4, 10)).toBe(4)
      expect(await s.reserveUsage('usage', k.id, 1, 4, 10)).toBe(2)
      expect(await s.reserveUsage('usage', k.id, 1, 4, 10)).toBe(0)
      expect(await s.usageReserved('usage', k.id, 1)).toBe(10)
      expect(await s.reserveUsage('usage', k.id, 2, 4, 10)).toBe(0) // no such version
      expect(await s.reserveUsage('other', k.id, 1, 4, 10)).toBe(0) // another instance
      const grants = await Promise.all(
        Array.from({ length: 20 }, () => s.reserveUsage('usage', k.id, 1, 1, 10)),
      )
      expect(grants.every((g) => g === 0)).toBe(true)
    })

    it('key rings: quota, listing per instance, delete rules, moving keys, ring checked on insert', async () => {
      const I = 'rings'
      expect(await s.createKeyRing({ instance: I, id: 'r1', createdAt: 5, createdBy: 'al' }, 2)).toBe(
        'created',
      )
      expect(await s.createKeyRing({ instance: I, id: 'r1', createdAt: 6, createdBy: 'al' }, 2)).toBe(
        'exists',
      )
      expect(await s.createKeyRing({ instance: I, id: 'r2', createdAt: 7, createdBy: undefined }, 2)).toBe(
        'created',
      )
      await expectCode(
        s.createKeyRing({ instance: I, id: 'r3', createdAt: 8, createdBy: undefined }, 2),
        'KEY_RING_RESOURCE_QUOTA_ERR',
      )
      expect((await s.listKeyRings(I)).map((r) => r.id)).toEqual(['r1', 'r2'])
      expect(await s.getKeyRing(I, 'r1')).toEqual({ instance: I, id: 'r1', createdAt: 5, createdBy: 'al' })
      expect(await s.listKeyRings('rings-other')).toEqual([])
      const lost = keyRecord('rings-other', { keyRingId: 'r1' })
      await expectCode(s.insertKey(lost, versionOf(lost), []), 'KEY_RING_NOT_FOUND_ERR')
      expect(await s.getKey('rings-other', lost.id)).toBeUndefined()
      const k = keyRecord(I, { keyRingId: 'r1' })
      await s.insertKey(k, versionOf(k), [])
      await expectCode(s.deleteKeyRing(I, 'r1', false, 9), 'KEY_RING_NOT_EMPTY_ERR')
      await expectCode(s.deleteKeyRing(I, 'r1', true, 9), 'KEY_RING_KEYS_NOT_DELETED_ERR')
      expect(await s.moveKey(I, k.id, 'default', 'r2', 10)).toBe(false) // not in default
      expect(await s.moveKey(I, k.id, 'r1', 'r2', 10)).toBe(true)
      await expectCode(s.moveKey(I, k.id, 'r2', 'nope', 11), 'KEY_RING_NOT_FOUND_ERR')
      expect(await s.deleteKeyRing(I, 'r1', false, 12)).toBe(true)
      expect(await s.deleteKeyRing(I, 'r1', false, 12)).toBe(false)
      await s.updateKey(I, k.id, 1, { state: 5, deletedAt: 13 })
      expect(await s.deleteKeyRing(I, 'r2', true, 14)).toBe(true)
      expect((await s.getKey(I, k.id))?.keyRingId).toBe('default')
    })

    it('key policies: insert with the key, upsert keeping id and creation, listing enabled rotations', async () => {
      const I = 'policies'
      const k = keyRecord(I)
      const base = { instance: I, keyId: k.id, createdAt: 1, createdBy: 'a', updatedAt: 1, updatedBy: 'a' }
      await s.insertKey(
        k,
        versionOf(k),
        [],
        [{ ...base, type: 'rotation', policyId: 'p-rot', enabled: true, intervalMonth: 2 }],
      )
      expect(await s.listKeyPolicies(I, k.id)).toEqual([
        { ...base, type: 'rotation', policyId: 'p-rot', enabled: true, intervalMonth: 2 },
      ])
      await s.putKeyPolicy({
        ...base,
        type: 'rotation',
        policyId: 'ignored',
        enabled: false,
        intervalMonth: 4,
        createdAt: 99,
        createdBy: 'z',
        updatedAt: 50,
        updatedBy: 'b',
      })
      await s.putKeyPolicy({
        ...base,
        type: 'dualAuthDelete',
        policyId: 'p-da',
        enabled: true,
        intervalMonth: undefined,
      })
      const got = await s.listKeyPolicies(I, k.id)
      expect(got).toEqual([
        { ...base, type: 'dualAuthDelete', policyId: 'p-da', enabled: true, intervalMonth: undefined },
        {
          ...base,
          type: 'rotation',
          policyId: 'p-rot',
          enabled: false,
          intervalMonth: 4,
          updatedAt: 50,
          updatedBy: 'b',
        },
      ])
      expect((await s.listEnabledRotationPolicies()).some((p) => p.keyId === k.id)).toBe(false)
      expect(await s.setDeletionAuth(I, k.id, 'carol', 777)).toBe(true)
      expect((await s.listKeyPolicies(I, k.id)).find((p) => p.type === 'dualAuthDelete')).toMatchObject({
        authBy: 'carol',
        authExpiresAt: 777,
      })
      await s.putKeyPolicy({
        ...base,
        type: 'dualAuthDelete',
        policyId: 'p-da',
        enabled: true,
        intervalMonth: undefined,
      })
      expect((await s.listKeyPolicies(I, k.id)).find((p) => p.type === 'dualAuthDelete')?.authBy).toBe(
        'carol',
      )
      expect(await s.setDeletionAuth(I, k.id, undefined, 999)).toBe(true)
      expect((await s.listKeyPolicies(I, k.id)).find((p) => p.type === 'dualAuthDelete')).toMatchObject({
        authBy: undefined,
        authExpiresAt: undefined,
      })
      expect(await s.setDeletionAuth(I, 'no-such-key', 'carol', 1)).toBe(false)
      await s.putKeyPolicy({ ...base, type: 'rotation', policyId: 'x', enabled: true, intervalMonth: 1 })
      expect((await s.listEnabledRotationPolicies()).filter((p) => p.keyId === k.id)).toHaveLength(1)
      expect(await s.listKeyPolicies('policies-other', k.id)).toEqual([])
      await s.deleteKeyRows(I, k.id)
      expect(await s.listKeyPolicies(I, k.id)).toEqual([])
    })

    it('alias names: unique per instance, re-pointable, listed in name order with paging, per key, gone with the key', async () => {
      const I = 'alias-names'
      const a = keyRecord(I)
      const b = keyRecord(I)
      await s.insertKey(a, versionOf(a), [])
      await s.insertKey(b, versionOf(b), [])
      expect(await s.createAliasName(I, 'alias/one', a.id, 10)).toBe(true)
      expect(await s.createAliasName(I, 'alias/one', b.id, 11)).toBe(false)
      expect(await s.createAliasName(I, 'alias/two', a.id, 12)).toBe(true)
      expect(await s.createAliasName(I, 'alias/three', b.id, 13)).toBe(true)
      expect(await s.getAliasName(I, 'alias/one')).toEqual({
        instance: I,
        name: 'alias/one',
        keyId: a.id,
        createdAt: 10,
        updatedAt: 10,
      })
      expect(await s.getAliasName('alias-names-other', 'alias/one')).toBeUndefined()
      const names = async (q: { keyId?: string; after?: string; limit: number }): Promise<string[]> =>
        (await s.listAliasNames(I, q)).map((r) => r.name)
      expect(await names({ limit: 10 })).toEqual(['alias/one', 'alias/three', 'alias/two'])
      expect(await names({ limit: 1, after: 'alias/one' })).toEqual(['alias/three'])
      expect(await names({ limit: 10, keyId: a.id })).toEqual(['alias/one', 'alias/two'])
      expect(await s.updateAliasName(I, 'alias/one', b.id, 20)).toBe(true)
      expect((await s.getAliasName(I, 'alias/one'))?.keyId).toBe(b.id)
      expect((await s.getAliasName(I, 'alias/one'))?.updatedAt).toBe(20)
      expect(await s.updateAliasName(I, 'alias/none', b.id, 20)).toBe(false)
      expect(await s.deleteAliasName(I, 'alias/two')).toBe(true)
      expect(await s.deleteAliasName(I, 'alias/two')).toBe(false)
      await s.deleteKeyRows(I, b.id)
      expect(await names({ limit: 10 })).toEqual([])
    })

    it('tag pairs: put replaces by key, quota enforced atomically, removal, per instance, gone with the key', async () => {
      const I = 'tag-pairs'
      const k = keyRecord(I)
      await s.insertKey(k, versionOf(k), [])
      await s.putTagPairs(
        I,
        k.id,
        [
          { key: 'b', value: '1' },
          { key: 'a', value: '' },
        ],
        3,
      )
      await s.putTagPairs(I, k.id, [{ key: 'b', value: '2' }], 3)
      expect(await s.listTagPairs(I, k.id)).toEqual([
        { key: 'a', value: '' },
        { key: 'b', value: '2' },
      ])
      await expectCode(
        s.putTagPairs(
          I,
          k.id,
          [
            { key: 'c', value: '3' },
            { key: 'd', value: '4' },
          ],
          3,
        ),
        'TAG_QUOTA_ERR',
      )
      expect(await s.listTagPairs(I, k.id)).toHaveLength(2) // nothing of the refused call was kept
      expect(await s.listTagPairs('tag-pairs-other', k.id)).toEqual([])
      await s.removeTagPairs(I, k.id, ['a', 'zzz'])
      expect(await s.listTagPairs(I, k.id)).toEqual([{ key: 'b', value: '2' }])
      await s.deleteKeyRows(I, k.id)
      expect(await s.listTagPairs(I, k.id)).toEqual([])
    })

    it('scheduled deletion: state patch and date in one compare-and-set, cancel, due list, gone with the key', async () => {
      const I = 'deletion-schedule'
      const k = keyRecord(I)
      await s.insertKey(k, versionOf(k), [])
      expect(await s.scheduleDeletion(I, k.id, 2, { state: 2 }, 500)).toBe(false) // state is 1, not 2
      expect(await s.getDeletionSchedule(I, k.id)).toBeUndefined()
      expect(await s.scheduleDeletion(I, k.id, 1, { state: 2, updatedAt: 7 }, 500)).toBe(true)
      expect((await s.getKey(I, k.id))?.state).toBe(2)
      expect(await s.getDeletionSchedule(I, k.id)).toEqual({ instance: I, keyId: k.id, deletionDate: 500 })
      expect((await s.listDueDeletions(499)).some((d) => d.keyId === k.id)).toBe(false)
      expect((await s.listDueDeletions(500)).some((d) => d.keyId === k.id)).toBe(true)
      expect(await s.cancelDeletion(I, k.id)).toBe(true)
      expect(await s.cancelDeletion(I, k.id)).toBe(false)
      expect(await s.scheduleDeletion(I, k.id, 2, {}, 900)).toBe(true)
      await s.deleteKeyRows(I, k.id)
      expect(await s.getDeletionSchedule(I, k.id)).toBeUndefined()
    })

    it('purge journal: the mark is compare-and-set, listed, and freezes the row until deleteKeyRows', async () => {
      const I = 'purge-journal'
      const k = keyRecord(I)
      await s.insertKey(k, versionOf(k), [])
      await s.addPending({ instance: I, keyId: k.id, version: 2, startedAt: 1 })
      expect(await s.insertVersion(versionOf(k, 2), { updatedAt: 2 })).toBe(true)
      expect(await s.scheduleDeletion(I, k.id, 1, { state: 2 }, 500)).toBe(true)
      expect((await s.getKey(I, k.id))?.purgingSince).toBeUndefined()
      expect(await s.markPurging(I, k.id, 1, { state: 5 }, 40)).toBe(false) // state is 2, not 1
      expect(await s.markPurging(I, k.id, 2, { state: 5, deletedAt: 41, stateChangedAt: 41 }, 41)).toBe(true)
      expect(await s.getKey(I, k.id)).toMatchObject({ state: 5, deletedAt: 41, purgingSince: 41 })
      expect(await s.markPurging(I, k.id, 5, { updatedAt: 42 }, 42)).toBe(false) // marked already
      expect((await s.listPurging()).filter((p) => p.instance === I)).toEqual([
        { instance: I, keyId: k.id, since: 41 },
      ])
      // Only forward: no state change, no new version, no cancelled schedule.
      expect(await s.updateKey(I, k.id, 5, { state: 1, deletedAt: undefined })).toBe(false)
      expect(await s.insertVersion(versionOf(k, 3), { updatedAt: 43 })).toBe(false)
      expect(await s.cancelDeletion(I, k.id)).toBe(false)
      expect(await s.getKey(I, k.id)).toMatchObject({ state: 5, currentVersion: 2, purgingSince: 41 })
      expect(
        (await s.listAllVersions()).filter((v) => v.keyId === k.id).map((v) => [v.instance, v.version]),
      ).toEqual([
        [I, 1],
        [I, 2],
      ])
      await s.deleteKeyRows(I, k.id)
      expect((await s.listPurging()).filter((p) => p.instance === I)).toEqual([])
      expect((await s.listAllVersions()).filter((v) => v.keyId === k.id)).toEqual([])
    })

    it('listDeletedBefore lists keys in state 5 deleted at or before a date, oldest first, marked or not', async () => {
      const I = 'deleted-before'
      const del = async (deletedAt: number | undefined, stateChangedAt: number): Promise<string> => {
        const k = keyRecord(I)
        await s.insertKey(k, versionOf(k), [])
        expect(await s.updateKey(I, k.id, 1, { state: 5, deletedAt, stateChangedAt })).toBe(true)
        return k.id
      }
      const a = await del(5000, 5000)
      const b = await del(undefined, 6000) // no deletion date recorded: the state change counts
      const c = await del(9000, 9000)
      const e = await del(5500, 5500)
      expect(await s.markPurging(I, e, 5, { updatedAt: 7000 }, 7000)).toBe(true)
      const active = keyRecord(I)
      await s.insertKey(active, versionOf(active), [])
      const mine = async (before: number): Promise<unknown[]> =>
        (await s.listDeletedBefore(before, 10_000)).filter((d) => d.instance === I)
      expect(await mine(6000)).toEqual([
        { instance: I, keyId: a, deletedAt: 5000 },
        { instance: I, keyId: e, deletedAt: 5500 },
        { instance: I, keyId: b, deletedAt: 6000 },
      ])
      expect((await mine(10_000)).map((d) => (d as { keyId: string }).keyId)).toEqual([a, e, b, c])
      expect(await mine(4999)).toEqual([])
      const one = await s.listDeletedBefore(6000, 1)
      expect(one).toHaveLength(1)
      expect(one[0]?.deletedAt).toBeLessThanOrEqual(5000)
    })

    it('listAllVersions lists the versions of every key of every instance', async () => {
      const a = keyRecord('all-versions-a')
      const b = keyRecord('all-versions-b')
      await s.insertKey(a, versionOf(a), [])
      await s.insertKey(b, versionOf(b), [])
      await s.adoptVersion(versionOf(b, 2))
      const mine = (await s.listAllVersions()).filter((v) => v.keyId === a.id || v.keyId === b.id)
      expect(mine.map((v) => `${v.instance}/${v.keyId}/${v.version}`).sort()).toEqual(
        [`${a.instance}/${a.id}/1`, `${b.instance}/${b.id}/1`, `${b.instance}/${b.id}/2`].sort(),
      )
      expect(mine.every((v) => v.providerRef.length > 0)).toBe(true)
    })

    it('import tokens: one per instance (put replaces and returns the old one), retrievals taken atomically, expiry list', async () => {
      const token = (instance: string, ref: string, remaining: number, expiresAt = 10_000) => ({
        instance,
        providerRef: ref,
        publicKeyPem: '-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n',
        nonce: Buffer.from('000102030405060708090a0b', 'hex'),
        createdAt: 1000,
        expiresAt,
        maxRetrievals: 2,
        remainingRetrievals: remaining,
      })
      expect(await s.getImportToken('it-a')).toBeUndefined()
      expect(await s.putImportToken(token('it-a', 'aa', 2))).toBeUndefined()
      expect(await s.getImportToken('it-a')).toEqual(token('it-a', 'aa', 2))
      expect(await s.getImportToken('it-b')).toBeUndefined() // per instance
      expect(await s.takeImportTokenRetrieval('it-a', 'aa')).toEqual(token('it-a', 'aa', 1))
      expect(await s.takeImportTokenRetrieval('it-a', 'zz')).toBeUndefined() // another token
      const takes = await Promise.all([
        s.takeImportTokenRetrieval('it-a', 'aa'),
        s.takeImportTokenRetrieval('it-a', 'aa'),
      ])
      expect(takes.filter((t) => t !== undefined)).toEqual([token('it-a', 'aa', 0)])
      expect(await s.putImportToken(token('it-a', 'bb', 2, 20_000))).toEqual(token('it-a', 'aa', 0))
      expect(await s.takeImportTokenRetrieval('it-a', 'aa')).toBeUndefined() // replaced
      await s.putImportToken(token('it-b', 'cc', 1, 5000))
      const expired = await s.listExpiredImportTokens(10_000)
      expect(expired.filter((t) => t.instance.startsWith('it-'))).toEqual([token('it-b', 'cc', 1, 5000)])
      expect(await s.deleteImportToken('it-b', 'zz')).toBe(false)
      expect(await s.deleteImportToken('it-b', 'cc')).toBe(true)
      expect(await s.getImportToken('it-b')).toBeUndefined()
    })

    it('instance policies: one per instance and type (put replaces), attributes kept as given, listed by type', async () => {
      const pol = (instance: string, type: InstancePolicyType, enabled: boolean, attributes?: object) => ({
        instance,
        type,
        enabled,
        attributes: attributes as Record<string, unknown> | undefined,
        createdAt: 1000,
        createdBy: 'alice',
        updatedAt: 2000,
        updatedBy: undefined,
      })
      expect(await s.listInstancePolicies('ip-a')).toEqual([])
      const ip = pol('ip-a', 'allowedIP', true, { allowed_ip: ['10.0.0.0/8', '2001:db8::/32'] })
      const rot = pol('ip-a', 'rotation', true, { interval_month: 3 })
      await s.putInstancePolicies('ip-a', [rot, ip, pol('ip-a', 'metrics', false)])
      expect(await s.listInstancePolicies('ip-a')).toEqual([ip, pol('ip-a', 'metrics', false), rot])
      expect(await s.listInstancePolicies('ip-b')).toEqual([]) // per instance
      const off = { ...pol('ip-a', 'allowedIP', false), updatedAt: 3000, updatedBy: 'bob' }
      await s.putInstancePolicies('ip-a', [off])
      expect(await s.listInstancePolicies('ip-a')).toEqual([off, pol('ip-a', 'metrics', false), rot])
      // One transaction: a policy of another instance refuses the whole call.
      await expect(
        s.putInstancePolicies('ip-a', [pol('ip-a', 'dualAuthDelete', true), pol('ip-b', 'metrics', true)]),
      ).rejects.toThrow()
      expect((await s.listInstancePolicies('ip-a')).map((p) => p.type)).toEqual([
        'allowedIP',
        'metrics',
        'rotation',
      ])
      expect(await s.listInstancePolicies('ip-b')).toEqual([])
    })

    it('registrations: insert refuses a duplicate, update needs one, listing per key / ring / instance in order, forced removal, gone with the key', async () => {
      const reg = (k: KeyRecord, crn: string, t: number, over: Partial<RegistrationRecord> = {}) => ({
        instance: k.instance,
        keyId: k.id,
        resourceCrn: crn,
        description: 'd',
        registrationMetadata: undefined,
        preventKeyDeletion: false,
        keyVersionId: undefined,
        deactivated: false,
        createdAt: t,
        createdBy: 'svc',
        updatedAt: t,
        updatedBy: 'svc',
        ...over,
      })
      await s.createKeyRing({ instance: 'rg-a', id: 'ring-r', createdAt: 1, createdBy: undefined }, 10)
      const a = keyRecord('rg-a')
      const b = keyRecord('rg-a', { keyRingId: 'ring-r' })
      const other = keyRecord('rg-b')
      for (const k of [a, b, other]) await s.insertKey(k, versionOf(k), [])
      const crn = 'crn:v1:bluemix:public:cos:us-south:a/acc:svc-1:bucket:x/y'
      const r1 = reg(a, crn, 10, { registrationMetadata: '{"m":1}', keyVersionId: a.id })
      expect(await s.insertRegistration(r1)).toBe(true)
      expect(await s.insertRegistration({ ...r1, description: 'other' })).toBe(false)
      expect(await s.getRegistration('rg-a', a.id, crn)).toEqual(r1)
      expect(await s.getRegistration('rg-b', a.id, crn)).toBeUndefined()
      const r2 = reg(a, `${crn}2`, 5, { preventKeyDeletion: true })
      const r3 = reg(b, crn, 7)
      await s.insertRegistration(r2)
      await s.insertRegistration(r3)
      await s.insertRegistration(reg(other, crn, 1))
      expect(await s.listRegistrations('rg-a', {})).toEqual([r2, r3, r1])
      expect(await s.listRegistrations('rg-a', { keyId: a.id })).toEqual([r2, r1])
      expect(await s.listRegistrations('rg-a', { keyRingId: 'ring-r' })).toEqual([r3])
      const changed = { ...r1, description: undefined, deactivated: true, updatedAt: 20, updatedBy: 'u2' }
      expect(await s.updateRegistration(changed)).toBe(true)
      expect(await s.getRegistration('rg-a', a.id, crn)).toEqual(changed)
      expect(await s.updateRegistration({ ...changed, resourceCrn: `${crn}-none` })).toBe(false)
      expect(await s.deleteRegistration('rg-a', a.id, `${crn}2`)).toBe(true)
      expect(await s.deleteRegistration('rg-a', a.id, `${crn}2`)).toBe(false)
      expect(await s.deleteKeyRegistrations('rg-a', a.id)).toBe(1)
      expect(await s.listRegistrations('rg-a', { keyId: a.id })).toEqual([])
      // The insert is conditional on the key being Active (1) and not purged.
      const suspended = keyRecord('rg-a', { state: 2 })
      await s.insertKey(suspended, versionOf(suspended), [])
      expect(await s.insertRegistration(reg(suspended, crn, 30))).toBe(false)
      expect(await s.listRegistrations('rg-a', { keyId: suspended.id })).toEqual([])
      // updateKey's unlessRegistered: any registration, or only protected ones.
      const patch = { state: 5 as const, updatedAt: 40 }
      expect(await s.updateKey('rg-a', b.id, 1, patch, { unlessRegistered: 'any' })).toBe(false)
      expect(await s.updateKey('rg-a', b.id, 1, patch, { unlessRegistered: 'protected' })).toBe(true)
      const c = keyRecord('rg-a')
      await s.insertKey(c, versionOf(c), [])
      await s.insertRegistration(reg(c, crn, 50, { preventKeyDeletion: true }))
      expect(await s.updateKey('rg-a', c.id, 1, patch, { unlessRegistered: 'protected' })).toBe(false)
      expect((await s.getKey('rg-a', c.id))?.state).toBe(1)
      await s.deleteKeyRows('rg-a', c.id)
      await s.deleteKeyRows('rg-a', b.id)
      expect(await s.listRegistrations('rg-a', {})).toEqual([])
      expect(await s.listRegistrations('rg-b', {})).toHaveLength(1)
    })

    it('key events: appended in order per key, found by id per instance, acknowledged in place, gone with the key', async () => {
      const k = keyRecord('ev-a')
      await s.insertKey(k, versionOf(k), [])
      const ev = (id: string, type: KeyEventRecord['type'], crn?: string) => ({
        instance: 'ev-a',
        eventId: id,
        keyId: k.id,
        type,
        keyVersion: 1,
        resourceCrn: crn,
        createdAt: 100,
        createdBy: type === 'rotate' ? undefined : 'alice',
        ackedAt: undefined,
        ackState: undefined,
      })
      const [e1, e2, e3] = [randomUUID(), randomUUID(), randomUUID()]
      await s.appendKeyEvents([ev(e1, 'rotate')])
      await s.appendKeyEvents([ev(e2, 'sync', 'crn:v1:x'), ev(e3, 'delete')])
      expect(await s.listKeyEvents('ev-a', k.id)).toEqual([
        ev(e1, 'rotate'),
        ev(e2, 'sync', 'crn:v1:x'),
        ev(e3, 'delete'),
      ])
      expect(await s.getKeyEvent('ev-a', e2)).toEqual(ev(e2, 'sync', 'crn:v1:x'))
      expect(await s.getKeyEvent('ev-b', e2)).toBeUndefined()
      expect(await s.ackKeyEvent('ev-b', e2, 200, 'DEK_ENABLED')).toBe(false)
      expect(await s.ackKeyEvent('ev-a', e2, 200, 'DEK_ENABLED')).toBe(true)
      expect(await s.getKeyEvent('ev-a', e2)).toEqual({
        ...ev(e2, 'sync', 'crn:v1:x'),
        ackedAt: 200,
        ackState: 'DEK_ENABLED',
      })
      await s.deleteKeyRows('ev-a', k.id)
      expect(await s.listKeyEvents('ev-a', k.id)).toEqual([])
      expect(await s.getKeyEvent('ev-a', e1)).toBeUndefined()
    })
  })
}
