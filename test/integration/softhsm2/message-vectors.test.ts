/**
 * Known-answer vectors for the sealed-message format v1 (test/vectors/message-v1.json): committed messages
 * open on the HSM to their plaintext, and what the engine seals today opens with the independent reference
 * implementation of docs/message-format.md.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'
import { expectCode } from '../../helpers/expect-code.js'
import { importKatKey } from '../../helpers/kat.js'
import type { KatFile } from '../../vectors/ciphertext-v1-reference.js'
import { openRef } from '../../vectors/message-v1-reference.js'

const dir = join(import.meta.dirname, '../../vectors')
const ckat = JSON.parse(readFileSync(join(dir, 'ciphertext-v1.json'), 'utf8')) as KatFile
interface MessageCase {
  name: string
  instance: string
  keyId: string
  context: Record<string, string>
  dek: string
  plaintext: string
  message: string
}
const mkat = JSON.parse(readFileSync(join(dir, 'message-v1.json'), 'utf8')) as {
  rootKey: string
  cases: MessageCase[]
}
let t: TestEngine

beforeAll(async () => {
  t = await openTestEngine()
  const key = ckat.keys.find((k) => k.keyId === mkat.rootKey)
  if (key === undefined) throw new Error('root key of the message vectors is missing')
  await importKatKey(t, key, 'kat-instance')
})
afterAll(async () => {
  await t.engine.close()
})

describe('message format v1 known answers', () => {
  it('every committed message opens on the HSM to its plaintext', async () => {
    expect(mkat.cases.length).toBeGreaterThanOrEqual(4)
    for (const c of mkat.cases) {
      const opened = await t.engine.open(c.instance, Buffer.from(c.message, 'base64'), { context: c.context })
      expect(opened.toString('hex'), c.name).toBe(c.plaintext)
      // and with the reference implementation, from the DEK alone
      expect(
        openRef(Buffer.from(c.dek, 'hex'), Buffer.from(c.message, 'base64')).plaintext.toString('hex'),
      ).toBe(c.plaintext)
    }
  })

  it('a committed message refuses another context', async () => {
    const c = mkat.cases[1] as MessageCase
    await expectCode(
      t.engine.open(c.instance, Buffer.from(c.message, 'base64'), { context: {} }),
      'CONTEXT_MISMATCH',
    )
  })

  it('what the engine seals today opens with the reference implementation', async () => {
    const plaintext = Buffer.from('x'.repeat(300))
    const context = { purpose: 'kat' }
    const sealed = await t.engine.seal('kat-instance', mkat.rootKey, plaintext, { context, frameSize: 128 })
    // the reference needs the DEK: unwrap the message's wrapped DEK through the engine
    const w = sealed.readUInt16BE(38)
    const wrapped = sealed.subarray(40, 40 + w)
    const { dekAad } = await import('../../vectors/message-v1-reference.js')
    const dek = (await t.engine.unwrap('kat-instance', mkat.rootKey, wrapped, { aad: dekAad(context) }))
      .plaintext
    const r = openRef(dek, sealed)
    expect(r.plaintext.equals(plaintext)).toBe(true)
    expect(r.wrapped.equals(wrapped)).toBe(true)
  })
})
