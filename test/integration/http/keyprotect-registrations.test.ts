/**
 * Key Protect registrations and key events against `envelope-kms` served on 127.0.0.1 with a real engine
 * (SoftHSM2 token + SQLite catalog): the official SDK (@ibm-cloud/ibm-key-protect 0.1.2) for the calls it
 * has — getRegistrations, getRegistrationsAllKeys, syncAssociatedResources — and raw HTTP, as the spec digest
 * shows it (§3.7, §3.8), for the writes it lacks. Refusals are checked with their exact status and reason
 * code, and against the catalog: nothing changed.
 */
import { createRequire } from 'node:module'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ADMIN_KEY,
  INSTANCE_A,
  kp as raw,
  reasonCode,
  startTestServer,
  type TestServer,
} from '../../helpers/http.js'

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

let s: TestServer
let sdk: Record<string, (params: Record<string, unknown>) => Promise<SdkResponse>>
const inst = { bluemixInstance: INSTANCE_A }
const REG_INPUT = 'application/vnd.ibm.kms.registration_input+json'

/** A COS bucket CRN whose resource part holds a `/`: it travels as %2F inside one path segment. */
function bucketCrn(name: string): string {
  return `crn:v1:bluemix:public:cloud-object-storage:global:a/acc123:svc-inst-1:bucket:${name}/objects`
}
const enc = encodeURIComponent

async function rootKey(name: string): Promise<string> {
  const res = await sdk['createKey']!({ ...inst, body: { resources: [{ name, extractable: false }] } })
  return res.result.resources[0].id as string
}

function regBody(resource: Record<string, unknown>): unknown {
  return { metadata: { collectionType: REG_INPUT, collectionTotal: 1 }, resources: [resource] }
}

function register(keyId: string, crn: string, resource: Record<string, unknown> = {}, method = 'POST') {
  return raw(s, method, `/keys/${keyId}/registrations/${enc(crn)}`, { body: regBody(resource) })
}

beforeAll(async () => {
  s = await startTestServer()
  sdk = new KeyProtectV2({
    authenticator: new BearerTokenAuthenticator({ bearerToken: ADMIN_KEY }),
    serviceUrl: s.url,
  })
})
afterAll(async () => {
  await s.close()
})

