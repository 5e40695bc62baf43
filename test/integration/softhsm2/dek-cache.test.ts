/**
 * The DEK cache with the real token: hits skip the HSM, bounds hold exactly, misses are single-flight,
 * and every evicted, expired, invalidated or closed DEK buffer reads all zeros afterwards.
 */
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createEngine, SecretBytes, type EnvelopeEngine } from '../../../src/index.js'
import { deriveDataKey, type MessageKeyDeriver } from '../../../src/core/format/message.js'
import type { DekMemo } from '../../../src/core/ports.js'
import { createDekCache, type DekCacheOptions } from '../../../src/cache/index.js'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'
import { counting, type Counted } from '../../helpers/counting-provider.js'
import { ManualClock, openProvider, tempCatalogPath } from '../../helpers/engine.js'
import { expectCode } from '../../helpers/expect-code.js'

const I = 'cache'
const zeroed = (b: Buffer): boolean => b.every((x) => x === 0)

async function setup(options: DekCacheOptions = {}): Promise<{
  engine: EnvelopeEngine
  c: Counted
  clock: ManualClock
  cache: ReturnType<typeof createDekCache>
  keyId: string
}> {
  const clock = new ManualClock()
  const c = counting(await openProvider())
  const cache = createDekCache({ clock, ...options })
  const engine = await createEngine({
    provider: c.provider,
    store: await openSqliteStore({ path: tempCatalogPath() }),
    clock,
    dekCache: cache,
  })
  const keyId = (await engine.createKey(I, { name: 'cached' })).id
  c.calls.encrypt = c.calls.decrypt = c.calls.generateRandom = 0
  c.buffers.length = 0
  return { engine, c, clock, cache, keyId }
}

