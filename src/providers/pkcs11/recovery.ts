/**
 * Sessions of one provider on one token, and their recovery after the HSM or the library fails.
 *
 * A {@link SessionGuard} finds the token by label, keeps an anchor session (logged in; it holds the
 * session copies of root keys) and a {@link SessionPool} for operations, and runs each operation through
 * {@link SessionGuard.op}: a dead session is replaced, a dead device or library is re-initialised (a new
 * module generation), a stale object handle is looked up again, all within a bounded number of attempts.
 * The provider owns exactly one guard; the guard owns the key-handle cache, whose handles live and die with
 * its sessions and generation.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { EngineError } from '../../core/errors.js'
import type { CallOptions } from '../../core/ports.js'
import { ckrName, ckrOf, classify } from './errors.js'
import {
  ensureLogin,
  reinitializeModule,
  releaseModule,
  type Handle,
  type ModuleEntry,
  type Pkcs11Js,
} from './module.js'
import { KeyHandles, type AnchorSession } from './objects.js'
import { SessionPool } from './session-pool.js'

/** What a {@link SessionGuard} needs to know, resolved from the provider's options and profile. */
export interface SessionGuardSettings {
  readonly tokenLabel: string
  /** User PIN, kept for re-login after recovery; never logged. */
  readonly pin: string
  /** True when operations call pkcs11js synchronously (profile `callMode: 'sync'`). */
  readonly sync: boolean
  /** Make a session copy of each root key in the anchor session (profile `sessionKeyCopy`). */
  readonly sessionKeyCopy: boolean
  readonly maxSessions: number
  /** Attempts per operation when the session or device fails. */
  readonly attempts: number
  /** The first back-off; it doubles with each attempt. */
  readonly baseDelayMs: number
}

/** The sessions of one provider and their recovery. Internal to the PKCS#11 provider. */
export class SessionGuard implements AnchorSession {
  /** The key handles of this guard's sessions and generation; cleared whenever those are replaced. */
  readonly keys: KeyHandles
  readonly #js: Pkcs11Js
  readonly #entry: ModuleEntry
  readonly #label: string
  readonly #pin: string
  readonly #sync: boolean
  readonly #maxSessions: number
  readonly #attempts: number
  readonly #baseDelay: number
  #gen = 0
  #slot: Handle = Buffer.alloc(0)
  #pool: SessionPool | undefined
  #anchor: Handle | undefined
  #inflight = 0
  #closed = false

  constructor(js: Pkcs11Js, entry: ModuleEntry, settings: SessionGuardSettings) {
    this.#js = js
    this.#entry = entry
    this.#label = settings.tokenLabel
    this.#pin = settings.pin
    this.#sync = settings.sync
    this.#maxSessions = settings.maxSessions
    this.#attempts = settings.attempts
    this.#baseDelay = settings.baseDelayMs
    this.keys = new KeyHandles(js, entry, this, settings.sessionKeyCopy)
  }

  /** The token's slot, once attached. */
  get slot(): Handle {
    return this.#slot
  }

  /** The anchor session: logged in, lives as long as the provider, holds the session copies of root keys. */
  get anchor(): Handle | undefined {
    return this.#anchor
  }

  /** Open sessions in the pool (not counting the anchor session). */
  get sessionsOpen(): number {
    return this.#pool?.size ?? 0
  }

