/**
 * Sealed-message format, version 1 (docs/message-format.md): a header carrying the wrapped DEK and the
 * encryption context, with HKDF-SHA-256 key commitment, followed by AES-256-GCM frames. This file is the
 * only implementation; a released version is frozen and keeps its known-answer vectors for good.
 * It stays one file (over 500 lines) on purpose: one frozen format, one place to audit it against the
 * document and the independent reference implementation in test/vectors/.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  randomBytes,
  timingSafeEqual,
  type Cipher,
  type KeyObject,
} from 'node:crypto'
import { EngineError } from '../errors.js'
import { MAX_CIPHERTEXT_BYTES } from './ciphertext.js'
import type { DekMemo } from '../ports.js'
import type { SecretBytes } from '../secret-bytes.js'

export const MESSAGE_FORMAT_V1 = 0x01
/**
 * AES-256-GCM frames; per-message data key by AES-256 nonce-based key derivation (RFC 8452 §4 style) under a
 * per-DEK derivation key; HKDF-SHA-256 derivation key and key commitment. (`0x01`, HKDF per message, existed
 * only in unreleased builds and is refused.)
 */
export const ALG_AES256GCM_NKD_COMMIT = 0x02

/** 256 KiB: per-frame costs (a cipher object, a tag, stream chunks) stay under ~5% of streaming throughput. */
export const DEFAULT_FRAME_SIZE = 256 * 1024
export const MIN_FRAME_SIZE = 1
export const MAX_FRAME_SIZE = 16 * 1024 * 1024
/** Default bound on a header when opening (wrapped DEK + context + fixed fields). */
export const DEFAULT_MAX_HEADER_BYTES = 64 * 1024
export const MAX_CONTEXT_PAIRS = 64
export const MAX_CONTEXT_BYTES = 16 * 1024

const MESSAGE_ID_BYTES = 32
const COMMITMENT_BYTES = 32
const TAG_BYTES = 16
const FIXED_PREFIX = 40 // version, algorithm, message id, frame size, wrapped DEK length
const FRAME_HEADER = 9 // seq(4) type(1) length(4)
const FRAME_REGULAR = 0x00
const FRAME_FINAL = 0x01
const DOMAIN = 'envelope-kms/message/v1'
const INFO_DERIVATION_KEY = Buffer.from(`${DOMAIN}\u0001derivation-key`, 'utf8')
/** Message-id bytes that enter the data-key derivation (the nonce): 120 bits. */
const NONCE_BYTES = 15
const INFO_COMMITMENT = Buffer.from(`${DOMAIN}\u0001commitment`, 'utf8')
const FRAME_AAD_DOMAIN = Buffer.from(`${DOMAIN}/frame`, 'utf8')
const ONE = Buffer.from([1])

/** An encryption context: string pairs bound to the message and to its wrapped DEK. */
export type EncryptionContext = Readonly<Record<string, string>>

function invalid(msg: string): EngineError {
  return new EngineError('MESSAGE_INVALID', `message: ${msg}`)
}

function authFailed(msg: string): EngineError {
  return new EngineError('MESSAGE_AUTH_FAILED', `message: ${msg}`)
}

/** A context in its two bound forms: header bytes and the AAD list its DEK is wrapped under. */
export interface EncodedContext {
  /** u16 count, then per pair (sorted by key bytes) u16 key length, key, u16 value length, value (UTF-8). */
  readonly bytes: Buffer
  /** `["envelope-kms/message/v1", k1, v1, k2, v2, ...]` in the same order. */
  readonly aad: readonly string[]
  /** `bytes` as a latin1 string (one character per byte), for cache keys. */
  readonly key: string
}

const EMPTY_CONTEXT: EncodedContext = Object.freeze({
  bytes: Buffer.from([0, 0]),
  aad: Object.freeze([DOMAIN]),
  key: '\u0000\u0000',
})

/**
 * Recently encoded contexts by their entries (services seal and open under a handful of contexts): a hit
 * skips the sort, the UTF-8 encoding and two allocations. Bounded; emptied when full. The key is the
 * entries, length-prefixed, in the object's own order, so equal keys mean equal entries and an equal
 * encoding; only valid contexts are stored.
 */
