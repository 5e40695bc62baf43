/**
 * Key-provider migration throughput (issue 14): the `key-provider-migration` job moving N data-key catalog
 * entries HSM → HSM (the default provider ⇄ an `engine-key` provider, both root keys in SoftHSM2) and
 * HSM → AWS (an `aws-kms` provider whose key lives behind the project's own AWS-KMS-compatible endpoint on
 * loopback, over the same token), against `rewrapMany` of the same entries' values in the same run, on the
 * worker pool (2 threads). Also the p99 of concurrent `getDataKey` calls while a migration runs, against the
 * same load without one.
 *
 *   npm run bench:migration          # writes bench/results/migration.json
 *   BENCH_SMOKE=1 npm run bench:migration
 *
 * Knobs: BENCH_MIGRATION_N (entries, 20,000), BENCH_RUNS (rounds, 4), BENCH_MIGRATION_AWS_N (entries of the
 * HSM → AWS run, 2,000: one KMS call per entry over HTTP), BENCH_LOAD_CONCURRENCY (8), BENCH_LOAD_RUNS
 * (quiet/busy pairs of the latency part, 3), BENCH_MIGRATION_BATCH (256), BENCH_MIGRATION_YIELD=0 (the job
 * does not give way to foreground calls).
 *
 * Each round runs, interleaved: rewrapMany of every entry value (one call; the pool chunks it), then one
 * migration (alternating default → engine-key and back, so every round is HSM → HSM), each timed from
 * submit to `completed`. Then BENCH_LOAD_RUNS pairs: getDataKey callers for 3 s without a migration, then
 * for as long as one migration takes. Targets: migration / rewrapMany ≥ 0.8; getDataKey p99 during /
 * without ≤ 2 (per pair: median and range).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { serve } from '@hono/node-server'
import { CreateKeyCommand, KMSClient, ReplicateKeyCommand } from '@aws-sdk/client-kms'
import { median, quantile, report, SMOKE, summarize, type Row } from './harness.js'
import {
  createEngine,
  createJobRunner,
  createTenantKeyProviders,
  lazyMigrationHandler,
  loadConfig,
  type TenantKeyProvidersService,
} from '../dist/index.js'
import { createAwsKmsApp } from '../dist/http/awskms/index.js'
import { createAwsKmsKeyBackend } from '../dist/providers/aws-kms/index.js'
import { createPkcs11Provider } from '../dist/providers/pkcs11/index.js'
import { createWorkerPool } from '../dist/pool/index.js'
import { openSqliteStore } from '../dist/store/sqlite/index.js'

process.env['SOFTHSM2_CONF'] ??= resolve('softhsm2.conf')
const config = loadConfig()
const N = SMOKE ? 1_000 : Number(process.env['BENCH_MIGRATION_N'] ?? 20_000)
const AWS_N = SMOKE ? 200 : Number(process.env['BENCH_MIGRATION_AWS_N'] ?? 2_000)
const ROUNDS = SMOKE ? 2 : Math.max(2, Number(process.env['BENCH_RUNS'] ?? 4))
const LOAD = Number(process.env['BENCH_LOAD_CONCURRENCY'] ?? 8)
const BATCH = Number(process.env['BENCH_MIGRATION_BATCH'] ?? 256)
const LOAD_ROUNDS = SMOKE ? 1 : Math.max(1, Number(process.env['BENCH_LOAD_RUNS'] ?? 3))
const QUIET_MS = SMOKE ? 1_000 : 3_000
// BENCH_MIGRATION_YIELD=0: the job does not give way to foreground calls (yieldToForeground: false).
const YIELD = process.env['BENCH_MIGRATION_YIELD'] !== '0'
// BENCH_MIGRATION_SHARE: the job's share of wall-clock time while giving way (default: the job's, 0.25).
const SHARE =
  process.env['BENCH_MIGRATION_SHARE'] === undefined
    ? undefined
    : Number(process.env['BENCH_MIGRATION_SHARE'])
const dir = mkdtempSync(join(tmpdir(), 'ekms-bench-migration-'))
const T = 'bench-tenant'
const TA = 'bench-tenant-aws'

const store = await openSqliteStore({ path: join(dir, 'catalog.sqlite') })
const engine = await createEngine({
  provider: await createPkcs11Provider(config.pkcs11),
  store,
  lifecycle: { minRotationIntervalMs: 0 },
  pool: createWorkerPool({ pkcs11: config.pkcs11, threads: 2 }),
})

// The AWS side: the project's own AWS-KMS-compatible endpoint over the same engine (another instance).
const cred = {
  accessKeyId: 'AKIABENCH00000000002',
  secretAccessKey: 'bench-secret-1111111111111111111111111111',
}
const app = createAwsKmsApp({
  engine,
  regions: ['eu-west-1', 'eu-west-3'],
  credentials: [{ ...cred, instance: 'bench-aws-account' }],
})
const server = await new Promise<ReturnType<typeof serve>>((res) => {
  const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => res(s))
})
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
const awsBackend = createAwsKmsKeyBackend({ endpoint: url, credentials: cred })

const ref: { service?: TenantKeyProvidersService } = {}
const jobs = createJobRunner({
  store,
  clock: { now: () => Date.now() },
  handlers: [lazyMigrationHandler(() => ref.service)],
})
const tk = createTenantKeyProviders({
  engine,
  store,
  jobs,
  backends: { awsKms: awsBackend },
  migration: {
    batchSize: BATCH,
    ...(YIELD
      ? SHARE === undefined
        ? {}
        : { yieldToForeground: { share: SHARE } }
      : { yieldToForeground: false as const }),
  },
})
ref.service = tk
await jobs.start()

/** Creates `n` entries in `tenant`, 64 at a time. */
async function fill(tenant: string, n: number): Promise<string[]> {
  const names: string[] = []
  for (let i = 0; i < n; i += 64) {
    const batch = Array.from(
      { length: Math.min(64, n - i) },
      (_, j) => `entry-${String(i + j).padStart(7, '0')}`,
    )
    await Promise.all(
      batch.map(async (name) => {
        const e = await tk.createDataKey(tenant, name)
        e.plaintext.zeroize()
      }),
    )
    names.push(...batch)
  }
  return names
}

