/**
 * The wire side of crash-safe purge (issue 12, point 2) on both listeners, over a real SoftHSM2 token, SQLite
 * catalog and HTTP: a key being purged is refused restore (Key Protect 409 state conflict) and cancel
 * (AWS KMSInvalidStateException); a ciphertext whose version object is gone is a permanent 410 /
 * KMSInvalidStateException, never a 5xx "try again later".
 */
import { CancelKeyDeletionCommand, DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sdkClient, startEndpoint, TENANT_A, type RunningEndpoint } from '../../helpers/aws-kms.js'
import { INSTANCE_A, kp, reasonCode, startTestServer, type TestServer } from '../../helpers/http.js'

let s: TestServer
let ep: RunningEndpoint
let kms: KMSClient

beforeAll(async () => {
  s = await startTestServer({ engine: { engine: { lifecycle: { minRotationIntervalMs: 0 } } } })
  ep = await startEndpoint(s.t.engine)
  kms = sdkClient(ep)
})
afterAll(async () => {
  kms.destroy()
  await ep.close()
  await s.close()
})

async function awsError(p: Promise<unknown>): Promise<{ name: string; status: number | undefined }> {
  try {
    await p
  } catch (err) {
    const e = err as { name: string; $metadata?: { httpStatusCode?: number } }
    return { name: e.name, status: e.$metadata?.httpStatusCode }
  }
  throw new Error('expected the call to fail')
}

/** Destroys version 1 of a key on the token behind the engine (the catalog keeps its row). */
async function loseVersion1(instance: string, keyId: string): Promise<void> {
  const v1 = (await s.t.store.listVersions(instance, keyId)).find((v) => v.version === 1)
  if (v1 === undefined) throw new Error('no version 1')
  await s.t.provider.destroyVersion(v1.providerRef)
}

describe('Key Protect listener', () => {
  it('restore of a key being purged is 409 KEY_ACTION_INVALID_STATE_ERR, and the key stays deleted', async () => {
    const k = await s.t.engine.createKey(INSTANCE_A, { name: 'purging-kp' })
    await s.t.engine.deleteKey(INSTANCE_A, k.id)
    s.t.clock.advance(60_000)
    // What a purge killed after its mark leaves behind.
    expect(await s.t.store.markPurging(INSTANCE_A, k.id, 5, {}, s.t.clock.now())).toBe(true)
    const r = await kp(s, 'POST', `/keys/${k.id}/restore`)
    expect(r.status).toBe(409)
    expect(reasonCode(r.json)).toBe('KEY_ACTION_INVALID_STATE_ERR')
    expect((await s.t.engine.getKey(INSTANCE_A, k.id)).state).toBe(5)
    await s.t.engine.reconcile()
    expect((await kp(s, 'GET', `/keys/${k.id}`)).status).toBe(404)
  })

  it('unwrap of a ciphertext whose version object is gone is 410 KEY_VERSION_MATERIAL_MISSING, not "try again later"', async () => {
    const k = await s.t.engine.createKey(INSTANCE_A, { name: 'lost-kp' })
    const w = await kp(s, 'POST', `/keys/${k.id}/actions/wrap`, { body: {} })
    expect(w.status).toBe(200)
    await s.t.engine.rotate(INSTANCE_A, k.id)
    await loseVersion1(INSTANCE_A, k.id)
    const r = await kp(s, 'POST', `/keys/${k.id}/actions/unwrap`, { body: { ciphertext: w.json.ciphertext } })
    expect(r.status).toBe(410)
    expect(reasonCode(r.json)).toBe('KEY_VERSION_MATERIAL_MISSING')
    expect(r.json.resources[0].errorMsg).not.toMatch(/try again later/i)
    const rw = await kp(s, 'POST', `/keys/${k.id}/actions/rewrap`, {
      body: { ciphertext: w.json.ciphertext },
    })
    expect(rw.status).toBe(410)
    expect(reasonCode(rw.json)).toBe('KEY_VERSION_MATERIAL_MISSING')
  })
})

describe('AWS listener', () => {
  it('Decrypt of a blob whose version object is gone is 400 KMSInvalidStateException', async () => {
    const k = await s.t.engine.createKey(TENANT_A.instance, { name: 'lost-aws' })
    const e = await kms.send(new EncryptCommand({ KeyId: k.id, Plaintext: new Uint8Array([1, 2, 3]) }))
    await s.t.engine.rotate(TENANT_A.instance, k.id)
    await loseVersion1(TENANT_A.instance, k.id)
    const err = await awsError(kms.send(new DecryptCommand({ CiphertextBlob: e.CiphertextBlob })))
    expect(err).toEqual({ name: 'KMSInvalidStateException', status: 400 })
  })

  it('CancelKeyDeletion of a key whose scheduled deletion is under way is KMSInvalidStateException', async () => {
    const k = await s.t.engine.createKey(TENANT_A.instance, { name: 'purging-aws' })
    await s.t.engine.scheduleKeyDeletion(TENANT_A.instance, k.id, { pendingWindowDays: 7 })
    expect(await s.t.store.markPurging(TENANT_A.instance, k.id, 2, { state: 5 }, s.t.clock.now())).toBe(true)
    const err = await awsError(kms.send(new CancelKeyDeletionCommand({ KeyId: k.id })))
    expect(err).toEqual({ name: 'KMSInvalidStateException', status: 400 })
    expect(await s.t.store.getDeletionSchedule(TENANT_A.instance, k.id)).toBeDefined()
  })
})
