/**
 * Secure import with an import token (Key Protect's flow, in process): the engine makes an RSA key pair in the
 * HSM; the key owner encrypts the material under its public key (RSA-OAEP) and proves the token's nonce with
 * the material (AES-GCM); the HSM unwraps the material straight into a non-extractable root key, so the
 * engine's process never holds it. A wrong nonce is refused and leaves nothing behind.
 *
 *   npx tsx examples/secure-import.ts
 */
import { constants, createCipheriv, publicEncrypt, randomBytes } from 'node:crypto'
import { createEngineFromConfig, isEngineError, type SecureImportInput } from '../src/index.js'
import { printer, runIfMain } from './support.js'

/** The key owner's side: what IBM's CLI does before it calls create, rotate or restore. */
function seal(material: Buffer, publicKeyPem: string, nonce: Buffer): SecureImportInput {
  // SoftHSM2 2.6 unwraps RSA-OAEP with SHA-1 only; an HSM that supports it takes RSAES_OAEP_SHA_256.
  const payload = publicEncrypt(
    { key: publicKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
    material,
  )
  const iv = randomBytes(12)
  const gcm = createCipheriv(`aes-${String(material.length * 8)}-gcm` as 'aes-256-gcm', material, iv)
  const encryptedNonce = Buffer.concat([gcm.update(nonce), gcm.final(), gcm.getAuthTag()])
  return { payload, encryptedNonce, iv, encryptionAlgorithm: 'RSAES_OAEP_SHA_1' }
}

export async function main(): Promise<string[]> {
  const { out, log } = printer()
  const engine = await createEngineFromConfig()
  try {
    const instance = 'secure-import-example'
    const created = await engine.createImportToken(instance, { expirationSec: 600, maxAllowedRetrievals: 2 })
    log(
      `import token valid until ${created.expiresAt.toISOString()}, ${created.remainingRetrievals} retrievals`,
    )

    const token = await engine.getImportToken(instance)
    const material = randomBytes(32)
    const sealed = seal(material, token.publicKeyPem, token.nonce)
    material.fill(0) // the owner keeps its copy elsewhere; the engine never sees it in the clear
    const key = await engine.createKey(instance, { name: 'securely-imported', secureImport: sealed })
    log(`securely imported root key ${key.id}: imported=${key.imported}, extractable=${key.extractable}`)

    const w = await engine.wrap(instance, key.id, { aad: ['order-7'] })
    const u = await engine.unwrap(instance, key.id, w.ciphertext, { aad: ['order-7'] })
    log(`wrap and unwrap with it: ${u.plaintext.equals(w.plaintext ?? Buffer.alloc(0))}`)

    const again = await engine.getImportToken(instance)
    const wrongNonce = seal(randomBytes(32), again.publicKeyPem, randomBytes(12))
    try {
      await engine.createKey(instance, { name: 'wrong-nonce', secureImport: wrongNonce })
    } catch (err) {
      if (isEngineError(err)) log(`a payload that does not prove the nonce fails with ${err.code}`)
    }
  } finally {
    await engine.close()
  }
  return out
}

runIfMain(import.meta.url, main)
