/**
 * Root keys in a PKCS#11 token (SoftHSM2 for development and tests, Luna in production).
 *
 * Each root-key version is an AES token object, CKA_SENSITIVE=true, CKA_EXTRACTABLE=false, usable only for
 * encrypt/decrypt, found by a random 16-byte CKA_ID (the `ref` kept in the catalog) and labelled
 * `ekms/v1/<catalogId>/<keyId>/<version>` so that reconciliation can tell whose it is. DEKs are wrapped with
 * AES-GCM through C_EncryptInit/C_Encrypt, the AAD bound, the 128-bit tag length always set (pkcs11js
 * sends ulTagBits=0 otherwise and SoftHSM2 then emits no tag: RESULTS gotcha 3).
 */
import { setTimeout as delay } from 'node:timers/promises'
import { EngineError } from '../../core/errors.js'
import type {
  CallOptions,
  OutputOptions,
  CreateVersionRequest,
  GcmSealed,
  ProviderCapabilities,
  ProviderHealth,
  ProviderObject,
  RootKeyProvider,
} from '../../core/ports.js'
import { SecretBytes } from '../../core/secret-bytes.js'
import { ckrName, ckrOf, ckrValues, classify } from './errors.js'
import {
  acquireModule,
  ensureLogin,
  pkcs11js,
  reinitializeModule,
  releaseModule,
  type Handle,
  type ModuleEntry,
} from './module.js'
import { loadProfile, type Pkcs11Profile } from './profile.js'
import { SessionPool } from './session-pool.js'

/** Options of {@link createPkcs11Provider}. */
export interface Pkcs11ProviderOptions {
  /** Path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  readonly module: string
  /** Token label. Tokens are always selected by label, never by slot index. */
  readonly tokenLabel: string
  /** User PIN. Kept in memory for re-login after recovery; never logged. */
  readonly pin: string
  /** A profile, a built-in profile name (`softhsm2`, `luna`) or a profile file path. Default `softhsm2`. */
  readonly profile?: Pkcs11Profile | string
  /** Overrides the profile's maxSessions. */
  readonly maxSessions?: number
  /** Overrides the profile's sessionKeyCopy. */
  readonly sessionKeyCopy?: boolean
  /** Overrides the profile's callMode. */
  readonly callMode?: 'sync' | 'async'
  /** Attempts per operation when the session or device fails (default 3), and the first back-off (default 20 ms). */
  readonly retry?: { readonly attempts?: number; readonly baseDelayMs?: number }
}

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

const LABEL_PREFIX = 'ekms/v1/'
const LABEL_RE = /^ekms\/v1\/([0-9a-f-]{36})\/([0-9a-f-]{36})\/(\d{1,10})$/
const REF_RE = /^[0-9a-f]{32}$/
const ZERO_IV = Buffer.alloc(12)

interface KeyHandles {
  readonly token: Handle
  readonly copy: Handle | undefined
}

/** A {@link RootKeyProvider} over one PKCS#11 token. Create it with {@link createPkcs11Provider}. */
export class Pkcs11Provider implements RootKeyProvider {
  readonly name: string
  readonly capabilities: ProviderCapabilities = { importMaterial: true, importLengths: [16, 24, 32] }
  readonly profile: Pkcs11Profile
  readonly #js = pkcs11js()
  readonly #entry: ModuleEntry
  readonly #label: string
  readonly #pin: string
  readonly #sync: boolean
  readonly #copy: boolean
  readonly #maxSessions: number
  readonly #attempts: number
  readonly #baseDelay: number
  readonly #authCodes: Set<number>
  #gen = 0
  #slot: Handle = Buffer.alloc(0)
  #pool: SessionPool | undefined
  #anchor: Handle | undefined
  readonly #handles = new Map<string, KeyHandles>()
  #inflight = 0
  #closed = false

  /** @internal use {@link createPkcs11Provider} */
  constructor(options: Pkcs11ProviderOptions, profile: Pkcs11Profile, entry: ModuleEntry) {
    this.profile = profile
    this.name = `pkcs11:${profile.name}`
    this.#entry = entry
    this.#label = options.tokenLabel
    this.#pin = options.pin
    this.#sync = (options.callMode ?? profile.callMode) === 'sync'
    this.#copy = options.sessionKeyCopy ?? profile.sessionKeyCopy
    this.#maxSessions = options.maxSessions ?? profile.maxSessions
    this.#attempts = options.retry?.attempts ?? 3
    this.#baseDelay = options.retry?.baseDelayMs ?? 20
    this.#authCodes = ckrValues(profile.authFailureCodes)
  }

