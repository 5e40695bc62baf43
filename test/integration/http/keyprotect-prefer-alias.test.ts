/**
 * Raw HTTP on a real engine (SoftHSM2 + SQLite): `Prefer` on rotate and restore (spec digest §1.5, §3.2,
 * §3.3), and alias responses that carry the stored creator and creation date (§3.9).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { kp, startTestServer, TENANT_A_KEY, type TestServer } from '../../helpers/http.js'

let s: TestServer

beforeAll(async () => {
  s = await startTestServer()
})
afterAll(async () => {
  await s.close()
})

const HOUR = 3_600_000
const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')

async function createRoot(name: string, extra: Record<string, unknown> = {}, token?: string): Promise<any> {
  const c = await kp(s, 'POST', '/keys', {
    body: { resources: [{ name, ...extra }] },
    ...(token === undefined ? {} : { token }),
  })
  expect(c.status).toBe(201)
  return c.json.resources[0]
}

describe('Prefer on rotate', () => {
  it('answers 204 and no body by default and with return=minimal', async () => {
    const k = await createRoot('prefer-rotate-default')
    const r = await kp(s, 'POST', `/keys/${k.id}/actions/rotate`)
    expect(r.status).toBe(204)
    expect(r.text).toBe('')
    s.t.clock.advance(HOUR)
    const m = await kp(s, 'POST', `/keys/${k.id}/actions/rotate`, { headers: { prefer: 'return=minimal' } })
    expect(m.status).toBe(204)
    expect(m.text).toBe('')
  })

  it('answers 200 with the rotated key enveloped for return=representation, on both forms', async () => {
    const k = await createRoot('prefer-rotate-representation')
    s.t.clock.advance(HOUR)
    const r = await kp(s, 'POST', `/keys/${k.id}/actions/rotate`, {
      headers: { prefer: 'return=representation' },
    })
    expect(r.status).toBe(200)
    expect(r.json.metadata).toEqual({
      collectionType: 'application/vnd.ibm.kms.key+json',
      collectionTotal: 1,
    })
    const key = r.json.resources[0]
    expect(key).toMatchObject({ id: k.id, state: 1, lastRotateDate: rfc3339(s.t.clock.now()) })
    expect(key.keyVersion.id).not.toBe(k.id)
    expect(key.payload).toBeUndefined()
    // The representation is the stored key: GET answers the same version.
    expect((await kp(s, 'GET', `/keys/${k.id}/metadata`)).json.resources[0].keyVersion).toEqual(
      key.keyVersion,
    )

    s.t.clock.advance(HOUR)
    const d = await kp(s, 'POST', `/keys/${k.id}?action=rotate`, {
      body: {},
      headers: { prefer: 'return=representation', 'content-type': 'application/vnd.ibm.kms.key_action+json' },
    })
    expect(d.status).toBe(200)
    expect(d.json.resources[0].id).toBe(k.id)
    expect(d.json.resources[0].keyVersion.id).not.toBe(key.keyVersion.id)
  })
})

describe('Prefer on restore', () => {
  async function deleted(name: string): Promise<string> {
    const k = await createRoot(name)
    expect((await kp(s, 'DELETE', `/keys/${k.id}`)).status).toBe(204)
    s.t.clock.advance(31_000)
    return k.id as string
  }

  it('answers 201 with the full key by default and with return=representation', async () => {
    for (const prefer of [undefined, 'return=representation']) {
      const id = await deleted(`prefer-restore-${prefer ?? 'none'}`)
      const r = await kp(
        s,
        'POST',
        `/keys/${id}/restore`,
        prefer === undefined ? {} : { headers: { prefer } },
      )
      expect(r.status).toBe(201)
      expect(r.json.resources[0]).toMatchObject({ id, state: 1, deleted: false, name: expect.any(String) })
    }
  })

  it('answers 201 with only the key id for return=minimal, and the key is restored', async () => {
    const id = await deleted('prefer-restore-minimal')
    const r = await kp(s, 'POST', `/keys/${id}/restore`, { headers: { prefer: 'return=minimal' } })
    expect(r.status).toBe(201)
    expect(r.json).toEqual({
      metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
      resources: [{ id }],
    })
    expect((await kp(s, 'GET', `/keys/${id}/metadata`)).json.resources[0].state).toBe(1)
  })
})

describe('alias responses carry the stored creator and creation date', () => {
  it('a second add by another caller, later, answers 200 with the first creator and date', async () => {
    const k = await createRoot('alias-creator')
    const addedAt = s.t.clock.now()
    const first = await kp(s, 'POST', `/keys/${k.id}/aliases/alias-creator-1`, { token: TENANT_A_KEY })
    expect(first.status).toBe(201)
    expect(first.json.resources[0]).toEqual({
      keyId: k.id,
      alias: 'alias-creator-1',
      createdBy: 'alice',
      creationDate: rfc3339(addedAt),
    })
    s.t.clock.advance(HOUR)
    const again = await kp(s, 'POST', `/keys/alias-creator-1/aliases/alias-creator-1`) // admin, an hour later
    expect(again.status).toBe(200)
    expect(again.json.resources[0]).toEqual(first.json.resources[0])
  })

  it('an alias given at creation answers the key creator and creation date', async () => {
    const createdAt = s.t.clock.now()
    const k = await createRoot('alias-at-creation', { aliases: ['alias-at-creation'] }, TENANT_A_KEY)
    s.t.clock.advance(HOUR)
    const r = await kp(s, 'POST', `/keys/${k.id}/aliases/alias-at-creation`)
    expect(r.status).toBe(200)
    expect(r.json.resources[0]).toEqual({
      keyId: k.id,
      alias: 'alias-at-creation',
      createdBy: 'alice',
      creationDate: rfc3339(createdAt),
    })
  })
})
