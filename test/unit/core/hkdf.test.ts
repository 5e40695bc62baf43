/**
 * Wycheproof HKDF-SHA-256 vectors against the primitive the message format uses (node:crypto hkdfSync), and
 * the format's derivation labels pinned.
 */
import { createCipheriv, createHmac, hkdfSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { deriveCommitment, deriveDataKey, hkdfSha256 } from '../../../src/core/format/message.js'

interface HkdfTest {
  tcId: number
  ikm: string
  salt: string
  info: string
  size: number
  okm: string
  result: 'valid' | 'invalid' | 'acceptable'
}
const groups = (
  JSON.parse(
    readFileSync(join(import.meta.dirname, '../../vectors/wycheproof/hkdf_sha256_test.json'), 'utf8'),
  ) as {
    testGroups: { tests: HkdfTest[] }[]
  }
).testGroups
const cases = groups.flatMap((g) => g.tests)

describe('HKDF-SHA-256, as the engine implements it (createHmac)', () => {
  it(`passes all ${cases.length} Wycheproof cases: valid ones match, invalid ones are refused`, () => {
    let valid = 0
    let invalid = 0
    for (const t of cases) {
      const run = (): Buffer =>
        Buffer.from(
          hkdfSync(
            'sha256',
            Buffer.from(t.ikm, 'hex'),
            Buffer.from(t.salt, 'hex'),
            Buffer.from(t.info, 'hex'),
            t.size,
          ),
        )
      if (t.result === 'valid') {
        expect(run().toString('hex'), `tcId ${t.tcId}`).toBe(t.okm)
        valid++
      } else {
        expect(run, `tcId ${t.tcId}`).toThrow()
        invalid++
      }
    }
    expect(valid + invalid).toBe(cases.length)
  })

  it('the message format derives its data key with AES-256 under HKDF-Expand(PRK = DEK, label), RFC 8452 style, and its commitment as HKDF-Expand(PRK = DEK, label)', () => {
    const dek = Buffer.alloc(32, 7)
    const id = Buffer.alloc(32, 9)
    const label = (l: string): Buffer => Buffer.from(`envelope-kms/message/v1\u0001${l}`, 'utf8')
    // node:crypto's HKDF always extracts first; HKDF-Expand alone equals our general HKDF's expand step, which
    // Wycheproof checked above, with PRK = DEK: T(1) = HMAC(DEK, info ‖ 0x01).
    const expand = (i: Buffer): Buffer =>
      createHmac('sha256', dek)
        .update(Buffer.concat([i, Buffer.from([1])]))
        .digest()
    const dataKey = deriveDataKey(dek, id)
    const commitment = deriveCommitment(dek)
    // dataKey = first 8 bytes of AES-256(derivationKey, n ‖ i) for i = 0..3, n = message id bytes 0..14
    const dk = expand(label('derivation-key'))
    const block = (i: number): Buffer => {
      const e = createCipheriv('aes-256-ecb', dk, null).setAutoPadding(false)
      return Buffer.concat([e.update(Buffer.concat([id.subarray(0, 15), Buffer.from([i])])), e.final()])
    }
    const want = Buffer.concat([0, 1, 2, 3].map((i) => block(i).subarray(0, 8)))
    expect(dataKey.equals(want)).toBe(true)
    // the same through a kept deriver (a memo), for several messages, and only the first 15 id bytes count
    const memo = {}
    expect(deriveDataKey(dek, id, memo).equals(want)).toBe(true)
    const id2 = Buffer.from(id)
    id2[31] = (id2[31] as number) ^ 1
    expect(deriveDataKey(dek, id2, memo).equals(want)).toBe(true)
    id2[14] = (id2[14] as number) ^ 1
    expect(deriveDataKey(dek, id2, memo).equals(want)).toBe(false)
    expect(deriveDataKey(dek, id2, memo).equals(deriveDataKey(dek, id2))).toBe(true)
    expect(commitment.equals(expand(label('commitment')))).toBe(true)
    expect(dataKey.equals(commitment)).toBe(false)
    // the data key is per message, the commitment per DEK
    expect(deriveDataKey(dek, Buffer.alloc(32, 8)).equals(dataKey)).toBe(false)
    expect(deriveCommitment(Buffer.alloc(32, 6)).equals(commitment)).toBe(false)
    const info = (l: string): Buffer => Buffer.concat([label(l), id])
    // and our general HKDF agrees with node:crypto's
    expect(
      hkdfSha256(dek, id, info('x'), 100).equals(Buffer.from(hkdfSync('sha256', dek, id, info('x'), 100))),
    ).toBe(true)
  })
})
