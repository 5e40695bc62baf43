/**
 * Import tokens and secure import through the official Key Protect Node SDK (@ibm-cloud/ibm-key-protect)
 * against `envelope-kms` on 127.0.0.1 with a real engine (SoftHSM2 token + SQLite catalog). The client side
 * (RSA-OAEP of the material under the token's public key, AES-GCM of the nonce under the material) is done
 * with node:crypto, as the seed's guide describes. SoftHSM2 2.6.1 unwraps RSA-OAEP with SHA-1 only
 * (native-config/softhsm2.json `oaepHashes`), so the imports use `RSAES_OAEP_SHA_1`; `RSAES_OAEP_SHA_256`
 * is refused with PROVIDER_UNSUPPORTED on this token before any HSM call.
 *
 * Every refusal is checked for its status and reason code, and for leaving the catalog (keys, versions)
 * and the token (its object count, read with raw pkcs11js) as they were.
 */
import { constants, createCipheriv, publicEncrypt, randomBytes, randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import type * as P11 from 'pkcs11js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { env, SOFTHSM_MODULE } from '../../helpers/engine.js'
import { ADMIN_KEY, INSTANCE_A, INSTANCE_B, startTestServer, type TestServer } from '../../helpers/http.js'
import { js, rawModule, slotByLabel } from '../../helpers/raw-pkcs11.js'

const require = createRequire(import.meta.url)
const KeyProtectV2 = require('@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2') as new (o: {
  authenticator: unknown
  serviceUrl: string
}) => Record<string, (params: Record<string, unknown>) => Promise<SdkResponse>>
const { BearerTokenAuthenticator } = require('@ibm-cloud/ibm-key-protect/auth') as {
  BearerTokenAuthenticator: new (o: { bearerToken: string }) => unknown
}

interface SdkResponse {
  status: number
  headers: Record<string, string>
  result: any
}

const KEY_TYPE = 'application/vnd.ibm.kms.key+json'
let s: TestServer
let kp: Record<string, (params: Record<string, unknown>) => Promise<SdkResponse>>
let p11: P11.PKCS11
let session: P11.Handle
const inst = { bluemixInstance: INSTANCE_A }

async function sdkError(p: Promise<unknown>): Promise<{ status: number; code: string }> {
  try {
    await p
  } catch (e) {
    const err = e as { status: number; body: unknown }
    let body = err.body as any
    while (typeof body === 'string') body = JSON.parse(body)
    return { status: err.status, code: body.resources[0].reasons[0].code as string }
  }
  throw new Error('expected the SDK call to fail')
}

/** Token objects (secret and private keys) on the test token. */
function tokenObjects(): number {
  p11.C_FindObjectsInit(session, [{ type: js.CKA_TOKEN, value: true }])
  try {
    return p11.C_FindObjects(session, 10_000).length
  } finally {
    p11.C_FindObjectsFinal(session)
  }
}

/** What a refusal must leave unchanged: the token's objects and the instance's keys with their versions. */
async function snapshot(): Promise<string> {
  const keys = await s.t.engine.listKeys(INSTANCE_A, { limit: 5000, states: [0, 1, 2, 3, 5] })
  const versions = await Promise.all(
    keys.keys.map(
      async (k) =>
        (await s.t.engine.listKeyVersions(INSTANCE_A, k.id, { allKeyStates: true })).versions.length,
    ),
  )
  return JSON.stringify({ objects: tokenObjects(), keys: keys.keys.map((k) => [k.id, k.state]), versions })
}

interface Token {
  pem: string
  nonce: Buffer
}

async function newToken(params: Record<string, unknown> = {}, instance = inst): Promise<Token> {
  const created = await kp['postImportToken']!({
    ...instance,
    expiration: 600,
    maxAllowedRetrievals: 5,
    ...params,
  })
  expect(created.status).toBe(200)
  const got = await kp['getImportToken']!({ ...instance })
  return {
    pem: Buffer.from(got.result.payload as string, 'base64').toString('utf8'),
    nonce: Buffer.from(got.result.nonce as string, 'base64'),
  }
}

/** The client side of a secure import (seed §4.5, Go `import_token.go`), with node:crypto. */
function seal(
  t: Token,
  material: Buffer,
  alg: 'RSAES_OAEP_SHA_1' | 'RSAES_OAEP_SHA_256' = 'RSAES_OAEP_SHA_1',
  nonce: Buffer = t.nonce,
): { payload: string; encryptedNonce: string; iv: string; encryptionAlgorithm: string } {
  const payload = publicEncrypt(
    {
      key: t.pem,
      oaepHash: alg === 'RSAES_OAEP_SHA_1' ? 'sha1' : 'sha256',
      padding: constants.RSA_PKCS1_OAEP_PADDING,
    },
    material,
  )
  const iv = randomBytes(12)
  const c = createCipheriv(`aes-${material.length * 8}-gcm` as 'aes-256-gcm', material, iv)
  const enc = Buffer.concat([c.update(nonce), c.final(), c.getAuthTag()])
  return {
    payload: payload.toString('base64'),
    encryptedNonce: enc.toString('base64'),
    iv: iv.toString('base64'),
    encryptionAlgorithm: alg,
  }
}

function createBody(name: string, secure: Record<string, string>): Record<string, unknown> {
  return {
    metadata: { collectionType: KEY_TYPE, collectionTotal: 1 },
    resources: [{ type: KEY_TYPE, name, extractable: false, ...secure }],
  }
}

beforeAll(async () => {
  s = await startTestServer()
  kp = new KeyProtectV2({
    authenticator: new BearerTokenAuthenticator({ bearerToken: ADMIN_KEY }),
    serviceUrl: s.url,
  })
  p11 = rawModule(SOFTHSM_MODULE)
  session = p11.C_OpenSession(
    slotByLabel(p11, env('EKMS_TEST_TOKEN')),
    js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION,
  )
})
afterAll(async () => {
  p11.C_CloseSession(session)
  await s.close()
})

describe('Key Protect SDK: import tokens', () => {
  it('postImportToken answers 200 un-enveloped; getImportToken returns a PEM RSA-2048 key, a 12-byte nonce, and counts down', async () => {
    const created = await kp['postImportToken']!({ ...inst, expiration: 1200, maxAllowedRetrievals: 3 })
    expect(created.status).toBe(200)
    expect(created.result).toEqual({
      creationDate: '2026-01-01T00:00:00Z',
      expirationDate: '2026-01-01T00:20:00Z',
      maxAllowedRetrievals: 3,
      remainingRetrievals: 3,
    })
    const got = await kp['getImportToken']!({ ...inst })
    expect(got.status).toBe(200)
    expect(got.result.remainingRetrievals).toBe(2)
    const pem = Buffer.from(got.result.payload as string, 'base64').toString('utf8')
    expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/)
    const { createPublicKey } = await import('node:crypto')
    expect(createPublicKey(pem).asymmetricKeyDetails).toEqual({ modulusLength: 2048, publicExponent: 65537n })
    expect(Buffer.from(got.result.nonce as string, 'base64')).toHaveLength(12)
    expect((await kp['getImportToken']!({ ...inst })).result.remainingRetrievals).toBe(1)
    expect(s.audit.events.map((e) => e.event)).toEqual(
      expect.arrayContaining(['kms.import-token.create', 'kms.import-token.read']),
    )
  })

  it('a new token replaces the old one and destroys its key pair (one token per instance)', async () => {
    await newToken()
    const before = tokenObjects()
    await newToken()
    expect(tokenObjects()).toBe(before)
  })

  it('defaults: expiration 600 s, maxAllowedRetrievals 1; out-of-range values are 400 INVALID_FIELD_ERR', async () => {
    const created = await kp['postImportToken']!({ ...inst })
    expect(created.result.maxAllowedRetrievals).toBe(1)
    expect(Date.parse(created.result.expirationDate) - Date.parse(created.result.creationDate)).toBe(600_000)
    expect(await sdkError(kp['postImportToken']!({ ...inst, expiration: 299 }))).toEqual({
      status: 400,
      code: 'INVALID_FIELD_ERR',
    })
    expect(await sdkError(kp['postImportToken']!({ ...inst, maxAllowedRetrievals: 501 }))).toEqual({
      status: 400,
      code: 'INVALID_FIELD_ERR',
    })
  })
})

