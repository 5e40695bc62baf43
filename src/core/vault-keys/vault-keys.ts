/**
 * Vault keys: the keys of the Azure-Key-Vault-compatible API, with Key Vault's rules (Managed HSM semantics):
 * named keys with versions, each version with its own attributes (enabled, `key_ops`, tags, `nbf`, `exp`);
 * the latest version is the last created; soft delete, recover and purge act on the whole key; operations
 * run inside the device (AES-GCM with the caller's AAD, AES key wrap, RSA-OAEP decryption).
 *
 * A kind of key of its own (core/ports-vault-keys.ts): this service reads and writes only the vault-key role
 * of the catalog and the vault-key methods of the backend, never the engine's root keys; the engine never
 * reads vault keys.
 */
import { constants, createPublicKey, publicEncrypt, randomBytes } from 'node:crypto'
import { EngineError, invalidField } from '../errors.js'
import type {
  VaultKeyBackend,
  VaultKeyOp,
  VaultKeyRecord,
  VaultKeyStore,
  VaultKeyType,
  VaultKeyVersionPatch,
  VaultKeyVersionRecord,
} from '../ports-vault-keys.js'
import type { SecretBytes } from '../secret-bytes.js'

/** Every operation of a key type (what `key_ops` may hold, and the default). */
export const VAULT_KEY_OPS: Readonly<Record<VaultKeyType, readonly VaultKeyOp[]>> = {
  'oct-HSM': ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
  'RSA-HSM': ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
}

/** A key name: Key Vault's `^[0-9a-zA-Z-]{1,127}$`. */
const NAME_RE = /^[0-9a-zA-Z-]{1,127}$/
const VERSION_RE = /^[0-9a-fA-F]{32}$/

/** A key version with the key it belongs to. */
export interface VaultKeyView {
  readonly key: VaultKeyRecord
  readonly version: VaultKeyVersionRecord
}

/** Attributes given at creation, import or rotation. */
export interface VaultKeyAttributes {
  readonly keyOps?: readonly VaultKeyOp[] | undefined
  readonly tags?: Readonly<Record<string, string>> | undefined
  readonly enabled?: boolean | undefined
  readonly notBefore?: number | undefined
  readonly expires?: number | undefined
}

/** Options of {@link VaultKeys}. */
export interface VaultKeysOptions {
  readonly backend: VaultKeyBackend
  readonly store: VaultKeyStore
  readonly clock?: { now(): number }
  /** Days a soft-deleted key stays recoverable (Key Vault: 7 to 90, default 90). */
  readonly retentionDays?: number
}

/** The result of an AES-GCM encryption. */
export interface VaultGcmResult {
  readonly version: VaultKeyVersionRecord
  readonly ciphertext: Buffer
  readonly iv: Buffer | undefined
  readonly tag: Buffer | undefined
}

/** The algorithms of a Key Vault key operation this engine runs, by key type. */
export type VaultAlgorithm = 'A256GCM' | 'A256KW' | 'RSA-OAEP' | 'RSA-OAEP-256'

const DAY_MS = 86_400_000

/** The vault-key service. One per catalog and backend; every method takes the tenant (instance). */
export class VaultKeys {
  readonly #backend: VaultKeyBackend
  readonly #store: VaultKeyStore
  readonly #clock: { now(): number }
  /** Days a soft-deleted key stays recoverable. */
  readonly retentionDays: number

  constructor(options: VaultKeysOptions) {
    this.#backend = options.backend
    this.#store = options.store
    this.#clock = options.clock ?? { now: () => Date.now() }
    this.retentionDays = options.retentionDays ?? 90
    if (!Number.isInteger(this.retentionDays) || this.retentionDays < 7 || this.retentionDays > 90)
      throw new EngineError('CONFIG_INVALID', 'vault keys: retentionDays must be 7 to 90')
  }

  /**
   * Creates a key, or a new version of an existing one (Key Vault's create on an existing name).
   * @throws EngineError INVALID_FIELD_ERR, KEY_DELETED_ERR (the name is soft-deleted), PROVIDER_*
   */
  async create(
    instance: string,
    name: string,
    req: { readonly kty: VaultKeyType; readonly size: number | undefined } & VaultKeyAttributes,
  ): Promise<VaultKeyView> {
    checkName(name)
    const size = req.size ?? (req.kty === 'oct-HSM' ? 256 : 2048)
    return this.#addVersion(instance, name, req.kty, size, req, undefined)
  }