const encoded = new Map<string, EncodedContext>()
/** The last context object encoded (with a snapshot of its entries): see encodeContext's fast path. */
let lastContext:
  { obj: object; keys: readonly string[]; values: readonly string[]; result: EncodedContext } | undefined
const MAX_ENCODED = 256

/**
 * Validates a context and returns its canonical encodings (see {@link EncodedContext}); the result may be
 * shared between calls and must not be modified.
 * @throws EngineError INVALID_FIELD_ERR
 */
export function encodeContext(context: unknown): EncodedContext {
  if (context === undefined) return EMPTY_CONTEXT
  if (typeof context !== 'object' || context === null || Array.isArray(context)) {
    throw new EngineError('INVALID_FIELD_ERR', 'context: must be an object of string values', {
      target: { type: 'field', name: 'context' },
    })
  }
  // Fast path: the same object as last time, with the same own keys and values (callers usually pass one
  // context object again and again). Any difference falls through to the full encoding.
  const last = lastContext
  if (last !== undefined && last.obj === context) {
    const keys = Object.keys(context)
    if (keys.length === last.keys.length) {
      let same = true
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as string
        if (k !== last.keys[i] || (context as Record<string, unknown>)[k] !== last.values[i]) {
          same = false
          break
        }
      }
      if (same) return last.result
    }
  }
  const entries = Object.entries(context as Record<string, unknown>)
  let memoKey = ''
  for (const [k, v] of entries) {
    if (typeof v !== 'string') {
      memoKey = ''
      break
    }
    memoKey += `${k.length}:${k}${v.length}:${v}`
  }
  const hit = memoKey === '' ? undefined : encoded.get(memoKey)
  const result = hit ?? encodeEntries(entries)
  if (hit === undefined && memoKey !== '') {
    if (encoded.size >= MAX_ENCODED) encoded.clear()
    encoded.set(memoKey, result)
  }
  if (memoKey !== '') {
    lastContext = {
      obj: context,
      keys: entries.map((e) => e[0]),
      values: entries.map((e) => e[1] as string),
      result,
    }
  }
  return result
}

function encodeEntries(entries: [string, unknown][]): EncodedContext {
  if (entries.length > MAX_CONTEXT_PAIRS) {
    throw new EngineError('INVALID_FIELD_ERR', `context: at most ${MAX_CONTEXT_PAIRS} pairs`, {
      target: { type: 'field', name: 'context' },
    })
  }
  let len = 2
  let ascii = true
  for (const [k, v] of entries) {
    if (typeof v !== 'string' || k.length === 0) {
      throw new EngineError('INVALID_FIELD_ERR', 'context: keys must be non-empty and values strings', {
        target: { type: 'field', name: 'context' },
      })
    }
    const kl = Buffer.byteLength(k, 'utf8')
    if (kl !== k.length) ascii = false
    len += 4 + kl + Buffer.byteLength(v, 'utf8')
  }
  if (len > MAX_CONTEXT_BYTES) {
    throw new EngineError('INVALID_FIELD_ERR', `context: at most ${MAX_CONTEXT_BYTES} bytes encoded`, {
      target: { type: 'field', name: 'context' },
    })
  }
  // Canonical order is by key bytes; for ASCII keys the string order is the same and needs no encoding.
  const byBytes = (a: [string, unknown], b: [string, unknown]): number =>
    Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0]))
  entries.sort(ascii ? (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0) : byBytes)
  const out = Buffer.allocUnsafe(len)
  const aad = [DOMAIN]
  let o = out.writeUInt16BE(entries.length, 0)
  for (const [k, value] of entries) {
    const v = value as string
    const kl = out.write(k, o + 2, 'utf8')
    o = out.writeUInt16BE(kl, o) + kl
    const vl = out.write(v, o + 2, 'utf8')
    o = out.writeUInt16BE(vl, o) + vl
    aad.push(k, v)
  }
  return Object.freeze({ bytes: out, aad: Object.freeze(aad), key: out.toString('latin1') })
}