describe('Key Protect SDK: secure import', () => {
  it('creates a root key from RSA-OAEP-encrypted material; wrap/unwrap work; rotate and restore take a token', async () => {
    const material = randomBytes(32)
    const t = await newToken()
    const created = await kp['createKey']!({ ...inst, body: createBody('secure-import', seal(t, material)) })
    expect(created.status).toBe(201)
    const key = created.result.resources[0]
    expect(key.imported).toBe(true)
    expect(key.extractable).toBe(false)
    const wrapped = await kp['wrapKey']!({ ...inst, id: key.id, keyActionWrapBody: {} })
    const unwrapped = await kp['unwrapKey']!({
      ...inst,
      id: key.id,
      keyActionUnwrapBody: { ciphertext: wrapped.result.ciphertext },
    })
    expect(unwrapped.result.plaintext).toBe(wrapped.result.plaintext)
    // The material in the HSM is `material`: the same plaintext import path proves it at restore.
    const [v1] = (await s.t.engine.listKeyVersions(INSTANCE_A, key.id)).versions
    expect(v1).toBeDefined()

    // Rotate with new material under a (new) token.
    const material2 = randomBytes(16)
    const t2 = await newToken()
    const rotated = await kp['rotateKey']!({ ...inst, id: key.id, keyActionRotateBody: seal(t2, material2) })
    expect(rotated.status).toBe(204)
    expect((await s.t.engine.listKeyVersions(INSTANCE_A, key.id)).versions).toHaveLength(2)
    const again = await kp['unwrapKey']!({
      ...inst,
      id: key.id,
      keyActionUnwrapBody: { ciphertext: wrapped.result.ciphertext },
    })
    expect(again.result.plaintext).toBe(wrapped.result.plaintext)

    // Restore: only the current material, proven inside the HSM, is accepted.
    await kp['deleteKey']!({ ...inst, id: key.id })
    s.t.clock.advance(31_000)
    const t3 = await newToken()
    const objects = tokenObjects()
    const restoreBody = (secure: Record<string, string>): Record<string, unknown> => ({
      metadata: { collectionType: 'application/vnd.ibm.kms.key_action_restore+json', collectionTotal: 1 },
      resources: [secure],
    })
    const wrong = await fetch(`${s.url}/api/v2/keys/${key.id}/restore`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'bluemix-instance': INSTANCE_A },
      body: JSON.stringify(restoreBody(seal(t3, material))), // v1's material, not the current one
    })
    expect(wrong.status).toBe(400)
    expect(((await wrong.json()) as any).resources[0].reasons[0].code).toBe('INVALID_FIELD_ERR')
    expect(tokenObjects()).toBe(objects)
    const restored = await kp['restoreKey']!({
      ...inst,
      id: key.id,
      keyRestoreBody: restoreBody(seal(t3, material2)),
    })
    expect(restored.status).toBe(201)
    expect(tokenObjects()).toBe(objects)
  })

  it('imports 16-, 24- and 32-byte material', async () => {
    for (const n of [16, 24, 32]) {
      const t = await newToken()
      const created = await kp['createKey']!({
        ...inst,
        body: createBody(`secure-${n}`, seal(t, randomBytes(n))),
      })
      expect(created.status).toBe(201)
    }
  })
})

