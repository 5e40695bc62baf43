/**
 * Crash-safe purge (src/core/keys/deletion.ts destroyKey, src/core/jobs/reconcile.ts): the durable
 * "purging" mark written before the first provider object is destroyed, restore refused from then on, a
 * failed or interrupted purge finished by a retry, by the scheduled-deletion job or by reconcile(), and a
 * missing version object reported by reconcile() and refused as KEY_VERSION_MATERIAL_MISSING (not
 * retryable). Through the real EnvelopeEngine over the fakes (test/fakes): no token, no file; the SIGKILL
 * tests on SoftHSM2 + SQLite are in test/integration/softhsm2/purge-crash.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { EnvelopeEngine, KEY_PROTECT_LIFECYCLE } from '../../../src/core/engine.js'
import { DAY } from '../../../src/core/engine-types.js'
import { EngineError } from '../../../src/core/errors.js'
import { expectCode } from '../../helpers/expect-code.js'
import { createInsecureMemoryProvider, type InsecureMemoryProvider } from '../../fakes/fake-provider.js'
import { ManualClock } from '../../fakes/manual-clock.js'
import { createMemoryStore, type MemoryStore } from '../../fakes/memory-store.js'

const I = 'purge-crash'
const L = KEY_PROTECT_LIFECYCLE
const VERSIONS = 6

interface World {
  engine: EnvelopeEngine
  provider: InsecureMemoryProvider
  store: MemoryStore
  clock: ManualClock
  /** destroyVersion calls (1-based) that fail, as a provider failure in the middle of the loop. */
  failDestroy: Set<number>
}

function world(): World {
  const failDestroy = new Set<number>()
  let destroys = 0
  const provider = createInsecureMemoryProvider({
    gate: (op) => {
      if (op !== 'destroyVersion') return
      destroys++
      if (failDestroy.has(destroys))
        throw new EngineError('PROVIDER_UNAVAILABLE', 'provider: injected failure')
    },
  })
  const store = createMemoryStore()
  const clock = new ManualClock()
  const engine = new EnvelopeEngine({ provider, store, clock, lifecycle: { minRotationIntervalMs: 0 } })
  return { engine, provider, store, clock, failDestroy }
}

/** A key with {@link VERSIONS} versions and one ciphertext under its first version, deleted 4 h ago. */
async function deletedKey(w: World): Promise<{ id: string; ciphertext: string }> {
  const k = await w.engine.createKey(I, { name: 'many-versions' })
  const { ciphertext } = await w.engine.wrap(I, k.id)
  for (let v = 2; v <= VERSIONS; v++) await w.engine.rotate(I, k.id)
  await w.engine.deleteKey(I, k.id)
  w.clock.advance(L.purgeNotBeforeMs)
  return { id: k.id, ciphertext }
}

