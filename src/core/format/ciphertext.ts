/**
 * Wrapped-DEK ciphertext format, version 1. The byte layout is specified in docs/ciphertext-format.md;
 * this file is its only implementation. A released format version is frozen: a change gets a new
 * version number and new known-answer vectors, and readers keep accepting every older version.
 */
import { EngineError, invalidField } from '../errors.js'
import { decodeBase64Strict } from './base64.js'

/** Format versions this build can read. */
export const CIPHERTEXT_FORMAT_V1 = 0x01

/** Mechanism ids as stored in byte 1. Only ids listed here are accepted by the parser. */
export const Mechanism = {
  /** AES-GCM through C_Encrypt/C_Decrypt, 96-bit IV, 128-bit tag, AAD bound (see docs). */
  AES_GCM: 0x01,
  /**
   * A provider-opaque blob (an AWS KMS `CiphertextBlob`): the provider encrypted the DEK itself and binds the
   * AAD (as a KMS encryption context); the engine stores the blob as it came.
   */
  OPAQUE: 0x10,
} as const
export type MechanismId = (typeof Mechanism)[keyof typeof Mechanism]

/** GCM parameters fixed by mechanism 0x01. */
export const GCM_IV_BYTES = 12
export const GCM_TAG_BYTES = 16

/** Largest provider-opaque blob accepted (AWS KMS ciphertext blobs are at most 6144 bytes). */
export const MAX_OPAQUE_BLOB_BYTES = 6144

/** Precondition bounds for DEKs handed to wrap. */
export const MIN_DEK_BYTES = 1
export const MAX_DEK_BYTES = 4096
/** A generated DEK is 32 random bytes (AES-256), as in Key Protect. */
export const GENERATED_DEK_BYTES = 32

/** Bounds on caller AAD (Key Protect `aad`: an array of strings). */
export const MAX_AAD_ITEMS = 126
export const MAX_AAD_BYTES = 16 * 1024

const HEADER_BYTES = 22 // version(1) mechanism(1) keyId(16) keyVersion(4)
const DOMAIN = Buffer.from('envelope-kms/dek/v1', 'ascii')
/** Largest v1 GCM ciphertext: header + IV length + IV + tag length + DEK length + DEK + tag. */
const MAX_GCM_CIPHERTEXT_BYTES = HEADER_BYTES + 1 + GCM_IV_BYTES + 1 + 2 + MAX_DEK_BYTES + GCM_TAG_BYTES
/** Largest v1 opaque ciphertext: header + DEK length + blob length + blob. */
const MAX_OPAQUE_CIPHERTEXT_BYTES = HEADER_BYTES + 2 + 2 + MAX_OPAQUE_BLOB_BYTES
/** Largest v1 ciphertext of any mechanism. */
export const MAX_CIPHERTEXT_BYTES = Math.max(MAX_GCM_CIPHERTEXT_BYTES, MAX_OPAQUE_CIPHERTEXT_BYTES)
const MAX_CIPHERTEXT_BASE64 = Math.ceil(MAX_CIPHERTEXT_BYTES / 3) * 4