/** Every entry's stored value (what rewrapMany re-wraps), read straight from the catalog. */
async function values(tenant: string): Promise<{ wrapped: string; fp: string }[]> {
  const out: { wrapped: string; fp: string }[] = []
  let after: string | undefined
  for (;;) {
    const page = await store.listDataKeys(tenant, { after, limit: 1000 })
    if (page.length === 0) return out
    out.push(...page.map((r) => ({ wrapped: r.wrapped, fp: r.providerFingerprint })))
    after = page[page.length - 1]?.name
  }
}

/** Runs one migration to `fp` ('default' = reset) and returns entries/s from submit to completion. */
async function migrate(tenant: string, fp: string, n: number): Promise<number> {
  const t0 = performance.now()
  const m = fp === 'default' ? await tk.resetToDefault(tenant) : await tk.migrate(tenant, fp)
  const done = await tk.waitForMigration(tenant, m.id)
  const s = (performance.now() - t0) / 1000
  if (done.jobState !== 'completed' || done.done !== n) {
    throw new Error(`migration ended ${done.jobState} with ${done.done}/${n}: ${JSON.stringify(done.error)}`)
  }
  return n / s
}

/** getDataKey at `LOAD` concurrency until `stop` resolves; latencies in µs, and failures. */
async function load(
  tenant: string,
  names: string[],
  stop: Promise<unknown>,
): Promise<{ lat: number[]; failed: number }> {
  const lat: number[] = []
  let failed = 0
  let running = true
  void stop.then(() => (running = false))
  await Promise.all(
    Array.from({ length: LOAD }, async (_, w) => {
      let i = w
      while (running) {
        // Yield to the timers each call: getDataKey can complete without one, and the stop signal is a timer.
        await new Promise((r) => setImmediate(r))
        const name = names[(i * 7919) % names.length] as string
        i += LOAD
        const t0 = performance.now()
        try {
          const e = await tk.getDataKey(tenant, name)
          e.plaintext.zeroize()
          lat.push((performance.now() - t0) * 1000)
        } catch {
          failed++
        }
      }
    }),
  )
  return { lat, failed }
}

const names = await fill(T, N)
const target = (await engine.createKey(T, { name: 'bench-migration-target' })).id
const hsmProvider = await tk.register(T, { kind: 'engine-key', arn: target, name: 'bench HSM provider' })

