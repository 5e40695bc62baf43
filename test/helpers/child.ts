/**
 * A separate engine process for restart and crash tests. Modes:
 *   unwrap  <catalog> <json file of {instance,keyId,ciphertext,aad}[]>  → prints {plaintext(hex), keyVersion}[] as JSON
 *   churn   <catalog>                                                    → creates, rotates and wraps forever,
 *           printing one JSON line per acknowledged result, until killed
 */
import { readFileSync } from 'node:fs'
import { createEngine } from '../../src/index.js'
import { createPkcs11Provider } from '../../src/providers/pkcs11/index.js'
import { openSqliteStore } from '../../src/store/sqlite/index.js'
import { SOFTHSM_MODULE, env } from './engine.js'

const [mode, catalog, input] = process.argv.slice(2)
const store = await openSqliteStore({ path: catalog ?? '' })
const provider = await createPkcs11Provider({
  module: SOFTHSM_MODULE,
  tokenLabel: env('EKMS_TEST_TOKEN'),
  pin: env('EKMS_TEST_PIN'),
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
} else {
  throw new Error(`unknown mode ${String(mode)}`)
}
