/**
 * Import tokens on a PKCS#11 token (Key Protect secure import, spec digest §4.5): the RSA key pair, the
 * RSA-OAEP mechanism, and the secure unwrap of root-key material inside the device.
 *
 * - The key pair: RSA-2048 generated on the token. The private key is a token object, CKA_PRIVATE,
 *   CKA_SENSITIVE, not CKA_EXTRACTABLE, not modifiable, usable for CKA_DECRYPT/CKA_UNWRAP with
 *   CKM_RSA_PKCS_OAEP only (CKA_ALLOWED_MECHANISMS), never for signing; labelled `ekms/it/v1/<catalogId>` and
 *   found by a random 16-byte CKA_ID (its `ref`). The public key is a session object, read once (modulus and
 *   exponent) into an SPKI PEM and destroyed: the catalog keeps the PEM.
 * - The unwrap: C_UnwrapKey with RSA-OAEP into an AES object with the root-key template (objects.ts), then
 *   the nonce is proven with that object (AES-GCM decrypt in the device) and compared in constant time. On
 *   any failure the object is destroyed before the error is thrown. The material is never in this process.
 */
import { createPublicKey, timingSafeEqual } from 'node:crypto'
import { EngineError, invalidField } from '../../core/errors.js'
import type { ImportAlgorithm, SealedMaterial } from '../../core/ports.js'
import { classify, ckrOf, clearOpenSslErrorQueue } from './errors.js'
import {
  CKS_RO_USER_FUNCTIONS,
  CKS_RW_USER_FUNCTIONS,
  type Handle,
  type ModuleEntry,
  type Pkcs11Js,
} from './module.js'
import { mechanismList, type Attribute } from './objects.js'

type P11 = ModuleEntry['p11']

/** PKCS#11 CKZ_DATA_SPECIFIED (pkcs11js exports no CKZ_ constant). */
const CKZ_DATA_SPECIFIED = 1
const IMPORT_LABEL_PREFIX = 'ekms/it/v1/'
const IMPORT_LABEL_RE = /^ekms\/it\/v1\/([0-9a-f-]{36})\/(\d{1,16})$/

/** The OAEP hash of an `encryptionAlgorithm`. */
export function oaepHashOf(alg: ImportAlgorithm): 'sha1' | 'sha256' {
  return alg === 'RSAES_OAEP_SHA_1' ? 'sha1' : 'sha256'
}

/**
 * The CKM_RSA_PKCS_OAEP mechanism of a hash: MGF1 with the same hash, the label `label` (empty by default:
 * Key Protect's secure import uses none; Wycheproof cases have labels).
 */
export function oaepMechanism(
  js: Pkcs11Js,
  hash: 'sha1' | 'sha256',
  label?: Buffer,
): {
  mechanism: number
  parameter: { type: number; hashAlg: number; mgf: number; source: number; sourceData?: Buffer }
} {
  return {
    mechanism: js.CKM_RSA_PKCS_OAEP,
    parameter: {
      type: js.CK_PARAMS_RSA_OAEP,
      hashAlg: hash === 'sha1' ? js.CKM_SHA_1 : js.CKM_SHA256,
      mgf: hash === 'sha1' ? js.CKG_MGF1_SHA1 : js.CKG_MGF1_SHA256,
      source: CKZ_DATA_SPECIFIED,
      ...(label === undefined || label.length === 0 ? {} : { sourceData: label }),
    },
  }
}

/** The private-key template of an import token (RSA-OAEP decrypt/unwrap only). */
export function importPrivateKeyTemplate(js: Pkcs11Js, label: string, id: Buffer): Attribute[] {
  return [
    { type: js.CKA_TOKEN, value: true },
    { type: js.CKA_PRIVATE, value: true },
    { type: js.CKA_SENSITIVE, value: true },
    { type: js.CKA_EXTRACTABLE, value: false },
    { type: js.CKA_DECRYPT, value: true },
    { type: js.CKA_UNWRAP, value: true },
    { type: js.CKA_SIGN, value: false },
    { type: js.CKA_SIGN_RECOVER, value: false },
    { type: js.CKA_DERIVE, value: false },
    { type: js.CKA_MODIFIABLE, value: false },
    { type: js.CKA_ALLOWED_MECHANISMS, value: mechanismList([js.CKM_RSA_PKCS_OAEP]) },
    { type: js.CKA_LABEL, value: label },
    { type: js.CKA_ID, value: id },
  ]
}

