/**
 * The PKCS#11 sync source (src/providers/pkcs11/sync-source.ts) on real SoftHSM2 tokens: a token initialised
 * here with AES keys made directly through pkcs11js (as a customer's tooling would), and the engine's own
 * token with its root keys and vault keys. Discovery, wrap/unwrap through the token, the typed failures, and
 * the library shared with the engine's provider in the same process.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import type * as P11 from 'pkcs11js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EngineError, SecretBytes } from '../../../src/index.js'
import type {
  ConnectionRecord,
  DiscoveredKey,
  SecretResolver,
  SyncSource,
} from '../../../src/core/ports-sync.js'
import { createPkcs11SyncSource } from '../../../src/providers/pkcs11/index.js'
import { expectCode } from '../../helpers/expect-code.js'
import { SOFTHSM_MODULE, env, openTestEngine, type TestEngine } from '../../helpers/engine.js'
import { js, rawModule, slotByLabel } from '../../helpers/raw-pkcs11.js'

const SRC_TOKEN = 'ekms-sync-src'
const SRC_PIN = `src-${randomBytes(8).toString('hex')}`
const WRONG_PIN = `wrong-${randomBytes(8).toString('hex')}`
process.env['EKMS_SYNC_SRC_PIN'] = SRC_PIN
process.env['EKMS_SYNC_WRONG_PIN'] = WRONG_PIN
const PINS = [SRC_PIN, WRONG_PIN, env('EKMS_TEST_PIN')]

const A = 'inst-a'
const AAD = Buffer.from('tenant-1/linked-key/dek-7')

/** The test's SecretResolver: environment variables only. */
const secrets: SecretResolver = (source) => {
  if (source.kind !== 'env') return Promise.reject(new EngineError('INVALID_FIELD_ERR', 'env only'))
  const v = process.env[source.name]
  if (v === undefined) return Promise.reject(new EngineError('INVALID_FIELD_ERR', `${source.name} is unset`))
  return Promise.resolve(v)
}

function connection(tokenLabel: string, pinVar: string, module = SOFTHSM_MODULE): ConnectionRecord {
  return {
    tenant: 'tenant-1',
    id: randomUUID(),
    name: 'hsm',
    cloud: 'pkcs11',
    description: undefined,
    params: { cloud: 'pkcs11', module, tokenLabel, pin: { kind: 'env', name: pinVar } },
    createdAt: 0,
    updatedAt: 0,
    lastTest: undefined,
  }
}

async function discoverAll(source: SyncSource): Promise<DiscoveredKey[]> {
  const out: DiscoveredKey[] = []
  for await (const k of source.discover()) out.push(k)
  return out
}

/** Every message of an error and its causes. */
function messages(err: unknown): string {
  const out: string[] = []
  for (let e: unknown = err; e instanceof Error; e = e.cause) out.push(e.message, String(e.stack))
  return out.join('\n')
}

function expectNoPin(text: string): void {
  for (const pin of PINS) expect(text).not.toContain(pin)
}

let t: TestEngine
let raw: P11.PKCS11
let srcSlot: P11.Handle
let engineRootRef: string
let rootId: string
let engineVaultRef: string

const ID_256 = 'a1b2c3d4'
const ID_NOENC = '0c01'
const ID_WEAK = '0e01'
const ID_DUP = 'dd01'
const ID_DOOMED = 'de01'
const ID_FOREIGN = 'f00d'

interface KeySpec {
  readonly label: string
  readonly id?: string
  readonly len: number
  readonly encrypt?: boolean
  readonly weak?: boolean
}

