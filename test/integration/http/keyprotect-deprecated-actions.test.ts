/**
 * The deprecated `POST /keys/{id}?action=<action>` form (spec digest §3.2), sent exactly as the seed shows it
 * (Content-Type `application/vnd.ibm.kms.key_action+json`, always a body), over a real server on loopback:
 * every action has the status, body, state change, IAM permission and audit event of its own endpoint. The
 * pinned official SDK (0.1.2) has no `actionOnKey`, so these requests are raw HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { kp, READER_A_KEY, reasonCode, startTestServer, type TestServer } from '../../helpers/http.js'

const ACTION = { 'content-type': 'application/vnd.ibm.kms.key_action+json' }

let s: TestServer
let id: string

async function act(action: string, body: unknown = {}, token?: string) {
  return kp(s, 'POST', `/keys/${id}?action=${action}`, {
    body,
    headers: ACTION,
    ...(token === undefined ? {} : { token }),
  })
}

beforeAll(async () => {
  s = await startTestServer({ engine: { engine: { lifecycle: { enableCooldownMs: 0 } } } })
  const c = await kp(s, 'POST', '/keys', { body: { resources: [{ name: 'deprecated-form' }] } })
  expect(c.status).toBe(201)
  id = c.json.resources[0].id
})
afterAll(async () => {
  await s.close()
})

describe('POST /keys/{id}?action=…', () => {
  it('wrap, unwrap, rotate, rewrap answer as their own endpoints', async () => {
    const w = await act('wrap', { aad: ['ctx'] })
    expect(w.status).toBe(200)
    expect(w.json.ciphertext).toEqual(expect.any(String))
    expect(w.json.plaintext).toEqual(expect.any(String))

    const u = await act('unwrap', { ciphertext: w.json.ciphertext, aad: ['ctx'] })
    expect(u.status).toBe(200)
    expect(u.json.plaintext).toBe(w.json.plaintext)

    const r = await act('rotate')
    expect(r.status).toBe(204)
    expect(r.text).toBe('')
    const versions = await kp(s, 'GET', `/keys/${id}/versions`)
    expect(versions.json.metadata.collectionTotal).toBe(2)

    const rw = await act('rewrap', { ciphertext: w.json.ciphertext, aad: ['ctx'] })
    expect(rw.status).toBe(200)
    expect(rw.json.rewrappedKeyVersion.id).not.toBe(rw.json.keyVersion.id)

    const wrongAad = await act('unwrap', { ciphertext: w.json.ciphertext, aad: ['other'] })
    expect(wrongAad.status).toBe(422)
  })

  it('disable and enable change the state; a disabled key refuses wrap through the same form', async () => {
    expect((await act('disable')).status).toBe(204)
    expect((await kp(s, 'GET', `/keys/${id}/metadata`)).json.resources[0].state).toBe(2)
    const refused = await act('wrap')
    expect(refused.status).toBe(409)
    expect(reasonCode(refused.json)).toBe('KEY_ACTION_INVALID_STATE_ERR')
    expect((await act('enable')).status).toBe(204)
    expect((await kp(s, 'GET', `/keys/${id}/metadata`)).json.resources[0].state).toBe(1)
  })

  it('setKeyForDeletion / unsetKeyForDeletion answer 204 on a dual-auth key, and refuse as their endpoints do', async () => {
    const c = await kp(s, 'POST', '/keys', { body: { resources: [{ name: 'deprecated-dual' }] } })
    const dual = c.json.resources[0].id as string
    const viaForm = (action: string) =>
      kp(s, 'POST', `/keys/${dual}?action=${action}`, { body: {}, headers: ACTION })
    const notDual = await viaForm('setKeyForDeletion')
    const viaEndpoint = await kp(s, 'POST', `/keys/${dual}/actions/setKeyForDeletion`, { body: {} })
    expect(notDual.status).toBe(viaEndpoint.status)
    expect(reasonCode(notDual.json)).toBe(reasonCode(viaEndpoint.json))
    expect(notDual.status).toBeGreaterThanOrEqual(400)
    const policy = await kp(s, 'PUT', `/keys/${dual}/policies?policy=dualAuthDelete`, {
      body: {
        metadata: { collectionType: 'application/vnd.ibm.kms.policy+json', collectionTotal: 1 },
        resources: [{ type: 'application/vnd.ibm.kms.policy+json', dualAuthDelete: { enabled: true } }],
      },
    })
    expect(policy.status).toBe(200)
    expect((await viaForm('setKeyForDeletion')).status).toBe(204)
    expect((await kp(s, 'GET', `/keys/${dual}/metadata`)).json.resources[0].dualAuthDelete).toMatchObject({
      keySetForDeletion: true,
    })
    expect((await viaForm('unsetKeyForDeletion')).status).toBe(204)
    expect((await kp(s, 'GET', `/keys/${dual}/metadata`)).json.resources[0].dualAuthDelete).toMatchObject({
      keySetForDeletion: false,
    })
  })

  it('restore brings a deleted key back with 201 and the key', async () => {
    const c = await kp(s, 'POST', '/keys', { body: { resources: [{ name: 'deprecated-restore' }] } })
    const victim = c.json.resources[0].id as string
    expect((await kp(s, 'DELETE', `/keys/${victim}`)).status).toBe(204)
    s.t.clock.advance(31_000)
    const r = await kp(s, 'POST', `/keys/${victim}?action=restore`, {
      body: {
        metadata: { collectionType: 'application/vnd.ibm.kms.key_action_restore+json', collectionTotal: 1 },
        resources: [{}],
      },
      headers: ACTION,
    })
    expect(r.status).toBe(201)
    expect(r.json.resources[0]).toMatchObject({ id: victim, state: 1 })
  })

  it("runs under the action's own IAM permission and audit event", async () => {
    const denied = await act('wrap', {}, READER_A_KEY)
    expect(denied.status).toBe(401)
    expect(reasonCode(denied.json)).toBe('UNAUTHORIZED_ERR')
    // The same caller may read the key: only the action's own permission was missing.
    expect((await kp(s, 'GET', `/keys/${id}/metadata`, { token: READER_A_KEY })).status).toBe(200)
    const before = s.audit.events.length
    expect((await act('wrap')).status).toBe(200)
    const e = s.audit.events.slice(before).find((x) => x.keyId === id)
    expect(e).toMatchObject({ event: 'kms.secrets.wrap', route: '/api/v2/keys/{id}', outcome: 'success' })
  })

  it('a missing or unknown action is 400 INVALID_PARAM_ERR, after authentication, and changes nothing', async () => {
    const versionsBefore = (await kp(s, 'GET', `/keys/${id}/versions`)).json.metadata.collectionTotal
    for (const path of [`/keys/${id}`, `/keys/${id}?action=purge`, `/keys/${id}?action=WRAP`]) {
      const r = await kp(s, 'POST', path, { body: {}, headers: ACTION })
      expect(r.status, path).toBe(400)
      expect(reasonCode(r.json), path).toBe('INVALID_PARAM_ERR')
      expect(r.json.resources[0].reasons[0].target).toEqual({ type: 'param', name: 'action' })
    }
    expect((await kp(s, 'POST', `/keys/${id}?action=rotate`, { token: null, headers: ACTION })).status).toBe(
      401,
    )
    const unknownField = await act('rotate', { bogus: 1 })
    expect(unknownField.status).toBe(400)
    expect((await kp(s, 'GET', `/keys/${id}/versions`)).json.metadata.collectionTotal).toBe(versionsBefore)
  })
})
