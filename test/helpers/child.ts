/**
 * A separate engine process for restart and crash tests. Modes:
 *   unwrap  <catalog> <json file of {instance,keyId,ciphertext,aad}[]>  → prints {plaintext(hex), keyVersion}[] as JSON
 *   churn   <catalog>                                                    → creates, rotates and wraps forever,
 *           printing one JSON line per acknowledged result, until killed
 *   purge   <catalog> <instance> <keyId> <hangAt>                        → purges the key, and stops for good
 *           (printing `HANG`) at `hangAt`: `mark` (before the purging mark is written), `destroy:N` (after N
 *           provider objects were destroyed), `rows` (before the catalog rows are deleted); the parent then
 *           kills it with SIGKILL
 */
import { readFileSync } from 'node:fs'
import { createEngine, type MetadataStore, type RootKeyProvider } from '../../src/index.js'
import { createPkcs11Provider } from '../../src/providers/pkcs11/index.js'
import { openSqliteStore } from '../../src/store/sqlite/index.js'
import { SOFTHSM_MODULE, env } from './engine.js'

const [mode, catalog, input] = process.argv.slice(2)
const realStore = await openSqliteStore({ path: catalog ?? '' })
const realProvider = await createPkcs11Provider({
  module: SOFTHSM_MODULE,
  tokenLabel: env('EKMS_TEST_TOKEN'),
  pin: env('EKMS_TEST_PIN'),
})
const hangAt = mode === 'purge' ? (process.argv[6] ?? '') : ''
/** Stops here for good: the parent sees `HANG` and kills the process with SIGKILL. */
const hang = (): Promise<never> => {
  process.stdout.write('HANG\n')
  // A pending promise alone does not keep Node alive (it would exit 13, "unsettled top-level await", before
  // the parent's SIGKILL when nothing else holds the event loop): a timer does.
  setInterval(() => undefined, 60_000)
  return new Promise<never>(() => undefined)
}
let destroyed = 0
const store: MetadataStore = new Proxy(realStore, {
  get(target, prop, receiver) {
    const v = Reflect.get(target, prop, receiver) as unknown
    if (typeof v !== 'function') return v
    const fn = (v as (...a: unknown[]) => unknown).bind(target)
    if ((prop === 'markPurging' && hangAt === 'mark') || (prop === 'deleteKeyRows' && hangAt === 'rows')) {
      return hang
    }
    return fn
  },
})
const provider: RootKeyProvider = new Proxy(realProvider, {
  get(target, prop, receiver) {
    const v = Reflect.get(target, prop, receiver) as unknown
    if (typeof v !== 'function') return v
    const fn = (v as (...a: unknown[]) => unknown).bind(target)
    if (prop !== 'destroyVersion') return fn
    return async (...args: unknown[]) => {
      if (hangAt === `destroy:${destroyed}`) return hang()
      await fn(...args)
      destroyed++
    }
  },
})
const engine = await createEngine({ provider, store, lifecycle: { minRotationIntervalMs: 0 } })

if (mode === 'unwrap') {
  const items = JSON.parse(readFileSync(input ?? '', 'utf8')) as {
    instance: string
    keyId: string
    ciphertext: string
    aad: string[]
  }[]
  const out = []
  for (const it of items) {
    const u = await engine.unwrap(it.instance, it.keyId, it.ciphertext, { aad: it.aad })
    out.push({ plaintext: u.plaintext.toString('hex'), keyVersion: u.keyVersion.number })
  }
  process.stdout.write(JSON.stringify(out))
  await engine.close()
} else if (mode === 'churn') {
  for (let i = 0; ; i++) {
    const key = await engine.createKey('churn', { name: `churn-${i}` })
    process.stdout.write(`${JSON.stringify({ created: key.id })}\n`)
    const w = await engine.wrap('churn', key.id, { aad: [`${i}`] })
    process.stdout.write(
      `${JSON.stringify({ keyId: key.id, ciphertext: w.ciphertext, aad: [`${i}`], plaintext: w.plaintext?.toString('hex') })}\n`,
    )
    await engine.rotate('churn', key.id)
    process.stdout.write(`${JSON.stringify({ rotated: key.id })}\n`)
  }
} else if (mode === 'purge') {
  await engine.purgeKey(process.argv[4] ?? '', process.argv[5] ?? '')
  process.stdout.write('PURGED\n')
  await engine.close()
} else {
  throw new Error(`unknown mode ${String(mode)}`)
}
