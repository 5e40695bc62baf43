/**
 * After a rotation, move every stored wrapped DEK to the new root-key version with rewrapMany on the
 * worker pool, with progress reporting; failed items are reported, not fatal.
 *
 *   npx tsx examples/batch-rewrap.ts
 */
import { createEngineFromConfig, defaultSoftHsmConf, loadConfig } from '../src/index.js'
import { createWorkerPool } from '../src/pool/index.js'
import { printer, runIfMain } from './support.js'

export async function main(): Promise<string[]> {
  const { out, log } = printer()
  const config = loadConfig()
  defaultSoftHsmConf(config) // SoftHSM2 reads its config once, when the pool initialises the library
  const pool = createWorkerPool({ pkcs11: config.pkcs11, threads: 2 })
  const engine = await createEngineFromConfig(config, { pool })
  try {
    const instance = 'batch-example'
    const key = await engine.createKey(instance, { name: 'customer-deks' })
    const stored = (await engine.wrapMany(instance, key.id, 5000)).flatMap((r) =>
      r.ok ? [r.ciphertext] : [],
    )
    log(`wrapped ${stored.length} DEKs under version 1`)

    await engine.rotate(instance, key.id)
    let lastReport = 0
    const results = await engine.rewrapMany(instance, key.id, [...stored, 'not-a-ciphertext'], {
      onProgress: (done, total) => {
        if (done === total || done - lastReport >= 2000) {
          lastReport = done
          log(`progress: ${done}/${total}`)
        }
      },
    })
    const ok = results.filter((r) => r.ok).length
    const failed = results.flatMap((r) => (r.ok ? [] : [r.error.code]))
    log(
      `rewrapped ${ok} to version ${(await engine.getKey(instance, key.id)).keyVersion.number}; failed: ${failed.join(', ')}`,
    )
  } finally {
    await engine.close()
  }
  return out
}

runIfMain(import.meta.url, main)
