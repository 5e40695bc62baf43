/**
 * A PKCS#11 device profile: every vendor difference the provider knows about, as named fields.
 * Code branches on these fields, never on a vendor's name. Profiles live in native-config/<name>.json.
 */
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EngineError } from '../../core/errors.js'

export interface Pkcs11Profile {
  /** `softhsm2`, `luna`, ... (shown in the provider name `pkcs11:<name>`). */
  readonly name: string
  readonly mechanisms: {
    /** CKM_AES_GCM: 0x1087 on SoftHSM2 and Luna. */
    readonly aesGcm: number
    /** CKM_AES_KEY_GEN: 0x1080. */
    readonly aesKeyGen: number
    /** AES key wrap with padding (RFC 5649): 0x210A standard, 0x80000171 Luna. Not used by format v1. */
    readonly aesKwp?: number | undefined
  }
  /**
   * pkcs11js parameter layout for GCM. `CK_PARAMS_GCM` is the v2.40 layout with ulIvBits set; the older
   * `CK_PARAMS_AES_GCM` leaves ulIvBits uninitialised in pkcs11js 2.1.7 (RESULTS gotcha 3).
   */
  readonly gcmParams: 'CK_PARAMS_GCM' | 'CK_PARAMS_AES_GCM_v240'
  /**
   * Where the 96-bit GCM IV comes from.
   * - `hsm-rng`: C_GenerateRandom on the device, passed in (SoftHSM2).
   * - `hsm-generated`: the device writes its own IV into the parameter buffer during encryption (Luna in
   *   FIPS mode, which returns CKR_MECHANISM_PARAM_INVALID for caller IVs).
   */
  readonly gcmIvSource: 'hsm-rng' | 'hsm-generated'
  /**
   * `sync`: C_Encrypt/C_Decrypt on the JS thread (in-process tokens answer in microseconds; the async
   * variants cost more than they save, RESULTS a2). `async`: C_*Async on the libuv pool, one session per
   * in-flight operation (network HSMs answer in milliseconds).
   */
  readonly callMode: 'sync' | 'async'
  /**
   * Use a session-object copy (C_CopyObject, CKA_TOKEN=false) of each token root-key version for
   * encryption. The copy inherits CKA_SENSITIVE=true and CKA_EXTRACTABLE=false and never leaves the
   * device; on SoftHSM2 it avoids the file-store check on every op (RESULTS gotcha 11).
   */
  readonly sessionKeyCopy: boolean
  /** Sessions the provider opens at most (SoftHSM2 has no limit; HSMs do). */
  readonly maxSessions: number
  /**
   * CKR_ codes the device returns from C_Decrypt when the GCM tag does not verify (wrong AAD, altered
   * ciphertext). SoftHSM2: CKR_GENERAL_ERROR (RESULTS gotcha 5).
   */
  readonly authFailureCodes: readonly string[]
  /**
   * The RSA-OAEP hashes (MGF1 of the same hash, empty label) the device unwraps with, for import tokens.
   * Default both; SoftHSM2 2.6.1 implements SHA-1 only (CKR_ARGUMENTS_BAD otherwise, docs/security.md).
   */
  readonly oaepHashes: readonly ('sha1' | 'sha256')[]
  /** When the provider re-initialises the library after a device or storage failure. */
  readonly recovery: Pkcs11RecoveryProfile
}

/**
 * The profile's `recovery` block (optional in the file; absent fields take {@link DEFAULT_RECOVERY}'s).
 * A failure whose code is in `reinitializeOn` makes the provider probe the token (C_GetTokenInfo); when the
 * probe fails too, the failure counts. After `consecutiveFailures` of them (no working probe between), the
 * provider finalises and re-initialises the library, logs in again and rebuilds its session copies lazily;
 * attempts are single-flight and spaced by `backoffMs`, doubling up to `maxBackoffMs`.
 * CKR_CRYPTOKI_NOT_INITIALIZED always counts, whatever the list says.
 */
export interface Pkcs11RecoveryProfile {
  readonly reinitializeOn: readonly string[]
  readonly consecutiveFailures: number
  readonly backoffMs: number
  readonly maxBackoffMs: number
}

/** The device-level codes of PKCS#11 2.40, one confirmed failure, 100 ms doubling to 5 s. */
export const DEFAULT_RECOVERY: Pkcs11RecoveryProfile = {
  reinitializeOn: [
    'CKR_DEVICE_ERROR',
    'CKR_DEVICE_REMOVED',
    'CKR_TOKEN_NOT_PRESENT',
    'CKR_TOKEN_NOT_RECOGNIZED',
    'CKR_CRYPTOKI_NOT_INITIALIZED',
    'CKR_USER_NOT_LOGGED_IN',
    'CKR_SLOT_ID_INVALID',
  ],
  consecutiveFailures: 1,
  backoffMs: 100,
  maxBackoffMs: 5000,
}

const PROFILE_NAMES = ['softhsm2', 'luna'] as const
export type BuiltinProfileName = (typeof PROFILE_NAMES)[number]

/** The folder with the built-in profiles (`native-config/` at the package root). */
export function nativeConfigDir(): string {
  // src/providers/pkcs11 or dist/providers/pkcs11 → package root
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../../native-config')
}

