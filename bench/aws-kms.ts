/**
 * Engine wrap/unwrap of a 32-byte DEK through the AWS KMS provider, over loopback HTTP (SigV4, AWS JSON
 * 1.1) to the AWS-KMS-compatible endpoint that serves the same HSM, against the same engine calls made
 * directly on the HSM. Tasks interleaved run by run; ratios are medians of per-run ratios.
 *
 *   npm run bench                      # 7 runs × 300 ms per task; writes bench/results/aws-kms.json
 *   BENCH_SMOKE=1 npm run bench        # 1 short run (CI smoke), writes bench/results/aws-kms.smoke.json
 *
 * Knobs: BENCH_RUNS (7), BENCH_TIME_MS (300), BENCH_WARMUP_MS (100).
 *
 * A wrap through the provider is two KMS calls (GenerateRandom for the DEK, then Encrypt); an unwrap is one
 * (Decrypt), which on the endpoint is one HSM decryption.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { serve } from '@hono/node-server'
import { interleaved, pairedRatio, report, settings, type Row, type Task } from './harness.js'
import { createEngine, loadConfig } from '../dist/index.js'
import { createAwsKmsApp } from '../dist/http/awskms/index.js'
import { createAwsKmsProvider } from '../dist/providers/aws-kms/index.js'
import { createPkcs11Provider } from '../dist/providers/pkcs11/index.js'
import { openSqliteStore } from '../dist/store/sqlite/index.js'

process.env['SOFTHSM2_CONF'] ??= resolve('softhsm2.conf')

const config = loadConfig()
const dir = mkdtempSync(join(tmpdir(), 'ekms-bench-aws-'))
const cred = {
  accessKeyId: 'AKIABENCH00000000001',
  secretAccessKey: 'bench-secret-0000000000000000000000000000',
}

// The HSM side: the engine the endpoint serves, also called directly.
const hsm = await createEngine({
  provider: await createPkcs11Provider(config.pkcs11),
  store: await openSqliteStore({ path: join(dir, 'hsm.sqlite') }),
})
const app = createAwsKmsApp({
  engine: hsm,
  region: 'us-east-1',
  credentials: [{ ...cred, instance: 'bench-kms' }],
})
const server = await new Promise<ReturnType<typeof serve>>((res) => {
  const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => res(s))
})
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

// The KMS side: an engine whose root keys live behind the endpoint.
const kms = await createEngine({
  provider: await createAwsKmsProvider({
    regions: [{ region: 'us-east-1', endpoint: url }],
    credentials: cred,
  }),
  store: await openSqliteStore({ path: join(dir, 'kms.sqlite') }),
})

const direct = await hsm.createKey('bench', { name: 'bench-direct' })
const viaKms = await kms.createKey('bench', { name: 'bench-via-kms' })
const aad = ['bench-aad']
const directCt = (await hsm.wrap('bench', direct.id, { aad })).ciphertext
const kmsCt = (await kms.wrap('bench', viaKms.id, { aad })).ciphertext

const tasks: Task[] = [
  ['engine.wrap, HSM direct', () => hsm.wrap('bench', direct.id, { aad }), true],
  ['engine.wrap, AWS KMS provider over loopback', () => kms.wrap('bench', viaKms.id, { aad }), true],
  ['engine.unwrap, HSM direct', () => hsm.unwrap('bench', direct.id, directCt, { aad }), true],
  [
    'engine.unwrap, AWS KMS provider over loopback',
    () => kms.unwrap('bench', viaKms.id, kmsCt, { aad }),
    true,
  ],
]
const S = settings({ runs: 7, timeMs: 300, warmupMs: 100 })
const rows = await interleaved(tasks, S)
const r = (i: number): Row => rows[i] as Row
report(
  'aws-kms',
  `engine wrap/unwrap via the AWS KMS provider vs direct on the HSM, ${S.runs} run(s) of ${S.timeMs} ms`,
  {
    settings: { ...S, dekBytes: 32 },
    rows,
    ratios: {
      'overhead (direct ops/s ÷ via-KMS ops/s), wrap': pairedRatio(r(0), r(1)),
      'overhead (direct ops/s ÷ via-KMS ops/s), unwrap': pairedRatio(r(2), r(3)),
      'p99 via KMS, wrap (µs)': r(1).p99_us,
      'p99 via KMS, unwrap (µs)': r(3).p99_us,
    },
  },
)

await kms.close()
await new Promise<void>((res) => server.close(() => res()))
await hsm.close()
rmSync(dir, { recursive: true, force: true })
