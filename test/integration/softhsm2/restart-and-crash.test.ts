/**
 * Nothing acknowledged is lost: a fresh engine process on the same token and catalog unwraps everything
 * made before, and a process killed at a random moment leaves no unusable state.
 */
import { spawn, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openTestEngine, tempCatalogPath } from '../../helpers/engine.js'

const CHILD = join(import.meta.dirname, '../../helpers/child.ts')
const NODE_ARGS = ['--import', 'tsx', CHILD]

describe('restart', () => {
  it('a fresh engine process on the same token and catalog unwraps everything made before', async () => {
    const t = await openTestEngine()
    const items: {
      instance: string
      keyId: string
      ciphertext: string
      aad: string[]
      plaintext: string
      version: number
    }[] = []
    for (let k = 0; k < 3; k++) {
      const key = await t.engine.createKey(`inst-${k}`, { name: `restart-${k}` })
      for (let v = 1; v <= 3; v++) {
        for (let i = 0; i < 3; i++) {
          const w = await t.engine.wrap(`inst-${k}`, key.id, { aad: [`${k}/${v}/${i}`] })
          items.push({
            instance: `inst-${k}`,
            keyId: key.id,
            ciphertext: w.ciphertext,
            aad: [`${k}/${v}/${i}`],
            plaintext: w.plaintext?.toString('hex') ?? '',
            version: v,
          })
        }
        if (v < 3) {
          t.clock.advance(3_600_000)
          await t.engine.rotate(`inst-${k}`, key.id)
        }
      }
    }
    await t.engine.close()
    const file = join(dirname(t.catalogPath), 'items.json')
    writeFileSync(file, JSON.stringify(items))
    const r = spawnSync(process.execPath, [...NODE_ARGS, 'unwrap', t.catalogPath, file], {
      encoding: 'utf8',
      timeout: 60_000,
    })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const out = JSON.parse(r.stdout) as { plaintext: string; keyVersion: number }[]
    expect(out).toHaveLength(items.length)
    out.forEach((o, i) => {
      expect(o.plaintext).toBe(items[i]?.plaintext)
      expect(o.keyVersion).toBe(items[i]?.version)
    })
  })
})

describe('crash', () => {
  it('after SIGKILL at a random moment, every acknowledged key and ciphertext works and no orphan survives reconcile', async () => {
    const catalogPath = tempCatalogPath()
    const lines: string[] = []
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, [...NODE_ARGS, 'churn', catalogPath], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let buf = ''
      child.stdout.setEncoding('utf8')
      child.stdout.on('data', (d: string) => {
        buf += d
      })
      // let it run until it has acknowledged some work, then kill it without warning
      await new Promise<void>((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error('child made no progress')), 30_000)
        const poll = setInterval(() => {
          if (buf.split('\n').length > 10 + Math.floor(Math.random() * 40)) {
            clearInterval(poll)
            clearTimeout(deadline)
            child.kill('SIGKILL')
            resolve()
          }
        }, 1)
      })
      await new Promise((r) => child.once('exit', r))
      // only complete lines were acknowledged
      lines.push(...buf.split('\n').slice(0, -1))
    }
    const t = await openTestEngine({ catalogPath, engine: { reconcileOnStart: false } })
    t.clock.t = Date.now() + 120_000 // past the reconcile grace period of the killed writers
    const report = await t.engine.reconcile()
    expect(report.unknown).toEqual([])
    expect(report.inProgress).toBe(0)
    const objects = (await t.provider.listObjects()).filter((o) => o.catalogId === t.store.catalogId)
    // every HSM object of this catalog now has a version row, and every version row an HSM object
    for (const o of objects) {
      const rows = await t.store.listVersions('churn', o.keyId)
      expect(rows.find((v) => v.version === o.version)?.providerRef).toBe(o.ref)
    }
    const keys = await t.engine.listKeys('churn', { limit: 5000 })
    for (const k of keys.keys) {
      for (const v of await t.store.listVersions('churn', k.id)) {
        expect(objects.some((o) => o.ref === v.providerRef)).toBe(true)
      }
    }
    expect(await t.store.listPending()).toEqual([])
    // every acknowledged key exists and every acknowledged ciphertext unwraps
    const acked = lines.map(
      (l) =>
        JSON.parse(l) as {
          created?: string
          keyId?: string
          ciphertext?: string
          aad?: string[]
          plaintext?: string
        },
    )
    expect(acked.filter((a) => a.ciphertext !== undefined).length).toBeGreaterThan(3)
    for (const a of acked) {
      if (a.created !== undefined) expect((await t.engine.getKey('churn', a.created)).id).toBe(a.created)
      if (a.ciphertext !== undefined) {
        const u = await t.engine.unwrap('churn', a.keyId ?? '', a.ciphertext, { aad: a.aad ?? [] })
        expect(u.plaintext.toString('hex')).toBe(a.plaintext)
      }
    }
    await t.engine.close()
  })
})
