/**
 * Audit events as JSON lines (pino): who, instance, key, action, outcome, correlation id. Never key
 * material, tokens, PINs or request bodies.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { pino, type DestinationStream, type Logger } from 'pino'

export interface AuditEvent {
  /** Event name from the seed, e.g. `kms.secrets.wrap`. */
  readonly event: string
  readonly outcome: 'success' | 'failure'
  readonly status: number
  readonly subject: string | undefined
  readonly instance: string | undefined
  readonly keyId: string | undefined
  readonly correlationId: string
  /** The error code on failure. */
  readonly reason: string | undefined
  readonly method: string
  readonly route: string
}

export interface AuditSink {
  record(e: AuditEvent): void
}

/**
 * A file destination for pino that collects lines in memory and appends them with one `writeSync` per
 * `bufferBytes` (or every `flushMs`, whichever comes first). sonic-boom's own buffering cost ~7 µs per
 * line in this server's profile; this costs an array push.
 */
class BufferedFile implements DestinationStream {
  #fd: number
  readonly #path: string | undefined
  readonly #limit: number
  #chunks: string[] = []
  #size = 0
  readonly #timer: NodeJS.Timeout

  readonly #ownsFd: boolean

  constructor(target: string | number, bufferBytes: number, flushMs: number) {
    if (typeof target === 'number') {
      this.#fd = target
      this.#path = undefined
      this.#ownsFd = false
    } else {
      this.#path = target
      this.#fd = BufferedFile.#open(target)
      this.#ownsFd = true
    }
    this.#limit = bufferBytes
    this.#timer = setInterval(() => {
      this.flush()
    }, flushMs)
    this.#timer.unref()
  }

  write(line: string): void {
    this.#chunks.push(line)
    this.#size += line.length
    if (this.#size >= this.#limit) this.flush()
  }

  flush(): void {
    if (this.#chunks.length === 0) return
    const data = this.#chunks.join('')
    this.#chunks = []
    this.#size = 0
    writeSync(this.#fd, data)
  }

  /**
   * Writes what is buffered to the current file, then opens the path again (log rotation: the old file was
   * renamed, the next lines go to a new one). A no-op for a descriptor it was given (stdout).
   */
  reopen(): void {
    if (this.#path === undefined) return
    this.flush()
    const next = BufferedFile.#open(this.#path)
    const old = this.#fd
    this.#fd = next
    closeSync(old)
  }

  close(): void {
    clearInterval(this.#timer)
    this.flush()
    if (this.#ownsFd) closeSync(this.#fd)
  }

  static #open(path: string): number {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
    return openSync(path, 'a', 0o600)
  }
}

/** pino's own string quoting (lib/tools.js `asString` on Node < 25), so that lines match pino's byte for byte. */
function pinoString(str: string): string {
  const l = str.length
  if (l > 100) return JSON.stringify(str)
  let result = ''
  let last = 0
  let found = false
  let point = 255
  for (let i = 0; i < l && point >= 32; i++) {
    point = str.charCodeAt(i)
    if (point === 34 || point === 92) {
      result += str.slice(last, i) + '\\'
      last = i
      found = true
    }
  }
  if (!found) result = str
  else result += str.slice(last)
  return point < 32 ? JSON.stringify(str) : '"' + result + '"'
}

const PINO_STRING = Number(process.versions.node.split('.')[0]) >= 25 ? JSON.stringify : pinoString

/**
 * The properties of `e` as pino's `_asJson` prints them (`,"key":value` each, undefined skipped), or
 * undefined when `e` holds something only pino itself should print (objects, functions, keys pino treats
 * specially).
 */
function flatProps(e: object): string | undefined {
  let out = ''
  for (const key in e) {
    if (!Object.prototype.hasOwnProperty.call(e, key)) continue
    const v = (e as Record<string, unknown>)[key]
    if (key === 'err' || key === 'headers' || key === 'setHeader') return undefined
    switch (typeof v) {
      case 'undefined':
        continue
      case 'string':
        out += ',' + PINO_STRING(key) + ':' + PINO_STRING(v)
        break
      case 'number':
        out += ',' + PINO_STRING(key) + ':' + (Number.isFinite(v) ? String(v) : 'null')
        break
      case 'boolean':
        out += ',' + PINO_STRING(key) + ':' + String(v)
        break
      case 'bigint':
      case 'function':
      case 'object':
      case 'symbol':
        return undefined
    }
  }
  return out
}

/**
 * An audit sink writing JSON lines (pino) to a file or, without one, to stdout. Lines are written in
 * batches of `bufferBytes` (default 64 KiB) or every 200 ms, whichever comes first; `bufferBytes` 0 writes
 * each line at once. {@link AuditSink.close} writes what is buffered.
 */
export function pinoAuditSink(
  destination?: DestinationStream | string,
  bufferBytes = 65_536,
): AuditSink & { logger: Logger; close(): void; reopen(): void } {
  const file =
    typeof destination === 'object' ? undefined : new BufferedFile(destination ?? 1, bufferBytes, 200)
  const logger = pino(
    { base: { log: 'audit' }, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' },
    file ?? (typeof destination === 'object' ? destination : undefined),
  )
  // The hot path: audit events are flat, so their line is built here exactly as pino would build it
  // (`{"level":30,"time":…,"log":"audit",…}`) and handed to the buffered file, without pino's generic
  // serializer machinery (~half of the audit cost per request). Anything else, or a logger whose level or
  // bindings were changed by the caller, goes through pino itself.
  const chindings = (logger as unknown as Record<symbol, unknown>)[pino.symbols.chindingsSym]
  // pino.stdTimeFunctions.isoTime, formatted once per millisecond rather than once per event.
  let lastMs = Number.NaN
  let lastTime = ''
  const isoTime = (): string => {
    const ms = Date.now()
    if (ms !== lastMs) {
      lastMs = ms
      lastTime = `,"time":"${new Date(ms).toISOString()}"`
    }
    return lastTime
  }
  return {
    logger,
    record(e) {
      if (
        file !== undefined &&
        logger.levelVal <= 30 &&
        (logger as unknown as Record<symbol, unknown>)[pino.symbols.chindingsSym] === chindings
      ) {
        const props = flatProps(e)
        if (props !== undefined) {
          file.write('{"level":30' + isoTime() + String(chindings) + props + '}\n')
          return
        }
      }
      logger.info(e)
    },
    close() {
      file?.close()
    },
    reopen() {
      file?.reopen()
    },
  }
}

/** An audit sink that drops events (tests that do not look at them). */
export const nullAuditSink: AuditSink = { record() {} }
