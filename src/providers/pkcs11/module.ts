/**
 * The one owner of each PKCS#11 library in this thread: load, C_Initialize, login and C_Finalize.
 *
 * Cryptoki state is process-wide (RESULTS "What actually happens when two workers ... call C_Initialize"):
 * one dlopen, one initialisation, and login per application, not per session. So:
 * - C_Initialize always passes CKF_OS_LOCKING_OK (without it SoftHSM2 turns its mutexes off; gotcha 1),
 *   and CKR_CRYPTOKI_ALREADY_INITIALIZED means another owner in this process did it: fine.
 * - CKR_USER_ALREADY_LOGGED_IN is fine too. A second login to the same token through this registry must
 *   present the same PIN (checked in constant time), since the device will not check it again.
 * - C_Finalize runs only on the main thread when the last user releases the library: a worker that
 *   finalised would break every other thread's next call (gotcha 2).
 * - Every `C_*` call that fails empties the OpenSSL error queue of its thread before its error goes on
 *   ({@link clearingOpenSslErrors}): SoftHSM2 shares Node's OpenSSL, and an error it leaves there breaks the
 *   next TLS read of the process.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { createRequire } from 'node:module'
import { realpathSync } from 'node:fs'
import { isMainThread } from 'node:worker_threads'
import type * as P11 from 'pkcs11js'
import { EngineError } from '../../core/errors.js'
import { ckrName, ckrOf, clearOpenSslErrorQueue } from './errors.js'

export type Pkcs11Js = typeof P11
export type Handle = P11.Handle

let binding: Pkcs11Js | undefined

/** Loads the pkcs11js binding on first use. */
export function pkcs11js(): Pkcs11Js {
  if (binding === undefined) {
    try {
      binding = createRequire(import.meta.url)('pkcs11js') as Pkcs11Js
    } catch (err) {
      throw new EngineError('PROVIDER_MODULE_LOAD_FAILED', 'pkcs11js: the native binding cannot be loaded', {
        cause: err,
      })
    }
  }
  return binding
}

/** Session states (PKCS#11 v2.40 §5.4); pkcs11js exports no CKS_ constants. */
export const CKS_RO_USER_FUNCTIONS = 1
export const CKS_RW_USER_FUNCTIONS = 3

/** True when `session` is in a logged-in (user) state. */
export function isLoggedIn(entry: ModuleEntry, session: Handle): boolean {
  const state = entry.p11.C_GetSessionInfo(session).state
  return state === CKS_RO_USER_FUNCTIONS || state === CKS_RW_USER_FUNCTIONS
}

const PIN_KEY = randomBytes(32)
const pinDigest = (pin: string): Buffer => createHmac('sha256', PIN_KEY).update(pin, 'utf8').digest()

/** A loaded and initialised library, shared by every provider in this thread that names the same file. */
export interface ModuleEntry {
  readonly path: string
  readonly p11: P11.PKCS11
  /** Bumped by every re-initialisation: handles of an older generation are dead. */
  generation: number
  refs: number
  /** Slot (hex handle) → digest of the PIN that logged the token in, for this generation. */
  readonly logins: Map<string, Buffer>
}

const modules = new Map<string, ModuleEntry>()