describe('purge: a provider failure in the middle of the loop', () => {
  it('leaves a key marked purging that restore refuses (KEY_PURGE_IN_PROGRESS_ERR); a retried purge finishes it', async () => {
    const w = world()
    const { id, ciphertext } = await deletedKey(w)
    w.failDestroy.add(4)
    await expectCode(w.engine.purgeKey(I, id), 'PROVIDER_UNAVAILABLE')
    expect(w.provider.size).toBe(VERSIONS - 3)
    expect((await w.store.getKey(I, id))?.purgingSince).toBe(w.clock.now())
    expect((await w.store.listPurging()).map((p) => p.keyId)).toEqual([id])
    w.clock.advance(L.restoreNotBeforeMs)
    const e = await expectCode(w.engine.restoreKey(I, id), 'KEY_PURGE_IN_PROGRESS_ERR')
    expect(e.retryable).toBe(false)
    expect((await w.engine.getKey(I, id)).state).toBe(5)
    await expectCode(w.engine.unwrap(I, id, ciphertext), 'KEY_DELETED_ERR')
    await expectCode(w.engine.wrap(I, id), 'KEY_DELETED_ERR')
    await w.engine.purgeKey(I, id)
    expect(w.provider.size).toBe(0)
    expect(await w.store.listPurging()).toEqual([])
    await expectCode(w.engine.getKey(I, id), 'KEY_NOT_FOUND_ERR')
  })

  it('reconcile() finishes the interrupted purge and reports it', async () => {
    const w = world()
    const { id } = await deletedKey(w)
    w.failDestroy.add(1)
    await expectCode(w.engine.purgeKey(I, id), 'PROVIDER_UNAVAILABLE')
    expect(w.provider.size).toBe(VERSIONS)
    const report = await w.engine.reconcile()
    expect(report.purged).toEqual([{ instance: I, keyId: id }])
    expect(report.missing).toEqual([])
    expect(report.adopted).toEqual([])
    expect(w.provider.size).toBe(0)
    await expectCode(w.engine.getKey(I, id), 'KEY_NOT_FOUND_ERR')
    expect((await w.engine.reconcile()).purged).toEqual([])
  })

  it('a second engine process on the same catalog cannot restore the key while the first purges it', async () => {
    const w = world()
    const { id } = await deletedKey(w)
    w.clock.advance(L.restoreNotBeforeMs)
    const other = new EnvelopeEngine({ provider: w.provider, store: w.store, clock: w.clock })
    await other.getKey(I, id) // the other process has the key cached as restorable
    w.failDestroy.add(2)
    await expectCode(w.engine.purgeKey(I, id), 'PROVIDER_UNAVAILABLE')
    await expectCode(other.restoreKey(I, id), 'KEY_PURGE_IN_PROGRESS_ERR')
    // Even a restore that read the key before the mark loses at the catalog's compare-and-set.
    expect(await w.store.updateKey(I, id, 5, { state: 1 })).toBe(false)
    await other.purgeKey(I, id)
    expect(w.provider.size).toBe(0)
  })
})

describe('scheduled deletion: a provider failure in the middle of the loop', () => {
  it('the key is destroyed-and-purging (cancel refused); the next run of the job finishes it', async () => {
    const w = world()
    const k = await w.engine.createKey(I, { name: 'scheduled' })
    for (let v = 2; v <= VERSIONS; v++) await w.engine.rotate(I, k.id)
    await w.engine.scheduleKeyDeletion(I, k.id, { pendingWindowDays: 7 })
    w.clock.advance(7 * DAY)
    w.failDestroy.add(3)
    await expectCode(w.engine.runScheduledDeletions(), 'PROVIDER_UNAVAILABLE')
    expect((await w.engine.getKey(I, k.id)).state).toBe(5)
    await expectCode(w.engine.cancelKeyDeletion(I, k.id), 'KEY_PURGE_IN_PROGRESS_ERR')
    expect(await w.store.cancelDeletion(I, k.id)).toBe(false)
    expect((await w.engine.runScheduledDeletions()).destroyed).toEqual([{ instance: I, keyId: k.id }])
    expect(w.provider.size).toBe(0)
    await expectCode(w.engine.getKey(I, k.id), 'KEY_NOT_FOUND_ERR')
  })
})

describe('a version whose provider object is missing', () => {
  it('reconcile() reports it; unwrap is KEY_VERSION_MATERIAL_MISSING, not retryable; other versions work', async () => {
    const w = world()
    const k = await w.engine.createKey(I, { name: 'lost-object' })
    const old = await w.engine.wrap(I, k.id)
    await w.engine.rotate(I, k.id)
    const fresh = await w.engine.wrap(I, k.id)
    const v1 = (await w.store.listVersions(I, k.id)).find((v) => v.version === 1)
    if (v1 === undefined) throw new Error('no version 1')
    await w.provider.destroyVersion(v1.providerRef) // lost outside the engine (a token restored from a backup)
    const report = await w.engine.reconcile()
    expect(report.missing).toEqual([{ instance: I, keyId: k.id, version: 1, ref: v1.providerRef }])
    expect(report.purged).toEqual([])
    const e = await expectCode(w.engine.unwrap(I, k.id, old.ciphertext), 'KEY_VERSION_MATERIAL_MISSING')
    expect(e.retryable).toBe(false)
    expect((await w.engine.unwrap(I, k.id, fresh.ciphertext)).plaintext).toEqual(fresh.plaintext)
    expect((await w.engine.getKey(I, k.id)).state).toBe(1) // reported, never changed
  })
})
