/**
 * Worker pool (piscina) for batch wrap / unwrap / rewrap. Pool size defaults to the machine's cores; the
 * queue is bounded (POOL_SATURATED instead of unbounded memory growth); a worker that dies is replaced by
 * piscina and its task fails with POOL_WORKER_FAILED, which the engine retries once (batches are
 * idempotent: they only read the catalog and make new ciphertexts).
 */
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Piscina } from 'piscina'
import type { BatchItemResult, BatchTask } from '../core/ports.js'
import { EngineError, type ErrorCode, ERROR_CODES } from '../core/errors.js'
import type { BatchRunner } from '../core/ports.js'
import { acquireModule, releaseModule, type ModuleEntry } from '../providers/pkcs11/module.js'
import type { Pkcs11ProviderOptions } from '../providers/pkcs11/provider.js'
import { unpack, type PackedResults } from './pack.js'

/** Options of {@link createWorkerPool}. */
export interface WorkerPoolOptions {
  /**
   * How each worker opens the HSM. The profile must be given by name or path (it is sent to the worker).
   * Workers join the process's PKCS#11 initialisation and login; they never finalise the library.
   */
  readonly pkcs11: Pkcs11ProviderOptions & { readonly profile?: string }
  /** Worker threads (default: available cores). */
  readonly threads?: number
  /** Tasks that may wait beyond one per thread before POOL_SATURATED (default 8 per thread). */
  readonly maxQueue?: number
  /**
   * Nice value of the worker threads on Linux (default 10; 0 leaves them alone). Workers yield to the main
   * thread when they compete for the cores, which keeps the event loop responsive during large batches.
   */
  readonly nice?: number
}

function workerFile(): { filename: string; execArgv: string[] } {
  // EKMS_POOL_WORKER_FILE names a compiled worker (the test suite builds dist/ and uses it: TypeScript loaders
  // in worker threads run esbuild machinery that does not survive a worker being terminated mid-load).
  const given = process.env['EKMS_POOL_WORKER_FILE']
  if (given !== undefined && given !== '') return { filename: given, execArgv: [] }
  const here = fileURLToPath(import.meta.url)
  if (here.endsWith('.ts')) {
    // Running from source (tsx): the worker needs the same TypeScript loader.
    return { filename: here.replace(/pool\.ts$/, 'worker.ts'), execArgv: ['--import', 'tsx'] }
  }
  return { filename: here.replace(/pool\.js$/, 'worker.js'), execArgv: [] }
}

const CODES: ReadonlySet<string> = new Set(ERROR_CODES)

/** A {@link BatchRunner} on piscina worker threads. */
export class WorkerPool implements BatchRunner {
  readonly threads: number
  readonly #piscina: Piscina
  readonly #limit: number
  readonly #module: ModuleEntry
  #pending = 0
  #closed = false

  constructor(options: WorkerPoolOptions) {
    const threads = options.threads ?? availableParallelism()
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
      throw new EngineError('CONFIG_INVALID', 'pool.threads: must be an integer 1-256')
    }
    const maxQueue = options.maxQueue ?? threads * 8
    if (!Number.isInteger(maxQueue) || maxQueue < 0)
      throw new EngineError('CONFIG_INVALID', 'pool.maxQueue: must be an integer >= 0')
    if (typeof options.pkcs11.profile === 'object') {
      throw new EngineError(
        'CONFIG_INVALID',
        'pool.pkcs11.profile: give a profile name or path, not an object',
      )
    }
    this.threads = threads
    this.#limit = threads + maxQueue
    // The main thread initialises the PKCS#11 library before any worker starts, and keeps it initialised
    // until every worker is gone: concurrent C_Initialize calls from several threads race inside the
    // library (SoftHSM2 sets up its mutexes in C_Initialize), and a C_Finalize while workers run would pull
    // the library out from under them (RESULTS gotcha 2). Workers then only join (ALREADY_INITIALIZED).
    this.#module = acquireModule(options.pkcs11.module)
    const { filename, execArgv } = workerFile()
    this.#piscina = new Piscina({
      filename,
      execArgv,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: Number.POSITIVE_INFINITY,
      workerData: { pkcs11: options.pkcs11, nice: options.nice ?? 10 },
    })
  }

  /** Worker threads of piscina (tests terminate one to check that the pool recovers). */
  get workers(): readonly { terminate(): Promise<number> }[] {
    return this.#piscina.threads
  }

  async run(task: BatchTask, signal?: AbortSignal): Promise<BatchItemResult[]> {
    if (this.#closed) throw new EngineError('ENGINE_CLOSED', 'pool: is closed')
    if (this.#pending >= this.#limit) {
      throw new EngineError(
        'POOL_SATURATED',
        `pool: ${this.#pending} tasks are queued or running; retry later`,
      )
    }
    this.#pending++
    try {
      const reply = (await this.#piscina.run(task, signal === undefined ? {} : { signal })) as
        PackedResults | { fatal: { code: string; message: string } }
      if ('fatal' in reply) {
        const code = CODES.has(reply.fatal.code) ? (reply.fatal.code as ErrorCode) : 'INTERNAL_ERROR'
        throw new EngineError(code, reply.fatal.message)
      }
      return unpack(reply)
    } catch (err) {
      if (err instanceof EngineError) throw err
      if (signal?.aborted === true)
        throw new EngineError('ABORTED', 'pool: aborted by the caller', { cause: err })
      throw new EngineError('POOL_WORKER_FAILED', 'pool: a worker thread failed while running the task', {
        cause: err,
      })
    } finally {
      this.#pending--
    }
  }

  /** Terminates the workers. Tasks still queued fail; the PKCS#11 library stays initialised for the main thread. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    try {
      await this.#piscina.destroy()
    } finally {
      releaseModule(this.#module)
    }
  }
}

/**
 * Starts the worker pool.
 * @throws EngineError CONFIG_INVALID
 */
export function createWorkerPool(options: WorkerPoolOptions): WorkerPool {
  return new WorkerPool(options)
}
