/**
 * Audit events as JSON lines (pino): who, instance, key, action, outcome, correlation id. Never key
 * material, tokens, PINs or request bodies. Both listeners (Key Protect, AWS KMS) write the same schema.
 *
 * Output never blocks the event loop: lines are written by asynchronous writes (libuv's thread pool), at
 * most one at a time, from a buffer bounded by `maxPendingBytes`. When a destination stalls (a stdout pipe
 * nobody reads, a full disk) the buffer fills and the `whenFull` policy applies: `reject` (the default)
 * refuses new requests with 503 before they run, since an operation that cannot be audited must not
 * happen; `drop` runs them and counts the lines it could not keep.
 */
import { close as closeFd, closeSync, mkdirSync, openSync, write as writeFd } from 'node:fs'
import { dirname } from 'node:path'
import { pino, type DestinationStream, type Logger } from 'pino'

export interface AuditEvent {
  /** Event name from the seed, e.g. `kms.secrets.wrap`; `aws-kms.<Operation>` on the AWS listener. */
  readonly event: string
  readonly outcome: 'success' | 'failure'
  readonly status: number
  /** The caller: the API key's or token's subject; the access key id on the AWS listener. Unknown: unset. */
  readonly subject: string | undefined
  readonly instance: string | undefined
  /** The key id, resolved (an alias or ARN given by the caller is resolved to the id where known). */
  readonly keyId: string | undefined
  /** The request id: the `Correlation-Id` (Key Protect) or `x-amzn-RequestId` (AWS) of the response. */
  readonly correlationId: string
  /** The error code on failure (Key Protect code, or AWS `__type`). */
  readonly reason: string | undefined
  readonly method: string
  readonly route: string
  /** The API the request came through. */
  readonly api?: 'keyprotect' | 'aws-kms' | 'azure-kv' | 'qlik' | 'cckm'
  /** The API's operation name, e.g. `Encrypt` for `TrentService.Encrypt`. */
  readonly operation?: string
  /** The key as the caller named it (key id, key ARN, alias name or alias ARN), when that is not the id. */
  readonly keyRef?: string
}

export interface AuditSink {
  /**
   * Records one event. A sink that writes each line before the request is answered (`sync`) returns a
   * promise that settles once the line is written; the listener answers after it.
   */
  record(e: AuditEvent): void | Promise<void>
  /**
   * Whether a new request may run: false when the sink cannot keep its event (the fail-closed policy with
   * a full buffer). The listener then refuses the request with 503 without running it. Absent: always.
   */
  accepting?(): boolean
}

/** What to do when the audit buffer is full: refuse new requests (503), or run them and drop their lines. */
export type AuditFullPolicy = 'reject' | 'drop'

/** The state of an audit sink's buffer, reported when it becomes full and when it has room again. */
export interface AuditPressure {
  /** True from the first refused request or dropped line until the buffer is half empty again. */
  readonly full: boolean
  /** Bytes (UTF-16 units) waiting to be written, including a write in progress. */
  readonly pendingBytes: number
  /** Requests refused because the buffer was full, since start. */
  readonly refused: number
  /** Lines dropped since start (policy `drop`, or past twice the bound under `reject`). */
  readonly dropped: number
  /** The last write error's code (e.g. `ENOSPC`), when the last write failed; the write is retried. */
  readonly writeError: string | undefined
}

/** Options of {@link pinoAuditSink}. */
export interface AuditSinkOptions {
  /**
   * Write each line before the request that made it is answered (`EKMS_AUDIT_SYNC=1`): the listener waits
   * for the write, the event loop does not. Default false: batches of `batchBytes` or every `flushMs`.
   */
  readonly sync?: boolean
  /** Batch size that starts a write (default 64 KiB). */
  readonly batchBytes?: number
  /** Largest time a line waits in the batch (default 200 ms). */
  readonly flushMs?: number
  /** Bound of the buffer: bytes waiting to be written (default 4 MiB). */
  readonly maxPendingBytes?: number
  /** Policy when the buffer is full (default `reject`). */
  readonly whenFull?: AuditFullPolicy
  /** Called when the buffer becomes full, when it has room again, and on the first failed write of a run. */
  readonly onPressure?: (p: AuditPressure) => void
}

