/**
 * The PKCS#11 {@link SyncSource} of key synchronization (docs/key-sync-sources.md, `## PKCS#11`): the AES
 * secret keys of one token, found by its label, linked as externally managed root keys and used for wrap and
 * unwrap on the token with AES-GCM.
 *
 * It reuses the provider's machinery rather than owning a library of its own:
 * - the module registry (module.ts): the library may already be loaded by the engine's own provider in this
 *   process, maybe for the same token. The source joins it ({@link acquireModule}) and only drops its
 *   reference on close ({@link releaseModule}): it never finalises a library another owner uses, never
 *   re-initialises it (a device failure is the engine provider's to recover; a new generation made by it is
 *   followed here), and never calls C_Logout, which would log every session of the application out of the
 *   token, the engine's included (closing the last session of a token logs it out anyway);
 * - a {@link SessionGuard} (recovery.ts) for the slot by label, the login and a pool of two sessions, with
 *   its retries of dead sessions and stale handles; every `C_*` call passes `clearingOpenSslErrors`.
 *
 * Discovery reports every token object of class CKO_SECRET_KEY and type CKK_AES except the engine's own: any
 * object whose CKA_LABEL starts with `ekms/`, the namespace of the engine's object schemes (root-key versions
 * `ekms/v1/…`, vault keys `ekms/az/v1/…`, import-token pairs `ekms/it/v1/…`). A connection to the token the
 * engine itself uses therefore never links the engine's root keys, and the same rule applies to every
 * `ref` looked up by wrap and unwrap, so a linked key can never be made to reach an engine object.
 *
 * The PIN is resolved once when the source is created, kept in memory for the guard's re-login after a
 * re-initialisation, and never logged nor put in an error message.
 */
import { EngineError } from '../../core/errors.js'
import type { CallOptions } from '../../core/ports.js'
import type {
  ConnectionCheck,
  ConnectionRecord,
  DiscoveredKey,
  Pkcs11ConnectionParams,
  SecretResolver,
  SyncSource,
} from '../../core/ports-sync.js'
import { SecretBytes } from '../../core/secret-bytes.js'
import { ckrName, ckrOf, ckrValues, classify } from './errors.js'
import {
  acquireModule,
  ensureLogin,
  pkcs11js,
  type Handle,
  type ModuleEntry,
  type Pkcs11Js,
} from './module.js'
import { findSecretKeys, readAttributes, type Attribute } from './objects.js'
import { loadProfile } from './profile.js'
import { SessionGuard } from './recovery.js'

/** CKA_LABEL prefix of every object the engine creates: such objects are never discovered nor used. */
export const ENGINE_LABEL_NAMESPACE = 'ekms/'

/** The first byte of every wrap blob: format 1 = AES-GCM, `0x01 || iv(12) || ciphertext || tag(16)`. */
export const PKCS11_SYNC_BLOB_FORMAT = 0x01

const IV_BYTES = 12
const TAG_BYTES = 16
const AES_LENGTHS: ReadonlySet<number> = new Set([16, 24, 32])
const SESSIONS = 2
const ID_REF_RE = /^id:((?:[0-9a-f]{2}){1,128})$/
const LABEL_REF_MAX = 1024

type Ref = { readonly kind: 'id'; readonly id: Buffer } | { readonly kind: 'label'; readonly label: string }

/** One AES object as discovery reads it. */
interface FoundKey {
  readonly sourceKeyId: string
  readonly label: string
  readonly idHex: string
  readonly attributes: ReturnType<typeof readAttributes> & { readonly private: boolean }
}

/** A checks failure: its stable code and a message (which never holds the PIN: none of ours does). */
function checkError(err: unknown): { code: string; message: string } {
  if (err instanceof EngineError) return { code: err.code, message: err.message }
  return { code: 'PROVIDER_ERROR', message: `pkcs11: ${ckrName(err)}` }
}

function aborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted === true) throw new EngineError('ABORTED', `${what}: aborted by the caller`)
}

