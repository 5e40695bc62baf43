/**
 * Token administration for the command line: provisioning a SoftHSM2 token (`envelope-kms init`) and the
 * PKCS#11 checks of `envelope-kms doctor`. Everything runs in this process through pkcs11js, so PINs are never
 * on a command line (softhsm2-util takes them as arguments, visible in `ps`, or reads them from a terminal).
 * Each function loads the library, does its work and releases it (C_Finalize when it was the last user).
 */
import type * as P11 from 'pkcs11js'
import { EngineError } from '../../core/errors.js'
import { ckrName, ckrOf } from './errors.js'
import { acquireModule, pkcs11js, releaseModule, type ModuleEntry } from './module.js'
import { loadProfile } from './profile.js'

/** One verdict of {@link diagnosePkcs11}: `detail` says what was found, or what is wrong and the fix. */
export interface TokenCheck {
  readonly check: string
  readonly ok: boolean
  readonly detail: string
}

function findSlots(p11: P11.PKCS11, label: string): P11.Handle[] {
  return p11.C_GetSlotList(true).filter((s) => p11.C_GetTokenInfo(s).label.trim() === label)
}

function withModule<T>(module: string, fn: (entry: ModuleEntry) => T): T {
  const entry = acquireModule(module)
  try {
    return fn(entry)
  } finally {
    releaseModule(entry)
  }
}

/**
 * Whether a token labelled `label` is present.
 * @throws EngineError PROVIDER_MODULE_LOAD_FAILED, PROVIDER_UNAVAILABLE
 */
export function tokenPresent(module: string, label: string): boolean {
  return withModule(module, (e) => findSlots(e.p11, label).length > 0)
}

/**
 * Initialises a token labelled `label` in the first free slot (SoftHSM2 always offers one) and sets its user
 * PIN: C_InitToken with the SO PIN, then C_Login(SO) and C_InitPIN.
 * @throws EngineError PROVIDER_TOKEN_NOT_FOUND (no free slot), PROVIDER_ERROR, PROVIDER_MODULE_LOAD_FAILED
 */
export function initToken(options: {
  readonly module: string
  readonly label: string
  readonly soPin: string
  readonly userPin: string
}): void {
  if (options.label.length === 0 || options.label.length > 32) {
    throw new EngineError('CONFIG_INVALID', 'pkcs11.tokenLabel: must be 1-32 characters')
  }
  const js = pkcs11js()
  withModule(options.module, ({ p11 }) => {
    if (findSlots(p11, options.label).length > 0) {
      throw new EngineError('PROVIDER_ERROR', `pkcs11: a token labelled "${options.label}" already exists`)
    }
    const free = p11
      .C_GetSlotList(true)
      .find((s) => (p11.C_GetTokenInfo(s).flags & js.CKF_TOKEN_INITIALIZED) === 0)
    if (free === undefined) {
      throw new EngineError(
        'PROVIDER_TOKEN_NOT_FOUND',
        'pkcs11: the library offers no free slot for a new token',
      )
    }
    try {
      p11.C_InitToken(free, options.soPin, options.label.padEnd(32, ' '))
      const [slot] = findSlots(p11, options.label)
      if (slot === undefined) throw new Error('the new token is not listed')
      const session = p11.C_OpenSession(slot, js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION)
      try {
        p11.C_Login(session, js.CKU_SO, options.soPin)
        p11.C_InitPIN(session, options.userPin)
        p11.C_Logout(session)
      } finally {
        p11.C_CloseSession(session)
      }
    } catch (err) {
      throw new EngineError('PROVIDER_ERROR', `pkcs11: token initialisation failed (${ckrName(err)})`, {
        cause: err,
      })
    }
  })
}

/**
 * The PKCS#11 checks of `doctor`, in order: `module` (the library loads and initialises), `token` (the label
 * is found, once), `pin` (a user login works), `mechanisms` (what the profile needs: AES-GCM encrypt and
 * decrypt with 256-bit keys, AES key generation, the token's RNG when the profile draws IVs from it). A
 * check that cannot run because an earlier one failed is reported as failed, saying which.
 * `pin` is called only when the token was found; it may throw (an unreadable PIN file).
 */
