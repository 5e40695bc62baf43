/**
 * A second, independent implementation of docs/message-format.md (it imports nothing from src/), used to
 * generate the message known-answer vectors and to open what the engine seals.
 */
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto'

const DOMAIN = 'envelope-kms/message/v1'

export function contextBytes(ctx: Record<string, string>): Buffer {
  const pairs = Object.entries(ctx)
    .map(([k, v]) => [Buffer.from(k, 'utf8'), Buffer.from(v, 'utf8')] as const)
    .sort((a, b) => Buffer.compare(a[0], b[0]))
  const parts: Buffer[] = [u16(pairs.length)]
  for (const [k, v] of pairs) parts.push(u16(k.length), k, u16(v.length), v)
  return Buffer.concat(parts)
}

/** The AAD list under which the message's DEK is wrapped (ciphertext v1). */
export function dekAad(ctx: Record<string, string>): string[] {
  const keys = Object.keys(ctx).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  return [DOMAIN, ...keys.flatMap((k) => [k, ctx[k] ?? ''])]
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

function keys(dek: Buffer, messageId: Buffer): { dataKey: Buffer; commitment: Buffer } {
  // HKDF-Expand (RFC 5869) with PRK = DEK, L = 32 gives the derivation key and the commitment (one per DEK).
  // The data key: nonce-based key derivation as in RFC 8452 §4, with a 120-bit nonce n (message id bytes
  // 0..14) and a one-byte counter: the first 8 bytes of AES-256(derivationKey, n ‖ i), for i = 0, 1, 2, 3.
  const label = (l: string): Buffer => Buffer.from(`${DOMAIN}\u0001${l}`, 'utf8')
  const derivationKey = hkdfExpandOnly(dek, label('derivation-key'))
  const n = messageId.subarray(0, 15)
  const block = (i: number): Buffer => {
    const c = createCipheriv('aes-256-ecb', derivationKey, null)
    c.setAutoPadding(false)
    return Buffer.concat([c.update(Buffer.concat([n, Buffer.from([i])])), c.final()])
  }
  return {
    dataKey: Buffer.concat([0, 1, 2, 3].map((i) => block(i).subarray(0, 8))),
    commitment: Buffer.from(hkdfExpandOnly(dek, label('commitment'))),
  }
}

/** HKDF-Expand for one 32-byte block, written out from RFC 5869 §2.3: T(1) = HMAC(PRK, info ‖ 0x01). */
function hkdfExpandOnly(prk: Buffer, info: Buffer): Buffer {
  return createHmac('sha256', prk).update(Buffer.concat([info, Buffer.from([1])])).digest()
}

function frameIv(seq: number): Buffer {
  return Buffer.concat([Buffer.alloc(8), u32(seq)])
}

function frameAad(messageId: Buffer, seq: number, type: number, len: number, header: Buffer): Buffer {
  const parts = [Buffer.from(`${DOMAIN}/frame`, 'utf8'), messageId, u32(seq), Buffer.from([type]), u32(len)]
  if (seq === 1) parts.push(header) // the first frame authenticates the whole header
  return Buffer.concat(parts)
}

export interface SealInput {
  dek: Buffer
  wrapped: Buffer
  context: Record<string, string>
  messageId: Buffer
  frameSize: number
  plaintext: Buffer
}

export function sealRef(m: SealInput): Buffer {
  const { dataKey, commitment } = keys(m.dek, m.messageId)
  const ctx = contextBytes(m.context)
  const head = Buffer.concat([
    Buffer.from([1, 2]), // format v1, algorithm 2
    m.messageId,
    u32(m.frameSize),
    u16(m.wrapped.length),
    m.wrapped,
    u16(ctx.length),
    ctx,
    commitment,
  ])
  const parts: Buffer[] = [head]
  // regular frames are full; the final frame holds the rest (0..frameSize bytes)
  let o = 0
  let seq = 1
  while (m.plaintext.length - o > m.frameSize) {
    parts.push(frame(dataKey, m.messageId, seq++, 0, m.plaintext.subarray(o, o + m.frameSize), head))
    o += m.frameSize
  }
  parts.push(frame(dataKey, m.messageId, seq, 1, m.plaintext.subarray(o), head))
  return Buffer.concat(parts)
}

function frame(key: Buffer, messageId: Buffer, seq: number, type: number, plain: Buffer, header: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', key, frameIv(seq))
  c.setAAD(frameAad(messageId, seq, type, plain.length, header))
  const enc = Buffer.concat([c.update(plain), c.final()])
  return Buffer.concat([u32(seq), Buffer.from([type]), u32(plain.length), enc, c.getAuthTag()])
}

/** Opens a message with the DEK; throws on any mismatch. */
export function openRef(dek: Buffer, msg: Buffer): { plaintext: Buffer; wrapped: Buffer; context: Buffer } {
  if (msg[0] !== 1 || msg[1] !== 2) throw new Error('not a v1 message of algorithm 2')
  const messageId = msg.subarray(2, 34)
  const frameSize = msg.readUInt32BE(34)
  const w = msg.readUInt16BE(38)
  const wrapped = msg.subarray(40, 40 + w)
  const c = msg.readUInt16BE(40 + w)
  const context = msg.subarray(42 + w, 42 + w + c)
  const commitEnd = 42 + w + c + 32
  const { dataKey, commitment } = keys(dek, messageId)
  if (!commitment.equals(msg.subarray(42 + w + c, commitEnd))) throw new Error('commitment mismatch')
  const header = msg.subarray(0, commitEnd)
  let o = commitEnd
  const out: Buffer[] = []
  for (let seq = 1; ; seq++) {
    if (msg.readUInt32BE(o) !== seq) throw new Error('sequence')
    const type = msg[o + 4] as number
    const len = msg.readUInt32BE(o + 5)
    if (type === 0 && len !== frameSize) throw new Error('regular frame length')
    const d = createDecipheriv('aes-256-gcm', dataKey, frameIv(seq))
    d.setAAD(frameAad(messageId, seq, type, len, header))
    d.setAuthTag(msg.subarray(o + 9 + len, o + 9 + len + 16))
    out.push(Buffer.concat([d.update(msg.subarray(o + 9, o + 9 + len)), d.final()]))
    o += 9 + len + 16
    if (type === 1) break
  }
  if (o !== msg.length) throw new Error('trailing bytes')
  return { plaintext: Buffer.concat(out), wrapped, context }
}