/** The lines (newlines) in `b`, at most `max`: a partly written line counts as a line. */
function countLines(b: Buffer, max: number): number {
  let n = 0
  for (let i = b.indexOf(10); i >= 0 && n < max; i = b.indexOf(10, i + 1)) n++
  return n
}

/** How long a failed or would-block write waits before it is tried again. */
const RETRY_MS = 100

/**
 * A destination for pino that collects lines in memory and writes them asynchronously, one write at a
 * time. The pending byte count (queued plus in flight) is this class's own, not the stream library's.
 * sonic-boom's own buffering cost ~7 µs per line in this server's profile; this costs an array push.
 */
class AsyncAuditFile implements DestinationStream {
  #fd: number
  readonly #path: string | undefined
  readonly #ownsFd: boolean
  readonly #sync: boolean
  readonly #batch: number
  readonly #max: number
  readonly #policy: AuditFullPolicy
  readonly #onPressure: ((p: AuditPressure) => void) | undefined
  #queue: string[] = []
  #queueWaiters: (() => void)[] = []
  #queued = 0
  #queuedLines = 0
  #inFlight = 0
  #inFlightLines = 0
  #writing = false
  #reopenWanted = false
  /** Lines queued before a reopen go to the file they were written for (the renamed one). */
  #reopenFlushFirst = false
  /** The unwritten rest of a batch whose write failed, its waiters and (about) its line count. */
  #unwritten: Buffer | undefined
  #unwrittenWaiters: (() => void)[] = []
  #unwrittenLines = 0
  #closed = false
  #full = false
  #refused = 0
  #dropped = 0
  #writeError: string | undefined
  #retry: NodeJS.Timeout | undefined
  #idle: (() => void)[] = []
  readonly #timer: NodeJS.Timeout

