/**
 * Envelope encryption of data (message format v1) on the real token: roundtrips at frame boundaries,
 * tampering of every kind, wrong context, bounds, and streams.
 */
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { expectCode } from '../../helpers/expect-code.js'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'

const I = 'seal'
const FRAME = 1024
let t: TestEngine
let keyId: string
beforeAll(async () => {
  t = await openTestEngine()
  keyId = (await t.engine.createKey(I, { name: 'sealer' })).id
})
afterAll(async () => {
  await t.engine.close()
})

const data = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff))
const ctx = { tenant: 't-42', table: 'orders' }

/** Frame boundaries of a message: [start, end) of each frame's 9-byte header + body + tag. */
function frames(msg: Buffer): { start: number; end: number }[] {
  const w = msg.readUInt16BE(38)
  const c = msg.readUInt16BE(40 + w)
  let o = 40 + w + 2 + c + 32
  const out = []
  while (o < msg.length) {
    const len = msg.readUInt32BE(o + 5)
    out.push({ start: o, end: o + 9 + len + 16 })
    o += 9 + len + 16
  }
  return out
}

describe('seal and open', () => {
  for (const n of [0, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME, 10 * 1024 * 1024]) {
    it(`round-trips ${n} bytes`, async () => {
      const d = data(n)
      const sealed = await t.engine.seal(I, keyId, d, { context: ctx, frameSize: FRAME })
      const opened = await t.engine.open(I, sealed, { context: ctx })
      expect(opened.equals(d)).toBe(true)
      if (n < 10 * FRAME) expect(frames(sealed)).toHaveLength(Math.max(1, Math.ceil(n / FRAME)))
    })
  }

  it('open fails with CONTEXT_MISMATCH for another, a partial or no context, before any HSM call', async () => {
    const sealed = await t.engine.seal(I, keyId, data(100), { context: ctx })
    await expectCode(t.engine.open(I, sealed, { context: { ...ctx, table: 'users' } }), 'CONTEXT_MISMATCH')
    await expectCode(t.engine.open(I, sealed, { context: { tenant: 't-42' } }), 'CONTEXT_MISMATCH')
    await expectCode(t.engine.open(I, sealed), 'CONTEXT_MISMATCH')
    // key order does not matter
    expect((await t.engine.open(I, sealed, { context: { table: 'orders', tenant: 't-42' } })).length).toBe(
      100,
    )
  })

  it('every bit flip of a small sealed message fails with a typed error', async () => {
    const sealed = await t.engine.seal(I, keyId, data(40), { context: { a: 'b' }, frameSize: 16 })
    const codes = new Set<string>()
    for (let i = 0; i < sealed.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const m = Buffer.from(sealed)
        m[i] = (m[i] as number) ^ (1 << bit)
        const e = await expectCode(
          t.engine.open(I, m, { context: { a: 'b' } }),
          'MESSAGE_INVALID',
          'MESSAGE_AUTH_FAILED',
          'MESSAGE_TOO_LARGE',
          'CONTEXT_MISMATCH',
          'UNWRAP_AAD_MISMATCH',
          'CIPHERTEXT_INVALID',
          'KEY_VERSION_NOT_FOUND',
          'KEY_NOT_FOUND_ERR',
        )
        codes.add(e.code)
      }
    }
    expect(codes.has('MESSAGE_AUTH_FAILED')).toBe(true)
    expect(codes.has('MESSAGE_INVALID')).toBe(true)
  })

  it('every truncation fails with MESSAGE_INVALID; trailing bytes too', async () => {
    const sealed = await t.engine.seal(I, keyId, data(40), { frameSize: 16 })
    for (let n = 0; n < sealed.length; n++) {
      await expectCode(t.engine.open(I, sealed.subarray(0, n)), 'MESSAGE_INVALID')
    }
    await expectCode(t.engine.open(I, Buffer.concat([sealed, Buffer.from([0])])), 'MESSAGE_INVALID')
  })

  it('reordered, duplicated and dropped frames fail with MESSAGE_INVALID', async () => {
    const sealed = await t.engine.seal(I, keyId, data(64), { frameSize: 16 })
    const f = frames(sealed)
    expect(f).toHaveLength(4)
    const head = sealed.subarray(0, f[0]?.start)
    const part = (i: number): Buffer => sealed.subarray(f[i]?.start, f[i]?.end)
    const variants = [
      [0, 2, 1, 3], // reordered
      [0, 1, 1, 2, 3], // duplicated
      [0, 2, 3], // dropped
      [0, 1, 2], // final dropped
      [0, 1, 2, 3, 3], // final duplicated
    ]
    for (const order of variants) {
      await expectCode(t.engine.open(I, Buffer.concat([head, ...order.map(part)])), 'MESSAGE_INVALID')
    }
    // a frame moved from another message (same key, same layout) does not authenticate
    const other = await t.engine.seal(I, keyId, data(64), { frameSize: 16 })
    const g = frames(other)
    const mixed = Buffer.concat([head, part(0), other.subarray(g[1]?.start, g[1]?.end), part(2), part(3)])
    await expectCode(t.engine.open(I, mixed), 'MESSAGE_AUTH_FAILED')
  })

  it('a header swapped between messages fails authentication (key commitment / header tag)', async () => {
    const a = await t.engine.seal(I, keyId, data(32), { frameSize: 16 })
    const b = await t.engine.seal(I, keyId, data(32), { frameSize: 16 })
    const fa = frames(a)
    const fb = frames(b)
    await expectCode(
      t.engine.open(I, Buffer.concat([a.subarray(0, fa[0]?.start), b.subarray(fb[0]?.start)])),
      'MESSAGE_AUTH_FAILED',
    )
  })

  it('refuses over-large headers, frames and bodies with MESSAGE_TOO_LARGE', async () => {
    const sealed = await t.engine.seal(I, keyId, data(5000), {
      frameSize: 4096,
      context: { big: 'x'.repeat(2000) },
    })
    const c = { big: 'x'.repeat(2000) }
    await expectCode(t.engine.open(I, sealed, { context: c, maxHeaderBytes: 1000 }), 'MESSAGE_TOO_LARGE')
    await expectCode(t.engine.open(I, sealed, { context: c, maxFrameSize: 1024 }), 'MESSAGE_TOO_LARGE')
    await expectCode(t.engine.open(I, sealed, { context: c, maxBodySize: 4999 }), 'MESSAGE_TOO_LARGE')
    expect((await t.engine.open(I, sealed, { context: c, maxBodySize: 5000 })).length).toBe(5000)
  })

  it('another instance cannot open the message', async () => {
    const sealed = await t.engine.seal(I, keyId, data(10))
    await expectCode(t.engine.open('other-instance', sealed), 'KEY_NOT_FOUND_ERR')
  })

  it('a message sealed before a rotation opens after it; a disabled key refuses both', async () => {
    const k = (await t.engine.createKey(I, { name: 'rotating-sealer' })).id
    const sealed = await t.engine.seal(I, k, data(100))
    await t.engine.rotate(I, k)
    expect((await t.engine.open(I, sealed)).equals(data(100))).toBe(true)
    await t.engine.disable(I, k)
    await expectCode(t.engine.open(I, sealed), 'KEY_ACTION_INVALID_STATE_ERR')
    await expectCode(t.engine.seal(I, k, data(1)), 'KEY_ACTION_INVALID_STATE_ERR')
  })

  it('validates inputs with typed errors', async () => {
    await expectCode(t.engine.seal(I, keyId, 'text' as unknown as Buffer), 'INVALID_FIELD_ERR')
    await expectCode(
      t.engine.seal(I, keyId, data(1), { context: { a: 1 as unknown as string } }),
      'INVALID_FIELD_ERR',
    )
    await expectCode(t.engine.seal(I, keyId, data(1), { frameSize: 0 }), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.open(I, 'text' as unknown as Buffer), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.open(I, Buffer.alloc(0)), 'MESSAGE_INVALID')
  })
})

