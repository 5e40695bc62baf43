/**
 * The official IBM Key Protect Node SDK (@ibm-cloud/ibm-key-protect) against `envelope-kms` served on
 * 127.0.0.1 with a real engine (SoftHSM2 token + SQLite catalog): every SDK method of the keys, key
 * actions, policies, aliases and key rings endpoints.
 */
import { createRequire } from 'node:module'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, INSTANCE_A, startTestServer, TENANT_A_KEY, type TestServer } from '../../helpers/http.js'

const require = createRequire(import.meta.url)
// The SDK is CommonJS without ESM entry points.
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
interface SdkError {
  status: number
  body: unknown
  message: string
}

const HOUR = 3_600_000
let s: TestServer
let kp: Record<string, (params: Record<string, unknown>) => Promise<SdkResponse>>
const inst = { bluemixInstance: INSTANCE_A }

async function sdkError(p: Promise<unknown>): Promise<{ status: number; code: string }> {
  try {
    await p
  } catch (e) {
    const err = e as SdkError
    // sdk-core stringifies the response data, which axios may have left as a string itself.
    let body = err.body as any
    while (typeof body === 'string') body = JSON.parse(body)
    return { status: err.status, code: body.resources[0].reasons[0].code as string }
  }
  throw new Error('expected the SDK call to fail')
}

/**
 * restoreKey asks for a streamed response, so the SDK cannot show its error body: the status comes from
 * the SDK, the reason code from the same request sent with fetch.
 */
async function restoreError(id: string): Promise<{ status: number; code: string }> {
  let status = 0
  try {
    await kp['restoreKey']!({ ...inst, id })
  } catch (e) {
    status = (e as SdkError).status
  }
  const res = await fetch(`${s.url}/api/v2/keys/${id}/restore`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'bluemix-instance': INSTANCE_A },
  })
  const body = (await res.json()) as any
  expect(res.status).toBe(status)
  return { status, code: body.resources[0].reasons[0].code as string }
}

beforeAll(async () => {
  s = await startTestServer()
  kp = new KeyProtectV2({
    authenticator: new BearerTokenAuthenticator({ bearerToken: ADMIN_KEY }),
    serviceUrl: s.url,
  })
})
afterAll(async () => {
  await s.close()
})

