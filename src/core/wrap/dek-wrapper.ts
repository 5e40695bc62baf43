/**
 * DekWrapper: the only code that turns (root-key version, DEK, AAD) into ciphertext v1 and back. Single
 * calls (wrap.ts) and batches (execute-batch.ts, also in worker threads) both go through it, so a rule about
 * the wrapped form — the HSM AAD, the output shape, the mechanism — has one implementation. AES-GCM or
 * opaque (KMS) is decided once, from the provider's capabilities, when the wrapper is made.
 */
import { EngineError } from '../errors.js'
import {
  appendAad,
  encodeGcmCiphertext,
  encodeOpaqueCiphertext,
  hsmAadPrefix,
  Mechanism,
  type MechanismId,
  type ParsedCiphertext,
} from '../format/ciphertext.js'
import type { CallOptions, GcmSealed, OutputOptions, RootKeyProvider } from '../ports.js'
import type { SecretBytes } from '../secret-bytes.js'

/** A root-key version as the wrapper needs it: the provider's reference and the ciphertext header. */
export interface WrapTarget {
  readonly providerRef: string
  readonly header: Buffer
  /** {@link hsmAadPrefix} for a 32-byte DEK, when the caller keeps one (the common case). */
  readonly aadPrefix32?: Buffer
  /** The whole HSM AAD for a 32-byte DEK and an empty caller AAD, when the caller keeps it. */
  readonly aadEmpty32?: Buffer
}

export interface DekWrapper {
  /** The mechanism byte of the ciphertexts this wrapper writes (0x01 AES-GCM, 0x10 opaque). */
  readonly mechanism: MechanismId
  /** Whether each wrap is one AES-GCM invocation under the root-key version (the usage meter counts them). */
  readonly metered: boolean
  /**
   * Wraps `dek` under `v` with the HSM AAD built from `instance` and `aad`: ciphertext v1 bytes. No async
   * frame of its own. Callers meter first ({@link metered}).
   */
  wrap(
    instance: string,
    v: WrapTarget,
    dek: SecretBytes,
    aad: readonly string[],
    opts?: CallOptions,
  ): Promise<Buffer>
  /** {@link wrap} with the whole HSM AAD already built (batches build it once per version and DEK length). */
  wrapWithHsmAad(v: WrapTarget, dek: SecretBytes, hsmAad: Buffer, opts?: CallOptions): Promise<Buffer>
  /**
   * Unwraps a parsed ciphertext of version `v`; the DEK is exactly as long as the one wrapped.
   * @throws EngineError CIPHERTEXT_INVALID (another mechanism), UNWRAP_AAD_MISMATCH, PROVIDER_ERROR
   */
  unwrap(
    instance: string,
    v: WrapTarget,
    parsed: ParsedCiphertext,
    aad: readonly string[],
    opts?: OutputOptions,
  ): Promise<SecretBytes>
  /** {@link unwrap} with the whole HSM AAD already built. */
  unwrapWithHsmAad(
    v: WrapTarget,
    parsed: ParsedCiphertext,
    hsmAad: Buffer,
    opts?: OutputOptions,
  ): Promise<SecretBytes>
}

/** The HSM AAD of a DEK of `dekLength` bytes under `v`, using the cached 32-byte prefix when it fits. */
export function hsmAad(v: WrapTarget, dekLength: number, instance: string, aad: readonly string[]): Buffer {
  // Providers only read the AAD, so the cached one can be handed out as is.
  if (dekLength === 32 && aad.length === 0 && v.aadEmpty32 !== undefined) return v.aadEmpty32
  const prefix =
    dekLength === 32 && v.aadPrefix32 !== undefined
      ? v.aadPrefix32
      : hsmAadPrefix(v.header, dekLength, instance)
  return appendAad(prefix, aad)
}

/**
 * The wrapper for `provider`.
 * @throws EngineError CONFIG_INVALID (an opaque provider without encryptOpaque/decryptOpaque)
 */
export function createDekWrapper(provider: RootKeyProvider): DekWrapper {
  if (provider.capabilities.ciphertext !== 'opaque') return new GcmWrapper(provider)
  const encryptOpaque = provider.encryptOpaque?.bind(provider)
  const decryptOpaque = provider.decryptOpaque?.bind(provider)
  if (encryptOpaque === undefined || decryptOpaque === undefined) {
    throw new EngineError(
      'CONFIG_INVALID',
      `provider: ${provider.name} declares opaque ciphertexts without encryptOpaque/decryptOpaque`,
    )
  }
  return new OpaqueWrapper(provider, encryptOpaque, decryptOpaque)
}

/** AES-GCM in the provider (PKCS#11): the provider returns IV, ciphertext and tag; we frame them. */
class GcmWrapper implements DekWrapper {
  readonly mechanism = Mechanism.AES_GCM
  readonly metered = true
  readonly #p: RootKeyProvider

  constructor(provider: RootKeyProvider) {
    this.#p = provider
  }

