import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  decodeContext,
  encodeContext,
  MessageDecryptor,
  MessageEncryptor,
} from '../../../src/core/format/message.js'
import { EngineError, SecretBytes } from '../../../src/index.js'
import { expectCodeSync } from '../../helpers/expect-code.js'

const limits = {
  maxHeaderBytes: 64 * 1024,
  maxFrameSize: 16 * 1024 * 1024,
  maxBodySize: Number.POSITIVE_INFINITY,
}

describe('encryption context encoding', () => {
  it('is canonical (order-independent) and round-trips', () => {
    const a = encodeContext({ b: '2', a: '1', ä: 'x' })
    const b = encodeContext({ ä: 'x', a: '1', b: '2' })
    expect(a.bytes.equals(b.bytes)).toBe(true)
    expect(a.aad).toEqual(['envelope-kms/message/v1', 'a', '1', 'b', '2', 'ä', 'x'])
    expect(decodeContext(a.bytes)).toEqual({ a: '1', b: '2', ä: 'x' })
    expect(encodeContext(undefined).bytes.equals(encodeContext({}).bytes)).toBe(true)
  })

  it('refuses bad contexts with INVALID_FIELD_ERR and non-canonical bytes with MESSAGE_INVALID', () => {
    for (const bad of [
      null,
      'x',
      [],
      { a: 1 },
      { '': 'empty key' },
      Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])),
    ]) {
      expectCodeSync(() => encodeContext(bad), 'INVALID_FIELD_ERR')
    }
    const unsorted = Buffer.from([0, 2, 0, 1, 0x62, 0, 0, 0, 1, 0x61, 0, 0])
    expectCodeSync(() => decodeContext(unsorted), 'MESSAGE_INVALID')
    expectCodeSync(() => decodeContext(Buffer.from([0, 1, 0, 5, 0x61])), 'MESSAGE_INVALID')
  })

  it('re-encodes a context object that changed since it was last encoded (the same-object fast path)', () => {
    const ctx: Record<string, unknown> = { tenant: 't-1', table: 'orders' }
    const first = encodeContext(ctx)
    expect(encodeContext(ctx)).toBe(first)
    ctx['tenant'] = 't-2'
    const changed = encodeContext(ctx)
    expect(changed.aad).toEqual(['envelope-kms/message/v1', 'table', 'orders', 'tenant', 't-2'])
    ctx['extra'] = 'x'
    expect(encodeContext(ctx).aad).toContain('extra')
    delete ctx['extra']
    delete ctx['table']
    ctx['zone'] = 'orders' // same number of keys and the same value, another key
    expect(encodeContext(ctx).aad).toEqual(['envelope-kms/message/v1', 'tenant', 't-2', 'zone', 'orders'])
    ctx['zone'] = 7
    expectCodeSync(() => encodeContext(ctx), 'INVALID_FIELD_ERR')
    ctx['zone'] = 'orders'
    expect(encodeContext(ctx).aad).toEqual(['envelope-kms/message/v1', 'tenant', 't-2', 'zone', 'orders'])
  })
})