const rewrapRuns: number[] = []
const migrateRuns: number[] = []
for (let r = 0; r < ROUNDS; r++) {
  // rewrapMany of the same entries' values: the engine ciphertexts under their current key.
  const vals = await values(T)
  const keyId = r % 2 === 0 ? ((await store.getTenantKeyState(T))?.defaultKeyId as string) : target
  const cts = vals.map((v) =>
    v.wrapped.startsWith('#BYOKv1#:') ? v.wrapped.slice(v.wrapped.indexOf(':', 9) + 1) : v.wrapped,
  )
  const t0 = performance.now()
  const out = await engine.rewrapMany(T, keyId, cts)
  const s = (performance.now() - t0) / 1000
  if (!out.every((x) => x.ok)) throw new Error('a rewrapMany item failed')
  rewrapRuns.push(N / s)
  migrateRuns.push(await migrate(T, r % 2 === 0 ? hsmProvider.fingerprint : 'default', N))
  console.log(
    `round ${r + 1}/${ROUNDS}: rewrapMany ${Math.round(rewrapRuns[r] ?? 0)}/s, migration ${Math.round(migrateRuns[r] ?? 0)}/s`,
  )
}
// Back on the default provider for the load runs (ROUNDS is even).

// getDataKey latencies without and with a migration running (HSM → HSM), LOAD_ROUNDS pairs: a quiet window
// of QUIET_MS, then the same callers for as long as one migration takes (alternately to the engine-key
// provider and back). Each pair gives a p99 ratio; the rows pool every pair's latencies.
const quietRuns: { lat: number[]; failed: number }[] = []
const busyRuns: { lat: number[]; failed: number }[] = []
const busyRates: number[] = []
for (let r = 0; r < LOAD_ROUNDS; r++) {
  quietRuns.push(await load(T, names, new Promise((res) => setTimeout(res, QUIET_MS))))
  const t0 = performance.now()
  const m = r % 2 === 0 ? await tk.migrate(T, hsmProvider.fingerprint) : await tk.resetToDefault(T)
  const busyDone = tk.waitForMigration(T, m.id)
  busyRuns.push(await load(T, names, busyDone))
  const finished = await busyDone
  if (finished.jobState !== 'completed') throw new Error('the migration under load did not complete')
  busyRates.push(N / ((performance.now() - t0) / 1000))
  const q = quietRuns[r]?.lat ?? []
  const b = busyRuns[r]?.lat ?? []
  console.log(
    `load ${r + 1}/${LOAD_ROUNDS}: getDataKey p99 ${quantile(q, 0.99).toFixed(0)} µs quiet, ` +
      `${quantile(b, 0.99).toFixed(0)} µs during a migration (${Math.round(busyRates[r] ?? 0)} entries/s)`,
  )
}
if (LOAD_ROUNDS % 2 === 1) await tk.waitForMigration(T, (await tk.resetToDefault(T)).id)
const quiet = { lat: quietRuns.flatMap((x) => x.lat), failed: quietRuns.reduce((a, x) => a + x.failed, 0) }
const busy = { lat: busyRuns.flatMap((x) => x.lat), failed: busyRuns.reduce((a, x) => a + x.failed, 0) }

// HSM → AWS: a multi-region key behind the endpoint, with a replica in the DR region.
const kms = new KMSClient({ region: 'eu-west-1', endpoint: url, credentials: cred })
const key = await kms.send(new CreateKeyCommand({ MultiRegion: true, Description: 'bench migration target' }))
const arn = key.KeyMetadata?.Arn as string
await kms.send(new ReplicateKeyCommand({ KeyId: arn, ReplicaRegion: 'eu-west-3' }))
await fill(TA, AWS_N)
const awsProvider = await tk.register(TA, { arn, name: 'bench AWS provider' })
const awsRewrap: number[] = []
const toAws: number[] = []
const fromAws: number[] = []
for (let r = 0; r < ROUNDS / 2; r++) {
  const vals = await values(TA)
  const keyId = (await store.getTenantKeyState(TA))?.defaultKeyId as string
  const t0 = performance.now()
  const out = await engine.rewrapMany(
    TA,
    keyId,
    vals.map((v) => v.wrapped),
  )
  if (!out.every((x) => x.ok)) throw new Error('a rewrapMany item failed')
  awsRewrap.push(AWS_N / ((performance.now() - t0) / 1000))
  toAws.push(await migrate(TA, awsProvider.fingerprint, AWS_N))
  fromAws.push(await migrate(TA, 'default', AWS_N))
}

