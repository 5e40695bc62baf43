/**
 * Wycheproof vectors (C2SP/wycheproof, test/vectors/wycheproof/, license beside them) against the live
 * SoftHSM2 token:
 * - AES-GCM with the provider's own parameters (96-bit IV, 128-bit tag) runs through the provider itself,
 *   with each test key imported as a root-key version: every valid case decrypts to the message, every
 *   invalid one fails with UNWRAP_AAD_MISMATCH.
 * - AES-GCM with other IV sizes, and both directions with the vector's fixed IV, run through pkcs11js on
 *   session objects: they test the token's mechanism, which the provider only uses at 96/128 bits.
 * - AES-KW (RFC 3394) and AES-KWP (RFC 5649) run through C_WrapKey/C_UnwrapKey on session objects. Format
 *   v1 does not use them; they are checked so that a future KWP mechanism starts from known device behaviour.
 *
 * Known SoftHSM2 2.6.1 deviations are asserted exactly (so a fixed SoftHSM2 fails the test and the note is
 * updated), never skipped:
 * - GCM IVs longer than 256 bytes are refused (Wycheproof has valid 2056-bit IVs).
 * - C_Encrypt of an empty message through pkcs11js fails with CKR_ARGUMENTS_BAD (the empty Buffer reaches
 *   the library as a NULL pointer); decryption of an empty message works. The engine refuses 0-byte DEKs.
 * - C_WrapKey with CKM_AES_KEY_WRAP_PAD zero-pads the key value to a multiple of 8 bytes *before* RFC 5649
 *   wrapping, so the output of a key whose length is not a multiple of 8 differs from RFC 5649 (another
 *   implementation would unwrap it with trailing zeros). Unwrapping correct RFC 5649 input works.
 */
import { createCipheriv } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type * as P11 from 'pkcs11js'
import { SecretBytes } from '../../../src/index.js'
import type { Pkcs11Provider } from '../../../src/providers/pkcs11/index.js'
import { env, openProvider, SOFTHSM_MODULE } from '../../helpers/engine.js'
import { expectCode } from '../../helpers/expect-code.js'
import { js, rawModule, slotByLabel } from '../../helpers/raw-pkcs11.js'

interface AeadTest {
  tcId: number
  key: string
  iv: string
  aad: string
  msg: string
  ct: string
  tag: string
  result: 'valid' | 'invalid' | 'acceptable'
  flags: string[]
}
interface AeadGroup {
  ivSize: number
  keySize: number
  tagSize: number
  tests: AeadTest[]
}
interface WrapTest {
  tcId: number
  key: string
  msg: string
  ct: string
  result: 'valid' | 'invalid' | 'acceptable'
  flags: string[]
}
interface WrapGroup {
  keySize: number
  tests: WrapTest[]
}

function load<G>(name: string): G[] {
  const path = join(import.meta.dirname, '../../vectors/wycheproof', name)
  return (JSON.parse(readFileSync(path, 'utf8')) as { testGroups: G[] }).testGroups
}
const gcm = load<AeadGroup>('aes_gcm_test.json')
const kw = load<WrapGroup>('aes_wrap_test.json')
const kwp = load<WrapGroup>('aes_kwp_test.json')
const hex = (s: string): Buffer => Buffer.from(s, 'hex')

let provider: Pkcs11Provider
let p11: P11.PKCS11
let session: P11.Handle
let slotHandle: P11.Handle
const slotOfTest = (): P11.Handle => slotHandle
const created: string[] = []

beforeAll(async () => {
  provider = await openProvider()
  p11 = rawModule(SOFTHSM_MODULE)
  const slot = slotByLabel(p11, env('EKMS_TEST_TOKEN'))
  slotHandle = slot
  session = p11.C_OpenSession(slot, js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION)
})
afterAll(async () => {
  for (const ref of created) await provider.destroyVersion(ref)
  p11.C_CloseSession(session)
  await provider.close()
})

