/**
 * The Azure providers' wrapped-DEK blobs, shared by the root-key provider (provider.ts) and the
 * synchronization source (sync-source.ts): one layout byte, then what Key Vault returned. The engine's AAD is
 * bound through its SHA-256: as A256GCM's additional authenticated data, or wrapped together with the DEK
 * (RSA-OAEP and AES key wrap bind no AAD of their own; both are not malleable, so another AAD, an altered
 * blob or another key fails the unwrap or the AAD check). Callers run these inside their error mapping
 * (`toAzureEngineError` with op `encrypt` / `decrypt`); the EngineErrors thrown here pass through it.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { CryptographyClient } from '@azure/keyvault-keys'
import { EngineError } from '../../core/errors.js'
import { SecretBytes } from '../../core/secret-bytes.js'

/** Blob layout 0x01: `0x01 ‖ iv (12) ‖ tag (16) ‖ ciphertext` — A256GCM under an `oct-HSM` key. */
export const BLOB_A256GCM = 0x01
/** Blob layout 0x02: `0x02 ‖ RSA-OAEP-256(DEK ‖ SHA-256(AAD))` under an `RSA-HSM` key. */
export const BLOB_RSA_OAEP_256 = 0x02
/** Blob layout 0x03: `0x03 ‖ RSA-OAEP(DEK ‖ SHA-256(AAD))` (SHA-1 OAEP) under an `RSA-HSM` key. */
export const BLOB_RSA_OAEP = 0x03
/** Blob layout 0x04: `0x04 ‖ A256KW(DEK ‖ SHA-256(AAD))` (RFC 3394) under an `oct-HSM` key with only wrap ops. */
export const BLOB_A256KW = 0x04

/** The algorithms a blob can be made with. */
export type AzureBlobAlgorithm = 'A256GCM' | 'A256KW' | 'RSA-OAEP-256' | 'RSA-OAEP'

const IV_LENGTH = 12
const TAG_LENGTH = 16
const AAD_HASH_LENGTH = 32

/** What the SDK's crypto calls take: the caller's signal and the request timeout. */
export interface AzureCallOptions {
  abortSignal?: AbortSignal
  requestOptions: { timeout: number }
}

function aadHash(aad: Buffer): Buffer {
  return createHash('sha256').update(aad).digest()
}

function mismatch(): EngineError {
  return new EngineError(
    'UNWRAP_AAD_MISMATCH',
    'azure-kv decrypt: the ciphertext does not authenticate under this key and AAD',
  )
}

/**
 * Wraps `plaintext` under the client's key version with `alg`, binding `aad`.
 * @throws EngineError PROVIDER_UNSUPPORTED (a DEK length A256KW cannot take), PROVIDER_ERROR (a response of
 * the wrong shape); the SDK's errors as they are
 */
export async function sealBlob(
  c: CryptographyClient,
  alg: AzureBlobAlgorithm,
  plaintext: SecretBytes,
  aad: Buffer,
  o: AzureCallOptions,
): Promise<Buffer> {
  if (alg === 'A256GCM') {
    const out = await c.encrypt(
      { algorithm: 'A256GCM', plaintext: plaintext.bytes, additionalAuthenticatedData: aadHash(aad) },
      o,
    )
    const iv = out.iv
    const tag = out.authenticationTag
    if (iv?.length !== IV_LENGTH || tag?.length !== TAG_LENGTH || out.result.length !== plaintext.length)
      throw new EngineError('PROVIDER_ERROR', 'azure-kv encrypt: unexpected A256GCM response')
    return Buffer.concat([Buffer.of(BLOB_A256GCM), iv, tag, out.result])
  }
  if (alg === 'A256KW' && plaintext.length % 8 !== 0)
    throw new EngineError(
      'PROVIDER_UNSUPPORTED',
      'azure-kv encrypt: A256KW wraps DEKs whose length is a multiple of 8 bytes',
    )
  const inner = Buffer.concat([plaintext.bytes, aadHash(aad)])
  try {
    const out = await c.wrapKey(alg, inner, o)
    const layout = alg === 'A256KW' ? BLOB_A256KW : alg === 'RSA-OAEP-256' ? BLOB_RSA_OAEP_256 : BLOB_RSA_OAEP
    if (out.result.length === 0)
      throw new EngineError('PROVIDER_ERROR', 'azure-kv encrypt: empty wrapKey response')
    return Buffer.concat([Buffer.of(layout), out.result])
  } finally {
    inner.fill(0)
  }
}

/**
 * Unwraps a blob of {@link sealBlob} (its layout byte says how) and checks the AAD.
 * @throws EngineError UNWRAP_AAD_MISMATCH (another AAD, an altered blob, an unknown layout); the SDK's
 * errors as they are
 */
export async function openBlob(
  c: CryptographyClient,
  blob: Buffer,
  aad: Buffer,
  o: AzureCallOptions,
): Promise<SecretBytes> {
  const layout = blob[0]
  if (layout === BLOB_A256GCM) {
    if (blob.length < 1 + IV_LENGTH + TAG_LENGTH) throw mismatch()
    const out = await c.decrypt(
      {
        algorithm: 'A256GCM',
        iv: blob.subarray(1, 1 + IV_LENGTH),
        authenticationTag: blob.subarray(1 + IV_LENGTH, 1 + IV_LENGTH + TAG_LENGTH),
        ciphertext: blob.subarray(1 + IV_LENGTH + TAG_LENGTH),
        additionalAuthenticatedData: aadHash(aad),
      },
      o,
    )
    const s = SecretBytes.copyOf(out.result)
    out.result.fill(0)
    return s
  }
  const alg =
    layout === BLOB_RSA_OAEP_256
      ? 'RSA-OAEP-256'
      : layout === BLOB_RSA_OAEP
        ? 'RSA-OAEP'
        : layout === BLOB_A256KW
          ? 'A256KW'
          : undefined
  if (alg === undefined || blob.length < 2) throw mismatch()
  const out = await c.unwrapKey(alg, blob.subarray(1), o)
  const inner = out.result
  try {
    if (inner.length < AAD_HASH_LENGTH) throw mismatch()
    const bound = inner.subarray(inner.length - AAD_HASH_LENGTH)
    if (!timingSafeEqual(bound, aadHash(aad))) throw mismatch()
    return SecretBytes.copyOf(inner.subarray(0, inner.length - AAD_HASH_LENGTH))
  } finally {
    inner.fill(0)
  }
}
