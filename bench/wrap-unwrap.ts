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
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { interleaved, pairedRatio, report, settings, type Row, type Task } from './harness.js'
import { js, rawModule, slotByLabel } from '../test/helpers/raw-pkcs11.js'
import type * as P11 from 'pkcs11js'
import { createEngine, loadConfig, type EnvelopeEngine } from '../dist/index.js'
import { buildHsmAad, encodeHeader, Mechanism } from '../dist/core/format/ciphertext.js'
import { createPkcs11Provider } from '../dist/providers/pkcs11/index.js'
import { openSqliteStore, type SqliteStore } from '../dist/store/sqlite/index.js'

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
const S = settings({ runs: 15, timeMs: 200, warmupMs: 50 })
const rows = await interleaved(tasks, S)
const r = (i: number): Row => rows[i] as Row
report('wrap-unwrap', `wrap/unwrap of a 32-byte DEK, ${S.runs} interleaved run(s) of ${S.timeMs} ms`, {
  settings: { ...S, dekBytes: 32, aadBytes: rawAad.length },
  rows,
  ratios: {
    'engine/raw wrap (token key)': pairedRatio(r(1), r(0)),
    'engine/raw unwrap (token key)': pairedRatio(r(3), r(2)),
    'engine/raw wrap (session copy)': pairedRatio(r(5), r(4)),
    'engine/raw unwrap (session copy)': pairedRatio(r(7), r(6)),
    'engine default (session copy) / raw token key, wrap': pairedRatio(r(5), r(0)),
    'engine default (session copy) / raw token key, unwrap': pairedRatio(r(7), r(2)),
  },
})

p11.C_DestroyObject(session, copyHandle)
p11.C_CloseSession(session)
for (const s of [token, copy]) {
  await s.engine.deleteKey('bench', s.keyId)
  await s.engine.close()
}
rmSync(dir, { recursive: true, force: true })