function createAes(s: P11.Handle, k: KeySpec): P11.Handle {
  return raw.C_GenerateKey(s, { mechanism: js.CKM_AES_KEY_GEN }, [
    { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
    { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
    { type: js.CKA_TOKEN, value: true },
    { type: js.CKA_PRIVATE, value: true },
    { type: js.CKA_SENSITIVE, value: k.weak !== true },
    { type: js.CKA_EXTRACTABLE, value: k.weak === true },
    { type: js.CKA_ENCRYPT, value: k.encrypt !== false },
    { type: js.CKA_DECRYPT, value: true },
    { type: js.CKA_VALUE_LEN, value: k.len },
    { type: js.CKA_LABEL, value: k.label },
    ...(k.id === undefined ? [] : [{ type: js.CKA_ID, value: Buffer.from(k.id, 'hex') }]),
  ])
}

/** A logged-in raw session on a token (the login may be this process's already: login state is shared). */
function rawSession(slot: P11.Handle, pin: string): P11.Handle {
  const s = raw.C_OpenSession(slot, js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION)
  try {
    raw.C_Login(s, js.CKU_USER, pin)
  } catch (err) {
    if ((err as { code?: number }).code !== js.CKR_USER_ALREADY_LOGGED_IN) throw err
  }
  return s
}

function destroyById(slot: P11.Handle, pin: string, idHex: string): void {
  const s = rawSession(slot, pin)
  try {
    raw.C_FindObjectsInit(s, [{ type: js.CKA_ID, value: Buffer.from(idHex, 'hex') }])
    const hs = raw.C_FindObjects(s, 16)
    raw.C_FindObjectsFinal(s)
    expect(hs.length).toBe(1)
    for (const h of hs) raw.C_DestroyObject(s, h)
  } finally {
    raw.C_CloseSession(s)
  }
}

beforeAll(async () => {
  // The engine on the first test token, with a root key and a vault key (engine objects, `ekms/…` labels).
  t = await openTestEngine()
  const root = await t.engine.createKey(A, { name: 'engine-root' })
  rootId = root.id
  engineRootRef = (await t.provider.listObjects()).find((o) => o.keyId === root.id)?.ref ?? ''
  expect(engineRootRef).toMatch(/^[0-9a-f]{32}$/)
  engineVaultRef = (await t.provider.createVaultKey({ catalogId: randomUUID(), kty: 'oct-HSM', size: 256 }))
    .ref

  raw = rawModule(SOFTHSM_MODULE)
  // One customer key on the engine's token, beside the engine's objects.
  const engineSlot = slotByLabel(raw, env('EKMS_TEST_TOKEN'))
  const es = rawSession(engineSlot, env('EKMS_TEST_PIN'))
  createAes(es, { label: 'customer-on-engine-token', id: ID_FOREIGN, len: 32 })
  raw.C_CloseSession(es)

  // A second token initialised here, on SoftHSM2's free slot, with its own PIN.
  const free = raw
    .C_GetSlotList(true)
    .find((s) => (raw.C_GetTokenInfo(s).flags & js.CKF_TOKEN_INITIALIZED) === 0)
  if (free === undefined) throw new Error('SoftHSM2 offers no free slot')
  // pkcs11js pads the label with NULs; PKCS#11 labels are blank-padded (token-admin.ts does the same).
  raw.C_InitToken(free, env('EKMS_TEST_SO_PIN'), SRC_TOKEN.padEnd(32, ' '))
  srcSlot = slotByLabel(raw, SRC_TOKEN)
  const so = raw.C_OpenSession(srcSlot, js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION)
  raw.C_Login(so, js.CKU_SO, env('EKMS_TEST_SO_PIN'))
  raw.C_InitPIN(so, SRC_PIN)
  raw.C_Logout(so)
  raw.C_CloseSession(so)
  const s = rawSession(srcSlot, SRC_PIN)
  createAes(s, { label: 'sync-aes256', id: ID_256, len: 32 })
  createAes(s, { label: 'sync-aes128-label-only', len: 16 })
  createAes(s, { label: 'sync-no-encrypt', id: ID_NOENC, len: 32, encrypt: false })
  createAes(s, { label: 'sync-weak', id: ID_WEAK, len: 24, weak: true })
  createAes(s, { label: 'dup-a', id: ID_DUP, len: 32 })
  createAes(s, { label: 'dup-b', id: ID_DUP, len: 32 })
  createAes(s, { label: 'sync-doomed', id: ID_DOOMED, len: 32 })
  createAes(s, { label: 'ekms/v1/not-a-customer-key', id: 'ee01', len: 32 })
  // Not AES: never discovered.
  raw.C_GenerateKey(s, { mechanism: js.CKM_GENERIC_SECRET_KEY_GEN }, [
    { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
    { type: js.CKA_KEY_TYPE, value: js.CKK_GENERIC_SECRET },
    { type: js.CKA_TOKEN, value: true },
    { type: js.CKA_VALUE_LEN, value: 32 },
    { type: js.CKA_LABEL, value: 'sync-hmac' },
    { type: js.CKA_ID, value: Buffer.from('9e01', 'hex') },
  ])
  // Closing the token's last session logs it out: the wrong-PIN test below reaches the device.
  raw.C_CloseAllSessions(srcSlot)
})

afterAll(async () => {
  await t.engine.close()
})

describe('connection failures', () => {
  // First: the token is logged out and no right PIN was presented through the module registry yet.
  it('a wrong PIN: test() says login failed with PROVIDER_LOGIN_FAILED, discover and wrap fail typed, the PIN appears nowhere', async () => {
    const source = await createPkcs11SyncSource(connection(SRC_TOKEN, 'EKMS_SYNC_WRONG_PIN'), secrets)
    try {
      const checks = await source.test()
      expect(checks.map((c) => [c.check, c.ok])).toEqual([
        ['connect', true],
        ['login', false],
      ])
      expect(checks[1]?.where).toBe(SRC_TOKEN)
      expect(checks[1]?.error?.code).toBe('PROVIDER_LOGIN_FAILED')
      expect(checks[1]?.error?.message).toContain('CKR_PIN_INCORRECT') // the device refused it
      expectNoPin(JSON.stringify(checks))
      const e1 = await expectCode(discoverAll(source), 'PROVIDER_LOGIN_FAILED')
      const e2 = await expectCode(
        source.wrap(`id:${ID_256}`, SecretBytes.adopt(randomBytes(32)), AAD),
        'PROVIDER_LOGIN_FAILED',
      )
      expectNoPin(messages(e1) + messages(e2))
    } finally {
      await source.close()
    }
  })

  it('an unknown token label: test() says connect failed with PROVIDER_TOKEN_NOT_FOUND; discover fails the same', async () => {
    const source = await createPkcs11SyncSource(connection('no-such-token', 'EKMS_SYNC_SRC_PIN'), secrets)
    try {
      const checks = await source.test()
      expect(checks).toEqual([
        {
          check: 'connect',
          where: 'no-such-token',
          ok: false,
          error: { code: 'PROVIDER_TOKEN_NOT_FOUND', message: expect.stringContaining('no-such-token') },
        },
      ])
      const e = await expectCode(discoverAll(source), 'PROVIDER_TOKEN_NOT_FOUND')
      expectNoPin(messages(e))
    } finally {
      await source.close()
    }
  })

  it('a module that does not exist: connect fails with PROVIDER_MODULE_LOAD_FAILED', async () => {
    const source = await createPkcs11SyncSource(
      connection(SRC_TOKEN, 'EKMS_SYNC_SRC_PIN', '/nonexistent/libpkcs11.so'),
      secrets,
    )
    const checks = await source.test()
    expect(checks.map((c) => [c.check, c.ok, c.error?.code])).toEqual([
      ['connect', false, 'PROVIDER_MODULE_LOAD_FAILED'],
    ])
    await source.close()
  })

  it('refuses a connection of another cloud, and an unresolvable PIN source', async () => {
    const c = connection(SRC_TOKEN, 'EKMS_SYNC_SRC_PIN')
    await expectCode(
      createPkcs11SyncSource(
        {
          ...c,
          cloud: 'aws',
          params: { cloud: 'aws', regions: ['us-east-1'], credentials: { kind: 'default' } },
        },
        secrets,
      ),
      'INVALID_FIELD_ERR',
    )
    await expectCode(
      createPkcs11SyncSource(connection(SRC_TOKEN, 'EKMS_UNSET_PIN_VAR'), secrets),
      'INVALID_FIELD_ERR',
    )
  })
})

describe('discovery and wrap/unwrap on a token of AES keys made outside the engine', () => {
  let source: SyncSource
  beforeAll(async () => {
    source = await createPkcs11SyncSource(connection(SRC_TOKEN, 'EKMS_SYNC_SRC_PIN'), secrets)
  })
  afterAll(async () => {
    await source.close()
  })

  it('test() passes connect, login and list', async () => {
    expect(await source.test()).toEqual([
      { check: 'connect', where: SRC_TOKEN, ok: true },
      { check: 'login', where: SRC_TOKEN, ok: true },
      { check: 'list', where: SRC_TOKEN, ok: true },
    ])
  })

  it('reports every AES key once, by id or label, with the usable and weak rules', async () => {
    const keys = await discoverAll(source)
    const ids = keys.map((k) => k.sourceKeyId)
    expect(ids).toEqual([
      `id:${ID_NOENC}`,
      `id:${ID_WEAK}`,
      `id:${ID_256}`,
      `id:${ID_DUP}`,
      `id:${ID_DOOMED}`,
      'label:sync-aes128-label-only',
    ])
    const by = new Map(keys.map((k) => [k.sourceKeyId, k]))
    const k256 = by.get(`id:${ID_256}`) as DiscoveredKey
    expect(k256).toMatchObject({
      vault: SRC_TOKEN,
      name: 'sync-aes256',
      keyType: 'AES',
      usable: true,
      enabled: true,
      versions: [{ version: '1', ref: `id:${ID_256}`, enabled: true, createdAt: undefined }],
      attributes: {
        label: 'sync-aes256',
        id: ID_256,
        valueLen: 32,
        sensitive: true,
        extractable: false,
        alwaysSensitive: true,
        neverExtractable: true,
        token: true,
        private: true,
        encrypt: true,
        decrypt: true,
        weak: false,
      },
    })
    expect(k256.attributes['ambiguous']).toBeUndefined()
    expect(k256.attributes['unusableReasons']).toBeUndefined()
    expect(JSON.parse(JSON.stringify(k256.attributes))).toEqual(k256.attributes) // JSON-serialisable
    expect(by.get('label:sync-aes128-label-only')).toMatchObject({
      name: 'sync-aes128-label-only',
      usable: true,
      versions: [{ ref: 'label:sync-aes128-label-only' }],
      attributes: { id: '', valueLen: 16 },
    })
    expect(by.get(`id:${ID_NOENC}`)).toMatchObject({
      usable: false,
      enabled: false,
      versions: [{ enabled: false }],
      attributes: { encrypt: false, unusableReasons: ['encrypt-decrypt-not-allowed'] },
    })
    expect(by.get(`id:${ID_WEAK}`)).toMatchObject({
      usable: true,
      attributes: { weak: true, extractable: true, sensitive: false, valueLen: 24 },
    })
    const dup = by.get(`id:${ID_DUP}`) as DiscoveredKey
    expect(dup).toMatchObject({ usable: false, attributes: { ambiguous: true, objects: 2 } })
    expect(dup.name).toBe('dup-a') // the first by label
    // Stable: a second discovery reports the same.
    expect(await discoverAll(source)).toEqual(keys)
  })

  it('wraps and unwraps with every usable key; the blob is 0x01 || iv || ciphertext || tag', async () => {
    const usable = (await discoverAll(source)).filter((k) => k.usable)
    expect(usable.length).toBe(4)
    for (const k of usable) {
      const dek = randomBytes(32)
      const ref = k.versions[0]?.ref as string
      const blob = await source.wrap(ref, SecretBytes.copyOf(dek), AAD)
      expect(blob.length).toBe(1 + 12 + 32 + 16)
      expect(blob[0]).toBe(0x01)
      const again = await source.wrap(ref, SecretBytes.copyOf(dek), AAD)
      expect(again.subarray(1, 13).equals(blob.subarray(1, 13))).toBe(false) // a fresh IV each time
      const out = await source.unwrap(ref, blob, AAD)
      expect(out.exportCopy().equals(dek)).toBe(true)
    }
  })

  it('wrong AAD and a tampered body: UNWRAP_AAD_MISMATCH; a malformed blob: CIPHERTEXT_INVALID', async () => {
    const ref = `id:${ID_256}`
    const blob = await source.wrap(ref, SecretBytes.adopt(randomBytes(32)), AAD)
    await expectCode(source.unwrap(ref, blob, Buffer.from('another aad')), 'UNWRAP_AAD_MISMATCH')
    const tampered = Buffer.from(blob)
    tampered[20] = (tampered[20] as number) ^ 0x01
    await expectCode(source.unwrap(ref, tampered, AAD), 'UNWRAP_AAD_MISMATCH')
    const badIv = Buffer.from(blob)
    badIv[3] = (badIv[3] as number) ^ 0x80
    await expectCode(source.unwrap(ref, badIv, AAD), 'UNWRAP_AAD_MISMATCH')
    // Under another key of the token it does not authenticate either.
    await expectCode(source.unwrap(`id:${ID_WEAK}`, blob, AAD), 'UNWRAP_AAD_MISMATCH')
    const format = Buffer.from(blob)
    format[0] = 0x02
    await expectCode(source.unwrap(ref, format, AAD), 'CIPHERTEXT_INVALID')
    await expectCode(source.unwrap(ref, blob.subarray(0, 29), AAD), 'CIPHERTEXT_INVALID')
    // The session pool is still healthy after the failures.
    expect((await source.unwrap(ref, blob, AAD)).length).toBe(32)
  })

  it('refuses a key that may not encrypt, an ambiguous reference, a malformed reference and an engine object', async () => {
    const dek = (): SecretBytes => SecretBytes.adopt(randomBytes(32))
    const e = await expectCode(source.wrap(`id:${ID_NOENC}`, dek(), AAD), 'PROVIDER_ERROR')
    expect(e.message).toContain('CKR_KEY_FUNCTION_NOT_PERMITTED')
    const amb = await expectCode(source.wrap(`id:${ID_DUP}`, dek(), AAD), 'PROVIDER_ERROR')
    expect(amb.message).toContain('ambiguous')
    await expectCode(source.wrap('sync-aes256', dek(), AAD), 'INVALID_FIELD_ERR')
    await expectCode(source.wrap('id:ABCD', dek(), AAD), 'INVALID_FIELD_ERR')
    await expectCode(source.wrap('id:ee01', dek(), AAD), 'KEY_VERSION_MATERIAL_MISSING')
    await expectCode(
      source.wrap('label:ekms/v1/not-a-customer-key', dek(), AAD),
      'KEY_VERSION_MATERIAL_MISSING',
    )
    await expectCode(source.wrap('id:9e01', dek(), AAD), 'KEY_VERSION_MATERIAL_MISSING') // not AES
  })

  it('a key destroyed at the source leaves discovery, and unwrap says KEY_VERSION_MATERIAL_MISSING', async () => {
    const ref = `id:${ID_DOOMED}`
    const blob = await source.wrap(ref, SecretBytes.adopt(randomBytes(32)), AAD) // its handle is cached now
    destroyById(srcSlot, SRC_PIN, ID_DOOMED)
    const ids = (await discoverAll(source)).map((k) => k.sourceKeyId)
    expect(ids).not.toContain(ref)
    expect(ids).toContain(`id:${ID_256}`)
    await expectCode(source.unwrap(ref, blob, AAD), 'KEY_VERSION_MATERIAL_MISSING')
    await expectCode(
      source.wrap(ref, SecretBytes.adopt(randomBytes(32)), AAD),
      'KEY_VERSION_MATERIAL_MISSING',
    )
  })

  it('an aborted discovery stops with ABORTED', async () => {
    const ac = new AbortController()
    ac.abort()
    const it = source.discover({ signal: ac.signal })[Symbol.asyncIterator]()
    await expectCode(it.next(), 'ABORTED')
  })
})

describe("the engine's own token", () => {
  it("discovers only the customer's key there, never the engine's root keys or vault keys", async () => {
    const source = await createPkcs11SyncSource(connection(env('EKMS_TEST_TOKEN'), 'EKMS_TEST_PIN'), secrets)
    try {
      const keys = await discoverAll(source)
      expect(keys.map((k) => [k.sourceKeyId, k.name, k.usable])).toEqual([
        [`id:${ID_FOREIGN}`, 'customer-on-engine-token', true],
      ])
      await expectCode(
        source.wrap(`id:${engineRootRef}`, SecretBytes.adopt(randomBytes(32)), AAD),
        'KEY_VERSION_MATERIAL_MISSING',
      )
      await expectCode(
        source.wrap(`id:${engineVaultRef}`, SecretBytes.adopt(randomBytes(32)), AAD),
        'KEY_VERSION_MATERIAL_MISSING',
      )
    } finally {
      await source.close()
    }
  })

  it('a wrong PIN for the token the engine is logged in to is refused, and the engine is not logged out', async () => {
    const source = await createPkcs11SyncSource(
      connection(env('EKMS_TEST_TOKEN'), 'EKMS_SYNC_WRONG_PIN'),
      secrets,
    )
    const checks = await source.test()
    expect(checks.map((c) => [c.check, c.ok, c.error?.code])).toEqual([
      ['connect', true, undefined],
      ['login', false, 'PROVIDER_LOGIN_FAILED'],
    ])
    expectNoPin(JSON.stringify(checks))
    await source.close()
    const w = await t.engine.wrap(A, rootId, { aad: ['x'] })
    expect((await t.engine.unwrap(A, rootId, w.ciphertext, { aad: ['x'] })).plaintext.length).toBe(32)
  })

  it("shares the module with the engine's provider: opening and closing sources never finalises it", async () => {
    const before = await t.engine.wrap(A, rootId, { aad: ['shared'] })
    const generation = t.provider.generation
    for (let i = 0; i < 3; i++) {
      const own = await createPkcs11SyncSource(connection(env('EKMS_TEST_TOKEN'), 'EKMS_TEST_PIN'), secrets)
      const other = await createPkcs11SyncSource(connection(SRC_TOKEN, 'EKMS_SYNC_SRC_PIN'), secrets)
      expect((await own.test()).every((c) => c.ok)).toBe(true)
      expect((await discoverAll(other)).length).toBeGreaterThan(0)
      const blob = await own.wrap(`id:${ID_FOREIGN}`, SecretBytes.adopt(randomBytes(32)), AAD)
      expect((await own.unwrap(`id:${ID_FOREIGN}`, blob, AAD)).length).toBe(32)
      // Interleaved with the engine's own operations while both are open.
      const mid = await t.engine.wrap(A, rootId, { aad: ['mid'] })
      await t.engine.unwrap(A, rootId, mid.ciphertext, { aad: ['mid'] })
      await own.close()
      await other.close()
      await own.close() // idempotent
    }
    expect(t.provider.generation).toBe(generation) // no re-initialisation happened
    expect((await t.provider.health()).ok).toBe(true)
    const u = await t.engine.unwrap(A, rootId, before.ciphertext, { aad: ['shared'] })
    expect(u.plaintext.length).toBe(32)
    const after = await t.engine.wrap(A, rootId, { aad: ['after'] })
    await t.engine.unwrap(A, rootId, after.ciphertext, { aad: ['after'] })
    // A closed source refuses work.
    const closed = await createPkcs11SyncSource(connection(SRC_TOKEN, 'EKMS_SYNC_SRC_PIN'), secrets)
    await closed.close()
    await expectCode(discoverAll(closed), 'PROVIDER_UNAVAILABLE')
  })
})
