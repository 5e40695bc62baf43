/**
 * Wycheproof HKDF-SHA-256 vectors against the primitive the message format uses (node:crypto hkdfSync), and
 * the format's derivation labels pinned.
 */
import { hkdfSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { deriveKeys, hkdfSha256 } from '../../../src/core/message.js'

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

  it('the message format derives its data key and commitment with its documented labels', () => {
    const dek = Buffer.alloc(32, 7)
    const id = Buffer.alloc(32, 9)
    const info = (l: string): Buffer => Buffer.from(`envelope-kms/message/v1\u0001${l}`, 'utf8')
    const k = deriveKeys(dek, id)
    expect(k.dataKey.equals(Buffer.from(hkdfSync('sha256', dek, id, info('data-key'), 32)))).toBe(true)
    expect(k.commitment.equals(Buffer.from(hkdfSync('sha256', dek, id, info('commitment'), 32)))).toBe(true)
    expect(k.dataKey.equals(k.commitment)).toBe(false)
    // and node:crypto's own HKDF agrees with ours
    expect(
      hkdfSha256(dek, id, info('x'), 100).equals(Buffer.from(hkdfSync('sha256', dek, id, info('x'), 100))),
    ).toBe(true)
  })
})