/** Decodes canonical context bytes (as stored in a header) back into an object. */
export function decodeContext(b: Buffer): Record<string, string> {
  const out: Record<string, string> = {}
  if (b.length < 2) throw invalid('context is truncated')
  const n = b.readUInt16BE(0)
  let o = 2
  let prev: Buffer | undefined
  for (let i = 0; i < n; i++) {
    if (o + 2 > b.length) throw invalid('context is truncated')
    const kl = b.readUInt16BE(o)
    o += 2
    if (kl === 0 || o + kl + 2 > b.length) throw invalid('context is malformed')
    const k = b.subarray(o, o + kl)
    o += kl
    const vl = b.readUInt16BE(o)
    o += 2
    if (o + vl > b.length) throw invalid('context is truncated')
    if (prev !== undefined && Buffer.compare(prev, k) >= 0) throw invalid('context is not canonical')
    prev = k
    out[k.toString('utf8')] = b.toString('utf8', o, o + vl)
    o += vl
  }
  if (o !== b.length) throw invalid('context has trailing bytes')
  return out
}

/**
 * HKDF-SHA-256 (RFC 5869), extract then expand, on createHmac (node:crypto's hkdfSync builds a KeyObject
 * per call, ~9 µs; an HMAC is ~2 µs). The message format uses its expand step ({@link deriveKeys}); the whole
 * is checked against Wycheproof's hkdf_sha256_test.json, which thereby checks the expand step too.
 * @throws EngineError INVALID_FIELD_ERR when `length` exceeds 255 × 32 bytes
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer {
  // RFC 5869 §2.2: an absent salt is HashLen zeros; HMAC pads a short key with zeros, so an empty salt is the same.
  const prk = createHmac('sha256', salt).update(ikm).digest()
  try {
    return hkdfExpand(prk, [info], length)
  } finally {
    prk.fill(0)
  }
}

/** HKDF-Expand (RFC 5869 §2.3): T(i) = HMAC(PRK, T(i-1) ‖ info ‖ i); `info` given in parts to avoid a concat. */
function hkdfExpand(prk: Uint8Array, info: readonly Uint8Array[], length: number): Buffer {
  if (!Number.isInteger(length) || length < 0 || length > 255 * 32) {
    throw new EngineError('INVALID_FIELD_ERR', 'hkdf: length must be 0-8160 bytes')
  }
  if (length === 32) {
    // One block, the message format's case: T(1) = HMAC(PRK, info ‖ 0x01).
    const h = createHmac('sha256', prk)
    for (const part of info) h.update(part)
    return h.update(ONE).digest()
  }
  const out = Buffer.allocUnsafe(length)
  let t: Buffer = Buffer.alloc(0)
  for (let i = 1, o = 0; o < length; i++) {
    const h = createHmac('sha256', prk).update(t)
    for (const part of info) h.update(part)
    t = h.update(Buffer.from([i])).digest()
    o += t.copy(out, o)
  }
  return out
}

/**
 * Derives the per-message data keys of one DEK (docs/message-format.md, "Keys"):
 *
 *     derivationKey = HKDF-SHA-256-Expand(PRK = DEK, info = label "derivation-key", L = 32)
 *     dataKey       = for i in 0..3: first 8 bytes of AES-256-ECB(derivationKey, n ‖ i)
 *
 * with n the first 15 bytes of the message id. This is the nonce-based key derivation of AES-GCM-SIV
 * (RFC 8452 §4) with a 120-bit nonce and a one-byte counter. It keeps one AES context per DEK: a message
 * costs one cipher update (~0.7 µs) instead of a new HMAC (~1.8 µs). The context holds key material:
 * {@link destroy} wipes it (OpenSSL cleanses a cipher context when it is freed after `final`).
 */
export class MessageKeyDeriver {
  #ecb: Cipher | undefined
  /** Scratch input blocks: public (message id bytes and counters). */
  readonly #blocks = Buffer.alloc(64)

