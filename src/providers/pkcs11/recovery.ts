/**
 * Sessions of one provider on one token, and their recovery after the HSM or the library fails.
 *
 * A {@link SessionGuard} finds the token by label, keeps an anchor session (logged in; it holds the
 * session copies of root keys) and a {@link SessionPool} for operations, and runs each operation through
 * {@link SessionGuard.op}: a dead session is replaced, a stale object handle is looked up again, and a dead
 * device, library or token store is re-initialised (a new module generation), all within a bounded number of
 * attempts per operation.
 *
 * Re-initialisation is profile-driven (`recovery` in the profile, {@link RecoveryPolicy}): a failure whose
 * CKR_ code is in `reinitializeOn`, or an EngineError that may be a symptom of a lost store (an object that
 * is not found), is confirmed by a probe of the token (C_GetTokenInfo, which SoftHSM2 answers from its token
 * store). A working token means the failure is the operation's own (PROVIDER_ERROR or the EngineError as
 * is, never "unavailable"); a failed probe counts, and after `consecutiveFailures` of them the library is
 * finalised and re-initialised, logged in again, and session copies are rebuilt on next use. Attempts are
 * single-flight and spaced by the profile's back-off; while none may run, operations fail fast with
 * PROVIDER_UNAVAILABLE (retryable). {@link SessionGuard.health} is the same probe, cached for one second.
 *
 * The provider owns exactly one guard; the guard owns the key-handle cache, whose handles live and die with
 * its sessions and generation.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { EngineError } from '../../core/errors.js'
import type { CallOptions, ProviderHealth } from '../../core/ports.js'
import { ckrName, ckrOf, classify } from './errors.js'
import {
  ensureLogin,
  isLoggedIn,
  reinitializeModule,
  releaseModule,
  type Handle,
  type ModuleEntry,
  type Pkcs11Js,
} from './module.js'
import { KeyHandles, type AnchorSession } from './objects.js'
import { RecoveryPolicy, type RecoverySettings } from './recovery-policy.js'
import { SessionPool } from './session-pool.js'

/**
 * EngineError codes that an operation raises when the token does not show an object it should have (a
 * missing root-key version, a failed read-back). During a storage outage that is what SoftHSM2 shows, so the
 * guard probes the token before passing such an error on.
 */
const STORAGE_SYMPTOMS: ReadonlySet<string> = new Set(['PROVIDER_ERROR', 'KEY_VERSION_NOT_FOUND'])

/** How long {@link SessionGuard.health} reuses a probe's answer. */
const HEALTH_CACHE_MS = 1000