/** A parsed v1 ciphertext. */
export interface ParsedCiphertext {
  readonly formatVersion: number
  readonly mechanism: MechanismId
  /** Root key id (UUID, lower case). */
  readonly keyId: string
  /** Root key version number (1 = the version created with the key). */
  readonly keyVersion: number
  /** The 22 header bytes as read (format version, mechanism, key id, key version). */
  readonly header: Buffer
  /** Mechanism 0x01: the GCM IV. Empty for mechanism 0x10. */
  readonly iv: Buffer
  /**
   * Mechanism 0x01: the encrypted DEK (same length as the DEK); the tag follows it directly in the input.
   * Mechanism 0x10: the provider's opaque blob.
   */
  readonly encrypted: Buffer
  /** Mechanism 0x01: the GCM tag. Empty for mechanism 0x10. */
  readonly tag: Buffer
  /** Length of the wrapped DEK in bytes. */
  readonly dekLength: number
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** Encodes a UUID string as its 16 bytes. */
export function uuidToBytes(id: string): Buffer {
  if (!UUID_RE.test(id)) throw new EngineError('INTERNAL_ERROR', `keyId: not a lower-case UUID`)
  return Buffer.from(id.replaceAll('-', ''), 'hex')
}

function bytesToUuid(b: Buffer): string {
  const h = b.toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

/** The first 22 bytes of a v1 ciphertext; they are also part of the AAD given to the HSM. */
export function encodeHeader(mechanism: MechanismId, keyId: string, keyVersion: number): Buffer {
  /* Precondition: key versions are 1..2^32-1. */
  if (!Number.isInteger(keyVersion) || keyVersion < 1 || keyVersion > 0xffffffff) {
    throw new EngineError('INTERNAL_ERROR', `keyVersion: ${keyVersion} is out of range`)
  }
  const h = Buffer.allocUnsafe(HEADER_BYTES)
  h[0] = CIPHERTEXT_FORMAT_V1
  h[1] = mechanism
  uuidToBytes(keyId).copy(h, 2)
  h.writeUInt32BE(keyVersion, 18)
  return h
}

/** Serialises a v1 provider-opaque ciphertext (mechanism 0x10): header, DEK length, blob length, blob. */
export function encodeOpaqueCiphertext(header: Buffer, dekLength: number, blob: Uint8Array): Buffer {
  /* Precondition: a DEK and a blob within bounds. */
  if (dekLength < MIN_DEK_BYTES || dekLength > MAX_DEK_BYTES) {
    throw new EngineError('INTERNAL_ERROR', 'ciphertext: DEK of unexpected length')
  }
  if (blob.length < 1 || blob.length > MAX_OPAQUE_BLOB_BYTES) {
    throw new EngineError('PROVIDER_ERROR', 'provider: ciphertext blob of unexpected length')
  }
  const out = Buffer.allocUnsafe(HEADER_BYTES + 4 + blob.length)
  let o = header.copy(out, 0)
  o = out.writeUInt16BE(dekLength, o)
  o = out.writeUInt16BE(blob.length, o)
  out.set(blob, o)
  return out
}

/** Serialises a v1 AES-GCM ciphertext: header, IV, tag length, DEK length, encrypted DEK, tag. */
export function encodeGcmCiphertext(
  header: Buffer,
  iv: Uint8Array,
  encrypted: Uint8Array,
  tag: Uint8Array,
): Buffer {
  /* Precondition: fixed GCM parameters and a DEK within bounds. */
  if (iv.length !== GCM_IV_BYTES || tag.length !== GCM_TAG_BYTES) {
    throw new EngineError('INTERNAL_ERROR', 'ciphertext: GCM IV or tag of unexpected length')
  }
  if (encrypted.length < MIN_DEK_BYTES || encrypted.length > MAX_DEK_BYTES) {
    throw new EngineError('INTERNAL_ERROR', 'ciphertext: encrypted DEK of unexpected length')
  }
  const out = Buffer.allocUnsafe(HEADER_BYTES + 1 + iv.length + 1 + 2 + encrypted.length + tag.length)
  out.set(header, 0) // Buffer#copy validates its arguments first; the header is always 22 bytes
  let o = HEADER_BYTES
  out[o++] = iv.length
  out.set(iv, o)
  o += iv.length
  out[o++] = tag.length
  o = out.writeUInt16BE(encrypted.length, o)
  out.set(encrypted, o)
  o += encrypted.length
  out.set(tag, o)
  return out
}

function invalid(reason: string): EngineError {
  return new EngineError('CIPHERTEXT_INVALID', `ciphertext: ${reason}`, {
    target: { type: 'field', name: 'ciphertext' },
  })
}

/**
 * Parses a v1 ciphertext given as bytes or base64. Never throws anything but an EngineError.
 * @throws EngineError CIPHERTEXT_INVALID for any malformed input
 */
export function parseCiphertext(input: Uint8Array | string): ParsedCiphertext {
  let b: Buffer
  if (typeof input === 'string') {
    if (input.length === 0) throw invalid('is empty')
    if (input.length > MAX_CIPHERTEXT_BASE64) throw invalid('is too long')
    const decoded = decodeBase64Strict(input)
    if (decoded === undefined) throw invalid('is not standard base64')
    b = decoded
  } else if (input instanceof Uint8Array) {
    b = Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  } else {
    throw invalid('must be a base64 string or bytes')
  }
  if (b.length < HEADER_BYTES) throw invalid('is truncated')
  if (b.length > MAX_CIPHERTEXT_BYTES) throw invalid('is too long')
  const version = b[0]
  if (version !== CIPHERTEXT_FORMAT_V1) throw invalid(`format version ${String(version)} is not supported`)
  const mechanism = b[1]
  if (mechanism !== Mechanism.AES_GCM && mechanism !== Mechanism.OPAQUE)
    throw invalid(`mechanism ${String(mechanism)} is not supported`)
  const keyVersion = b.readUInt32BE(18)
  if (keyVersion === 0) throw invalid('key version 0 does not exist')
  let o = HEADER_BYTES
  if (mechanism === Mechanism.OPAQUE) {
    if (b.length < o + 4) throw invalid('is truncated')
    const dekLen = b.readUInt16BE(o)
    const blobLen = b.readUInt16BE(o + 2)
    o += 4
    if (dekLen < MIN_DEK_BYTES || dekLen > MAX_DEK_BYTES) throw invalid('DEK length is out of range')
    if (blobLen < 1 || blobLen > MAX_OPAQUE_BLOB_BYTES) throw invalid('blob length is out of range')
    if (b.length !== o + blobLen)
      throw invalid(b.length < o + blobLen ? 'is truncated' : 'has trailing bytes')
    const empty = b.subarray(0, 0)
    return new ParsedV1(
      mechanism,
      keyVersion,
      b.subarray(0, HEADER_BYTES),
      empty,
      b.subarray(o),
      empty,
      dekLen,
    )
  }
  const ivLen = b[o++]
  if (ivLen !== GCM_IV_BYTES) throw invalid('IV length is not 12')
  if (b.length < o + ivLen + 3) throw invalid('is truncated')
  const iv = b.subarray(o, o + ivLen)
  o += ivLen
  const tagLen = b[o++]
  if (tagLen !== GCM_TAG_BYTES) throw invalid('tag length is not 16')
  const encLen = b.readUInt16BE(o)
  o += 2
  if (encLen < MIN_DEK_BYTES || encLen > MAX_DEK_BYTES) throw invalid('encrypted DEK length is out of range')
  if (b.length !== o + encLen + tagLen)
    throw invalid(b.length < o + encLen + tagLen ? 'is truncated' : 'has trailing bytes')
  const encrypted = b.subarray(o, o + encLen)
  const tag = b.subarray(o + encLen)
  return new ParsedV1(mechanism, keyVersion, b.subarray(0, HEADER_BYTES), iv, encrypted, tag, encLen)
}

/** A parsed v1 ciphertext; the key id string is built only when asked for (the engine compares bytes). */
class ParsedV1 implements ParsedCiphertext {
  readonly formatVersion = CIPHERTEXT_FORMAT_V1
  constructor(
    readonly mechanism: MechanismId,
    readonly keyVersion: number,
    readonly header: Buffer,
    readonly iv: Buffer,
    readonly encrypted: Buffer,
    readonly tag: Buffer,
    readonly dekLength: number,
  ) {}

  get keyId(): string {
    return bytesToUuid(this.header.subarray(2, 18))
  }

  toJSON(): Record<string, unknown> {
    return {
      formatVersion: this.formatVersion,
      mechanism: this.mechanism,
      keyId: this.keyId,
      keyVersion: this.keyVersion,
    }
  }
}

/** The key id a v1 ciphertext names, read without parsing the rest; undefined when it is not v1. */
export function keyIdOf(b: Buffer): string | undefined {
  return b.length >= HEADER_BYTES && b[0] === CIPHERTEXT_FORMAT_V1
    ? bytesToUuid(b.subarray(2, 18))
    : undefined
}

/** True when `parsed` names the same key id as the header `keyHeader`. */
export function sameKeyId(parsed: ParsedCiphertext, keyHeader: Buffer): boolean {
  // Bytes 2..17 (the key id). A plain loop: Buffer#compare with ranges validates its five arguments first.
  const h = parsed.header
  for (let i = 2; i < 18; i++) if (h[i] !== keyHeader[i]) return false
  return true
}

const NO_AAD: readonly string[] = Object.freeze([])

/**
 * Validates caller AAD (Key Protect: an array of strings).
 * @throws EngineError INVALID_FIELD_ERR
 */
export function validateAad(aad: unknown): readonly string[] {
  if (aad === undefined) return NO_AAD
  if (!Array.isArray(aad)) throw invalidField('aad', 'must be an array of strings')
  if (aad.length > MAX_AAD_ITEMS) throw invalidField('aad', `must have at most ${MAX_AAD_ITEMS} items`)
  let total = 0
  for (const item of aad) {
    if (typeof item !== 'string') throw invalidField('aad', 'must be an array of strings')
    total += Buffer.byteLength(item, 'utf8')
  }
  if (total > MAX_AAD_BYTES) throw invalidField('aad', `must be at most ${MAX_AAD_BYTES} bytes in all`)
  return aad as string[]
}

/**
 * The AAD handed to the HSM for mechanism 0x01: a domain string, the 22 header bytes, the DEK length,
 * the instance and the caller AAD, each length-prefixed so that no two distinct inputs encode alike.
 */
export function buildHsmAad(
  header: Buffer,
  dekLength: number,
  instance: string,
  aad: readonly string[],
): Buffer {
  return appendAad(hsmAadPrefix(header, dekLength, instance), aad)
}

/** The part of the HSM AAD before the caller's list: fixed per key version, DEK length and instance. */
export function hsmAadPrefix(header: Buffer, dekLength: number, instance: string): Buffer {
  const instLen = Buffer.byteLength(instance, 'utf8')
  const out = Buffer.allocUnsafeSlow(DOMAIN.length + header.length + 4 + instLen)
  let o = DOMAIN.copy(out, 0)
  o += header.copy(out, o)
  o = out.writeUInt16BE(dekLength, o)
  o = out.writeUInt16BE(instLen, o)
  out.write(instance, o, 'utf8')
  return out
}

/** `prefix` followed by the caller's AAD list: u16 count, then u32 length and UTF-8 bytes per item. */
export function appendAad(prefix: Buffer, aad: readonly string[]): Buffer {
  let len = prefix.length + 2
  for (const item of aad) len += 4 + Buffer.byteLength(item, 'utf8')
  const out = Buffer.allocUnsafe(len)
  let o = prefix.copy(out, 0)
  o = out.writeUInt16BE(aad.length, o)
  for (const item of aad) {
    const n = Buffer.byteLength(item, 'utf8')
    o = out.writeUInt32BE(n, o)
    o += out.write(item, o, 'utf8')
  }
  return out
}
