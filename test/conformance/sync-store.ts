/**
 * The conformance suite every ConnectionStore & LinkedKeyStore must pass (core/ports-sync.ts): run on the
 * SQLite roles against a real file (test/integration/sqlite/sync-store.test.ts).
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type {
  ConnectionRecord,
  ConnectionStore,
  DiscoveredKey,
  LinkedKeyStore,
} from '../../src/core/ports-sync.js'

type SyncStore = ConnectionStore & LinkedKeyStore & { close?: () => Promise<void> }

export function connectionRecord(over: Partial<ConnectionRecord> = {}): ConnectionRecord {
  return {
    tenant: `t-${randomUUID()}`,
    id: randomUUID(),
    name: `c-${randomUUID().slice(0, 8)}`,
    cloud: 'aws',
    description: undefined,
    params: {
      cloud: 'aws',
      regions: ['eu-west-1', 'us-east-1'],
      credentials: {
        kind: 'static',
        accessKeyId: { kind: 'env', name: 'AK' },
        secretAccessKey: { kind: 'file', path: '/run/sk' },
      },
    },
    createdAt: 1000,
    updatedAt: 1000,
    lastTest: undefined,
    ...over,
  }
}

export function discovered(n: number, over: Partial<DiscoveredKey> = {}): DiscoveredKey {
  return {
    sourceKeyId: `arn:aws:kms:eu-west-1:111122223333:key/k${n}`,
    vault: 'eu-west-1',
    name: `key-${n}`,
    keyType: 'SYMMETRIC_DEFAULT',
    usable: true,
    enabled: true,
    versions: [{ version: `k${n}`, ref: `arn:k${n}`, enabled: true, createdAt: 500 }],
    attributes: { aliases: [`alias/key-${n}`], keyState: 'Enabled' },
    ...over,
  }
}

const withId = (k: DiscoveredKey): DiscoveredKey & { id: string } => ({ ...k, id: randomUUID() })

export function runSyncStoreConformance(name: string, open: () => Promise<SyncStore>): void {
  describe(`ConnectionStore & LinkedKeyStore conformance: ${name}`, () => {
    let s: SyncStore
    beforeAll(async () => {
      s = await open()
    })
    afterAll(async () => {
      await s.close?.()
    })

    it('connections: insert and read back by id and by name (case-insensitive), every field', async () => {
      const c = connectionRecord({
        description: 'd',
        lastTest: {
          testedAt: 5,
          ok: false,
          checks: [
            {
              check: 'connect',
              where: 'x',
              ok: false,
              error: { code: 'PROVIDER_UNAVAILABLE', message: 'm' },
            },
          ],
        },
      })
      expect(await s.insertConnection(c)).toBe(true)
      expect(await s.getConnection(c.tenant, c.id)).toEqual(c)
      expect(await s.getConnectionByName(c.tenant, c.name.toUpperCase())).toEqual(c)
      expect(await s.getConnection(`other-${c.tenant}`, c.id)).toBeUndefined()
      const bare = connectionRecord({ tenant: c.tenant })
      expect(await s.insertConnection(bare)).toBe(true)
      expect(await s.getConnection(c.tenant, bare.id)).toEqual(bare)
    })

    it('connections: a name is unique per tenant case-insensitively; another tenant may reuse it', async () => {
      const c = connectionRecord({ name: 'Prod-Vault' })
      expect(await s.insertConnection(c)).toBe(true)
      expect(await s.insertConnection(connectionRecord({ tenant: c.tenant, name: 'prod-vault' }))).toBe(false)
      expect(await s.insertConnection({ ...c, name: 'other' })).toBe(false) // same id
      expect(await s.insertConnection(connectionRecord({ name: 'prod-vault' }))).toBe(true)
    })

    it('connections: list by name, filtered by cloud; update; delete', async () => {
      const tenant = `t-${randomUUID()}`
      const b = connectionRecord({ tenant, name: 'b' })
      const a = connectionRecord({
        tenant,
        name: 'a',
        cloud: 'pkcs11',
        params: {
          cloud: 'pkcs11',
          module: '/usr/lib/softhsm/libsofthsm2.so',
          tokenLabel: 'tok',
          pin: { kind: 'env', name: 'PIN' },
        },
      })
      await s.insertConnection(b)
      await s.insertConnection(a)
      expect((await s.listConnections(tenant)).map((c) => c.name)).toEqual(['a', 'b'])
      expect((await s.listConnections(tenant, 'pkcs11')).map((c) => c.name)).toEqual(['a'])
      expect(await s.listConnections(tenant, 'azure')).toEqual([])
      const lastTest = { testedAt: 9, ok: true, checks: [] }
      expect(await s.updateConnection(tenant, b.id, { description: 'x', updatedAt: 2000, lastTest })).toBe(
        true,
      )
      expect(await s.getConnection(tenant, b.id)).toEqual({
        ...b,
        description: 'x',
        updatedAt: 2000,
        lastTest,
      })
      expect(await s.updateConnection(tenant, b.id, { description: undefined, lastTest: undefined })).toBe(
        true,
      )
      expect(await s.getConnection(tenant, b.id)).toEqual({ ...b, updatedAt: 2000 })
      expect(await s.updateConnection(tenant, randomUUID(), { description: 'x' })).toBe(false)
      expect(await s.deleteConnection(tenant, b.id)).toBe('deleted')
      expect(await s.deleteConnection(tenant, b.id)).toBe('not-found')
      expect(await s.getConnection(tenant, b.id)).toBeUndefined()
    })

    it('connections: delete is in-use while linked keys refer to the connection', async () => {
      const c = connectionRecord()
      await s.insertConnection(c)
      await s.upsertLinkedKeys(c.tenant, c.id, 'aws', [withId(discovered(1))], { at: 1, jobId: 'j' })
      expect(await s.deleteConnection(c.tenant, c.id)).toBe('in-use')
      expect(await s.getConnection(c.tenant, c.id)).toBeDefined()
    })

    it('linked keys: insert, then unchanged (same id, sync times written), then updated on any reported change', async () => {
      const c = connectionRecord()
      await s.insertConnection(c)
      const k1 = withId(discovered(1))
      const k2 = withId(discovered(2))
      expect(await s.upsertLinkedKeys(c.tenant, c.id, 'aws', [k1, k2], { at: 10, jobId: 'j1' })).toEqual([
        'inserted',
        'inserted',
      ])
      const r1 = await s.getLinkedKey(c.tenant, k1.id)
      expect(r1).toEqual({
        ...discovered(1),
        tenant: c.tenant,
        id: k1.id,
        cloud: 'aws',
        connectionId: c.id,
        sourceState: 'present',
        deletedAtSourceAt: undefined,
        firstSyncedAt: 10,
        lastSyncedAt: 10,
        lastSyncJobId: 'j1',
      })
      // Same report, attribute members in another order, new ids offered: unchanged, ids kept.
      const again = [
        withId({ ...discovered(1), attributes: { keyState: 'Enabled', aliases: ['alias/key-1'] } }),
        withId(discovered(2)),
      ]
      expect(await s.upsertLinkedKeys(c.tenant, c.id, 'aws', again, { at: 20, jobId: 'j2' })).toEqual([
        'unchanged',
        'unchanged',
      ])
      const r1b = await s.getLinkedKey(c.tenant, k1.id)
      expect(r1b?.lastSyncedAt).toBe(20)
      expect(r1b?.lastSyncJobId).toBe('j2')
      expect(r1b?.firstSyncedAt).toBe(10)
      expect(await s.getLinkedKey(c.tenant, again[0]!.id)).toBeUndefined()
      const changes: Partial<DiscoveredKey>[] = [
        { name: 'renamed' },
        { enabled: false },
        { usable: false },
        { keyType: 'RSA_2048' },
        { vault: 'us-east-1' },
        { attributes: { aliases: [] } },
        {
          versions: [
            ...discovered(1).versions,
            { version: 'v2', ref: 'arn:v2', enabled: true, createdAt: undefined },
          ],
        },
      ]
      for (const [i, ch] of changes.entries()) {
        const out = await s.upsertLinkedKeys(c.tenant, c.id, 'aws', [withId(discovered(1, ch))], {
          at: 30 + i,
          jobId: 'j3',
        })
        expect(out, JSON.stringify(ch)).toEqual(['updated'])
        const r = await s.getLinkedKey(c.tenant, k1.id)
        expect(r).toMatchObject({ ...discovered(1, ch), id: k1.id, firstSyncedAt: 10 })
      }
    })

    it('linked keys: unique per (tenant, connection, source id): the same source id under another connection is another key', async () => {
      const c1 = connectionRecord()
      const c2 = connectionRecord({ tenant: c1.tenant })
      await s.insertConnection(c1)
      await s.insertConnection(c2)
      const a = withId(discovered(7))
      const b = withId(discovered(7))
      expect(await s.upsertLinkedKeys(c1.tenant, c1.id, 'aws', [a], { at: 1, jobId: 'j' })).toEqual([
        'inserted',
      ])
      expect(await s.upsertLinkedKeys(c1.tenant, c2.id, 'aws', [b], { at: 1, jobId: 'j' })).toEqual([
        'inserted',
      ])
      expect(await s.countLinkedKeys(c1.tenant)).toBe(2)
    })

    it('linked keys: markMissingDeleted marks what a job did not see (within vaults when given); reappearing restores', async () => {
      const c = connectionRecord()
      await s.insertConnection(c)
      const keys = [
        withId(discovered(1)),
        withId(discovered(2)),
        withId(discovered(3, { vault: 'us-east-1' })),
      ]
      await s.upsertLinkedKeys(c.tenant, c.id, 'aws', keys, { at: 1, jobId: 'j1' })
      // Job j2 sees only key 1 in eu-west-1 and nothing in us-east-1 (not synchronized).
      await s.upsertLinkedKeys(c.tenant, c.id, 'aws', [withId(discovered(1))], { at: 2, jobId: 'j2' })
      expect(await s.markMissingDeleted(c.tenant, c.id, 'j2', 3, ['eu-west-1'])).toBe(1)
      expect(await s.markMissingDeleted(c.tenant, c.id, 'j2', 3, ['eu-west-1'])).toBe(0)
      const k2 = await s.getLinkedKey(c.tenant, keys[1]!.id)
      expect(k2?.sourceState).toBe('deleted')
      expect(k2?.deletedAtSourceAt).toBe(3)
      expect((await s.getLinkedKey(c.tenant, keys[2]!.id))?.sourceState).toBe('present')
      expect(await s.markMissingDeleted(c.tenant, c.id, 'j2', 4, [])).toBe(0)
      expect(await s.countLinkedKeys(c.tenant, { sourceState: 'deleted' })).toBe(1)
      // Without vaults: the whole connection.
      expect(await s.markMissingDeleted(c.tenant, c.id, 'j2', 5)).toBe(1)
      expect(await s.countLinkedKeys(c.tenant, { sourceState: 'present' })).toBe(1)
      // Key 2 reappears: updated, present again, same id.
      expect(
        await s.upsertLinkedKeys(c.tenant, c.id, 'aws', [withId(discovered(2))], { at: 6, jobId: 'j3' }),
      ).toEqual(['updated'])
      const back = await s.getLinkedKey(c.tenant, keys[1]!.id)
      expect(back?.sourceState).toBe('present')
      expect(back?.deletedAtSourceAt).toBeUndefined()
    })

    it('linked keys: deleteLinkedKey deletes only a key marked deleted at its source; tenants are isolated', async () => {
      const c = connectionRecord()
      await s.insertConnection(c)
      const [k1, k2] = [withId(discovered(1)), withId(discovered(2))]
      await s.upsertLinkedKeys(c.tenant, c.id, 'aws', [k1, k2], { at: 1, jobId: 'j1' })
      expect(await s.deleteLinkedKey(c.tenant, k1.id)).toBe('present')
      expect((await s.getLinkedKey(c.tenant, k1.id))?.sourceState).toBe('present')
      // j2 sees only key 2: key 1 is marked deleted.
      await s.upsertLinkedKeys(c.tenant, c.id, 'aws', [withId(discovered(2))], { at: 2, jobId: 'j2' })
      expect(await s.markMissingDeleted(c.tenant, c.id, 'j2', 3)).toBe(1)
      expect(await s.deleteLinkedKey(`x${c.tenant}`, k1.id)).toBe('not-found')
      expect(await s.getLinkedKey(c.tenant, k1.id)).toBeDefined()
      expect(await s.deleteLinkedKey(c.tenant, k1.id)).toBe('deleted')
      expect(await s.getLinkedKey(c.tenant, k1.id)).toBeUndefined()
      expect(await s.deleteLinkedKey(c.tenant, k1.id)).toBe('not-found')
      expect(await s.deleteLinkedKey(c.tenant, k2.id)).toBe('present')
      expect(await s.countLinkedKeys(c.tenant)).toBe(1)
      // The same source key found again is a new key (the purged id is not reused).
      const again = withId(discovered(1))
      expect(await s.upsertLinkedKeys(c.tenant, c.id, 'aws', [again], { at: 4, jobId: 'j3' })).toEqual([
        'inserted',
      ])
      expect((await s.getLinkedKey(c.tenant, again.id))?.firstSyncedAt).toBe(4)
    })

    it('connections: delete with purgeDeleted purges the deleted-at-source links, atomically; present links block it', async () => {
      const c = connectionRecord()
      const other = connectionRecord({ tenant: c.tenant })
      await s.insertConnection(c)
      await s.insertConnection(other)
      const keys = [withId(discovered(1)), withId(discovered(2)), withId(discovered(3))]
      await s.upsertLinkedKeys(c.tenant, c.id, 'aws', keys, { at: 1, jobId: 'j1' })
      const kept = withId(discovered(1))
      await s.upsertLinkedKeys(c.tenant, other.id, 'aws', [kept], { at: 1, jobId: 'j1' })
      await s.markMissingDeleted(other.tenant, other.id, 'j0', 2)
      // Key 3 still present: refused, nothing purged.
      await s.upsertLinkedKeys(c.tenant, c.id, 'aws', [withId(discovered(3))], { at: 2, jobId: 'j2' })
      expect(await s.markMissingDeleted(c.tenant, c.id, 'j2', 3)).toBe(2)
      expect(await s.deleteConnection(c.tenant, c.id, { purgeDeleted: true })).toBe('in-use')
      expect(await s.countLinkedKeys(c.tenant, { connectionId: c.id })).toBe(3)
      expect(await s.deleteConnection(c.tenant, c.id)).toBe('in-use')
      // Key 3 gone too: without purgeDeleted still in use; with it, deleted with its links.
      expect(await s.markMissingDeleted(c.tenant, c.id, 'j3', 4)).toBe(1)
      expect(await s.deleteConnection(c.tenant, c.id)).toBe('in-use')
      expect(await s.deleteConnection(`x${c.tenant}`, c.id, { purgeDeleted: true })).toBe('not-found')
      expect(await s.deleteConnection(c.tenant, c.id, { purgeDeleted: true })).toBe('deleted')
      expect(await s.getConnection(c.tenant, c.id)).toBeUndefined()
      expect(await s.countLinkedKeys(c.tenant, { connectionId: c.id })).toBe(0)
      for (const k of keys) expect(await s.getLinkedKey(c.tenant, k.id)).toBeUndefined()
      // Another connection's deleted link is not touched.
      expect((await s.getLinkedKey(c.tenant, kept.id))?.sourceState).toBe('deleted')
    })

    it('linked keys: list pages by id with filters; count; tenants are isolated', async () => {
      const c = connectionRecord()
      const p = connectionRecord({
        tenant: c.tenant,
        cloud: 'pkcs11',
        params: { cloud: 'pkcs11', module: '/m.so', tokenLabel: 't', pin: { kind: 'env', name: 'P' } },
      })
      await s.insertConnection(c)
      await s.insertConnection(p)
      const aws = Array.from({ length: 5 }, (_, i) => withId(discovered(i)))
      const hsm = Array.from({ length: 3 }, (_, i) =>
        withId(discovered(i, { sourceKeyId: `id:0${i}`, vault: 't' })),
      )
      await s.upsertLinkedKeys(c.tenant, c.id, 'aws', aws, { at: 1, jobId: 'j' })
      await s.upsertLinkedKeys(c.tenant, p.id, 'pkcs11', hsm, { at: 1, jobId: 'j' })
      const ids = [...aws, ...hsm].map((k) => k.id).sort()
      const page1 = await s.listLinkedKeys(c.tenant, { limit: 3 })
      const page2 = await s.listLinkedKeys(c.tenant, { limit: 3, after: page1.at(-1)!.id })
      const page3 = await s.listLinkedKeys(c.tenant, { limit: 3, after: page2.at(-1)!.id })
      expect([...page1, ...page2, ...page3].map((k) => k.id)).toEqual(ids)
      expect(
        (await s.listLinkedKeys(c.tenant, { limit: 100, cloud: 'pkcs11' })).map((k) => k.id).sort(),
      ).toEqual(hsm.map((k) => k.id).sort())
      expect(await s.listLinkedKeys(c.tenant, { limit: 100, connectionId: c.id })).toHaveLength(5)
      expect(await s.countLinkedKeys(c.tenant)).toBe(8)
      expect(await s.countLinkedKeys(c.tenant, { cloud: 'aws', sourceState: 'present' })).toBe(5)
      expect(await s.countLinkedKeys(c.tenant, { connectionId: p.id })).toBe(3)
      expect(await s.getLinkedKey(`x${c.tenant}`, aws[0]!.id)).toBeUndefined()
      expect(await s.listLinkedKeys(`x${c.tenant}`, { limit: 10 })).toEqual([])
      expect(await s.markMissingDeleted(`x${c.tenant}`, c.id, 'other', 1)).toBe(0)
    })
  })
}
