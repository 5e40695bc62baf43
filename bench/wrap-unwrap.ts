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
 *
 * A/B mode: BENCH_AB=<another build's dist directory> also builds engines from that build (its public
 * entry points only: index.js, providers/pkcs11/index.js, store/sqlite/index.js) and runs their tasks
 * interleaved with this build's, in the same process, on the same token, in the same runs (odd runs in
 * reverse task order). Per task it reports current/base (median of per-run paired ratios, quartiles, min,
 * max) and engine/raw for both builds against the one raw pkcs11js side, and writes
 * bench/results/wrap-unwrap.ab.json. To compare against an older commit:
 *
 *   git worktree add ../wt-base <commit>      # a checkout of the build to compare against
 *   ln -s "$PWD/node_modules" ../wt-base/    # the same dependencies on both sides
 *   (cd ../wt-base && npm run build)
 *   bash native-config/setup-token.sh && npm run build
 *   BENCH_AB=../wt-base/dist node --expose-gc --import tsx bench/wrap-unwrap.ts
 *
 * In A/B mode the run count is rounded up to an even number (as many runs forward as in reverse), and
 * --expose-gc (optional, recommended) makes the harness collect garbage before each task's turn, so that no
 * task pays for its neighbour's garbage. Compare builds only within one A/B run, and read current/base
 * against the method's noise floor on that machine: an A/A run (BENCH_AB pointing at a second build of the
 * same commit) gives current/base medians that differ from 1.0 by noise alone; a median no further from 1.0
 * than those, or quartiles that straddle 1.0, show no difference. The JSON records the load average.
 *
 * Both builds use this checkout's config and token (SOFTHSM2_CONF=./softhsm2.conf) and one SQLite file per
 * engine.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import {
  AB_DIST,
  commitOf,
  interleaved,
  loadBuilds,
  pairedRatio,
  report,
  settings,
  type AbReport,
  type Build,
  type Row,
  type Task,
} from './harness.js'
import { js, rawModule, slotByLabel } from '../test/helpers/raw-pkcs11.js'
// docs/ciphertext-format.md's independent implementation, not dist internals (core files move in refactors).
import { header, hsmAad } from '../test/vectors/ciphertext-v1-reference.js'
import type * as P11 from 'pkcs11js'
import type { EnvelopeEngine } from '../dist/index.js'
import type { SqliteStore } from '../dist/store/sqlite/index.js'

process.env['SOFTHSM2_CONF'] ??= resolve('softhsm2.conf')

const builds = await loadBuilds()
const [current] = builds as [Build, ...Build[]]
const config = current.core.loadConfig()
const dir = mkdtempSync(join(tmpdir(), 'ekms-bench-'))

interface Side {
  name: string
  engine: EnvelopeEngine
  store: SqliteStore
  keyId: string
  ref: string
  ct: string
}

async function side(build: Build, kind: 'token' | 'copy'): Promise<Side> {
  const name = build.label === 'current' ? kind : `${build.label}-${kind}`
  const store = await build.sqlite.openSqliteStore({ path: join(dir, `${name}.sqlite`) })
  const provider = await build.pkcs11.createPkcs11Provider({
    ...config.pkcs11,
    sessionKeyCopy: kind === 'copy',
  })
  const engine = await build.core.createEngine({ provider, store })
  const key = await engine.createKey('bench', { name: `bench-${name}` })
  const ref = (await store.listVersions('bench', key.id))[0]?.providerRef ?? ''
  const ct = (await engine.wrap('bench', key.id)).ciphertext
  return { name, engine, store, keyId: key.id, ref, ct }
}

/** Per build: the token-key side and the session-copy side. */
const sides: { build: Build; token: Side; copy: Side }[] = []
for (const build of builds)
  sides.push({ build, token: await side(build, 'token'), copy: await side(build, 'copy') })
const { token, copy } = sides[0] as { token: Side; copy: Side }

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
// The same AAD the engine builds for an empty caller AAD (52 bytes here), so both sides authenticate alike;
// first checked against the header the engine actually wrote.
const rawHeader = header(token.keyId, 1)
for (const s of sides) {
  for (const x of [s.token, s.copy]) {
    if (!Buffer.from(x.ct, 'base64').subarray(0, 22).equals(header(x.keyId, 1))) {
      throw new Error(`${s.build.label} build: the ciphertext header is not the v1 reference's`)
    }
  }
}
const rawAad = hsmAad(rawHeader, 32, 'bench', [])

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

