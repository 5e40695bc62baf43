/**
 * Key Protect instance policies (spec digest §3.5, §4.7) against a real server on 127.0.0.1 (SoftHSM2 token
 * + SQLite catalog): the official SDK's putInstancePolicy / getInstancePolicy / getAllowedIpPort, the allowedIP
 * check on the client address (socket peer, trusted proxies' X-Forwarded-For, IPv4, IPv6, IPv4-mapped),
 * keyCreateImportAccess on create, import and rotate, and the instance rotation / dualAuthDelete policies
 * given to new root keys.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, kp, reasonCode, startTestServer, type TestServer } from '../../helpers/http.js'

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
  result: any
}

const POLICY_TYPE = 'application/vnd.ibm.kms.policy+json'
const HOUR = 3_600_000
const DAY = 24 * HOUR

let s: TestServer
let proxied: TestServer
let sdk: Record<string, (params: Record<string, unknown>) => Promise<SdkResponse>>

function policies(...resources: object[]): object {
  return { metadata: { collectionType: POLICY_TYPE, collectionTotal: resources.length }, resources }
}

function keyBody(o: Record<string, unknown>): object {
  return {
    metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
    resources: [{ type: 'application/vnd.ibm.kms.key+json', ...o }],
  }
}

async function keyCount(server: TestServer, instance: string): Promise<number> {
  return (await server.t.engine.listKeys(instance, { limit: 200 })).total
}

beforeAll(async () => {
  s = await startTestServer()
  proxied = await startTestServer({ app: { trustedProxies: ['127.0.0.1', '::1'] } })
  sdk = new KeyProtectV2({
    authenticator: new BearerTokenAuthenticator({ bearerToken: ADMIN_KEY }),
    serviceUrl: s.url,
  })
})
afterAll(async () => {
  await s.close()
  await proxied.close()
})

describe('Key Protect SDK: instance policies', () => {
  it('putInstancePolicy sets all six types (204); getInstancePolicy returns them; getAllowedIpPort the port', async () => {
    const instance = randomUUID()
    const put = await sdk['putInstancePolicy']!({
      bluemixInstance: instance,
      setInstancePoliciesOneOf: policies(
        {
          policy_type: 'allowedNetwork',
          policy_data: { enabled: true, attributes: { allowed_network: 'public-and-private' } },
        },
        { policy_type: 'dualAuthDelete', policy_data: { enabled: false } },
        {
          policy_type: 'allowedIP',
          policy_data: { enabled: true, attributes: { allowed_ip: ['127.0.0.0/8', '::1/128'] } },
        },
        {
          policy_type: 'keyCreateImportAccess',
          policy_data: { enabled: true, attributes: { import_standard_key: false } },
        },
        { policy_type: 'metrics', policy_data: { enabled: true } },
        { policy_type: 'rotation', policy_data: { enabled: true, attributes: { interval_month: 3 } } },
      ),
    })
    expect(put.status).toBe(204)

    const got = await sdk['getInstancePolicy']!({ bluemixInstance: instance })
    expect(got.status).toBe(200)
    expect(got.result.metadata).toEqual({ collectionType: POLICY_TYPE, collectionTotal: 6 })
    const byType = new Map<string, any>(got.result.resources.map((r: any) => [r.policy_type, r]))
    expect(byType.get('allowedIP')).toMatchObject({
      policy_data: { enabled: true, attributes: { allowed_ip: ['127.0.0.0/8', '::1/128'] } },
      createdBy: 'admin',
      updatedBy: 'admin',
    })
    expect(byType.get('allowedIP').creationDate).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    expect(byType.get('allowedIP').lastUpdated).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    // Defaults completed: create/import true unless given, enforce_token false.
    expect(byType.get('keyCreateImportAccess').policy_data).toEqual({
      enabled: true,
      attributes: {
        create_root_key: true,
        create_standard_key: true,
        import_root_key: true,
        import_standard_key: false,
        enforce_token: false,
      },
    })
    expect(byType.get('dualAuthDelete').policy_data).toEqual({ enabled: false })
    expect(byType.get('metrics').policy_data).toEqual({ enabled: true })
    expect(byType.get('rotation').policy_data).toEqual({ enabled: true, attributes: { interval_month: 3 } })
    expect(byType.get('allowedNetwork').policy_data.attributes).toEqual({
      allowed_network: 'public-and-private',
    })

    const one = await sdk['getInstancePolicy']!({ bluemixInstance: instance, policy: 'rotation' })
    expect(one.result.resources.map((r: any) => r.policy_type)).toEqual(['rotation'])

    const port = await sdk['getAllowedIpPort']!({ bluemixInstance: instance })
    expect(port.status).toBe(200)
    expect(port.result).toEqual({
      metadata: { collectionType: 'application/vnd.ibm.kms.allowed_ip_metadata+json', collectionTotal: 1 },
      resources: [{ private_endpoint_port: Number(new URL(s.url).port) }],
    })

    // ?policy=allowedIP: disabling resets the attributes; the port is then not reported.
    const off = await sdk['putInstancePolicy']!({
      bluemixInstance: instance,
      policy: 'allowedIP',
      setInstancePoliciesOneOf: policies({ policy_type: 'allowedIP', policy_data: { enabled: false } }),
    })
    expect(off.status).toBe(204)
    const ip = await sdk['getInstancePolicy']!({ bluemixInstance: instance, policy: 'allowedIP' })
    expect(ip.result.resources[0].policy_data).toEqual({ enabled: false })
    const none = await sdk['getAllowedIpPort']!({ bluemixInstance: instance })
    expect(none.result.resources).toEqual([])
  })

  it('an instance with no policy answers an empty collection', async () => {
    const got = await sdk['getInstancePolicy']!({ bluemixInstance: randomUUID() })
    expect(got.result).toEqual({
      metadata: { collectionType: POLICY_TYPE, collectionTotal: 0 },
      resources: [],
    })
  })

  it('invalid policies: 400 with the reason code, nothing stored', async () => {
    const instance = randomUUID()
    const put = (body: object, query = '') =>
      kp(s, 'PUT', `/instance/policies${query}`, { instance, body, headers: { 'content-type': POLICY_TYPE } })
    let r = await put(policies({ policy_type: 'allowedIP', policy_data: { enabled: true } }))
    expect([r.status, reasonCode(r.json)]).toEqual([400, 'MISSING_FIELD_ERR'])
    r = await put(
      policies({
        policy_type: 'allowedIP',
        policy_data: { enabled: true, attributes: { allowed_ip: ['10.0.0.0/33'] } },
      }),
    )
    expect([r.status, reasonCode(r.json)]).toEqual([400, 'INVALID_FIELD_ERR'])
    r = await put(
      policies({
        policy_type: 'rotation',
        policy_data: { enabled: true, attributes: { interval_month: 13 } },
      }),
    )
    expect([r.status, reasonCode(r.json)]).toEqual([400, 'INVALID_FIELD_ERR'])
    r = await put(
      policies({ policy_type: 'metrics', policy_data: { enabled: true, attributes: { interval_month: 1 } } }),
    )
    expect([r.status, reasonCode(r.json)]).toEqual([400, 'INVALID_FIELD_ERR'])
    r = await put(
      policies({ policy_type: 'dualAuthDelete', policy_data: { enabled: true } }),
      '?policy=rotation',
    )
    expect([r.status, reasonCode(r.json)]).toEqual([400, 'INVALID_FIELD_ERR'])
    r = await put(
      policies(
        { policy_type: 'metrics', policy_data: { enabled: true } },
        { policy_type: 'metrics', policy_data: { enabled: false } },
      ),
    )
    expect([r.status, reasonCode(r.json)]).toEqual([400, 'INVALID_FIELD_ERR'])
    expect(await s.t.engine.getInstancePolicies(instance)).toEqual([])
  })
})

describe('allowedIP: the client address', () => {
  it('the loopback client outside the allow-list: 403 IP_ADDRESS_NOT_ALLOWED_ERR on every request of the instance, nothing changed', async () => {
    const instance = randomUUID()
    const other = randomUUID()
    const created = await kp(s, 'POST', '/keys', { instance, body: keyBody({ name: 'before' }) })
    expect(created.status).toBe(201)
    const id = created.json.resources[0].id as string
    const put = await kp(s, 'PUT', '/instance/policies', {
      instance,
      body: policies({
        policy_type: 'allowedIP',
        policy_data: { enabled: true, attributes: { allowed_ip: ['10.0.0.0/8', '2001:db8::/32'] } },
      }),
    })
    expect(put.status).toBe(204)
    for (const [method, path, body] of [
      ['GET', '/keys', undefined],
      ['POST', '/keys', keyBody({ name: 'refused' })],
      ['DELETE', `/keys/${id}`, undefined],
      ['GET', '/instance/policies', undefined],
      ['GET', '/instance/allowed_ip_port', undefined],
    ] as const) {
      const r = await kp(s, method, path, { instance, ...(body === undefined ? {} : { body }) })
      expect([method, path, r.status, reasonCode(r.json)]).toEqual([
        method,
        path,
        403,
        'IP_ADDRESS_NOT_ALLOWED_ERR',
      ])
    }
    // Nothing changed: one key, still active; another instance is not affected.
    expect(await keyCount(s, instance)).toBe(1)
    expect((await s.t.engine.getKey(instance, id)).state).toBe(1)
    expect((await kp(s, 'GET', '/keys', { instance: other })).status).toBe(200)
    // The policy is read from the cache, not the catalog, on each request.
    const before = s.t.store.listInstancePolicies.bind(s.t.store)
    let reads = 0
    s.t.store.listInstancePolicies = async (i) => {
      reads++
      return before(i)
    }
    try {
      for (let i = 0; i < 5; i++) expect((await kp(s, 'GET', '/keys', { instance })).status).toBe(403)
      expect(reads).toBe(0)
    } finally {
      s.t.store.listInstancePolicies = before
    }
    // Loopback added (IPv4 and IPv6): allowed again at once (the PUT invalidates the cache).
    await s.t.engine.setInstancePolicies(instance, [
      { type: 'allowedIP', enabled: true, attributes: { allowed_ip: ['127.0.0.1/32', '::1'] } },
    ])
    expect((await kp(s, 'GET', '/keys', { instance })).status).toBe(200)
  })

  it('X-Forwarded-For is ignored unless the peer is a trusted proxy', async () => {
    const instance = randomUUID()
    await s.t.engine.setInstancePolicies(instance, [
      { type: 'allowedIP', enabled: true, attributes: { allowed_ip: ['203.0.113.0/24'] } },
    ])
    const r = await kp(s, 'GET', '/keys', { instance, headers: { 'x-forwarded-for': '203.0.113.7' } })
    expect([r.status, reasonCode(r.json)]).toEqual([403, 'IP_ADDRESS_NOT_ALLOWED_ERR'])
  })

  it('behind a trusted proxy: the right-most untrusted X-Forwarded-For entry (IPv4, IPv6, IPv4-mapped)', async () => {
    const instance = randomUUID()
    await proxied.t.engine.setInstancePolicies(instance, [
      { type: 'allowedIP', enabled: true, attributes: { allowed_ip: ['203.0.113.0/24', '2001:db8::/32'] } },
    ])
    const get = (xff: string | undefined) =>
      kp(proxied, 'GET', '/keys', { instance, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } })
    for (const ok of [
      '203.0.113.7',
      '2001:db8::5',
      '::ffff:203.0.113.9',
      '198.51.100.1, 203.0.113.7',
      '203.0.113.7, 127.0.0.1',
    ]) {
      expect([ok, (await get(ok)).status]).toEqual([ok, 200])
    }
    for (const bad of [undefined, '198.51.100.1', '2001:db9::1', '203.0.113.7, 198.51.100.1', 'not-an-ip']) {
      const r = await get(bad)
      expect([bad, r.status, reasonCode(r.json)]).toEqual([bad, 403, 'IP_ADDRESS_NOT_ALLOWED_ERR'])
    }
    // A POST from outside changes nothing.
    const r = await kp(proxied, 'POST', '/keys', {
      instance,
      body: keyBody({ name: 'refused' }),
      headers: { 'x-forwarded-for': '198.51.100.1' },
    })
    expect([r.status, reasonCode(r.json)]).toEqual([403, 'IP_ADDRESS_NOT_ALLOWED_ERR'])
    expect(await keyCount(proxied, instance)).toBe(0)
  })
})

describe('keyCreateImportAccess', () => {
  it('forbids the path used with 409 KEY_CREATE_IMPORT_ACCESS_ERR (create root, import root, plain import under enforce_token, rotate), nothing created', async () => {
    const instance = randomUUID()
    const material = randomBytes(32).toString('base64')
    // An imported root key made before the policy, to rotate later.
    const imported = await kp(s, 'POST', '/keys', {
      instance,
      body: keyBody({ name: 'imp', payload: material }),
    })
    expect(imported.status).toBe(201)
    const importedId = imported.json.resources[0].id as string
    await s.t.engine.setInstancePolicies(instance, [
      {
        type: 'keyCreateImportAccess',
        enabled: true,
        attributes: { create_root_key: false, import_root_key: false },
      },
    ])
    const refused = async (body: object) => {
      const r = await kp(s, 'POST', '/keys', { instance, body })
      expect([r.status, reasonCode(r.json)]).toEqual([409, 'KEY_CREATE_IMPORT_ACCESS_ERR'])
    }
    await refused(keyBody({ name: 'root' }))
    await refused(keyBody({ name: 'root-imported', payload: randomBytes(32).toString('base64') }))
    expect(await keyCount(s, instance)).toBe(1)
    // Standard keys are still allowed.
    const std = await kp(s, 'POST', '/keys', { instance, body: keyBody({ name: 'std', extractable: true }) })
    expect(std.status).toBe(201)
    // Rotating an imported root key is an import of root material.
    s.t.clock.advance(2 * HOUR)
    const rot = await kp(s, 'POST', `/keys/${importedId}/actions/rotate`, {
      instance,
      body: { payload: randomBytes(32).toString('base64') },
    })
    expect([rot.status, reasonCode(rot.json)]).toEqual([409, 'KEY_CREATE_IMPORT_ACCESS_ERR'])
    expect((await s.t.engine.listKeyVersions(instance, importedId)).versions.length).toBe(1)

    // enforce_token: imports must use an import token; a plain payload is refused, generated keys pass.
    await s.t.engine.setInstancePolicies(instance, [
      { type: 'keyCreateImportAccess', enabled: true, attributes: { enforce_token: true } },
    ])
    await refused(keyBody({ name: 'plain-import', payload: randomBytes(32).toString('base64') }))
    await refused(
      keyBody({ name: 'plain-std', extractable: true, payload: randomBytes(32).toString('base64') }),
    )
    const generated = await kp(s, 'POST', '/keys', { instance, body: keyBody({ name: 'gen' }) })
    expect(generated.status).toBe(201)
    expect(await keyCount(s, instance)).toBe(3)

    // Disabled: everything allowed again.
    await s.t.engine.setInstancePolicies(instance, [{ type: 'keyCreateImportAccess', enabled: false }])
    const again = await kp(s, 'POST', '/keys', {
      instance,
      body: keyBody({ name: 'imp2', payload: material }),
    })
    expect(again.status).toBe(201)
  })
})

describe('instance rotation and dualAuthDelete: defaults of new root keys', () => {
  it('a root key created afterwards without its own gets them; older keys and keys with their own do not', async () => {
    const instance = randomUUID()
    const old = await kp(s, 'POST', '/keys', { instance, body: keyBody({ name: 'old' }) })
    const oldId = old.json.resources[0].id as string
    await s.t.engine.setInstancePolicies(instance, [
      { type: 'dualAuthDelete', enabled: true },
      { type: 'rotation', enabled: true, attributes: { interval_month: 1 } },
    ])
    const fresh = await kp(s, 'POST', '/keys', { instance, body: keyBody({ name: 'new' }) })
    expect(fresh.status).toBe(201)
    expect(fresh.json.resources[0].dualAuthDelete.enabled).toBe(true)
    const id = fresh.json.resources[0].id as string
    const pol = await kp(s, 'GET', `/keys/${id}/policies`, { instance })
    const rotation = pol.json.resources.find((p: any) => p.rotation !== undefined)
    const dual = pol.json.resources.find((p: any) => p.dualAuthDelete !== undefined)
    expect(rotation.rotation).toEqual({ enabled: true, interval_month: 1 })
    expect(dual.dualAuthDelete).toEqual({ enabled: true })

    // Its own policy (keys_with_policy_overrides) wins over the instance's.
    const own = await kp(s, 'POST', '/keys_with_policy_overrides', {
      instance,
      body: keyBody({ name: 'own', rotation: { enabled: true, interval_month: 6 } }),
    })
    expect(own.status).toBe(201)
    const ownId = own.json.resources[0].id as string
    const ownPol = await kp(s, 'GET', `/keys/${ownId}/policies?policy=rotation`, { instance })
    expect(ownPol.json.resources[0].rotation).toEqual({ enabled: true, interval_month: 6 })

    // Standard keys take no key policies.
    const std = await kp(s, 'POST', '/keys', { instance, body: keyBody({ name: 'std', extractable: true }) })
    expect(std.status).toBe(201)

    // dualAuthDelete applies: a delete without a prior setKeyForDeletion is refused.
    const del = await kp(s, 'DELETE', `/keys/${id}`, { instance })
    expect([del.status, reasonCode(del.json)]).toEqual([409, 'AUTHORIZATIONS_NOT_MET'])
    // The key created before the policy is unaffected.
    expect((await kp(s, 'DELETE', `/keys/${oldId}`, { instance })).status).toBe(204)

    // rotation applies: after 30 days the scheduler rotates the new key, not the one with 6 months.
    s.t.clock.advance(31 * DAY)
    await s.t.engine.rotateDueKeys()
    expect((await s.t.engine.listKeyVersions(instance, id)).versions.length).toBe(2)
    expect((await s.t.engine.listKeyVersions(instance, ownId)).versions.length).toBe(1)
  })
})
