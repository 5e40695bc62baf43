/**
 * Batch wrap / unwrap / rewrap, inline and on the piscina worker pool, against the real token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine, type EnvelopeEngine } from '../../../src/index.js'
import { createWorkerPool, type WorkerPool } from '../../../src/pool/index.js'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'
import { env, ManualClock, openProvider, SOFTHSM_MODULE, tempCatalogPath } from '../../helpers/engine.js'
import { expectCode } from '../../helpers/expect-code.js'
import { counting } from '../../helpers/counting-provider.js'

const I = 'batch'
const HOUR = 3_600_000

function pool(threads = 2, maxQueue?: number): WorkerPool {
  return createWorkerPool({
    pkcs11: { module: SOFTHSM_MODULE, tokenLabel: env('EKMS_TEST_TOKEN'), pin: env('EKMS_TEST_PIN') },
    threads,
    ...(maxQueue === undefined ? {} : { maxQueue }),
  })
}

async function engineWith(
  p?: WorkerPool,
  usage?: { limit: number; block: number },
): Promise<{ engine: EnvelopeEngine; clock: ManualClock }> {
  const clock = new ManualClock()
  const engine = await createEngine({
    provider: await openProvider(),
    store: await openSqliteStore({ path: tempCatalogPath() }),
    clock,
    ...(p === undefined ? {} : { pool: p }),
    ...(usage === undefined ? {} : { usage }),
  })
  return { engine, clock }
}

for (const mode of ['inline', 'worker pool (2 threads)'] as const) {
  describe(`batches, ${mode}`, () => {
    let engine: EnvelopeEngine
    let clock: ManualClock
    let keyId: string
    beforeAll(async () => {
      ;({ engine, clock } = await engineWith(mode === 'inline' ? undefined : pool()))
      keyId = (await engine.createKey(I, { name: 'batch-key' })).id
    })
    afterAll(async () => {
      await engine.close()
    })

    it('unwrapMany returns every DEK in order, rewraps older versions, and fails bad items alone', async () => {
      const v1 = await engine.wrapMany(I, keyId, 600, { aad: ['b'] })
      clock.advance(HOUR)
      await engine.rotate(I, keyId)
      const v2 = await engine.wrapMany(I, keyId, 400, { aad: ['b'] })
      const all = [...v1, ...v2].map((r) => {
        if (!r.ok) throw r.error
        return r
      })
      const inputs: (string | Uint8Array)[] = all.map((r) => r.ciphertext)
      const tampered = Buffer.from(all[5]?.ciphertext ?? '', 'base64')
      tampered[50] = (tampered[50] as number) ^ 1
      inputs.push(tampered, 'not base64!', Buffer.alloc(3))
      const progress: number[] = []
      const out = await engine.unwrapMany(I, keyId, inputs, {
        aad: ['b'],
        chunkSize: 100,
        onProgress: (d) => progress.push(d),
      })
      expect(out).toHaveLength(1003)
      out.slice(0, 1000).forEach((r, i) => {
        if (!r.ok) throw r.error
        expect(r.plaintext.equals(all[i]?.plaintext ?? Buffer.alloc(0))).toBe(true)
        expect(r.keyVersion.number).toBe(i < 600 ? 1 : 2)
        expect(r.rewrapped === undefined).toBe(i >= 600)
      })
      expect(out.slice(1000).map((r) => (r.ok ? 'ok' : r.error.code))).toEqual([
        'UNWRAP_AAD_MISMATCH',
        'CIPHERTEXT_INVALID',
        'CIPHERTEXT_INVALID',
      ])
      expect(progress.at(-1)).toBe(1003)
      expect([...progress].sort((a, b) => a - b)).toEqual(progress)
      // the rewrapped v1 ciphertexts unwrap at v2
      const again = await engine.unwrapMany(
        I,
        keyId,
        out.slice(0, 10).map((r) => (r.ok ? (r.rewrapped?.ciphertext ?? '') : '')),
        { aad: ['b'] },
      )
      again.forEach((r, i) =>
        expect(r.ok && r.plaintext.equals(all[i]?.plaintext ?? Buffer.alloc(0))).toBe(true),
      )
    })

    it('rewrapMany moves every ciphertext to the latest version', async () => {
      const w = await engine.wrapMany(I, keyId, [Buffer.alloc(32, 1), Buffer.alloc(16, 2), Buffer.alloc(0)])
      expect(w.map((r) => (r.ok ? 'ok' : r.error.code))).toEqual(['ok', 'ok', 'INVALID_FIELD_ERR'])
      clock.advance(HOUR)
      await engine.rotate(I, keyId)
      const cts = w.flatMap((r) => (r.ok ? [r.ciphertext] : []))
      const rw = await engine.rewrapMany(I, keyId, cts)
      const latest = (await engine.getKey(I, keyId)).keyVersion.number
      const moved = rw.map((r) => {
        if (!r.ok) throw r.error
        expect(r.rewrappedKeyVersion.number).toBe(latest)
        return r.ciphertext
      })
      const u = await engine.unwrapMany(I, keyId, moved)
      expect(u.map((r) => r.ok && r.plaintext.toString('hex'))).toEqual([
        Buffer.alloc(32, 1).toString('hex'),
        Buffer.alloc(16, 2).toString('hex'),
      ])
    })

    it('the results of one batch share one frozen KeyVersionInfo per version, equal to getKey', async () => {
      const w = await engine.wrapMany(I, keyId, 300)
      const infos = new Set(w.map((r) => (r.ok ? r.keyVersion : undefined)))
      expect(infos.size).toBe(1)
      const [info] = [...infos]
      expect(Object.isFrozen(info)).toBe(true)
      const current = (await engine.getKey(I, keyId)).keyVersion
      expect(info?.number).toBe(current.number)
      expect(info?.id).toBe(current.id)
      const rw = await engine.rewrapMany(
        I,
        keyId,
        w.flatMap((r) => (r.ok ? [r.ciphertext] : [])),
      )
      expect(new Set(rw.map((r) => (r.ok ? r.rewrappedKeyVersion : undefined))).size).toBe(1)
    })

    it('an aborted batch fails with ABORTED; a disabled key refuses the whole batch', async () => {
      const ac = new AbortController()
      ac.abort()
      await expectCode(engine.wrapMany(I, keyId, 10, { signal: ac.signal }), 'ABORTED')
      const k2 = (await engine.createKey(I, { name: 'disabled-batch' })).id
      await engine.disable(I, k2)
      await expectCode(engine.wrapMany(I, k2, 3), 'KEY_ACTION_INVALID_STATE_ERR')
    })
  })
}

describe('DEK memory of inline batches', () => {
  it('unwrapped DEKs are disjoint views of shared slabs; rewrap leaves every DEK it decrypted zeroed', async () => {
    const c = counting(await openProvider())
    const engine = await createEngine({
      provider: c.provider,
      store: await openSqliteStore({ path: tempCatalogPath() }),
      lifecycle: { minRotationIntervalMs: 0 },
    })
    const keyId = (await engine.createKey(I, { name: 'slab-key' })).id
    const wrapped = await engine.wrapMany(I, keyId, 700)
    const generated = wrapped.map((r) => {
      if (!r.ok) throw r.error
      if (r.plaintext === undefined) throw new Error('a generated DEK is returned')
      return { ciphertext: r.ciphertext, plaintext: r.plaintext }
    })
    // generated DEKs come from slabs too (no buffer per DEK) and are the caller's to keep
    expect(new Set(generated.map((r) => r.plaintext.buffer)).size).toBeLessThan(10)
    const cts = generated.map((r) => r.ciphertext)
    const out = await engine.unwrapMany(I, keyId, cts)
    const deks = out.map((r, i) => {
      if (!r.ok) throw r.error
      expect(r.plaintext.equals(generated[i]?.plaintext ?? Buffer.alloc(0))).toBe(true)
      return r.plaintext
    })
    // 700 DEKs in a handful of 16 KiB slabs (off V8's heap), no two overlapping
    const slabs = new Set(deks.map((d) => d.buffer))
    expect(slabs.size).toBeLessThan(10)
    for (const b of slabs) expect(b.byteLength).toBeGreaterThanOrEqual(16 * 1024)
    const bySlab = new Map<ArrayBufferLike, [number, number][]>()
    for (const d of deks) {
      const list = bySlab.get(d.buffer) ?? []
      list.push([d.byteOffset, d.byteOffset + d.length])
      bySlab.set(d.buffer, list)
    }
    for (const list of bySlab.values()) {
      list.sort((x, y) => x[0] - y[0])
      for (let i = 1; i < list.length; i++) {
        expect((list[i] as [number, number])[0]).toBeGreaterThanOrEqual((list[i - 1] as [number, number])[1])
      }
    }
    // rewrap decrypts into one scratch region per chunk and zeroes it after each item
    await engine.rotate(I, keyId)
    const seen = c.buffers.length
    const rw = await engine.rewrapMany(I, keyId, cts)
    expect(rw.every((r) => r.ok)).toBe(true)
    const decrypted = c.buffers.slice(seen)
    expect(decrypted).toHaveLength(700)
    expect(new Set(decrypted.map((d) => d.buffer)).size).toBeLessThan(10)
    for (const d of decrypted) expect(d.every((x) => x === 0)).toBe(true)
    await engine.close()
  })
})

describe('worker pool', () => {
  it('survives a killed worker: the task is retried on a replacement and every item succeeds', async () => {
    const p = pool(2)
    const { engine } = await engineWith(p)
    const keyId = (await engine.createKey(I, { name: 'kill' })).id
    const wrapped = await engine.wrapMany(I, keyId, 2000, { chunkSize: 50 })
    const cts = wrapped.map((r) => (r.ok ? r.ciphertext : ''))
    const running = engine.unwrapMany(I, keyId, cts, { chunkSize: 50 })
    await new Promise((r) => setTimeout(r, 5))
    await p.workers[0]?.terminate()
    const out = await running
    expect(out.every((r) => r.ok)).toBe(true)
    // and it keeps serving
    expect((await engine.wrapMany(I, keyId, 10)).every((r) => r.ok)).toBe(true)
    await engine.close()
  })

  it('refuses work beyond its bounded queue with POOL_SATURATED', async () => {
    const p = pool(1, 0)
    const { engine } = await engineWith(p)
    const header = Buffer.alloc(22)
    const task = {
      op: 'wrap' as const,
      instance: I,
      aad: [],
      versions: [],
      latest: { number: 1, ref: '0'.repeat(32), header },
      items: Array.from({ length: 500 }, () => new Uint8Array(0)),
    }
    const first = p.run(task)
    await expectCode(p.run(task), 'POOL_SATURATED')
    await first
    await engine.close()
    await expectCode(p.run(task), 'ENGINE_CLOSED')
  })

  it('close() terminates the workers and leaves no open handles behind', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout').length
    const p = pool(2)
    const { engine } = await engineWith(p)
    const keyId = (await engine.createKey(I, { name: 'handles' })).id
    expect((await engine.wrapMany(I, keyId, 100)).every((r) => r.ok)).toBe(true)
    await engine.close()
    await new Promise((r) => setTimeout(r, 50))
    const after = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout').length
    expect(after).toBeLessThanOrEqual(before)
  })

  it('usage limits apply to batches: items past the limit fail with KEY_USAGE_LIMIT_ERR', async () => {
    const { engine } = await engineWith(pool(2), { limit: 100, block: 30 })
    const keyId = (await engine.createKey(I, { name: 'limited-batch' })).id
    const out = await engine.wrapMany(I, keyId, 150, { chunkSize: 25 })
    expect(out.filter((r) => r.ok)).toHaveLength(100)
    expect(out.filter((r) => !r.ok).every((r) => !r.ok && r.error.code === 'KEY_USAGE_LIMIT_ERR')).toBe(true)
    await engine.close()
  })

  it('pools start and stop repeatedly next to engines without racing the library initialisation', async () => {
    // The pool initialises PKCS#11 on the main thread before its workers start, and keeps it until they are
    // gone: workers never race C_Initialize, and C_Finalize never runs under them.
    for (let i = 0; i < 6; i++) {
      const p = pool(2)
      const { engine } = await engineWith(p)
      const keyId = (await engine.createKey(I, { name: `cycle-${i}` })).id
      const w = await engine.wrapMany(I, keyId, 64, { chunkSize: 8 })
      const u = await engine.unwrapMany(
        I,
        keyId,
        w.map((r) => (r.ok ? r.ciphertext : '')),
        { chunkSize: 8 },
      )
      expect(u.every((r) => r.ok)).toBe(true)
      if (i % 2 === 0) await p.workers[1]?.terminate() // a worker dying right before shutdown
      await engine.close()
    }
  })
})