function initialize(p11: P11.PKCS11): void {
  const js = pkcs11js()
  try {
    p11.C_Initialize({ flags: js.CKF_OS_LOCKING_OK })
  } catch (err) {
    if (ckrOf(err) !== js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw err
  }
}

/**
 * Loads and initialises the library at `path` (or joins the existing owner).
 * @throws EngineError PROVIDER_MODULE_LOAD_FAILED, PROVIDER_UNAVAILABLE
 */
export function acquireModule(path: string): ModuleEntry {
  let real: string
  try {
    real = realpathSync(path)
  } catch (err) {
    throw new EngineError('PROVIDER_MODULE_LOAD_FAILED', `pkcs11: module ${path} does not exist`, {
      cause: err,
    })
  }
  const existing = modules.get(real)
  if (existing !== undefined) {
    existing.refs++
    return existing
  }
  const js = pkcs11js()
  const p11 = clearingOpenSslErrors(new js.PKCS11())
  try {
    p11.load(real)
  } catch (err) {
    throw new EngineError('PROVIDER_MODULE_LOAD_FAILED', `pkcs11: ${path} is not a loadable PKCS#11 module`, {
      cause: err,
    })
  }
  try {
    initialize(p11)
  } catch (err) {
    throw new EngineError('PROVIDER_UNAVAILABLE', `pkcs11: C_Initialize failed (${ckrName(err)})`, {
      cause: err,
    })
  }
  const entry: ModuleEntry = { path: real, p11, generation: 1, refs: 1, logins: new Map() }
  modules.set(real, entry)
  return entry
}

/**
 * Wraps every `C_*` method of a binding instance (as own properties, so the instance keeps its prototype) so
 * that a call that throws, or an `…Async` call that rejects, first empties the OpenSSL error queue
 * (errors.ts {@link clearOpenSslErrorQueue}) and then fails with the same error. The one place all PKCS#11
 * calls pass: a failure handled inside the provider (a find that misses, a destroy of a missing object)
 * leaves nothing behind either. A synchronous call's queue is the calling thread's, which is where the next
 * TLS read of the process would find it; an `…Async` call runs on a libuv thread, whose Node crypto jobs
 * clear their queue themselves.
 */
export function clearingOpenSslErrors(p11: P11.PKCS11): P11.PKCS11 {
  const self = p11 as unknown as Record<string, unknown>
  const names = new Set<string>()
  for (
    let o: object | null = Object.getPrototypeOf(p11) as object | null;
    o !== null && o !== Object.prototype;
  ) {
    for (const n of Object.getOwnPropertyNames(o)) if (n.startsWith('C_')) names.add(n)
    o = Object.getPrototypeOf(o) as object | null
  }
  for (const n of Object.getOwnPropertyNames(p11)) if (n.startsWith('C_')) names.add(n)
  for (const name of names) {
    const fn = self[name]
    if (typeof fn !== 'function') continue
    const call = fn as (...args: unknown[]) => unknown
    Object.defineProperty(self, name, {
      configurable: true,
      writable: true,
      value: function (this: unknown, ...args: unknown[]): unknown {
        let r: unknown
        try {
          r = call.apply(this, args)
        } catch (err) {
          clearOpenSslErrorQueue()
          throw err
        }
        if (r instanceof Promise) {
          return r.catch((err: unknown) => {
            clearOpenSslErrorQueue()
            throw err
          })
        }
        return r
      },
    })
  }
  return p11
}

/** Drops one reference; the last one on the main thread finalises the library. */
export function releaseModule(entry: ModuleEntry): void {
  entry.refs--
  if (entry.refs > 0) return
  modules.delete(entry.path)
  if (!isMainThread) return
  try {
    entry.p11.C_Finalize()
  } catch {
    /* already finalised (by a re-init that failed, or a test) */
  }
  try {
    entry.p11.close()
  } catch {
    /* the binding may already have released the library */
  }
}

/**
 * Finalises and re-initialises the library after a device-level failure (CKR_DEVICE_ERROR,
 * CKR_TOKEN_NOT_PRESENT, CKR_CRYPTOKI_NOT_INITIALIZED, ...). Every session and object handle of the
 * previous generation is dead afterwards. Workers never finalise: they only re-initialise if the library
 * reports itself uninitialised.
 */
export function reinitializeModule(entry: ModuleEntry, seenGeneration: number): void {
  if (entry.generation !== seenGeneration) return // another provider already did it
  if (isMainThread) {
    try {
      entry.p11.C_Finalize()
    } catch {
      /* not initialised any more: that is why we are here */
    }
  }
  entry.logins.clear()
  entry.generation++
  initialize(entry.p11)
}

/**
 * Logs the token of `slot` in as CKU_USER, once per generation.
 * @throws EngineError PROVIDER_LOGIN_FAILED
 */
export function ensureLogin(entry: ModuleEntry, slot: Handle, session: Handle, pin: string): void {
  const js = pkcs11js()
  const slotKey = slot.toString('hex')
  const digest = pinDigest(pin)
  const known = entry.logins.get(slotKey)
  if (known !== undefined && !timingSafeEqual(known, digest)) {
    throw new EngineError(
      'PROVIDER_LOGIN_FAILED',
      'pkcs11: the PIN differs from the one this token was logged in with',
    )
  }
  // Closing the last session of a token logs it out (PKCS#11 v2.40 §5.6), so "logged in" is read from the
  // session state rather than remembered.
  const state = entry.p11.C_GetSessionInfo(session).state
  if (state === CKS_RO_USER_FUNCTIONS || state === CKS_RW_USER_FUNCTIONS) {
    if (known === undefined) entry.logins.set(slotKey, digest) // logged in by another owner in this process
    return
  }
  try {
    entry.p11.C_Login(session, js.CKU_USER, pin)
  } catch (err) {
    const rv = ckrOf(err)
    if (rv !== js.CKR_USER_ALREADY_LOGGED_IN) {
      const locked = rv === js.CKR_PIN_LOCKED
      throw new EngineError(
        rv === undefined || isLoginRefusal(rv) ? 'PROVIDER_LOGIN_FAILED' : 'PROVIDER_UNAVAILABLE',
        locked ? 'pkcs11: the user PIN is locked' : `pkcs11: login failed (${ckrName(err)})`,
        { cause: err },
      )
    }
  }
  entry.logins.set(slotKey, digest)
}

function isLoginRefusal(rv: number): boolean {
  const js = pkcs11js()
  return [
    js.CKR_PIN_INCORRECT,
    js.CKR_PIN_INVALID,
    js.CKR_PIN_LEN_RANGE,
    js.CKR_PIN_LOCKED,
    js.CKR_PIN_EXPIRED,
  ].includes(rv)
}
