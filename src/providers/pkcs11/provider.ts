/**
 * Root keys in a PKCS#11 token (SoftHSM2 for development and tests, Luna in production): the
 * {@link RootKeyProvider} port surface.
 *
 * The module follows graphene's module/session/object/template split:
 * - `module.ts`: the one owner of each PKCS#11 library (load, C_Initialize, login, C_Finalize);
 * - `recovery.ts`: this provider's sessions ({@link SessionGuard}) and their recovery after HSM loss;
 * - `objects.ts`: the object scheme of root-key versions (template, label, CKA_ID `ref`) and the handle cache;
 * - this file: the RootKeyProvider methods, AES-GCM wrap/unwrap and their postconditions.
 *
 * DEKs are wrapped with AES-GCM through C_EncryptInit/C_Encrypt, the AAD bound, the 128-bit tag length
 * always set (pkcs11js sends ulTagBits=0 otherwise and SoftHSM2 then emits no tag: RESULTS gotcha 3).
 *
 * HOT PATH: encrypt, decrypt and generateRandom (benchmarked against raw pkcs11js). Each allocates one
 * closure and calls {@link SessionGuard.op}, whose fast path runs it synchronously on an idle session;
 * encrypt/decrypt then make one Map lookup in {@link KeyHandles.handle}. That is the same work as before
 * the split into three files; keep any new per-call work (await, promise, closure, lookup) off it.
 */
import { EngineError } from '../../core/errors.js'
import type {
  CallOptions,
  ImportAlgorithm,
  SealedMaterial,
  OutputOptions,
  CreateVersionRequest,
  GcmSealed,
  ProviderCapabilities,
  ProviderHealth,
  ProviderObject,
  RootKeyProvider,
} from '../../core/ports.js'
import type {
  CreateVaultKeyRequest,
  RsaPublicKey,
  VaultKeyBackend,
  VaultKeyCapabilities,
} from '../../core/ports-vault-keys.js'
import { SecretBytes } from '../../core/secret-bytes.js'
import { ckrName, ckrOf, ckrValues, clearOpenSslErrorQueue } from './errors.js'
import { acquireModule, pkcs11js, type Handle, type ModuleEntry } from './module.js'
import {
  findSecretKeys,
  listVersionObjects,
  readAttributes,
  refToId,
  versionLabel,
  versionTemplate,
  type KeyHandles,
  type Pkcs11ObjectAttributes,
} from './objects.js'
import {
  findImportKeys,
  generateImportKeyPair,
  listImportKeyPairs,
  oaepHashOf,
  unwrapSealed,
} from './import-keys.js'
import { loadProfile, type Pkcs11Profile } from './profile.js'
import { SessionGuard } from './recovery.js'
import {
  createVaultKeyObject,
  findVaultKeys,
  integrityFailure,
  readVaultAttributes,
  rsaDecryptWith,
  splitGcm,
  unwrapWith,
  vaultKeyHandle,
  wrapWith,
} from './vault-keys.js'

export type { Pkcs11ObjectAttributes } from './objects.js'

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

const ZERO_IV = Buffer.alloc(12)

/** A {@link RootKeyProvider} over one PKCS#11 token. Create it with {@link createPkcs11Provider}. */
export class Pkcs11Provider implements RootKeyProvider, VaultKeyBackend {
  readonly name: string
  readonly capabilities: ProviderCapabilities
  readonly vaultKeyCapabilities: VaultKeyCapabilities
  readonly profile: Pkcs11Profile
  readonly #js = pkcs11js()
  readonly #entry: ModuleEntry
  readonly #label: string
  /** Same value as the guard's: read on every encrypt/decrypt, so kept here rather than behind a getter. */
  readonly #sync: boolean
  readonly #authCodes: Set<number>
  readonly #guard: SessionGuard
  /** `this.#guard.keys`, held directly so the hot path loads one field, not two. */
  readonly #keys: KeyHandles

