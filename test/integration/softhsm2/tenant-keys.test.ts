/**
 * Tenant key providers on a real SoftHSM2 token and a real SQLite catalog, through
 * createEngineServicesFromConfig (engine + job runner + tenant key providers): default → engine-key
 * migration of N catalog entries (every entry readable after, each value one layer under the target),
 * unwrapDek of an application-held old ciphertext (`rewrapped`), reset to default, tenant isolation, and the
 * state surviving a restart of the services.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { parseCiphertext } from '../../../src/core/format/ciphertext.js'
import { parseWrappedDek, type EngineServices } from '../../../src/index.js'
import { expectCode } from '../../helpers/expect-code.js'
import { tempCatalogPath } from '../../helpers/engine.js'
import { openServices, sha256 } from '../../helpers/tenant-keys.js'

const A = 'tk-tenant-a'
const B = 'tk-tenant-b'
const N = 300

const open: EngineServices[] = []
afterEach(async () => {
  for (const s of open.splice(0)) await s.close()
})

async function services(catalogPath?: string): Promise<EngineServices> {
  const s = await openServices(catalogPath, { migration: { batchSize: 64 } })
  open.push(s)
  return s
}

describe('tenant key providers on SoftHSM2 + SQLite', () => {
  it('default → engine-key migration: every entry readable after, one layer under the target; rewrapped; reset', async () => {
    const catalog = tempCatalogPath()
    const s = await services(catalog)
    const { tenantKeys: tk, engine } = s
    const digests = new Map<string, string>()
    for (let i = 0; i < N; i++) {
      const k = await tk.createDataKey(A, `entry-${String(i).padStart(4, '0')}`)
      digests.set(k.name, sha256(k.plaintext.bytes))
      k.plaintext.zeroize()
    }
    const held = await tk.wrapDek(A) // an application-held ciphertext under the default provider
    const heldDigest = sha256(held.plaintext.bytes)
    expect(held.providerFingerprint).toBe(A)
    const defaultKeyId = parseCiphertext(held.ciphertext).keyId

    const root = await engine.createKey(A, { name: 'customer-managed-in-hsm' })
    const p = await tk.register(A, { arn: root.id, name: 'HSM CMK', kind: 'engine-key' })
    const m = await tk.migrate(A, p.fingerprint)
    expect(m.migratingToPrefix).toBe(`#BYOKv1#:${p.fingerprint}`)
    const events: number[] = []
    const off = tk.subscribeMigration(A, m.id, (v) => events.push(v.done))
    const done = await tk.waitForMigration(A, m.id)
    off()
    expect(done).toMatchObject({
      state: 'Completed',
      jobState: 'completed',
      done: N,
      total: N,
      progress: 100,
    })
    expect(events).toEqual([...events].sort((x, y) => x - y))

    // Each catalog value: the prefix, then one ciphertext v1 under the target root key.
    let after: string | undefined
    let seen = 0
    for (;;) {
      const page = await tk.listDataKeys(A, { limit: 1000, ...(after === undefined ? {} : { after }) })
      if (page.length === 0) break
      for (const info of page) {
        expect(info.providerFingerprint).toBe(p.fingerprint)
        const got = await tk.getDataKey(A, info.name)
        expect(sha256(got.plaintext.bytes)).toBe(digests.get(info.name))
        got.plaintext.zeroize()
        seen++
      }
      after = page[page.length - 1]!.name
    }
    expect(seen).toBe(N)

    const u = await tk.unwrapDek(A, held.ciphertext)
    expect(sha256(u.plaintext.bytes)).toBe(heldDigest)
    expect(u.providerFingerprint).toBe(A)
    const re = parseWrappedDek(u.rewrapped!)
    expect(re.fingerprint).toBe(p.fingerprint)
    expect(re.ciphertext.keyId).toBe(root.id)
    expect(re.inner.startsWith('#')).toBe(false)

    await expectCode(tk.delete(A, p.fingerprint), 'KEY_PROVIDER_IN_USE')
    const r = await tk.resetToDefault(A)
    expect(r.migratingTo).toBe('#QLIK_MANAGED_KEY_PROVIDER#')
    expect(await tk.waitForMigration(A, r.id)).toMatchObject({ jobState: 'completed', done: N, total: N })
    const sample = await tk.getDataKey(A, 'entry-0042')
    expect(sha256(sample.plaintext.bytes)).toBe(digests.get('entry-0042'))
    expect(sample.providerFingerprint).toBe(A)
    const v = parseWrappedDek((await tk.wrapDek(A)).ciphertext)
    expect(v.fingerprint).toBeUndefined()
    expect(v.ciphertext.keyId).toBe(defaultKeyId)
    await tk.delete(A, p.fingerprint)
    await expectCode(tk.resetToDefault(A), 'KEY_PROVIDER_ALREADY_CURRENT')

    // The state survives a restart of the services on the same catalog.
    await s.close()
    open.splice(open.indexOf(s), 1)
    const s2 = await services(catalog)
    expect((await s2.tenantKeys.migration(A)).id).toBe(r.id)
    const again = await s2.tenantKeys.unwrapDek(A, held.ciphertext)
    expect(sha256(again.plaintext.bytes)).toBe(heldDigest)
    expect(again.rewrapped).toBeUndefined()
  }, 120_000)

  it('two tenants are isolated: providers, entries and fingerprints', async () => {
    const { tenantKeys: tk, engine } = await services()
    const keyA = await engine.createKey(A, { name: 'a-cmk' })
    const pa = await tk.register(A, { arn: keyA.id, name: 'A', kind: 'engine-key' })
    // B cannot register A's engine key, nor see A's provider.
    await expectCode(
      tk.register(B, { arn: keyA.id, name: 'B', kind: 'engine-key' }),
      'KEY_PROVIDER_NOT_FOUND',
    )
    await expectCode(tk.get(B, pa.fingerprint), 'KEY_PROVIDER_NOT_FOUND')
    expect(await tk.list(B)).toEqual([])
    expect((await tk.listAll(B)).map((p) => p.fingerprint)).toEqual([B])
    await tk.createDataKey(A, 'shared-name')
    await expectCode(tk.getDataKey(B, 'shared-name'), 'DATA_KEY_NOT_FOUND')
    const b = await tk.createDataKey(B, 'shared-name')
    await tk.migrate(A, pa.fingerprint).then((m) => tk.waitForMigration(A, m.id))
    expect((await tk.getDataKey(B, 'shared-name')).providerFingerprint).toBe(B)
    expect(sha256((await tk.getDataKey(B, 'shared-name')).plaintext.bytes)).toBe(sha256(b.plaintext.bytes))
    // A's ciphertexts do not unwrap for B.
    const wa = await tk.wrapDek(A)
    await expectCode(tk.unwrapDek(B, wa.ciphertext), 'KEY_PROVIDER_NOT_FOUND')
    const defaultA = await tk.wrapDek(B) // B's default-provider ciphertext
    await expectCode(tk.unwrapDek(A, defaultA.ciphertext), 'CIPHERTEXT_INVALID')
    // The same key reference registered by two tenants has two fingerprints.
    const keyB = await engine.createKey(B, { name: 'b-cmk' })
    const pb = await tk.register(B, { arn: keyB.id, name: 'B', kind: 'engine-key' })
    expect(pb.fingerprint).not.toBe(pa.fingerprint)
    await expectCode(tk.migration(B), 'MIGRATION_NOT_FOUND')
  }, 60_000)
})