describe('DEK cache', () => {
  it('repeated unwrap and open of the same DEK call the HSM once; the AAD is part of the cache key', async () => {
    const { engine, c, cache, keyId } = await setup()
    const w = await engine.wrap(I, keyId, { aad: ['x'] })
    for (let i = 0; i < 5; i++) {
      const u = await engine.unwrap(I, keyId, w.ciphertext, { aad: ['x'] })
      expect(u.plaintext.equals(w.plaintext ?? Buffer.alloc(0))).toBe(true)
    }
    expect(c.calls.decrypt).toBe(1)
    // a cached DEK never bypasses AAD authentication
    await expectCode(engine.unwrap(I, keyId, w.ciphertext, { aad: ['y'] }), 'UNWRAP_AAD_MISMATCH')
    expect(c.calls.decrypt).toBe(2)
    const sealed = await engine.seal(I, keyId, Buffer.from('hello'), { context: { a: 'b' } })
    for (let i = 0; i < 5; i++)
      expect((await engine.open(I, sealed, { context: { a: 'b' } })).toString()).toBe('hello')
    expect(c.calls.decrypt).toBe(3)
    expect(cache.stats()).toMatchObject({ unwrapHits: 8, unwrapMisses: 3 })
    await engine.close()
  })

  it('messages under a cached data key share its commitment, and a changed commitment fails with MESSAGE_AUTH_FAILED on a cache hit', async () => {
    const { engine, c, keyId } = await setup()
    const ctx = { context: { a: 'b' } }
    const m1 = await engine.seal(I, keyId, Buffer.from('hello'), ctx)
    const m2 = await engine.seal(I, keyId, Buffer.from('world'), ctx)
    expect(c.calls.encrypt).toBe(1) // one data key for both
    const layout = (m: Buffer): { id: Buffer; commitment: Buffer; at: number } => {
      const w = m.readUInt16BE(38)
      const at = 42 + w + m.readUInt16BE(40 + w)
      return { id: m.subarray(2, 34), commitment: m.subarray(at, at + 32), at }
    }
    expect(layout(m1).id.equals(layout(m2).id)).toBe(false) // a data key per message
    expect(layout(m1).commitment.equals(layout(m2).commitment)).toBe(true) // a commitment per DEK
    for (const m of [m1, m2, m1]) expect((await engine.open(I, m, ctx)).length).toBe(5)
    expect(c.calls.decrypt).toBe(1)
    for (const pos of [0, 17, 31]) {
      const bad = Buffer.from(m2)
      const at = layout(bad).at + pos
      bad[at] = (bad[at] as number) ^ 0x40
      await expectCode(engine.open(I, bad, ctx), 'MESSAGE_AUTH_FAILED')
    }
    expect(c.calls.decrypt).toBe(1) // all of them cache hits
    await engine.close()
  })

  it('a cached DEK is refused when its key is disabled or deleted (state is checked on every hit)', async () => {
    const { engine, keyId, clock } = await setup()
    const w = await engine.wrap(I, keyId)
    await engine.unwrap(I, keyId, w.ciphertext)
    await engine.disable(I, keyId)
    await expectCode(engine.unwrap(I, keyId, w.ciphertext), 'KEY_ACTION_INVALID_STATE_ERR')
    clock.advance(30_000)
    await engine.enable(I, keyId)
    await engine.deleteKey(I, keyId)
    await expectCode(engine.unwrap(I, keyId, w.ciphertext), 'KEY_DELETED_ERR')
    await engine.close()
  })

  it('seal and open under a cached data key and DEK check the key state on every hit, and another instance misses', async () => {
    const { engine, c, keyId, clock, cache } = await setup()
    const ctx = { context: { t: '1' } }
    const sealed = await engine.seal(I, keyId, Buffer.from('abc'), ctx)
    expect((await engine.open(I, sealed, ctx)).toString()).toBe('abc')
    expect((await engine.seal(I, keyId, Buffer.from('def'), ctx)).length).toBeGreaterThan(0) // cached data key
    expect((await engine.open(I, sealed, ctx)).toString()).toBe('abc') // cached DEK
    expect(cache.stats()).toMatchObject({ dataKeyHits: 1, unwrapHits: 1 })
    const calls = { encrypt: c.calls.encrypt, decrypt: c.calls.decrypt }
    await expectCode(engine.open('cache-other', sealed, ctx), 'KEY_NOT_FOUND_ERR')
    await engine.disable(I, keyId)
    await expectCode(engine.seal(I, keyId, Buffer.from('x'), ctx), 'KEY_ACTION_INVALID_STATE_ERR')
    await expectCode(engine.open(I, sealed, ctx), 'KEY_ACTION_INVALID_STATE_ERR')
    expect({ encrypt: c.calls.encrypt, decrypt: c.calls.decrypt }).toEqual(calls)
    clock.advance(30_000)
    await engine.enable(I, keyId)
    expect((await engine.open(I, sealed, ctx)).toString()).toBe('abc')
    await engine.close()
  })

  it('concurrent misses for one entry cause one provider call (single-flight)', async () => {
    const { engine, c, keyId } = await setup()
    const sealed = await engine.seal(I, keyId, Buffer.from('x'), { context: { k: 'v' } })
    const w = await engine.wrap(I, keyId)
    c.calls.decrypt = 0
    const opens = await Promise.all(
      Array.from({ length: 100 }, () => engine.open(I, sealed, { context: { k: 'v' } })),
    )
    expect(opens.every((o) => o.toString() === 'x')).toBe(true)
    const unwraps = await Promise.all(
      Array.from({ length: 100 }, () => engine.unwrap(I, keyId, w.ciphertext)),
    )
    expect(unwraps.every((u) => u.plaintext.equals(w.plaintext ?? Buffer.alloc(0)))).toBe(true)
    expect(c.calls.decrypt).toBe(2)
    c.calls.generateRandom = 0
    const seals = await Promise.all(
      Array.from({ length: 100 }, () => engine.seal(I, keyId, Buffer.from('y'), { context: { p: 'q' } })),
    )
    expect(c.calls.generateRandom).toBe(1) // one data key for all 100 messages
    expect(new Set(seals.map((s) => s.subarray(2, 34).toString('hex'))).size).toBe(100) // distinct message ids
    await engine.close()
  })

  it('data keys are reused within maxMessages exactly', async () => {
    const { engine, c, keyId } = await setup({ dataKeys: { maxMessages: 3 } })
    for (let i = 0; i < 7; i++) await engine.seal(I, keyId, Buffer.alloc(10), { context: { m: '1' } })
    expect(c.calls.generateRandom).toBe(3) // 3 + 3 + 1
    await engine.close()
  })

  it('data keys are reused within maxBytes exactly, and a message larger than maxBytes gets its own key', async () => {
    const { engine, c, keyId } = await setup({ dataKeys: { maxBytes: 100 } })
    await engine.seal(I, keyId, Buffer.alloc(40))
    await engine.seal(I, keyId, Buffer.alloc(60)) // 100: still within
    expect(c.calls.generateRandom).toBe(1)
    await engine.seal(I, keyId, Buffer.alloc(1)) // 101: new key
    expect(c.calls.generateRandom).toBe(2)
    await engine.seal(I, keyId, Buffer.alloc(101))
    await engine.seal(I, keyId, Buffer.alloc(1))
    expect(c.calls.generateRandom).toBe(3) // the 101-byte message was not cached; the 1-byte one reused key 2
    await engine.close()
  })

  it('data keys are reused for less than maxAge exactly, and the expired key reads all zeros', async () => {
    const { engine, c, clock, keyId } = await setup({ dataKeys: { maxAgeMs: 1000 } })
    await engine.seal(I, keyId, Buffer.alloc(1))
    const first = c.buffers.at(-1) as Buffer
    clock.advance(999)
    await engine.seal(I, keyId, Buffer.alloc(1))
    expect(c.calls.generateRandom).toBe(1)
    clock.advance(1)
    await engine.seal(I, keyId, Buffer.alloc(1))
    expect(c.calls.generateRandom).toBe(2)
    expect(zeroed(first)).toBe(true)
    await engine.close()
  })

  it('different contexts and key versions never share a data key', async () => {
    const { engine, c, keyId, clock } = await setup()
    await engine.seal(I, keyId, Buffer.alloc(1), { context: { a: '1' } })
    await engine.seal(I, keyId, Buffer.alloc(1), { context: { a: '2' } })
    await engine.seal(I, keyId, Buffer.alloc(1))
    expect(c.calls.generateRandom).toBe(3)
    clock.advance(3_600_000)
    await engine.rotate(I, keyId)
    await engine.seal(I, keyId, Buffer.alloc(1))
    expect(c.calls.generateRandom).toBe(4)
    await engine.close()
  })

  it('evicted, expired, invalidated and closed entries are zeroed', async () => {
    const { engine, c, clock, cache, keyId } = await setup({ unwrap: { maxEntries: 1, ttlMs: 1000 } })
    const w1 = await engine.wrap(I, keyId)
    const w2 = await engine.wrap(I, keyId)
    c.buffers.length = 0
    await engine.unwrap(I, keyId, w1.ciphertext)
    const b1 = c.buffers.at(-1) as Buffer
    expect(zeroed(b1)).toBe(false)
    await engine.unwrap(I, keyId, w2.ciphertext) // evicts w1's DEK
    const b2 = c.buffers.at(-1) as Buffer
    expect(zeroed(b1)).toBe(true)
    clock.advance(1000)
    cache.sweep() // TTL expiry
    expect(zeroed(b2)).toBe(true)
    await engine.unwrap(I, keyId, w2.ciphertext)
    const b3 = c.buffers.at(-1) as Buffer
    await engine.rotate(I, keyId) // invalidation
    expect(zeroed(b3)).toBe(true)
    await engine.seal(I, keyId, Buffer.alloc(1))
    const dataKey = c.buffers.at(-1) as Buffer
    expect(zeroed(dataKey)).toBe(false)
    await engine.close()
    expect(zeroed(dataKey)).toBe(true)
    expect(cache.stats().evictions).toBeGreaterThanOrEqual(4)
  })

  it('the message-key deriver kept with a cached DEK is wiped with it; a late user falls back to a one-off deriver', async () => {
    const clock = new ManualClock()
    const cache = createDekCache({ clock, dataKeys: { maxAgeMs: 1000 } })
    const raw = randomBytes(32)
    const id = randomBytes(32)
    const expected = deriveDataKey(Buffer.from(raw), id) // no memo: one-off deriver
    // data-key entry: the deriver lives while the entry does, and is destroyed when it expires
    const lease = await cache.acquireDataKey(I, 'k', 'p', 1, async () => ({
      dek: SecretBytes.copyOf(raw),
      wrapped: Buffer.alloc(1),
    }))
    const memo = lease.memo as DekMemo
    expect(deriveDataKey(lease.dek.bytes, id, memo).equals(expected)).toBe(true)
    const deriver = memo.deriver as MessageKeyDeriver
    expect(deriver.destroyed).toBe(false)
    lease.release()
    clock.advance(1000)
    cache.sweep()
    expect(lease.dek.zeroized).toBe(true)
    expect(deriver.destroyed).toBe(true)
    expect(deriver.derive(id)).toBeUndefined()
    // a holder of a copy of the DEK and the old memo still derives the same key, without reviving the memo
    expect(deriveDataKey(Buffer.from(raw), id, memo).equals(expected)).toBe(true)
    expect((memo.deriver as MessageKeyDeriver).destroyed).toBe(true)
    // unwrap entry: the same on eviction by close()
    await cache.unwrap(I, 'k', 'ck', 1, async () => SecretBytes.copyOf(raw))
    const m2 = cache.peekWith(I, 'k', 'ck', (dek, _v, m) => {
      expect(deriveDataKey(dek, id, m).equals(expected)).toBe(true)
      return m
    }) as DekMemo
    const d2 = m2.deriver as MessageKeyDeriver
    expect(d2.destroyed).toBe(false)
    cache.close()
    expect(d2.destroyed).toBe(true)
  })

  it('a data key lent to an unfinished stream is zeroed only when the stream ends', async () => {
    const { engine, c, keyId } = await setup()
    const s = engine.sealStream(I, keyId, { plaintextLength: 10 })
    const chunks: Buffer[] = []
    s.on('data', (b: Buffer) => chunks.push(b))
    s.write(Buffer.alloc(5))
    await new Promise((r) => setImmediate(r))
    const dk = c.buffers.at(-1) as Buffer
    engine.close().catch(() => undefined) // closes the cache while the stream holds the key
    expect(zeroed(dk)).toBe(false)
    s.end(Buffer.alloc(5))
    await new Promise((r) => s.on('end', r))
    expect(zeroed(dk)).toBe(true)
    expect(chunks.length).toBeGreaterThan(1)
  })
})