  /**
   * Imports AES-256 material as a new `oct-HSM` key version (created in the device from the bytes).
   * @throws EngineError INVALID_FIELD_ERR, KEY_DELETED_ERR, PROVIDER_*
   */
  async importKey(
    instance: string,
    name: string,
    material: SecretBytes,
    attrs: VaultKeyAttributes,
  ): Promise<VaultKeyView> {
    checkName(name)
    if (material.length !== 32) throw invalidField('key.k', 'must be 32 bytes (an AES-256 key)')
    return this.#addVersion(instance, name, 'oct-HSM', 256, attrs, material)
  }

  async #addVersion(
    instance: string,
    name: string,
    kty: VaultKeyType,
    size: number,
    attrs: VaultKeyAttributes,
    material: SecretBytes | undefined,
  ): Promise<VaultKeyView> {
    const keyOps = checkOps(kty, attrs.keyOps)
    const tags = checkTags(attrs.tags)
    const existing = await this.#store.getVaultKey(instance, name)
    if (existing?.deleted !== undefined) throw deletedConflict(name)
    const { ref, publicKey } = await this.#backend.createVaultKey({
      catalogId: this.#store.catalogId,
      kty,
      size,
      material,
    })
    const now = this.#clock.now()
    const version: VaultKeyVersionRecord = {
      instance,
      name: existing?.name ?? name,
      version: randomBytes(16).toString('hex'),
      seq: 0, // assigned by the store
      kty,
      size,
      ref,
      publicKey,
      imported: material !== undefined,
      enabled: attrs.enabled ?? true,
      keyOps,
      tags,
      notBefore: attrs.notBefore,
      expires: attrs.expires,
      createdAt: now,
      updatedAt: now,
    }
    let added: 'added' | 'deleted'
    try {
      added = await this.#store.addVaultKeyVersion(version)
    } catch (err) {
      await this.#backend.destroyVaultKey(ref).catch(() => undefined)
      throw err
    }
    if (added === 'deleted') {
      await this.#backend.destroyVaultKey(ref).catch(() => undefined)
      throw deletedConflict(name)
    }
    return this.get(instance, name, version.version)
  }

  /**
   * A live key's version (the current one when `version` is undefined or empty).
   * @throws EngineError KEY_NOT_FOUND_ERR (no such key or version, or the key is soft-deleted)
   */
  async get(instance: string, name: string, version?: string): Promise<VaultKeyView> {
    const key = await this.#liveKey(instance, name)
    return { key, version: await this.#version(key, version) }
  }

  /** Live keys by name (their current versions), `limit` at most after the name `after`. */
  async list(instance: string, after: string | undefined, limit: number): Promise<VaultKeyView[]> {
    const rows = await this.#store.listVaultKeys(instance, { deleted: false, after, limit })
    return rows.map((r) => ({ key: r.key, version: r.current }))
  }

  /** Soft-deleted keys by name, as {@link list}. */
  async listDeleted(instance: string, after: string | undefined, limit: number): Promise<VaultKeyView[]> {
    const rows = await this.#store.listVaultKeys(instance, { deleted: true, after, limit })
    return rows.map((r) => ({ key: r.key, version: r.current }))
  }

  /**
   * A live key's versions in creation order after `afterSeq`.
   * @throws EngineError KEY_NOT_FOUND_ERR
   */
  async listVersions(
    instance: string,
    name: string,
    afterSeq: number,
    limit: number,
  ): Promise<VaultKeyView[]> {
    const key = await this.#liveKey(instance, name)
    const rows = await this.#store.listVaultKeyVersions(instance, key.name, { afterSeq, limit })
    return rows.map((version) => ({ key, version }))
  }

  /**
   * Updates a version's attributes (the current one when `version` is undefined or empty).
   * @throws EngineError KEY_NOT_FOUND_ERR, INVALID_FIELD_ERR
   */
  async update(
    instance: string,
    name: string,
    version: string | undefined,
    patch: Omit<VaultKeyVersionPatch, 'updatedAt'>,
  ): Promise<VaultKeyView> {
    const { key, version: v } = await this.get(instance, name, version)
    const keyOps = patch.keyOps === undefined ? undefined : checkOps(v.kty, patch.keyOps)
    const tags = patch.tags === undefined ? undefined : checkTags(patch.tags)
    const updated = await this.#store.updateVaultKeyVersion(instance, key.name, v.version, {
      ...patch,
      ...(keyOps === undefined ? {} : { keyOps }),
      ...(tags === undefined ? {} : { tags }),
      updatedAt: this.#clock.now(),
    })
    if (updated === undefined) throw notFound(name)
    return { key, version: updated }
  }

  /**
   * A new version of the key with the current version's type, size, `key_ops` and tags; it becomes current.
   * @throws EngineError KEY_NOT_FOUND_ERR, PROVIDER_*
   */
  async rotate(instance: string, name: string): Promise<VaultKeyView> {
    const { version: cur } = await this.get(instance, name)
    if (cur.imported)
      throw invalidField('name', 'an imported key cannot be rotated in the HSM; import a new version')
    return this.#addVersion(
      instance,
      cur.name,
      cur.kty,
      cur.size,
      { keyOps: cur.keyOps, tags: cur.tags },
      undefined,
    )
  }

  /**
   * Soft-deletes a key (all its versions): recoverable until its scheduled purge date.
   * @throws EngineError KEY_NOT_FOUND_ERR
   */
  async delete(instance: string, name: string): Promise<VaultKeyView> {
    const key = await this.#liveKey(instance, name)
    const deletedAt = this.#clock.now()
    const deleted = { deletedAt, purgeAt: deletedAt + this.retentionDays * DAY_MS }
    if (!(await this.#store.setVaultKeyDeleted(instance, key.name, deleted))) throw notFound(name)
    return this.getDeleted(instance, name)
  }

  /**
   * A soft-deleted key with its current version.
   * @throws EngineError KEY_NOT_FOUND_ERR (no such key, or it is not deleted)
   */
  async getDeleted(instance: string, name: string): Promise<VaultKeyView> {
    checkName(name)
    const key = await this.#store.getVaultKey(instance, name)
    if (key?.deleted === undefined) throw notFound(name, 'deleted key')
    return { key, version: await this.#version(key, undefined) }
  }

  /**
   * Recovers a soft-deleted key.
   * @throws EngineError KEY_NOT_FOUND_ERR
   */
  async recover(instance: string, name: string): Promise<VaultKeyView> {
    const { key } = await this.getDeleted(instance, name)
    if (!(await this.#store.setVaultKeyDeleted(instance, key.name, undefined)))
      throw notFound(name, 'deleted key')
    return this.get(instance, name)
  }

  /**
   * Purges a soft-deleted key: its device objects are destroyed, then its catalog rows removed (a purge
   * interrupted between the two is finished by purging again: destroying is idempotent).
   * @throws EngineError KEY_NOT_FOUND_ERR, PROVIDER_*
   */
  async purge(instance: string, name: string): Promise<void> {
    const { key } = await this.getDeleted(instance, name)
    for (let after = 0; ;) {
      const page = await this.#store.listVaultKeyVersions(instance, key.name, { afterSeq: after, limit: 100 })
      for (const v of page) await this.#backend.destroyVaultKey(v.ref)
      const last = page.at(-1)
      if (last === undefined || page.length < 100) break
      after = last.seq
    }
    if (!(await this.#store.purgeVaultKey(instance, key.name))) throw notFound(name, 'deleted key')
  }

  /**
   * Encrypts `plaintext` with a version: AES-GCM (`A256GCM`, the IV made by the device, the caller's AAD) for
   * `oct-HSM`; RSA-OAEP / RSA-OAEP-256 with the public key for `RSA-HSM`.
   * @throws EngineError KEY_NOT_FOUND_ERR, KEY_ACTION_INVALID_STATE_ERR (disabled, not yet valid, expired, not
   * allowed by key_ops), INVALID_FIELD_ERR, PROVIDER_UNSUPPORTED (algorithm)
   */
  async encrypt(
    instance: string,
    name: string,
    version: string | undefined,
    req: { readonly alg: string; readonly plaintext: Buffer; readonly aad: Buffer | undefined },
  ): Promise<VaultGcmResult> {
    const v = await this.#usable(instance, name, version, 'encrypt')
    const alg = algorithmOf(v, req.alg, 'encrypt')
    if (alg === 'A256GCM') {
      const s = await this.#backend.vaultEncrypt(v.ref, req.plaintext, req.aad ?? Buffer.alloc(0))
      return { version: v, ciphertext: s.encrypted, iv: s.iv, tag: s.tag }
    }
    return { version: v, ciphertext: this.#rsaEncrypt(v, alg, req.plaintext), iv: undefined, tag: undefined }
  }

  /**
   * Decrypts with a version (AES-GCM with `iv`, `tag` and the AAD of the encryption; RSA-OAEP in the device).
   * @throws EngineError UNWRAP_AAD_MISMATCH (does not authenticate), KEY_NOT_FOUND_ERR,
   * KEY_ACTION_INVALID_STATE_ERR, INVALID_FIELD_ERR, PROVIDER_UNSUPPORTED
   */
  async decrypt(
    instance: string,
    name: string,
    version: string | undefined,
    req: {
      readonly alg: string
      readonly ciphertext: Buffer
      readonly iv: Buffer | undefined
      readonly tag: Buffer | undefined
      readonly aad: Buffer | undefined
    },
  ): Promise<{ version: VaultKeyVersionRecord; plaintext: SecretBytes }> {
    const v = await this.#usable(instance, name, version, 'decrypt')
    const alg = algorithmOf(v, req.alg, 'decrypt')
    if (alg === 'A256GCM') {
      if (req.iv === undefined) throw invalidField('iv', 'is required for A256GCM')
      if (req.tag === undefined) throw invalidField('tag', 'is required for A256GCM')
      const plaintext = await this.#backend.vaultDecrypt(
        v.ref,
        { iv: req.iv, encrypted: req.ciphertext, tag: req.tag },
        req.aad ?? Buffer.alloc(0),
      )
      return { version: v, plaintext }
    }
    return { version: v, plaintext: await this.#rsaDecrypt(v, alg, req.ciphertext) }
  }

  /**
   * Wraps key bytes: AES key wrap (`A256KW`) for `oct-HSM`, RSA-OAEP with the public key for `RSA-HSM`.
   * @throws EngineError as {@link encrypt}
   */
  async wrapKey(
    instance: string,
    name: string,
    version: string | undefined,
    req: { readonly alg: string; readonly key: SecretBytes },
  ): Promise<{ version: VaultKeyVersionRecord; wrapped: Buffer }> {
    const v = await this.#usable(instance, name, version, 'wrapKey')
    const alg = algorithmOf(v, req.alg, 'wrapKey')
    if (alg === 'A256KW') return { version: v, wrapped: await this.#backend.vaultWrapKey(v.ref, req.key) }
    return { version: v, wrapped: this.#rsaEncrypt(v, alg, req.key.bytes) }
  }

  /**
   * Unwraps key bytes wrapped by {@link wrapKey} (or by a client holding the public key).
   * @throws EngineError as {@link decrypt}
   */
  async unwrapKey(
    instance: string,
    name: string,
    version: string | undefined,
    req: { readonly alg: string; readonly wrapped: Buffer },
  ): Promise<{ version: VaultKeyVersionRecord; key: SecretBytes }> {
    const v = await this.#usable(instance, name, version, 'unwrapKey')
    const alg = algorithmOf(v, req.alg, 'unwrapKey')
    if (alg === 'A256KW') return { version: v, key: await this.#backend.vaultUnwrapKey(v.ref, req.wrapped) }
    return { version: v, key: await this.#rsaDecrypt(v, alg, req.wrapped) }
  }

  #rsaEncrypt(v: VaultKeyVersionRecord, alg: VaultAlgorithm, data: Buffer): Buffer {
    const hash = oaepHash(alg)
    if (!this.#backend.vaultKeyCapabilities.oaepHashes.includes(hash)) throw unsupported(alg)
    const pk = v.publicKey
    if (pk === undefined) throw new EngineError('INTERNAL_ERROR', 'vault key: RSA version without public key')
    const key = createPublicKey({
      key: { kty: 'RSA', n: pk.n.toString('base64url'), e: pk.e.toString('base64url') },
      format: 'jwk',
    })
    const max = pk.n.length - 2 * (hash === 'sha1' ? 20 : 32) - 2
    if (data.length > max)
      throw invalidField('value', `must be at most ${max} bytes for ${alg} with this key`)
    return publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, data)
  }

  async #rsaDecrypt(v: VaultKeyVersionRecord, alg: VaultAlgorithm, data: Buffer): Promise<SecretBytes> {
    const hash = oaepHash(alg)
    if (!this.#backend.vaultKeyCapabilities.oaepHashes.includes(hash)) throw unsupported(alg)
    if (data.length !== v.size / 8) throw invalidField('value', `must be ${v.size / 8} bytes for this key`)
    return this.#backend.vaultRsaDecrypt(v.ref, hash, data)
  }

  async #liveKey(instance: string, name: string): Promise<VaultKeyRecord> {
    checkName(name)
    const key = await this.#store.getVaultKey(instance, name)
    if (key === undefined || key.deleted !== undefined) throw notFound(name)
    return key
  }

  async #version(key: VaultKeyRecord, version: string | undefined): Promise<VaultKeyVersionRecord> {
    const wanted = version === undefined || version === '' ? undefined : version.toLowerCase()
    if (wanted !== undefined && !VERSION_RE.test(wanted)) throw notFound(`${key.name}/${version ?? ''}`)
    const v = await this.#store.getVaultKeyVersion(key.instance, key.name, wanted)
    if (v === undefined) throw notFound(`${key.name}/${version ?? ''}`)
    return v
  }

  /** The version, checked for the operation: enabled, allowed by key_ops, and (to protect) within nbf/exp. */
  async #usable(
    instance: string,
    name: string,
    version: string | undefined,
    op: VaultKeyOp,
  ): Promise<VaultKeyVersionRecord> {
    const { version: v } = await this.get(instance, name, version)
    if (!v.enabled) throw refused(`Operation ${op} is not allowed on a disabled key.`)
    if (!v.keyOps.includes(op)) throw refused(`Operation ${op} is not permitted on this key (key_ops).`)
    if (op === 'encrypt' || op === 'wrapKey') {
      const now = this.#clock.now()
      if (v.notBefore !== undefined && now < v.notBefore)
        throw refused(`Operation ${op} is not allowed before nbf.`)
      if (v.expires !== undefined && now >= v.expires)
        throw refused(`Operation ${op} is not allowed on an expired key.`)
    }
    return v
  }
}

function checkName(name: string): void {
  if (!NAME_RE.test(name)) throw invalidField('name', 'must be 1-127 letters, digits and dashes')
}

function checkOps(kty: VaultKeyType, ops: readonly VaultKeyOp[] | undefined): VaultKeyOp[] {
  const all = VAULT_KEY_OPS[kty]
  if (ops === undefined) return [...all]
  for (const op of ops) {
    if (!all.includes(op)) throw invalidField('key_ops', `${op} is not supported for ${kty} keys`)
  }
  return [...new Set(ops)]
}

function checkTags(tags: Readonly<Record<string, string>> | undefined): Record<string, string> {
  if (tags === undefined) return {}
  const entries = Object.entries(tags)
  if (entries.length > 15) throw invalidField('tags', 'at most 15 tags')
  for (const [k, v] of entries) {
    if (typeof v !== 'string' || k.length > 512 || v.length > 256)
      throw invalidField('tags', 'names up to 512 and values up to 256 characters, values strings')
  }
  return Object.fromEntries(entries)
}

function algorithmOf(v: VaultKeyVersionRecord, alg: string, op: VaultKeyOp): VaultAlgorithm {
  const gcm = op === 'encrypt' || op === 'decrypt'
  if (v.kty === 'oct-HSM') {
    if (gcm && alg === 'A256GCM') return 'A256GCM'
    if (!gcm && (alg === 'A256KW' || alg === 'CKM_AES_KEY_WRAP')) return 'A256KW'
  } else if (alg === 'RSA-OAEP' || alg === 'RSA-OAEP-256') {
    return alg
  }
  throw unsupported(alg, `${op} with a ${v.kty} key`)
}

function oaepHash(alg: VaultAlgorithm): 'sha1' | 'sha256' {
  return alg === 'RSA-OAEP' ? 'sha1' : 'sha256'
}

function unsupported(alg: string, what = 'this HSM'): EngineError {
  return new EngineError('PROVIDER_UNSUPPORTED', `alg: ${alg.slice(0, 40)} is not supported for ${what}`, {
    target: { type: 'field', name: 'alg' },
  })
}

function notFound(name: string, what = 'key'): EngineError {
  return new EngineError(
    'KEY_NOT_FOUND_ERR',
    `A ${what} with (name/id) ${name.slice(0, 200)} was not found in this key vault.`,
  )
}

function refused(message: string): EngineError {
  return new EngineError('KEY_ACTION_INVALID_STATE_ERR', message)
}

function deletedConflict(name: string): EngineError {
  return new EngineError(
    'KEY_DELETED_ERR',
    `Key ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.`,
  )
}