function parseRef(ref: string): Ref {
  if (typeof ref === 'string') {
    const m = ID_REF_RE.exec(ref)
    if (m?.[1] !== undefined) return { kind: 'id', id: Buffer.from(m[1], 'hex') }
    if (ref.startsWith('label:') && ref.length > 6 && ref.length <= LABEL_REF_MAX + 6)
      return { kind: 'label', label: ref.slice(6) }
  }
  throw new EngineError('INVALID_FIELD_ERR', 'ref: must be id:<hex CKA_ID> or label:<CKA_LABEL>', {
    target: { type: 'field', name: 'ref' },
  })
}

let mechanismNames: Map<number, string> | undefined

/** `CKM_NAME` of a mechanism number (the first name pkcs11js exports for it), else its hex value. */
function mechanismName(js: Pkcs11Js, m: number): string {
  if (mechanismNames === undefined) {
    mechanismNames = new Map()
    for (const [k, v] of Object.entries(js)) {
      if (k.startsWith('CKM_') && typeof v === 'number' && !mechanismNames.has(v)) mechanismNames.set(v, k)
    }
  }
  return mechanismNames.get(m) ?? `0x${m.toString(16)}`
}

/**
 * The discovered form of one `sourceKeyId`: `found` are the objects answering to it (more than one: the
 * first is reported, `ambiguous`, not usable). See the docs for the usable and weak rules.
 */
function toDiscovered(
  js: Pkcs11Js,
  token: string,
  found: readonly FoundKey[],
  gcmOffered: boolean,
): DiscoveredKey {
  const k = found[0] as FoundKey
  const a = k.attributes
  const gcm = js.CKM_AES_GCM
  const enabled = a.encrypt && a.decrypt
  const unusable: string[] = []
  if (!enabled) unusable.push('encrypt-decrypt-not-allowed')
  if (!AES_LENGTHS.has(a.valueLen)) unusable.push('value-length')
  if (a.allowedMechanisms.length > 0 && !a.allowedMechanisms.includes(gcm))
    unusable.push('aes-gcm-not-allowed')
  if (!gcmOffered) unusable.push('aes-gcm-not-offered')
  if (found.length > 1) unusable.push('ambiguous')
  const weak = a.extractable || !a.sensitive
  return {
    sourceKeyId: k.sourceKeyId,
    vault: token,
    name: k.label !== '' ? k.label : k.idHex,
    keyType: 'AES',
    usable: unusable.length === 0,
    enabled,
    versions: [{ version: '1', ref: k.sourceKeyId, enabled, createdAt: undefined }],
    attributes: {
      label: k.label,
      id: k.idHex,
      valueLen: a.valueLen,
      sensitive: a.sensitive,
      extractable: a.extractable,
      alwaysSensitive: a.alwaysSensitive,
      neverExtractable: a.neverExtractable,
      token: a.token,
      private: a.private,
      modifiable: a.modifiable,
      encrypt: a.encrypt,
      decrypt: a.decrypt,
      wrap: a.wrap,
      unwrap: a.unwrap,
      allowedMechanisms: a.allowedMechanisms.map((m) => mechanismName(js, m)),
      weak,
      ...(found.length > 1 ? { ambiguous: true, objects: found.length } : {}),
      ...(unusable.length > 0 ? { unusableReasons: unusable } : {}),
    },
  }
}

/** A {@link SyncSource} over one PKCS#11 token. Create it with {@link createPkcs11SyncSource}. */
class Pkcs11SyncSource implements SyncSource {
  readonly cloud = 'pkcs11' as const
  readonly #js = pkcs11js()
  readonly #params: Pkcs11ConnectionParams
  readonly #pin: string
  /** The profiles' GCM authentication-failure codes (SoftHSM2 and Luna), for unwrap. */
  readonly #authCodes: Set<number>
  /** Key handle per ref, valid in one module generation. */
  readonly #handles = new Map<string, { readonly gen: number; readonly h: Handle }>()
  #entry: ModuleEntry | undefined
  #guard: SessionGuard | undefined
  #attached = false
  #closed = false

