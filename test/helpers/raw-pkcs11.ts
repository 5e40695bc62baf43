/**
 * Raw pkcs11js access to the same library the provider uses (tests and benchmarks). It joins the
 * process-wide Cryptoki state: C_Initialize answers CKR_CRYPTOKI_ALREADY_INITIALIZED when the provider
 * initialised first, and that is fine.
 */
import { createRequire } from 'node:module'
import type * as P11 from 'pkcs11js'

export const js = createRequire(import.meta.url)('pkcs11js') as typeof P11

export function rawModule(modulePath: string): P11.PKCS11 {
  const p11 = new js.PKCS11()
  p11.load(modulePath)
  try {
    p11.C_Initialize({ flags: js.CKF_OS_LOCKING_OK })
  } catch (err) {
    if ((err as { code?: number }).code !== js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw err
  }
  return p11
}

export function slotByLabel(p11: P11.PKCS11, label: string): P11.Handle {
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === label)
  if (slot === undefined) throw new Error(`no token labelled ${label}`)
  return slot
}
