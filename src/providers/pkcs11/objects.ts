/**
 * The PKCS#11 object scheme of root-key versions: the attribute template, the label and `ref` (CKA_ID)
 * conventions, object search and attribute read-back, and the cache of key handles per `ref`.
 *
 * The scheme is frozen (REDESIGN §8.4): each version is an AES token object, CKA_SENSITIVE=true,
 * CKA_EXTRACTABLE=false, usable only for encrypt/decrypt with the profile's AES-GCM mechanism
 * (CKA_ALLOWED_MECHANISMS; objects made by earlier builds carry none), found by a random 16-byte CKA_ID (the `ref` kept
 * in the catalog, as 32 hex digits) and labelled `ekms/v1/<catalogId>/<keyId>/<version>` so that
 * reconciliation can tell whose it is. A stored catalog points at these objects: changing any of it orphans
 * every existing root key.
 */
import { EngineError } from '../../core/errors.js'
import type { CreateVersionRequest, ProviderObject } from '../../core/ports.js'
import { ckrOf } from './errors.js'
import { isLoggedIn, type Handle, type ModuleEntry, type Pkcs11Js } from './module.js'

/** Attributes of a root-key version object, read back from the token. */
export interface Pkcs11ObjectAttributes {
  readonly token: boolean
  readonly sensitive: boolean
  readonly extractable: boolean
  readonly alwaysSensitive: boolean
  readonly neverExtractable: boolean
  readonly local: boolean
  readonly encrypt: boolean
  readonly decrypt: boolean
  readonly wrap: boolean
  readonly unwrap: boolean
  readonly derive: boolean
  readonly modifiable: boolean
  readonly copyable: boolean
  /**
   * CKA_ALLOWED_MECHANISMS: the only mechanisms the device lets this key be used with. Empty when the object
   * has none (any mechanism its flags permit: root keys made by earlier builds) or the device lacks the attribute.
   */
  readonly allowedMechanisms: readonly number[]
  readonly valueLen: number
  readonly label: string
}

/** One attribute of a template or a search, in pkcs11js's shape. */
export interface Attribute {
  type: number
  value: boolean | number | string | Buffer
}

const LABEL_PREFIX = 'ekms/v1/'
const LABEL_RE = /^ekms\/v1\/([0-9a-f-]{36})\/([0-9a-f-]{36})\/(\d{1,10})$/
const REF_RE = /^[0-9a-f]{32}$/

/** The CKA_LABEL of a root-key version: `ekms/v1/<catalogId>/<keyId>/<version>`. */
export function versionLabel(req: CreateVersionRequest): string {
  return `${LABEL_PREFIX}${req.catalogId}/${req.keyId}/${req.version}`
}

/** Size of a CK_ULONG (CK_MECHANISM_TYPE) in the library's ABI: 4 on Windows (LLP64), 8 elsewhere (LP64). */
const ULONG_BYTES = process.platform === 'win32' ? 4 : 8

/**
 * A CKA_ALLOWED_MECHANISMS value: a CK_MECHANISM_TYPE array. pkcs11js has no array attributes, so it is
 * passed as the raw bytes of the C array (host byte order, little-endian on every platform we build for).
 */
export function mechanismList(mechanisms: readonly number[]): Buffer {
  const b = Buffer.alloc(mechanisms.length * ULONG_BYTES)
  mechanisms.forEach((m, i) => b.writeUIntLE(m, i * ULONG_BYTES, Math.min(ULONG_BYTES, 6)))
  return b
}

/** Decodes a CKA_ALLOWED_MECHANISMS value read back with C_GetAttributeValue. */
export function parseMechanismList(b: Buffer | undefined): number[] {
  const out: number[] = []
  if (b === undefined) return out
  for (let i = 0; i + ULONG_BYTES <= b.length; i += ULONG_BYTES) {
    out.push(ULONG_BYTES === 8 ? Number(b.readBigUInt64LE(i)) : b.readUInt32LE(i))
  }
  return out
}

