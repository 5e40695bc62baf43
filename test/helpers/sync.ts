/**
 * Test wiring of key synchronization with real sources: AES keys made directly on a SoftHSM2 token through
 * raw pkcs11js (as an HSM administrator would), and a pkcs11 connection to that token.
 */
import type * as P11 from 'pkcs11js'
import type { ConnectionInput } from '../../src/index.js'
import { SOFTHSM_MODULE, env } from './engine.js'
import { js, rawModule, slotByLabel } from './raw-pkcs11.js'

/** A logged-in RW session on the token (the login may already be this process's: it is shared). */
function session(p11: P11.PKCS11, tokenLabel: string, pin: string): P11.Handle {
  const s = p11.C_OpenSession(slotByLabel(p11, tokenLabel), js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION)
  try {
    p11.C_Login(s, js.CKU_USER, pin)
  } catch (err) {
    if ((err as { code?: number }).code !== js.CKR_USER_ALREADY_LOGGED_IN) throw err
  }
  return s
}

/** Creates sensitive, non-extractable AES-256 keys with these labels and CKA_IDs (hex) on the token. */
export function createAesKeys(
  tokenLabel: string,
  pin: string,
  keys: readonly { readonly label: string; readonly id: string }[],
): void {
  const p11 = rawModule(SOFTHSM_MODULE)
  const s = session(p11, tokenLabel, pin)
  try {
    for (const k of keys) {
      p11.C_GenerateKey(s, { mechanism: js.CKM_AES_KEY_GEN }, [
        { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
        { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
        { type: js.CKA_TOKEN, value: true },
        { type: js.CKA_PRIVATE, value: true },
        { type: js.CKA_SENSITIVE, value: true },
        { type: js.CKA_EXTRACTABLE, value: false },
        { type: js.CKA_ENCRYPT, value: true },
        { type: js.CKA_DECRYPT, value: true },
        { type: js.CKA_VALUE_LEN, value: 32 },
        { type: js.CKA_LABEL, value: k.label },
        { type: js.CKA_ID, value: Buffer.from(k.id, 'hex') },
      ])
    }
  } finally {
    p11.C_CloseSession(s)
  }
}

/** Destroys the token objects with this CKA_ID (hex); returns how many. */
export function destroyAesKey(tokenLabel: string, pin: string, idHex: string): number {
  const p11 = rawModule(SOFTHSM_MODULE)
  const s = session(p11, tokenLabel, pin)
  try {
    p11.C_FindObjectsInit(s, [{ type: js.CKA_ID, value: Buffer.from(idHex, 'hex') }])
    const hs = p11.C_FindObjects(s, 16)
    p11.C_FindObjectsFinal(s)
    for (const h of hs) p11.C_DestroyObject(s, h)
    return hs.length
  } finally {
    p11.C_CloseSession(s)
  }
}

/** A pkcs11 connection to the second test token, its PIN read from EKMS_TEST_PIN (a reference, not the PIN). */
export function secondTokenConnection(name = 'hsm-2'): ConnectionInput {
  return {
    name,
    description: 'the second SoftHSM2 test token',
    params: {
      cloud: 'pkcs11',
      module: SOFTHSM_MODULE,
      tokenLabel: env('EKMS_TEST_TOKEN_2'),
      pin: { kind: 'env', name: 'EKMS_TEST_PIN' },
    },
  }
}