  constructor(dek: Buffer) {
    for (let i = 0; i < 4; i++) this.#blocks[i * 16 + NONCE_BYTES] = i
    const dk = hkdfExpand(dek, [INFO_DERIVATION_KEY], 32)
    try {
      const ecb = createCipheriv('aes-256-ecb', dk, null)
      ecb.setAutoPadding(false)
      this.#ecb = ecb
    } finally {
      dk.fill(0)
    }
  }

  get destroyed(): boolean {
    return this.#ecb === undefined
  }

  /** The data key of `messageId` (32 bytes; the caller wipes it), or undefined once destroyed. */
  derive(messageId: Buffer): Buffer | undefined {
    const ecb = this.#ecb
    if (ecb === undefined) return undefined
    if (messageId.length < NONCE_BYTES) throw new EngineError('INTERNAL_ERROR', 'message: short message id')
    // Block i = n ‖ i (the counter bytes 15, 31, 47, 63 are set once, in the constructor). copyWithin is
    // a V8 builtin; Buffer#copy costs a JS wrapper per call, which showed at this rate.
    const b = this.#blocks
    for (let j = 0; j < NONCE_BYTES; j++) b[j] = messageId[j] as number
    b.copyWithin(16, 0, NONCE_BYTES)
    b.copyWithin(32, 0, NONCE_BYTES)
    b.copyWithin(48, 0, NONCE_BYTES)
    const out = ecb.update(b)
    // out[0..8) ‖ out[16..24) ‖ out[32..40) ‖ out[48..56), compacted in place; the discarded halves wiped.
    out.copyWithin(8, 16, 24)
    out.copyWithin(16, 32, 40)
    out.copyWithin(24, 48, 56)
    out.fill(0, 32)
    return out.subarray(0, 32)
  }

  /** Wipes the derivation key; {@link derive} returns undefined afterwards. Idempotent. */
  destroy(): void {
    const ecb = this.#ecb
    this.#ecb = undefined
    ecb?.final()
  }
}

/** Stands in for the deriver of a DEK the cache has wiped: a late user falls back to a one-off deriver. */
const WIPED = new MessageKeyDeriver(Buffer.alloc(32))
WIPED.destroy()

/**
 * Wipes what a {@link DekMemo} holds of its DEK: the cache calls this when it wipes the DEK itself, and no
 * deriver is made for the memo afterwards.
 */
export function wipeDekMemo(memo: DekMemo): void {
  const d = memo.deriver
  memo.deriver = WIPED
  d?.destroy()
}

/**
 * The data key of one message (see {@link MessageKeyDeriver}); the caller wipes it. With a memo (a cached
 * DEK) the DEK's deriver is made once and kept there; without one, or once the cache wiped it, a one-off
 * deriver is made and destroyed. It must stay per message: frame IVs are sequence numbers, and a cached DEK
 * seals up to `maxMessages` messages.
 */
export function deriveDataKey(dek: Buffer, messageId: Buffer, memo?: DekMemo): Buffer {
  if (memo !== undefined) {
    const k = (memo.deriver ??= new MessageKeyDeriver(dek)).derive(messageId)
    if (k !== undefined) return k
  }
  const once = new MessageKeyDeriver(dek)
  try {
    return once.derive(messageId) as Buffer
  } finally {
    once.destroy()
  }
}

/**
 * The key commitment of a DEK: HKDF-SHA-256-Expand(PRK = DEK, info = label), one HMAC-SHA-256 block. It
 * depends on the DEK alone (not the message id), so a cached DEK computes it once ({@link DekMemo}); a
 * different DEK gives a different commitment unless HMAC-SHA-256 collides, which is what commitment needs.
 */
export function deriveCommitment(dek: Buffer): Buffer {
  return hkdfExpand(dek, [INFO_COMMITMENT], 32)
}

/** The commitment of `dek`, from `memo` when it holds one (and stored there when it did not). */
function commitmentOf(dek: Buffer, memo: DekMemo | undefined): Buffer {
  if (memo === undefined) return deriveCommitment(dek)
  return (memo.commitment ??= deriveCommitment(dek))
}

