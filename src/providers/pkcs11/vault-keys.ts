/**
 * Vault keys on a PKCS#11 token (the keys of the Azure-Key-Vault-compatible API; core/ports-vault-keys.ts):
 * their object templates, their lookup, and the operations run with them. Each function runs on one session
 * handed in by the provider's session guard.
 *
 * Object scheme (distinct from root keys, objects.ts, and import tokens, import-keys.ts):
 * - label `ekms/az/v1/<catalogId>`, a random 16-byte CKA_ID (the `ref`); every use looks the object up by
 *   CKA_ID and checks the label, so a root-key `ref` is never usable here;
 * - `oct-HSM`: an AES-256 token secret key, CKA_PRIVATE, CKA_SENSITIVE, not CKA_EXTRACTABLE, not
 *   modifiable, CKA_ENCRYPT/CKA_DECRYPT/CKA_WRAP/CKA_UNWRAP with CKA_ALLOWED_MECHANISMS = [AES-GCM,
 *   CKM_AES_KEY_WRAP]: no raw ECB/CBC, no derivation, no signing;
 * - `RSA-HSM`: an RSA token private key, CKA_PRIVATE, CKA_SENSITIVE, not CKA_EXTRACTABLE, not modifiable,
 *   CKA_DECRYPT only, CKA_ALLOWED_MECHANISMS = [CKM_RSA_PKCS_OAEP]; its public key is a session object read
 *   once (modulus, exponent) and destroyed: the catalog keeps the public key.
 *
 * SoftHSM2 2.6.1, measured: C_EncryptInit with CKM_AES_KEY_WRAP(_PAD) is CKR_MECHANISM_INVALID, so key wrap
 * runs as C_WrapKey / C_UnwrapKey of a temporary session generic-secret object holding the caller's bytes.
 * Its CKM_AES_KEY_WRAP matches RFC 3394 (OpenSSL's id-aes256-wrap) for lengths that are multiples of 8 and
 * silently zero-pads other lengths, and its CKM_AES_KEY_WRAP_PAD differs from RFC 5649 for lengths that are
 * not multiples of 8: only RFC 3394 on multiples of 8 is offered.
 */
import { EngineError, invalidField } from '../../core/errors.js'
import type { CreateVaultKeyRequest, RsaPublicKey, VaultKeyType } from '../../core/ports-vault-keys.js'
import type { GcmSealed } from '../../core/ports.js'
import { SecretBytes } from '../../core/secret-bytes.js'
import { isInputFailure, oaepMechanism } from './import-keys.js'
import type { Handle, ModuleEntry, Pkcs11Js } from './module.js'
import { mechanismList, parseMechanismList, type Attribute } from './objects.js'

type P11 = ModuleEntry['p11']

/** PKCS#11 CKM_AES_KEY_WRAP (RFC 3394); pkcs11js exports no constant for it. */
export const CKM_AES_KEY_WRAP = 0x2109
/** Prefix of every vault-key object's CKA_LABEL. */
export const VAULT_LABEL_PREFIX = 'ekms/az/v1/'

/** The CKA_LABEL of a vault-key object of catalog `catalogId`. */
export function vaultLabel(catalogId: string): string {
  return `${VAULT_LABEL_PREFIX}${catalogId}`
}

/** The common attributes of a vault-key object (private or secret key). */
function common(js: Pkcs11Js, label: string, id: Buffer): Attribute[] {
  return [
    { type: js.CKA_TOKEN, value: true },
    { type: js.CKA_PRIVATE, value: true },
    { type: js.CKA_SENSITIVE, value: true },
    { type: js.CKA_EXTRACTABLE, value: false },
    { type: js.CKA_SIGN, value: false },
    { type: js.CKA_DERIVE, value: false },
    { type: js.CKA_MODIFIABLE, value: false },
    { type: js.CKA_LABEL, value: label },
    { type: js.CKA_ID, value: id },
  ]
}

