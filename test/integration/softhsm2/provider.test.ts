/**
 * PKCS#11 provider start-up errors and recovery, on real SoftHSM2 tokens. Failures are caused for real:
 * sessions closed and the library finalised behind the provider's back, a token deleted from disk.
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import type * as P11 from 'pkcs11js'
import { SecretBytes } from '../../../src/index.js'
import { expectCode } from '../../helpers/expect-code.js'
import { env, openProvider, openTestEngine, SOFTHSM_MODULE } from '../../helpers/engine.js'
import { js, rawModule, slotByLabel } from '../../helpers/raw-pkcs11.js'
import { ckrName } from '../../../src/providers/pkcs11/errors.js'

const DOOMED = 'ekms-doomed'

/** A second, independent pkcs11js handle on the same library: it shares the process-wide Cryptoki state. */
const sideChannel = (): P11.PKCS11 => rawModule(SOFTHSM_MODULE)
const slotOf = slotByLabel

beforeAll(() => {
  // Created before this process initialises the library, so that SoftHSM2 sees it.
  execFileSync(
    'softhsm2-util',
    [
      '--init-token',
      '--free',
      '--label',
      DOOMED,
      '--so-pin',
      env('EKMS_TEST_SO_PIN'),
      '--pin',
      env('EKMS_TEST_PIN'),
    ],
    { stdio: 'ignore' },
  )
})

describe('start-up errors are typed and name the problem', () => {
  it('a wrong PIN fails with PROVIDER_LOGIN_FAILED, also when the token is already logged in', async () => {
    const e = await expectCode(
      openProvider({ tokenLabel: env('EKMS_TEST_TOKEN_2'), pin: 'wrong-pin' }),
      'PROVIDER_LOGIN_FAILED',
    )
    expect(e.message).not.toContain('wrong-pin')
    const good = await openProvider({ tokenLabel: env('EKMS_TEST_TOKEN_2') })
    // The device would accept any PIN now (login is per application); the provider does not.
    await expectCode(
      openProvider({ tokenLabel: env('EKMS_TEST_TOKEN_2'), pin: 'wrong-pin' }),
      'PROVIDER_LOGIN_FAILED',
    )
    const second = await openProvider({ tokenLabel: env('EKMS_TEST_TOKEN_2') })
    expect((await second.health()).ok).toBe(true)
    await second.close()
    await good.close()
  })

  it('a missing module fails with PROVIDER_MODULE_LOAD_FAILED', async () => {
    await expectCode(openProvider({ module: '/nonexistent/libpkcs11.so' }), 'PROVIDER_MODULE_LOAD_FAILED')
    const notALibrary = join(env('EKMS_TEST_DIR'), 'not-a-library.so')
    writeFileSync(notALibrary, 'this is not an ELF file')
    await expectCode(openProvider({ module: notALibrary }), 'PROVIDER_MODULE_LOAD_FAILED')
  })

  it('an unknown token label fails with PROVIDER_TOKEN_NOT_FOUND', async () => {
    const e = await expectCode(openProvider({ tokenLabel: 'no-such-token' }), 'PROVIDER_TOKEN_NOT_FOUND')
    expect(e.message).toContain('no-such-token')
  })

  it('invalid settings fail with CONFIG_INVALID', async () => {
    await expectCode(openProvider({ pin: '' }), 'CONFIG_INVALID')
    await expectCode(openProvider({ tokenLabel: 'x'.repeat(33) }), 'CONFIG_INVALID')
    await expectCode(openProvider({ profile: '/nonexistent/profile.json' }), 'CONFIG_INVALID')
  })
})