const IV = Buffer.alloc(12)
/**
 * The IV of frame `seq`: 8 zero bytes ‖ u32 seq, in a scratch buffer that createCipheriv/createDecipheriv
 * copy at once (pass the result straight to them; it changes with the next call).
 */
function frameIv(seq: number): Buffer {
  IV.writeUInt32BE(seq, 8)
  return IV
}

/** Frame AAD: domain, message id, sequence number, type, length; frame 1 also carries the whole header. */
function frameAad(messageId: Buffer, seq: number, type: number, length: number, header: Buffer): Buffer {
  const extra = seq === 1 ? header.length : 0
  const aad = Buffer.allocUnsafe(FRAME_AAD_DOMAIN.length + MESSAGE_ID_BYTES + FRAME_HEADER + extra)
  let o = FRAME_AAD_DOMAIN.copy(aad, 0)
  o += messageId.copy(aad, o)
  o = aad.writeUInt32BE(seq, o)
  o = aad.writeUInt8(type, o)
  o = aad.writeUInt32BE(length, o)
  if (seq === 1) header.copy(aad, o)
  return aad
}

let idPool = Buffer.alloc(0)
let idPos = 0
/**
 * A fresh random message id. Ids come from a pool filled 256 at a time (one CSPRNG call instead of 256);
 * every id is used once. Message ids are public.
 */
function newMessageId(): Buffer {
  if (idPos + MESSAGE_ID_BYTES > idPool.length) {
    idPool = randomBytes(MESSAGE_ID_BYTES * 256)
    idPos = 0
  }
  // A view: the pool is never written again once handed out (a refill makes a new buffer).
  const id = idPool.subarray(idPos, idPos + MESSAGE_ID_BYTES)
  idPos += MESSAGE_ID_BYTES
  return id
}

/**
 * Byte chunks queued in arrival order. take/peek return views when the bytes lie in one chunk and copy only
 * when they span chunks, so streams never re-buffer more than they must.
 */
class ChunkQueue {
  #chunks: Buffer[] = []
  #bytes = 0

  get bytes(): number {
    return this.#bytes
  }

  push(b: Buffer): void {
    this.#chunks.push(b)
    this.#bytes += b.length
  }

  clear(): void {
    this.#chunks = []
    this.#bytes = 0
  }

  /** The first `n` queued bytes (n <= bytes), without consuming them. */
  peek(n: number): Buffer {
    const first = this.#chunks[0] as Buffer
    return first.length >= n ? first : Buffer.concat(this.#chunks, n)
  }

  /** Removes and returns the first `n` queued bytes (n <= bytes). */
  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0)
    const first = this.#chunks[0] as Buffer
    let r: Buffer
    if (first.length >= n) {
      r = first.subarray(0, n)
      if (first.length === n) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(n)
    } else {
      r = Buffer.allocUnsafe(n)
      let o = 0
      while (o < n) {
        const b = this.#chunks[0] as Buffer
        const k = Math.min(b.length, n - o)
        b.copy(r, o, 0, k)
        o += k
        if (k === b.length) this.#chunks.shift()
        else this.#chunks[0] = b.subarray(k)
      }
    }
    this.#bytes -= n
    return r
  }
}

/** What the encryptor needs from the engine: the DEK, its wrapped form and (cached DEKs) its memo. */
export interface SealMaterial {
  readonly dek: SecretBytes
  readonly wrapped: Buffer
  readonly memo?: DekMemo
}

/**
 * Encrypts one message. Feed plaintext with {@link push}; {@link finish} emits the final frame. Output
 * chunks are returned, never buffered beyond one frame of input (held by reference where possible).
 */
export class MessageEncryptor {
  readonly #frameSize: number
  readonly #messageId: Buffer
  readonly #dataKey: Buffer
  /** Made on the second frame: a one-frame message keys its single cipher with the raw bytes (cheaper). */
  #key: KeyObject | undefined
  readonly #pending = new ChunkQueue()
  #seq = 0
  #done = false
  readonly header: Buffer