describe('Key Protect SDK: secure import refusals change nothing', () => {
  async function refused(
    body: Record<string, unknown>,
    instance = inst,
  ): Promise<{ status: number; code: string }> {
    const before = await snapshot()
    const res = await sdkError(kp['createKey']!({ ...instance, body }))
    expect(await snapshot()).toBe(before)
    return res
  }

  it('wrong nonce: 400 INVALID_FIELD_ERR, no object left on the token', async () => {
    const t = await newToken()
    expect(
      await refused(createBody('bad-nonce', seal(t, randomBytes(32), 'RSAES_OAEP_SHA_1', randomBytes(12)))),
    ).toEqual({
      status: 400,
      code: 'INVALID_FIELD_ERR',
    })
  })

  it('tampered payload: 400 INVALID_FIELD_ERR', async () => {
    const t = await newToken()
    const sealed = seal(t, randomBytes(32))
    const p = Buffer.from(sealed.payload, 'base64')
    p[100] = (p[100] as number) ^ 1
    expect(await refused(createBody('tampered', { ...sealed, payload: p.toString('base64') }))).toEqual({
      status: 400,
      code: 'INVALID_FIELD_ERR',
    })
  })

  it('tampered encryptedNonce: 400 INVALID_FIELD_ERR', async () => {
    const t = await newToken()
    const sealed = seal(t, randomBytes(32))
    const n = Buffer.from(sealed.encryptedNonce, 'base64')
    n[0] = (n[0] as number) ^ 1
    expect(
      await refused(createBody('tampered-nonce', { ...sealed, encryptedNonce: n.toString('base64') })),
    ).toEqual({
      status: 400,
      code: 'INVALID_FIELD_ERR',
    })
  })

  it('expired token: 409 IMPORT_TOKEN_EXPIRED_ERR on create and on GET; no key made, its key pair leaves the HSM', async () => {
    const t = await newToken({ expiration: 300 })
    const sealed = seal(t, randomBytes(32))
    s.t.clock.advance(300_000)
    const before = JSON.parse(await snapshot()) as { objects: number }
    expect(await sdkError(kp['createKey']!({ ...inst, body: createBody('expired', sealed) }))).toEqual({
      status: 409,
      code: 'IMPORT_TOKEN_EXPIRED_ERR',
    })
    // The catalog is unchanged; on the token only the expired key pair's private key is gone.
    expect(JSON.parse(await snapshot())).toEqual({ ...before, objects: before.objects - 1 })
    expect(await sdkError(kp['getImportToken']!({ ...inst }))).toEqual({
      status: 409,
      code: 'IMPORT_TOKEN_EXPIRED_ERR',
    })
    expect(await s.t.engine.expireImportTokens()).toBe(1)
    expect(tokenObjects()).toBe(before.objects - 1)
    expect(await sdkError(kp['getImportToken']!({ ...inst }))).toEqual({
      status: 404,
      code: 'IMPORT_TOKEN_NOT_FOUND_ERR',
    })
  })

  it('retrievals exhausted: GET answers 409 IMPORT_TOKEN_EXPIRED_ERR; the last retrieval can still import', async () => {
    await kp['postImportToken']!({ ...inst, maxAllowedRetrievals: 1 })
    const got = await kp['getImportToken']!({ ...inst })
    expect(got.result.remainingRetrievals).toBe(0)
    const before = await snapshot()
    expect(await sdkError(kp['getImportToken']!({ ...inst }))).toEqual({
      status: 409,
      code: 'IMPORT_TOKEN_EXPIRED_ERR',
    })
    expect(await snapshot()).toBe(before)
    const t = {
      pem: Buffer.from(got.result.payload as string, 'base64').toString('utf8'),
      nonce: Buffer.from(got.result.nonce as string, 'base64'),
    }
    expect(
      (await kp['createKey']!({ ...inst, body: createBody('last-retrieval', seal(t, randomBytes(32))) }))
        .status,
    ).toBe(201)
  })

  it('no token: 404 IMPORT_TOKEN_NOT_FOUND_ERR (tokens are per instance)', async () => {
    const t = await newToken() // instance A's token
    expect(await sdkError(kp['getImportToken']!({ bluemixInstance: INSTANCE_B }))).toEqual({
      status: 404,
      code: 'IMPORT_TOKEN_NOT_FOUND_ERR',
    })
    expect(
      await refused(createBody('no-token', seal(t, randomBytes(32))), { bluemixInstance: INSTANCE_B }),
    ).toEqual({
      status: 404,
      code: 'IMPORT_TOKEN_NOT_FOUND_ERR',
    })
  })

  it('RSAES_OAEP_SHA_256 on SoftHSM2 2.6.1: 400 PROVIDER_UNSUPPORTED before any HSM call', async () => {
    const t = await newToken()
    expect(await refused(createBody('sha256', seal(t, randomBytes(32), 'RSAES_OAEP_SHA_256')))).toEqual({
      status: 400,
      code: 'PROVIDER_UNSUPPORTED',
    })
  })

  it('encryptedNonce without iv: 400 MISSING_FIELD_ERR', async () => {
    const t = await newToken()
    const sealed: Partial<ReturnType<typeof seal>> = seal(t, randomBytes(32))
    delete sealed.iv
    expect(await refused(createBody('no-iv', sealed as Record<string, string>))).toEqual({
      status: 400,
      code: 'MISSING_FIELD_ERR',
    })
  })
})