/** What the guard does after a failure: try again, give the operation's own error, or report an outage. */
type Next = 'retry' | 'error' | 'unavailable'

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
  /** CKR_ values of the profile's `recovery.reinitializeOn` (CKR_CRYPTOKI_NOT_INITIALIZED is always one). */
  readonly reinitializeOn: ReadonlySet<number>
  /** The profile's recovery threshold and back-off. */
  readonly recovery: RecoverySettings
  /** The clock of the recovery back-off and the health cache (tests). Default `Date.now`. */
  readonly now?: () => number
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
  readonly #reinitOn: ReadonlySet<number>
  readonly #policy: RecoveryPolicy
  readonly #now: () => number
  #recovering: Promise<boolean> | undefined
  #health: { readonly at: number; readonly result: Promise<ProviderHealth> } | undefined
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
    this.#reinitOn = new Set([...settings.reinitializeOn, js.CKR_CRYPTOKI_NOT_INITIALIZED])
    this.#now = settings.now ?? Date.now
    this.#policy = new RecoveryPolicy(settings.recovery, this.#now)
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
   * Runs `fn` on a pooled session with bounded recovery: a dead session is replaced, a stale object handle is
   * looked up again, a dead device, library or token store is re-initialised as the profile says (see the
   * file header). After `attempts` tries the caller gets PROVIDER_UNAVAILABLE. An EngineError thrown by `fn`
   * is the caller's answer and is passed on as is, its session returned to the pool (one that may be a
   * symptom of a lost store is first checked with a probe of the token).
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
            if (!STORAGE_SYMPTOMS.has(err.code)) return Promise.reject(err)
          } else pool.discard(s)
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
    let attempt = 1
    if (firstErr !== undefined) {
      const next = await this.#recover(firstErr, 1)
      if (next !== 'retry') throw this.#failure(what, firstErr, next)
      attempt = 2
    }
    for (; attempt <= this.#attempts; attempt++) {
      if (this.#closed) throw new EngineError('PROVIDER_UNAVAILABLE', 'pkcs11: provider is closed')
      if (opts.signal?.aborted === true) throw new EngineError('ABORTED', `${what}: aborted by the caller`)
      let pool: SessionPool
      try {
        if (this.#entry.generation !== this.#gen || this.#pool === undefined) this.attach()
        pool = this.#pool as unknown as SessionPool
      } catch (err) {
        // Login refused, two tokens with the label...: not something a retry fixes.
        if (err instanceof EngineError && !isOutage(err)) throw err
        // The token is not there (yet) in this generation: a confirmed failure in itself.
        lastErr = err
        if (!(await this.#confirmed(this.#entry.generation)))
          await delay(this.#baseDelay * 2 ** (attempt - 1))
        continue
      }
      let s: Handle | undefined
      try {
        s = pool.tryAcquire() ?? (await pool.acquire())
      } catch (err) {
        lastErr = err
        // A pool dropped by a re-initialisation rejects its waiters: the next attempt takes the new one.
        if (err instanceof EngineError) continue
        const next = await this.#recover(err, attempt)
        if (next !== 'retry') throw this.#failure(what, err, next)
        continue
      }
      let failed = false
      let v: T | undefined
      let err: unknown
      this.#inflight++
      try {
        const r = fn(s)
        v = r instanceof Promise ? await r : r
      } catch (e) {
        failed = true
        err = e
      } finally {
        this.#inflight--
      }
      if (!failed) {
        pool.release(s)
        return v as T
      }
      if (err instanceof EngineError) {
        pool.release(s)
        if (!STORAGE_SYMPTOMS.has(err.code)) throw err
      } else pool.discard(s)
      lastErr = err
      const next = await this.#recover(err, attempt)
      if (next !== 'retry') throw this.#failure(what, err, next)
    }
    throw this.#failure(what, lastErr, 'unavailable')
  }

  /** The error an operation ends with: `err` itself (an EngineError), PROVIDER_ERROR or PROVIDER_UNAVAILABLE. */
  #failure(what: string, err: unknown, next: Next): unknown {
    if (next === 'unavailable') {
      return new EngineError(
        'PROVIDER_UNAVAILABLE',
        `pkcs11: ${what} failed, the token does not answer (${ckrName(err)})`,
        { cause: err, retryable: true },
      )
    }
    if (err instanceof EngineError) return err
    return new EngineError('PROVIDER_ERROR', `pkcs11: ${what} failed (${ckrName(err)})`, { cause: err })
  }

  /**
   * Decides what follows a failure of attempt `attempt`, and prepares the retry. A suspect failure (a
   * `reinitializeOn` code, a possible symptom of a lost store) is an outage only if the token probe fails
   * too; then the policy may allow a re-initialisation now, else the operation waits its back-off and tries
   * again while it has attempts left.
   */
  async #recover(err: unknown, attempt: number): Promise<Next> {
    const rv = ckrOf(err)
    if (!(err instanceof EngineError)) {
      switch (classify(rv)) {
        case 'session':
          this.#checkAnchor()
          return 'retry'
        case 'object':
          this.keys.clear()
          return 'retry'
        case 'other':
          if (rv === undefined || !this.#reinitOn.has(rv)) return 'error'
      }
    }
    if (this.#probe()) return 'error' // the token works: the failure is the operation's own
    if (await this.#confirmed(this.#entry.generation)) return 'retry'
    if (attempt >= this.#attempts) return 'unavailable'
    await delay(this.#baseDelay * 2 ** (attempt - 1))
    return 'retry'
  }

  /**
   * Probes the token of the current generation (attaching first if needed): C_GetTokenInfo on its slot, and
   * the anchor session still logged in. True when both hold, which also resets the policy's count.
   * Synchronous: two calls to the library.
   */
  #probe(): boolean {
    try {
      if (this.#entry.generation !== this.#gen || this.#pool === undefined) this.attach()
      this.#entry.p11.C_GetTokenInfo(this.#slot)
      // Logged out behind our back (CKR_USER_NOT_LOGGED_IN): the token works, this generation does not.
      if (this.#anchor === undefined || !isLoggedIn(this.#entry, this.#anchor)) return false
    } catch {
      return false
    }
    this.#policy.working()
    return true
  }

  /**
   * Records a confirmed failure seen in generation `seen`; re-initialises when the policy allows it now, or
   * joins the re-initialisation already running (single-flight). True when the token works afterwards.
   */
  async #confirmed(seen: number): Promise<boolean> {
    if (this.#recovering !== undefined) return this.#recovering
    if (!this.#policy.failure()) return false
    const run = this.#reinitialize(seen)
    this.#recovering = run
    try {
      return await run
    } finally {
      this.#recovering = undefined
    }
  }

  /** C_Finalize, C_Initialize, find the token, log in, probe. Session copies are rebuilt on next use. */
  async #reinitialize(seen: number): Promise<boolean> {
    // Async operations of other callers may still run on the libuv pool: let them settle before finalising.
    for (let i = 0; this.#inflight > 0 && i < 250; i++) await delay(2)
    let ok = false
    try {
      reinitializeModule(this.#entry, seen) // a no-op when another provider of this library already did it
      this.attach()
      this.#entry.p11.C_GetTokenInfo(this.#slot)
      ok = true
    } catch {
      /* the token is still away: the policy spaces the next attempt */
    }
    this.#policy.attempted(ok)
    return ok
  }

  /**
   * Whether the token can serve now: the probe of {@link op}'s recovery (C_GetTokenInfo, attaching first if
   * needed), and a re-initialisation when the policy allows one. One probe per second at most: callers
   * within a second of the last probe share its answer (single-flight and cached).
   */
  health(): Promise<ProviderHealth> {
    const now = this.#now()
    const cached = this.#health
    if (cached !== undefined && now - cached.at < HEALTH_CACHE_MS && now >= cached.at) return cached.result
    const result = this.#checkHealth()
    this.#health = { at: now, result }
    return result
  }

  async #checkHealth(): Promise<ProviderHealth> {
    if (this.#closed) return { ok: false, detail: 'pkcs11: provider is closed' }
    if (this.#probe() || (await this.#confirmed(this.#entry.generation))) {
      return { ok: true, detail: `token "${this.#label}" reachable` }
    }
    return { ok: false, detail: `pkcs11: token "${this.#label}" does not answer` }
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

/** Attach failures that mean "not there now" rather than "refused": the token or the device is away. */
function isOutage(err: EngineError): boolean {
  return err.code === 'PROVIDER_TOKEN_NOT_FOUND' || err.code === 'PROVIDER_UNAVAILABLE'
}