function sessionKey(key: Buffer, extra: { type: number; value: boolean }[]): P11.Handle {
  return p11.C_CreateObject(session, [
    { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
    { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
    { type: js.CKA_TOKEN, value: false },
    { type: js.CKA_PRIVATE, value: false },
    { type: js.CKA_VALUE, value: key },
    ...extra,
  ])
}

function gcmMech(t: AeadTest, g: AeadGroup): P11.Mechanism {
  return {
    mechanism: js.CKM_AES_GCM,
    parameter: {
      type: js.CK_PARAMS_GCM,
      iv: hex(t.iv),
      ivBits: g.ivSize,
      aad: hex(t.aad),
      tagBits: g.tagSize,
    } as P11.GcmParams,
  }
}

describe('Wycheproof AES-GCM through the provider (96-bit IV, 128-bit tag)', () => {
  const cases = gcm.filter((g) => g.ivSize === 96 && g.tagSize === 128).flatMap((g) => g.tests)
  it(`runs ${cases.length} cases: valid ones decrypt, invalid ones fail with UNWRAP_AAD_MISMATCH`, async () => {
    const refs = new Map<string, string>()
    let valid = 0
    let invalid = 0
    for (const t of cases) {
      let ref = refs.get(t.key)
      if (ref === undefined) {
        ref = await provider.createVersion({
          catalogId: randomUUID(),
          keyId: randomUUID(),
          version: 1,
          material: SecretBytes.copyOf(hex(t.key)),
        })
        refs.set(t.key, ref)
        created.push(ref)
      }
      const sealed = { iv: hex(t.iv), encrypted: hex(t.ct), tag: hex(t.tag) }
      if (t.result === 'valid') {
        const out = await provider.decrypt(ref, sealed, hex(t.aad))
        expect(out.bytes.toString('hex'), `tcId ${t.tcId}`).toBe(t.msg)
        valid++
      } else {
        await expectCode(provider.decrypt(ref, sealed, hex(t.aad)), 'UNWRAP_AAD_MISMATCH')
        invalid++
      }
    }
    expect(valid).toBe(cases.filter((t) => t.result === 'valid').length)
    expect(invalid).toBe(cases.filter((t) => t.result === 'invalid').length)
    expect(valid + invalid).toBe(cases.length)
  })
})

describe('Wycheproof AES-GCM on the token mechanism (all IV sizes, both directions)', () => {
  const cases = gcm.flatMap((g) => g.tests.map((t) => ({ g, t })))
  it(`runs all ${cases.length} cases: valid ones encrypt and decrypt exactly, invalid ones are rejected`, () => {
    const outcomes = { valid: 0, invalid: 0, longIv: 0, emptyMessage: 0 }
    for (const { g, t } of cases) {
      const key = sessionKey(hex(t.key), [
        { type: js.CKA_ENCRYPT, value: true },
        { type: js.CKA_DECRYPT, value: true },
      ])
      try {
        const ctTag = Buffer.concat([hex(t.ct), hex(t.tag)])
        if (t.result === 'valid' && g.ivSize > 256 * 8) {
          // SoftHSM2 deviation: IVs over 256 bytes are refused.
          p11.C_DecryptInit(session, gcmMech(t, g), key)
          expect(() => p11.C_Decrypt(session, ctTag, Buffer.alloc(ctTag.length)), `tcId ${t.tcId}`).toThrow(
            /CKR_/,
          )
          outcomes.longIv++
        } else if (t.result === 'valid') {
          if (t.msg.length === 0) {
            // pkcs11js/SoftHSM2 deviation: an empty plaintext cannot be encrypted through C_Encrypt, and the
            // failed call leaves the operation active (CKR_OPERATION_ACTIVE on the next init), so it runs in a
            // session of its own that is then closed. The provider discards sessions after such failures.
            const s2 = p11.C_OpenSession(slotOfTest(), js.CKF_SERIAL_SESSION)
            p11.C_EncryptInit(s2, gcmMech(t, g), key)
            expect(() => p11.C_Encrypt(s2, Buffer.alloc(0), Buffer.alloc(16)), `tcId ${t.tcId}`).toThrow(
              /CKR_ARGUMENTS_BAD/,
            )
            expect(() => p11.C_EncryptInit(s2, gcmMech(t, g), key)).toThrow(/CKR_OPERATION_ACTIVE/)
            p11.C_CloseSession(s2)
            outcomes.emptyMessage++
          } else {
            p11.C_EncryptInit(session, gcmMech(t, g), key)
            const enc = p11.C_Encrypt(session, hex(t.msg), Buffer.alloc(t.msg.length / 2 + 16))
            expect(enc.toString('hex'), `tcId ${t.tcId} encrypt`).toBe(ctTag.toString('hex'))
          }
          p11.C_DecryptInit(session, gcmMech(t, g), key)
          const dec = p11.C_Decrypt(session, ctTag, Buffer.alloc(ctTag.length))
          expect(dec.toString('hex'), `tcId ${t.tcId} decrypt`).toBe(t.msg)
          outcomes.valid++
        } else {
          let rejected = false
          try {
            p11.C_DecryptInit(session, gcmMech(t, g), key)
            p11.C_Decrypt(session, ctTag, Buffer.alloc(ctTag.length + 16))
          } catch {
            rejected = true
          }
          expect(rejected, `tcId ${t.tcId} (${t.flags.join(',')}) must be rejected`).toBe(true)
          outcomes.invalid++
        }
      } finally {
        p11.C_DestroyObject(session, key)
      }
    }
    const valid = cases.filter(({ t }) => t.result === 'valid')
    expect(outcomes.longIv).toBe(valid.filter(({ g }) => g.ivSize > 2048).length)
    expect(outcomes.emptyMessage).toBe(valid.filter(({ g, t }) => g.ivSize <= 2048 && t.msg === '').length)
    expect(outcomes.valid + outcomes.longIv + outcomes.invalid).toBe(cases.length)
  })
})

/** RFC 5649 wrap in node:crypto of `msg` zero-padded to a multiple of 8: what SoftHSM2 2.6.1 emits. */
function softHsmKwp(key: Buffer, msg: Buffer): string {
  const padded = Buffer.concat([msg, Buffer.alloc((8 - (msg.length % 8)) % 8)])
  const c = createCipheriv(
    `id-aes${key.length * 8}-wrap-pad` as 'id-aes256-wrap-pad',
    key,
    Buffer.from('A65959A6', 'hex'),
  )
  return Buffer.concat([c.update(padded), c.final()]).toString('hex')
}

function wrapSuite(name: string, groups: WrapGroup[], mechanism: number): void {
  const cases = groups.flatMap((g) => g.tests)
  it(`${name}: runs all ${cases.length} cases; valid ones wrap and unwrap exactly, invalid ones are rejected`, () => {
    const counts = { valid: 0, invalid: 0, acceptable: 0 }
    for (const t of cases) {
      const kek = sessionKey(hex(t.key), [
        { type: js.CKA_WRAP, value: true },
        { type: js.CKA_UNWRAP, value: true },
      ])
      const unwrapTemplate = [
        { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
        { type: js.CKA_KEY_TYPE, value: js.CKK_GENERIC_SECRET },
        { type: js.CKA_TOKEN, value: false },
        { type: js.CKA_PRIVATE, value: false },
        { type: js.CKA_SENSITIVE, value: false },
        { type: js.CKA_EXTRACTABLE, value: true },
      ]
      const tryUnwrap = (): Buffer | undefined => {
        try {
          const h = p11.C_UnwrapKey(session, { mechanism }, kek, hex(t.ct), unwrapTemplate)
          const v = p11.C_GetAttributeValue(session, h, [{ type: js.CKA_VALUE }])[0]?.value
          p11.C_DestroyObject(session, h)
          return v
        } catch {
          return undefined
        }
      }
      try {
        if (t.result === 'valid') {
          const data = p11.C_CreateObject(session, [
            ...unwrapTemplate,
            { type: js.CKA_VALUE, value: hex(t.msg) },
          ])
          const wrapped = p11.C_WrapKey(
            session,
            { mechanism },
            kek,
            data,
            Buffer.alloc(t.msg.length / 2 + 16),
          )
          p11.C_DestroyObject(session, data)
          if (mechanism === js.CKM_AES_KEY_WRAP_PAD && (t.msg.length / 2) % 8 !== 0) {
            // SoftHSM2 deviation (see the header): pads before wrapping.
            expect(wrapped.toString('hex'), `tcId ${t.tcId} wrap`).toBe(softHsmKwp(hex(t.key), hex(t.msg)))
            expect(wrapped.toString('hex')).not.toBe(t.ct)
          } else {
            expect(wrapped.toString('hex'), `tcId ${t.tcId} wrap`).toBe(t.ct)
          }
          expect(tryUnwrap()?.toString('hex'), `tcId ${t.tcId} unwrap`).toBe(t.msg)
          counts.valid++
        } else if (t.result === 'invalid') {
          expect(tryUnwrap(), `tcId ${t.tcId} (${t.flags.join(',')}) must be rejected`).toBeUndefined()
          counts.invalid++
        } else {
          // acceptable: either outcome is allowed, but a success must be the right value
          const v = tryUnwrap()
          if (v !== undefined) expect(v.toString('hex')).toBe(t.msg)
          counts.acceptable++
        }
      } finally {
        p11.C_DestroyObject(session, kek)
      }
    }
    expect(counts.valid + counts.invalid + counts.acceptable).toBe(cases.length)
  })
}

describe('Wycheproof AES key wrap on the token', () => {
  wrapSuite('AES-KW (CKM_AES_KEY_WRAP)', kw, js.CKM_AES_KEY_WRAP)
  wrapSuite('AES-KWP (CKM_AES_KEY_WRAP_PAD)', kwp, js.CKM_AES_KEY_WRAP_PAD)
})