  constructor(target: string | number, o: AuditSinkOptions) {
    if (typeof target === 'number') {
      this.#fd = target
      this.#path = undefined
      this.#ownsFd = false
    } else {
      this.#path = target
      this.#fd = AsyncAuditFile.#open(target)
      this.#ownsFd = true
    }
    this.#sync = o.sync === true
    this.#batch = o.batchBytes ?? 65_536
    this.#max = o.maxPendingBytes ?? 4 * 1024 * 1024
    this.#policy = o.whenFull ?? 'reject'
    this.#onPressure = o.onPressure
    this.#timer = setInterval(() => {
      this.#kick()
    }, o.flushMs ?? 200)
    this.#timer.unref()
  }

  get pendingBytes(): number {
    return this.#queued + this.#inFlight + (this.#unwritten?.length ?? 0)
  }

  stats(): AuditPressure {
    return {
      full: this.#full,
      pendingBytes: this.pendingBytes,
      refused: this.#refused,
      dropped: this.#dropped,
      writeError: this.#writeError,
    }
  }

  /** False (and counted) when a new request must be refused: policy `reject` and the buffer full. */
  accepting(): boolean {
    if (this.#policy === 'drop' || this.pendingBytes < this.#max) return true
    this.#refused++
    this.#setFull()
    return false
  }

  /** pino's destination interface: the line is queued (or dropped when full, counted). */
  write(line: string): void {
    this.lastWrite = this.enqueue(line)
  }

  /** With `sync`: the promise of the last line pino wrote through {@link write}. */
  lastWrite: Promise<void> | undefined

  /** Queues `line`; with `sync`, the promise settles once it is written (or dropped). */
  enqueue(line: string): Promise<void> | undefined {
    // Under `reject`, requests admitted while there was room still get their line, up to twice the bound.
    const cap = this.#policy === 'drop' ? this.#max : 2 * this.#max
    if (this.#closed || this.pendingBytes + line.length > cap) {
      this.#dropped++
      this.#setFull()
      return undefined
    }
    this.#queue.push(line)
    this.#queued += line.length
    this.#queuedLines++
    if (this.#sync) {
      const p = new Promise<void>((resolve) => this.#queueWaiters.push(resolve))
      this.#kick()
      return p
    }
    if (this.#queued >= this.#batch) this.#kick()
    return undefined
  }

  #setFull(): void {
    if (this.#full) return
    this.#full = true
    this.#onPressure?.(this.stats())
  }

  /** Starts a write of everything queued, unless one is in progress or waiting for its retry. */
  #kick(): void {
    if (this.#writing || this.#retry !== undefined) return
    if (this.#reopenWanted && (!this.#reopenFlushFirst || this.#queue.length + this.#unwrittenLines === 0)) {
      this.#doReopen()
    }
    if (this.#queue.length === 0 && this.#unwritten === undefined) {
      this.#settleIdle()
      return
    }
    // The unwritten rest of a failed batch goes first, then what was queued since.
    const fresh = Buffer.from(this.#queue.join(''), 'utf8')
    const data = this.#unwritten === undefined ? fresh : Buffer.concat([this.#unwritten, fresh])
    const waiters = this.#unwrittenWaiters.concat(this.#queueWaiters)
    this.#inFlightLines = this.#unwrittenLines + this.#queuedLines
    this.#inFlight = data.length
    this.#unwritten = undefined
    this.#unwrittenWaiters = []
    this.#unwrittenLines = 0
    this.#queue = []
    this.#queueWaiters = []
    this.#queued = 0
    this.#queuedLines = 0
    this.#reopenFlushFirst = false
    this.#writing = true
    this.#writeAll(data, 0, (err, written) => {
      this.#writing = false
      this.#inFlight = 0
      const lines = this.#inFlightLines
      this.#inFlightLines = 0
      if (err !== undefined) {
        // Nothing is lost on a failed write: the rest of the batch is kept and tried again before anything
        // newer; meanwhile the buffer fills and the full-buffer policy applies.
        const reported = this.#writeError !== undefined
        this.#writeError = err.code ?? 'EIO'
        const rest = data.subarray(written)
        this.#unwritten = rest
        this.#unwrittenWaiters = waiters
        this.#unwrittenLines = countLines(rest, lines)
        if (!reported) this.#onPressure?.(this.stats())
        if (this.#closed && this.#idle.length === 0) return
        this.#retry = setTimeout(() => {
          this.#retry = undefined
          this.#kick()
        }, RETRY_MS)
        this.#retry.unref()
        return
      }
      this.#writeError = undefined
      for (const w of waiters) w()
      if (this.#full && this.pendingBytes <= this.#max / 2) {
        this.#full = false
        this.#onPressure?.(this.stats())
      }
      if (this.#sync || this.#reopenWanted || this.#queued >= this.#batch || this.#idle.length > 0)
        this.#kick()
    })
  }

  /** Writes all of `data` from `offset`; a would-block (non-blocking fd) or partial write continues. */
  #writeAll(
    data: Buffer,
    offset: number,
    done: (err: NodeJS.ErrnoException | undefined, written: number) => void,
  ): void {
    writeFd(this.#fd, data, offset, data.length - offset, null, (err, n) => {
      if (err !== null) {
        if (err.code === 'EAGAIN') {
          setTimeout(() => {
            this.#writeAll(data, offset, done)
          }, RETRY_MS / 10).unref()
          return
        }
        // What was written stays written; the rest is kept by the caller.
        done(err, offset)
        return
      }
      if (offset + n < data.length) this.#writeAll(data, offset + n, done)
      else done(undefined, data.length)
    })
  }

  #settleIdle(): void {
    const idle = this.#idle
    this.#idle = []
    for (const f of idle) f()
  }

  /**
   * Log rotation: what is buffered goes to the current file, then the path is opened again (the old file
   * was renamed, the next lines go to a new one). Done between two writes. A no-op for a descriptor it was
   * given (stdout).
   */
  reopen(): void {
    if (this.#path === undefined) return
    // Opened now, so that an error reaches the caller (SIGHUP handler) at once.
    closeSync(AsyncAuditFile.#open(this.#path))
    this.#reopenWanted = true
    this.#reopenFlushFirst = true
    this.#kick()
  }

  #doReopen(): void {
    this.#reopenWanted = false
    if (this.#path === undefined) return
    const old = this.#fd
    this.#fd = AsyncAuditFile.#open(this.#path)
    closeFd(old, () => undefined)
  }

  /**
   * Writes what is buffered and stops. Resolves true once everything is written, or false after
   * `graceMs` if the destination is still stalled (the lines left are counted as dropped).
   */
  async close(graceMs = 5000): Promise<boolean> {
    clearInterval(this.#timer)
    this.#closed = true
    const drained = new Promise<boolean>((resolve) => {
      this.#idle.push(() => {
        resolve(true)
      })
      this.#kick()
    })
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => {
        resolve(false)
      }, graceMs)
      timer.unref()
    })
    const ok = await Promise.race([drained, late])
    clearTimeout(timer)
    if (this.#retry !== undefined) clearTimeout(this.#retry)
    if (!ok) {
      // Stop retrying; a write still stuck in the destination is abandoned with its lines.
      this.#idle = []
      this.#dropped += this.#queuedLines + this.#inFlightLines + this.#unwrittenLines
      for (const w of this.#unwrittenWaiters.concat(this.#queueWaiters)) w()
      this.#queueWaiters = []
      this.#unwrittenWaiters = []
    }
    if (ok && this.#ownsFd) closeSync(this.#fd)
    return ok
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

/** What {@link pinoAuditSink} returns: the sink, its pino logger, buffer state, rotation and close. */
export interface PinoAuditSink extends AuditSink {
  readonly logger: Logger
  /** The buffer's state and counters (all zero for a caller-given pino destination). */
  stats(): AuditPressure
  /**
   * Writes what is buffered and stops: true once written, false if the destination was still stalled after
   * `graceMs` (default 5 s; the lines left are lost and counted as dropped).
   */
  close(graceMs?: number): Promise<boolean>
  /** Log rotation: opens the file again by its path (a no-op on stdout). */
  reopen(): void
}

/**
 * An audit sink writing JSON lines (pino) to a file or, without one, to stdout, never blocking the event
 * loop (see the module comment for the bounded buffer and its full-buffer policy). Lines are written in
 * batches of 64 KiB or every 200 ms, whichever comes first; with `sync` (or the older form
 * `pinoAuditSink(dest, 0)`) each line is written before its request is answered. A pino
 * `DestinationStream` given instead of a path is used as it is, without the bound.
 */
export function pinoAuditSink(
  destination?: DestinationStream | string,
  options: AuditSinkOptions | number = {},
): PinoAuditSink {
  const o: AuditSinkOptions =
    typeof options === 'number' ? (options === 0 ? { sync: true } : { batchBytes: options }) : options
  const file = typeof destination === 'object' ? undefined : new AsyncAuditFile(destination ?? 1, o)
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
  const idle: AuditPressure = { full: false, pendingBytes: 0, refused: 0, dropped: 0, writeError: undefined }
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
          return file.enqueue('{"level":30' + isoTime() + String(chindings) + props + '}\n')
        }
      }
      logger.info(e)
      return file?.lastWrite
    },
    accepting: () => file === undefined || file.accepting(),
    stats: () => file?.stats() ?? idle,
    close: async (graceMs) => (file === undefined ? true : file.close(graceMs)),
    reopen() {
      file?.reopen()
    },
  }
}

/** An audit sink that drops events (tests that do not look at them). */
export const nullAuditSink: AuditSink = { record() {} }
