/**
 * UsageMeter (src/core/wrap/usage-meter.ts): the AES-GCM invocation budget of a root-key version, reserved
 * from the usage ledger a block at a time. Over the in-memory ledger (test/fakes/memory-store.ts).
 */
import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { EngineError } from '../../../src/core/errors.js'
import { newKeyRecord } from '../../../src/core/keys/key-record.js'
import type { VersionEntry } from '../../../src/core/keys/directory.js'
import { UsageMeter } from '../../../src/core/wrap/usage-meter.js'
import { expectCode, expectCodeSync } from '../../helpers/expect-code.js'
import { createMemoryStore, type MemoryStore, type MemoryStoreOptions } from '../../fakes/memory-store.js'

const I = 'usage-instance'

/** A store holding one root key at version 1, and that version as the directory would hand it out. */
async function ledgerWithVersion(
  options: MemoryStoreOptions = {},
): Promise<{ store: MemoryStore; version: () => VersionEntry }> {
  const store = createMemoryStore(options)
  const id = randomUUID()
  const rec = newKeyRecord(I, id, 'k', 0, {})
  await store.insertKey(
    rec,
    { instance: I, keyId: id, version: 1, versionId: id, providerRef: 'r', createdAt: 0 },
    [],
  )
  // A fresh entry per call: directory entries come and go, the meter's counter must not.
  const version = (): VersionEntry => ({
    instance: I,
    keyId: id,
    version: 1,
    versionId: id,
    providerRef: 'r',
    createdAt: 0,
    header: Buffer.alloc(22),
    aadPrefix32: Buffer.alloc(0),
    aadEmpty32: Buffer.alloc(0),
  })
  return { store, version }
}

/** Settles every promise; returns how many were fulfilled, and the codes of the rejections. */
async function settle(ps: (Promise<void> | undefined)[]): Promise<{ ok: number; codes: string[] }> {
  const rs = await Promise.allSettled(ps.map((p) => p ?? Promise.resolve()))
  const codes = rs.flatMap((r) =>
    r.status === 'rejected' ? [r.reason instanceof EngineError ? r.reason.code : String(r.reason)] : [],
  )
  return { ok: rs.filter((r) => r.status === 'fulfilled').length, codes }
}

