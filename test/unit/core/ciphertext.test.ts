import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  buildHsmAad,
  encodeGcmCiphertext,
  encodeOpaqueCiphertext,
  encodeHeader,
  Mechanism,
  MAX_CIPHERTEXT_BYTES,
  MAX_OPAQUE_BLOB_BYTES,
  parseCiphertext,
  validateAad,
} from '../../../src/core/format/ciphertext.js'
import { EngineError } from '../../../src/index.js'
import { expectCodeSync } from '../../helpers/expect-code.js'

const KEY = '3f1d7a52-9c4e-4b8a-a1f0-6e2d5c9b8a71'
const sample = (dekLen = 32): Buffer =>
  encodeGcmCiphertext(
    encodeHeader(Mechanism.AES_GCM, KEY, 3),
    Buffer.alloc(12, 1),
    Buffer.alloc(dekLen, 2),
    Buffer.alloc(16, 3),
  )

describe('ciphertext v1 parser', () => {
  it('round-trips the documented layout: 86 bytes for a 32-byte DEK', () => {
    const b = sample()
    expect(b).toHaveLength(86)
    const p = parseCiphertext(b)
    expect(p).toMatchObject({ formatVersion: 1, mechanism: 1, keyId: KEY, keyVersion: 3 })
    expect(p.iv.equals(Buffer.alloc(12, 1))).toBe(true)
    expect(p.encrypted.equals(Buffer.alloc(32, 2))).toBe(true)
    expect(p.tag.equals(Buffer.alloc(16, 3))).toBe(true)
    expect(parseCiphertext(b.toString('base64'))).toEqual(p)
  })

  it('rejects an unknown format version or mechanism with CIPHERTEXT_INVALID', () => {
    for (const [i, v] of [
      [0, 0],
      [0, 2],
      [0, 0xff],
      [1, 0],
      [1, 2],
      [1, 0x11],
    ] as const) {
      const b = sample()
      b[i] = v
      expectCodeSync(() => parseCiphertext(b), 'CIPHERTEXT_INVALID')
    }
  })

  it('mechanism 0x10 (provider-opaque blob): encodes and parses; every truncation, trailing bytes and out-of-range lengths are CIPHERTEXT_INVALID', () => {
    const header = encodeHeader(Mechanism.OPAQUE, KEY, 2)
    const blob = Buffer.alloc(184, 7)
    const b = encodeOpaqueCiphertext(header, 32, blob)
    expect(b).toHaveLength(22 + 4 + 184)
    const p = parseCiphertext(b)
    expect(p).toMatchObject({ formatVersion: 1, mechanism: 0x10, keyId: KEY, keyVersion: 2, dekLength: 32 })
    expect(p.encrypted.equals(blob)).toBe(true)
    expect(p.iv).toHaveLength(0)
    expect(p.tag).toHaveLength(0)
    expect(parseCiphertext(b.toString('base64')).encrypted.equals(blob)).toBe(true)
    for (let n = 0; n < b.length; n++)
      expectCodeSync(() => parseCiphertext(b.subarray(0, n)), 'CIPHERTEXT_INVALID')
    expectCodeSync(() => parseCiphertext(Buffer.concat([b, Buffer.from([0])])), 'CIPHERTEXT_INVALID')
    for (const [dek, len] of [
      [0, 184],
      [4097, 184],
      [32, 0],
    ] as const) {
      const bad = Buffer.from(b)
      bad.writeUInt16BE(dek, 22)
      bad.writeUInt16BE(len, 24)
      expectCodeSync(() => parseCiphertext(bad), 'CIPHERTEXT_INVALID')
    }
    const big = encodeOpaqueCiphertext(header, 32, Buffer.alloc(MAX_OPAQUE_BLOB_BYTES, 1))
    expect(parseCiphertext(big).encrypted).toHaveLength(MAX_OPAQUE_BLOB_BYTES)
    expectCodeSync(
      () => encodeOpaqueCiphertext(header, 32, Buffer.alloc(MAX_OPAQUE_BLOB_BYTES + 1)),
      'PROVIDER_ERROR',
    )
  })

  it('rejects key version 0, wrong IV or tag lengths, DEK lengths 0 and over 4096', () => {
    const zero = sample()
    zero.writeUInt32BE(0, 18)
    expectCodeSync(() => parseCiphertext(zero), 'CIPHERTEXT_INVALID')
    const iv = sample()
    iv[22] = 16
    expectCodeSync(() => parseCiphertext(iv), 'CIPHERTEXT_INVALID')
    const tag = sample()
    tag[35] = 12
    expectCodeSync(() => parseCiphertext(tag), 'CIPHERTEXT_INVALID')
    const len0 = sample()
    len0.writeUInt16BE(0, 36)
    expectCodeSync(() => parseCiphertext(len0), 'CIPHERTEXT_INVALID')
    const big = Buffer.alloc(MAX_CIPHERTEXT_BYTES + 1)
    big[0] = 1
    big[1] = 1
    expectCodeSync(() => parseCiphertext(big), 'CIPHERTEXT_INVALID')
  })

  it('every truncation and any trailing byte fail with CIPHERTEXT_INVALID', () => {
    const b = sample()
    for (let n = 0; n < b.length; n++)
      expectCodeSync(() => parseCiphertext(b.subarray(0, n)), 'CIPHERTEXT_INVALID')
    expectCodeSync(() => parseCiphertext(Buffer.concat([b, Buffer.alloc(1)])), 'CIPHERTEXT_INVALID')
  })

  it('rejects non-base64 strings, whitespace and missing padding', () => {
    const s = sample().toString('base64')
    for (const bad of [
      '',
      ' ',
      `${s} `,
      `${s}\n`,
      s.slice(0, -1),
      s.replace(/=+$/, ''),
      `${s.slice(0, 10)}*${s.slice(11)}`,
    ]) {
      expectCodeSync(() => parseCiphertext(bad), 'CIPHERTEXT_INVALID')
    }
    expectCodeSync(() => parseCiphertext(42 as unknown as string), 'CIPHERTEXT_INVALID')
  })

  it('fuzz: arbitrary bytes and strings either parse or fail with an EngineError, never anything else', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.string({ maxLength: 300 }),
          fc.base64String({ maxLength: 300 }),
        ),
        (input) => {
          try {
            const p = parseCiphertext(input)
            expect(p.formatVersion).toBe(1)
          } catch (err) {
            expect(err).toBeInstanceOf(EngineError)
            expect((err as EngineError).code).toBe('CIPHERTEXT_INVALID')
          }
        },
      ),
      { numRuns: 20_000 },
    )
  })

  it('fuzz: mutations of a valid ciphertext parse to the same layout or fail typed', () => {
    const base = sample(48)
    fc.assert(
      fc.property(
        fc.nat(base.length - 1),
        fc.integer({ min: 0, max: 255 }),
        fc.nat(base.length),
        (pos, byte, cut) => {
          const m = Buffer.from(base)
          m[pos] = byte
          for (const input of [m, m.subarray(0, cut)]) {
            try {
              const p = parseCiphertext(input)
              expect(p.encrypted.length + p.iv.length + p.tag.length + 22 + 4).toBe(input.length)
              expect(p.header.equals(input.subarray(0, 22))).toBe(true)
            } catch (err) {
              expect((err as EngineError).code).toBe('CIPHERTEXT_INVALID')
            }
          }
        },
      ),
      { numRuns: 20_000 },
    )
  })
})