describe('recovery', () => {
  it('recovers when every session is closed behind its back (C_CloseAllSessions also logs out)', async () => {
    const t = await openTestEngine()
    const key = await t.engine.createKey('rec', { name: 'sessions' })
    const w = await t.engine.wrap('rec', key.id)
    const side = sideChannel()
    side.C_CloseAllSessions(slotOf(side, env('EKMS_TEST_TOKEN')))
    const u = await t.engine.unwrap('rec', key.id, w.ciphertext)
    expect(u.plaintext.equals(w.plaintext ?? Buffer.alloc(0))).toBe(true)
    expect((await t.engine.wrap('rec', key.id)).plaintext).toHaveLength(32)
    await t.engine.close()
  })

  it('re-initialises the library after C_Finalize behind its back, and keeps serving', async () => {
    const t = await openTestEngine()
    const key = await t.engine.createKey('rec', { name: 'finalize' })
    const w = await t.engine.wrap('rec', key.id)
    const before = t.provider.generation
    sideChannel().C_Finalize()
    const u = await t.engine.unwrap('rec', key.id, w.ciphertext)
    expect(u.plaintext.equals(w.plaintext ?? Buffer.alloc(0))).toBe(true)
    expect(t.provider.generation).toBe(before + 1)
    await t.engine.close()
  })

  it('async mode recovers too, with operations in flight', async () => {
    const t = await openTestEngine({ provider: { callMode: 'async', maxSessions: 4 } })
    const key = await t.engine.createKey('rec', { name: 'async' })
    const wraps = await Promise.all(Array.from({ length: 200 }, () => t.engine.wrap('rec', key.id)))
    expect(t.provider.sessionsOpen).toBeLessThanOrEqual(4)
    const side = sideChannel()
    side.C_CloseAllSessions(slotOf(side, env('EKMS_TEST_TOKEN')))
    const outs = await Promise.all(wraps.map((w) => t.engine.unwrap('rec', key.id, w.ciphertext)))
    outs.forEach((o, i) => expect(o.plaintext.equals(wraps[i]?.plaintext ?? Buffer.alloc(0))).toBe(true))
    await t.engine.close()
  })

  it('after the bounded retries, a token that is gone fails with PROVIDER_UNAVAILABLE (retryable)', async () => {
    const p = await openProvider({ tokenLabel: DOOMED, retry: { attempts: 3, baseDelayMs: 1 } })
    const ref = await p.createVersion({
      catalogId: '00000000-0000-4000-8000-000000000000',
      keyId: '00000000-0000-4000-8000-000000000001',
      version: 1,
    })
    expect((await p.encrypt(ref, SecretBytes.copyOf(Buffer.alloc(32)), Buffer.alloc(0))).tag).toHaveLength(16)
    execFileSync('softhsm2-util', ['--delete-token', '--token', DOOMED], { stdio: 'ignore' })
    sideChannel().C_Finalize()
    const e = await expectCode(
      p.encrypt(ref, SecretBytes.copyOf(Buffer.alloc(32)), Buffer.alloc(0)),
      'PROVIDER_UNAVAILABLE',
    )
    expect(e.retryable).toBe(true)
    expect((await p.health()).ok).toBe(false)
    await p.close()
  })
})

describe('session key copies', () => {
  it('the session copy of a root key version stays sensitive, non-extractable and off the token', async () => {
    const p = await openProvider()
    const ref = await p.createVersion({
      catalogId: '00000000-0000-4000-8000-000000000000',
      keyId: '00000000-0000-4000-8000-000000000002',
      version: 1,
    })
    const copy = await p.inspectSessionCopy(ref)
    expect(copy).toMatchObject({
      token: false,
      sensitive: true,
      extractable: false,
      alwaysSensitive: true,
      neverExtractable: true,
    })
    await p.destroyVersion(ref)
    await p.close()
    const noCopy = await openProvider({ sessionKeyCopy: false })
    const ref2 = await noCopy.createVersion({
      catalogId: '00000000-0000-4000-8000-000000000000',
      keyId: '00000000-0000-4000-8000-000000000003',
      version: 1,
    })
    expect(await noCopy.inspectSessionCopy(ref2)).toBeUndefined()
    await noCopy.destroyVersion(ref2)
    await noCopy.close()
  })
})

