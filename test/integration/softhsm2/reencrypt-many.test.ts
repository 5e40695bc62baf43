/**
 * reencryptMany against the real token: ciphertexts of one key moved to another key's latest version,
 * inline and on the piscina worker pool (the provider migration job's HSM → HSM path).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createEngine,
  type BatchItemResult,
  type BatchTask,
  type EnvelopeEngine,
} from '../../../src/index.js'
import { createWorkerPool, type WorkerPool } from '../../../src/pool/index.js'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'
import { env, ManualClock, openProvider, SOFTHSM_MODULE, tempCatalogPath } from '../../helpers/engine.js'
import { expectCode } from '../../helpers/expect-code.js'

const I = 'reencrypt-many'
const OTHER = 'reencrypt-many-other'

/** The pool, with every task and result it ran kept for inspection. */
function recordingPool(): { pool: WorkerPool; seen: { task: BatchTask; out: BatchItemResult[] }[] } {
  const pool = createWorkerPool({
    pkcs11: { module: SOFTHSM_MODULE, tokenLabel: env('EKMS_TEST_TOKEN'), pin: env('EKMS_TEST_PIN') },
    threads: 2,
  })
  const seen: { task: BatchTask; out: BatchItemResult[] }[] = []
  const run = pool.run.bind(pool)
  pool.run = async (task, signal) => {
    const out = await run(task, signal)
    seen.push({ task, out })
    return out
  }
  return { pool, seen }
}

function codes(out: readonly { ok: boolean; error?: { code: string } }[]): string[] {
  return out.map((r) => (r.ok ? 'ok' : (r.error?.code ?? '?')))
}

