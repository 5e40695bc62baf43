/**
 * kill -9 during a synchronization job, on real SoftHSM2 tokens and a real SQLite catalog: N AES keys are
 * made directly on the second token; a child process (test/helpers/sync-child.ts,
 * createEngineServicesFromConfig) starts or resumes the pkcs11 synchronization of that token and is
 * SIGKILLed at random points, at least 10 times (during start-up, right after the job was submitted, after a
 * random number of durable progress steps), each time restarted; then it is let finish. The one job
 * completes; every key is linked exactly once, present, usable, and wraps and unwraps.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { killRepeatedly, runChild } from '../../helpers/kill-runs.js'
import { SecretBytes } from '../../../src/index.js'
import { env, tempCatalogPath } from '../../helpers/engine.js'
import { openServices } from '../../helpers/tenant-keys.js'
import { createAesKeys, secondTokenConnection } from '../../helpers/sync.js'

const CHILD = join(import.meta.dirname, '../../helpers/sync-child.ts')
const T = 'sync-crash'
const N = 1500
const KILLS = 12

describe('kill -9 during a synchronization job', () => {
  it(`is killed ${KILLS} times at random points, resumes each time, and completes: every key linked once`, async () => {
    const ids = Array.from({ length: N }, (_, i) => `c0${String(i).padStart(6, '0')}`)
    createAesKeys(
      env('EKMS_TEST_TOKEN_2'),
      env('EKMS_TEST_PIN'),
      ids.map((id) => ({ label: `crash-${id}`, id })),
    )
    const catalog = tempCatalogPath()
    {
      const s = await openServices(catalog)
      await s.sync.createConnection(T, secondTokenConnection())
      await s.close()
    }

    const kills = await killRepeatedly(KILLS, 30, (killWhen, killAfterMs) =>
      runChild(CHILD, [catalog, T], killWhen, killAfterMs),
    )
    const last = await runChild(CHILD, [catalog, T], undefined)
    expect(last.out).toContain('DONE')
    expect(kills.filter((k) => k.startsWith('kill')).length).toBeGreaterThanOrEqual(10)

    const s = await openServices(catalog)
    try {
      const { jobs, total } = await s.sync.listSyncJobs(T)
      expect(total).toBe(1) // one job, resumed, never a second
      const job = jobs[0]!
      expect(job.overallStatus).toBe('completed')
      expect(job.counts.discovered).toBe(N)
      expect(job.counts.inserted + job.counts.updated + job.counts.unchanged).toBe(N)
      expect(job.counts.markedDeleted).toBe(0)
      const keys = (await s.sync.listLinkedKeys(T, { limit: 1000 })).keys
      const rest = (await s.sync.listLinkedKeys(T, { limit: 1000, after: keys.at(-1)!.id })).keys
      const all = [...keys, ...rest]
      expect(all).toHaveLength(N)
      expect(new Set(all.map((k) => k.id)).size).toBe(N)
      expect(new Set(all.map((k) => k.sourceKeyId))).toEqual(new Set(ids.map((id) => `id:${id}`)))
      expect(all.every((k) => k.sourceState === 'present' && k.usable && k.lastSyncJobId === job.id)).toBe(
        true,
      )
      for (const k of [all[0]!, all[N >> 1]!, all[N - 1]!]) {
        const w = await s.sync.wrap(T, k.id, { plaintext: SecretBytes.copyOf(Buffer.alloc(32, 3)) })
        const u = await s.sync.unwrap(T, { ciphertext: w.ciphertext })
        expect(Buffer.from(u.plaintext.bytes).equals(Buffer.alloc(32, 3))).toBe(true)
        u.plaintext.zeroize()
      }
      console.log(`sync crash test: ${kills.join(', ')}; then finished`)
    } finally {
      await s.close()
    }
  }, 600_000)
})
