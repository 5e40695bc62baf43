/**
 * A key-provider migration of many catalog entries (EKMS_TEST_MIGRATION_ENTRIES, default 50,000) on a real
 * SoftHSM2 token and SQLite catalog, default provider → engine-key provider, while a concurrent load of
 * createDataKey / getDataKey / wrapDek / unwrapDek calls runs: zero failed calls, every entry readable
 * after with its original DEK, progress events monotonic, the job record consistent (done == total,
 * completed). The entries are made with engine.wrapMany and inserted in one transaction (setup speed); the
 * migration itself runs through the library as in production.
 */
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { parseCiphertext } from '../../../src/core/format/ciphertext.js'
import type { EngineServices } from '../../../src/index.js'
import { tempCatalogPath } from '../../helpers/engine.js'
import { openServices, sha256 } from '../../helpers/tenant-keys.js'

const T = 'tk-load'
const ENTRIES = Number(process.env['EKMS_TEST_MIGRATION_ENTRIES'] ?? 50_000)

let services: EngineServices | undefined
afterEach(async () => {
  await services?.close()
  services = undefined
})

describe('migration under load', () => {
  it(`migrates ${ENTRIES} entries while wrap/unwrap/create/get calls run: no failed call, all readable`, async () => {
    const catalog = tempCatalogPath()
    services = await openServices(catalog)
    const { tenantKeys: tk, engine, jobs } = services
    const t0 = Date.now()

    // Setup: ENTRIES DEKs wrapped under the default provider's key, inserted in one transaction.
    const first = await tk.wrapDek(T)
    const defaultKeyId = parseCiphertext(first.ciphertext).keyId
    const digests = new Map<string, string>()
    const db = new Database(catalog)
    db.pragma('busy_timeout = 10000')
    const insert = db.prepare(
      `INSERT INTO data_keys (tenant, name, wrapped, provider_fingerprint, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    )
    for (let off = 0; off < ENTRIES; off += 5000) {
      const n = Math.min(5000, ENTRIES - off)
      const wrapped = await engine.wrapMany(T, defaultKeyId, n)
      const now = Date.now()
      db.transaction(() => {
        for (const [i, w] of wrapped.entries()) {
          if (!w.ok) throw w.error
          const name = `e-${String(off + i).padStart(6, '0')}`
          digests.set(name, sha256(w.plaintext!))
          w.plaintext!.fill(0)
          insert.run(T, name, w.ciphertext, T, now, now)
        }
      })()
    }
    db.close()
    const tSetup = Date.now()

    // Application-held ciphertexts under the default provider, for the unwrap load.
    const held: { ciphertext: string; digest: string }[] = []
    for (let i = 0; i < 32; i++) {
      const w = await tk.wrapDek(T)
      held.push({ ciphertext: w.ciphertext, digest: sha256(w.plaintext.bytes) })
      w.plaintext.zeroize()
    }

    const root = await engine.createKey(T, { name: 'target' })
    const p = await tk.register(T, { arn: root.id, name: 'target', kind: 'engine-key' })
    const m = await tk.migrate(T, p.fingerprint)
    const progress: number[] = []
    const off = tk.subscribeMigration(T, m.id, (v) => progress.push(v.done))

    // The concurrent load: four callers, until the migration is over.
    let finished = false
    const calls = { ok: 0, failed: 0 }
    const failures: string[] = []
    const created = new Map<string, string>()
    const load = async (worker: number): Promise<void> => {
      for (let i = 0; !finished; i++) {
        // Callers arrive from I/O: yield to the event loop between calls (engine calls over SoftHSM2 and
        // SQLite can complete without one, and a pure microtask loop would starve timers and the runner).
        await new Promise((resolve) => setImmediate(resolve))
        try {
          switch (i % 4) {
            case 0: {
              const k = await tk.createDataKey(T, `load-${worker}-${i}`)
              created.set(k.name, sha256(k.plaintext.bytes))
              k.plaintext.zeroize()
              break
            }
            case 1: {
              const name = `e-${String((i * 7919 + worker) % ENTRIES).padStart(6, '0')}`
              const k = await tk.getDataKey(T, name)
              if (sha256(k.plaintext.bytes) !== digests.get(name)) throw new Error(`wrong DEK for ${name}`)
              k.plaintext.zeroize()
              break
            }
            case 2: {
              const w = await tk.wrapDek(T)
              const u = await tk.unwrapDek(T, w.ciphertext)
              if (sha256(u.plaintext.bytes) !== sha256(w.plaintext.bytes))
                throw new Error('wrap/unwrap mismatch')
              w.plaintext.zeroize()
              u.plaintext.zeroize()
              break
            }
            default: {
              const h = held[i % held.length]!
              const u = await tk.unwrapDek(T, h.ciphertext)
              if (sha256(u.plaintext.bytes) !== h.digest) throw new Error('held ciphertext: wrong DEK')
              if (u.rewrapped === undefined) throw new Error('held ciphertext: no rewrapped value')
              u.plaintext.zeroize()
            }
          }
          calls.ok++
        } catch (err) {
          calls.failed++
          if (failures.length < 5) failures.push(String(err))
        }
      }
    }
    const loaders = [0, 1, 2, 3].map(load)
    const done = await tk.waitForMigration(T, m.id)
    finished = true
    await Promise.all(loaders)
    off()
    const tMigrated = Date.now()

    expect(failures).toEqual([])
    expect(calls.failed).toBe(0)
    expect(calls.ok).toBeGreaterThan(0)
    expect(done).toMatchObject({ state: 'Completed', jobState: 'completed', progress: 100 })
    const job = await jobs.get(T, m.id)
    expect(job.state).toBe('completed')
    expect(job.done).toBe(job.total)
    expect(job.total).toBeGreaterThanOrEqual(ENTRIES)
    expect(job.result).toMatchObject({ skippedCount: 0 })
    for (let i = 1; i < progress.length; i++) expect(progress[i]!).toBeGreaterThanOrEqual(progress[i - 1]!)
    expect(progress.length).toBeGreaterThan(2)

    // Every entry readable with its original DEK, every one under the target.
    const all = new Map([...digests, ...created])
    let seen = 0
    let after: string | undefined
    for (;;) {
      const page = await tk.listDataKeys(T, { limit: 1000, ...(after === undefined ? {} : { after }) })
      if (page.length === 0) break
      for (const info of page) expect(info.providerFingerprint).toBe(p.fingerprint)
      seen += page.length
      after = page[page.length - 1]!.name
    }
    expect(seen).toBe(all.size)
    for (const name of all.keys()) {
      const k = await tk.getDataKey(T, name)
      expect(sha256(k.plaintext.bytes)).toBe(all.get(name))
      k.plaintext.zeroize()
    }
    const tEnd = Date.now()
    console.log(
      `migration load test: ${ENTRIES} entries; setup ${tSetup - t0} ms; migration ${tMigrated - tSetup} ms ` +
        `(${Math.round((ENTRIES / (tMigrated - tSetup)) * 1000)} entries/s with load); ${calls.ok} concurrent calls; ` +
        `${progress.length} progress events; verify ${tEnd - tMigrated} ms`,
    )
  }, 600_000)
})
