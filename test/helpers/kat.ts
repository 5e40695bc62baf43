/**
 * Imports known-answer root-key material into the test token as imported root-key versions of a fresh
 * catalog, under fixed key ids, so that committed ciphertexts and messages can be unwrapped on the HSM.
 */
import { newKeyRecord } from '../../src/core/keys/key-record.js'
import { SecretBytes } from '../../src/index.js'
import type { KatKey } from '../vectors/ciphertext-v1-reference.js'
import type { TestEngine } from './engine.js'

export async function importKatKey(t: TestEngine, key: KatKey, instance: string): Promise<void> {
  const now = t.clock.now()
  const versions = Object.keys(key.versions)
    .map(Number)
    .sort((a, b) => a - b)
  const refs: string[] = []
  for (const v of versions) {
    refs.push(
      await t.provider.createVersion({
        catalogId: t.store.catalogId,
        keyId: key.keyId,
        version: v,
        material: SecretBytes.copyOf(Buffer.from(key.versions[String(v)] ?? '', 'hex')),
      }),
    )
  }
  const record = newKeyRecord(instance, key.keyId, 'kat', now, { imported: true })
  const first = {
    instance,
    keyId: key.keyId,
    version: 1,
    versionId: key.keyId,
    providerRef: refs[0] ?? '',
    createdAt: now,
  }
  await t.store.insertKey(record, first, [])
  for (let i = 1; i < versions.length; i++) {
    const ok = await t.store.insertVersion(
      {
        instance,
        keyId: key.keyId,
        version: versions[i] ?? 0,
        versionId: `00000000-0000-4000-8000-00000000000${i}`,
        providerRef: refs[i] ?? '',
        createdAt: now,
      },
      { updatedAt: now, lastRotatedAt: now },
    )
    if (!ok) throw new Error('KAT version insert lost a race')
  }
}