  /** Opens sessions, logs in and checks the mechanisms; called once by {@link createPkcs11Provider}. */
  connect(): void {
    this.#attach()
    const p11 = this.#entry.p11
    const js = this.#js
    let info
    try {
      info = p11.C_GetMechanismInfo(this.#slot, this.profile.mechanisms.aesGcm)
    } catch (err) {
      throw new EngineError(
        'PROVIDER_UNSUPPORTED',
        `pkcs11: the token does not offer AES-GCM (${ckrName(err)})`,
        {
          cause: err,
        },
      )
    }
    if ((info.flags & js.CKF_ENCRYPT) === 0 || (info.flags & js.CKF_DECRYPT) === 0) {
      throw new EngineError(
        'PROVIDER_UNSUPPORTED',
        'pkcs11: the token offers AES-GCM without encrypt/decrypt',
      )
    }
  }

  /**
   * Finds the slot, opens the anchor session and logs in, for the module's current generation. Marks the
   * generation as attached only when all of it worked, so a failed attempt is retried from scratch.
   */
  #attach(): void {
    const p11 = this.#entry.p11
    const js = this.#js
    const gen = this.#entry.generation
    this.#handles.clear()
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

  /** Open sessions in the pool (not counting the anchor session). */
  get sessionsOpen(): number {
    return this.#pool?.size ?? 0
  }

  // ------------------------------------------------------------ RootKeyProvider

  async createVersion(req: CreateVersionRequest, opts: CallOptions = {}): Promise<string> {
    const js = this.#js
    const rnd = await this.generateRandom(16, opts)
    const id = rnd.exportCopy() // CKA_ID is not secret
    rnd.zeroize()
    const ref = id.toString('hex')
    const label = `${LABEL_PREFIX}${req.catalogId}/${req.keyId}/${req.version}`
    const template: { type: number; value: boolean | number | string | Buffer }[] = [
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
    const material = req.material
    await this.#op(
      'create root key version',
      (s) => {
        const p11 = this.#entry.p11
        if (material === undefined) {
          p11.C_GenerateKey(s, { mechanism: this.profile.mechanisms.aesKeyGen }, [
            ...template,
            { type: js.CKA_VALUE_LEN, value: 32 },
          ])
        } else {
          /* Precondition: imported material is an AES key length. */
          if (!this.capabilities.importLengths.includes(material.length)) {
            throw new EngineError('INVALID_FIELD_ERR', 'payload: must be 16, 24 or 32 bytes (AES)')
          }
          // C_CreateObject copies the value into the token; our buffer is zeroed by the caller.
          p11.C_CreateObject(s, [...template, { type: js.CKA_VALUE, value: material.bytes }])
        }
      },
      opts,
    )
    /* Postcondition: the object on the token is sensitive and not extractable. */
    const attrs = await this.inspectVersion(ref)
    if (!attrs.sensitive || attrs.extractable || !attrs.token) {
      await this.destroyVersion(ref)
      throw new EngineError(
        'PROVIDER_ERROR',
        'pkcs11: the token did not keep CKA_SENSITIVE / CKA_EXTRACTABLE as asked',
      )
    }
    return ref
  }

  async destroyVersion(ref: string, opts: CallOptions = {}): Promise<void> {
    const id = refToId(ref)
    await this.#op(
      'destroy root key version',
      (s) => {
        const p11 = this.#entry.p11
        const cached = this.#handles.get(ref)
        this.#handles.delete(ref)
        if (cached?.copy !== undefined && this.#anchor !== undefined) {
          try {
            p11.C_DestroyObject(this.#anchor, cached.copy)
          } catch {
            /* the copy died with its session */
          }
        }
        for (const h of this.#find(s, [{ type: this.#js.CKA_ID, value: id }])) p11.C_DestroyObject(s, h)
      },
      opts,
    )
  }

  encrypt(ref: string, plaintext: SecretBytes, aad: Buffer, opts: CallOptions = {}): Promise<GcmSealed> {
    return this.#op('C_Encrypt', (s) => this.#encryptOn(s, ref, plaintext, aad), opts)
  }

  decrypt(ref: string, sealed: GcmSealed, aad: Buffer, opts: OutputOptions = {}): Promise<SecretBytes> {
    return this.#op('C_Decrypt', (s) => this.#decryptOn(s, ref, sealed, aad, opts.output), opts)
  }

  #encryptOn(s: Handle, ref: string, plaintext: SecretBytes, aad: Buffer): GcmSealed | Promise<GcmSealed> {
    const p11 = this.#entry.p11
    const len = plaintext.length
    const key = this.#keyHandle(s, ref)
    const iv =
      this.profile.gcmIvSource === 'hsm-rng'
        ? p11.C_GenerateRandom(s, Buffer.allocUnsafe(12))
        : Buffer.alloc(12)
    p11.C_EncryptInit(s, this.#gcm(iv, aad), key)
    const out = Buffer.allocUnsafe(len + 16)
    if (this.#sync) return sealedOf(p11.C_Encrypt(s, plaintext.bytes, out), len, iv)
    return p11.C_EncryptAsync(s, plaintext.bytes, out).then((r) => sealedOf(r, len, iv))
  }

  #decryptOn(
    s: Handle,
    ref: string,
    sealed: GcmSealed,
    aad: Buffer,
    output: Buffer | undefined,
  ): SecretBytes | Promise<SecretBytes> {
    const p11 = this.#entry.p11
    const { encrypted: e, tag } = sealed
    const len = e.length
    // Ciphertext format v1 stores the tag right after the encrypted DEK: use both in place when so.
    const input =
      e.buffer === tag.buffer && e.byteOffset + e.length === tag.byteOffset
        ? Buffer.from(e.buffer, e.byteOffset, len + tag.length)
        : Buffer.concat([e, tag])
    const key = this.#keyHandle(s, ref)
    p11.C_DecryptInit(s, this.#gcm(sealed.iv, aad), key)
    // GCM C_Decrypt wants room for ciphertext + tag (RESULTS gotcha 6). Zero-filled and not from Node's
    // shared pool: the DEK handed out is a view of it, and neither its unused tail nor a pool slab may hold
    // stale memory. The caller's output region (a batch's slab) is zero-filled off-heap memory too.
    const out = output !== undefined && output.length >= len + 16 ? output : Buffer.alloc(len + 16)
    if (this.#sync) {
      try {
        return dekOf(p11.C_Decrypt(s, input, out), len, out)
      } catch (err) {
        out.fill(0)
        throw this.#decryptFailure(s, err)
      }
    }
    return p11.C_DecryptAsync(s, input, out).then(
      (r) => dekOf(r, len, out),
      (err: unknown) => {
        out.fill(0)
        throw this.#decryptFailure(s, err)
      },
    )
  }

  generateRandom(length: number, opts: OutputOptions = {}): Promise<SecretBytes> {
    const o = opts.output
    return this.#op(
      'C_GenerateRandom',
      (s) =>
        SecretBytes.adopt(
          this.#entry.p11.C_GenerateRandom(
            s,
            o !== undefined && o.length >= length ? o.subarray(0, length) : Buffer.allocUnsafeSlow(length),
          ),
        ),
      opts,
    )
  }

  async listObjects(opts: CallOptions = {}): Promise<ProviderObject[]> {
    const js = this.#js
    return this.#op(
      'list objects',
      (s) => {
        const p11 = this.#entry.p11
        const out: ProviderObject[] = []
        for (const h of this.#find(s, [{ type: js.CKA_TOKEN, value: true }])) {
          const [label, id] = p11.C_GetAttributeValue(s, h, [{ type: js.CKA_LABEL }, { type: js.CKA_ID }])
          const m = LABEL_RE.exec(label?.value?.toString('utf8') ?? '')
          const ref = id?.value?.toString('hex') ?? ''
          if (m === null || !REF_RE.test(ref)) continue
          out.push({ ref, catalogId: m[1] as string, keyId: m[2] as string, version: Number(m[3]) })
        }
        return out
      },
      opts,
    )
  }

