/**
 * Sealing data into self-describing messages (docs/message-format.md): a data key from the DekSource
 * (fresh, or cached within bounds), the context bound, AES-256-GCM frames, key-committed.
 */
import { Transform } from 'node:stream'
import { checkOpen, type EngineContext } from '../context.js'
import { invalidField, toEngineError, type EngineError } from '../errors.js'
import { encodeContext, MessageEncryptor } from '../format/message.js'
import type { DataKeyLease } from '../ports.js'
import { optionsObject } from '../validate.js'
import type { SealOptions } from '../engine-types.js'

/** Seals `data` in one call. */
export async function seal(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  data: Uint8Array,
  options: SealOptions,
): Promise<Buffer> {
  checkOpen(ctx, 'seal')
  let lease: DataKeyLease | undefined
  try {
    options = optionsObject(options)
    if (!(data instanceof Uint8Array)) throw invalidField('data', 'must be bytes (Uint8Array or Buffer)')
    const enc = encodeContext(options.context)
    lease =
      ctx.deks.dataKeySync(instance, idOrAlias, enc, data.length) ??
      (await ctx.deks.dataKey(instance, idOrAlias, enc, data.length, options))
    const m = new MessageEncryptor(lease, enc.bytes, options.frameSize)
    return m.sealAll(
      Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    )
  } catch (err) {
    throw toEngineError(err, 'seal')
  } finally {
    lease?.release()
  }
}

/** A Transform stream that seals what is written to it, in about one frame of memory. */
export function sealStream(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  options: SealOptions,
): Transform {
  let ready: Promise<{ enc: MessageEncryptor; lease: DataKeyLease }> | undefined
  let state: { enc: MessageEncryptor; lease: DataKeyLease } | undefined
  const start = (stream: Transform): Promise<{ enc: MessageEncryptor; lease: DataKeyLease }> => {
    ready ??= (async () => {
      checkOpen(ctx, 'sealStream')
      const opts = optionsObject(options)
      const encoded = encodeContext(opts.context)
      const lease = await ctx.deks.dataKey(instance, idOrAlias, encoded, opts.plaintextLength, opts)
      try {
        state = { enc: new MessageEncryptor(lease, encoded.bytes, opts.frameSize), lease }
      } catch (err) {
        lease.release()
        throw err
      }
      stream.push(state.enc.header)
      return state
    })()
    return ready
  }
  const fail = (err: unknown): EngineError => toEngineError(err, 'sealStream')
  return new Transform({
    transform(chunk: Buffer, _encoding, cb) {
      start(this).then(
        ({ enc }) => {
          const out: Buffer[] = []
          enc.push(chunk, out)
          for (const b of out) this.push(b)
          cb()
        },
        (err: unknown) => {
          cb(fail(err))
        },
      )
    },
    flush(cb) {
      start(this).then(
        ({ enc, lease }) => {
          const out: Buffer[] = []
          enc.finish(out)
          lease.release()
          for (const b of out) this.push(b)
          cb()
        },
        (err: unknown) => {
          cb(fail(err))
        },
      )
    },
    destroy(err, cb) {
      state?.enc.destroy()
      state?.lease.release()
      cb(err === null ? null : fail(err))
    },
  })
}
