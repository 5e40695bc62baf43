/**
 * The automatic purge (src/core/jobs/auto-purge.ts, issue 13 item 6): a key deleted more than the
 * lifecycle's `purgeScheduledAfterMs` ago is destroyed once, crash-safely (destroyKey's purging mark), by
 * `runAutoPurge` and by the scheduler with `autoPurge: true`. Through the real EnvelopeEngine over the fakes
 * with a manual clock; the SoftHSM2 + SQLite test is test/integration/softhsm2/auto-purge.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { EnvelopeEngine, KEY_PROTECT_LIFECYCLE, type AutoPurgeResult } from '../../../src/core/engine.js'
import { DAY } from '../../../src/core/engine-types.js'
import { EngineError } from '../../../src/core/errors.js'
import { startRotationScheduler } from '../../../src/core/jobs/scheduler.js'
import { autoPurgeAuditEvents } from '../../../src/cli/commands/serve.js'
import { expectCode } from '../../helpers/expect-code.js'
import { createInsecureMemoryProvider, type InsecureMemoryProvider } from '../../fakes/fake-provider.js'
import { ManualClock } from '../../fakes/manual-clock.js'
import { createMemoryStore, type MemoryStore } from '../../fakes/memory-store.js'

const I = 'auto-purge'
const J = 'auto-purge-other'

interface World {
  engine: EnvelopeEngine
  provider: InsecureMemoryProvider
  store: MemoryStore
  clock: ManualClock
  failDestroy: Set<number>
}

function world(lifecycle: Partial<typeof KEY_PROTECT_LIFECYCLE> = {}): World {
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
  const engine = new EnvelopeEngine({
    provider,
    store,
    clock,
    lifecycle: { minRotationIntervalMs: 0, ...lifecycle },
  })
  return { engine, provider, store, clock, failDestroy }
}

async function rootKey(w: World, instance: string, versions = 1): Promise<string> {
  const k = await w.engine.createKey(instance, { name: 'auto-purge-key' })
  for (let v = 2; v <= versions; v++) await w.engine.rotate(instance, k.id)
  return k.id
}

describe('runAutoPurge', () => {
  it('purges exactly the keys deleted more than 90 days ago, once; a second pass does nothing', async () => {
    const w = world()
    const old = await rootKey(w, I, 3)
    const oldOther = await rootKey(w, J)
    const recent = await rootKey(w, I)
    const live = await rootKey(w, I)
    await w.engine.deleteKey(I, old)
    await w.engine.deleteKey(J, oldOther)
    const oldDeletedAt = w.clock.now()
    w.clock.advance(DAY)
    await w.engine.deleteKey(I, recent)
    expect(w.provider.size).toBe(6)

    // Exactly 90 days after the first deletions: due (purgeScheduledOn is that instant) — not a day before.
    w.clock.advance(89 * DAY - 1)
    expect(await w.engine.runAutoPurge()).toEqual({ purged: [], failed: [] })
    w.clock.advance(1)
    expect((await w.engine.getKey(I, old)).purgeScheduledOn?.getTime()).toBe(w.clock.now())
    const r = await w.engine.runAutoPurge()
    expect(r.failed).toEqual([])
    expect(r.purged).toEqual(
      expect.arrayContaining([
        { instance: I, keyId: old, deletedAt: new Date(oldDeletedAt) },
        { instance: J, keyId: oldOther, deletedAt: new Date(oldDeletedAt) },
      ]),
    )
    expect(r.purged).toHaveLength(2)
    await expectCode(w.engine.getKey(I, old), 'KEY_NOT_FOUND_ERR')
    await expectCode(w.engine.getKey(J, oldOther), 'KEY_NOT_FOUND_ERR')
    expect((await w.engine.getKey(I, recent)).state).toBe(5)
    expect((await w.engine.getKey(I, live)).state).toBe(1)
    expect(w.provider.size).toBe(2) // recent's and live's version objects

    expect(await w.engine.runAutoPurge()).toEqual({ purged: [], failed: [] })
    w.clock.advance(DAY)
    expect((await w.engine.runAutoPurge()).purged).toEqual([
      { instance: I, keyId: recent, deletedAt: new Date(oldDeletedAt + DAY) },
    ])
    expect(w.provider.size).toBe(1)
    expect(await w.engine.runAutoPurge()).toEqual({ purged: [], failed: [] })
  })

  it('a key restored before its date is not purged', async () => {
    const w = world()
    const id = await rootKey(w, I)
    await w.engine.deleteKey(I, id)
    w.clock.advance(KEY_PROTECT_LIFECYCLE.restoreNotBeforeMs)
    await w.engine.restoreKey(I, id)
    w.clock.advance(91 * DAY)
    expect(await w.engine.runAutoPurge()).toEqual({ purged: [], failed: [] })
    expect((await w.engine.getKey(I, id)).state).toBe(1)
  })

  it('is configured through the lifecycle policy (purgeScheduledAfterMs)', async () => {
    const w = world({ purgeScheduledAfterMs: 60_000 })
    const id = await rootKey(w, I)
    await w.engine.deleteKey(I, id)
    expect((await w.engine.getKey(I, id)).purgeScheduledOn?.getTime()).toBe(w.clock.now() + 60_000)
    w.clock.advance(59_999)
    expect((await w.engine.runAutoPurge()).purged).toEqual([])
    w.clock.advance(1)
    expect((await w.engine.runAutoPurge()).purged.map((p) => p.keyId)).toEqual([id])
    expect(w.provider.size).toBe(0)
  })

  it('a provider failure mid-purge leaves the key marked (restore refused); the next pass finishes it once', async () => {
    const w = world()
    const failing = await rootKey(w, I, 4)
    const fine = await rootKey(w, J, 2)
    await w.engine.deleteKey(I, failing)
    w.clock.advance(1)
    await w.engine.deleteKey(J, fine)
    w.clock.advance(90 * DAY)
    w.failDestroy.add(2) // the second object of the first key (oldest deletion first)
    const r = await w.engine.runAutoPurge()
    expect(r.failed).toEqual([
      { instance: I, keyId: failing, code: 'PROVIDER_UNAVAILABLE', message: expect.any(String) },
    ])
    // The pass goes on with the other keys.
    expect(r.purged.map((p) => p.keyId)).toEqual([fine])
    expect((await w.store.getKey(I, failing))?.purgingSince).toBeDefined()
    expect(w.provider.size).toBe(3)
    await expectCode(w.engine.restoreKey(I, failing), 'KEY_PURGE_IN_PROGRESS_ERR')

    const again = await w.engine.runAutoPurge()
    expect(again).toEqual({
      purged: [{ instance: I, keyId: failing, deletedAt: expect.any(Date) }],
      failed: [],
    })
    expect(w.provider.size).toBe(0)
    expect(await w.store.listPurging()).toEqual([])
    expect(await w.engine.runAutoPurge()).toEqual({ purged: [], failed: [] })
  })
})

describe('the scheduler', () => {
  it('runs the automatic purge only with autoPurge: true, and reports each pass to onAutoPurge', async () => {
    const w = world()
    const id = await rootKey(w, I)
    await w.engine.deleteKey(I, id)
    w.clock.advance(90 * DAY)

    const off = startRotationScheduler(w.engine, { intervalMs: 3_600_000 })
    await off.stop()
    expect((await w.engine.getKey(I, id)).state).toBe(5)

    const passes: AutoPurgeResult[] = []
    const errors: EngineError[] = []
    const on = startRotationScheduler(w.engine, {
      intervalMs: 3_600_000,
      autoPurge: true,
      onAutoPurge: (r) => passes.push(r),
      onError: (e) => errors.push(e),
    })
    await on.runNow()
    await on.stop()
    expect(errors).toEqual([])
    expect(passes).toHaveLength(2) // the pass at start and runNow()
    expect(passes[0]?.purged.map((p) => p.keyId)).toEqual([id])
    expect(passes[1]).toEqual({ purged: [], failed: [] })
    await expectCode(w.engine.getKey(I, id), 'KEY_NOT_FOUND_ERR')
  })
})

describe("serve's audit events for a pass", () => {
  it('one kms.secrets.purge per key: success 204 when purged, the wire status and code when it failed', () => {
    const deletedAt = new Date(0)
    const events = autoPurgeAuditEvents(
      {
        purged: [{ instance: I, keyId: 'k-purged', deletedAt }],
        failed: [{ instance: J, keyId: 'k-failed', code: 'PROVIDER_UNAVAILABLE', message: 'away' }],
      },
      'pass-1',
    )
    const common = {
      event: 'kms.secrets.purge',
      subject: 'envelope-kms:scheduler',
      correlationId: 'pass-1',
      method: 'SCHEDULER',
      route: 'auto-purge',
      api: 'keyprotect',
      operation: 'autoPurge',
    }
    expect(events).toEqual([
      { ...common, outcome: 'success', status: 204, instance: I, keyId: 'k-purged', reason: undefined },
      {
        ...common,
        outcome: 'failure',
        status: 503,
        instance: J,
        keyId: 'k-failed',
        reason: 'PROVIDER_UNAVAILABLE',
      },
    ])
    expect(autoPurgeAuditEvents({ purged: [], failed: [] })).toEqual([])
  })
})