// Four operations; per operation the raw task, then each build's engine task (this build's names unchanged).
const OPS = [
  'wrap (token key)',
  'unwrap (token key)',
  'wrap (session copy)',
  'unwrap (session copy)',
] as const
const rawTasks: Task[] = [
  ['raw pkcs11js wrap (token key)', () => rawWrap(tokenHandle), false],
  ['raw pkcs11js unwrap (token key)', () => rawUnwrap(tokenHandle, rawTokenCt), false],
  ['raw pkcs11js wrap (session copy)', () => rawWrap(copyHandle), false],
  ['raw pkcs11js unwrap (session copy)', () => rawUnwrap(copyHandle, rawCopyCt), false],
]
function engineTasks(s: (typeof sides)[number]): Task[] {
  const tag = s.build.label === 'current' ? '' : ` [${s.build.label}]`
  const { token: t, copy: c } = s
  return [
    [`engine.wrap (token key)${tag}`, () => t.engine.wrap('bench', t.keyId), true],
    [`engine.unwrap (token key)${tag}`, () => t.engine.unwrap('bench', t.keyId, t.ct), true],
    [`engine.wrap (session copy, default)${tag}`, () => c.engine.wrap('bench', c.keyId), true],
    [`engine.unwrap (session copy, default)${tag}`, () => c.engine.unwrap('bench', c.keyId, c.ct), true],
  ]
}
const perBuild = sides.map(engineTasks)
const tasks: Task[] = OPS.flatMap((_, i) => [rawTasks[i] as Task, ...perBuild.map((ts) => ts[i] as Task)])
const S = settings({ runs: 15, timeMs: 200, warmupMs: 50 }, { evenRuns: AB_DIST !== undefined })
const rows = await interleaved(tasks, S, { alternate: AB_DIST !== undefined })
const stride = 1 + sides.length
const raw = (i: number): Row => rows[i * stride] as Row
const eng = (b: number, i: number): Row => rows[i * stride + 1 + b] as Row

/** The usual ratio set for build `b` (0 = current). */
const ratiosOf = (b: number): Record<string, unknown> => ({
  'engine/raw wrap (token key)': pairedRatio(eng(b, 0), raw(0)),
  'engine/raw unwrap (token key)': pairedRatio(eng(b, 1), raw(1)),
  'engine/raw wrap (session copy)': pairedRatio(eng(b, 2), raw(2)),
  'engine/raw unwrap (session copy)': pairedRatio(eng(b, 3), raw(3)),
  'engine default (session copy) / raw token key, wrap': pairedRatio(eng(b, 2), raw(0)),
  'engine default (session copy) / raw token key, unwrap': pairedRatio(eng(b, 3), raw(1)),
})
const base = sides[1]?.build
const Q = { quartiles: true }
const ab: AbReport | undefined =
  base === undefined
    ? undefined
    : {
        currentDist: current.dist,
        baseDist: base.dist,
        currentCommit: commitOf(current.dist),
        baseCommit: commitOf(base.dist),
        tasks: OPS.map((op, i) => ({
          task: `engine ${op}`,
          'current/base': pairedRatio(eng(0, i), eng(1, i), Q),
          vs: 'engine/raw',
          current: pairedRatio(eng(0, i), raw(i)),
          base: pairedRatio(eng(1, i), raw(i)),
        })),
        ratiosBase: ratiosOf(1),
      }
report('wrap-unwrap', `wrap/unwrap of a 32-byte DEK, ${S.runs} interleaved run(s) of ${S.timeMs} ms`, {
  settings: { ...S, dekBytes: 32, aadBytes: rawAad.length, ...(ab === undefined ? {} : { alternate: true }) },
  rows,
  ratios: ratiosOf(0),
  ...(ab === undefined ? {} : { ab }),
})

p11.C_DestroyObject(session, copyHandle)
p11.C_CloseSession(session)
// Every key goes before any engine closes: each build finalises the process-wide library when its last
// provider closes, which ends the other build's sessions too.
for (const s of sides) for (const x of [s.token, s.copy]) await x.engine.deleteKey('bench', x.keyId)
for (const s of sides) for (const x of [s.token, s.copy]) await x.engine.close()
rmSync(dir, { recursive: true, force: true })