describe('streams', () => {
  async function sealStream(d: Buffer, chunk: number, frameSize = FRAME): Promise<Buffer> {
    const out: Buffer[] = []
    const chunks = Array.from({ length: Math.ceil(d.length / chunk) }, (_, i) =>
      d.subarray(i * chunk, (i + 1) * chunk),
    )
    await pipeline(
      Readable.from(chunks),
      t.engine.sealStream(I, keyId, { context: ctx, frameSize }),
      new Writable({
        write(c: Buffer, _e, cb) {
          out.push(c)
          cb()
        },
      }),
    )
    return Buffer.concat(out)
  }
  async function openStream(
    m: Buffer,
    chunk: number,
    context: Record<string, string> = ctx,
  ): Promise<Buffer> {
    const out: Buffer[] = []
    const chunks = Array.from({ length: Math.ceil(m.length / chunk) }, (_, i) =>
      m.subarray(i * chunk, (i + 1) * chunk),
    )
    await pipeline(
      Readable.from(chunks),
      t.engine.openStream(I, { context }),
      new Writable({
        write(c: Buffer, _e, cb) {
          out.push(c)
          cb()
        },
      }),
    )
    return Buffer.concat(out)
  }

  it('stream-sealed messages open one-shot and one-shot-sealed ones open as streams, for odd chunk sizes', async () => {
    for (const [n, chunk] of [
      [0, 7],
      [1, 1],
      [FRAME, 333],
      [5 * FRAME + 17, 4096],
      [3 * FRAME, FRAME],
    ] as const) {
      const d = data(n)
      const s = await sealStream(d, chunk)
      expect((await t.engine.open(I, s, { context: ctx })).equals(d)).toBe(true)
      const one = await t.engine.seal(I, keyId, d, { context: ctx, frameSize: FRAME })
      expect((await openStream(one, chunk)).equals(d)).toBe(true)
      expect((await openStream(s, 13)).equals(d)).toBe(true)
    }
  })

  it('a truncated stream fails and emits nothing of the unauthenticated frame', async () => {
    const d = data(3 * FRAME)
    const s = await t.engine.seal(I, keyId, d, { context: ctx, frameSize: FRAME })
    const f = frames(s)
    const out: Buffer[] = []
    const cut = s.subarray(0, (f[1]?.end ?? 0) - 1) // frame 2 lacks its last tag byte
    await expect(
      pipeline(
        Readable.from([cut]),
        t.engine.openStream(I, { context: ctx }),
        new Writable({
          write(c: Buffer, _e, cb) {
            out.push(c)
            cb()
          },
        }),
      ),
    ).rejects.toMatchObject({ code: 'MESSAGE_INVALID' })
    expect(Buffer.concat(out).equals(d.subarray(0, FRAME))).toBe(true)
    const tampered = Buffer.from(s)
    const last = f[2]?.end ?? 0
    tampered[last - 20] = (tampered[last - 20] as number) ^ 1
    await expect(openStream(tampered, 100)).rejects.toMatchObject({ code: 'MESSAGE_AUTH_FAILED' })
    await expect(openStream(s, 100, { tenant: 'other' })).rejects.toMatchObject({ code: 'CONTEXT_MISMATCH' })
  })
})