  /**
   * Finds the slot, opens the anchor session and logs in, for the module's current generation. Marks the
   * generation as attached only when all of it worked, so a failed attempt is retried from scratch.
   * @throws EngineError PROVIDER_TOKEN_NOT_FOUND, CONFIG_INVALID (two tokens with the label), PROVIDER_LOGIN_FAILED
   */
  attach(): void {
    const p11 = this.#entry.p11
    const js = this.#js
    const gen = this.#entry.generation
    this.keys.clear()
    this.#pool?.close(gen === this.#gen)
    this.#pool = undefined
    if (this.#anchor !== undefined && gen === this.#gen) {
      try {
        p11.C_CloseSession(this.#anchor)
      } catch {
        /* dead already */
      }
    }
    this.#anchor = undefined
    const slots = p11.C_GetSlotList(true).filter((s) => p11.C_GetTokenInfo(s).label.trim() === this.#label)
    if (slots.length === 0) {
      throw new EngineError(
        'PROVIDER_TOKEN_NOT_FOUND',
        `pkcs11: no token labelled "${this.#label}" is present`,
      )
    }
    if (slots.length > 1)
      throw new EngineError('CONFIG_INVALID', `pkcs11: several tokens are labelled "${this.#label}"`)
    const slot = slots[0] as Handle
    const flags = js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION
    const anchor = p11.C_OpenSession(slot, flags)
    try {
      ensureLogin(this.#entry, slot, anchor, this.#pin)
    } catch (err) {
      p11.C_CloseSession(anchor)
      throw err
    }
    this.#slot = slot
    this.#anchor = anchor
    this.#pool = new SessionPool(
      {
        open: () => p11.C_OpenSession(slot, flags),
        close: (h) => {
          p11.C_CloseSession(h)
        },
      },
      this.#maxSessions,
    )
    this.#gen = gen
  }

  /**
   * Runs `fn` on a pooled session with bounded recovery: a dead session is replaced, a dead device or
   * library is re-initialised, a stale object handle is looked up again. After `attempts` tries the
   * caller gets PROVIDER_UNAVAILABLE. An EngineError thrown by `fn` is the caller's answer and is passed on
   * as is, its session returned to the pool.
   *
   * HOT PATH: every encrypt, decrypt and generateRandom comes through here. The fast path below is the
   * code that was the provider's private `#op`, moved as is: no async frame, no closure, no Map lookup,
   * one resolved promise. Keep it that way; anything that waits, retries or recovers goes to `#opSlow`.
   * @throws EngineError PROVIDER_UNAVAILABLE, PROVIDER_ERROR, ABORTED, or whatever `fn` throws as an EngineError
   */
  op<T>(what: string, fn: (s: Handle) => T | Promise<T>, opts: CallOptions = {}): Promise<T> {
    // Fast path (sync call mode, attached, an idle session): no async frame at all, one resolved promise.
    const pool = this.#pool
    if (
      this.#sync &&
      pool !== undefined &&
      !this.#closed &&
      this.#entry.generation === this.#gen &&
      opts.signal?.aborted !== true
    ) {
      const s = pool.tryAcquire()
      if (s !== undefined) {
        let v: T | Promise<T>
        try {
          v = fn(s)
        } catch (err) {
          if (err instanceof EngineError) {
            pool.release(s)
            return Promise.reject(err)
          }
          pool.discard(s)
          return this.#opSlow(what, fn, opts, err)
        }
        pool.release(s)
        return Promise.resolve(v)
      }
    }
    return this.#opSlow(what, fn, opts, undefined)
  }

  /** {@link op} with waiting, retries and recovery; `firstErr` is a failure the fast path already had. */
  async #opSlow<T>(
    what: string,
    fn: (s: Handle) => T | Promise<T>,
    opts: CallOptions,
    firstErr: unknown,
  ): Promise<T> {
    let lastErr: unknown = firstErr
    if (firstErr !== undefined && !(await this.#recover(firstErr, 1))) {
      throw new EngineError('PROVIDER_ERROR', `pkcs11: ${what} failed (${ckrName(firstErr)})`, {
        cause: firstErr,
      })
    }
    for (let attempt = firstErr === undefined ? 1 : 2; attempt <= this.#attempts; attempt++) {
      if (this.#closed) throw new EngineError('PROVIDER_UNAVAILABLE', 'pkcs11: provider is closed')
      if (opts.signal?.aborted === true) throw new EngineError('ABORTED', `${what}: aborted by the caller`)
      let pool: SessionPool
      try {
        if (this.#entry.generation !== this.#gen || this.#pool === undefined) this.attach()
        pool = this.#pool as unknown as SessionPool
      } catch (err) {
        if (err instanceof EngineError && err.code !== 'PROVIDER_TOKEN_NOT_FOUND') throw err
        lastErr = err
        await delay(this.#baseDelay * 2 ** (attempt - 1))
        continue
      }
      let s: Handle | undefined
      try {
        s = pool.tryAcquire() ?? (await pool.acquire())
      } catch (err) {
        lastErr = err
        if (!(await this.#recover(err, attempt))) break
        continue
      }
      this.#inflight++
      try {
        const r = fn(s)
        const v = r instanceof Promise ? await r : r
        pool.release(s)
        return v
      } catch (err) {
        if (err instanceof EngineError) {
          pool.release(s)
          throw err
        }
        pool.discard(s)
        lastErr = err
        if (!(await this.#recover(err, attempt))) {
          throw new EngineError('PROVIDER_ERROR', `pkcs11: ${what} failed (${ckrName(err)})`, { cause: err })
        }
      } finally {
        this.#inflight--
      }
    }
    throw new EngineError(
      'PROVIDER_UNAVAILABLE',
      `pkcs11: ${what} failed after ${this.#attempts} attempts (${ckrName(lastErr)})`,
      {
        cause: lastErr,
        retryable: true,
      },
    )
  }

  /** Prepares a retry after `err`; false when the failure is not one that a retry can fix. */
  async #recover(err: unknown, attempt: number): Promise<boolean> {
    const kind = classify(ckrOf(err))
    switch (kind) {
      case 'other':
        return false
      case 'object':
        this.keys.clear()
        return true
      case 'session':
        this.#checkAnchor()
        return true
      case 'device':
        if (attempt < this.#attempts) await delay(this.#baseDelay * 2 ** (attempt - 1))
        // Async operations of other callers may still run on the libuv pool: let them settle before finalising.
        for (let i = 0; this.#inflight > 1 && i < 250; i++) await delay(2)
        try {
          reinitializeModule(this.#entry, this.#gen)
          this.attach()
        } catch {
          /* the next attempt tries again; the last one reports PROVIDER_UNAVAILABLE */
        }
        return true
    }
  }

  #checkAnchor(): void {
    if (this.#anchor === undefined) return
    try {
      this.#entry.p11.C_GetSessionInfo(this.#anchor)
    } catch {
      // The anchor died and its session copies with it (C_CloseAllSessions also logs the token out):
      // reconnect this generation from scratch on the next attempt.
      this.#pool?.close(false)
      this.#pool = undefined
      this.#anchor = undefined
      this.keys.clear()
    }
  }

  /** Refuses new work, waits for in-flight operations, closes the sessions and releases the module. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    // Let in-flight async operations finish before their sessions go away.
    for (let i = 0; this.#inflight > 0 && i < 500; i++) await delay(2)
    if (this.#entry.generation === this.#gen) {
      this.#pool?.close(true)
      if (this.#anchor !== undefined) {
        try {
          this.#entry.p11.C_CloseSession(this.#anchor) // also destroys the session-object key copies
        } catch {
          /* dead already */
        }
      }
    }
    this.keys.clear()
    releaseModule(this.#entry)
  }
}