  /** @internal use {@link createPkcs11Provider} */
  constructor(options: Pkcs11ProviderOptions, profile: Pkcs11Profile, entry: ModuleEntry) {
    this.profile = profile
    this.name = `pkcs11:${profile.name}`
    const importTokens: ImportAlgorithm[] = []
    if (profile.oaepHashes.includes('sha256')) importTokens.push('RSAES_OAEP_SHA_256')
    if (profile.oaepHashes.includes('sha1')) importTokens.push('RSAES_OAEP_SHA_1')
    this.capabilities = { importMaterial: true, importLengths: [16, 24, 32], importTokens }
    this.vaultKeyCapabilities = {
      rsaSizes: [2048, 3072, 4096],
      oaepHashes: [...profile.oaepHashes],
      aesKeyWrap: true,
    }
    this.#entry = entry
    this.#label = options.tokenLabel
    this.#sync = (options.callMode ?? profile.callMode) === 'sync'
    this.#authCodes = ckrValues(profile.authFailureCodes)
    this.#guard = new SessionGuard(this.#js, entry, {
      tokenLabel: options.tokenLabel,
      pin: options.pin,
      sync: this.#sync,
      sessionKeyCopy: options.sessionKeyCopy ?? profile.sessionKeyCopy,
      maxSessions: options.maxSessions ?? profile.maxSessions,
      attempts: options.retry?.attempts ?? 3,
      baseDelayMs: options.retry?.baseDelayMs ?? 20,
      reinitializeOn: ckrValues(profile.recovery.reinitializeOn),
      recovery: profile.recovery,
    })
    this.#keys = this.#guard.keys
  }

  /** Opens sessions, logs in and checks the mechanisms; called once by {@link createPkcs11Provider}. */
  connect(): void {
    this.#guard.attach()
    const p11 = this.#entry.p11
    const js = this.#js
    let info
    try {
      info = p11.C_GetMechanismInfo(this.#guard.slot, this.profile.mechanisms.aesGcm)
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

  /** Open sessions in the pool (not counting the anchor session). */
  get sessionsOpen(): number {
    return this.#guard.sessionsOpen
  }

  // ------------------------------------------------------------ RootKeyProvider

  async createVersion(req: CreateVersionRequest, opts: CallOptions = {}): Promise<string> {
    const js = this.#js
    const rnd = await this.generateRandom(16, opts)
    const id = rnd.exportCopy() // CKA_ID is not secret
    rnd.zeroize()
    const ref = id.toString('hex')
    const gcm = this.profile.mechanisms.aesGcm
    const template = versionTemplate(js, versionLabel(req), id, gcm)
    const material = req.material
    const sealed = req.sealed
    if (sealed !== undefined) this.#checkAlgorithm(sealed.algorithm)
    await this.#guard.op(
      'create root key version',
      (s) => {
        const p11 = this.#entry.p11
        if (sealed !== undefined) {
          // Unwrapped inside the token with the root-key template; the nonce proven there (import-keys.ts).
          unwrapSealed(js, p11, s, sealed, refToId(sealed.tokenRef), template, (iv) =>
            this.#gcm(iv, Buffer.alloc(0)),
          )
        } else if (material === undefined) {
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
    /* Postcondition: usable only with the profile's AES-GCM, for encrypt/decrypt, and copyable for the session copy. */
    if (
      attrs.allowedMechanisms.length !== 1 ||
      attrs.allowedMechanisms[0] !== gcm ||
      attrs.derive ||
      attrs.wrap ||
      attrs.unwrap ||
      !attrs.copyable
    ) {
      await this.destroyVersion(ref)
      throw new EngineError(
        'PROVIDER_ERROR',
        'pkcs11: the token did not keep CKA_ALLOWED_MECHANISMS / CKA_DERIVE / CKA_COPYABLE as asked',
      )
    }
    return ref
  }

  async createImportKeyPair(
    req: { readonly catalogId: string; readonly createdAt: number },
    opts: CallOptions = {},
  ): Promise<{ ref: string; publicKeyPem: string }> {
    const rnd = await this.generateRandom(16, opts)
    const id = rnd.exportCopy() // CKA_ID is not secret
    rnd.zeroize()
    const publicKeyPem = await this.#guard.op(
      'create import key pair',
      (s) => generateImportKeyPair(this.#js, this.#entry.p11, s, req, id),
      opts,
    )
    return { ref: id.toString('hex'), publicKeyPem }
  }

  async destroyImportKeyPair(ref: string, opts: CallOptions = {}): Promise<void> {
    const id = refToId(ref)
    await this.#guard.op(
      'destroy import key pair',
      (s) => {
        for (const h of findImportKeys(this.#js, this.#entry.p11, s, id))
          this.#entry.p11.C_DestroyObject(s, h)
      },
      opts,
    )
  }

  async listImportKeyPairs(
    opts: CallOptions = {},
  ): Promise<{ ref: string; catalogId: string; createdAt: number }[]> {
    return this.#guard.op(
      'list import key pairs',
      (s) => listImportKeyPairs(this.#js, this.#entry.p11, s),
      opts,
    )
  }

  async matchesSealedMaterial(ref: string, sealed: SealedMaterial, opts: CallOptions = {}): Promise<boolean> {
    this.#checkAlgorithm(sealed.algorithm)
    const js = this.#js
    const gcm = this.profile.mechanisms.aesGcm
    // A session object: GCM decrypt only, gone with the session even if the destroy below never runs.
    const template = versionTemplate(js, 'ekms/import-check', Buffer.alloc(16), gcm)
      .filter((a) => a.type !== js.CKA_TOKEN && a.type !== js.CKA_ENCRYPT)
      .concat([
        { type: js.CKA_TOKEN, value: false },
        { type: js.CKA_ENCRYPT, value: false },
      ])
    const probe = SecretBytes.adopt(Buffer.alloc(16))
    const aad = Buffer.from('envelope-kms/material-check/v1', 'ascii')
    const sealedProbe = await this.encrypt(ref, probe, aad, opts)
    return this.#guard.op(
      'check imported material',
      (s) => {
        const p11 = this.#entry.p11
        const h = unwrapSealed(js, p11, s, sealed, refToId(sealed.tokenRef), template, (iv) =>
          this.#gcm(iv, Buffer.alloc(0)),
        )
        try {
          p11.C_DecryptInit(s, this.#gcm(sealedProbe.iv, aad), h)
          p11.C_Decrypt(s, Buffer.concat([sealedProbe.encrypted, sealedProbe.tag]), Buffer.alloc(32))
          return true
        } catch {
          return false
        } finally {
          p11.C_DestroyObject(s, h)
        }
      },
      opts,
    )
  }

  #checkAlgorithm(alg: ImportAlgorithm): void {
    if (!this.profile.oaepHashes.includes(oaepHashOf(alg))) {
      throw new EngineError(
        'PROVIDER_UNSUPPORTED',
        `encryptionAlgorithm: ${alg} is not supported by the ${this.profile.name} token (profile oaepHashes)`,
        { target: { type: 'field', name: 'encryptionAlgorithm' } },
      )
    }
  }

  async destroyVersion(ref: string, opts: CallOptions = {}): Promise<void> {
    const id = refToId(ref)
    await this.#guard.op(
      'destroy root key version',
      (s) => {
        const p11 = this.#entry.p11
        this.#keys.forget(ref)
        for (const h of findSecretKeys(this.#js, p11, s, [{ type: this.#js.CKA_ID, value: id }]))
          p11.C_DestroyObject(s, h)
      },
      opts,
    )
  }

  // HOT PATH (encrypt, decrypt, generateRandom): see the file header.

  encrypt(ref: string, plaintext: SecretBytes, aad: Buffer, opts: CallOptions = {}): Promise<GcmSealed> {
    return this.#guard.op('C_Encrypt', (s) => this.#encryptOn(s, ref, plaintext, aad), opts)
  }

  decrypt(ref: string, sealed: GcmSealed, aad: Buffer, opts: OutputOptions = {}): Promise<SecretBytes> {
    return this.#guard.op('C_Decrypt', (s) => this.#decryptOn(s, ref, sealed, aad, opts.output), opts)
  }

  #encryptOn(s: Handle, ref: string, plaintext: SecretBytes, aad: Buffer): GcmSealed | Promise<GcmSealed> {
    const p11 = this.#entry.p11
    const len = plaintext.length
    const key = this.#keys.handle(s, ref)
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
    const key = this.#keys.handle(s, ref)
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
    return this.#guard.op(
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
    return this.#guard.op('list objects', (s) => listVersionObjects(this.#js, this.#entry.p11, s), opts)
  }

  /**
   * Whether the token can serve now: C_GetTokenInfo on its slot (SoftHSM2 answers it from its token store,
   * so a lost store shows), with the profile's recovery when it fails. Cached for one second, single-flight.
   */
  health(): Promise<ProviderHealth> {
    return this.#guard.health()
  }

  async close(): Promise<void> {
    await this.#guard.close()
  }

  // ------------------------------------------------------------ VaultKeyBackend (vault-keys.ts)

  async createVaultKey(
    req: CreateVaultKeyRequest,
    opts: CallOptions = {},
  ): Promise<{ ref: string; publicKey: RsaPublicKey | undefined }> {
    if (req.kty === 'RSA-HSM' && !this.vaultKeyCapabilities.rsaSizes.includes(req.size)) {
      throw new EngineError(
        'INVALID_FIELD_ERR',
        `key_size: must be one of ${this.vaultKeyCapabilities.rsaSizes.join(', ')}`,
        {
          target: { type: 'field', name: 'key_size' },
        },
      )
    }
    const rnd = await this.generateRandom(16, opts)
    const id = rnd.exportCopy() // CKA_ID is not secret
    rnd.zeroize()
    const publicKey = await this.#guard.op(
      'create vault key',
      (s) => createVaultKeyObject(this.#js, this.#entry.p11, s, req, id, this.profile.mechanisms.aesGcm),
      opts,
    )
    const ref = id.toString('hex')
    /* Postcondition: the object is sensitive, not extractable, a token object, restricted as asked. */
    const attrs = await this.#guard.op('inspect vault key', (s) => {
      const [h] = findVaultKeys(this.#js, this.#entry.p11, s, id, req.kty)
      return h === undefined ? undefined : readVaultAttributes(this.#js, this.#entry.p11, s, h)
    })
    const mechs = req.kty === 'oct-HSM' ? 2 : 1
    if (
      attrs === undefined ||
      !attrs.sensitive ||
      attrs.extractable ||
      !attrs.token ||
      attrs.derive ||
      attrs.modifiable ||
      attrs.allowedMechanisms.length !== mechs
    ) {
      await this.destroyVaultKey(ref)
      throw new EngineError(
        'PROVIDER_ERROR',
        'pkcs11: the token did not keep the vault key attributes as asked',
      )
    }
    return { ref, publicKey }
  }

  async destroyVaultKey(ref: string, opts: CallOptions = {}): Promise<void> {
    const id = refToId(ref)
    await this.#guard.op(
      'destroy vault key',
      (s) => {
        for (const h of findVaultKeys(this.#js, this.#entry.p11, s, id, undefined))
          this.#entry.p11.C_DestroyObject(s, h)
      },
      opts,
    )
  }

  async vaultEncrypt(
    ref: string,
    plaintext: Buffer,
    aad: Buffer,
    opts: CallOptions = {},
  ): Promise<GcmSealed> {
    const id = refToId(ref)
    return this.#guard.op(
      'vault encrypt',
      (s) => {
        const p11 = this.#entry.p11
        const h = vaultKeyHandle(this.#js, p11, s, id, 'oct-HSM')
        const iv = p11.C_GenerateRandom(s, Buffer.alloc(12))
        p11.C_EncryptInit(s, this.#gcm(iv, aad), h)
        return splitGcm(
          p11.C_Encrypt(s, plaintext, Buffer.alloc(plaintext.length + 16)),
          plaintext.length,
          iv,
        )
      },
      opts,
    )
  }

  async vaultDecrypt(
    ref: string,
    sealed: GcmSealed,
    aad: Buffer,
    opts: CallOptions = {},
  ): Promise<SecretBytes> {
    const id = refToId(ref)
    return this.#guard.op(
      'vault decrypt',
      (s) => {
        const p11 = this.#entry.p11
        const h = vaultKeyHandle(this.#js, p11, s, id, 'oct-HSM')
        if (sealed.iv.length !== 12 || sealed.tag.length !== 16) throw integrityFailure()
        p11.C_DecryptInit(s, this.#gcm(sealed.iv, aad), h)
        const len = sealed.encrypted.length
        const out = Buffer.alloc(len + 16)
        try {
          const r = p11.C_Decrypt(s, Buffer.concat([sealed.encrypted, sealed.tag]), out)
          return SecretBytes.adopt(Buffer.from(r))
        } catch (err) {
          clearOpenSslErrorQueue()
          const mapped = this.#decryptFailure(s, err)
          throw mapped instanceof EngineError ? integrityFailure() : mapped
        } finally {
          out.fill(0)
        }
      },
      opts,
    )
  }

  async vaultWrapKey(ref: string, key: SecretBytes, opts: CallOptions = {}): Promise<Buffer> {
    const id = refToId(ref)
    return this.#guard.op(
      'vault wrap key',
      (s) =>
        wrapWith(
          this.#js,
          this.#entry.p11,
          s,
          vaultKeyHandle(this.#js, this.#entry.p11, s, id, 'oct-HSM'),
          key,
        ),
      opts,
    )
  }

  async vaultUnwrapKey(ref: string, wrapped: Buffer, opts: CallOptions = {}): Promise<SecretBytes> {
    const id = refToId(ref)
    return this.#guard.op(
      'vault unwrap key',
      (s) =>
        unwrapWith(
          this.#js,
          this.#entry.p11,
          s,
          vaultKeyHandle(this.#js, this.#entry.p11, s, id, 'oct-HSM'),
          wrapped,
        ),
      opts,
    )
  }

  async vaultRsaDecrypt(
    ref: string,
    hash: 'sha1' | 'sha256',
    ciphertext: Buffer,
    opts: CallOptions = {},
  ): Promise<SecretBytes> {
    if (!this.profile.oaepHashes.includes(hash)) {
      throw new EngineError(
        'PROVIDER_UNSUPPORTED',
        `alg: RSA-OAEP with ${hash} is not supported by the ${this.profile.name} token (profile oaepHashes)`,
        { target: { type: 'field', name: 'alg' } },
      )
    }
    const id = refToId(ref)
    return this.#guard.op(
      'vault RSA decrypt',
      (s) =>
        rsaDecryptWith(
          this.#js,
          this.#entry.p11,
          s,
          vaultKeyHandle(this.#js, this.#entry.p11, s, id, 'RSA-HSM'),
          hash,
          ciphertext,
        ),
      opts,
    )
  }

  // ------------------------------------------------------------ PKCS#11 specifics

  /**
   * Reads a root-key version's security attributes back from the token (for audits and tests).
   * @throws EngineError PROVIDER_ERROR when the object does not exist
   */
  async inspectVersion(ref: string): Promise<Pkcs11ObjectAttributes> {
    const js = this.#js
    const id = refToId(ref)
    return this.#guard.op('inspect object', (s) => {
      const [h] = findSecretKeys(js, this.#entry.p11, s, [{ type: js.CKA_ID, value: id }])
      if (h === undefined)
        throw new EngineError('PROVIDER_ERROR', 'pkcs11: root key version object not found')
      return readAttributes(js, this.#entry.p11, s, h)
    })
  }

  /** Attributes of the session copy used for a version, if any (tests check it stays sensitive). */
  async inspectSessionCopy(ref: string): Promise<Pkcs11ObjectAttributes | undefined> {
    return this.#guard.op('inspect copy', (s) => {
      this.#keys.handle(s, ref)
      const copy = this.#keys.copyOf(ref)
      return copy === undefined ? undefined : readAttributes(this.#js, this.#entry.p11, s, copy)
    })
  }

  /** The module generation (bumped by each re-initialisation); for tests and diagnostics. */
  get generation(): number {
    return this.#entry.generation
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
