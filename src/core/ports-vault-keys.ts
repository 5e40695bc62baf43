/**
 * Ports of vault keys: the keys of the Azure-Key-Vault-compatible API (`src/http/azurekv`), a kind of key of
 * their own beside the engine's root keys. A vault key is used directly by its caller (AES-GCM with the
 * caller's AAD, AES key wrap, RSA-OAEP decryption), which a root key never is: root keys only wrap DEKs in
 * the engine's ciphertext format. The two kinds never meet:
 *
 * - in the catalog, vault keys have tables of their own ({@link VaultKeyStore}, migration 13); no engine
 *   operation (Key Protect, AWS KMS, the library) reads them, and the vault-key service reads nothing else;
 * - in the device, their objects carry a label scheme of their own (PKCS#11: `ekms/az/v1/<catalogId>`), which
 *   the provider checks on every use, and root-key lookups refuse objects without the root-key label.
 *
 * Implemented by `store/sqlite` (the store role) and `providers/pkcs11` (the backend).
 */
import type { SecretBytes } from './secret-bytes.js'
import type { CallOptions, GcmSealed } from './ports.js'

/** The two key types the API serves: `oct-HSM` (an HSM AES key) and `RSA-HSM` (an HSM RSA key pair). */
export type VaultKeyType = 'oct-HSM' | 'RSA-HSM'

/** The operations a vault key can be allowed (Key Vault `key_ops`) that this engine implements. */
export type VaultKeyOp = 'encrypt' | 'decrypt' | 'wrapKey' | 'unwrapKey'

/** An RSA public key, big-endian unsigned integers. */
export interface RsaPublicKey {
  readonly n: Buffer
  readonly e: Buffer
}

/** A new vault-key object in the device. */
export interface CreateVaultKeyRequest {
  /** The catalog the key belongs to (recorded on the object, so orphans can be told apart per catalog). */
  readonly catalogId: string
  readonly kty: VaultKeyType
  /** Bits: 256 for `oct-HSM` (AES-256); 2048, 3072 or 4096 for `RSA-HSM`. */
  readonly size: number
  /** `oct-HSM` only: imported AES key bytes. Absent: the key is generated inside the device. */
  readonly material?: SecretBytes | undefined
}

/** What the backend can do with vault keys (the device's abilities; SoftHSM2 2.6.1 in docs/azure-kv-api.md). */
export interface VaultKeyCapabilities {
  /** RSA modulus sizes the device generates. */
  readonly rsaSizes: readonly number[]
  /** The RSA-OAEP hashes the device decrypts with (SoftHSM2 2.6.1: `sha1` only). */
  readonly oaepHashes: readonly ('sha1' | 'sha256')[]
  /** AES key wrap (RFC 3394) of caller-supplied key bytes. */
  readonly aesKeyWrap: boolean
}

/**
 * The device side of vault keys. Every object it makes is sensitive and never extractable; AES keys are
 * usable only with AES-GCM and AES key wrap, RSA private keys only with RSA-OAEP decryption (no raw
 * ECB/CBC, no signing, no derivation). A `ref` of a root-key version is refused by every method here, and a
 * vault-key `ref` by the root-key methods of {@link RootKeyProvider}.
 */
export interface VaultKeyBackend {
  readonly vaultKeyCapabilities: VaultKeyCapabilities
  /**
   * Creates (or imports) one vault-key version object and returns its opaque `ref`, with the public key of
   * an RSA pair (whose private half stays in the device).
   * @throws EngineError INVALID_FIELD_ERR (size, material), PROVIDER_UNSUPPORTED, PROVIDER_UNAVAILABLE, PROVIDER_ERROR
   */
  createVaultKey(
    req: CreateVaultKeyRequest,
    opts?: CallOptions,
  ): Promise<{ readonly ref: string; readonly publicKey: RsaPublicKey | undefined }>
  /** Destroys a vault-key object. Destroying one that no longer exists succeeds. */
  destroyVaultKey(ref: string, opts?: CallOptions): Promise<void>
  /**
   * AES-GCM encryption under an `oct-HSM` key with the caller's AAD (possibly empty); the 96-bit IV comes from
   * the device's RNG, the tag is 128 bits.
   * @throws EngineError KEY_VERSION_MATERIAL_MISSING (no such vault-key object), PROVIDER_UNAVAILABLE, PROVIDER_ERROR
   */
  vaultEncrypt(ref: string, plaintext: Buffer, aad: Buffer, opts?: CallOptions): Promise<GcmSealed>
  /**
   * AES-GCM decryption under an `oct-HSM` key.
   * @throws EngineError UNWRAP_AAD_MISMATCH (the tag does not verify), KEY_VERSION_MATERIAL_MISSING, PROVIDER_UNAVAILABLE, PROVIDER_ERROR
   */
  vaultDecrypt(ref: string, sealed: GcmSealed, aad: Buffer, opts?: CallOptions): Promise<SecretBytes>
  /**
   * AES key wrap (RFC 3394, default IV) of `key` (16 to 1024 bytes, a multiple of 8) under an `oct-HSM` key.
   * @throws EngineError INVALID_FIELD_ERR (length), PROVIDER_UNSUPPORTED, KEY_VERSION_MATERIAL_MISSING
   */
  vaultWrapKey(ref: string, key: SecretBytes, opts?: CallOptions): Promise<Buffer>
  /**
   * AES key unwrap (RFC 3394).
   * @throws EngineError UNWRAP_AAD_MISMATCH (the integrity check fails), INVALID_FIELD_ERR (length), PROVIDER_UNSUPPORTED
   */
  vaultUnwrapKey(ref: string, wrapped: Buffer, opts?: CallOptions): Promise<SecretBytes>
  /**
   * RSA-OAEP decryption (MGF1 with the same hash, no label) with an `RSA-HSM` private key.
   * @throws EngineError UNWRAP_AAD_MISMATCH (not a valid OAEP ciphertext for this key), PROVIDER_UNSUPPORTED (hash), KEY_VERSION_MATERIAL_MISSING
   */
  vaultRsaDecrypt(
    ref: string,
    hash: 'sha1' | 'sha256',
    ciphertext: Buffer,
    opts?: CallOptions,
  ): Promise<SecretBytes>
}