  constructor(params: Pkcs11ConnectionParams, pin: string) {
    this.#params = params
    this.#pin = pin
    this.#authCodes = ckrValues([
      ...loadProfile('softhsm2').authFailureCodes,
      ...loadProfile('luna').authFailureCodes,
    ])
  }

  /** Joins the module (loading it if no one in this process has). @throws EngineError PROVIDER_MODULE_LOAD_FAILED, PROVIDER_UNAVAILABLE */
  #module(): { entry: ModuleEntry; guard: SessionGuard } {
    if (this.#closed) throw new EngineError('PROVIDER_UNAVAILABLE', 'pkcs11: the sync source is closed')
    if (this.#entry !== undefined && this.#guard !== undefined)
      return { entry: this.#entry, guard: this.#guard }
    const entry = acquireModule(this.#params.module)
    this.#entry = entry
    this.#guard = new SessionGuard(this.#js, entry, {
      tokenLabel: this.#params.tokenLabel,
      pin: this.#pin,
      sync: true,
      sessionKeyCopy: false,
      maxSessions: SESSIONS,
      attempts: 3,
      baseDelayMs: 20,
      // Never re-initialise a library the engine may share: the policy never allows it (see the header).
      reinitializeOn: new Set(),
      recovery: { consecutiveFailures: Number.MAX_SAFE_INTEGER, backoffMs: 100, maxBackoffMs: 5000 },
    })
    return { entry, guard: this.#guard }
  }

  /** The token's slot, by label. @throws EngineError PROVIDER_TOKEN_NOT_FOUND, CONFIG_INVALID, PROVIDER_UNAVAILABLE */
  #findSlot(entry: ModuleEntry): Handle {
    const label = this.#params.tokenLabel
    let slots: Handle[]
    try {
      const p11 = entry.p11
      slots = p11.C_GetSlotList(true).filter((s) => p11.C_GetTokenInfo(s).label.trim() === label)
    } catch (err) {
      throw new EngineError('PROVIDER_UNAVAILABLE', `pkcs11: cannot list the slots (${ckrName(err)})`, {
        cause: err,
      })
    }
    if (slots.length === 0)
      throw new EngineError('PROVIDER_TOKEN_NOT_FOUND', `pkcs11: no token labelled "${label}" is present`)
    if (slots.length > 1)
      throw new EngineError('CONFIG_INVALID', `pkcs11: several tokens are labelled "${label}"`)
    return slots[0] as Handle
  }

  /**
   * The guard, attached (slot found, logged in) once; later generations are re-attached by the guard.
   * @throws EngineError PROVIDER_MODULE_LOAD_FAILED, PROVIDER_TOKEN_NOT_FOUND, PROVIDER_LOGIN_FAILED, CONFIG_INVALID, PROVIDER_UNAVAILABLE
   */
  #open(): SessionGuard {
    const { guard } = this.#module()
    if (this.#attached) return guard
    try {
      guard.attach()
    } catch (err) {
      if (err instanceof EngineError) throw err
      throw new EngineError('PROVIDER_UNAVAILABLE', `pkcs11: cannot open the token (${ckrName(err)})`, {
        cause: err,
      })
    }
    this.#attached = true
    return guard
  }

  /** Runs `fn` on a pooled, logged-in session of the token. */
  async #op<T>(
    what: string,
    fn: (entry: ModuleEntry, s: Handle, slot: Handle) => T,
    opts: CallOptions = {},
  ): Promise<T> {
    const guard = this.#open()
    const entry = this.#entry as ModuleEntry
    return guard.op(
      what,
      (s) => {
        // Logged out behind our back (a C_Logout elsewhere in this process): log in again, same PIN.
        ensureLogin(entry, guard.slot, s, this.#pin)
        return fn(entry, s, guard.slot)
      },
      opts,
    )
  }

  /** Every AES object of the token that is not the engine's, with its attributes. */
  #list(entry: ModuleEntry, s: Handle): FoundKey[] {
    const js = this.#js
    const p11 = entry.p11
    const out: FoundKey[] = []
    const handles = findSecretKeys(js, p11, s, [
      { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
      { type: js.CKA_TOKEN, value: true },
    ])
    for (const h of handles) {
      const [l, i, p] = p11.C_GetAttributeValue(s, h, [
        { type: js.CKA_LABEL },
        { type: js.CKA_ID },
        { type: js.CKA_PRIVATE },
      ])
      const label = l?.value?.toString('utf8') ?? ''
      if (label.startsWith(ENGINE_LABEL_NAMESPACE)) continue
      const idHex = i?.value?.toString('hex') ?? ''
      // Neither an id nor a label: nothing could address it again (see the docs).
      if (idHex === '' && label === '') continue
      out.push({
        sourceKeyId: idHex !== '' ? `id:${idHex}` : `label:${label}`,
        label,
        idHex,
        attributes: { ...readAttributes(js, p11, s, h), private: p?.value?.[0] === 1 },
      })
    }
    return out
  }

  /** Whether the token offers CKM_AES_GCM for encrypt and decrypt. */
  #gcmOffered(entry: ModuleEntry, slot: Handle): boolean {
    const js = this.#js
    try {
      const info = entry.p11.C_GetMechanismInfo(slot, js.CKM_AES_GCM)
      return (info.flags & js.CKF_ENCRYPT) !== 0 && (info.flags & js.CKF_DECRYPT) !== 0
    } catch {
      return false
    }
  }

  async *discover(
    options: {
      readonly regions?: readonly string[] | undefined
      readonly signal?: AbortSignal | undefined
    } = {},
  ): AsyncIterable<DiscoveredKey> {
    aborted(options.signal, 'discover')
    const token = this.#params.tokenLabel
    const keys = await this.#op(
      'discover keys',
      (entry, s, slot) => {
        const groups = new Map<string, FoundKey[]>()
        for (const k of this.#list(entry, s)) {
          const g = groups.get(k.sourceKeyId)
          if (g === undefined) groups.set(k.sourceKeyId, [k])
          else g.push(k)
        }
        const gcm = this.#gcmOffered(entry, slot)
        // The first of an ambiguous group is the one with the smallest label, so re-syncs report the same.
        return [...groups.values()]
          .map((g) => g.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0)))
          .map((g) => toDiscovered(this.#js, token, g, gcm))
          .sort((a, b) => (a.sourceKeyId < b.sourceKeyId ? -1 : a.sourceKeyId > b.sourceKeyId ? 1 : 0))
      },
      { signal: options.signal },
    )
    for (const k of keys) {
      aborted(options.signal, 'discover')
      yield k
    }
  }

  /**
   * The handle of the one AES token object of `ref` that is not the engine's (cached per module generation).
   * @throws EngineError KEY_VERSION_MATERIAL_MISSING when the token answers and has none, PROVIDER_ERROR when several
   */
  #handle(entry: ModuleEntry, s: Handle, slot: Handle, ref: string, parsed: Ref): Handle {
    const hit = this.#handles.get(ref)
    if (hit !== undefined && hit.gen === entry.generation) return hit.h
    const js = this.#js
    const p11 = entry.p11
    const where: Attribute[] =
      parsed.kind === 'id'
        ? [{ type: js.CKA_ID, value: parsed.id }]
        : [{ type: js.CKA_LABEL, value: parsed.label }]
    const matches = findSecretKeys(js, p11, s, [
      { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
      { type: js.CKA_TOKEN, value: true },
      ...where,
    ]).filter((h) => {
      const [l, i] = p11.C_GetAttributeValue(s, h, [{ type: js.CKA_LABEL }, { type: js.CKA_ID }])
      if (l?.value?.toString('utf8').startsWith(ENGINE_LABEL_NAMESPACE) === true) return false
      // A label ref names the objects without a CKA_ID (the others have an id ref).
      return parsed.kind === 'id' || (i?.value?.length ?? 0) === 0
    })
    if (matches.length === 0) {
      // "Missing" only if the token itself still answers (else the guard's outage handling takes the error).
      p11.C_GetTokenInfo(slot)
      throw new EngineError(
        'KEY_VERSION_MATERIAL_MISSING',
        `pkcs11: no AES key ${ref} on token "${this.#params.tokenLabel}" (it was destroyed or relabelled)`,
      )
    }
    if (matches.length > 1) {
      throw new EngineError(
        'PROVIDER_ERROR',
        `pkcs11: ${matches.length} AES keys on token "${this.#params.tokenLabel}" answer to ${ref}; the reference is ambiguous`,
      )
    }
    const h = matches[0] as Handle
    this.#handles.set(ref, { gen: entry.generation, h })
    return h
  }

  /** Forgets a cached handle the device no longer knows, and passes the error on (the guard retries). */
  #stale(ref: string, err: unknown): unknown {
    if (classify(ckrOf(err)) === 'object') this.#handles.delete(ref)
    return err
  }

  #gcm(
    iv: Buffer,
    aad: Buffer,
  ): {
    mechanism: number
    parameter: { type: number; iv: Buffer; ivBits: number; aad: Buffer; tagBits: number }
  } {
    const js = this.#js
    // tagBits is mandatory: without it pkcs11js sends ulTagBits=0 (RESULTS gotcha 3).
    return {
      mechanism: js.CKM_AES_GCM,
      parameter: { type: js.CK_PARAMS_GCM, iv, ivBits: 96, aad, tagBits: 128 },
    }
  }

  async wrap(ref: string, plaintext: SecretBytes, aad: Buffer, opts: CallOptions = {}): Promise<Buffer> {
    const parsed = parseRef(ref)
    const len = plaintext.length
    if (len === 0) {
      throw new EngineError('INVALID_FIELD_ERR', 'plaintext: must not be empty', {
        target: { type: 'field', name: 'plaintext' },
      })
    }
    return this.#op(
      'sync source wrap',
      (entry, s, slot) => {
        const p11 = entry.p11
        const h = this.#handle(entry, s, slot, ref, parsed)
        const iv = p11.C_GenerateRandom(s, Buffer.alloc(IV_BYTES))
        try {
          p11.C_EncryptInit(s, this.#gcm(iv, aad), h)
        } catch (err) {
          throw this.#stale(ref, err)
        }
        const out = p11.C_Encrypt(s, plaintext.bytes, Buffer.alloc(len + TAG_BYTES))
        /* Postcondition: ciphertext = plaintext length + a 16-byte tag (a missing tag would be silent). */
        if (out.length !== len + TAG_BYTES)
          throw new EngineError('PROVIDER_ERROR', 'pkcs11: AES-GCM output lacks its 16-byte tag')
        return Buffer.concat([Buffer.of(PKCS11_SYNC_BLOB_FORMAT), iv, out])
      },
      opts,
    )
  }

  async unwrap(ref: string, blob: Buffer, aad: Buffer, opts: CallOptions = {}): Promise<SecretBytes> {
    const parsed = parseRef(ref)
    if (
      !Buffer.isBuffer(blob) ||
      blob.length < 1 + IV_BYTES + TAG_BYTES + 1 ||
      blob[0] !== PKCS11_SYNC_BLOB_FORMAT
    ) {
      throw new EngineError(
        'CIPHERTEXT_INVALID',
        'ciphertext: not a PKCS#11 sync-source blob (format 0x01, a 12-byte IV, the ciphertext and a 16-byte tag)',
        { target: { type: 'field', name: 'ciphertext' } },
      )
    }
    const iv = blob.subarray(1, 1 + IV_BYTES)
    const body = blob.subarray(1 + IV_BYTES)
    const len = body.length - TAG_BYTES
    return this.#op(
      'sync source unwrap',
      (entry, s, slot) => {
        const p11 = entry.p11
        const h = this.#handle(entry, s, slot, ref, parsed)
        try {
          p11.C_DecryptInit(s, this.#gcm(iv, aad), h)
        } catch (err) {
          throw this.#stale(ref, err)
        }
        // GCM C_Decrypt wants room for ciphertext + tag (RESULTS gotcha 6); zero-filled, not pooled memory.
        const out = Buffer.alloc(body.length)
        let r: Buffer
        try {
          r = p11.C_Decrypt(s, body, out)
        } catch (err) {
          out.fill(0)
          throw this.#decryptFailure(entry, s, err)
        }
        if (r.length !== len) {
          out.fill(0)
          throw new EngineError('PROVIDER_ERROR', 'pkcs11: AES-GCM decryption returned an unexpected length')
        }
        return SecretBytes.adopt(r)
      },
      opts,
    )
  }

  /** An authentication-failure code on a session that still works is a bad tag: UNWRAP_AAD_MISMATCH. */
  #decryptFailure(entry: ModuleEntry, s: Handle, err: unknown): unknown {
    const rv = ckrOf(err)
    if (rv === undefined || !this.#authCodes.has(rv)) return err
    try {
      entry.p11.C_GetSessionInfo(s)
    } catch {
      return err // the session or device is broken: not an authentication failure
    }
    return new EngineError(
      'UNWRAP_AAD_MISMATCH',
      'ciphertext: authentication failed; the AAD differs from the one used at wrap, or the ciphertext was altered',
      { target: { type: 'field', name: 'ciphertext' } },
    )
  }

  async test(opts: CallOptions = {}): Promise<ConnectionCheck[]> {
    const where = this.#params.tokenLabel
    const checks: ConnectionCheck[] = []
    const pass = (check: string): void => {
      checks.push({ check, where, ok: true })
    }
    const fail = (check: string, err: unknown): ConnectionCheck[] => {
      checks.push({ check, where, ok: false, error: checkError(err) })
      return checks
    }
    try {
      aborted(opts.signal, 'test')
      if (!this.#attached) this.#findSlot(this.#module().entry)
    } catch (err) {
      return fail('connect', err)
    }
    pass('connect')
    try {
      await this.#op('login', () => undefined, opts)
    } catch (err) {
      return fail('login', err)
    }
    pass('login')
    try {
      await this.#op('list keys', (entry, s) => this.#list(entry, s).length, opts)
    } catch (err) {
      return fail('list', err)
    }
    pass('list')
    return checks
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#handles.clear()
    const guard = this.#guard
    this.#guard = undefined
    this.#entry = undefined
    // Closes this source's sessions and drops its module reference; no C_Logout, no C_Finalize under others.
    if (guard !== undefined) await guard.close()
  }
}