describe('HSM AAD encoding', () => {
  it('is injective: distinct (instance, aad) never encode alike', () => {
    const h = encodeHeader(Mechanism.AES_GCM, KEY, 1)
    const seen = new Map<string, string>()
    const inputs: [string, string[]][] = [
      ['a', []],
      ['a', ['']],
      ['a', ['', '']],
      ['ab', []],
      ['a', ['b']],
      ['a', ['bc']],
      ['a', ['b', 'c']],
      ['ab', ['c']],
    ]
    for (const [inst, aad] of inputs) {
      const k = buildHsmAad(h, 32, inst, aad).toString('hex')
      expect(seen.has(k), `${inst} ${JSON.stringify(aad)} collides with ${seen.get(k)}`).toBe(false)
      seen.set(k, `${inst} ${JSON.stringify(aad)}`)
    }
    expect(buildHsmAad(h, 32, 'a', []).equals(buildHsmAad(h, 31, 'a', []))).toBe(false)
  })

  it('validates caller AAD: strings only, at most 126 items and 16 KiB', () => {
    expect(validateAad(undefined)).toEqual([])
    expect(validateAad(['x', ''])).toEqual(['x', ''])
    expectCodeSync(() => validateAad('x'), 'INVALID_FIELD_ERR')
    expectCodeSync(() => validateAad([1]), 'INVALID_FIELD_ERR')
    expectCodeSync(() => validateAad(Array(127).fill('a')), 'INVALID_FIELD_ERR')
    expectCodeSync(() => validateAad(['x'.repeat(16 * 1024 + 1)]), 'INVALID_FIELD_ERR')
  })
})