const p99 = (xs: number[]): number => Number(quantile(xs, 0.99).toFixed(1))
const rows: Row[] = [
  {
    name: `rewrapMany of ${N} entry values (pool of 2)`,
    opsPerSec: Math.round(median(rewrapRuns)),
    runs: rewrapRuns.map(Math.round),
    p50_us: 0,
    p99_us: 0,
  },
  {
    name: `migration job HSM → HSM of ${N} entries`,
    opsPerSec: Math.round(median(migrateRuns)),
    runs: migrateRuns.map(Math.round),
    p50_us: 0,
    p99_us: 0,
  },
  {
    name: `getDataKey ×${LOAD}, no migration (${LOAD_ROUNDS} × ${QUIET_MS / 1000} s)`,
    opsPerSec: Math.round(quiet.lat.length / ((LOAD_ROUNDS * QUIET_MS) / 1000)),
    runs: quietRuns.map((x) => p99(x.lat)),
    p50_us: Number(quantile(quiet.lat, 0.5).toFixed(1)),
    p99_us: p99(quiet.lat),
  },
  {
    name: `getDataKey ×${LOAD}, during HSM → HSM migration (${LOAD_ROUNDS} migrations)`,
    opsPerSec: 0,
    runs: busyRuns.map((x) => p99(x.lat)),
    p50_us: Number(quantile(busy.lat, 0.5).toFixed(1)),
    p99_us: p99(busy.lat),
  },
  {
    name: `migration job HSM → HSM of ${N} entries, under that load`,
    opsPerSec: Math.round(median(busyRates)),
    runs: busyRates.map(Math.round),
    p50_us: 0,
    p99_us: 0,
  },
  {
    name: `rewrapMany of ${AWS_N} entry values`,
    opsPerSec: Math.round(median(awsRewrap)),
    runs: awsRewrap.map(Math.round),
    p50_us: 0,
    p99_us: 0,
  },
  {
    name: `migration job HSM → AWS endpoint of ${AWS_N}`,
    opsPerSec: Math.round(median(toAws)),
    runs: toAws.map(Math.round),
    p50_us: 0,
    p99_us: 0,
  },
  {
    name: `migration job AWS endpoint → HSM of ${AWS_N}`,
    opsPerSec: Math.round(median(fromAws)),
    runs: fromAws.map(Math.round),
    p50_us: 0,
    p99_us: 0,
  },
]
report('migration', 'Key-provider migration (entries/s; latencies of getDataKey in µs)', {
  settings: {
    N,
    AWS_N,
    ROUNDS,
    LOAD,
    LOAD_ROUNDS,
    poolThreads: 2,
    batchSize: BATCH,
    yieldToForeground: YIELD,
    share: SHARE ?? 'default',
  },
  rows,
  ratios: {
    'migration HSM→HSM / rewrapMany (target ≥ 0.8)': summarize(
      migrateRuns.map((v, i) => v / (rewrapRuns[i] ?? NaN)),
    ),
    'getDataKey p99 during / without migration, per pair (target ≤ 2)': summarize(
      busyRuns.map((b, i) => p99(b.lat) / p99(quietRuns[i]?.lat ?? [])),
    ),
    'getDataKey p99 during / without migration, pooled': Number((p99(busy.lat) / p99(quiet.lat)).toFixed(3)),
    'getDataKey p50 during / without migration, pooled': Number(
      (quantile(busy.lat, 0.5) / quantile(quiet.lat, 0.5)).toFixed(3),
    ),
    'getDataKey calls failed during migration (must be 0)': busy.failed + quiet.failed,
    'migration HSM→AWS / rewrapMany': summarize(toAws.map((v, i) => v / (awsRewrap[i] ?? NaN))),
  },
})

await jobs.close()
await tk.close()
await awsBackend.close()
kms.destroy()
await new Promise<void>((r) => server.close(() => r()))
await engine.close()
rmSync(dir, { recursive: true, force: true })
