/**
 * Request bodies from untrusted clients, shared by both listeners: read as a capped stream (never more than
 * the cap is held), and admitted against a per-listener budget of body bytes in flight.
 */
import type { IncomingMessage } from 'node:http'
import type { Context } from 'hono'

/** The body is larger than the cap (by Content-Length, or while reading it). */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body exceeds ${limit} bytes`)
  }
}

/**
 * The client went away before its body ended (it disconnected mid-upload). Not a server failure: answered
 * as 499 in logs and audit (nginx's "client closed request"), never as a 5xx.
 */
export class ClientAbortError extends Error {
  constructor() {
    super('request body: the client closed the connection before the body ended')
  }
}

/** HTTP status recorded for a {@link ClientAbortError} (nginx's convention; never sent: the client is gone). */
export const CLIENT_CLOSED_REQUEST = 499

/** The listener's budget of body bytes in flight is spent; the request was not read. */
export class BodyBudgetError extends Error {
  constructor() {
    super('too many request bodies in flight')
  }
}

/**
 * A per-listener bound on the body bytes being received at once: each read reserves what it may hold (its
 * Content-Length, or the cap for a chunked body) before reading and gives it back when the read ends.
 * Without it, many concurrent uploads could each hold up to the cap.
 */
export class BodyBudget {
  #used = 0
  constructor(readonly limit: number) {}

  /** Reserves `n` bytes, or returns false when that would go past the limit. */
  tryTake(n: number): boolean {
    if (this.#used + n > this.limit) return false
    this.#used += n
    return true
  }

  release(n: number): void {
    this.#used = Math.max(0, this.#used - n)
  }

  /** Bytes reserved now. */
  get used(): number {
    return this.#used
  }
}

/** Default budget of a listener: 64 bodies of the cap at once. */
export const DEFAULT_BODY_BUDGET_FACTOR = 64

/**
 * The request body, read as a stream and refused as soon as more than `limit` bytes arrived (or up front
 * when Content-Length says so). At most `limit` bytes are held. On overflow the rest is not read: answer
 * with `Connection: close` (see {@link BODY_REFUSED_HEADERS}) so the connection does not carry it further.
 * Reads Node's IncomingMessage directly when served by @hono/node-server; otherwise the web stream.
 * @throws BodyTooLargeError past the cap; BodyBudgetError when `budget` cannot admit the read
 */
export async function readCappedBody(c: Context, limit: number, budget?: BodyBudget): Promise<Buffer> {
  const lengthHeader = c.req.raw.headers.get('content-length')
  const declared = lengthHeader === null ? Number.NaN : Number(lengthHeader)
  if (declared > limit) throw new BodyTooLargeError(limit)
  if (declared === 0) return Buffer.alloc(0)
  const reserve = Number.isInteger(declared) && declared >= 0 ? declared : limit
  if (budget !== undefined && !budget.tryTake(reserve)) throw new BodyBudgetError()
  try {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
    if (incoming === undefined) return await readWebStream(c.req.raw.body, limit)
    // The whole body usually arrived with the headers: Node's parser has already buffered all of it (the
    // message is complete, or the buffer holds the declared Content-Length) before this runs. Take it in
    // one read() instead of listening for chunks: the same bytes, and the stream still ends as before.
    if (
      (incoming.complete || incoming.readableLength === declared) &&
      !incoming.destroyed &&
      incoming.readableFlowing !== true &&
      !incoming.readableObjectMode &&
      incoming.readableEncoding === null &&
      incoming.readableLength <= limit
    ) {
      const all = incoming.read() as Buffer | null
      // Let the stream run to its end (otherwise @hono/node-server drains it later, with two timers per
      // request).
      incoming.resume()
      return all ?? Buffer.alloc(0)
    }
    return await readIncoming(incoming, limit)
  } finally {
    budget?.release(reserve)
  }
}

/** Headers of an answer that refuses a body it did not read to the end. */
export const BODY_REFUSED_HEADERS: Readonly<Record<string, string>> = { connection: 'close' }

function readIncoming(incoming: IncomingMessage, limit: number): Promise<Buffer> {
  // Listeners rather than `for await`: leaving an async iterator destroys the stream, and with it the
  // socket, before the 413 can be written.
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const done = (): void => {
      incoming.off('data', onData)
      incoming.off('end', onEnd)
      incoming.off('error', onError)
      incoming.off('close', onClose)
    }
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > limit) {
        done()
        incoming.pause()
        chunks.length = 0
        reject(new BodyTooLargeError(limit))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = (): void => {
      done()
      resolve(chunks.length === 1 ? (chunks[0] ?? Buffer.alloc(0)) : Buffer.concat(chunks, size))
    }
    const onError = (err: Error): void => {
      done()
      // Node reports a peer that went away mid-body as an 'aborted' ECONNRESET on the request stream.
      const code = (err as NodeJS.ErrnoException).code
      reject(code === 'ECONNRESET' || err.message === 'aborted' ? new ClientAbortError() : err)
    }
    const onClose = (): void => {
      done()
      reject(new ClientAbortError())
    }
    incoming.on('data', onData)
    incoming.on('end', onEnd)
    incoming.on('error', onError)
    incoming.on('close', onClose)
  })
}

async function readWebStream(body: ReadableStream<Uint8Array> | null, limit: number): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0)
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel().catch(() => undefined)
      throw new BodyTooLargeError(limit)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks, size)
}