export function diagnosePkcs11(options: {
  readonly module: string
  readonly tokenLabel: string
  readonly profile: string
  readonly pin: () => string
  /** Appended to the `token` check's fix (e.g. which SoftHSM2 config was used). */
  readonly tokenHint?: string
}): TokenCheck[] {
  const checks: TokenCheck[] = []
  const skipped = (names: string[], cause: string): void => {
    for (const check of names) checks.push({ check, ok: false, detail: `not checked: ${cause} failed` })
  }
  let entry: ModuleEntry
  try {
    entry = acquireModule(options.module)
  } catch (err) {
    const loaded = err instanceof EngineError && err.code === 'PROVIDER_UNAVAILABLE'
    checks.push({
      check: 'module',
      ok: false,
      detail: loaded
        ? `${err.message}; fix: check the library's own configuration${options.tokenHint ?? ''}`
        : `${(err as Error).message}; fix: install the PKCS#11 library (SoftHSM2: apt-get install -y softhsm2) or set EKMS_PKCS11_MODULE`,
    })
    skipped(['token', 'pin', 'mechanisms'], 'module')
    return checks
  }
  try {
    const js = pkcs11js()
    const p11 = entry.p11
    const info = p11.C_GetInfo()
    checks.push({
      check: 'module',
      ok: true,
      detail: `${options.module} (${info.libraryDescription.trim()} ${info.libraryVersion.major}.${info.libraryVersion.minor})`,
    })
    const slots = findSlots(p11, options.tokenLabel)
    const [slot] = slots
    if (slot === undefined || slots.length > 1) {
      checks.push({
        check: 'token',
        ok: false,
        detail:
          slot === undefined
            ? `no token labelled "${options.tokenLabel}"; fix: run \`npx envelope-kms init\`, or set EKMS_PKCS11_TOKEN_LABEL${options.tokenHint ?? ''}`
            : `${slots.length} tokens are labelled "${options.tokenLabel}"; fix: give each token its own label`,
      })
      skipped(['pin', 'mechanisms'], 'token')
      return checks
    }
    const tokenInfo = p11.C_GetTokenInfo(slot)
    checks.push({
      check: 'token',
      ok: true,
      detail: `"${options.tokenLabel}" (serial ${tokenInfo.serialNumber.trim()}, ${tokenInfo.model.trim()})`,
    })
    checks.push(checkLogin(js, p11, slot, options.pin))
    checks.push(checkMechanisms(js, p11, slot, tokenInfo, options.profile))
  } finally {
    releaseModule(entry)
  }
  return checks
}

function checkLogin(js: typeof P11, p11: P11.PKCS11, slot: P11.Handle, pin: () => string): TokenCheck {
  let userPin: string
  try {
    userPin = pin()
  } catch (err) {
    return { check: 'pin', ok: false, detail: (err as Error).message }
  }
  const session = p11.C_OpenSession(slot, js.CKF_SERIAL_SESSION)
  try {
    p11.C_Login(session, js.CKU_USER, userPin)
    p11.C_Logout(session)
    return { check: 'pin', ok: true, detail: 'user login works' }
  } catch (err) {
    const rv = ckrOf(err)
    if (rv === js.CKR_USER_ALREADY_LOGGED_IN) return { check: 'pin', ok: true, detail: 'user logged in' }
    const fix =
      rv === js.CKR_PIN_INCORRECT || rv === js.CKR_PIN_LEN_RANGE || rv === js.CKR_PIN_INVALID
        ? "fix: the PIN (EKMS_PKCS11_PIN or the PIN file) is not this token's user PIN; use the file `init` wrote with this token"
        : rv === js.CKR_PIN_LOCKED
          ? 'fix: the user PIN is locked; the security officer must reset it'
          : 'fix: check the token'
    return { check: 'pin', ok: false, detail: `login failed (${ckrName(err)}); ${fix}` }
  } finally {
    p11.C_CloseSession(session)
  }
}

function checkMechanisms(
  js: typeof P11,
  p11: P11.PKCS11,
  slot: P11.Handle,
  tokenInfo: P11.TokenInfo,
  profileName: string,
): TokenCheck {
  let profile
  try {
    profile = loadProfile(profileName)
  } catch (err) {
    return {
      check: 'mechanisms',
      ok: false,
      detail: `${(err as Error).message}; fix: set EKMS_PKCS11_PROFILE`,
    }
  }
  const hex = (m: number): string => `0x${m.toString(16)}`
  const offered = new Set(p11.C_GetMechanismList(slot))
  const faults: string[] = []
  const need = (name: string, mech: number, flags: number, what: string): void => {
    if (!offered.has(mech)) {
      faults.push(`${name} (${hex(mech)}) is not offered`)
      return
    }
    const info = p11.C_GetMechanismInfo(slot, mech)
    if ((info.flags & flags) !== flags) faults.push(`${name} (${hex(mech)}) is offered without ${what}`)
    // AES key sizes are in bytes (PKCS#11 v2.40 §2.11); a device that reports bits passes too.
    else if (info.maxKeySize < 32)
      faults.push(`${name} (${hex(mech)}) does not take 256-bit keys (max ${info.maxKeySize})`)
  }
  need('CKM_AES_GCM', profile.mechanisms.aesGcm, js.CKF_ENCRYPT | js.CKF_DECRYPT, 'encrypt/decrypt')
  need('CKM_AES_KEY_GEN', profile.mechanisms.aesKeyGen, js.CKF_GENERATE, 'key generation')
  if (profile.gcmIvSource === 'hsm-rng' && (tokenInfo.flags & js.CKF_RNG) === 0)
    faults.push('the token has no random number generator (CKF_RNG), which the profile uses for GCM IVs')
  if (faults.length > 0) {
    return {
      check: 'mechanisms',
      ok: false,
      detail: `${faults.join('; ')}; fix: use a token that offers them, or the profile that matches it (EKMS_PKCS11_PROFILE)`,
    }
  }
  return {
    check: 'mechanisms',
    ok: true,
    detail: `profile ${profile.name}: CKM_AES_GCM (${hex(profile.mechanisms.aesGcm)}) encrypt/decrypt, CKM_AES_KEY_GEN (${hex(profile.mechanisms.aesKeyGen)}) generate${profile.gcmIvSource === 'hsm-rng' ? ', RNG' : ''}`,
  }
}
