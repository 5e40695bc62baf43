/**
 * The PKCS#11 object scheme of root-key versions: the attribute template, the label and `ref` (CKA_ID)
 * conventions, object search and attribute read-back, and the cache of key handles per `ref`.
 *
 * The scheme is frozen (REDESIGN §8.4): each version is an AES token object, CKA_SENSITIVE=true,
 * CKA_EXTRACTABLE=false, usable only for encrypt/decrypt, found by a random 16-byte CKA_ID (the `ref` kept
 * in the catalog, as 32 hex digits) and labelled `ekms/v1/<catalogId>/<keyId>/<version>` so that
 * reconciliation can tell whose it is. A stored catalog points at these objects: changing any of it orphans
 * every existing root key.
 */
import { EngineError } from '../../core/errors.js'
import type { CreateVersionRequest, ProviderObject } from '../../core/ports.js'
import type { Handle, ModuleEntry, Pkcs11Js } from './module.js'

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

/**
 * The attribute template of a new root-key version, without CKA_VALUE_LEN (generated keys) or CKA_VALUE
 * (imported material), which the caller appends. `createVersion` checks its postcondition (sensitive, not
 * extractable, a token object) by reading the object back.
 */
export function versionTemplate(js: Pkcs11Js, label: string, id: Buffer): Attribute[] {
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
  extra: { type: number; value: boolean | Buffer }[],
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

/** Reads an object's security attributes, its CKA_VALUE_LEN and its label. */
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
  ]
  const vals = p11.C_GetAttributeValue(
    s,
    h,
    types.map((type) => ({ type })),
  )
  const b = (i: number): boolean => vals[i]?.value?.[0] === 1
  const valueLen = vals[10]?.value
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
    valueLen: valueLen === undefined ? 0 : valueLen.readUIntLE(0, Math.min(valueLen.length, 6)),
    label: vals[11]?.value?.toString('utf8') ?? '',
  }
}

/** Where session copies are made: the session that lives as long as the provider (the guard's anchor). */
export interface AnchorSession {
  readonly anchor: Handle | undefined
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
   * @throws EngineError PROVIDER_ERROR when the object is missing, duplicated or its copy is unprotected
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
      throw new EngineError('PROVIDER_ERROR', 'pkcs11: the root key version object is missing from the token')
    }
    if (dup !== undefined)
      throw new EngineError('PROVIDER_ERROR', 'pkcs11: two token objects share one CKA_ID')
    let copy: Handle | undefined
    const anchor = this.#sessions.anchor
    if (this.#copy && anchor !== undefined) {
      // The copy is made in the anchor session, which lives as long as the provider: session objects die
      // with the session that created them.
      copy = p11.C_CopyObject(anchor, token, [{ type: js.CKA_TOKEN, value: false }])
      const a = readAttributes(js, p11, s, copy)
      /* Postcondition: the copy is as protected as the token object. */
      if (!a.sensitive || a.extractable || a.token) {
        p11.C_DestroyObject(anchor, copy)
        throw new EngineError(
          'PROVIDER_ERROR',
          'pkcs11: session copy of the root key is not sensitive/non-extractable',
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