for (const mode of ['inline', 'worker pool (2 threads)'] as const) {
  describe(`reencryptMany, ${mode}`, () => {
    let engine: EnvelopeEngine
    let clock: ManualClock
    let recorded: ReturnType<typeof recordingPool> | undefined
    beforeAll(async () => {
      clock = new ManualClock()
      recorded = mode === 'inline' ? undefined : recordingPool()
      engine = await createEngine({
        provider: await openProvider(),
        store: await openSqliteStore({ path: tempCatalogPath() }),
        clock,
        lifecycle: { minRotationIntervalMs: 0 },
        ...(recorded === undefined ? {} : { pool: recorded.pool }),
      })
    })
    afterAll(async () => {
      await engine.close()
    })

    it('moves ciphertexts of two source versions to the destination; they decrypt under it, bad items fail alone', async () => {
      const a = (await engine.createKey(I, { name: 'source' })).id
      const b = (await engine.createKey(I, { name: 'destination' })).id
      const c = (await engine.createKey(I, { name: 'another' })).id
      const v1 = await engine.wrapMany(I, a, 300, { aad: ['t'] })
      await engine.rotate(I, a)
      const v2 = await engine.wrapMany(I, a, 300, { aad: ['t'] })
      const all = [...v1, ...v2].map((r) => {
        if (!r.ok) throw r.error
        return { ciphertext: r.ciphertext, dek: r.plaintext ?? Buffer.alloc(0) }
      })
      const ofC = await engine.wrapMany(I, c, 1, { aad: ['t'] })
      const tampered = Buffer.from(all[7]?.ciphertext ?? '', 'base64')
      tampered[45] = (tampered[45] as number) ^ 1
      const inputs: (string | Uint8Array)[] = all.map((x) => x.ciphertext)
      inputs.push(tampered, ofC[0]?.ok === true ? ofC[0].ciphertext : '', 'not base64!')
      const progress: number[] = []
      const out = await engine.reencryptMany(I, b, inputs, {
        aad: ['t'],
        chunkSize: 64,
        onProgress: (d) => progress.push(d),
      })
      expect(codes(out.slice(600))).toEqual([
        'UNWRAP_AAD_MISMATCH',
        'CIPHERTEXT_INVALID',
        'CIPHERTEXT_INVALID',
      ])
      expect(progress.at(-1)).toBe(603)
      const bVersion = (await engine.getKey(I, b)).keyVersion.number
      const moved = out.slice(0, 600).map((r, i) => {
        if (!r.ok) throw r.error
        expect(r.sourceKeyId).toBe(a)
        expect(r.sourceKeyVersion.number).toBe(i < 300 ? 1 : 2)
        expect(r.keyVersion.number).toBe(bVersion)
        return r.ciphertext
      })
      const u = await engine.unwrapMany(I, b, moved, { aad: ['t'] })
      u.forEach((r, i) => {
        if (!r.ok) throw r.error
        expect(r.plaintext.equals(all[i]?.dek ?? Buffer.alloc(1))).toBe(true)
        expect(r.rewrapped).toBeUndefined()
      })
      // a single unwrap agrees, and the source no longer reads them
      expect(
        (await engine.unwrap(I, b, moved[0] ?? '', { aad: ['t'] })).plaintext.equals(
          all[0]?.dek ?? Buffer.alloc(1),
        ),
      ).toBe(true)
      expect(codes(await engine.unwrapMany(I, a, moved.slice(0, 2), { aad: ['t'] }))).toEqual([
        'CIPHERTEXT_INVALID',
        'CIPHERTEXT_INVALID',
      ])
      if (recorded !== undefined) {
        // on the pool: 'reencrypt' tasks carrying the source's versions and the destination's latest; no
        // DEK came back from a worker
        const tasks = recorded.seen.filter((s) => s.task.op === 'reencrypt')
        expect(tasks.length).toBeGreaterThanOrEqual(10)
        for (const { task, out: results } of tasks) {
          expect(task.versions.map((v) => v.number)).toEqual([1, 2])
          expect(task.latest.number).toBe(bVersion)
          for (const r of results) expect(r.ok && r.plaintext !== undefined).toBe(false)
        }
      }
    })

    it('a disabled destination or source refuses the whole batch; with both active it runs', async () => {
      const a = (await engine.createKey(I, { name: 'src-state' })).id
      const b = (await engine.createKey(I, { name: 'dst-state' })).id
      const cts = (await engine.wrapMany(I, a, 20)).map((r) => (r.ok ? r.ciphertext : ''))
      await engine.disable(I, b)
      await expectCode(engine.reencryptMany(I, b, cts), 'KEY_ACTION_INVALID_STATE_ERR')
      clock.advance(60_000)
      await engine.enable(I, b)
      await engine.disable(I, a)
      await expectCode(engine.reencryptMany(I, b, cts), 'KEY_ACTION_INVALID_STATE_ERR')
      clock.advance(60_000)
      await engine.enable(I, a)
      expect(codes(await engine.reencryptMany(I, b, cts)).every((x) => x === 'ok')).toBe(true)
    })

    it('keeps instances apart: a ciphertext of another instance is not found as a source, or fails alone', async () => {
      const theirs = (await engine.createKey(OTHER, { name: 'theirs' })).id
      const mine = (await engine.createKey(I, { name: 'mine' })).id
      const dest = (await engine.createKey(I, { name: 'mine-dest' })).id
      const foreign = (await engine.wrapMany(OTHER, theirs, 2)).map((r) => (r.ok ? r.ciphertext : ''))
      const own = (await engine.wrapMany(I, mine, 2)).map((r) => (r.ok ? r.ciphertext : ''))
      await expectCode(engine.reencryptMany(I, dest, foreign), 'KEY_NOT_FOUND_ERR')
      await expectCode(engine.reencryptMany(I, dest, own, { sourceKeyId: theirs }), 'KEY_NOT_FOUND_ERR')
      const out = await engine.reencryptMany(I, dest, [own[0] ?? '', foreign[0] ?? '', own[1] ?? ''])
      expect(codes(out)).toEqual(['ok', 'CIPHERTEXT_INVALID', 'ok'])
      // and the destination's ciphertexts are bound to this instance
      const moved = out.flatMap((r) => (r.ok ? [r.ciphertext] : []))
      await expectCode(engine.unwrap(OTHER, dest, moved[0] ?? ''), 'KEY_NOT_FOUND_ERR')
    })
  })
}