  wrap(
    instance: string,
    v: WrapTarget,
    dek: SecretBytes,
    aad: readonly string[],
    opts?: CallOptions,
  ): Promise<Buffer> {
    const len = dek.length
    return this.#p
      .encrypt(v.providerRef, dek, hsmAad(v, len, instance, aad), opts)
      .then((s) => framed(v, len, s))
  }

  wrapWithHsmAad(v: WrapTarget, dek: SecretBytes, aad: Buffer, opts?: CallOptions): Promise<Buffer> {
    const len = dek.length
    return this.#p.encrypt(v.providerRef, dek, aad, opts).then((s) => framed(v, len, s))
  }

  unwrap(
    instance: string,
    v: WrapTarget,
    parsed: ParsedCiphertext,
    aad: readonly string[],
    opts?: OutputOptions,
  ): Promise<SecretBytes> {
    checkMechanism(parsed, this.mechanism, this.#p.name)
    return this.#p
      .decrypt(v.providerRef, parsed, hsmAad(v, parsed.dekLength, instance, aad), opts)
      .then((dek) => checkDek(dek, parsed))
  }

  unwrapWithHsmAad(
    v: WrapTarget,
    parsed: ParsedCiphertext,
    aad: Buffer,
    opts?: OutputOptions,
  ): Promise<SecretBytes> {
    checkMechanism(parsed, this.mechanism, this.#p.name)
    return this.#p.decrypt(v.providerRef, parsed, aad, opts).then((dek) => checkDek(dek, parsed))
  }
}

type EncryptOpaque = NonNullable<RootKeyProvider['encryptOpaque']>
type DecryptOpaque = NonNullable<RootKeyProvider['decryptOpaque']>

/** A KMS that returns its own ciphertext blob (AWS KMS, Azure Key Vault); it bounds its own key usage. */
class OpaqueWrapper implements DekWrapper {
  readonly mechanism = Mechanism.OPAQUE
  readonly metered = false
  readonly #name: string
  readonly #encrypt: EncryptOpaque
  readonly #decrypt: DecryptOpaque

  constructor(provider: RootKeyProvider, encrypt: EncryptOpaque, decrypt: DecryptOpaque) {
    this.#name = provider.name
    this.#encrypt = encrypt
    this.#decrypt = decrypt
  }

  wrap(
    instance: string,
    v: WrapTarget,
    dek: SecretBytes,
    aad: readonly string[],
    opts?: CallOptions,
  ): Promise<Buffer> {
    return this.wrapWithHsmAad(v, dek, hsmAad(v, dek.length, instance, aad), opts)
  }

  wrapWithHsmAad(v: WrapTarget, dek: SecretBytes, aad: Buffer, opts?: CallOptions): Promise<Buffer> {
    const len = dek.length
    return this.#encrypt(v.providerRef, dek, aad, opts).then((blob) =>
      encodeOpaqueCiphertext(v.header, len, blob),
    )
  }

  unwrap(
    instance: string,
    v: WrapTarget,
    parsed: ParsedCiphertext,
    aad: readonly string[],
    opts?: OutputOptions,
  ): Promise<SecretBytes> {
    checkMechanism(parsed, this.mechanism, this.#name)
    return this.unwrapWithHsmAad(v, parsed, hsmAad(v, parsed.dekLength, instance, aad), opts)
  }

  unwrapWithHsmAad(
    v: WrapTarget,
    parsed: ParsedCiphertext,
    aad: Buffer,
    opts?: CallOptions,
  ): Promise<SecretBytes> {
    checkMechanism(parsed, this.mechanism, this.#name)
    return this.#decrypt(v.providerRef, parsed.encrypted, aad, opts).then((dek) => checkDek(dek, parsed))
  }
}

/**
 * Precondition: the ciphertext was written by a provider of this engine's kind.
 * @throws EngineError CIPHERTEXT_INVALID
 */
export function checkMechanism(parsed: ParsedCiphertext, mechanism: MechanismId, provider: string): void {
  if (parsed.mechanism !== mechanism) {
    throw new EngineError(
      'CIPHERTEXT_INVALID',
      `ciphertext: mechanism ${parsed.mechanism} is not the one of provider ${provider}`,
      { target: { type: 'field', name: 'ciphertext' } },
    )
  }
}

/** Serialises a provider's GCM output as ciphertext v1, after checking its shape. */
function framed(v: WrapTarget, dekLength: number, sealed: GcmSealed): Buffer {
  /* Postcondition: GCM output is as long as the input, with a 16-byte tag and a 12-byte IV. */
  if (sealed.encrypted.length !== dekLength || sealed.tag.length !== 16 || sealed.iv.length !== 12) {
    throw new EngineError('PROVIDER_ERROR', 'provider: AES-GCM output has an unexpected shape')
  }
  return encodeGcmCiphertext(v.header, sealed.iv, sealed.encrypted, sealed.tag)
}

/** Postcondition of a decryption: the DEK is as long as its encryption. */
function checkDek(dek: SecretBytes, parsed: ParsedCiphertext): SecretBytes {
  if (dek.length !== parsed.dekLength) {
    dek.zeroize()
    throw new EngineError('PROVIDER_ERROR', 'provider: decryption output has an unexpected length')
  }
  return dek
}
