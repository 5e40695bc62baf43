/**
 * Known-answer vectors for ciphertext format v1 (test/vectors/ciphertext-v1.json). Their root-key material
 * is imported into the token as sensitive, non-extractable objects of a throwaway catalog; every committed
 * ciphertext must still unwrap, so a change that breaks old ciphertexts fails CI. In the other direction,
 * what the engine writes today must open with the independent reference implementation of the document.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseCiphertext } from '../../../src/index.js'
import { importKatKey } from '../../helpers/kat.js'
import { expectCode } from '../../helpers/expect-code.js'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'
import { open, type KatFile } from '../../vectors/ciphertext-v1-reference.js'

const kat = JSON.parse(
  readFileSync(join(import.meta.dirname, '../../vectors/ciphertext-v1.json'), 'utf8'),
) as KatFile
let t: TestEngine

beforeAll(async () => {
  t = await openTestEngine()
  for (const key of kat.keys) {
    const instances = [...new Set(kat.cases.filter((c) => c.keyId === key.keyId).map((c) => c.instance))]
    for (const instance of instances) await importKatKey(t, key, instance)
  }
})
afterAll(async () => {
  await t.engine.close()
})

describe('ciphertext format v1 known answers', () => {
  it('parses every committed vector into the documented fields', () => {
    for (const c of kat.cases) {
      const p = parseCiphertext(c.ciphertext)
      expect(p).toMatchObject({ formatVersion: 1, mechanism: 1, keyId: c.keyId, keyVersion: c.keyVersion })
      expect(p.iv.toString('hex')).toBe(c.iv)
      expect(p.encrypted).toHaveLength(c.dek.length / 2)
    }
  })

  it('every committed ciphertext unwraps on the HSM to its DEK', async () => {
    for (const c of kat.cases) {
      const u = await t.engine.unwrap(c.instance, c.keyId, c.ciphertext, { aad: c.aad })
      expect(u.plaintext.toString('hex'), c.name).toBe(c.dek)
      expect(u.keyVersion.number).toBe(c.keyVersion)
    }
  })

  it('committed ciphertexts refuse another instance or AAD', async () => {
    const c = kat.cases[1]
    if (c === undefined) throw new Error('vector missing')
    await expectCode(t.engine.unwrap(c.instance, c.keyId, c.ciphertext, { aad: [] }), 'UNWRAP_AAD_MISMATCH')
    await expectCode(
      t.engine.unwrap('another-instance', c.keyId, c.ciphertext, { aad: c.aad }),
      'KEY_NOT_FOUND_ERR',
    )
  })

  it('what the engine wraps today opens with the reference implementation of the document', async () => {
    for (const key of kat.keys) {
      const c = kat.cases.find((x) => x.keyId === key.keyId)
      if (c === undefined) continue
      const latest = Math.max(...Object.keys(key.versions).map(Number))
      const dek = Buffer.from('fresh DEK from the engine, 32 b!')
      const w = await t.engine.wrap(c.instance, key.keyId, { plaintext: dek, aad: ['x', 'y'] })
      const opened = open(Buffer.from(key.versions[String(latest)] ?? '', 'hex'), w.ciphertext, c.instance, [
        'x',
        'y',
      ])
      expect(opened).toEqual({ keyId: key.keyId, keyVersion: latest, dek })
    }
  })
})
