/**
 * Wycheproof HKDF-SHA-256 vectors against the primitive the message format uses (node:crypto hkdfSync), and
 * the format's derivation labels pinned.
 */
import { createHmac, hkdfSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { deriveCommitment, deriveDataKey, hkdfSha256 } from '../../../src/core/message.js'

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

  it('the message format derives its data key as HKDF-Expand(PRK = DEK, label ‖ message id) and its commitment as HKDF-Expand(PRK = DEK, label)', () => {
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
    expect(dataKey.equals(expand(Buffer.concat([label('data-key'), id])))).toBe(true)
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