describe('root key versions are restricted to the profile AES-GCM (review finding 5)', () => {
  const CATALOG = '00000000-0000-4000-8000-000000000000'
  /** A raw pkcs11js session on the provider's token: an attacker holding the user PIN, in this process. */
  function attacker(): { p11: P11.PKCS11; s: P11.Handle; find: (ref: string, token: boolean) => P11.Handle } {
    const p11 = sideChannel()
    const s = p11.C_OpenSession(
      slotOf(p11, env('EKMS_TEST_TOKEN')),
      js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION,
    )
    try {
      p11.C_Login(s, js.CKU_USER, env('EKMS_TEST_PIN'))
    } catch (err) {
      if ((err as { code?: number }).code !== js.CKR_USER_ALREADY_LOGGED_IN) throw err
    }
    const find = (ref: string, token: boolean): P11.Handle => {
      p11.C_FindObjectsInit(s, [
        { type: js.CKA_ID, value: Buffer.from(ref, 'hex') },
        { type: js.CKA_TOKEN, value: token },
      ])
      const found = p11.C_FindObjects(s, 2)
      p11.C_FindObjectsFinal(s)
      expect(found).toHaveLength(1)
      return found[0] as P11.Handle
    }
    return { p11, s, find }
  }
  /** The CKR_ name a raw call fails with, or 'CKR_OK'. */
  function rv(fn: () => unknown): string {
    try {
      fn()
      return 'CKR_OK'
    } catch (err) {
      return ckrName(err)
    }
  }
  const REFUSED = ['CKR_MECHANISM_INVALID', 'CKR_KEY_FUNCTION_NOT_PERMITTED', 'CKR_KEY_TYPE_INCONSISTENT']
  /** Raw AES-ECB and AES-CBC with `key`: both must be refused at C_EncryptInit/C_DecryptInit. */
  function expectNoRawAes(p11: P11.PKCS11, s: P11.Handle, key: P11.Handle): void {
    expect(REFUSED).toContain(rv(() => p11.C_EncryptInit(s, { mechanism: js.CKM_AES_ECB }, key)))
    expect(REFUSED).toContain(rv(() => p11.C_DecryptInit(s, { mechanism: js.CKM_AES_ECB }, key)))
    expect(REFUSED).toContain(
      rv(() => p11.C_EncryptInit(s, { mechanism: js.CKM_AES_CBC, parameter: Buffer.alloc(16) }, key)),
    )
    expect(REFUSED).toContain(
      rv(() => p11.C_DecryptInit(s, { mechanism: js.CKM_AES_CBC, parameter: Buffer.alloc(16) }, key)),
    )
  }
  async function roundTrip(p: Awaited<ReturnType<typeof openProvider>>, ref: string): Promise<void> {
    const dek = SecretBytes.adopt(Buffer.alloc(32, 9))
    const aad = Buffer.from('tenant-a')
    const sealed = await p.encrypt(ref, dek, aad)
    const back = await p.decrypt(ref, sealed, aad)
    expect(back.exportCopy().equals(Buffer.alloc(32, 9))).toBe(true)
  }

  it('raw CKM_AES_ECB/CBC are refused for the token object and the session copy; AES-GCM still works', async () => {
    const p = await openProvider()
    const ref = await p.createVersion({
      catalogId: CATALOG,
      keyId: '00000000-0000-4000-8000-000000000010',
      version: 1,
    })
    await roundTrip(p, ref) // also makes the session copy
    const { p11, s, find } = attacker()
    expectNoRawAes(p11, s, find(ref, true))
    expectNoRawAes(p11, s, find(ref, false))
    p11.C_CloseSession(s)
    await p.destroyVersion(ref)
    await p.close()
  })

  it('imported root key material carries the same restriction', async () => {
    const p = await openProvider()
    const material = SecretBytes.adopt(Buffer.alloc(32, 7))
    const ref = await p.createVersion({
      catalogId: CATALOG,
      keyId: '00000000-0000-4000-8000-000000000011',
      version: 1,
      material,
    })
    await roundTrip(p, ref)
    const { p11, s, find } = attacker()
    expectNoRawAes(p11, s, find(ref, true))
    expectNoRawAes(p11, s, find(ref, false))
    p11.C_CloseSession(s)
    await p.destroyVersion(ref)
    await p.close()
  })

  it('the session copy cannot be given CKA_DERIVE or other mechanisms; the token object cannot widen its mechanisms', async () => {
    const p = await openProvider()
    const ref = await p.createVersion({
      catalogId: CATALOG,
      keyId: '00000000-0000-4000-8000-000000000012',
      version: 1,
    })
    await roundTrip(p, ref)
    const { p11, s, find } = attacker()
    const copy = find(ref, false)
    const token = find(ref, true)
    const ecbToo = Buffer.alloc(16)
    ecbToo.writeBigUInt64LE(BigInt(js.CKM_AES_GCM), 0)
    ecbToo.writeBigUInt64LE(BigInt(js.CKM_AES_ECB), 8)
    // The copy is non-modifiable: nothing can be turned on.
    expect(rv(() => p11.C_SetAttributeValue(s, copy, [{ type: js.CKA_DERIVE, value: true }]))).not.toBe(
      'CKR_OK',
    )
    expect(rv(() => p11.C_SetAttributeValue(s, copy, [{ type: js.CKA_WRAP, value: true }]))).not.toBe(
      'CKR_OK',
    )
    // Neither object's mechanism list can change, in place or in a copy.
    for (const h of [copy, token]) {
      expect(
        rv(() => p11.C_SetAttributeValue(s, h, [{ type: js.CKA_ALLOWED_MECHANISMS, value: ecbToo }])),
      ).not.toBe('CKR_OK')
      expect(
        rv(() =>
          p11.C_CopyObject(s, h, [
            { type: js.CKA_TOKEN, value: false },
            { type: js.CKA_ALLOWED_MECHANISMS, value: ecbToo },
          ]),
        ),
      ).not.toBe('CKR_OK')
    }
    // The token object stays modifiable (SoftHSM2 copies need it): CKA_DERIVE/CKA_WRAP can be set on it, but
    // deriving or wrapping with it is still refused.
    p11.C_SetAttributeValue(s, token, [
      { type: js.CKA_DERIVE, value: true },
      { type: js.CKA_WRAP, value: true },
    ])
    expect(REFUSED).toContain(
      rv(() =>
        p11.C_DeriveKey(s, { mechanism: js.CKM_AES_ECB_ENCRYPT_DATA, parameter: Buffer.alloc(16) }, token, [
          { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
          { type: js.CKA_KEY_TYPE, value: js.CKK_GENERIC_SECRET },
          { type: js.CKA_VALUE_LEN, value: 16 },
          { type: js.CKA_EXTRACTABLE, value: true },
          { type: js.CKA_SENSITIVE, value: false },
          { type: js.CKA_TOKEN, value: false },
        ]),
      ),
    )
    const dek = p11.C_GenerateKey(s, { mechanism: js.CKM_AES_KEY_GEN }, [
      { type: js.CKA_VALUE_LEN, value: 32 },
      { type: js.CKA_EXTRACTABLE, value: true },
      { type: js.CKA_TOKEN, value: false },
    ])
    expect(REFUSED).toContain(
      rv(() => p11.C_WrapKey(s, { mechanism: js.CKM_AES_KEY_WRAP }, token, dek, Buffer.alloc(64))),
    )
    p11.C_DestroyObject(s, dek)
    p11.C_CloseSession(s)
    await p.destroyVersion(ref)
    await p.close()
  })

  it('createVersion reads the restrictions back; the session copy is non-modifiable and restricted alike', async () => {
    const p = await openProvider()
    const ref = await p.createVersion({
      catalogId: CATALOG,
      keyId: '00000000-0000-4000-8000-000000000013',
      version: 1,
    })
    const restricted = {
      sensitive: true,
      extractable: false,
      derive: false,
      wrap: false,
      unwrap: false,
      allowedMechanisms: [js.CKM_AES_GCM],
    }
    expect(await p.inspectVersion(ref)).toMatchObject({ ...restricted, token: true, copyable: true })
    expect(await p.inspectSessionCopy(ref)).toMatchObject({ ...restricted, token: false, modifiable: false })
    await p.destroyVersion(ref)
    await p.close()
  })

  it('a version made by an earlier build (no mechanism list) still works; its new session copy is non-modifiable', async () => {
    const p = await openProvider()
    const { p11, s, find } = attacker()
    const id = Buffer.alloc(16, 0xab)
    const ref = id.toString('hex')
    // The template of earlier builds: no CKA_ALLOWED_MECHANISMS, modifiable.
    p11.C_GenerateKey(s, { mechanism: js.CKM_AES_KEY_GEN }, [
      { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
      { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
      { type: js.CKA_TOKEN, value: true },
      { type: js.CKA_PRIVATE, value: true },
      { type: js.CKA_SENSITIVE, value: true },
      { type: js.CKA_EXTRACTABLE, value: false },
      { type: js.CKA_ENCRYPT, value: true },
      { type: js.CKA_DECRYPT, value: true },
      { type: js.CKA_DERIVE, value: false },
      { type: js.CKA_LABEL, value: `ekms/v1/${CATALOG}/00000000-0000-4000-8000-000000000014/1` },
      { type: js.CKA_ID, value: id },
      { type: js.CKA_VALUE_LEN, value: 32 },
    ])
    await roundTrip(p, ref)
    expect(await p.inspectVersion(ref)).toMatchObject({ allowedMechanisms: [], modifiable: true })
    expect(await p.inspectSessionCopy(ref)).toMatchObject({ allowedMechanisms: [], modifiable: false })
    const copy = find(ref, false)
    expect(rv(() => p11.C_SetAttributeValue(s, copy, [{ type: js.CKA_DERIVE, value: true }]))).not.toBe(
      'CKR_OK',
    )
    // Documented limit (docs/security.md): the old token object cannot be restricted in place.
    const gcmOnly = Buffer.alloc(8)
    gcmOnly.writeBigUInt64LE(BigInt(js.CKM_AES_GCM), 0)
    expect(
      rv(() =>
        p11.C_SetAttributeValue(s, find(ref, true), [{ type: js.CKA_ALLOWED_MECHANISMS, value: gcmOnly }]),
      ),
    ).toBe('CKR_ATTRIBUTE_READ_ONLY')
    p11.C_CloseSession(s)
    await p.destroyVersion(ref)
    await p.close()
  })
})
