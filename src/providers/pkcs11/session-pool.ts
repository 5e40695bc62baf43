/**
 * A pool of PKCS#11 sessions: one operation per session at a time (a session with an active operation
 * answers CKR_OPERATION_ACTIVE; RESULTS gotcha 8). Sessions open lazily up to `max`; callers beyond that
 * wait in FIFO order.
 */
import { EngineError } from '../../core/errors.js'
import type { Handle } from './module.js'

export interface SessionSource {
  open(): Handle
  close(h: Handle): void
}

export class SessionPool {
  readonly #src: SessionSource
  readonly #max: number
  #idle: Handle[] = []
  #open = 0
  #waiters: { resolve: (h: Handle) => void; reject: (e: unknown) => void }[] = []
  #closed = false

  constructor(src: SessionSource, max: number) {
    this.#src = src
    this.#max = max
  }

  /** Sessions currently open (idle + in use). */
  get size(): number {
    return this.#open
  }

  /** An idle session, or a new one while under the limit; undefined when all are busy. */
  tryAcquire(): Handle | undefined {
    if (this.#closed) throw new EngineError('PROVIDER_UNAVAILABLE', 'pkcs11: provider is closed')
    const h = this.#idle.pop()
    if (h !== undefined) return h
    if (this.#open < this.#max) {
      const s = this.#src.open()
      this.#open++
      return s
    }
    return undefined
  }

  /** Waits for a session. */
  async acquire(): Promise<Handle> {
    const h = this.tryAcquire()
    if (h !== undefined) return h
    return new Promise<Handle>((resolve, reject) => this.#waiters.push({ resolve, reject }))
  }

  /** Returns a healthy session. */
  release(h: Handle): void {
    if (this.#closed) return
    const w = this.#waiters.shift()
    if (w !== undefined) w.resolve(h)
    else this.#idle.push(h)
  }

  /** Closes a session that failed (or whose operation may still be active) and frees its place. */
  discard(h: Handle): void {
    if (this.#closed) return
    this.#open--
    try {
      this.#src.close(h)
    } catch {
      /* the handle is already dead */
    }
    this.#wakeOne()
  }

  #wakeOne(): void {
    const w = this.#waiters.shift()
    if (w === undefined) return
    try {
      const h = this.tryAcquire()
      if (h !== undefined) w.resolve(h)
      else this.#waiters.unshift(w)
    } catch (err) {
      w.reject(err)
    }
  }

  /**
   * Closes idle sessions and refuses new work. After a re-initialisation the provider drops the whole
   * pool with `closeHandles: false`: its handles are dead, and a session still in use returns to this
   * closed pool, never to the new one.
   */
  close(closeHandles = true): void {
    this.#closed = true
    for (const h of closeHandles ? this.#idle : []) {
      try {
        this.#src.close(h)
      } catch {
        /* dead already */
      }
    }
    this.#idle = []
    for (const w of this.#waiters)
      w.reject(new EngineError('PROVIDER_UNAVAILABLE', 'pkcs11: provider is closed'))
    this.#waiters = []
  }
}