  constructor(
    material: SealMaterial,
    context: Buffer,
    frameSize = DEFAULT_FRAME_SIZE,
    messageId: Buffer = newMessageId(),
  ) {
    if (!Number.isInteger(frameSize) || frameSize < MIN_FRAME_SIZE || frameSize > MAX_FRAME_SIZE) {
      throw new EngineError(
        'INVALID_FIELD_ERR',
        `frameSize: must be an integer ${MIN_FRAME_SIZE}-${MAX_FRAME_SIZE}`,
        {
          target: { type: 'field', name: 'frameSize' },
        },
      )
    }
    this.#frameSize = frameSize
    this.#messageId = messageId
    const dek = material.dek.bytes
    this.#dataKey = deriveDataKey(dek, messageId, material.memo)
    const commitment = commitmentOf(dek, material.memo)
    const w = material.wrapped
    const head = Buffer.allocUnsafe(FIXED_PREFIX + w.length + 2 + context.length + COMMITMENT_BYTES)
    let o = head.writeUInt8(MESSAGE_FORMAT_V1, 0)
    o = head.writeUInt8(ALG_AES256GCM_NKD_COMMIT, o)
    o += messageId.copy(head, o)
    o = head.writeUInt32BE(frameSize, o)
    o = head.writeUInt16BE(w.length, o)
    o += w.copy(head, o)
    o = head.writeUInt16BE(context.length, o)
    o += context.copy(head, o)
    commitment.copy(head, o)
    this.header = head
  }