describe('Key Protect registrations', () => {
  it('create (201, then 200 when identical, 409 REGISTRATION_DUP_ERR otherwise), with the CRN percent-encoded in the path', async () => {
    const id = await rootKey('reg-create')
    const crn = bucketCrn('b1')
    const created = await register(id, crn, { preventKeyDeletion: 'false', description: 'bucket b1' })
    expect(created.status).toBe(201)
    expect(created.json.metadata.collectionType).toBe('application/vnd.ibm.kms.registration+json')
    const r = created.json.resources[0]
    expect(r).toMatchObject({
      keyId: id,
      keyName: 'reg-create',
      resourceCrn: crn,
      description: 'bucket b1',
      preventKeyDeletion: false,
      keyVersion: { id },
    })
    expect(r.creationDate).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    const again = await register(id, crn, { preventKeyDeletion: false, description: 'bucket b1' })
    expect(again.status).toBe(200)
    expect(again.json.resources[0].creationDate).toBe(r.creationDate)
    const dup = await register(id, crn, { description: 'another' })
    expect([dup.status, reasonCode(dup.json)]).toEqual([409, 'REGISTRATION_DUP_ERR'])
    expect((await s.t.store.getRegistration(INSTANCE_A, id, crn))?.description).toBe('bucket b1')
  })

  it('SDK getRegistrations and getRegistrationsAllKeys list them, with the CRN query, paging and totalCount', async () => {
    const k1 = await rootKey('reg-list-1')
    const k2 = await rootKey('reg-list-2')
    const other = 'crn:v1:bluemix:public:databases-for-postgresql:us-south:a/acc123:svc-inst-2::'
    expect((await register(k1, bucketCrn('l1'))).status).toBe(201)
    expect((await register(k1, other, { preventKeyDeletion: true })).status).toBe(201)
    expect((await register(k2, bucketCrn('l2'))).status).toBe(201)

    const perKey = await sdk['getRegistrations']!({ ...inst, id: k1, totalCount: true })
    expect(perKey.status).toBe(200)
    expect(perKey.result.metadata.totalCount).toBe(2)
    expect(perKey.result.resources.map((x: any) => x.resourceCrn).sort()).toEqual(
      [bucketCrn('l1'), other].sort(),
    )
    const prevent = await sdk['getRegistrations']!({ ...inst, id: k1, preventKeyDeletion: true })
    expect(prevent.result.resources.map((x: any) => x.resourceCrn)).toEqual([other])
    const wildcard = await sdk['getRegistrations']!({
      ...inst,
      id: k1,
      urlEncodedResourceCrnQuery: 'crn:v1:bluemix:public:*:*:a/acc123:svc-inst-1:*',
    })
    expect(wildcard.result.resources.map((x: any) => x.resourceCrn)).toEqual([bucketCrn('l1')])

    const all = await sdk['getRegistrationsAllKeys']!({
      ...inst,
      urlEncodedResourceCrnQuery: enc(
        'crn:v1:bluemix:public:cloud-object-storage:global:a/acc123:svc-inst-1:*',
      ),
      totalCount: true,
    })
    expect(all.status).toBe(200)
    const mine = all.result.resources.filter((x: any) => [k1, k2].includes(x.keyId))
    expect(mine.map((x: any) => x.resourceCrn).sort()).toEqual([bucketCrn('l1'), bucketCrn('l2')])
    const page = await sdk['getRegistrationsAllKeys']!({ ...inst, limit: 1, offset: 0, totalCount: true })
    expect(page.result.resources).toHaveLength(1)
    expect(page.result.metadata.totalCount).toBeGreaterThanOrEqual(3)

    // Too broad: a wildcard before the service instance.
    const broad = await raw(
      s,
      'GET',
      `/keys/registrations?urlEncodedResourceCRNQuery=${enc('crn:v1:bluemix:public:*:*:*:*')}`,
    )
    expect([broad.status, reasonCode(broad.json)]).toEqual([400, 'INVALID_PARAM_ERR'])
    expect(broad.json.resources[0].reasons[0].target).toEqual({
      type: 'param',
      name: 'urlEncodedResourceCRNQuery',
    })
  })

  it('PATCH merges, PUT replaces, DELETE answers 204 or 200 with the registration, then 404 REGISTRATION_NOT_FOUND_ERR', async () => {
    const id = await rootKey('reg-update')
    const crn = bucketCrn('u1')
    await register(id, crn, { description: 'first', registrationMetadata: 'm1' })
    const patched = await register(id, crn, { preventKeyDeletion: true }, 'PATCH')
    expect(patched.status).toBe(200)
    expect(patched.json.resources[0]).toMatchObject({
      description: 'first',
      registrationMetadata: 'm1',
      preventKeyDeletion: true,
    })
    const put = await register(id, crn, { description: 'replaced', keyVersionId: id }, 'PUT')
    expect(put.status).toBe(200)
    expect(put.json.resources[0]).toMatchObject({ description: 'replaced', preventKeyDeletion: false })
    expect(put.json.resources[0].registrationMetadata).toBeUndefined()
    const del = await raw(s, 'DELETE', `/keys/${id}/registrations/${enc(crn)}`, {
      headers: { prefer: 'return=representation' },
    })
    expect(del.status).toBe(200)
    expect(del.json.resources[0].description).toBe('replaced')
    const gone = await raw(s, 'DELETE', `/keys/${id}/registrations/${enc(crn)}`)
    expect([gone.status, reasonCode(gone.json)]).toEqual([404, 'REGISTRATION_NOT_FOUND_ERR'])
    const patchNone = await register(id, crn, { description: 'x' }, 'PATCH')
    expect([patchNone.status, reasonCode(patchNone.json)]).toEqual([404, 'REGISTRATION_NOT_FOUND_ERR'])
    await register(id, crn)
    expect((await raw(s, 'DELETE', `/keys/${id}/registrations/${enc(crn)}`)).status).toBe(204)
  })

  it('refuses a CRN short of the service instance (400 INVALID_PARAM_ERR) and a standard or disabled key (422 KEY_INVALID_STATE_ERR)', async () => {
    const id = await rootKey('reg-refusals')
    const short = await register(id, 'crn:v1:bluemix:public:cos:global:a/acc123')
    expect([short.status, reasonCode(short.json)]).toEqual([400, 'INVALID_PARAM_ERR'])
    expect(short.json.resources[0].reasons[0].target).toEqual({
      type: 'param',
      name: 'urlEncodedResourceCRN',
    })
    const std = (
      await sdk['createKey']!({ ...inst, body: { resources: [{ name: 'reg-std', extractable: true }] } })
    ).result.resources[0].id
    const onStd = await register(std, bucketCrn('s1'))
    expect([onStd.status, reasonCode(onStd.json)]).toEqual([422, 'KEY_INVALID_STATE_ERR'])
    await sdk['disableKey']!({ ...inst, id })
    const onDisabled = await register(id, bucketCrn('s2'))
    expect([onDisabled.status, reasonCode(onDisabled.json)]).toEqual([422, 'KEY_INVALID_STATE_ERR'])
    expect(await s.t.store.listRegistrations(INSTANCE_A, { keyId: id })).toEqual([])
    expect(await s.t.store.listRegistrations(INSTANCE_A, { keyId: std })).toEqual([])
  })

  it('GET /keys/registrations is not taken by GET /keys/{id}', async () => {
    const res = await raw(s, 'GET', '/keys/registrations')
    expect(res.status).toBe(200)
    expect(res.json.metadata.collectionType).toBe('application/vnd.ibm.kms.registration+json')
  })

  it('deactivate (deprecated) needs a Suspended registration: 409 REG_INVALID_STATE_ERR while the key is Active, 204 once disabled', async () => {
    const id = await rootKey('reg-deactivate')
    const crn = bucketCrn('d1')
    await register(id, crn)
    const body = {
      metadata: { collectionType: 'application/vnd.ibm.kms.crn+json', collectionTotal: 1 },
      resources: [{ resourceCrn: crn }],
    }
    const active = await raw(s, 'POST', `/keys/${id}/registrations?action=deactivate`, { body })
    expect([active.status, reasonCode(active.json)]).toEqual([409, 'REG_INVALID_STATE_ERR'])
    expect((await s.t.store.getRegistration(INSTANCE_A, id, crn))?.deactivated).toBe(false)
    await sdk['disableKey']!({ ...inst, id })
    const ok = await raw(s, 'POST', `/keys/${id}/registrations?action=deactivate`, {
      body,
      headers: { prefer: 'return=representation' },
    })
    expect(ok.status).toBe(200)
    expect(ok.json).toEqual({
      metadata: { collectionType: 'application/vnd.ibm.kms.resource_crn+json', collectionTotal: 1 },
      resources: [{ resourceCrn: crn }],
    })
    expect((await s.t.store.getRegistration(INSTANCE_A, id, crn))?.deactivated).toBe(true)
    const twice = await raw(s, 'POST', `/keys/${id}/registrations?action=deactivate`, { body })
    expect([twice.status, reasonCode(twice.json)]).toEqual([409, 'REG_INVALID_STATE_ERR'])
    const unknown = await raw(s, 'POST', `/keys/${id}/registrations?action=deactivate`, {
      body: { resources: [{ resourceCrn: bucketCrn('none') }] },
    })
    expect([unknown.status, reasonCode(unknown.json)]).toEqual([404, 'REGISTRATION_NOT_FOUND_ERR'])
  })
})

