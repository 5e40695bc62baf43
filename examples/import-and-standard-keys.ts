/**
 * Bring-your-own-key and standard keys: import AES material as a root key (it becomes a sensitive,
 * non-extractable HSM object), rotate it with new material, and keep a standard key whose payload the engine
 * stores only wrapped under an HSM root key.
 *
 *   npx tsx examples/import-and-standard-keys.ts
 */
import { randomBytes } from 'node:crypto'
import { createEngineFromConfig, isEngineError } from '../src/index.js'
import { printer, runIfMain } from './support.js'

export async function main(): Promise<string[]> {
  const { out, log } = printer()
  const engine = await createEngineFromConfig()
  try {
    const instance = 'byok-example'
    const material = randomBytes(32)
    const root = await engine.createKey(instance, { name: 'imported-root', payload: material })
    material.fill(0) // the engine copied it into the HSM; nothing else needs it
    log(`imported root key ${root.id}: imported=${root.imported}, extractable=${root.extractable}`)

    try {
      await engine.rotate(instance, root.id)
    } catch (err) {
      if (isEngineError(err)) log(`rotating an imported key without new material fails with ${err.code}`)
    }
    const rotated = await engine.rotate(instance, root.id, { payload: randomBytes(32) })
    log(`rotated with new material: now version ${rotated.keyVersion.number}`)

    const secret = Buffer.from('database password: correct horse battery staple')
    const std = await engine.createKey(instance, { name: 'db-password', extractable: true, payload: secret })
    const back = await engine.getKeyPayload(instance, std.id)
    log(`standard key ${std.id} returns its payload: ${back.equals(secret)}`)
    try {
      await engine.getKeyPayload(instance, root.id)
    } catch (err) {
      if (isEngineError(err)) log(`asking for a root key's material fails with ${err.code}`)
    }
  } finally {
    await engine.close()
  }
  return out
}

runIfMain(import.meta.url, main)