describe('large streams', () => {
  it('a 1 GiB stream generated on the fly seals and opens with RSS growth under 100 MiB', async () => {
    const { createHash } = await import('node:crypto')
    const TOTAL = 1024 * 1024 * 1024
    const CHUNK = 1024 * 1024
    const block = data(CHUNK)
    const inHash = createHash('sha256')
    const outHash = createHash('sha256')
    let produced = 0
    let received = 0
    let peakRss = 0
    const rss0 = process.memoryUsage().rss
    const source = new Readable({
      read() {
        if (produced >= TOTAL) return void this.push(null)
        // vary the content per chunk so that misordering would show
        const c = Buffer.from(block)
        c.writeUInt32BE(produced / CHUNK, 0)
        inHash.update(c)
        produced += CHUNK
        this.push(c)
      },
    })
    await pipeline(
      source,
      t.engine.sealStream(I, keyId, { context: ctx }),
      t.engine.openStream(I, { context: ctx }),
      new Writable({
        write(c: Buffer, _e, cb) {
          outHash.update(c)
          received += c.length
          if ((received & (64 * CHUNK - 1)) === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss)
          cb()
        },
      }),
    )
    peakRss = Math.max(peakRss, process.memoryUsage().rss)
    expect(received).toBe(TOTAL)
    expect(outHash.digest('hex')).toBe(inHash.digest('hex'))
    expect(peakRss - rss0).toBeLessThan(100 * 1024 * 1024)
  }, 120_000)
})