describe('Key Protect key delete with registrations', () => {
  async function keyState(id: string): Promise<number> {
    return (await s.t.store.getKey(INSTANCE_A, id))!.state
  }

  it('a key with registrations: 409 PROTECTED_RESOURCE_ERR without force, nothing changed; force deletes it and removes them', async () => {
    const id = await rootKey('del-protected')
    await register(id, bucketCrn('p1'))
    await register(id, bucketCrn('p2'))
    const refused = await raw(s, 'DELETE', `/keys/${id}`)
    expect([refused.status, reasonCode(refused.json)]).toEqual([409, 'PROTECTED_RESOURCE_ERR'])
    expect(await keyState(id)).toBe(1)
    expect(await s.t.store.listRegistrations(INSTANCE_A, { keyId: id })).toHaveLength(2)
    const forced = await raw(s, 'DELETE', `/keys/${id}?force=true`)
    expect(forced.status).toBe(204)
    expect(await keyState(id)).toBe(5)
    expect(await s.t.store.listRegistrations(INSTANCE_A, { keyId: id })).toEqual([])
  })

  it('a registration with preventKeyDeletion: 409 PREV_KEY_DEL_ERR with and without force, nothing changed', async () => {
    const id = await rootKey('del-prevent')
    await register(id, bucketCrn('w1'))
    await register(id, bucketCrn('w2'), { preventKeyDeletion: true })
    const before = await s.t.store.listRegistrations(INSTANCE_A, { keyId: id })
    const events = (await s.t.store.listKeyEvents(INSTANCE_A, id)).length
    for (const q of ['', '?force=true']) {
      const res = await raw(s, 'DELETE', `/keys/${id}${q}`)
      expect([res.status, reasonCode(res.json)]).toEqual([409, 'PREV_KEY_DEL_ERR'])
      expect(await keyState(id)).toBe(1)
      expect(await s.t.store.listRegistrations(INSTANCE_A, { keyId: id })).toEqual(before)
      expect(await s.t.store.listKeyEvents(INSTANCE_A, id)).toHaveLength(events)
    }
    // Once the resource lifts its hold, a forced delete goes through.
    await register(id, bucketCrn('w2'), { preventKeyDeletion: false }, 'PATCH')
    expect((await raw(s, 'DELETE', `/keys/${id}?force=true`)).status).toBe(204)
    expect(await keyState(id)).toBe(5)
  })

  it('a key without registrations is deleted with or without force', async () => {
    const id = await rootKey('del-plain')
    expect((await raw(s, 'DELETE', `/keys/${id}?force=true`)).status).toBe(204)
    expect(await keyState(id)).toBe(5)
  })
})

