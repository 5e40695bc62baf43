/**
 * kill -9 during a key-provider migration, on a real SoftHSM2 token and SQLite catalog: a child process
 * (test/helpers/tenant-keys-child.ts, createEngineServicesFromConfig) starts or resumes the migration of a
 * tenant's catalog from the default provider to an engine-key provider and is SIGKILLed at random points,
 * at least 10 times (at start-up, right after the migration was submitted, after some progress lines), each
 * time restarted; then it is let finish. The job completes, every entry unwraps to its original DEK
 * (digests recorded before), and every value is exactly one layer under the target.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { killRepeatedly, runChild } from '../../helpers/kill-runs.js'
import { parseWrappedDek } from '../../../src/index.js'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'
import { tempCatalogPath } from '../../helpers/engine.js'
import { openServices, sha256 } from '../../helpers/tenant-keys.js'

const CHILD = join(import.meta.dirname, '../../helpers/tenant-keys-child.ts')
const T = 'tk-crash'
const N = 4000
const KILLS = 12

describe('kill -9 during a key-provider migration', () => {
  it(`is killed ${KILLS} times at random points, resumes each time, and completes: nothing lost, nothing wrapped twice`, async () => {
    const catalog = tempCatalogPath()
    const digests = new Map<string, string>()
    let fp: string
    let targetKeyId: string
    {
      const s = await openServices(catalog)
      for (let i = 0; i < N; i++) {
        const k = await s.tenantKeys.createDataKey(T, `c-${String(i).padStart(5, '0')}`)
        digests.set(k.name, sha256(k.plaintext.bytes))
        k.plaintext.zeroize()
      }
      const root = await s.engine.createKey(T, { name: 'crash-target' })
      targetKeyId = root.id
      fp = (await s.tenantKeys.register(T, { arn: root.id, name: 'target', kind: 'engine-key' })).fingerprint
      await s.close()
    }

    const kills = await killRepeatedly(KILLS, 40, (killWhen, killAfterMs) =>
      runChild(CHILD, [catalog, T, fp], killWhen, killAfterMs),
    )
    // Finally let it run to the end.
    const last = await runChild(CHILD, [catalog, T, fp], undefined)
    expect(last.out).toContain('DONE')
    expect(kills.filter((k) => k.startsWith('kill')).length).toBeGreaterThanOrEqual(10)

    const s = await openServices(catalog)
    try {
      const m = await s.tenantKeys.migration(T)
      expect(m).toMatchObject({ state: 'Completed', jobState: 'completed', migratingToFingerprint: fp })
      expect(m.done).toBe(m.total)
      expect(m.total).toBe(N)
      expect((await s.jobs.list(T)).total).toBe(1) // one migration job, resumed, never a second
      let seen = 0
      for (const [name, digest] of digests) {
        const k = await s.tenantKeys.getDataKey(T, name)
        expect(sha256(k.plaintext.bytes)).toBe(digest)
        k.plaintext.zeroize()
        expect(k.providerFingerprint).toBe(fp)
        seen++
      }
      expect(seen).toBe(N)
      // One layer: each stored value is the prefix and a ciphertext v1 of the target key.
      const store = await openSqliteStore({ path: catalog })
      try {
        for (const r of await store.listDataKeys(T, { limit: N + 10 })) {
          const parsed = parseWrappedDek(r.wrapped)
          expect(parsed.fingerprint).toBe(fp)
          expect(parsed.ciphertext.keyId).toBe(targetKeyId)
          expect(parsed.inner.startsWith('#')).toBe(false)
        }
      } finally {
        await store.close()
      }
      console.log(`crash test: ${kills.join(', ')}; then finished`)
    } finally {
      await s.close()
    }
  }, 600_000)
})