/** The template of an `oct-HSM` key (AES-GCM and AES key wrap only). */
export function vaultAesTemplate(js: Pkcs11Js, label: string, id: Buffer, gcm: number): Attribute[] {
  return [
    { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
    { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
    ...common(js, label, id),
    { type: js.CKA_ENCRYPT, value: true },
    { type: js.CKA_DECRYPT, value: true },
    { type: js.CKA_WRAP, value: true },
    { type: js.CKA_UNWRAP, value: true },
    { type: js.CKA_VERIFY, value: false },
    { type: js.CKA_ALLOWED_MECHANISMS, value: mechanismList([gcm, CKM_AES_KEY_WRAP]) },
  ]
}

/**
 * Creates the object of `req` on session `s` with CKA_ID `id`; returns the RSA public key of a pair.
 * @throws EngineError INVALID_FIELD_ERR (size, material)
 */
export function createVaultKeyObject(
  js: Pkcs11Js,
  p11: P11,
  s: Handle,
  req: CreateVaultKeyRequest,
  id: Buffer,
  gcm: number,
): RsaPublicKey | undefined {
  const label = vaultLabel(req.catalogId)
  if (req.kty === 'oct-HSM') {
    if (req.size !== 256) throw invalidField('key_size', 'must be 256 for oct-HSM keys')
    const template = vaultAesTemplate(js, label, id, gcm)
    if (req.material === undefined) {
      p11.C_GenerateKey(s, { mechanism: js.CKM_AES_KEY_GEN }, [
        ...template,
        { type: js.CKA_VALUE_LEN, value: 32 },
      ])
    } else {
      if (req.material.length !== 32) throw invalidField('key.k', 'must be 32 bytes (AES-256)')
      p11.C_CreateObject(s, [...template, { type: js.CKA_VALUE, value: req.material.bytes }])
    }
    return undefined
  }
  if (req.material !== undefined) throw invalidField('key', 'RSA key import is not supported')
  const { publicKey, privateKey } = p11.C_GenerateKeyPair(
    s,
    { mechanism: js.CKM_RSA_PKCS_KEY_PAIR_GEN },
    [
      { type: js.CKA_TOKEN, value: false },
      { type: js.CKA_ENCRYPT, value: true },
      { type: js.CKA_VERIFY, value: false },
      { type: js.CKA_MODULUS_BITS, value: req.size },
      { type: js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
    ],
    [
      ...common(js, label, id),
      { type: js.CKA_DECRYPT, value: true },
      { type: js.CKA_UNWRAP, value: false },
      { type: js.CKA_SIGN_RECOVER, value: false },
      { type: js.CKA_ALLOWED_MECHANISMS, value: mechanismList([js.CKM_RSA_PKCS_OAEP]) },
    ],
  )
  try {
    const [n, e] = p11.C_GetAttributeValue(s, publicKey, [
      { type: js.CKA_MODULUS },
      { type: js.CKA_PUBLIC_EXPONENT },
    ])
    if (n?.value === undefined || e?.value === undefined || n.value.length * 8 !== req.size) {
      throw new EngineError('PROVIDER_ERROR', `pkcs11: the RSA key pair has no ${req.size}-bit modulus`)
    }
    return { n: Buffer.from(n.value), e: Buffer.from(e.value) }
  } catch (err) {
    p11.C_DestroyObject(s, privateKey)
    throw err
  } finally {
    p11.C_DestroyObject(s, publicKey)
  }
}

/** Handles of the vault-key objects with CKA_ID `id` (of one class, or both when `kty` is undefined). */
export function findVaultKeys(
  js: Pkcs11Js,
  p11: P11,
  s: Handle,
  id: Buffer,
  kty: VaultKeyType | undefined,
): Handle[] {
  const classes = kty === undefined ? [js.CKO_SECRET_KEY, js.CKO_PRIVATE_KEY] : [classOf(js, kty)]
  const out: Handle[] = []
  for (const cls of classes) {
    p11.C_FindObjectsInit(s, [
      { type: js.CKA_CLASS, value: cls },
      { type: js.CKA_ID, value: id },
      { type: js.CKA_TOKEN, value: true },
    ])
    try {
      out.push(...p11.C_FindObjects(s, 16))
    } finally {
      p11.C_FindObjectsFinal(s)
    }
  }
  // The label check: objects of other schemes (root keys, import tokens) sharing a CKA_ID are not vault keys.
  return out.filter((h) => {
    const [label] = p11.C_GetAttributeValue(s, h, [{ type: js.CKA_LABEL }])
    return label?.value?.toString('utf8').startsWith(VAULT_LABEL_PREFIX) === true
  })
}

function classOf(js: Pkcs11Js, kty: VaultKeyType): number {
  return kty === 'oct-HSM' ? js.CKO_SECRET_KEY : js.CKO_PRIVATE_KEY
}

/**
 * The one vault-key object of `id` and `kty`.
 * @throws EngineError KEY_VERSION_MATERIAL_MISSING when there is none, PROVIDER_ERROR when it is duplicated
 */
export function vaultKeyHandle(js: Pkcs11Js, p11: P11, s: Handle, id: Buffer, kty: VaultKeyType): Handle {
  const [h, dup] = findVaultKeys(js, p11, s, id, kty)
  if (h === undefined) {
    // An empty search while the token store is away is a device failure, not a missing object (objects.ts).
    p11.C_GetTokenInfo(p11.C_GetSessionInfo(s).slotID)
    throw new EngineError('KEY_VERSION_MATERIAL_MISSING', 'pkcs11: the vault key object does not exist')
  }
  if (dup !== undefined)
    throw new EngineError('PROVIDER_ERROR', 'pkcs11: two vault key objects share one CKA_ID')
  return h
}

/** Splits AES-GCM output (ciphertext ‖ 16-byte tag), checking its length. */
export function splitGcm(out: Buffer, len: number, iv: Buffer): GcmSealed {
  if (out.length !== len + 16) throw new EngineError('PROVIDER_ERROR', 'pkcs11: AES-GCM output lacks its tag')
  return { iv, encrypted: Buffer.from(out.subarray(0, len)), tag: Buffer.from(out.subarray(len)) }
}

/** The template of the temporary session object a key wrap or unwrap passes the caller's bytes through. */
function transitTemplate(js: Pkcs11Js): Attribute[] {
  return [
    { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
    { type: js.CKA_KEY_TYPE, value: js.CKK_GENERIC_SECRET },
    { type: js.CKA_TOKEN, value: false },
    { type: js.CKA_SENSITIVE, value: false },
    { type: js.CKA_EXTRACTABLE, value: true },
    { type: js.CKA_ENCRYPT, value: false },
    { type: js.CKA_DECRYPT, value: false },
    { type: js.CKA_SIGN, value: false },
    { type: js.CKA_VERIFY, value: false },
    { type: js.CKA_WRAP, value: false },
    { type: js.CKA_UNWRAP, value: false },
    { type: js.CKA_DERIVE, value: false },
  ]
}

/** Checks a key length for RFC 3394 key wrap: 16 to 1024 bytes, a multiple of 8. */
export function checkKeyWrapLength(len: number, field: string, extra = 0): void {
  if (len < 16 + extra || len > 1024 + extra || len % 8 !== 0) {
    throw invalidField(field, `must be ${16 + extra} to ${1024 + extra} bytes, a multiple of 8 (RFC 3394)`)
  }
}

/** RFC 3394 key wrap of `key` under the AES vault key `h`, through a temporary session object. */
export function wrapWith(js: Pkcs11Js, p11: P11, s: Handle, h: Handle, key: SecretBytes): Buffer {
  checkKeyWrapLength(key.length, 'value')
  const transit = p11.C_CreateObject(s, [...transitTemplate(js), { type: js.CKA_VALUE, value: key.bytes }])
  try {
    return Buffer.from(
      p11.C_WrapKey(s, { mechanism: CKM_AES_KEY_WRAP }, h, transit, Buffer.alloc(key.length + 8)),
    )
  } finally {
    p11.C_DestroyObject(s, transit)
  }
}

/** RFC 3394 key unwrap of `wrapped` under the AES vault key `h`; UNWRAP_AAD_MISMATCH when it fails its check. */
export function unwrapWith(js: Pkcs11Js, p11: P11, s: Handle, h: Handle, wrapped: Buffer): SecretBytes {
  checkKeyWrapLength(wrapped.length, 'value', 8)
  let transit: Handle
  try {
    transit = p11.C_UnwrapKey(s, { mechanism: CKM_AES_KEY_WRAP }, h, wrapped, transitTemplate(js))
  } catch (err) {
    if (isInputFailure(p11, s, err)) throw integrityFailure()
    throw err
  }
  try {
    const [v] = p11.C_GetAttributeValue(s, transit, [{ type: js.CKA_VALUE }])
    if (v?.value?.length !== wrapped.length - 8) {
      v?.value?.fill(0)
      throw new EngineError('PROVIDER_ERROR', 'pkcs11: AES key unwrap returned an unexpected length')
    }
    return SecretBytes.adopt(v.value)
  } finally {
    p11.C_DestroyObject(s, transit)
  }
}

/** RSA-OAEP decryption with the RSA vault key `h`; UNWRAP_AAD_MISMATCH when the ciphertext is not valid. */
export function rsaDecryptWith(
  js: Pkcs11Js,
  p11: P11,
  s: Handle,
  h: Handle,
  hash: 'sha1' | 'sha256',
  ciphertext: Buffer,
): SecretBytes {
  p11.C_DecryptInit(s, oaepMechanism(js, hash), h)
  const out = Buffer.alloc(ciphertext.length)
  try {
    return SecretBytes.adopt(Buffer.from(p11.C_Decrypt(s, ciphertext, out)))
  } catch (err) {
    if (isInputFailure(p11, s, err)) throw integrityFailure()
    throw err
  } finally {
    out.fill(0)
  }
}

/** The error of a ciphertext that does not authenticate or decode under the key. */
export function integrityFailure(): EngineError {
  return new EngineError(
    'UNWRAP_AAD_MISMATCH',
    'value: the ciphertext does not decrypt under this key (altered, another key, or other parameters)',
    { target: { type: 'field', name: 'value' } },
  )
}

/** The protection attributes of a vault-key object (secret or private key), read back after creation. */
export function readVaultAttributes(
  js: Pkcs11Js,
  p11: P11,
  s: Handle,
  h: Handle,
): {
  token: boolean
  sensitive: boolean
  extractable: boolean
  derive: boolean
  modifiable: boolean
  allowedMechanisms: number[]
} {
  const v = p11.C_GetAttributeValue(s, h, [
    { type: js.CKA_TOKEN },
    { type: js.CKA_SENSITIVE },
    { type: js.CKA_EXTRACTABLE },
    { type: js.CKA_DERIVE },
    { type: js.CKA_MODIFIABLE },
    { type: js.CKA_ALLOWED_MECHANISMS },
  ])
  const b = (i: number): boolean => v[i]?.value?.[0] === 1
  return {
    token: b(0),
    sensitive: b(1),
    extractable: b(2),
    derive: b(3),
    modifiable: b(4),
    allowedMechanisms: parseMechanismList(v[5]?.value),
  }
}
