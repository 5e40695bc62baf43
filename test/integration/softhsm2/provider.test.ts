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
import { rawModule, slotByLabel } from '../../helpers/raw-pkcs11.js'

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