  async health(): Promise<ProviderHealth> {
    try {
      await this.#op('C_GetSessionInfo', (s) => this.#entry.p11.C_GetSessionInfo(s))
      return { ok: true, detail: `token "${this.#label}" reachable` }
    } catch (err) {
      return { ok: false, detail: err instanceof EngineError ? err.message : 'pkcs11: health check failed' }
    }
  }

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
    this.#handles.clear()
    releaseModule(this.#entry)
  }

  // ------------------------------------------------------------ PKCS#11 specifics

  /**
   * Reads a root-key version's security attributes back from the token (for audits and tests).
   * @throws EngineError PROVIDER_ERROR when the object does not exist
   */
  async inspectVersion(ref: string): Promise<Pkcs11ObjectAttributes> {
    const js = this.#js
    const id = refToId(ref)
    return this.#op('inspect object', (s) => {
      const [h] = this.#find(s, [{ type: js.CKA_ID, value: id }])
      if (h === undefined)
        throw new EngineError('PROVIDER_ERROR', 'pkcs11: root key version object not found')
      return this.#readAttrs(s, h)
    })
  }

  /** Attributes of the session copy used for a version, if any (tests check it stays sensitive). */
  async inspectSessionCopy(ref: string): Promise<Pkcs11ObjectAttributes | undefined> {
    return this.#op('inspect copy', (s) => {
      this.#keyHandle(s, ref)
      const copy = this.#handles.get(ref)?.copy
      return copy === undefined ? undefined : this.#readAttrs(s, copy)
    })
  }

  /** The module generation (bumped by each re-initialisation); for tests and diagnostics. */
  get generation(): number {
    return this.#entry.generation
  }

  #readAttrs(s: Handle, h: Handle): Pkcs11ObjectAttributes {
    const js = this.#js
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
    const vals = this.#entry.p11.C_GetAttributeValue(
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

  #gcm(
    iv: Buffer,
    aad: Buffer,
  ): {
    mechanism: number
    parameter: { type: number; iv: Buffer; ivBits: number; aad: Buffer; tagBits: number }
  } {
    return {
      mechanism: this.profile.mechanisms.aesGcm,
      // tagBits is mandatory: without it pkcs11js sends ulTagBits=0 (RESULTS gotcha 3).
      parameter: { type: this.#js[this.profile.gcmParams], iv, ivBits: 96, aad, tagBits: 128 },
    }
  }

  #find(s: Handle, extra: { type: number; value: boolean | Buffer }[]): Handle[] {
    const js = this.#js
    const p11 = this.#entry.p11
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

  /** The handle to encrypt/decrypt with: the session copy when enabled, else the token object. */
  #keyHandle(s: Handle, ref: string): Handle {
    const hit = this.#handles.get(ref)
    if (hit !== undefined) return hit.copy ?? hit.token
    const js = this.#js
    const [token, dup] = this.#find(s, [
      { type: js.CKA_ID, value: refToId(ref) },
      { type: js.CKA_TOKEN, value: true },
    ])
    if (token === undefined) {
      throw new EngineError('PROVIDER_ERROR', 'pkcs11: the root key version object is missing from the token')
    }
    if (dup !== undefined)
      throw new EngineError('PROVIDER_ERROR', 'pkcs11: two token objects share one CKA_ID')
    let copy: Handle | undefined
    if (this.#copy && this.#anchor !== undefined) {
      // The copy is made in the anchor session, which lives as long as the provider: session objects die
      // with the session that created them.
      copy = this.#entry.p11.C_CopyObject(this.#anchor, token, [{ type: js.CKA_TOKEN, value: false }])
      const a = this.#readAttrs(s, copy)
      /* Postcondition: the copy is as protected as the token object. */
      if (!a.sensitive || a.extractable || a.token) {
        this.#entry.p11.C_DestroyObject(this.#anchor, copy)
        throw new EngineError(
          'PROVIDER_ERROR',
          'pkcs11: session copy of the root key is not sensitive/non-extractable',
        )
      }
    }
    this.#handles.set(ref, { token, copy })
    return copy ?? token
  }

  /** Maps a C_Decrypt failure: the profile's authentication codes mean a bad tag, if the session still works. */
  #decryptFailure(s: Handle, err: unknown): unknown {
    const rv = ckrOf(err)
    if (rv === undefined || !this.#authCodes.has(rv)) return err
    try {
      this.#entry.p11.C_GetSessionInfo(s)
    } catch {
      return err // the session or device is broken: not an authentication failure
    }
    return new EngineError(
      'UNWRAP_AAD_MISMATCH',
      'ciphertext: authentication failed; the AAD differs from the one used at wrap, or the ciphertext was altered',
      { target: { type: 'field', name: 'ciphertext' } },
    )
  }

  /**
   * Runs `fn` on a pooled session with bounded recovery: a dead session is replaced, a dead device or
   * library is re-initialised, a stale object handle is looked up again. After `attempts` tries the
   * caller gets PROVIDER_UNAVAILABLE.
   */
  #op<T>(what: string, fn: (s: Handle) => T | Promise<T>, opts: CallOptions = {}): Promise<T> {
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

  /** {@link #op} with waiting, retries and recovery; `firstErr` is a failure the fast path already had. */
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
        if (this.#entry.generation !== this.#gen || this.#pool === undefined) this.#attach()
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
        this.#handles.clear()
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
          this.#attach()
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
      this.#handles.clear()
    }
  }
}