describe('message decryptor', () => {
  it('fuzz: arbitrary bytes yield no header, or fail with an EngineError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const d = new MessageDecryptor(limits)
        try {
          d.push(Buffer.from(bytes), [])
          d.readHeader()
          d.end()
        } catch (err) {
          expect(err).toBeInstanceOf(EngineError)
        }
      }),
      { numRuns: 20_000 },
    )
  })

  it('useDek checks the key commitment before any frame, also with a memoized commitment, and refuses another DEK', () => {
    const dek = SecretBytes.copyOf(Buffer.alloc(32, 5))
    const memo = {}
    const seal = (): Buffer => {
      const enc = new MessageEncryptor({ dek, wrapped: Buffer.alloc(86, 1), memo }, encodeContext({}).bytes)
      const out: Buffer[] = [enc.header]
      enc.push(Buffer.from('abc'), out)
      enc.finish(out)
      return Buffer.concat(out)
    }
    const msg = seal()
    expect(memo).toHaveProperty('commitment') // filled by the first seal, reused by the next
    const at = commitmentAt(msg)
    const header = (m: Buffer): MessageDecryptor => {
      const d = new MessageDecryptor(limits)
      d.push(m, [])
      expect(d.readHeader()).toBeDefined()
      return d
    }
    for (const m of [msg, seal()]) {
      const d = header(m)
      d.useDek(dek.bytes, memo)
      const got: Buffer[] = []
      d.push(Buffer.alloc(0), got)
      expect(Buffer.concat(got).toString()).toBe('abc')
    }
    const bad = Buffer.from(msg)
    bad[at + 3] = (bad[at + 3] as number) ^ 1
    // refused at useDek, with the memo and without: the frame's tag is never reached
    expectCodeSync(() => header(bad).useDek(dek.bytes, memo), 'MESSAGE_AUTH_FAILED')
    expectCodeSync(() => header(bad).useDek(dek.bytes), 'MESSAGE_AUTH_FAILED')
    const other = Buffer.alloc(32, 6)
    expectCodeSync(() => header(msg).useDek(other, {}), 'MESSAGE_AUTH_FAILED')
  })

  it('refuses an unknown format version or algorithm (0x01: the pre-release HKDF-per-message algorithm) with MESSAGE_INVALID', () => {
    const dek = SecretBytes.copyOf(Buffer.alloc(32, 5))
    const msg = new MessageEncryptor({ dek, wrapped: Buffer.alloc(86, 1) }, encodeContext({}).bytes).sealAll(
      Buffer.from('abc'),
    )
    expect(msg[0]).toBe(1)
    expect(msg[1]).toBe(2)
    for (const [at, value, text] of [
      [1, 1, 'algorithm 1 is not supported'],
      [1, 3, 'algorithm 3 is not supported'],
      [0, 2, 'format version 2 is not supported'],
    ] as const) {
      const bad = Buffer.from(msg)
      bad[at] = value
      const d = new MessageDecryptor(limits)
      d.push(bad, [])
      expectCodeSync(() => d.readHeader(), 'MESSAGE_INVALID')
      expect(() => d.readHeader()).toThrow(text)
    }
  })

  it('sealAll gives the same bytes as push + finish, for one frame and for several', () => {
    const dek = SecretBytes.copyOf(Buffer.alloc(32, 3))
    const id = Buffer.alloc(32, 4)
    const ctx = encodeContext({ k: 'v' }).bytes
    for (const n of [0, 1, 15, 16, 17, 40]) {
      const plain = Buffer.alloc(n, 0x5a)
      const a = new MessageEncryptor({ dek, wrapped: Buffer.alloc(86, 1) }, ctx, 16, id)
      const out: Buffer[] = [a.header]
      a.push(plain, out)
      a.finish(out)
      const b = new MessageEncryptor({ dek, wrapped: Buffer.alloc(86, 1) }, ctx, 16, id)
      expect(b.sealAll(plain).equals(Buffer.concat(out)), `${n} bytes`).toBe(true)
      expectCodeSync(() => b.sealAll(plain), 'INTERNAL_ERROR')
    }
  })

  it('fuzz: mutations of a real message fail typed, or leave the plaintext unchanged', () => {
    const dek = SecretBytes.copyOf(Buffer.alloc(32, 5))
    const enc = new MessageEncryptor(
      { dek, wrapped: Buffer.alloc(86, 1) },
      encodeContext({ a: 'b' }).bytes,
      16,
    )
    const out: Buffer[] = [enc.header]
    const plain = Buffer.from('0123456789abcdef0123456789abcdef0123')
    enc.push(plain, out)
    enc.finish(out)
    const msg = Buffer.concat(out)
    fc.assert(
      fc.property(fc.nat(msg.length - 1), fc.integer({ min: 1, max: 255 }), (pos, x) => {
        const m = Buffer.from(msg)
        m[pos] = (m[pos] as number) ^ x
        const d = new MessageDecryptor(limits)
        const got: Buffer[] = []
        try {
          d.push(m, got)
          if (d.readHeader() === undefined) d.end() // a length field grew: the header is now "truncated"
          d.useDek(dek.bytes)
          d.push(Buffer.alloc(0), got)
          d.end()
          expect(Buffer.concat(got).equals(plain)).toBe(true) // a flip that still authenticates cannot exist
        } catch (err) {
          expect(err).toBeInstanceOf(EngineError)
        }
      }),
      { numRuns: 5_000 },
    )
  })
})

/** Offset of the commitment in a message (see docs/message-format.md). */
function commitmentAt(m: Buffer): number {
  const w = m.readUInt16BE(38)
  return 42 + w + m.readUInt16BE(40 + w)
}
