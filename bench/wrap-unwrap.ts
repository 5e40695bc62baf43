/**
 * Engine wrap/unwrap of a 32-byte DEK against raw pkcs11js on the same token, same mechanism (AES-GCM,
 * C_GenerateRandom IV, 128-bit tag, same AAD length), same run, tasks interleaved run by run as in
 * ../shared/baseline/lab. Two root-key handle kinds: the token object itself, and the session-object copy the
 * softhsm2 profile uses by default.
 *
 *   npm run bench                      # 15 runs × 200 ms per task; prints a table, writes bench/results/wrap-unwrap.json
 *   BENCH_SMOKE=1 npm run bench        # 1 short run (CI smoke), writes bench/results/wrap-unwrap.smoke.json
 *
 * Knobs: BENCH_RUNS (15), BENCH_TIME_MS (200), BENCH_WARMUP_MS (50).
 *
 * Ratios are the median of per-run ratios (engine and raw measured back to back within each run), which
 * cancels most of this shared VM's drift; min and max over the runs are reported beside them.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { execFileSync } from 'node:child_process'
import { Bench } from 'tinybench'
import { js, rawModule, slotByLabel } from '../test/helpers/raw-pkcs11.js'
import type * as P11 from 'pkcs11js'
import { createEngine, loadConfig, type EnvelopeEngine } from '../dist/index.js'
import { buildHsmAad, encodeHeader, Mechanism } from '../dist/core/ciphertext.js'
import { createPkcs11Provider } from '../dist/providers/pkcs11/index.js'
import { openSqliteStore, type SqliteStore } from '../dist/store/sqlite/index.js'

const SMOKE = process.env['BENCH_SMOKE'] === '1'
const RUNS = SMOKE ? 1 : Number(process.env['BENCH_RUNS'] ?? 15)
const TIME_MS = SMOKE ? 40 : Number(process.env['BENCH_TIME_MS'] ?? 200)
const WARMUP_MS = SMOKE ? 10 : Number(process.env['BENCH_WARMUP_MS'] ?? 50)
process.env['SOFTHSM2_CONF'] ??= resolve('softhsm2.conf')

const config = loadConfig()
const dir = mkdtempSync(join(tmpdir(), 'ekms-bench-'))

interface Side {
  name: string
  engine: EnvelopeEngine
  store: SqliteStore
  keyId: string
  ref: string
}

async function side(name: string, sessionKeyCopy: boolean): Promise<Side> {
  const store = await openSqliteStore({ path: join(dir, `${name}.sqlite`) })
  const provider = await createPkcs11Provider({ ...config.pkcs11, sessionKeyCopy })
  const engine = await createEngine({ provider, store })
  const key = await engine.createKey('bench', { name: `bench-${name}` })
  const ref = (await store.listVersions('bench', key.id))[0]?.providerRef ?? ''
  return { name, engine, store, keyId: key.id, ref }
}

const token = await side('token', false)
const copy = await side('copy', true)

// Raw pkcs11js: its own session on the same (already initialised, logged-in) library.
const p11 = rawModule(config.pkcs11.module)
const slot = slotByLabel(p11, config.pkcs11.tokenLabel)
const session = p11.C_OpenSession(slot, js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION)
function findByRef(ref: string): P11.Handle {
  p11.C_FindObjectsInit(session, [
    { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
    { type: js.CKA_TOKEN, value: true },
    { type: js.CKA_ID, value: Buffer.from(ref, 'hex') },
  ])
  const [h] = p11.C_FindObjects(session, 1)
  p11.C_FindObjectsFinal(session)
  if (h === undefined) throw new Error('root key object not found')
  return h
}
const tokenHandle = findByRef(token.ref)
const copyHandle = p11.C_CopyObject(session, findByRef(copy.ref), [{ type: js.CKA_TOKEN, value: false }])
// The same AAD the engine builds for an empty caller AAD (93 bytes here), so both sides authenticate alike.
const rawAad = buildHsmAad(encodeHeader(Mechanism.AES_GCM, token.keyId, 1), 32, 'bench', [])

function rawWrap(key: P11.Handle): { iv: Buffer; out: Buffer } {
  const dek = p11.C_GenerateRandom(session, Buffer.allocUnsafeSlow(32))
  const iv = p11.C_GenerateRandom(session, Buffer.allocUnsafe(12))
  p11.C_EncryptInit(
    session,
    {
      mechanism: js.CKM_AES_GCM,
      parameter: { type: js.CK_PARAMS_GCM, iv, ivBits: 96, aad: rawAad, tagBits: 128 } as P11.GcmParams,
    },
    key,
  )
  const out = p11.C_Encrypt(session, dek, Buffer.allocUnsafe(48))
  dek.fill(0)
  return { iv, out }
}
function rawUnwrap(key: P11.Handle, w: { iv: Buffer; out: Buffer }): Buffer {
  p11.C_DecryptInit(
    session,
    {
      mechanism: js.CKM_AES_GCM,
      parameter: { type: js.CK_PARAMS_GCM, iv: w.iv, ivBits: 96, aad: rawAad, tagBits: 128 } as P11.GcmParams,
    },
    key,
  )
  return p11.C_Decrypt(session, w.out, Buffer.alloc(48))
}

const rawTokenCt = rawWrap(tokenHandle)
const rawCopyCt = rawWrap(copyHandle)
const tokenCt = (await token.engine.wrap('bench', token.keyId)).ciphertext
const copyCt = (await copy.engine.wrap('bench', copy.keyId)).ciphertext

type Task = [name: string, fn: () => unknown, async: boolean]
const tasks: Task[] = [
  ['raw pkcs11js wrap (token key)', () => rawWrap(tokenHandle), false],
  ['engine.wrap (token key)', () => token.engine.wrap('bench', token.keyId), true],
  ['raw pkcs11js unwrap (token key)', () => rawUnwrap(tokenHandle, rawTokenCt), false],
  ['engine.unwrap (token key)', () => token.engine.unwrap('bench', token.keyId, tokenCt), true],
  ['raw pkcs11js wrap (session copy)', () => rawWrap(copyHandle), false],
  ['engine.wrap (session copy, default)', () => copy.engine.wrap('bench', copy.keyId), true],
  ['raw pkcs11js unwrap (session copy)', () => rawUnwrap(copyHandle, rawCopyCt), false],
  ['engine.unwrap (session copy, default)', () => copy.engine.unwrap('bench', copy.keyId, copyCt), true],
]

const per = tasks.map((): number[] => [])
const lat = tasks.map(() => ({ p50: 0, p99: 0 }))
for (let r = 0; r < RUNS; r++) {
  for (const [i, [name, fn, isAsync]] of tasks.entries()) {
    const bench = new Bench({
      time: TIME_MS,
      warmupTime: WARMUP_MS,
      warmup: true,
      iterations: 16,
      throws: true,
    })
    bench.add(name, fn, { async: isAsync })
    if (isAsync) await bench.run()
    else bench.runSync()
    const t = bench.tasks[0]
    const res = t?.result
    if (res === undefined || res.state !== 'completed') throw new Error(`${name}: did not complete`)
    per[i]?.push(1000 / res.period)
    lat[i] = { p50: res.latency.p50 * 1000, p99: res.latency.p99 * 1000 }
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  return n % 2 === 1 ? (s[(n - 1) / 2] ?? 0) : ((s[n / 2 - 1] ?? 0) + (s[n / 2] ?? 0)) / 2
}
const rows = tasks.map(([name], i) => ({
  name,
  opsPerSec: Math.round(median(per[i] ?? [])),
  runs: (per[i] ?? []).map((x) => Math.round(x)),
  p50_us: Number(lat[i]?.p50.toFixed(1)),
  p99_us: Number(lat[i]?.p99.toFixed(1)),
}))
/** Median (and range) over runs of engine ops/s divided by raw ops/s measured in the same run. */
const ratio = (engineIdx: number, rawIdx: number): { median: number; min: number; max: number } => {
  const e = per[engineIdx] ?? []
  const r = per[rawIdx] ?? []
  const xs = e.map((v, i) => v / (r[i] ?? 1))
  const round = (x: number): number => Number(x.toFixed(3))
  return { median: round(median(xs)), min: round(Math.min(...xs)), max: round(Math.max(...xs)) }
}
const ratios = {
  'engine/raw wrap (token key)': ratio(1, 0),
  'engine/raw unwrap (token key)': ratio(3, 2),
  'engine/raw wrap (session copy)': ratio(5, 4),
  'engine/raw unwrap (session copy)': ratio(7, 6),
  'engine default (session copy) / raw token key, wrap': ratio(5, 0),
  'engine default (session copy) / raw token key, unwrap': ratio(7, 2),
}