describe('Key Protect SDK: the key lifecycle', () => {
  it('create → wrap → unwrap → rotate → unwrap old → rewrap → disable → enable → delete → restore → purge', async () => {
    const created = await kp['createKey']!({
      ...inst,
      body: {
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [
          {
            type: 'application/vnd.ibm.kms.key+json',
            name: 'sdk-root',
            extractable: false,
            description: 'from the SDK',
          },
        ],
      },
    })
    expect(created.status).toBe(201)
    const key = created.result.resources[0]
    expect(key).toMatchObject({
      name: 'sdk-root',
      extractable: false,
      state: 1,
      keyRingID: 'default',
      deleted: false,
    })
    expect(key.keyVersion.id).toBe(key.id)
    expect(key.crn).toContain(`:${INSTANCE_A}:key:${key.id}`)
    expect(key.payload).toBeUndefined()

    const wrapped = await kp['wrapKey']!({ ...inst, id: key.id, keyActionWrapBody: {} })
    expect(wrapped.status).toBe(200)
    const dek = Buffer.from(wrapped.result.plaintext, 'base64')
    expect(dek).toHaveLength(32)
    expect(wrapped.result.keyVersion.id).toBe(key.id)

    const unwrapped = await kp['unwrapKey']!({
      ...inst,
      id: key.id,
      keyActionUnwrapBody: { ciphertext: wrapped.result.ciphertext },
    })
    expect(Buffer.from(unwrapped.result.plaintext, 'base64').equals(dek)).toBe(true)
    expect(unwrapped.result.ciphertext).toBeUndefined()

    const rotated = await kp['rotateKey']!({ ...inst, id: key.id, keyActionRotateBody: {} })
    expect(rotated.status).toBe(204)
    const versions = await kp['getKeyVersions']!({ ...inst, id: key.id })
    expect(versions.result.metadata.collectionTotal).toBe(2)
    const latest = (await kp['getKey']!({ ...inst, id: key.id })).result.resources[0].keyVersion.id
    expect(latest).not.toBe(key.id)

    const old = await kp['unwrapKey']!({
      ...inst,
      id: key.id,
      keyActionUnwrapBody: { ciphertext: wrapped.result.ciphertext },
    })
    expect(Buffer.from(old.result.plaintext, 'base64').equals(dek)).toBe(true)
    expect(old.result.keyVersion.id).toBe(key.id)
    expect(old.result.rewrappedKeyVersion.id).toBe(latest)
    const again = await kp['unwrapKey']!({
      ...inst,
      id: key.id,
      keyActionUnwrapBody: { ciphertext: old.result.ciphertext },
    })
    expect(Buffer.from(again.result.plaintext, 'base64').equals(dek)).toBe(true)
    expect(again.result.ciphertext).toBeUndefined()

    const rewrapped = await kp['rewrapKey']!({
      ...inst,
      id: key.id,
      keyActionRewrapBody: { ciphertext: wrapped.result.ciphertext },
    })
    expect(rewrapped.result.keyVersion.id).toBe(key.id)
    expect(rewrapped.result.rewrappedKeyVersion.id).toBe(latest)

    expect((await kp['disableKey']!({ ...inst, id: key.id })).status).toBe(204)
    expect(await sdkError(kp['wrapKey']!({ ...inst, id: key.id, keyActionWrapBody: {} }))).toEqual({
      status: 409,
      code: 'KEY_ACTION_INVALID_STATE_ERR',
    })
    expect((await kp['getKeyMetadata']!({ ...inst, id: key.id })).result.resources[0].state).toBe(2)
    expect(await sdkError(kp['enableKey']!({ ...inst, id: key.id }))).toEqual({
      status: 409,
      code: 'KEY_ACTION_INVALID_STATE_ERR',
    }) // within 30 s of the state change
    s.t.clock.advance(31_000)
    expect((await kp['enableKey']!({ ...inst, id: key.id })).status).toBe(204)
    expect((await kp['wrapKey']!({ ...inst, id: key.id, keyActionWrapBody: {} })).status).toBe(200)

    const deleted = await kp['deleteKey']!({ ...inst, id: key.id, prefer: 'return=representation' })
    expect(deleted.status).toBe(200)
    expect(deleted.result.resources[0]).toMatchObject({
      state: 5,
      deleted: true,
      purgeAllowed: false,
      deletedBy: 'admin',
    })
    expect(await sdkError(kp['wrapKey']!({ ...inst, id: key.id, keyActionWrapBody: {} }))).toEqual({
      status: 410,
      code: 'KEY_DELETED_ERR',
    })
    expect(await sdkError(kp['deleteKey']!({ ...inst, id: key.id }))).toEqual({
      status: 410,
      code: 'KEY_DELETED_ERR',
    })
    expect(await restoreError(key.id)).toEqual({ status: 409, code: 'REQ_TOO_EARLY_ERR' })
    s.t.clock.advance(31_000)
    const restored = await kp['restoreKey']!({ ...inst, id: key.id })
    expect(restored.status).toBe(201)
    const restoredKey = await streamJson(restored.result)
    expect(restoredKey.resources[0].state).toBe(1)
    const afterRestore = await kp['unwrapKey']!({
      ...inst,
      id: key.id,
      keyActionUnwrapBody: { ciphertext: old.result.ciphertext },
    })
    expect(Buffer.from(afterRestore.result.plaintext, 'base64').equals(dek)).toBe(true)

    expect((await kp['deleteKey']!({ ...inst, id: key.id })).status).toBe(204)
    expect(await sdkError(kp['purgeKey']?.({ ...inst, id: key.id }) ?? purge(key.id))).toEqual({
      status: 409,
      code: 'REQ_TOO_EARLY_ERR',
    })
    s.t.clock.advance(4 * HOUR)
    const purged = await (kp['purgeKey']?.({ ...inst, id: key.id }) ?? purge(key.id))
    expect(purged.status).toBe(204)
    expect(await sdkError(kp['getKey']!({ ...inst, id: key.id }))).toEqual({
      status: 404,
      code: 'KEY_NOT_FOUND_ERR',
    })
  })

  it('imports a root key, rotates it with new material, and restores it only with the original material', async () => {
    const material = Buffer.alloc(16, 9)
    const created = await kp['createKey']!({
      ...inst,
      body: {
        resources: [
          {
            type: 'application/vnd.ibm.kms.key+json',
            name: 'sdk-imported',
            extractable: false,
            payload: material.toString('base64'),
          },
        ],
      },
    })
    const key = created.result.resources[0]
    expect(key.imported).toBe(true)
    expect(await sdkError(kp['rotateKey']!({ ...inst, id: key.id, keyActionRotateBody: {} }))).toEqual({
      status: 400,
      code: 'MISSING_FIELD_ERR',
    })
    await kp['rotateKey']!({
      ...inst,
      id: key.id,
      keyActionRotateBody: { payload: Buffer.alloc(32, 3).toString('base64') },
    })
    await kp['deleteKey']!({ ...inst, id: key.id })
    s.t.clock.advance(31_000)
    expect(await restoreError(key.id)).toEqual({ status: 400, code: 'MISSING_FIELD_ERR' })
    const restored = await kp['restoreKey']!({
      ...inst,
      id: key.id,
      keyRestoreBody: {
        metadata: { collectionType: 'application/vnd.ibm.kms.key_action_restore+json', collectionTotal: 1 },
        resources: [{ payload: Buffer.alloc(32, 3).toString('base64') }],
      },
    })
    expect(restored.status).toBe(201)
  })

  it('standard keys return their payload on GET only; list and HEAD count keys', async () => {
    const material = Buffer.from('0123456789abcdef')
    const created = await kp['createKey']!({
      ...inst,
      prefer: 'return=representation',
      body: {
        resources: [
          {
            type: 'application/vnd.ibm.kms.key+json',
            name: 'sdk-standard',
            extractable: true,
            payload: material.toString('base64'),
          },
        ],
      },
    })
    const key = created.result.resources[0]
    expect(Buffer.from(key.payload, 'base64').equals(material)).toBe(true)
    const got = await kp['getKey']!({ ...inst, id: key.id })
    expect(Buffer.from(got.result.resources[0].payload, 'base64').equals(material)).toBe(true)
    const meta = await kp['getKeyMetadata']!({ ...inst, id: key.id })
    expect(meta.result.resources[0].payload).toBeUndefined()
    expect(await sdkError(kp['wrapKey']!({ ...inst, id: key.id, keyActionWrapBody: {} }))).toEqual({
      status: 400,
      code: 'KEY_ROOT_REQ_ERR',
    })
    const list = await kp['getKeys']!({ ...inst, extractable: true })
    expect(list.result.resources.map((k: any) => k.id)).toContain(key.id)
    expect(list.result.resources.every((k: any) => k.payload === undefined && k.extractable === true)).toBe(
      true,
    )
    const head = await kp['getKeyCollectionMetadata']!({ ...inst, extractable: true })
    expect(Number(head.headers['key-total'])).toBe(list.result.resources.length)
    const page = await kp['getKeys']!({ ...inst, limit: 1, offset: 0, state: [0, 1, 2, 3, 5] })
    expect(page.result.metadata.collectionTotal).toBe(1)
  })

  it('minimal create returns only the id', async () => {
    const created = await kp['createKey']!({
      ...inst,
      prefer: 'return=minimal',
      body: { resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'sdk-minimal' }] },
    })
    expect(created.status).toBe(201)
    expect(Object.keys(created.result.resources[0])).toEqual(['id'])
  })
})