/**
 * The attribute template of a new root-key version (generated or imported), without CKA_VALUE_LEN
 * (generated keys) or CKA_VALUE (imported material), which the caller appends. `createVersion` checks its
 * postcondition (sensitive, not extractable, a token object, only `mechanism` allowed, no derive) by reading
 * the object back.
 *
 * - CKA_ALLOWED_MECHANISMS = [`mechanism`] (the profile's AES-GCM): raw CKM_AES_ECB/CBC, key derivation and
 *   key wrapping with this key are refused at C_*Init, whatever its other attributes say. SoftHSM2 2.6
 *   enforces it and never lets it change after creation, even on a modifiable object or in a copy template.
 * - CKA_MODIFIABLE stays true: SoftHSM2 2.6 refuses C_CopyObject with any template (even CKA_TOKEN=false)
 *   on a non-modifiable object (CKR_ATTRIBUTE_READ_ONLY), and the session copies need that template. What
 *   stays modifiable (CKA_DERIVE, CKA_WRAP, CKA_LABEL, ...) cannot widen its use past AES-GCM; sensitive and
 *   extractable can only be tightened (PKCS#11). The session copy itself is made non-modifiable.
 * - CKA_COPYABLE stays true for the same reason; SoftHSM2 2.6 refuses CKA_COPYABLE=false in a copy
 *   template, so copies stay copyable, but a copy of the (non-modifiable) copy cannot change any attribute.
 */
