/**
 * Quick start: create a root key in the HSM, wrap a generated DEK, rotate, unwrap (getting the DEK back
 * rewrapped under the new version), and rewrap explicitly.
 *
 *   npm start            (runs this on the project's SoftHSM2 token and data/catalog.sqlite)
 */
import { createEngineFromConfig } from '../src/index.js'
import { printer, runIfMain } from './support.js'

export async function main(): Promise<string[]> {
  const { out, log } = printer()
  const engine = await createEngineFromConfig()
  try {
    const instance = 'quickstart'
    const key = await engine.createKey(instance, {
      name: 'payments-root',
      description: 'root key for payments DEKs',
    })
    log(`created root key ${key.id} (version ${key.keyVersion.number}) in ${engine.providerName}`)

    const { plaintext, ciphertext, keyVersion } = await engine.wrap(instance, key.id, { aad: ['order-42'] })
    if (plaintext === undefined) throw new Error('wrap without a DEK returns the generated DEK')
    log(
      `wrapped a generated ${plaintext.length}-byte DEK under version ${keyVersion.number}: ${ciphertext.length} base64 chars`,
    )

    const out1 = await engine.unwrap(instance, key.id, ciphertext, { aad: ['order-42'] })
    log(`unwrap returns the same DEK: ${out1.plaintext.equals(plaintext)}`)

    await engine.rotate(instance, key.id)
    const again = await engine.unwrap(instance, key.id, ciphertext, { aad: ['order-42'] })
    log(
      `after rotation the old ciphertext still unwraps: ${again.plaintext.equals(plaintext)}; ` +
        `rewrapped under version ${again.rewrapped?.keyVersion.number ?? 'none'}`,
    )

    const moved = await engine.rewrap(instance, key.id, ciphertext, { aad: ['order-42'] })
    log(
      `rewrap moved the ciphertext from version ${moved.keyVersion.number} to ${moved.rewrappedKeyVersion.number}`,
    )

    try {
      await engine.unwrap(instance, key.id, ciphertext, { aad: ['order-43'] })
    } catch (err) {
      log(`unwrap with the wrong AAD fails with ${(err as { code?: string }).code ?? String(err)}`)
    }
    plaintext.fill(0)
    out1.plaintext.fill(0)
    again.plaintext.fill(0)
  } finally {
    await engine.close()
  }
  return out
}

runIfMain(import.meta.url, main)
