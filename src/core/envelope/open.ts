/**
 * Opening messages made by seal.ts. The key comes from the message itself; the instance must own it and the
 * caller's context must equal the message's (checked before any HSM call). A frame's plaintext is released
 * only after the frame authenticated.
 */
import { Transform } from 'node:stream'
import { checkOpen, type EngineContext } from '../context.js'
import { EngineError, invalidField, toEngineError } from '../errors.js'
import { keyIdOf } from '../format/ciphertext.js'
import {
  encodeContext,
  MessageDecryptor,
  type EncodedContext,
  type MessageHeader,
  type OpenLimits,
} from '../format/message.js'
import { optionsObject } from '../validate.js'
import type { OpenOptions } from '../engine-types.js'

/** Opens a whole message in one call (at most `maxBodySize`, default 1 GiB). */
export async function open(
  ctx: EngineContext,
  instance: string,
  message: Uint8Array,
  options: OpenOptions,
): Promise<Buffer> {
  checkOpen(ctx, 'open')
  let dec: MessageDecryptor | undefined
  try {
    options = optionsObject(options)
    if (!(message instanceof Uint8Array))
      throw invalidField('message', 'must be bytes (Uint8Array or Buffer)')
    dec = new MessageDecryptor(openLimits(options, 1024 * 1024 * 1024))
    const out: Buffer[] = []
    dec.push(
      Buffer.isBuffer(message)
        ? message
        : Buffer.from(message.buffer, message.byteOffset, message.byteLength),
      out,
    )
    const header = dec.readHeader()
    if (header === undefined)
      throw new EngineError('MESSAGE_INVALID', 'message: is truncated (no complete header)')
    if (!keyHeaderSync(ctx, instance, dec, header, options))
      await keyHeader(ctx, instance, dec, header, options)
    dec.push(Buffer.alloc(0), out)
    dec.end()
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out)
  } catch (err) {
    throw toEngineError(err, 'open')
  } finally {
    dec?.destroy()
  }
}

/** A Transform stream that opens a message written to it; fails (typed) on any tampering. */
export function openStream(ctx: EngineContext, instance: string, options: OpenOptions): Transform {
  let dec: MessageDecryptor | undefined
  let keyed: Promise<void> | undefined
  const fail = (err: unknown): EngineError => toEngineError(err, 'openStream')
  const stream: Transform = new Transform({
    transform: (chunk: Buffer, _encoding, cb) => {
      try {
        checkOpen(ctx, 'openStream')
        const opts = optionsObject(options)
        dec ??= new MessageDecryptor(openLimits(opts, Number.POSITIVE_INFINITY))
        const d = dec
        const out: Buffer[] = []
        d.push(chunk, out)
        const header = d.readHeader()
        if (header === undefined) {
          cb()
          return
        }
        keyed ??= keyHeader(ctx, instance, d, header, opts)
        keyed.then(
          () => {
            d.push(Buffer.alloc(0), out)
            for (const b of out) stream.push(b)
            cb()
          },
          (err: unknown) => {
            cb(fail(err))
          },
        )
      } catch (err) {
        cb(fail(err))
      }
    },
    flush: (cb) => {
      try {
        if (dec === undefined) throw new EngineError('MESSAGE_INVALID', 'message: is empty')
        dec.end()
        cb()
      } catch (err) {
        cb(fail(err))
      }
    },
    destroy: (err, cb) => {
      dec?.destroy()
      cb(err === null ? null : fail(err))
    },
  })
  return stream
}

/** Checks the context, unwraps the message's DEK (through the cache when there is one) and keys `dec`. */
async function keyHeader(
  ctx: EngineContext,
  instance: string,
  dec: MessageDecryptor,
  header: MessageHeader,
  options: OpenOptions,
): Promise<void> {
  const expected = expectedContext(header, options)
  const keyId = keyIdOf(header.wrapped) // parsed in full only on a cache miss
  if (keyId === undefined) throw new EngineError('MESSAGE_INVALID', 'message: the wrapped DEK is malformed')
  // Not the public unwrap: a message under an older version needs no rewrapped DEK.
  const opened = await ctx.deks.open(
    'unwrap',
    instance,
    keyId,
    header.wrapped,
    { aad: expected.aad, signal: options.signal },
    undefined,
    messageCacheKey(header, expected),
  )
  try {
    dec.useDek(opened.dek.bytes, opened.memo)
  } finally {
    opened.dek.zeroize()
  }
}

/**
 * {@link keyHeader} without any await, when the key's metadata and the message's DEK are both cached: true
 * when `dec` was keyed. The context and the key's state are checked as on every open.
 */
function keyHeaderSync(
  ctx: EngineContext,
  instance: string,
  dec: MessageDecryptor,
  header: MessageHeader,
  options: OpenOptions,
): boolean {
  if (ctx.dekCache === undefined) return false
  const expected = expectedContext(header, options)
  const keyId = keyIdOf(header.wrapped)
  if (keyId === undefined) return false
  const keyed = ctx.deks.withMessageDekSync(
    instance,
    keyId,
    messageCacheKey(header, expected),
    (dek, memo) => {
      dec.useDek(dek, memo)
      return true
    },
  )
  return keyed === true
}

/**
 * The caller's context, which must equal the message's (checked before any HSM call).
 * @throws EngineError CONTEXT_MISMATCH, INVALID_FIELD_ERR
 */
function expectedContext(header: MessageHeader, options: OpenOptions): EncodedContext {
  const expected = encodeContext(options.context)
  if (!expected.bytes.equals(header.context)) {
    throw new EngineError(
      'CONTEXT_MISMATCH',
      'context: differs from the context the message was sealed with',
      {
        target: { type: 'field', name: 'context' },
      },
    )
  }
  return expected
}

/**
 * DEK-cache key of a message: wrapped DEK and canonical context, both length-delimited ('m:' never starts a
 * base64 key of the unwrap API). `expected` has the header's context bytes (checked by expectedContext).
 */
function messageCacheKey(header: MessageHeader, expected: EncodedContext): string {
  return `m:${header.wrapped.toString('latin1')}\u0000${expected.key}`
}

/** Open bounds from options, validated. */
function openLimits(o: OpenOptions, defaultMaxBody: number): OpenLimits {
  const num = (v: unknown, name: string, dflt: number): number => {
    if (v === undefined) return dflt
    if (typeof v !== 'number' || !(v >= 0)) throw invalidField(name, 'must be a non-negative number')
    return v
  }
  return {
    maxBodySize: num(o.maxBodySize, 'maxBodySize', defaultMaxBody),
    maxHeaderBytes: num(o.maxHeaderBytes, 'maxHeaderBytes', 64 * 1024),
    maxFrameSize: num(o.maxFrameSize, 'maxFrameSize', 16 * 1024 * 1024),
  }
}