let softhsm = 'unknown'
try {
  softhsm = execFileSync('softhsm2-util', ['--version'], { encoding: 'utf8' }).trim()
} catch {
  /* not on PATH */
}
const result = {
  benchmark: 'wrap-unwrap',
  date: new Date().toISOString(),
  smoke: SMOKE,
  machine: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', softhsm },
  settings: { runs: RUNS, timeMs: TIME_MS, warmupMs: WARMUP_MS, dekBytes: 32, aadBytes: rawAad.length },
  rows,
  ratios,
}

console.log(
  `\nwrap/unwrap of a 32-byte DEK, ${RUNS} interleaved run(s) of ${TIME_MS} ms, node ${process.version}, ${cpus().length} CPUs`,
)
console.table(
  rows.map((r) => ({ task: r.name, 'ops/s (median)': r.opsPerSec, 'p50 µs': r.p50_us, 'p99 µs': r.p99_us })),
)
console.table(
  Object.entries(ratios).map(([k, v]) => ({ ratio: k, median: v.median, min: v.min, max: v.max })),
)

mkdirSync('bench/results', { recursive: true })
const file = join('bench/results', SMOKE ? 'wrap-unwrap.smoke.json' : 'wrap-unwrap.json')
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`)
console.log(`wrote ${file}`)

p11.C_DestroyObject(session, copyHandle)
p11.C_CloseSession(session)
for (const s of [token, copy]) {
  await s.engine.deleteKey('bench', s.keyId)
  await s.engine.close()
}
rmSync(dir, { recursive: true, force: true })
