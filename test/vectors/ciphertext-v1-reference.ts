/**
 * A second, independent implementation of docs/ciphertext-format.md (it imports nothing from src/), used to
 * generate the known-answer vectors and to check that what the engine writes is what the document says.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto'

export interface KatCase {
  name: string
  instance: string
  keyId: string
  keyVersion: number
  aad: string[]
  dek: string // hex
  iv: string // hex
  ciphertext: string // base64
}

export interface KatKey {
  keyId: string
  /** Root key material per version (hex). */
  versions: Record<string, string>
}

export interface KatFile {
  description: string
  format: string
  keys: KatKey[]
  cases: KatCase[]
}

const DOMAIN = Buffer.from('envelope-kms/dek/v1', 'ascii')

export function header(keyId: string, version: number): Buffer {
  const h = Buffer.alloc(22)
  h[0] = 0x01 // format version
  h[1] = 0x01 // mechanism: AES-GCM, 96-bit IV, 128-bit tag
  Buffer.from(keyId.replaceAll('-', ''), 'hex').copy(h, 2)
  h.writeUInt32BE(version, 18)
  return h
}

export function hsmAad(h: Buffer, dekLength: number, instance: string, aad: string[]): Buffer {
  const parts: Buffer[] = [DOMAIN, h]
  const u16 = (n: number): Buffer => {
    const b = Buffer.alloc(2)
    b.writeUInt16BE(n)
    return b
  }
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(n)
    return b
  }
  parts.push(u16(dekLength))
  const inst = Buffer.from(instance, 'utf8')
  parts.push(u16(inst.length), inst, u16(aad.length))
  for (const a of aad) {
    const b = Buffer.from(a, 'utf8')
    parts.push(u32(b.length), b)
  }
  return Buffer.concat(parts)
}

const alg = (material: Buffer): 'aes-256-gcm' => `aes-${material.length * 8}-gcm` as 'aes-256-gcm'

export function seal(material: Buffer, c: Omit<KatCase, 'ciphertext' | 'name'>): string {
  const h = header(c.keyId, c.keyVersion)
  const dek = Buffer.from(c.dek, 'hex')
  const iv = Buffer.from(c.iv, 'hex')
  const cipher = createCipheriv(alg(material), material, iv, { authTagLength: 16 })
  cipher.setAAD(hsmAad(h, dek.length, c.instance, c.aad))
  const enc = Buffer.concat([cipher.update(dek), cipher.final()])
  const len = Buffer.alloc(2)
  len.writeUInt16BE(enc.length)
  return Buffer.concat([h, Buffer.from([iv.length]), iv, Buffer.from([16]), len, enc, cipher.getAuthTag()]).toString('base64')
}

/** Opens a v1 ciphertext with the root key material; throws on any mismatch. */
export function open(material: Buffer, ciphertextB64: string, instance: string, aad: string[]): { keyId: string; keyVersion: number; dek: Buffer } {
  const b = Buffer.from(ciphertextB64, 'base64')
  if (b[0] !== 1 || b[1] !== 1 || b[22] !== 12) throw new Error('not a v1 AES-GCM ciphertext')
  const keyHex = b.subarray(2, 18).toString('hex')
  const keyId = `${keyHex.slice(0, 8)}-${keyHex.slice(8, 12)}-${keyHex.slice(12, 16)}-${keyHex.slice(16, 20)}-${keyHex.slice(20)}`
  const keyVersion = b.readUInt32BE(18)
  const iv = b.subarray(23, 35)
  if (b[35] !== 16) throw new Error('tag length is not 16')
  const n = b.readUInt16BE(36)
  const enc = b.subarray(38, 38 + n)
  if (b.length !== 38 + n + 16) throw new Error('bad length')
  const tag = b.subarray(38 + n)
  const d = createDecipheriv(alg(material), material, iv, { authTagLength: 16 })
  d.setAAD(hsmAad(b.subarray(0, 22), n, instance, aad))
  d.setAuthTag(tag)
  return { keyId, keyVersion, dek: Buffer.concat([d.update(enc), d.final()]) }
}