  /** Plaintext in; complete frames out (a frame is emitted once more input is known to follow it). */
  push(data: Buffer, out: Buffer[]): void {
    if (this.#done) throw new EngineError('INTERNAL_ERROR', 'message: push after finish')
    if (data.length === 0) return
    this.#pending.push(data)
    while (this.#pending.bytes > this.#frameSize)
      this.#emit(this.#pending.take(this.#frameSize), FRAME_REGULAR, out)
  }

  /** Emits the final frame (0..frameSize bytes) and wipes the data key. */
  finish(out: Buffer[]): void {
    if (this.#done) return
    this.#emit(this.#pending.take(this.#pending.bytes), FRAME_FINAL, out)
    this.#done = true
    this.#dataKey.fill(0)
  }

  /**
   * Seals all of `data` as the whole message (header and frames) and wipes the data key: the same bytes as
   * {@link push} and {@link finish} after the header, built in one buffer when `data` fits one frame.
   */
  sealAll(data: Buffer): Buffer {
    if (this.#done || this.#seq !== 0 || this.#pending.bytes !== 0)
      throw new EngineError('INTERNAL_ERROR', 'message: sealAll on a started message')
    if (data.length > this.#frameSize) {
      const out: Buffer[] = [this.header]
      this.push(data, out)
      this.finish(out)
      return Buffer.concat(out)
    }
    const h = this.header
    const out = Buffer.allocUnsafe(h.length + FRAME_HEADER + data.length + TAG_BYTES)
    let o = h.copy(out, 0)
    o = out.writeUInt32BE(1, o)
    o = out.writeUInt8(FRAME_FINAL, o)
    o = out.writeUInt32BE(data.length, o)
    this.#seq = 1
    try {
      const c = createCipheriv('aes-256-gcm', this.#dataKey, frameIv(1), { authTagLength: TAG_BYTES })
      c.setAAD(frameAad(this.#messageId, 1, FRAME_FINAL, data.length, h))
      if (data.length > 0) o += c.update(data).copy(out, o)
      c.final()
      c.getAuthTag().copy(out, o)
    } finally {
      this.#done = true
      this.#dataKey.fill(0)
    }
    return out
  }

  /** Wipes the data key without finishing (on errors). */
  destroy(): void {
    this.#done = true
    this.#dataKey.fill(0)
    this.#pending.clear()
  }

  #emit(plain: Buffer, type: number, out: Buffer[]): void {
    const seq = ++this.#seq
    if (seq > 0xffffffff) throw new EngineError('MESSAGE_TOO_LARGE', 'message: more than 2^32-1 frames')
    const head = Buffer.allocUnsafe(FRAME_HEADER)
    head.writeUInt32BE(seq, 0)
    head.writeUInt8(type, 4)
    head.writeUInt32BE(plain.length, 5)
    const key = seq === 1 ? this.#dataKey : (this.#key ??= createSecretKey(this.#dataKey))
    const c = createCipheriv('aes-256-gcm', key, frameIv(seq), { authTagLength: TAG_BYTES })
    c.setAAD(frameAad(this.#messageId, seq, type, plain.length, this.header))
    out.push(head)
    if (plain.length > 0) out.push(c.update(plain))
    c.final()
    out.push(c.getAuthTag())
  }
}

/** A parsed header. */
export interface MessageHeader {
  readonly messageId: Buffer
  readonly frameSize: number
  readonly wrapped: Buffer
  readonly context: Buffer
  readonly commitment: Buffer
  /** The whole header, as read (part of the first frame's AAD). */
  readonly bytes: Buffer
}

/** Bounds applied when opening. */
export interface OpenLimits {
  readonly maxHeaderBytes: number
  readonly maxFrameSize: number
  /** Largest total plaintext accepted (like the AWS ESDK's maxBodySize); Infinity for none. */
  readonly maxBodySize: number
}

/**
 * Decrypts one message incrementally. {@link push} returns authenticated plaintext only: a frame's
 * plaintext is released after its tag verified. The header is handed to `onHeader`, which returns the DEK.
 */
export class MessageDecryptor {
  readonly #limits: OpenLimits
  readonly #buf = new ChunkQueue()
  #header: MessageHeader | undefined
  #dataKey: Buffer | undefined
  #key: KeyObject | undefined
  #seq = 0
  #body = 0
  #finished = false

  constructor(limits: OpenLimits) {
    this.#limits = limits
  }

  get header(): MessageHeader | undefined {
    return this.#header
  }

  get finished(): boolean {
    return this.#finished
  }

  /** Parses the header once enough bytes arrived; undefined while more are needed. */
  readHeader(): MessageHeader | undefined {
    if (this.#header !== undefined) return this.#header
    if (this.#buf.bytes < FIXED_PREFIX) return undefined
    const pre = this.#buf.peek(FIXED_PREFIX)
    if (pre[0] !== MESSAGE_FORMAT_V1) throw invalid(`format version ${String(pre[0])} is not supported`)
    if (pre[1] !== ALG_AES256GCM_NKD_COMMIT) throw invalid(`algorithm ${String(pre[1])} is not supported`)
    const frameSize = pre.readUInt32BE(34)
    if (frameSize < MIN_FRAME_SIZE || frameSize > MAX_FRAME_SIZE) throw invalid('frame size is out of range')
    if (frameSize > this.#limits.maxFrameSize) {
      throw new EngineError('MESSAGE_TOO_LARGE', `message: frame size ${frameSize} exceeds maxFrameSize`)
    }
    const w = pre.readUInt16BE(38)
    if (w === 0 || w > MAX_CIPHERTEXT_BYTES) throw invalid('wrapped DEK length is out of range')
    if (this.#buf.bytes < FIXED_PREFIX + w + 2) {
      this.#checkHeaderBound(FIXED_PREFIX + w + 2)
      return
    }
    const c = this.#buf.peek(FIXED_PREFIX + w + 2).readUInt16BE(FIXED_PREFIX + w)
    const total = FIXED_PREFIX + w + 2 + c + COMMITMENT_BYTES
    if (total > this.#limits.maxHeaderBytes) {
      throw new EngineError('MESSAGE_TOO_LARGE', `message: header of ${total} bytes exceeds maxHeaderBytes`)
    }
    if (this.#buf.bytes < total) return undefined
    const h = this.#buf.take(total)
    const ctxStart = FIXED_PREFIX + w + 2
    // Not decoded here: the engine compares these bytes with the canonical encoding of the caller's context.
    const context = h.subarray(ctxStart, ctxStart + c)
    this.#header = {
      messageId: h.subarray(2, 34),
      frameSize,
      wrapped: h.subarray(FIXED_PREFIX, FIXED_PREFIX + w),
      context,
      commitment: h.subarray(ctxStart + c, ctxStart + c + COMMITMENT_BYTES),
      bytes: h,
    }
    return this.#header
  }

  #checkHeaderBound(needed: number): undefined {
    if (needed > this.#limits.maxHeaderBytes) {
      throw new EngineError('MESSAGE_TOO_LARGE', 'message: header exceeds maxHeaderBytes')
    }
    return undefined
  }

  /**
   * Checks the key commitment with the DEK (`memo`: the cached DEK's, see {@link DekMemo}); after this,
   * frames can be read. The rest of the header is authenticated by the first frame's tag (its AAD carries
   * the whole header), before any plaintext.
   */
  useDek(dek: Buffer, memo?: DekMemo): void {
    const h = this.#header
    if (h === undefined) throw new EngineError('INTERNAL_ERROR', 'message: DEK before header')
    if (!timingSafeEqual(commitmentOf(dek, memo), h.commitment)) {
      throw authFailed('key commitment does not match')
    }
    this.#dataKey = deriveDataKey(dek, h.messageId, memo)
  }

  /** Bytes in; authenticated plaintext out. Call {@link readHeader}/{@link useDek} first. */
  push(data: Buffer, out: Buffer[]): void {
    if (data.length > 0) {
      if (this.#finished) throw invalid('has trailing bytes after the final frame')
      this.#buf.push(data)
    }
    if (this.#dataKey === undefined) return
    this.#frames(out)
  }

  /** Call at end of input: the final frame must have been read. */
  end(): void {
    if (this.#header === undefined) throw invalid('is truncated (no complete header)')
    if (!this.#finished) throw invalid('is truncated (no final frame)')
    if (this.#buf.bytes > 0) throw invalid('has trailing bytes after the final frame')
  }

  /** Wipes the data key. */
  destroy(): void {
    this.#dataKey?.fill(0)
    this.#dataKey = undefined
    this.#key = undefined
    this.#buf.clear()
  }

  #frames(out: Buffer[]): void {
    const h = this.#header as MessageHeader
    const dataKey = this.#dataKey as Buffer
    while (!this.#finished && this.#buf.bytes >= FRAME_HEADER) {
      const fh = this.#buf.peek(FRAME_HEADER)
      const seq = fh.readUInt32BE(0)
      const type = fh[4]
      const len = fh.readUInt32BE(5)
      if (seq !== this.#seq + 1)
        throw invalid(`frame ${seq} arrived where frame ${this.#seq + 1} was expected`)
      if (type !== FRAME_REGULAR && type !== FRAME_FINAL) throw invalid('frame type is unknown')
      if (type === FRAME_REGULAR ? len !== h.frameSize : len > h.frameSize)
        throw invalid('frame length is invalid')
      if (this.#body + len > this.#limits.maxBodySize) {
        throw new EngineError('MESSAGE_TOO_LARGE', 'message: body exceeds maxBodySize')
      }
      if (this.#buf.bytes < FRAME_HEADER + len + TAG_BYTES) return
      this.#buf.take(FRAME_HEADER)
      const enc = len > 0 ? this.#buf.take(len) : Buffer.alloc(0)
      const tag = this.#buf.take(TAG_BYTES)
      // A one-frame message keys its single decipher with the raw bytes; longer ones make a KeyObject once.
      const key = seq === 1 ? dataKey : (this.#key ??= createSecretKey(dataKey))
      const d = createDecipheriv('aes-256-gcm', key, frameIv(seq), { authTagLength: TAG_BYTES })
      d.setAAD(frameAad(h.messageId, seq, type, len, h.bytes))
      d.setAuthTag(tag)
      const plain = len > 0 ? d.update(enc) : undefined
      try {
        d.final()
      } catch {
        plain?.fill(0)
        throw authFailed(`frame ${seq} authentication failed`)
      }
      this.#seq = seq
      this.#body += len
      if (plain !== undefined) out.push(plain)
      if (type === FRAME_FINAL) {
        this.#finished = true
        this.#dataKey?.fill(0)
        this.#dataKey = undefined
        this.#key = undefined
        if (this.#buf.bytes > 0) throw invalid('has trailing bytes after the final frame')
      }
    }
  }
}
