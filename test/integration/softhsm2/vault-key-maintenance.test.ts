/**
 * The vault-key maintenance pass (core/jobs/vault-key-maintenance.ts) on a real SoftHSM2 token and a real
 * SQLite catalog: soft-deleted vault keys are purged at their scheduled purge date (device objects and
 * rows), recovered ones are left alone; device objects without a catalog row (a crash between the object and
 * the row) are destroyed by the second pass that finds them, objects of another catalog never.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createVaultKeyMaintenance } from '../../../src/core/jobs/vault-key-maintenance.js'
import { startRotationScheduler } from '../../../src/core/jobs/scheduler.js'
import { VaultKeys } from '../../../src/core/vault-keys/vault-keys.js'
import { expectCode } from '../../helpers/expect-code.js'
import { ManualClock, openTestEngine, type TestEngine } from '../../helpers/engine.js'

const DAY = 86_400_000
let t: TestEngine
let clock: ManualClock
let vault: VaultKeys

beforeAll(async () => {
  t = await openTestEngine()
  clock = new ManualClock()
  vault = new VaultKeys({ backend: t.provider, store: t.store.vaultKeys, clock, retentionDays: 7 })
})
afterAll(async () => {
  await t.engine.close()
})

function maintenance(): ReturnType<typeof createVaultKeyMaintenance> {
  return createVaultKeyMaintenance({ vault, store: t.store.vaultKeys, backend: t.provider, clock })
}

async function objectRefs(): Promise<string[]> {
  return (await t.provider.listVaultKeyObjects()).map((o) => o.ref)
}

describe('automatic purge at the scheduled purge date', () => {
  it('purges a key once its purge date came (objects and rows), not before, and not a recovered one', async () => {
    const m = maintenance()
    const a = await vault.create('tenant-a', 'early', { kty: 'oct-HSM', size: 256 })
    const b = await vault.create('tenant-a', 'late', { kty: 'oct-HSM', size: 256 })
    const c = await vault.create('tenant-b', 'recovered', { kty: 'RSA-HSM', size: 2048 })
    await vault.delete('tenant-a', 'early')
    await vault.delete('tenant-b', 'recovered')
    clock.advance(3 * DAY)
    await vault.delete('tenant-a', 'late')
    expect((await m.run()).purged).toEqual([])

    clock.advance(4 * DAY) // 'early' and 'recovered' are due, 'late' has 3 days left
    await vault.recover('tenant-b', 'recovered')
    const r = await m.run()
    expect(r.purged.map((p) => p.name)).toEqual(['early'])
    expect(r.failed).toEqual([])
    await expectCode(vault.getDeleted('tenant-a', 'early'), 'KEY_NOT_FOUND_ERR')
    const refs = await objectRefs()
    expect(refs).not.toContain(a.version.ref)
    expect(refs).toContain(b.version.ref)
    expect(refs).toContain(c.version.ref)
    expect((await vault.get('tenant-b', 'recovered')).key.deleted).toBeUndefined()

    clock.advance(3 * DAY)
    expect((await m.run()).purged.map((p) => p.name)).toEqual(['late'])
    expect(await objectRefs()).not.toContain(b.version.ref)
  })

  it('the serve scheduler runs the pass and reports it', async () => {
    await vault.create('tenant-a', 'scheduled', { kty: 'oct-HSM', size: 256 })
    await vault.delete('tenant-a', 'scheduled')
    clock.advance(8 * DAY)
    const seen: string[][] = []
    const scheduler = startRotationScheduler(t.engine, {
      intervalMs: 3_600_000,
      vaultKeys: maintenance(),
      onVaultKeys: (r) => seen.push(r.purged.map((p) => p.name)),
    })
    await scheduler.runNow()
    await scheduler.stop()
    expect(seen.flat()).toEqual(['scheduled'])
  })
})

describe('orphaned device objects', () => {
  it('an object without a catalog row is destroyed by the second pass that finds it; other catalogs are left alone', async () => {
    const m = maintenance()
    const live = await vault.create('tenant-a', 'live', { kty: 'oct-HSM', size: 256 })
    // A crash between the device object and its row: the object exists, no row refers to it.
    const orphan = await t.provider.createVaultKey({
      catalogId: t.store.vaultKeys.catalogId,
      kty: 'oct-HSM',
      size: 256,
    })
    const foreign = await t.provider.createVaultKey({ catalogId: randomUUID(), kty: 'oct-HSM', size: 256 })

    const first = await m.run()
    expect(first.swept).toEqual([])
    expect(first.pending).toBe(1)
    expect(await objectRefs()).toContain(orphan.ref)

    const second = await m.run()
    expect(second.swept).toEqual([orphan.ref])
    expect(second.pending).toBe(0)
    const refs = await objectRefs()
    expect(refs).not.toContain(orphan.ref)
    expect(refs).toContain(foreign.ref)
    expect(refs).toContain(live.version.ref)
    const out = await vault.encrypt('tenant-a', 'live', undefined, {
      alg: 'A256GCM',
      plaintext: Buffer.from('still here'),
      aad: undefined,
    })
    expect(out.ciphertext).toHaveLength(10)
    await t.provider.destroyVaultKey(foreign.ref)
  })

  it('an object that gets its row between two passes is kept', async () => {
    const m = maintenance()
    const obj = await t.provider.createVaultKey({
      catalogId: t.store.vaultKeys.catalogId,
      kty: 'oct-HSM',
      size: 256,
    })
    expect((await m.run()).pending).toBe(1)
    await t.store.vaultKeys.addVaultKeyVersion({
      instance: 'tenant-a',
      name: 'late-row',
      version: randomUUID().replaceAll('-', ''),
      seq: 1,
      kty: 'oct-HSM',
      size: 256,
      ref: obj.ref,
      publicKey: undefined,
      imported: false,
      enabled: true,
      keyOps: ['encrypt', 'decrypt'],
      tags: {},
      notBefore: undefined,
      expires: undefined,
      createdAt: clock.now(),
      updatedAt: clock.now(),
    })
    const r = await m.run()
    expect(r.swept).toEqual([])
    expect(await objectRefs()).toContain(obj.ref)
  })
})
