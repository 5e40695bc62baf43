import { describe, expect, it } from 'vitest'
import { DEFAULT_RECOVERY, loadProfile, parseProfile } from '../../../src/providers/pkcs11/profile.js'
import { expectCodeSync } from '../../helpers/expect-code.js'

const GOOD = {
  name: 'x',
  mechanisms: { aesGcm: '0x1087', aesKeyGen: 4224 },
  gcmParams: 'CK_PARAMS_GCM',
  gcmIvSource: 'hsm-rng',
  callMode: 'sync',
  sessionKeyCopy: false,
  maxSessions: 2,
  authFailureCodes: [],
}

describe('PKCS#11 profiles', () => {
  it('the built-in profiles load and carry the device facts', () => {
    const soft = loadProfile('softhsm2')
    expect(soft).toMatchObject({
      name: 'softhsm2',
      callMode: 'sync',
      gcmIvSource: 'hsm-rng',
      sessionKeyCopy: true,
    })
    expect(soft.mechanisms.aesGcm).toBe(0x1087)
    expect(soft.authFailureCodes).toContain('CKR_GENERAL_ERROR')
    const luna = loadProfile('luna')
    expect(luna).toMatchObject({
      name: 'luna',
      callMode: 'async',
      gcmIvSource: 'hsm-generated',
      sessionKeyCopy: false,
    })
    expect(luna.mechanisms.aesKwp).toBe(0x80000171)
  })

  it('rejects malformed profiles with CONFIG_INVALID naming the field', () => {
    const good = {
      name: 'x',
      mechanisms: { aesGcm: '0x1087', aesKeyGen: 4224 },
      gcmParams: 'CK_PARAMS_GCM',
      gcmIvSource: 'hsm-rng',
      callMode: 'sync',
      sessionKeyCopy: false,
      maxSessions: 2,
      authFailureCodes: [],
    }
    expect(parseProfile(good).mechanisms.aesKeyGen).toBe(4224)
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...good, name: 'Bad Name' }, /name/],
      [{ ...good, mechanisms: { aesGcm: 'nope', aesKeyGen: 1 } }, /aesGcm/],
      [{ ...good, gcmParams: 'CK_PARAMS_AES_GCM' }, /gcmParams/],
      [{ ...good, gcmIvSource: 'caller' }, /gcmIvSource/],
      [{ ...good, callMode: 'threads' }, /callMode/],
      [{ ...good, maxSessions: 0 }, /maxSessions/],
      [{ ...good, authFailureCodes: ['GENERAL_ERROR'] }, /authFailureCodes/],
    ]
    for (const [doc, re] of cases)
      expect(expectCodeSync(() => parseProfile(doc), 'CONFIG_INVALID').message).toMatch(re)
    expectCodeSync(() => loadProfile('/nonexistent.json'), 'CONFIG_INVALID')
  })

  it('recovery: the built-in profiles name their codes and threshold; a profile without the block gets the defaults', () => {
    const soft = loadProfile('softhsm2').recovery
    // SoftHSM2 answers a lost token store with CKR_GENERAL_ERROR until it is re-initialised.
    expect(soft.reinitializeOn).toContain('CKR_GENERAL_ERROR')
    expect(soft.consecutiveFailures).toBe(1)
    const luna = loadProfile('luna').recovery
    expect(luna.reinitializeOn).toContain('CKR_DEVICE_ERROR')
    expect(luna.reinitializeOn).not.toContain('CKR_GENERAL_ERROR')
    expect(luna.consecutiveFailures).toBeGreaterThan(1)
    expect(parseProfile(GOOD).recovery).toEqual(DEFAULT_RECOVERY)
    expect(parseProfile({ ...GOOD, recovery: { consecutiveFailures: 4 } }).recovery).toEqual({
      ...DEFAULT_RECOVERY,
      consecutiveFailures: 4,
    })
  })

  it('recovery: malformed blocks are CONFIG_INVALID naming the field', () => {
    const cases: [unknown, RegExp][] = [
      [[], /recovery must be an object/],
      [{ reinitializeOn: ['GENERAL_ERROR'] }, /recovery.reinitializeOn/],
      [{ consecutiveFailures: 0 }, /recovery.consecutiveFailures/],
      [{ consecutiveFailures: 1.5 }, /recovery.consecutiveFailures/],
      [{ backoffMs: -1 }, /recovery.backoffMs/],
      [{ backoffMs: 500, maxBackoffMs: 100 }, /maxBackoffMs must be at least/],
      [{ retries: 3 }, /recovery.retries is not a known field/],
    ]
    for (const [recovery, re] of cases)
      expect(expectCodeSync(() => parseProfile({ ...GOOD, recovery }), 'CONFIG_INVALID').message).toMatch(re)
  })
})