describe('Key Protect SDK: policies, aliases, key rings', () => {
  it('puts and gets rotation and dualAuthDelete policies', async () => {
    const key = (await kp['createKey']!({ ...inst, body: { resources: [{ name: 'sdk-policy' }] } })).result
      .resources[0]
    const put = await kp['putPolicy']!({
      ...inst,
      id: key.id,
      setKeyPoliciesOneOf: {
        metadata: { collectionType: 'application/vnd.ibm.kms.policy+json', collectionTotal: 2 },
        resources: [
          { type: 'application/vnd.ibm.kms.policy+json', rotation: { enabled: true, interval_month: 3 } },
          { type: 'application/vnd.ibm.kms.policy+json', dualAuthDelete: { enabled: true } },
        ],
      },
    })
    expect(put.status).toBe(200)
    expect(put.result.resources).toHaveLength(2)
    const got = await kp['getPolicy']!({ ...inst, id: key.id })
    const byType = Object.fromEntries(
      got.result.resources.map((p: any) => [p.rotation ? 'rotation' : 'dual', p]),
    )
    expect(byType['rotation'].rotation).toEqual({ enabled: true, interval_month: 3 })
    expect(byType['dual'].dualAuthDelete).toEqual({ enabled: true })
    expect(byType['rotation'].crn).toContain(':policy:')
    const rotationOnly = await kp['getPolicy']!({ ...inst, id: key.id, policy: 'rotation' })
    expect(rotationOnly.result.resources).toHaveLength(1)
    const meta = (await kp['getKeyMetadata']!({ ...inst, id: key.id })).result.resources[0]
    expect(meta.rotation).toEqual({ enabled: true, interval_month: 3 })
    expect(meta.dualAuthDelete).toEqual({ enabled: true, keySetForDeletion: false })
  })

  it('dual-auth delete: set for deletion by one user, deleted by another; unset withdraws', async () => {
    const alice = new KeyProtectV2({
      authenticator: new BearerTokenAuthenticator({ bearerToken: TENANT_A_KEY }),
      serviceUrl: s.url,
    })
    const created = await kp['createKey']!({ ...inst, body: { resources: [{ name: 'sdk-dual' }] } })
    const id = created.result.resources[0].id
    await kp['putPolicy']!({
      ...inst,
      id,
      policy: 'dualAuthDelete',
      setKeyPoliciesOneOf: {
        resources: [{ type: 'application/vnd.ibm.kms.policy+json', dualAuthDelete: { enabled: true } }],
      },
    })
    expect(await sdkError(kp['deleteKey']!({ ...inst, id }))).toEqual({
      status: 409,
      code: 'AUTHORIZATIONS_NOT_MET',
    })
    expect((await kp['setKeyForDeletion']!({ ...inst, id })).status).toBe(204)
    const meta = (await kp['getKeyMetadata']!({ ...inst, id })).result.resources[0]
    expect(meta.dualAuthDelete).toMatchObject({
      enabled: true,
      keySetForDeletion: true,
      authExpiration: expect.any(String),
    })
    expect(await sdkError(kp['deleteKey']!({ ...inst, id }))).toEqual({
      status: 409,
      code: 'AUTHORIZATIONS_NOT_MET',
    })
    expect((await alice['unsetKeyForDeletion']!({ ...inst, id })).status).toBe(204)
    expect(await sdkError(alice['deleteKey']!({ ...inst, id }))).toEqual({
      status: 409,
      code: 'AUTHORIZATIONS_NOT_MET',
    })
    await kp['setKeyForDeletion']!({ ...inst, id })
    expect((await alice['deleteKey']!({ ...inst, id })).status).toBe(204)
    const plain = (await kp['createKey']!({ ...inst, body: { resources: [{ name: 'sdk-not-dual' }] } }))
      .result.resources[0].id
    expect(await sdkError(kp['setKeyForDeletion']!({ ...inst, id: plain }))).toEqual({
      status: 409,
      code: 'NOT_DUAL_AUTH_ERR',
    })
  })

  it('creates and deletes aliases, and resolves an alias wherever an id is accepted', async () => {
    const key = (await kp['createKey']!({ ...inst, body: { resources: [{ name: 'sdk-alias' }] } })).result
      .resources[0]
    const a = await kp['createKeyAlias']!({ ...inst, id: key.id, alias: 'sdk-alias-1' })
    expect(a.status).toBe(201)
    expect(a.result.resources[0]).toMatchObject({ keyId: key.id, alias: 'sdk-alias-1' })
    expect((await kp['createKeyAlias']!({ ...inst, id: key.id, alias: 'sdk-alias-1' })).status).toBe(200)
    const w = await kp['wrapKey']!({ ...inst, id: 'sdk-alias-1', keyActionWrapBody: { aad: ['x'] } })
    const u = await kp['unwrapKey']!({
      ...inst,
      id: 'sdk-alias-1',
      keyActionUnwrapBody: { ciphertext: w.result.ciphertext, aad: ['x'] },
    })
    expect(u.result.plaintext).toBe(w.result.plaintext)
    expect((await kp['getKey']!({ ...inst, id: 'sdk-alias-1' })).result.resources[0].id).toBe(key.id)
    expect((await kp['deleteKeyAlias']!({ ...inst, id: key.id, alias: 'sdk-alias-1' })).status).toBe(204)
    expect(await sdkError(kp['getKey']!({ ...inst, id: 'sdk-alias-1' }))).toEqual({
      status: 404,
      code: 'KEY_NOT_FOUND_ERR',
    })
    expect(await sdkError(kp['deleteKeyAlias']!({ ...inst, id: key.id, alias: 'sdk-alias-1' }))).toEqual({
      status: 404,
      code: 'ALIAS_NOT_FOUND_ERR',
    })
  })

  it('creates, lists and deletes key rings; keys are created in a ring by header', async () => {
    const c = await kp['createKeyRing']!({ ...inst, keyRingId: 'sdk-ring' })
    expect(c.status).toBe(201)
    expect((await kp['createKeyRing']!({ ...inst, keyRingId: 'sdk-ring' })).status).toBe(204)
    const rings = await kp['listKeyRings']!({ ...inst })
    expect(rings.result.resources.map((r: any) => r.id)).toEqual(
      expect.arrayContaining(['default', 'sdk-ring']),
    )
    const key = (
      await kp['createKey']!({
        ...inst,
        xKmsKeyRing: 'sdk-ring',
        body: { resources: [{ name: 'in-sdk-ring' }] },
      })
    ).result.resources[0]
    expect(key.keyRingID).toBe('sdk-ring')
    const inRing = await kp['getKeys']!({ ...inst, xKmsKeyRing: 'sdk-ring' })
    expect(inRing.result.resources.map((k: any) => k.id)).toEqual([key.id])
    expect(await sdkError(kp['deleteKeyRing']!({ ...inst, keyRingId: 'sdk-ring' }))).toEqual({
      status: 409,
      code: 'KEY_RING_NOT_EMPTY_ERR',
    })
    await kp['deleteKey']!({ ...inst, id: key.id })
    // SDK 0.1.2 cannot send force=true: a deleted key still blocks the ring until it is purged.
    expect(await sdkError(kp['deleteKeyRing']!({ ...inst, keyRingId: 'sdk-ring' }))).toEqual({
      status: 409,
      code: 'KEY_RING_NOT_EMPTY_ERR',
    })
    s.t.clock.advance(4 * HOUR)
    await purge(key.id)
    expect((await kp['deleteKeyRing']!({ ...inst, keyRingId: 'sdk-ring' })).status).toBe(204)
    const after = await kp['listKeyRings']!({ ...inst })
    expect(after.result.resources.map((r: any) => r.id)).not.toContain('sdk-ring')
  })
})

/** restoreKey's result is a readable stream (the SDK asks for a binary response). */
async function streamJson(result: AsyncIterable<Buffer>): Promise<any> {
  const chunks: Buffer[] = []
  for await (const chunk of result) chunks.push(Buffer.from(chunk))
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

async function purge(id: string): Promise<SdkResponse> {
  // SDK 0.1.2 has no purge method: the same request it would send, with the SDK's headers.
  const res = await fetch(`${s.url}/api/v2/keys/${id}/purge`, {
    method: 'DELETE',
    headers: {
      authorization: `Bearer ${ADMIN_KEY}`,
      'bluemix-instance': INSTANCE_A,
      accept: 'application/json',
    },
  })
  if (res.status >= 400) {
    const body = await res.text()
    throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status, body })
  }
  return { status: res.status, headers: Object.fromEntries(res.headers), result: undefined }
}
