/**
 * kill -9 of the server (`envelope-kms serve`, the built CLI, as operators run it) during a key-provider
 * migration started over the Qlik API, on a real SoftHSM2 token and SQLite catalog. The server is SIGKILLed
 * at least 10 times at random points (during start-up, right after the migrate call, after random progress
 * steps seen through GET …/migration/actions/details), restarted each time — its job runner resumes the
 * migration — and finally let finish. Every entry then unwraps to its original DEK, exactly one layer under
 * the target, and there was only ever one migration job. The restarted server takes the job over at once
 * (the dead process's lease names a pid of this machine that no longer exists: core/jobs/local-owner.ts),
 * not after the 30 s lease. (The library-process variant with more kill points: tenant-keys-crash.test.ts.)
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseWrappedDek } from '../../../src/index.js'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'
import { env, tempCatalogPath } from '../../helpers/engine.js'
import { openServices, sha256 } from '../../helpers/tenant-keys.js'

const T = 'serve-crash'
const N = 3000
const KILLS = 12
const API_KEY = 'serve-crash-qlik-api-key-0123456789'

interface Server {
  readonly child: ChildProcess
  readonly url: Promise<string>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

function startServe(catalog: string, authFile: string): Server {
  const child = spawn(process.execPath, ['dist/cli/main.js', 'serve'], {
    env: {
      ...process.env,
      EKMS_PKCS11_TOKEN_LABEL: env('EKMS_TEST_TOKEN'),
      EKMS_PKCS11_PIN: env('EKMS_TEST_PIN'),
      EKMS_CATALOG: catalog,
      EKMS_AUTH_FILE: authFile,
      EKMS_HTTP_PORT: '0',
      // One entry a batch, a durable checkpoint each: the migration outlasts the kills, many points between.
      EKMS_MIGRATION_BATCH_SIZE: '1',
      EKMS_MIGRATION_CHECKPOINT_MS: '0',
      EKMS_AUDIT_LOG: join(env('EKMS_TEST_FILE_DIR'), 'serve-crash-audit.log'),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  )
  const url = new Promise<string>((resolve, reject) => {
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString()
      const m = /"url":"(http:\/\/[^"]+)"/.exec(stderr)
      if (m?.[1] !== undefined) resolve(m[1])
    })
    void exited.then(({ code, signal }) =>
      reject(new Error(`serve exited ${code} ${signal}: ${stderr.slice(-2000)}`)),
    )
  })
  url.catch(() => undefined)
  return { child, url, exited }
}

interface Details {
  readonly status: number
  readonly state?: string
  readonly progress?: number
}

async function details(url: string): Promise<Details> {
  const r = await fetch(`${url}/api/v1/encryption/keyproviders/migration/actions/details`, {
    headers: { authorization: `Bearer ${API_KEY}` },
  })
  const body = (await r.json()) as { state?: string; progress?: number }
  return { status: r.status, ...body }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('kill -9 of envelope-kms serve during a migration', () => {
  it(`is killed ${KILLS} times at random points, resumes each time, and completes: nothing lost, nothing wrapped twice`, async () => {
    const catalog = tempCatalogPath()
    const authFile = join(env('EKMS_TEST_FILE_DIR'), 'serve-crash-auth.json')
    writeFileSync(
      authFile,
      JSON.stringify({ apiKeys: [{ key: API_KEY, subject: 'ops', instances: [T], actions: ['*'] }] }),
      { mode: 0o600 },
    )
    const digests = new Map<string, string>()
    let fp: string
    let targetKeyId: string
    {
      const s = await openServices(catalog)
      for (let i = 0; i < N; i++) {
        const k = await s.tenantKeys.createDataKey(T, `e-${String(i).padStart(5, '0')}`)
        digests.set(k.name, sha256(k.plaintext.bytes))
        k.plaintext.zeroize()
      }
      const root = await s.engine.createKey(T, { name: 'serve-crash-target' })
      targetKeyId = root.id
      fp = (await s.tenantKeys.register(T, { arn: root.id, name: 'target', kind: 'engine-key' })).fingerprint
      await s.close()
    }

    const kills: string[] = []
    let started = false
    let lastProgress = 0
    for (let i = 0; i < KILLS; i++) {
      const srv = startServe(catalog, authFile)
      const url = await srv.url
      const kind = i % 3
      let point = 'finished'
      if (!started) {
        const r = await fetch(`${url}/api/v1/encryption/keyproviders/${fp}/actions/migrate`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_KEY}` },
        })
        expect(r.status).toBe(200)
        started = true
        if (kind === 1) point = 'after-migrate'
      }
      if (point === 'finished') {
        if (kind === 0) {
          await sleep(Math.floor(Math.random() * 400))
          point = 'random-delay'
        } else {
          const step = 1 + Math.floor(Math.random() * 8)
          for (;;) {
            const d = await details(url)
            if (d.state === 'Completed') break
            if ((d.progress ?? 0) >= lastProgress + step) {
              point = `progress${String(d.progress)}`
              break
            }
            await sleep(10)
          }
        }
      }
      const d = await details(url).catch(() => undefined)
      if (d?.state === 'Completed' && point !== 'after-migrate') {
        kills.push('finished')
        srv.child.kill('SIGTERM')
        await srv.exited
        break
      }
      lastProgress = Math.max(lastProgress, d?.progress ?? 0)
      srv.child.kill('SIGKILL')
      const { signal } = await srv.exited
      expect(signal).toBe('SIGKILL')
      kills.push(`kill@${point}`)
    }
    // Finally let it run to the end.
    const srv = startServe(catalog, authFile)
    const url = await srv.url
    for (;;) {
      const d = await details(url)
      expect(d.status).toBe(200)
      if (d.state === 'Completed') break
      await sleep(50)
    }
    srv.child.kill('SIGTERM')
    expect((await srv.exited).code).toBe(0)
    console.log(`serve crash test: ${kills.join(', ')}; then finished`)
    expect(kills.filter((k) => k.startsWith('kill')).length).toBeGreaterThanOrEqual(10)

    const s = await openServices(catalog)
    try {
      const m = await s.tenantKeys.migration(T)
      expect(m).toMatchObject({ state: 'Completed', jobState: 'completed', migratingToFingerprint: fp })
      expect(m.total).toBe(N)
      expect((await s.jobs.list(T)).total).toBe(1) // one migration job, resumed, never a second
      for (const [name, digest] of digests) {
        const k = await s.tenantKeys.getDataKey(T, name)
        expect(sha256(k.plaintext.bytes)).toBe(digest)
        expect(k.providerFingerprint).toBe(fp)
        k.plaintext.zeroize()
      }
      const store = await openSqliteStore({ path: catalog })
      try {
        const rows = await store.listDataKeys(T, { limit: N + 10 })
        expect(rows).toHaveLength(N)
        for (const r of rows) {
          const parsed = parseWrappedDek(r.wrapped)
          expect(parsed.fingerprint).toBe(fp)
          expect(parsed.ciphertext.keyId).toBe(targetKeyId)
          expect(parsed.inner.startsWith('#')).toBe(false)
        }
      } finally {
        await store.close()
      }
    } finally {
      await s.close()
    }
  }, 600_000)
})
