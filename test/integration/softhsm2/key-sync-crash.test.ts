/**
 * kill -9 during a synchronization job, on real SoftHSM2 tokens and a real SQLite catalog: N AES keys are
 * made directly on the second token; a child process (test/helpers/sync-child.ts,
 * createEngineServicesFromConfig) starts or resumes the pkcs11 synchronization of that token and is
 * SIGKILLed at random points, at least 10 times (during start-up, right after the job was submitted, after a
 * random number of durable progress steps), each time restarted; then it is let finish. The one job
 * completes; every key is linked exactly once, present, usable, and wraps and unwraps.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { SecretBytes } from '../../../src/index.js'
import { env, tempCatalogPath } from '../../helpers/engine.js'
import { openServices } from '../../helpers/tenant-keys.js'
import { createAesKeys, secondTokenConnection } from '../../helpers/sync.js'

const CHILD = join(import.meta.dirname, '../../helpers/sync-child.ts')
const T = 'sync-crash'
const N = 1500
const KILLS = 12

interface Run {
  killedAfterProgress: number
  killed: boolean
  out: string
}

function runChild(
  catalog: string,
  killWhen: ((line: string, n: number) => boolean) | undefined,
  killAfterMs?: number,
): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, catalog, T], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  let progress = 0
  let killed = false
  const kill = (): void => {
    if (!killed) {
      killed = true
      child.kill('SIGKILL')
    }
  }
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d
    for (const line of d.split('\n')) {
      if (line.startsWith('P ')) progress++
      if (killWhen !== undefined && line !== '' && killWhen(line, progress)) kill()
    }
  })
  const timer = killAfterMs === undefined ? undefined : setTimeout(kill, killAfterMs)
  return new Promise((resolve, reject) => {
    child.on('exit', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer)
      if (signal === 'SIGKILL' || code === 0) resolve({ killedAfterProgress: progress, killed, out })
      else reject(new Error(`child exited ${String(code)} ${String(signal)}: ${err.slice(-2000)}`))
    })
  })
}

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

    const kills: string[] = []
    for (let i = 0; i < KILLS; i++) {
      const kind = i % 3
      const target = 1 + Math.floor(Math.random() * 30)
      const r = await runChild(
        catalog,
        (line, progress) => {
          if (line.startsWith('DONE')) return false
          if (kind === 1) return line.startsWith('STARTED')
          if (kind === 2) return progress >= target
          return false
        },
        kind === 0 ? 300 + Math.floor(Math.random() * 900) : undefined,
      )
      kills.push(
        r.killed ? `kill@${kind === 1 ? 'started' : `progress${r.killedAfterProgress}`}` : 'finished',
      )
      if (r.out.includes('DONE')) break
    }
    const last = await runChild(catalog, undefined)
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