describe('Key Protect key events', () => {
  it('rotate, disable, enable, policy change, delete and restore are logged; SDK sync records one event per registration', async () => {
    const id = await rootKey('events-lifecycle')
    const crnA = bucketCrn('e1')
    const crnB = bucketCrn('e2')
    await register(id, crnA)
    await register(id, crnB)
    await sdk['rotateKey']!({ ...inst, id })
    await sdk['disableKey']!({ ...inst, id })
    s.t.clock.advance(31_000)
    await sdk['enableKey']!({ ...inst, id })
    await sdk['putPolicy']!({
      ...inst,
      id,
      setKeyPoliciesOneOf: {
        resources: [
          { type: 'application/vnd.ibm.kms.policy+json', rotation: { enabled: true, interval_month: 3 } },
        ],
      },
    })
    const synced = await sdk['syncAssociatedResources']!({ ...inst, id })
    expect(synced.status).toBe(204)
    expect((await raw(s, 'DELETE', `/keys/${id}?force=true`)).status).toBe(204)
    s.t.clock.advance(31_000)
    expect((await raw(s, 'POST', `/keys/${id}/restore`)).status).toBe(201)

    const log = await s.t.store.listKeyEvents(INSTANCE_A, id)
    expect(log.map((e) => e.type)).toEqual([
      'rotate',
      'disable',
      'enable',
      'policy',
      'sync',
      'sync',
      'delete',
      'restore',
    ])
    expect(
      log
        .filter((e) => e.type === 'sync')
        .map((e) => e.resourceCrn)
        .sort(),
    ).toEqual([crnA, crnB].sort())
    expect(log[0]!.keyVersion).toBe(2)
    expect(new Set(log.map((e) => e.eventId)).size).toBe(log.length)
    expect(await s.t.engine.listKeyEvents(INSTANCE_A, id)).toHaveLength(log.length)
    expect(
      s.audit.events.some((e) => e.event === 'kms.secrets.sync' && e.keyId === id && e.outcome === 'success'),
    ).toBe(true)
  })

  it('sync of a standard key: 400 KEY_ROOT_REQ_ERR', async () => {
    const std = (
      await sdk['createKey']!({ ...inst, body: { resources: [{ name: 'ev-std', extractable: true }] } })
    ).result.resources[0].id
    const res = await raw(s, 'POST', `/keys/${std}/actions/sync`)
    expect([res.status, reasonCode(res.json)]).toEqual([400, 'KEY_ROOT_REQ_ERR'])
  })

  it('event_ack records the acknowledgement (204); an unknown event is 404 EVENT_NOT_FOUND and nothing is recorded', async () => {
    const id = await rootKey('events-ack')
    await register(id, bucketCrn('a1'))
    await sdk['syncAssociatedResources']!({ ...inst, id })
    const again = await raw(s, 'POST', `/keys/${id}/actions/sync`)
    expect([again.status, reasonCode(again.json)]).toEqual([409, 'REQ_TOO_EARLY_ERR'])
    const [ev, ...rest] = await s.t.store.listKeyEvents(INSTANCE_A, id)
    expect(rest).toEqual([])
    const ack = (eventId: string, timestamp = '2026-11-30T12:00:00Z') => ({
      metadata: { collectionType: 'application/vnd.ibm.kms.event_acknowledge+json', collectionTotal: 1 },
      resources: [{ eventId, adopterKeyState: 'DEK_ENABLED', timestamp, keyStateData: { keyVersion: id } }],
    })
    const unknown = await raw(s, 'POST', '/event_ack', {
      body: {
        resources: [
          ...(ack(ev!.eventId) as any).resources,
          ...(ack('00000000-0000-4000-8000-000000000000') as any).resources,
        ],
      },
    })
    expect([unknown.status, reasonCode(unknown.json)]).toEqual([404, 'EVENT_NOT_FOUND'])
    expect((await s.t.store.getKeyEvent(INSTANCE_A, ev!.eventId))?.ackedAt).toBeUndefined()
    const badTime = await raw(s, 'POST', '/event_ack', { body: ack(ev!.eventId, 'yesterday') })
    expect([badTime.status, reasonCode(badTime.json)]).toEqual([400, 'MISSING_FIELD_ERR'])
    const otherTenant = await raw(s, 'POST', '/event_ack', {
      body: ack(ev!.eventId),
      instance: '4b2c8c5e-0a6f-4a8e-9d54-2f1f1c0a0a02',
    })
    expect([otherTenant.status, reasonCode(otherTenant.json)]).toEqual([404, 'EVENT_NOT_FOUND'])
    const ok = await raw(s, 'POST', '/event_ack', { body: ack(ev!.eventId) })
    expect(ok.status).toBe(204)
    expect(ok.text).toBe('')
    const acked = await s.t.store.getKeyEvent(INSTANCE_A, ev!.eventId)
    expect(acked).toMatchObject({ ackState: 'DEK_ENABLED', ackedAt: Date.parse('2026-11-30T12:00:00Z') })
    expect(s.audit.events.some((e) => e.event === 'kms.secrets-event.ack' && e.status === 204)).toBe(true)
  })
})