/** A vault key (a name), its versions apart. Times in ms since the epoch. */
export interface VaultKeyRecord {
  readonly instance: string
  /** As created (Key Vault names are matched case-insensitively). */
  readonly name: string
  readonly createdAt: number
  /** The version id of the latest version (the last one created or rotated to). */
  readonly currentVersion: string
  /** Soft deletion; undefined while the key is live. */
  readonly deleted: { readonly deletedAt: number; readonly purgeAt: number } | undefined
}

/** One version of a vault key: its object in the device and its own attributes (as in Key Vault). */
export interface VaultKeyVersionRecord {
  readonly instance: string
  readonly name: string
  /** 32 lower-case hex digits. */
  readonly version: string
  /** Creation order within the key, from 1. */
  readonly seq: number
  readonly kty: VaultKeyType
  readonly size: number
  /** The backend's reference of the object. */
  readonly ref: string
  readonly publicKey: RsaPublicKey | undefined
  readonly imported: boolean
  readonly enabled: boolean
  readonly keyOps: readonly VaultKeyOp[]
  readonly tags: Readonly<Record<string, string>>
  /** `nbf`, ms; undefined: none. */
  readonly notBefore: number | undefined
  /** `exp`, ms; undefined: none. */
  readonly expires: number | undefined
  readonly createdAt: number
  readonly updatedAt: number
}

/** What an update of a version may change; `null` clears `notBefore` / `expires`. */
export interface VaultKeyVersionPatch {
  readonly enabled?: boolean
  readonly keyOps?: readonly VaultKeyOp[]
  readonly tags?: Readonly<Record<string, string>>
  readonly notBefore?: number | null
  readonly expires?: number | null
  readonly updatedAt: number
}

/** The vault-key role of the catalog (migration 13). Names compare case-insensitively. */
export interface VaultKeyStore {
  /** The catalog's id (recorded on device objects). */
  readonly catalogId: string
  /**
   * Adds a version and makes it the key's current one, creating the key on its first version.
   * `deleted`: the key is soft-deleted, nothing was written.
   */
  addVaultKeyVersion(v: VaultKeyVersionRecord): Promise<'added' | 'deleted'>
  getVaultKey(instance: string, name: string): Promise<VaultKeyRecord | undefined>
  /** A version by id, or the current one when `version` is undefined. */
  getVaultKeyVersion(
    instance: string,
    name: string,
    version: string | undefined,
  ): Promise<VaultKeyVersionRecord | undefined>
  /** Keys (live or soft-deleted) by name, with their current version, after `after` (exclusive). */
  listVaultKeys(
    instance: string,
    query: { readonly deleted: boolean; readonly after: string | undefined; readonly limit: number },
  ): Promise<{ readonly key: VaultKeyRecord; readonly current: VaultKeyVersionRecord }[]>
  /** A key's versions in creation order, after `afterSeq` (exclusive). */
  listVaultKeyVersions(
    instance: string,
    name: string,
    query: { readonly afterSeq: number; readonly limit: number },
  ): Promise<VaultKeyVersionRecord[]>
  /** Updates one version; undefined when it does not exist. */
  updateVaultKeyVersion(
    instance: string,
    name: string,
    version: string,
    patch: VaultKeyVersionPatch,
  ): Promise<VaultKeyVersionRecord | undefined>
  /**
   * Soft-deletes (`deleted` given) a live key, or recovers (`undefined`) a deleted one. False when the key
   * does not exist or is not in the state the change starts from.
   */
  setVaultKeyDeleted(
    instance: string,
    name: string,
    deleted: { readonly deletedAt: number; readonly purgeAt: number } | undefined,
  ): Promise<boolean>
  /** Removes a soft-deleted key and all its versions (their device objects are the caller's). */
  purgeVaultKey(instance: string, name: string): Promise<boolean>
}