describe('UsageMeter', () => {
  it('refuses a limit or block that is not a positive integer with CONFIG_INVALID', async () => {
    const { store } = await ledgerWithVersion()
    for (const [limit, block] of [
      [0, 1],
      [1, 0],
      [1.5, 1],
      [10, Number.NaN],
    ] as const) {
      expectCodeSync(() => new UsageMeter(store, limit, block), 'CONFIG_INVALID')
    }
  })

  it('take returns undefined (no await) while the reservation covers it, and a promise only when a block must be reserved', async () => {
    const { store, version } = await ledgerWithVersion()
    const meter = new UsageMeter(store, 1000, 10)
    const v = version()
    const first = meter.take(I, v, 1)
    expect(first).toBeInstanceOf(Promise)
    await first
    for (let i = 0; i < 9; i++) expect(meter.take(I, v, 1)).toBeUndefined()
    expect(store.calls.reserveUsage).toBe(1)
    const eleventh = meter.take(I, v, 1)
    expect(eleventh).toBeInstanceOf(Promise)
    await eleventh
    expect(store.calls.reserveUsage).toBe(2)
    expect(meter.usedByThisProcess(I, v.keyId, 1)).toBe(11)
  })

  it('the reservation belongs to the version, not to the directory entry: a new entry object still takes synchronously', async () => {
    const { store, version } = await ledgerWithVersion()
    const meter = new UsageMeter(store, 1000, 10)
    await meter.take(I, version(), 1)
    expect(meter.take(I, version(), 1)).toBeUndefined()
    expect(store.calls.reserveUsage).toBe(1)
  })

  it('concurrent takes that miss share one block reservation (single flight)', async () => {
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    const { store, version } = await ledgerWithVersion({
      gate: (op) => (op === 'reserveUsage' ? held : undefined),
    })
    const meter = new UsageMeter(store, 1000, 100)
    const v = version()
    const takes = Array.from({ length: 50 }, () => meter.take(I, v, 1))
    expect(takes.every((t) => t instanceof Promise)).toBe(true)
    release()
    expect(await settle(takes)).toEqual({ ok: 50, codes: [] })
    expect(store.calls.reserveUsage).toBe(1)
    expect(await store.usageReserved(I, v.keyId, 1)).toBe(100)
  })

  it('never grants more than the limit in all; takes past it fail with KEY_USAGE_LIMIT_ERR', async () => {
    const { store, version } = await ledgerWithVersion()
    const meter = new UsageMeter(store, 25, 10)
    const v = version()
    for (let i = 0; i < 25; i++) await meter.take(I, v, 1)
    await expectCode(Promise.resolve(meter.take(I, v, 1)), 'KEY_USAGE_LIMIT_ERR')
    await expectCode(Promise.resolve(meter.take(I, v, 1)), 'KEY_USAGE_LIMIT_ERR') // and stays refused
    expect(meter.usedByThisProcess(I, v.keyId, 1)).toBe(25)
    expect(await store.usageReserved(I, v.keyId, 1)).toBe(25)
  })

  it('concurrent takes past the limit: exactly `limit` succeed, the rest fail with KEY_USAGE_LIMIT_ERR', async () => {
    const { store, version } = await ledgerWithVersion()
    const meter = new UsageMeter(store, 25, 10)
    const v = version()
    const r = await settle(Array.from({ length: 40 }, () => meter.take(I, v, 1)))
    expect(r.ok).toBe(25)
    expect(r.codes).toEqual(Array<string>(15).fill('KEY_USAGE_LIMIT_ERR'))
    expect(meter.usedByThisProcess(I, v.keyId, 1)).toBe(25)
  })

  it('two meters on one ledger (two processes) never exceed the limit together', async () => {
    // Every reservation yields to the event loop, so the two meters' reservations interleave.
    const { store, version } = await ledgerWithVersion({
      gate: (op) => (op === 'reserveUsage' ? new Promise<void>((r) => setImmediate(r)) : undefined),
    })
    const limit = 1000
    const a = new UsageMeter(store, limit, 64)
    const b = new UsageMeter(store, limit, 64)
    const takes: (Promise<void> | undefined)[] = []
    for (let i = 0; i < 700; i++) takes.push(a.take(I, version(), 1), b.take(I, version(), 1))
    const r = await settle(takes)
    const usedA = a.usedByThisProcess(I, version().keyId, 1)
    const usedB = b.usedByThisProcess(I, version().keyId, 1)
    expect(usedA).toBeGreaterThan(0)
    expect(usedB).toBeGreaterThan(0)
    expect(usedA + usedB).toBeLessThanOrEqual(limit)
    expect(r.ok).toBe(usedA + usedB)
    expect(new Set(r.codes)).toEqual(new Set(['KEY_USAGE_LIMIT_ERR']))
    expect(await store.usageReserved(I, version().keyId, 1)).toBe(limit)
  })

  it('property: any number of meters sharing a ledger use at most `limit` together, and count exactly what their successful takes asked for', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 16 }),
        fc.array(fc.array(fc.integer({ min: 1, max: 5 }), { maxLength: 30 }), { minLength: 1, maxLength: 4 }),
        async (limit, block, perMeter) => {
          const { store, version } = await ledgerWithVersion()
          const meters = perMeter.map(() => new UsageMeter(store, limit, block))
          const ns = perMeter.flat()
          const takes = perMeter.flatMap((row, m) => row.map((n) => meters[m]!.take(I, version(), n)))
          const outcomes = await Promise.allSettled(takes.map((t) => t ?? Promise.resolve()))
          const used = meters.map((m) => m.usedByThisProcess(I, version().keyId, 1))
          const total = used.reduce((s, u) => s + u, 0)
          expect(total).toBeLessThanOrEqual(limit)
          // What the meters count as used is exactly what the fulfilled takes asked for.
          expect(total).toBe(ns.reduce((s, n, i) => s + (outcomes[i]!.status === 'fulfilled' ? n : 0), 0))
          const r = await settle(takes)
          expect(r.codes.every((c) => c === 'KEY_USAGE_LIMIT_ERR')).toBe(true)
          expect(await store.usageReserved(I, version().keyId, 1)).toBeLessThanOrEqual(limit)
        },
      ),
      { numRuns: 60 },
    )
  })

  it('reserveAhead reserves the whole blocks a batch needs in one ledger call; the batch then takes without awaiting', async () => {
    const { store, version } = await ledgerWithVersion()
    const meter = new UsageMeter(store, 1000, 10)
    const v = version()
    await meter.reserveAhead(I, v, 35)
    expect(store.calls.reserveUsage).toBe(1)
    expect(await store.usageReserved(I, v.keyId, 1)).toBe(40) // ceil(35 / 10) blocks
    for (let i = 0; i < 35; i++) expect(meter.take(I, v, 1)).toBeUndefined()
    expect(store.calls.reserveUsage).toBe(1)
  })

  it('reserveAhead counts what this process already holds, and reserves nothing when that covers the batch', async () => {
    const { store, version } = await ledgerWithVersion()
    const meter = new UsageMeter(store, 1000, 10)
    const v = version()
    await meter.take(I, v, 7) // holds 3 of its first block
    await meter.reserveAhead(I, v, 3)
    expect(store.calls.reserveUsage).toBe(1)
    await meter.reserveAhead(I, v, 25) // 22 missing: 3 blocks
    expect(store.calls.reserveUsage).toBe(2)
    expect(await store.usageReserved(I, v.keyId, 1)).toBe(40)
  })

  it('reserveAhead at the limit reserves what is left without failing; takes past it fail with KEY_USAGE_LIMIT_ERR', async () => {
    const { store, version } = await ledgerWithVersion()
    const meter = new UsageMeter(store, 25, 10)
    const v = version()
    await meter.reserveAhead(I, v, 100)
    await meter.reserveAhead(I, v, 100) // limit already reached: still no error
    expect(await store.usageReserved(I, v.keyId, 1)).toBe(25)
    for (let i = 0; i < 25; i++) expect(meter.take(I, v, 1)).toBeUndefined()
    await expectCode(Promise.resolve(meter.take(I, v, 1)), 'KEY_USAGE_LIMIT_ERR')
  })

  it('a ledger failure is STORE_ERROR, and the next take tries the ledger again', async () => {
    let fail = true
    const { store, version } = await ledgerWithVersion({
      gate: (op) => {
        if (op === 'reserveUsage' && fail) throw new Error('disk I/O error')
      },
    })
    const meter = new UsageMeter(store, 100, 10)
    const v = version()
    await expectCode(Promise.resolve(meter.take(I, v, 1)), 'STORE_ERROR')
    fail = false
    await meter.take(I, v, 1)
    expect(meter.usedByThisProcess(I, v.keyId, 1)).toBe(1)
  })
})