/** Checks C_Encrypt's output and splits it. */
function sealedOf(r: Buffer, len: number, iv: Buffer): GcmSealed {
  /* Postcondition: ciphertext = plaintext length + a 16-byte tag (a missing tag would be silent: gotcha 3). */
  if (r.length !== len + 16)
    throw new EngineError('PROVIDER_ERROR', 'pkcs11: AES-GCM output lacks its 16-byte tag')
  /* Postcondition: a device that generates IVs has written one. */
  if (iv.equals(ZERO_IV))
    throw new EngineError('PROVIDER_ERROR', 'pkcs11: the device did not generate a GCM IV')
  return { iv, encrypted: r.subarray(0, len), tag: r.subarray(len) }
}

/** Checks C_Decrypt's output length and takes ownership of the DEK. */
function dekOf(r: Buffer, len: number, out: Buffer): SecretBytes {
  if (r.length !== len) {
    out.fill(0)
    throw new EngineError('PROVIDER_ERROR', 'pkcs11: AES-GCM decryption returned an unexpected length')
  }
  return SecretBytes.adopt(r)
}

function refToId(ref: string): Buffer {
  if (!REF_RE.test(ref)) throw new EngineError('INTERNAL_ERROR', 'pkcs11: malformed object reference')
  return Buffer.from(ref, 'hex')
}

