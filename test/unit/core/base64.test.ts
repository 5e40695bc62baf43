import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { decodeBase64Strict } from '../../../src/core/format/base64.js'

// The language ciphertext v1 has always accepted as text, and Node's decoder for it.
const STRICT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const reference = (s: string): Buffer | undefined => (STRICT.test(s) ? Buffer.from(s, 'base64') : undefined)

/** The alphabet, padding, and characters near it (URL-safe, whitespace, a dot, a non-ASCII letter). */
const CHARS: readonly string[] = Array.from(
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n.\u00e9',
)

describe('decodeBase64Strict', () => {
  it('accepts exactly the strict standard base64 strings and decodes them as Buffer.from does', () => {
    const nearBase64 = fc.array(fc.constantFrom(...CHARS), { maxLength: 40 }).map((a) => a.join(''))
    fc.assert(
      fc.property(nearBase64, (s) => {
        expect(decodeBase64Strict(s)).toEqual(reference(s))
      }),
      { numRuns: 20_000 },
    )
  })

  it('round-trips any bytes encoded by Node, including every padding length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const s = Buffer.from(bytes).toString('base64')
        expect(decodeBase64Strict(s)).toEqual(Buffer.from(bytes))
      }),
      { numRuns: 5_000 },
    )
  })

  it('mutations of a valid string (one character replaced, or padding moved) decide as the regex does', () => {
    const valid = fc.uint8Array({ minLength: 1, maxLength: 60 }).map((b) => Buffer.from(b).toString('base64'))
    fc.assert(
      fc.property(valid, fc.nat(), fc.constantFrom(...CHARS), (s, at, c) => {
        const i = at % s.length
        const m = s.slice(0, i) + c + s.slice(i + 1)
        expect(decodeBase64Strict(m)).toEqual(reference(m))
      }),
      { numRuns: 20_000 },
    )
  })

  it('non-canonical trailing bits are dropped, as Node drops them (the regex accepts them)', () => {
    for (const s of ['QR==', 'QUJ=', 'AB==', '////', '+/+/AA==']) {
      expect(decodeBase64Strict(s)).toEqual(Buffer.from(s, 'base64'))
    }
    for (const s of ['', 'A', 'AB=', 'A===', '====', 'AB=A', 'AB\u00e9=', 'QR-_']) {
      expect(decodeBase64Strict(s)).toEqual(reference(s))
    }
  })
})
