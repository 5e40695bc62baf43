/**
 * Crash-safe purge on a real SoftHSM2 token and SQLite file: an engine process purging a key of six
 * versions is killed with SIGKILL at several points (before the purging mark, after 0, 1, 3 destroyed
 * objects, after all of them); a fresh engine on the same token and catalog then refuses to restore the key,
 * finishes the purge (reconcile() or the purge run again), and leaves no object of the key on the token.
 * Also: a provider failure in the middle of the loop, and a version object lost behind the engine's back.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createEngine, EngineError, type RootKeyProvider } from '../../../src/index.js'
import { expectCode } from '../../helpers/expect-code.js'
import { ManualClock, openProvider, openTestEngine, type TestEngine } from '../../helpers/engine.js'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'

const CHILD = join(import.meta.dirname, '../../helpers/child.ts')
const NODE_ARGS = ['--import', 'tsx', CHILD]
const I = 'purge-crash'
const VERSIONS = 6

interface Prepared {
  catalogPath: string
  keyId: string
  /** One ciphertext under each version, oldest first. */
  ciphertexts: string[]
  clock: ManualClock
}

/** A deleted key of six versions with a ciphertext under each; the engine is closed afterwards. */
async function prepare(): Promise<Prepared> {
  // The child purges on the system clock: the key is deleted a day before it, so purge is allowed there.
  const clock = new ManualClock()
  clock.t = Date.now() - 24 * 3_600_000
  const t = await openTestEngine({ clock, engine: { lifecycle: { minRotationIntervalMs: 0 } } })
  const k = await t.engine.createKey(I, { name: 'six-versions' })
  const ciphertexts: string[] = []
  for (let v = 1; v <= VERSIONS; v++) {
    ciphertexts.push((await t.engine.wrap(I, k.id)).ciphertext)
    if (v < VERSIONS) await t.engine.rotate(I, k.id)
  }
  expect(await objectsOf(t.provider, k.id)).toHaveLength(VERSIONS)
  await t.engine.deleteKey(I, k.id)
  await t.engine.close()
  return { catalogPath: t.catalogPath, keyId: k.id, ciphertexts, clock: t.clock }
}

async function objectsOf(provider: RootKeyProvider, keyId: string): Promise<string[]> {
  return (await provider.listObjects()).filter((o) => o.keyId === keyId).map((o) => o.ref)
}

/** Runs the purge in a child process that stops at `hangAt`, and kills it there with SIGKILL. */
async function purgeAndKill(p: Prepared, hangAt: string): Promise<void> {
  const child = spawn(process.execPath, [...NODE_ARGS, 'purge', p.catalogPath, I, p.keyId, hangAt], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, sig) => resolve(sig)))
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(
      () => reject(new Error(`child never reached ${hangAt}: ${out} ${err}`)),
      60_000,
    )
    const poll = setInterval(() => {
      if (out.includes('HANG')) {
        clearTimeout(deadline)
        clearInterval(poll)
        resolve()
      } else if (child.exitCode !== null) {
        clearTimeout(deadline)
        clearInterval(poll)
        reject(new Error(`child exited before ${hangAt}: ${out} ${err}`))
      }
    }, 20)
  })
  child.kill('SIGKILL')
  expect(await exited).toBe('SIGKILL')
  expect(out).not.toContain('PURGED')
}

/** A fresh engine on the same token and catalog, not reconciling at start, past the restore cool-down. */
async function restart(p: Prepared): Promise<TestEngine> {
  p.clock.advance(60_000)
  return openTestEngine({ catalogPath: p.catalogPath, clock: p.clock, engine: { reconcileOnStart: false } })
}

/** The old ciphertexts fail with a typed error that is not retryable (never PROVIDER_* "try again later"). */
async function oldCiphertextsRefused(
  t: TestEngine,
  p: Prepared,
  code: 'KEY_DELETED_ERR' | 'KEY_NOT_FOUND_ERR',
): Promise<void> {
  for (const c of [p.ciphertexts[0] ?? '', p.ciphertexts[VERSIONS - 1] ?? '']) {
    const e = await expectCode(t.engine.unwrap(I, p.keyId, c), code)
    expect(e.retryable).toBe(false)
  }
}

async function purgedForGood(t: TestEngine, p: Prepared): Promise<void> {
  expect(await objectsOf(t.provider, p.keyId)).toEqual([])
  expect(await t.store.getKey(I, p.keyId)).toBeUndefined()
  expect(await t.store.listVersions(I, p.keyId)).toEqual([])
  expect(await t.store.listPurging()).toEqual([])
  await expectCode(t.engine.getKey(I, p.keyId), 'KEY_NOT_FOUND_ERR')
  await expectCode(t.engine.restoreKey(I, p.keyId), 'KEY_NOT_FOUND_ERR')
  await oldCiphertextsRefused(t, p, 'KEY_NOT_FOUND_ERR')
}