function bad(path: string, msg: string): EngineError {
  return new EngineError('CONFIG_INVALID', `profile ${path}: ${msg}`)
}

function num(v: unknown, path: string, field: string): number {
  const n = typeof v === 'string' && /^0x[0-9a-f]+$/i.test(v) ? Number.parseInt(v, 16) : v
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0)
    throw bad(path, `${field} must be a mechanism number`)
  return n
}

/** Validates a parsed profile document. */
export function parseProfile(doc: unknown, path = '<inline>'): Pkcs11Profile {
  if (typeof doc !== 'object' || doc === null) throw bad(path, 'must be a JSON object')
  const d = doc as Record<string, unknown>
  const m = d['mechanisms'] as Record<string, unknown> | undefined
  if (typeof d['name'] !== 'string' || !/^[a-z0-9-]{1,32}$/.test(d['name']))
    throw bad(path, 'name must be [a-z0-9-]{1,32}')
  if (typeof m !== 'object' || m === null) throw bad(path, 'mechanisms is required')
  const gcmParams = d['gcmParams']
  if (gcmParams !== 'CK_PARAMS_GCM' && gcmParams !== 'CK_PARAMS_AES_GCM_v240') {
    throw bad(path, 'gcmParams must be CK_PARAMS_GCM or CK_PARAMS_AES_GCM_v240')
  }
  const iv = d['gcmIvSource']
  if (iv !== 'hsm-rng' && iv !== 'hsm-generated')
    throw bad(path, 'gcmIvSource must be hsm-rng or hsm-generated')
  const mode = d['callMode']
  if (mode !== 'sync' && mode !== 'async') throw bad(path, 'callMode must be sync or async')
  if (typeof d['sessionKeyCopy'] !== 'boolean') throw bad(path, 'sessionKeyCopy must be a boolean')
  const max = d['maxSessions']
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > 1024) {
    throw bad(path, 'maxSessions must be an integer 1-1024')
  }
  const codes = d['authFailureCodes']
  if (!Array.isArray(codes) || !codes.every((c) => typeof c === 'string' && /^CKR_[A-Z_]+$/.test(c))) {
    throw bad(path, 'authFailureCodes must be a list of CKR_ names')
  }
  const oaep = d['oaepHashes'] ?? ['sha1', 'sha256']
  if (!Array.isArray(oaep) || !oaep.every((h) => h === 'sha1' || h === 'sha256')) {
    throw bad(path, 'oaepHashes must be a list of sha1 / sha256')
  }
  return {
    name: d['name'],
    mechanisms: {
      aesGcm: num(m['aesGcm'], path, 'mechanisms.aesGcm'),
      aesKeyGen: num(m['aesKeyGen'], path, 'mechanisms.aesKeyGen'),
      aesKwp: m['aesKwp'] === undefined ? undefined : num(m['aesKwp'], path, 'mechanisms.aesKwp'),
    },
    gcmParams,
    gcmIvSource: iv,
    callMode: mode,
    sessionKeyCopy: d['sessionKeyCopy'],
    maxSessions: max,
    authFailureCodes: codes as string[],
    oaepHashes: oaep as ('sha1' | 'sha256')[],
    recovery: parseRecovery(d['recovery'], path),
  }
}

function parseRecovery(v: unknown, path: string): Pkcs11RecoveryProfile {
  if (v === undefined) return DEFAULT_RECOVERY
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(path, 'recovery must be an object')
  const r = v as Record<string, unknown>
  for (const k of Object.keys(r)) {
    if (!(k in DEFAULT_RECOVERY)) throw bad(path, `recovery.${k} is not a known field`)
  }
  const codes = r['reinitializeOn'] ?? DEFAULT_RECOVERY.reinitializeOn
  if (!Array.isArray(codes) || !codes.every((c) => typeof c === 'string' && /^CKR_[A-Z_]+$/.test(c))) {
    throw bad(path, 'recovery.reinitializeOn must be a list of CKR_ names')
  }
  const int = (field: keyof Pkcs11RecoveryProfile, min: number, max: number): number => {
    const n = r[field] ?? DEFAULT_RECOVERY[field]
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max)
      throw bad(path, `recovery.${field} must be an integer ${min}-${max}`)
    return n
  }
  const backoffMs = int('backoffMs', 1, 60_000)
  const maxBackoffMs = int('maxBackoffMs', 1, 600_000)
  if (maxBackoffMs < backoffMs) throw bad(path, 'recovery.maxBackoffMs must be at least recovery.backoffMs')
  return {
    reinitializeOn: codes as string[],
    consecutiveFailures: int('consecutiveFailures', 1, 100),
    backoffMs,
    maxBackoffMs,
  }
}

/**
 * Loads a built-in profile by name (`softhsm2`, `luna`) or a profile file by path.
 * @throws EngineError CONFIG_INVALID
 */
export function loadProfile(nameOrPath: string): Pkcs11Profile {
  const path = (PROFILE_NAMES as readonly string[]).includes(nameOrPath)
    ? join(nativeConfigDir(), `${nameOrPath}.json`)
    : resolve(nameOrPath)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new EngineError('CONFIG_INVALID', `profile ${path}: cannot be read`, { cause: err })
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new EngineError('CONFIG_INVALID', `profile ${path}: is not valid JSON`, { cause: err })
  }
  return parseProfile(doc, path)
}