/** Generates the key pair on session `s`; returns the SPKI PEM of its public key. */
export function generateImportKeyPair(
  js: Pkcs11Js,
  p11: P11,
  s: Handle,
  req: { readonly catalogId: string; readonly createdAt: number },
  id: Buffer,
): string {
  const { publicKey, privateKey } = p11.C_GenerateKeyPair(
    s,
    { mechanism: js.CKM_RSA_PKCS_KEY_PAIR_GEN },
    [
      { type: js.CKA_TOKEN, value: false },
      { type: js.CKA_ENCRYPT, value: true },
      { type: js.CKA_VERIFY, value: false },
      { type: js.CKA_MODULUS_BITS, value: 2048 },
      { type: js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
    ],
    importPrivateKeyTemplate(js, `${IMPORT_LABEL_PREFIX}${req.catalogId}/${req.createdAt}`, id),
  )
  try {
    const [n, e] = p11.C_GetAttributeValue(s, publicKey, [
      { type: js.CKA_MODULUS },
      { type: js.CKA_PUBLIC_EXPONENT },
    ])
    if (n?.value === undefined || e?.value === undefined || n.value.length !== 256) {
      throw new EngineError('PROVIDER_ERROR', 'pkcs11: the import key pair has no 2048-bit modulus')
    }
    const pem = createPublicKey({
      key: { kty: 'RSA', n: n.value.toString('base64url'), e: e.value.toString('base64url') },
      format: 'jwk',
    }).export({ type: 'spki', format: 'pem' })
    return pem.toString()
  } catch (err) {
    p11.C_DestroyObject(s, privateKey)
    throw err
  } finally {
    p11.C_DestroyObject(s, publicKey)
  }
}

/** Handles of the import-token private keys with CKA_ID `id`. */
export function findImportKeys(js: Pkcs11Js, p11: P11, s: Handle, id: Buffer): Handle[] {
  p11.C_FindObjectsInit(s, [
    { type: js.CKA_CLASS, value: js.CKO_PRIVATE_KEY },
    { type: js.CKA_ID, value: id },
  ])
  try {
    return p11.C_FindObjects(s, 16)
  } finally {
    p11.C_FindObjectsFinal(s)
  }
}

/** The import-token private keys on the token, from their labels `ekms/it/v1/<catalogId>/<createdAt>`. */
export function listImportKeyPairs(
  js: Pkcs11Js,
  p11: P11,
  s: Handle,
): { ref: string; catalogId: string; createdAt: number }[] {
  p11.C_FindObjectsInit(s, [
    { type: js.CKA_CLASS, value: js.CKO_PRIVATE_KEY },
    { type: js.CKA_TOKEN, value: true },
  ])
  const handles: Handle[] = []
  try {
    for (;;) {
      const batch = p11.C_FindObjects(s, 256)
      if (batch.length === 0) break
      handles.push(...batch)
    }
  } finally {
    p11.C_FindObjectsFinal(s)
  }
  const out: { ref: string; catalogId: string; createdAt: number }[] = []
  for (const h of handles) {
    const [label, id] = p11.C_GetAttributeValue(s, h, [{ type: js.CKA_LABEL }, { type: js.CKA_ID }])
    const m = IMPORT_LABEL_RE.exec(label?.value?.toString('utf8') ?? '')
    const ref = id?.value?.toString('hex') ?? ''
    if (m === null || !/^[0-9a-f]{32}$/.test(ref)) continue
    out.push({ ref, catalogId: m[1] as string, createdAt: Number(m[2]) })
  }
  return out
}

/**
 * Device and session failures go to the session guard's recovery; anything else is about the caller's input.
 * Some devices (SoftHSM2) answer a bad OAEP payload and a lost token store with the same CKR_GENERAL_ERROR,
 * so the failure is the input's only while the session still answers, is logged in, and its token answers.
 */
function inputFailure(p11: P11, s: Handle, err: unknown, field: string, message: string): unknown {
  return isInputFailure(p11, s, err) ? invalidField(field, message) : err
}

/**
 * True when `err`, thrown by a PKCS#11 call on session `s`, is about the input rather than the device: not
 * an EngineError, not a session-class return value, and the session still answers, is logged in, and its
 * token answers (SoftHSM2 answers bad input and a lost token store with the same CKR_GENERAL_ERROR).
 */
export function isInputFailure(p11: P11, s: Handle, err: unknown): boolean {
  // The failed call may have left an error on the process's OpenSSL queue (errors.ts).
  clearOpenSslErrorQueue()
  if (err instanceof EngineError) return false
  if (classify(ckrOf(err)) === 'session') return false
  try {
    const info = p11.C_GetSessionInfo(s)
    p11.C_GetTokenInfo(info.slotID)
    return info.state === CKS_RO_USER_FUNCTIONS || info.state === CKS_RW_USER_FUNCTIONS
  } catch {
    return false
  }
}

/**
 * Unwraps `sealed` into a new object with `template` (RSA-OAEP under the token's private key), then proves
 * the nonce with it (`gcm` builds the AES-GCM mechanism). Returns the object's handle; on any failure the
 * object is destroyed and INVALID_FIELD_ERR (payload, or encryptedNonce) is thrown.
 */
export function unwrapSealed(
  js: Pkcs11Js,
  p11: P11,
  s: Handle,
  sealed: SealedMaterial,
  tokenId: Buffer,
  template: Attribute[],
  gcm: (iv: Buffer) => { mechanism: number; parameter: object },
): Handle {
  const [priv] = findImportKeys(js, p11, s, tokenId)
  if (priv === undefined) {
    throw new EngineError('IMPORT_TOKEN_NOT_FOUND_ERR', 'import token: its key pair is gone from the HSM')
  }
  let h: Handle
  try {
    h = p11.C_UnwrapKey(
      s,
      oaepMechanism(js, oaepHashOf(sealed.algorithm)),
      priv,
      sealed.encryptedMaterial,
      template,
    )
  } catch (err) {
    throw inputFailure(p11, s, err, 'payload', 'cannot be decrypted with the import token (RSA-OAEP)')
  }
  try {
    const enc = sealed.encryptedNonce
    if (sealed.iv.length !== 12 || enc.length !== sealed.nonce.length + 16) {
      throw invalidField('encryptedNonce', 'does not match the import token nonce')
    }
    p11.C_DecryptInit(s, gcm(sealed.iv) as never, h)
    const out = p11.C_Decrypt(s, enc, Buffer.alloc(enc.length))
    if (out.length !== sealed.nonce.length || !timingSafeEqual(out, sealed.nonce)) {
      throw invalidField('encryptedNonce', 'does not match the import token nonce')
    }
    return h
  } catch (err) {
    try {
      p11.C_DestroyObject(s, h)
    } catch {
      /* a broken session takes its objects, a token object is left for reconciliation */
    }
    throw inputFailure(p11, s, err, 'encryptedNonce', 'does not match the import token nonce')
  }
}
