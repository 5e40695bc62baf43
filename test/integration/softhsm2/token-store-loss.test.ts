/**
 * The PKCS#11 provider when SoftHSM2's token store goes away for a while (review finding 3), on this file's
 * own token directory, moved away and back for real: the profile's recovery threshold and back-off, one
 * re-initialisation at a time, and failures that the token itself explains staying what they are.
 */
import { renameSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { SecretBytes } from '../../../src/index.js'
import { loadProfile, type Pkcs11Profile } from '../../../src/providers/pkcs11/profile.js'
import type { Pkcs11Provider } from '../../../src/providers/pkcs11/provider.js'
import { expectCode } from '../../helpers/expect-code.js'
import { env, openProvider, SOFTHSM_MODULE } from '../../helpers/engine.js'
import { js, rawModule, slotByLabel } from '../../helpers/raw-pkcs11.js'

const TOKENS = join(env('EKMS_TEST_FILE_DIR'), 'tokens')
const CATALOG = '00000000-0000-4000-8000-000000000000'
let away = false
const moveAway = (): void => {
  renameSync(TOKENS, `${TOKENS}.away`)
  away = true
}
const moveBack = (): void => {
  if (!away) return
  renameSync(`${TOKENS}.away`, TOKENS)
  away = false
}
afterEach(moveBack)

function profile(recovery: Partial<Pkcs11Profile['recovery']>): Pkcs11Profile {
  const p = loadProfile('softhsm2')
  return { ...p, recovery: { ...p.recovery, ...recovery } }
}

let n = 0
const version = (p: Pkcs11Provider): Promise<string> =>
  p.createVersion({
    catalogId: CATALOG,
    keyId: `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
    version: 1,
  })
const dek = (): SecretBytes => SecretBytes.copyOf(Buffer.alloc(32, 5))
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('a lost token store', () => {
  it('re-initialises after the profile’s consecutive confirmed failures, then no more often than its back-off, and recovers once the store is back', async () => {
    const p = await openProvider({
      profile: profile({ consecutiveFailures: 3, backoffMs: 400, maxBackoffMs: 400 }),
      retry: { attempts: 1, baseDelayMs: 1 },
    })
    try {
      const used = await version(p)
      await p.encrypt(used, dek(), Buffer.alloc(0)) // its session copy exists
      const gen = p.generation
      moveAway()
      // One attempt per call: each call is one confirmed failure (C_GenerateKey and the probe both fail).
      await expectCode(version(p), 'PROVIDER_UNAVAILABLE')
      await expectCode(version(p), 'PROVIDER_UNAVAILABLE')
      expect(p.generation).toBe(gen) // below the threshold: no re-initialisation
      const third = await expectCode(version(p), 'PROVIDER_UNAVAILABLE')
      expect(third.retryable).toBe(true)
      expect(p.generation).toBe(gen + 1) // the threshold: one attempt (the store is still away)
      for (let i = 0; i < 20; i++)
        await expectCode(p.encrypt(used, dek(), Buffer.alloc(0)), 'PROVIDER_UNAVAILABLE')
      expect(p.generation).toBe(gen + 1) // within the back-off: no storm of attempts
      expect((await p.health()).ok).toBe(false)
      moveBack()
      await sleep(1050) // past the back-off and the health cache (one second)
      expect((await p.health()).ok).toBe(true) // the probe's failure, past the back-off: re-initialised
      expect(p.generation).toBe(gen + 2)
      await p.encrypt(used, dek(), Buffer.alloc(0)) // the session copy is rebuilt
      expect(await p.inspectSessionCopy(used)).toMatchObject({ token: false, sensitive: true })
      await version(p)
    } finally {
      await p.close()
    }
  })

  it('concurrent operations during the loss share one re-initialisation (single-flight)', async () => {
    const p = await openProvider({
      profile: profile({ consecutiveFailures: 1, backoffMs: 2000, maxBackoffMs: 2000 }),
    })
    try {
      const fresh = await version(p) // no session copy yet
      const gen = p.generation
      moveAway()
      const results = await Promise.allSettled([
        ...Array.from({ length: 10 }, () => version(p)),
        ...Array.from({ length: 10 }, () => p.encrypt(fresh, dek(), Buffer.alloc(0))),
      ])
      expect(
        results.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'ok')),
      ).toEqual(Array(20).fill('PROVIDER_UNAVAILABLE'))
      expect(p.generation).toBe(gen + 1)
    } finally {
      moveBack()
      await p.close()
    }
  })

  it('health() probes the token store, and reuses an answer for at most one second', async () => {
    const p = await openProvider()
    try {
      expect((await p.health()).ok).toBe(true)
      moveAway()
      expect((await p.health()).ok).toBe(true) // the cached answer, less than a second old
      await sleep(1050)
      const h = await p.health()
      expect(h).toMatchObject({ ok: false })
      expect(h.detail).not.toContain(env('EKMS_TEST_PIN'))
    } finally {
      moveBack()
      await p.close()
    }
  })

  it('a logout behind its back (the token works, the login is gone) still re-initialises and logs in again', async () => {
    const p = await openProvider({ sessionKeyCopy: false })
    try {
      const ref = await version(p)
      const sealed = await p.encrypt(ref, dek(), Buffer.alloc(0))
      const gen = p.generation
      const side = rawModule(SOFTHSM_MODULE)
      const s = side.C_OpenSession(slotByLabel(side, env('EKMS_TEST_TOKEN')), js.CKF_SERIAL_SESSION)
      side.C_Logout(s) // login is per application: this logs the provider out too
      side.C_CloseSession(s)
      const back = await p.decrypt(ref, sealed, Buffer.alloc(0))
      expect(back.exportCopy().equals(Buffer.alloc(32, 5))).toBe(true)
      expect(p.generation).toBe(gen + 1)
    } finally {
      await p.close()
    }
  })

  it('a failure the working token explains is not an outage: no re-initialisation, not PROVIDER_UNAVAILABLE', async () => {
    const p = await openProvider()
    try {
      const ref = await version(p)
      const gen = p.generation
      const sealed = await p.encrypt(ref, dek(), Buffer.from('aad'))
      // SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR, one of its recovery codes.
      await expectCode(p.decrypt(ref, sealed, Buffer.from('other aad')), 'UNWRAP_AAD_MISMATCH')
      await expectCode(p.inspectVersion('0'.repeat(32)), 'PROVIDER_ERROR')
      await expectCode(
        p.createVersion({
          catalogId: CATALOG,
          keyId: CATALOG,
          version: 1,
          material: SecretBytes.copyOf(Buffer.alloc(5)),
        }),
        'INVALID_FIELD_ERR',
      )
      expect(p.generation).toBe(gen)
      expect((await p.health()).ok).toBe(true)
    } finally {
      await p.close()
    }
  })
})
