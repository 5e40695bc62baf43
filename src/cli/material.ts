/**
 * The client side of a Key Protect secure import, done for the CLI user as IBM's `kp` CLI does: read the
 * key material from a file (raw bytes, 16, 24 or 32), RSA-OAEP-encrypt it under the import token's public
 * key and AES-GCM-encrypt the token's nonce under it (spec digest §4.5). Every buffer that held the
 * material is zeroed after use (node's cipher objects keep an internal copy until they are collected).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { constants, createCipheriv, publicEncrypt, randomBytes } from 'node:crypto'
import { EngineError } from '../core/errors.js'
import type { ImportTokenRetrieval, SecureImportInput } from '../core/engine.js'
import type { ImportAlgorithm } from '../core/ports.js'

const MATERIAL_LENGTHS = [16, 24, 32]

const fileError = (message: string): EngineError =>
  new EngineError('INVALID_FIELD_ERR', `material-file: ${message}`, {
    target: { type: 'field', name: 'material-file' },
  })

/**
 * Reads key material from `path`: a regular file of exactly 16, 24 or 32 bytes, not readable or writable by
 * group or others (mode 0600 or 0400; checked on the open file, so a swap after the check cannot slip in).
 * The caller zeroes the returned buffer.
 * @throws EngineError INVALID_FIELD_ERR (target `material-file`)
 */
export function readMaterialFile(path: string): Buffer {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    throw fileError(`cannot open ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) throw fileError(`${path} is not a regular file`)
    if ((st.mode & 0o077) !== 0) {
      throw fileError(
        `${path} is accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); ` +
          'key material must be readable by its owner only: chmod 600 it',
      )
    }
    if (!MATERIAL_LENGTHS.includes(st.size)) {
      throw fileError(`${path} has ${st.size} bytes; key material is 16, 24 or 32 raw bytes (not base64)`)
    }
    const buf = Buffer.alloc(st.size)
    let n = 0
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, n)
      if (r === 0) break
      n += r
    }
    if (n !== buf.length || readSync(fd, Buffer.alloc(1), 0, 1, n) !== 0) {
      buf.fill(0)
      throw fileError(`${path} changed while it was read`)
    }
    return buf
  } finally {
    closeSync(fd)
  }
}

/** The algorithm to use: `requested` if the provider has it, else the provider's preferred one. */
export function chooseImportAlgorithm(
  supported: readonly ImportAlgorithm[],
  requested: string | undefined,
): ImportAlgorithm {
  if (requested !== undefined) {
    const r = supported.find((a) => a === requested)
    if (r === undefined) {
      throw new EngineError(
        'INVALID_FIELD_ERR',
        `algorithm: ${requested} is not supported by this provider (supported: ${supported.join(', ') || 'none'})`,
        { target: { type: 'field', name: 'algorithm' } },
      )
    }
    return r
  }
  const first = supported[0]
  if (first === undefined) {
    throw new EngineError('PROVIDER_UNSUPPORTED', 'import tokens: this provider has none (no secure import)')
  }
  return first
}

/**
 * Encrypts `material` for a secure import under `token`: `payload` = RSA-OAEP (MGF1 with the same hash, no
 * label) of the material; `encryptedNonce` = AES-GCM(material, `iv`, nonce) with its 16-byte tag appended.
 */
export function sealMaterial(
  token: Pick<ImportTokenRetrieval, 'publicKeyPem' | 'nonce'>,
  material: Buffer,
  algorithm: ImportAlgorithm,
): SecureImportInput & { encryptionAlgorithm: ImportAlgorithm } {
  const payload = publicEncrypt(
    {
      key: token.publicKeyPem,
      oaepHash: algorithm === 'RSAES_OAEP_SHA_1' ? 'sha1' : 'sha256',
      padding: constants.RSA_PKCS1_OAEP_PADDING,
    },
    material,
  )
  const iv = randomBytes(12)
  const cipher = createCipheriv(`aes-${material.length * 8}-gcm` as 'aes-256-gcm', material, iv)
  const encryptedNonce = Buffer.concat([cipher.update(token.nonce), cipher.final(), cipher.getAuthTag()])
  return { payload, encryptedNonce, iv, encryptionAlgorithm: algorithm }
}