/**
 * Loads the PKCS#11 module (or joins this process's owner of it), finds the token by label, logs in and
 * checks that AES-GCM is offered.
 * @throws EngineError PROVIDER_MODULE_LOAD_FAILED, PROVIDER_TOKEN_NOT_FOUND, PROVIDER_LOGIN_FAILED, PROVIDER_UNSUPPORTED, CONFIG_INVALID
 * @example
 * const provider = await createPkcs11Provider({ module: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'envelope-kms', pin })
 */
export async function createPkcs11Provider(options: Pkcs11ProviderOptions): Promise<Pkcs11Provider> {
  if (typeof options.module !== 'string' || options.module.length === 0) {
    throw new EngineError('CONFIG_INVALID', 'pkcs11.module: is required')
  }
  if (
    typeof options.tokenLabel !== 'string' ||
    options.tokenLabel.length === 0 ||
    options.tokenLabel.length > 32
  ) {
    throw new EngineError('CONFIG_INVALID', 'pkcs11.tokenLabel: must be 1-32 characters')
  }
  if (typeof options.pin !== 'string' || options.pin.length === 0) {
    throw new EngineError('CONFIG_INVALID', 'pkcs11.pin: is required')
  }
  const profile =
    typeof options.profile === 'object' ? options.profile : loadProfile(options.profile ?? 'softhsm2')
  const entry = acquireModule(options.module)
  const provider = new Pkcs11Provider(options, profile, entry)
  try {
    provider.connect()
  } catch (err) {
    await provider.close()
    if (err instanceof EngineError) throw err
    throw new EngineError('PROVIDER_UNAVAILABLE', `pkcs11: cannot open the token (${ckrName(err)})`, {
      cause: err,
    })
  }
  return provider
}