describe('crash safety of import-token key pairs', () => {
  it('a key pair without a token row (crash before the row) is swept after 15 min; live and foreign pairs stay', async () => {
    await newToken({ expiration: 86_400 })
    const c = s.t.clock
    const orphan = await s.t.provider.createImportKeyPair({
      catalogId: s.t.store.catalogId,
      createdAt: c.now(),
    })
    const foreign = await s.t.provider.createImportKeyPair({ catalogId: randomUUID(), createdAt: 0 })
    const before = tokenObjects()
    expect(await s.t.engine.expireImportTokens()).toBe(0) // within the grace period: maybe in flight
    c.advance(15 * 60_000 + 1)
    expect(await s.t.engine.expireImportTokens()).toBe(1)
    expect(tokenObjects()).toBe(before - 1)
    expect((await s.t.provider.listImportKeyPairs()).map((k) => k.ref)).not.toContain(orphan.ref)
    expect((await kp['getImportToken']!({ ...inst })).status).toBe(200) // the live token's pair is kept
    await s.t.provider.destroyImportKeyPair(foreign.ref)
  })
})

describe('HSM attributes of securely imported keys and of the import key pair', () => {
  it('the imported AES object and the RSA private key are sensitive, non-extractable token objects', async () => {
    const t = await newToken()
    const created = await kp['createKey']!({ ...inst, body: createBody('attrs', seal(t, randomBytes(32))) })
    const key = created.result.resources[0]
    const [v] = (await s.t.engine.listKeyVersions(INSTANCE_A, key.id)).versions
    const ref = (await s.t.store.listVersions(INSTANCE_A, key.id))[0]!.providerRef
    expect(v).toBeDefined()
    const a = await s.t.provider.inspectVersion(ref)
    expect(a).toMatchObject({
      token: true,
      sensitive: true,
      extractable: false,
      wrap: false,
      unwrap: false,
      derive: false,
    })
    expect(a.allowedMechanisms).toEqual([js.CKM_AES_GCM])
    // PKCS#11: an unwrapped key came from outside the token, so it is never ALWAYS_SENSITIVE or NEVER_EXTRACTABLE.
    expect(a.alwaysSensitive).toBe(false)
    expect(a.neverExtractable).toBe(false)
    expect(a.local).toBe(false)

    const token = await s.t.store.getImportToken(INSTANCE_A)
    const id = Buffer.from(token!.providerRef, 'hex')
    p11.C_FindObjectsInit(session, [
      { type: js.CKA_CLASS, value: js.CKO_PRIVATE_KEY },
      { type: js.CKA_ID, value: id },
    ])
    const [priv] = p11.C_FindObjects(session, 2)
    p11.C_FindObjectsFinal(session)
    expect(priv).toBeDefined()
    const names = [
      'CKA_TOKEN',
      'CKA_PRIVATE',
      'CKA_SENSITIVE',
      'CKA_EXTRACTABLE',
      'CKA_ALWAYS_SENSITIVE',
      'CKA_NEVER_EXTRACTABLE',
      'CKA_LOCAL',
      'CKA_DECRYPT',
      'CKA_UNWRAP',
      'CKA_SIGN',
      'CKA_SIGN_RECOVER',
      'CKA_DERIVE',
      'CKA_MODIFIABLE',
    ] as const
    const vals = p11.C_GetAttributeValue(
      session,
      priv!,
      names.map((n) => ({ type: js[n] })),
    )
    const attrs = Object.fromEntries(names.map((n, i) => [n, vals[i]?.value?.[0] === 1]))
    expect(attrs).toEqual({
      CKA_TOKEN: true,
      CKA_PRIVATE: true,
      CKA_SENSITIVE: true,
      CKA_EXTRACTABLE: false,
      CKA_ALWAYS_SENSITIVE: true,
      CKA_NEVER_EXTRACTABLE: true,
      CKA_LOCAL: true,
      CKA_DECRYPT: true,
      CKA_UNWRAP: true,
      CKA_SIGN: false,
      CKA_SIGN_RECOVER: false,
      CKA_DERIVE: false,
      CKA_MODIFIABLE: false,
    })
    expect(() => p11.C_GetAttributeValue(session, priv!, [{ type: js.CKA_PRIVATE_EXPONENT }])).toThrow(
      /CKR_ATTRIBUTE_SENSITIVE/,
    )
  })
})
