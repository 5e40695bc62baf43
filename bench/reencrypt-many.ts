/**
 * reencryptMany (key A → key B) against rewrapMany (key A → A's latest) of the same N ciphertexts, on the
 * worker pool (2 threads) over SoftHSM2, tasks interleaved run by run. Both are one AES-GCM decryption and
 * one encryption per item in the worker, so the ratio reencryptMany / rewrapMany should be about 1: the
 * provider migration's HSM → HSM path (issue 14) costs what a rotation's rewrap costs.
 *
 *   npm run bench:reencrypt-many           # 8 runs × 1 s per task; writes bench/results/reencrypt-many.json
 *   BENCH_SMOKE=1 npm run bench:reencrypt-many
 *
 * Knobs: BENCH_REENCRYPT_N (ciphertexts per batch, 2,000), BENCH_RUNS (8, rounded up to even),
 * BENCH_TIME_MS (1000), BENCH_WARMUP_MS (200), BENCH_POOL_THREADS (2). One tinybench iteration is one whole
 * batch (and tinybench makes at least 16 warm-up and 16 measured ones per task and run); ops/s in the table
 * are ciphertexts per second (batches/s × N), latencies are per batch.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { interleaved, pairedRatio, report, settings, SMOKE, type Row, type Task } from './harness.js'
import { createEngine, loadConfig } from '../dist/index.js'
import { createPkcs11Provider } from '../dist/providers/pkcs11/index.js'
import { createWorkerPool } from '../dist/pool/index.js'
import { openSqliteStore } from '../dist/store/sqlite/index.js'

process.env['SOFTHSM2_CONF'] ??= resolve('softhsm2.conf')

const config = loadConfig()
const N = SMOKE ? 500 : Number(process.env['BENCH_REENCRYPT_N'] ?? 2_000)
const THREADS = Number(process.env['BENCH_POOL_THREADS'] ?? 2)
const dir = mkdtempSync(join(tmpdir(), 'ekms-bench-reencrypt-'))
const I = 'bench'

const engine = await createEngine({
  provider: await createPkcs11Provider(config.pkcs11),
  store: await openSqliteStore({ path: join(dir, 'catalog.sqlite') }),
  lifecycle: { minRotationIntervalMs: 0 },
  pool: createWorkerPool({ pkcs11: config.pkcs11, threads: THREADS }),
})
const a = (await engine.createKey(I, { name: 'bench-reencrypt-source' })).id
const b = (await engine.createKey(I, { name: 'bench-reencrypt-destination' })).id
const cts = (await engine.wrapMany(I, a, N)).map((r) => {
  if (!r.ok) throw r.error
  return r.ciphertext
})

/** One batch; throws unless every item succeeded (a failing item would make the batch look faster). */
async function all(p: Promise<readonly { ok: boolean }[]>): Promise<void> {
  const out = await p
  if (out.length !== N || !out.every((r) => r.ok)) throw new Error('a batch item failed')
}

const tasks: Task[] = [
  [`rewrapMany of ${N} (A → A latest), pool of ${THREADS}`, () => all(engine.rewrapMany(I, a, cts)), true],
  [`reencryptMany of ${N} (A → B), pool of ${THREADS}`, () => all(engine.reencryptMany(I, b, cts)), true],
]
// Odd runs go through the tasks in reverse: neither always runs first (on a busy host the first of a pair
// often meets other load than the second).
const S = settings({ runs: 8, timeMs: 1000, warmupMs: 200 }, { evenRuns: true })
const rows = await interleaved(tasks, S, { itemsPerCall: N, alternate: true })
const rewrap = rows[0] as Row
const reencrypt = rows[1] as Row
report(
  'reencrypt-many',
  `reencryptMany vs rewrapMany of ${N.toLocaleString('en')} ciphertexts on the pool (${THREADS} threads), ${S.runs} run(s) of ${S.timeMs} ms; ops/s = ciphertexts/s, µs per batch`,
  {
    settings: { ...S, n: N, poolThreads: THREADS, chunkSize: 256, dekBytes: 32 },
    rows,
    ratios: {
      'reencryptMany / rewrapMany (ciphertexts/s, per run)': pairedRatio(reencrypt, rewrap, {
        quartiles: true,
      }),
      'rewrapMany ciphertexts/s (median)': rewrap.opsPerSec,
      'reencryptMany ciphertexts/s (median)': reencrypt.opsPerSec,
    },
  },
)

await engine.close()
rmSync(dir, { recursive: true, force: true })
