/**
 * Translates pkcs11js failures into decisions. Decides on CKR_ codes, never on message text, except that
 * pkcs11js 2.1.7 reports async failures as plain Errors whose message is "CKR_NAME:code" (RESULTS gotcha 5);
 * the numeric code is read from there.
 */
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'

type Js = Record<string, unknown>
let names: Map<number, string> | undefined
let js: Js | undefined

function binding(): Js {
  js ??= createRequire(import.meta.url)('pkcs11js') as Js
  return js
}

/** The CKR_ value of a pkcs11js error, or undefined when the error did not come from the device. */
export function ckrOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const code = (err as { code?: unknown }).code
  if (typeof code === 'number' && (err as { name?: unknown }).name === 'Pkcs11Error') return code
  const msg = (err as { message?: unknown }).message
  if (typeof msg === 'string') {
    const m = /^(CKR_[A-Z0-9_]+):(\d+)/.exec(msg)
    if (m?.[2] !== undefined) return Number(m[2])
  }
  return undefined
}

/** `CKR_NAME` of a CKR_ value. */
export function ckrNameOf(rv: number): string {
  if (names === undefined) {
    names = new Map()
    for (const [k, v] of Object.entries(binding())) {
      if (k.startsWith('CKR_') && typeof v === 'number' && !names.has(v)) names.set(v, k)
    }
  }
  return names.get(rv) ?? `CKR_0x${rv.toString(16)}`
}

/** `CKR_NAME` of a pkcs11js error, or `non-PKCS#11 error`. */
export function ckrName(err: unknown): string {
  const rv = ckrOf(err)
  return rv === undefined ? 'non-PKCS#11 error' : ckrNameOf(rv)
}

/** Resolves a list of CKR_ names (from a profile) to values; unknown names are ignored. */
export function ckrValues(list: readonly string[]): Set<number> {
  const b = binding()
  const out = new Set<number>()
  for (const n of list) {
    const v = b[n]
    if (typeof v === 'number') out.add(v)
  }
  return out
}

/**
 * How the provider reacts to a failed call, before its profile is asked: a dead session is replaced, a stale
 * object handle is looked up again. Device and storage failures are the profile's `recovery.reinitializeOn`
 * codes (recovery.ts), everything else is the operation's own answer.
 */
export type FailureKind = 'session' | 'object' | 'other'

/** Classifies a CKR_ value. */
export function classify(rv: number | undefined): FailureKind {
  if (rv === undefined) return 'other'
  const b = binding()
  const is = (...n: string[]): boolean => n.some((k) => b[k] === rv)
  if (is('CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_CLOSED')) return 'session'
  if (is('CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID')) return 'object'
  return 'other'
}

/**
 * Empties this thread's OpenSSL error queue. SoftHSM2 runs its cryptography with the OpenSSL of the process,
 * which in Node is Node's own: a failed operation inside the token (an AES key unwrap or an RSA-OAEP
 * decryption of bad input) leaves its error on the queue, and the next TLS read of the process fails with it
 * (measured: the next HTTPS request on any connection is reset). Call it after such a failure on the thread
 * that made the PKCS#11 call. Node exposes no ERR_clear_error; a synchronous one-byte randomBytes runs Node's
 * crypto job, which clears the queue on return (test/integration/sdk/azure-kv-endpoint.test.ts proves the
 * next TLS request works).
 */
export function clearOpenSslErrorQueue(): void {
  randomBytes(1)
}
