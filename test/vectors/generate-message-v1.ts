/**
 * Writes test/vectors/message-v1.json once (never overwrites: released vectors are frozen). Root keys
 * come from ciphertext-v1.json; the wrapped DEKs are made with the ciphertext v1 reference implementation.
 *
 *   npx tsx test/vectors/generate-message-v1.ts
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { seal, type KatFile } from './ciphertext-v1-reference.js'
import { dekAad, sealRef } from './message-v1-reference.js'

const out = join(import.meta.dirname, 'message-v1.json')
if (existsSync(out)) {
  console.error(`${out} exists; released vectors are never regenerated`)
  process.exit(1)
}
const ckat = JSON.parse(readFileSync(join(import.meta.dirname, 'ciphertext-v1.json'), 'utf8')) as KatFile
const key = ckat.keys[0]!
const pattern = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (seed * 17 + i * 13) & 0xff))
const raw = [
  { name: 'empty plaintext, no context', context: {}, frameSize: 4096, plaintext: pattern(0, 1), keyVersion: 1 },
  { name: '100 bytes, context, 64-byte frames', context: { tenant: 't-42', table: 'orders' }, frameSize: 64, plaintext: pattern(100, 2), keyVersion: 2 },
  { name: 'two full frames (regular + full final)', context: { a: '' }, frameSize: 64, plaintext: pattern(128, 3), keyVersion: 3 },
  { name: '1000 bytes, UTF-8 context, 64-byte frames', context: { 'région': 'Zürich', 'z': '東京' }, frameSize: 64, plaintext: pattern(1000, 4), keyVersion: 3 },
]
const cases = raw.map((c, i) => {
  const dek = pattern(32, 10 + i)
  const material = Buffer.from(key.versions[String(c.keyVersion)]!, 'hex')
  const wrapped = Buffer.from(
    seal(material, { instance: 'kat-instance', keyId: key.keyId, keyVersion: c.keyVersion, aad: dekAad(c.context), dek: dek.toString('hex'), iv: pattern(12, 30 + i).toString('hex') }),
    'base64',
  )
  const message = sealRef({ dek, wrapped, context: c.context, messageId: pattern(32, 50 + i), frameSize: c.frameSize, plaintext: c.plaintext })
  return { name: c.name, instance: 'kat-instance', keyId: key.keyId, context: c.context, dek: dek.toString('hex'), plaintext: c.plaintext.toString('hex'), message: message.toString('base64') }
})
writeFileSync(
  out,
  `${JSON.stringify({ description: 'Known-answer vectors for envelope-kms sealed messages, format v1, algorithm 2 (docs/message-format.md). Root keys: ciphertext-v1.json keys[0]. Never regenerate.', format: 'v1', algorithm: 2, rootKey: key.keyId, cases }, null, 2)}\n`,
)
console.log(`wrote ${cases.length} cases to ${out}`)
