/**
 * Writes test/vectors/ciphertext-v1.json once. Released vectors are never regenerated: this script refuses
 * to overwrite the file. A new format version gets a new file.
 *
 *   npx tsx test/vectors/generate-ciphertext-v1.ts
 */
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { seal, type KatCase, type KatFile, type KatKey } from './ciphertext-v1-reference.js'

const out = join(import.meta.dirname, 'ciphertext-v1.json')
if (existsSync(out)) {
  console.error(`${out} exists; released vectors are never regenerated`)
  process.exit(1)
}
const pattern = (n: number, seed: number): string =>
  Buffer.from(Array.from({ length: n }, (_, i) => (seed * 31 + i * 7) & 0xff)).toString('hex')

const keys: KatKey[] = [
  { keyId: '3f1d7a52-9c4e-4b8a-a1f0-6e2d5c9b8a71', versions: { '1': pattern(32, 1), '2': pattern(32, 2), '3': pattern(32, 3) } },
  { keyId: 'b8e2c4d6-1a3f-4e5b-9c7d-0f2e4a6c8e10', versions: { '1': pattern(16, 4) } },
  { keyId: '0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d', versions: { '1': pattern(24, 5) } },
]
const raw: Omit<KatCase, 'ciphertext'>[] = [
  { name: 'generated 32-byte DEK, no AAD, version 1', instance: 'kat-instance', keyId: keys[0]!.keyId, keyVersion: 1, aad: [], dek: pattern(32, 10), iv: pattern(12, 20) },
  { name: '32-byte DEK with AAD, version 2', instance: 'kat-instance', keyId: keys[0]!.keyId, keyVersion: 2, aad: ['order-42'], dek: pattern(32, 11), iv: pattern(12, 21) },
  { name: 'AAD with several items including an empty one, version 3', instance: 'kat-instance', keyId: keys[0]!.keyId, keyVersion: 3, aad: ['a', '', 'tenant=t-42;table=orders'], dek: pattern(32, 12), iv: pattern(12, 22) },
  { name: '1-byte DEK under an imported AES-128 root key', instance: 'kat:other.instance-1', keyId: keys[1]!.keyId, keyVersion: 1, aad: [], dek: pattern(1, 13), iv: pattern(12, 23) },
  { name: '4096-byte DEK under an imported AES-192 root key, UTF-8 AAD', instance: 'kat-instance', keyId: keys[2]!.keyId, keyVersion: 1, aad: ['Zürich', '東京'], dek: pattern(4096, 14), iv: pattern(12, 24) },
]
const cases: KatCase[] = raw.map((c) => {
  const material = Buffer.from(keys.find((k) => k.keyId === c.keyId)!.versions[String(c.keyVersion)]!, 'hex')
  return { ...c, ciphertext: seal(material, c) }
})
const file: KatFile = {
  description:
    'Known-answer vectors for the envelope-kms wrapped-DEK ciphertext, format v1 (docs/ciphertext-format.md). ' +
    'Root key material is test-only. Never regenerate: the test imports it into a throwaway token and checks these still unwrap.',
  format: 'v1',
  keys,
  cases,
}
writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`)
console.log(`wrote ${cases.length} cases to ${out}`)