/**
 * Opens the PKCS#11 source of a connection: resolves the PIN now; the module, the token and the login are
 * reached on first use (so that `test()` can report a connection that does not work).
 * @throws EngineError INVALID_FIELD_ERR (not a pkcs11 connection, bad parameters, the PIN cannot be read)
 * @example
 * const source = await createPkcs11SyncSource(connection, resolveSecret)
 * for await (const key of source.discover()) console.log(key.sourceKeyId, key.usable)
 */
export async function createPkcs11SyncSource(
  connection: ConnectionRecord,
  secrets: SecretResolver,
): Promise<SyncSource> {
  const params = connection.params
  if (connection.cloud !== 'pkcs11' || params.cloud !== 'pkcs11') {
    throw new EngineError('INVALID_FIELD_ERR', 'connection: not a pkcs11 connection', {
      target: { type: 'field', name: 'cloud' },
    })
  }
  if (typeof params.module !== 'string' || !params.module.startsWith('/')) {
    throw new EngineError('INVALID_FIELD_ERR', 'params.module: must be an absolute path', {
      target: { type: 'field', name: 'params.module' },
    })
  }
  if (
    typeof params.tokenLabel !== 'string' ||
    params.tokenLabel.length === 0 ||
    params.tokenLabel.length > 32
  ) {
    throw new EngineError('INVALID_FIELD_ERR', 'params.tokenLabel: must be 1-32 characters', {
      target: { type: 'field', name: 'params.tokenLabel' },
    })
  }
  const pin = await secrets(params.pin)
  if (pin.length === 0) {
    throw new EngineError('INVALID_FIELD_ERR', 'params.pin: the PIN source is empty', {
      target: { type: 'field', name: 'params.pin' },
    })
  }
  return new Pkcs11SyncSource(params, pin)
}