export function versionTemplate(js: Pkcs11Js, label: string, id: Buffer, mechanism: number): Attribute[] {
  return [
    { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
    { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
    { type: js.CKA_TOKEN, value: true },
    { type: js.CKA_PRIVATE, value: true },
    { type: js.CKA_SENSITIVE, value: true },
    { type: js.CKA_EXTRACTABLE, value: false },
    { type: js.CKA_ENCRYPT, value: true },
    { type: js.CKA_DECRYPT, value: true },
    { type: js.CKA_WRAP, value: false },
    { type: js.CKA_UNWRAP, value: false },
    { type: js.CKA_SIGN, value: false },
    { type: js.CKA_VERIFY, value: false },
    { type: js.CKA_DERIVE, value: false },
    { type: js.CKA_ALLOWED_MECHANISMS, value: mechanismList([mechanism]) },
    { type: js.CKA_MODIFIABLE, value: true },
    { type: js.CKA_COPYABLE, value: true },
    { type: js.CKA_LABEL, value: label },
    { type: js.CKA_ID, value: id },
  ]
}

/**
 * The CKA_ID of a `ref` (32 lowercase hex digits).
 * @throws EngineError INTERNAL_ERROR when `ref` is malformed
 */
export function refToId(ref: string): Buffer {
  if (!REF_RE.test(ref)) throw new EngineError('INTERNAL_ERROR', 'pkcs11: malformed object reference')
  return Buffer.from(ref, 'hex')
}

/** Handles of the secret-key objects matching `extra`, all of them (C_FindObjects in batches of 256). */
export function findSecretKeys(
  js: Pkcs11Js,
  p11: ModuleEntry['p11'],
  s: Handle,
  extra: Attribute[],
): Handle[] {
  p11.C_FindObjectsInit(s, [{ type: js.CKA_CLASS, value: js.CKO_SECRET_KEY }, ...extra])
  const out: Handle[] = []
  try {
    for (;;) {
      const batch = p11.C_FindObjects(s, 256)
      if (batch.length === 0) break
      out.push(...batch)
    }
  } finally {
    p11.C_FindObjectsFinal(s)
  }
  return out
}

/** The token objects that follow the label/ref scheme; others on the token are skipped. */
export function listVersionObjects(js: Pkcs11Js, p11: ModuleEntry['p11'], s: Handle): ProviderObject[] {
  const out: ProviderObject[] = []
  for (const h of findSecretKeys(js, p11, s, [{ type: js.CKA_TOKEN, value: true }])) {
    const [label, id] = p11.C_GetAttributeValue(s, h, [{ type: js.CKA_LABEL }, { type: js.CKA_ID }])
    const m = LABEL_RE.exec(label?.value?.toString('utf8') ?? '')
    const ref = id?.value?.toString('hex') ?? ''
    if (m === null || !REF_RE.test(ref)) continue
    out.push({ ref, catalogId: m[1] as string, keyId: m[2] as string, version: Number(m[3]) })
  }
  return out
}

/**
 * Reads an object's security attributes, its CKA_VALUE_LEN and its label. CKA_COPYABLE and
 * CKA_ALLOWED_MECHANISMS (PKCS#11 2.40) are read in a second call, so that a device without them still
 * answers the first (they then read as copyable and no restriction).
 */
export function readAttributes(
  js: Pkcs11Js,
  p11: ModuleEntry['p11'],
  s: Handle,
  h: Handle,
): Pkcs11ObjectAttributes {
  const types = [
    js.CKA_TOKEN,
    js.CKA_SENSITIVE,
    js.CKA_EXTRACTABLE,
    js.CKA_ALWAYS_SENSITIVE,
    js.CKA_NEVER_EXTRACTABLE,
    js.CKA_LOCAL,
    js.CKA_ENCRYPT,
    js.CKA_DECRYPT,
    js.CKA_WRAP,
    js.CKA_UNWRAP,
    js.CKA_VALUE_LEN,
    js.CKA_LABEL,
    js.CKA_DERIVE,
    js.CKA_MODIFIABLE,
  ]
  const vals = p11.C_GetAttributeValue(
    s,
    h,
    types.map((type) => ({ type })),
  )
  const b = (i: number): boolean => vals[i]?.value?.[0] === 1
  const valueLen = vals[10]?.value
  let copyable = true
  let allowedMechanisms: number[] = []
  try {
    const [c, m] = p11.C_GetAttributeValue(s, h, [
      { type: js.CKA_COPYABLE },
      { type: js.CKA_ALLOWED_MECHANISMS },
    ])
    copyable = c?.value?.[0] === 1
    allowedMechanisms = parseMechanismList(m?.value)
  } catch (err) {
    if (ckrOf(err) !== js.CKR_ATTRIBUTE_TYPE_INVALID) throw err // else a pre-2.40 device
  }
  return {
    token: b(0),
    sensitive: b(1),
    extractable: b(2),
    alwaysSensitive: b(3),
    neverExtractable: b(4),
    local: b(5),
    encrypt: b(6),
    decrypt: b(7),
    wrap: b(8),
    unwrap: b(9),
    derive: b(12),
    modifiable: b(13),
    copyable,
    allowedMechanisms,
    valueLen: valueLen === undefined ? 0 : valueLen.readUIntLE(0, Math.min(valueLen.length, 6)),
    label: vals[11]?.value?.toString('utf8') ?? '',
  }
}

/** Where session copies are made: the session that lives as long as the provider (the guard's anchor). */
export interface AnchorSession {
  readonly anchor: Handle | undefined
  /** The token's slot (asked whether the token still answers before an object is declared missing). */
  readonly slot: Handle
}

interface CachedHandles {
  readonly token: Handle
  readonly copy: Handle | undefined
}

/**
 * The key handle of each `ref` in use: the token object, and its session copy when the profile enables
 * `sessionKeyCopy`. Every handle dies with its module generation and a copy with the anchor session, so the
 * `SessionGuard` (recovery.ts) that owns those clears this cache whenever it replaces them.
 */
export class KeyHandles {
  readonly #js: Pkcs11Js
  readonly #entry: ModuleEntry
  readonly #sessions: AnchorSession
  readonly #copy: boolean
  readonly #map = new Map<string, CachedHandles>()

  constructor(js: Pkcs11Js, entry: ModuleEntry, sessions: AnchorSession, copy: boolean) {
    this.#js = js
    this.#entry = entry
    this.#sessions = sessions
    this.#copy = copy
  }

  /**
   * The handle to encrypt/decrypt with: the session copy when enabled, else the token object. HOT PATH
   * (every encrypt/decrypt): a hit is one Map lookup, as it was inside the provider; a miss searches the
   * token on session `s`.
   * @throws EngineError KEY_VERSION_MATERIAL_MISSING when the token answers and has no such object,
   * PROVIDER_ERROR when it is duplicated or its copy is unprotected
   */
  handle(s: Handle, ref: string): Handle {
    const hit = this.#map.get(ref)
    if (hit !== undefined) return hit.copy ?? hit.token
    return this.#load(s, ref)
  }

  #load(s: Handle, ref: string): Handle {
    const js = this.#js
    const p11 = this.#entry.p11
    const [token, dup] = findSecretKeys(js, p11, s, [
      { type: js.CKA_ID, value: refToId(ref) },
      { type: js.CKA_TOKEN, value: true },
    ])
    if (token === undefined) {
      // SoftHSM2 answers an empty search on a working session while its token storage is away (then every
      // C_GetTokenInfo fails): "not found" is permanent only when the token itself still answers. If it does
      // not, its error goes to the session guard like any device failure (transient, never "missing").
      p11.C_GetTokenInfo(this.#sessions.slot)
      // Root keys are private objects: a session logged out behind our back (another C_Logout in this
      // process) finds none of them. That is the session guard's to repair (re-login), not "missing".
      if (!isLoggedIn(this.#entry, s)) {
        throw new EngineError(
          'PROVIDER_ERROR',
          'pkcs11: the session is not logged in; its search cannot see root keys',
        )
      }
      throw new EngineError(
        'KEY_VERSION_MATERIAL_MISSING',
        'pkcs11: the root key version object does not exist on the token (it was destroyed); ciphertexts under this version cannot be unwrapped',
      )
    }
    if (dup !== undefined)
      throw new EngineError('PROVIDER_ERROR', 'pkcs11: two token objects share one CKA_ID')
    // Domain separation: only objects of the root-key scheme are root keys (not vault keys, whose labels
    // start with ekms/az/v1/, nor anything else on the token that shares the CKA_ID).
    const [label] = p11.C_GetAttributeValue(s, token, [{ type: js.CKA_LABEL }])
    if (label?.value?.toString('utf8').startsWith(LABEL_PREFIX) !== true) {
      throw new EngineError(
        'KEY_VERSION_MATERIAL_MISSING',
        'pkcs11: the object with this reference is not a root key version',
      )
    }
    let copy: Handle | undefined
    const anchor = this.#sessions.anchor
    if (this.#copy && anchor !== undefined) {
      // The copy is made in the anchor session, which lives as long as the provider: session objects die
      // with the session that created them. Non-modifiable: its CKA_DERIVE, CKA_WRAP... cannot be turned
      // on, and a copy of it cannot change any attribute (SoftHSM2 refuses any copy template then).
      // CKA_COPYABLE=false is refused in a copy template by SoftHSM2 2.6, so the copy stays copyable; it
      // inherits CKA_ALLOWED_MECHANISMS, which no copy template may change.
      copy = p11.C_CopyObject(anchor, token, [
        { type: js.CKA_TOKEN, value: false },
        { type: js.CKA_MODIFIABLE, value: false },
      ])
      const a = readAttributes(js, p11, s, copy)
      const t = readAttributes(js, p11, s, token)
      /* Postcondition: the copy is as protected as the token object, restricted to the same mechanisms. */
      if (
        !a.sensitive ||
        a.extractable ||
        a.token ||
        a.modifiable ||
        a.derive ||
        a.allowedMechanisms.join() !== t.allowedMechanisms.join()
      ) {
        p11.C_DestroyObject(anchor, copy)
        throw new EngineError(
          'PROVIDER_ERROR',
          'pkcs11: session copy of the root key is not sensitive/non-extractable/non-modifiable/restricted',
        )
      }
    }
    this.#map.set(ref, { token, copy })
    return copy ?? token
  }

  /** The session copy cached for `ref`, if any. */
  copyOf(ref: string): Handle | undefined {
    return this.#map.get(ref)?.copy
  }

  /** Drops `ref` from the cache and destroys its session copy (the token object is the caller's business). */
  forget(ref: string): void {
    const cached = this.#map.get(ref)
    this.#map.delete(ref)
    const anchor = this.#sessions.anchor
    if (cached?.copy !== undefined && anchor !== undefined) {
      try {
        this.#entry.p11.C_DestroyObject(anchor, cached.copy)
      } catch {
        /* the copy died with its session */
      }
    }
  }

  /** Forgets every handle (after a re-attach, a dead anchor, or CKR_OBJECT_HANDLE_INVALID). */
  clear(): void {
    this.#map.clear()
  }
}