describe('purge killed with SIGKILL', () => {
  for (const [hangAt, destroyedBefore, finish] of [
    ['destroy:0', 0, 'reconcile'],
    ['destroy:1', 1, 'reconcile'],
    ['destroy:3', 3, 'purge again'],
    ['rows', VERSIONS, 'reconcile'],
  ] as const) {
    it(`after ${destroyedBefore} of ${VERSIONS} objects destroyed: restore refuses, ${finish} finishes the purge`, async () => {
      const p = await prepare()
      await purgeAndKill(p, hangAt)
      const t = await restart(p)
      try {
        expect(await objectsOf(t.provider, p.keyId)).toHaveLength(VERSIONS - destroyedBefore)
        expect((await t.store.getKey(I, p.keyId))?.purgingSince).toBeTypeOf('number')
        const e = await expectCode(t.engine.restoreKey(I, p.keyId), 'KEY_PURGE_IN_PROGRESS_ERR')
        expect(e.retryable).toBe(false)
        expect((await t.engine.getKey(I, p.keyId)).state).toBe(5)
        await oldCiphertextsRefused(t, p, 'KEY_DELETED_ERR')
        if (finish === 'reconcile') {
          const report = await t.engine.reconcile()
          expect(report.purged).toEqual([{ instance: I, keyId: p.keyId }])
          expect(report.missing).toEqual([])
          expect(report.adopted).toEqual([])
        } else {
          await t.engine.purgeKey(I, p.keyId)
        }
        await purgedForGood(t, p)
      } finally {
        await t.engine.close()
      }
    })
  }

  it('before the purging mark: nothing was destroyed, the key is intact and deleted; the purge run again finishes', async () => {
    const p = await prepare()
    await purgeAndKill(p, 'mark')
    const t = await restart(p)
    try {
      expect(await objectsOf(t.provider, p.keyId)).toHaveLength(VERSIONS)
      expect((await t.store.getKey(I, p.keyId))?.purgingSince).toBeUndefined()
      const report = await t.engine.reconcile()
      expect(report.purged).toEqual([])
      expect(report.missing).toEqual([])
      await oldCiphertextsRefused(t, p, 'KEY_DELETED_ERR')
      p.clock.advance(4 * 3_600_000)
      await t.engine.purgeKey(I, p.keyId)
      await purgedForGood(t, p)
    } finally {
      await t.engine.close()
    }
  })

  it('a fresh engine reconciling at start finishes an interrupted purge by itself', async () => {
    const p = await prepare()
    await purgeAndKill(p, 'destroy:2')
    p.clock.advance(60_000)
    const t = await openTestEngine({ catalogPath: p.catalogPath, clock: p.clock })
    try {
      await purgedForGood(t, p)
    } finally {
      await t.engine.close()
    }
  })
})

describe('purge with a provider failure in the middle of the loop', () => {
  it('fails, leaves the key purging (restore refused), and the purge run again completes', async () => {
    const p = await prepare()
    const store = await openSqliteStore({ path: p.catalogPath })
    const real = await openProvider()
    let destroys = 0
    const provider: RootKeyProvider = new Proxy(real, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown
        if (typeof v !== 'function') return v
        const fn = (v as (...a: unknown[]) => Promise<unknown>).bind(target)
        if (prop !== 'destroyVersion') return fn
        return async (...args: unknown[]) => {
          if (++destroys === 4) throw new EngineError('PROVIDER_UNAVAILABLE', 'pkcs11: injected failure')
          return fn(...args)
        }
      },
    })
    p.clock.advance(4 * 3_600_000)
    const engine = await createEngine({ provider, store, clock: p.clock })
    try {
      await expectCode(engine.purgeKey(I, p.keyId), 'PROVIDER_UNAVAILABLE')
      expect(await objectsOf(real, p.keyId)).toHaveLength(VERSIONS - 3)
      await expectCode(engine.restoreKey(I, p.keyId), 'KEY_PURGE_IN_PROGRESS_ERR')
      const e = await expectCode(engine.unwrap(I, p.keyId, p.ciphertexts[0] ?? ''), 'KEY_DELETED_ERR')
      expect(e.retryable).toBe(false)
      await engine.purgeKey(I, p.keyId)
      expect(await objectsOf(real, p.keyId)).toEqual([])
      expect(await store.getKey(I, p.keyId)).toBeUndefined()
    } finally {
      await engine.close()
    }
  })
})

describe('a version object lost behind the engine', () => {
  it('reconcile() reports it; unwrap is KEY_VERSION_MATERIAL_MISSING (not retryable); the other versions work', async () => {
    const a = await openTestEngine({ engine: { lifecycle: { minRotationIntervalMs: 0 } } })
    const k = await a.engine.createKey(I, { name: 'lost-object' })
    const old = await a.engine.wrap(I, k.id)
    await a.engine.rotate(I, k.id)
    const fresh = await a.engine.wrap(I, k.id)
    const v1 = (await a.store.listVersions(I, k.id)).find((v) => v.version === 1)
    if (v1 === undefined) throw new Error('no version 1')
    await a.engine.close()
    // Destroyed on the token, catalog untouched (what restore of a half-purged key used to leave behind).
    const other = await openProvider()
    await other.destroyVersion(v1.providerRef)
    await other.close()
    const t = await openTestEngine({ catalogPath: a.catalogPath, clock: a.clock })
    try {
      const report = await t.engine.reconcile()
      expect(report.missing).toEqual([{ instance: I, keyId: k.id, version: 1, ref: v1.providerRef }])
      const e = await expectCode(t.engine.unwrap(I, k.id, old.ciphertext), 'KEY_VERSION_MATERIAL_MISSING')
      expect(e.retryable).toBe(false)
      const again = await expectCode(t.engine.unwrap(I, k.id, old.ciphertext), 'KEY_VERSION_MATERIAL_MISSING')
      expect(again.retryable).toBe(false)
      expect((await t.engine.unwrap(I, k.id, fresh.ciphertext)).plaintext).toEqual(fresh.plaintext)
    } finally {
      await t.engine.close()
    }
  })
})
