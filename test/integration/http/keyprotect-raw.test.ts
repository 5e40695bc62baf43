/**
 * Raw HTTP against the Key Protect API for what the SDK cannot send: malformed bodies, wrong types,
 * unknown fields, oversized bodies, auth failures (missing, unknown, expired, wrong instance), missing
 * Bluemix-Instance, bad base64, foreign ciphertexts, AAD mismatch, tenant isolation, rate limiting,
 * audit events and the OpenAPI document. Every failure has its exact status and error envelope, and a
 * refused request never changes stored state.
 */
import { SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ADMIN_KEY,
  HS256_SECRET,
  INSTANCE_A,
  INSTANCE_B,
  kp,
  READER_A_KEY,
  reasonCode,
  startTestServer,
  TENANT_A_KEY,
  TENANT_B_KEY,
  type TestServer,
} from '../../helpers/http.js'

let s: TestServer
let rootId: string
let wrapped: { ciphertext: string; plaintext: string }

beforeAll(async () => {
  s = await startTestServer({ app: { bodyLimitBytes: 8192 } })
  const c = await kp(s, 'POST', '/keys', { body: { resources: [{ name: 'raw-root' }] } })
  expect(c.status).toBe(201)
  rootId = c.json.resources[0].id
  const w = await kp(s, 'POST', `/keys/${rootId}/actions/wrap`, { body: { aad: ['ctx-1'] } })
  wrapped = w.json
})
afterAll(async () => {
  await s.close()
})

async function jwt(
  claims: Record<string, unknown>,
  o: { exp?: number | null; iat?: number | null; iss?: string; aud?: string; secret?: string } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const b = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('jwt-user')
    .setIssuer(o.iss ?? 'https://issuer.test')
    .setAudience(o.aud ?? 'envelope-kms')
  // null: leave the claim out.
  if (o.iat !== null) b.setIssuedAt(o.iat ?? now)
  if (o.exp !== null) b.setExpirationTime(o.exp ?? now + 600)
  return b.sign(new TextEncoder().encode(o.secret ?? HS256_SECRET))
}

/** Expects `token` to get the API's 401 for a bad token on a read it would otherwise be allowed. */
async function expect401(token: string): Promise<void> {
  const r = await kp(s, 'GET', `/keys/${rootId}`, { token })
  expect(r.status).toBe(401)
  expectEnvelope(r.json, 401, 'UNAUTHORIZED_ERR')
}

function expectEnvelope(json: any, status: number, code: string): void {
  expect(json.metadata).toEqual({ collectionType: 'application/vnd.ibm.kms.error+json', collectionTotal: 1 })
  const r = json.resources[0]
  expect(typeof r.errorMsg).toBe('string')
  expect(r.reasons[0]).toMatchObject({
    code,
    status,
    moreInfo: expect.any(String),
    message: expect.any(String),
  })
}

async function keyCount(instance = INSTANCE_A): Promise<number> {
  const h = await kp(s, 'HEAD', '/keys?state=0,1,2,3,5', { instance })
  return Number(h.headers.get('key-total'))
}

describe('request validation', () => {
  it('malformed JSON is 400 BAD_BODY_ERR and creates nothing', async () => {
    const before = await keyCount()
    const r = await kp(s, 'POST', '/keys', {
      raw: '{"resources":[{"name":"x"',
      headers: { 'content-type': 'application/vnd.ibm.kms.key+json' },
    })
    expect(r.status).toBe(400)
    expectEnvelope(r.json, 400, 'BAD_BODY_ERR')
    expect(r.json.resources[0].errorMsg).toMatch(/^Bad Request: /)
    expect(await keyCount()).toBe(before)
  })

  it('wrong types, unknown fields and missing fields name the field', async () => {
    const before = await keyCount()
    let r = await kp(s, 'POST', '/keys', { body: { resources: [{ name: 'typed', extractable: 'yes' }] } })
    expect(r.status).toBe(400)
    expectEnvelope(r.json, 400, 'INVALID_FIELD_ERR')
    expect(r.json.resources[0].reasons[0].target).toEqual({ type: 'field', name: 'extractable' })
    r = await kp(s, 'POST', '/keys', { body: { resources: [{ name: 'typed', colour: 'red' }] } })
    expectEnvelope(r.json, 400, 'INVALID_FIELD_ERR')
    expect(r.json.resources[0].reasons[0].target).toEqual({ type: 'field', name: 'colour' })
    r = await kp(s, 'POST', '/keys', { body: { resources: [{ description: 'no name' }] } })
    expectEnvelope(r.json, 400, 'MISSING_FIELD_ERR')
    expect(r.json.resources[0].reasons[0].target).toEqual({ type: 'field', name: 'name' })
    r = await kp(s, 'POST', '/keys', { body: {} })
    expect(r.status).toBe(400)
    r = await kp(s, 'POST', `/keys/${rootId}/actions/unwrap`, { body: {} })
    expectEnvelope(r.json, 400, 'MISSING_FIELD_ERR')
    expect(r.json.resources[0].reasons[0].target).toEqual({ type: 'field', name: 'ciphertext' })
    r = await kp(s, 'GET', '/keys?limit=0')
    expectEnvelope(r.json, 400, 'INVALID_PARAM_ERR')
    r = await kp(s, 'GET', '/keys?colour=red')
    expectEnvelope(r.json, 400, 'INVALID_PARAM_ERR')
    r = await kp(s, 'GET', '/keys?state=1,4')
    expect(r.status).toBe(400)
    expect(await keyCount()).toBe(before)
  })

  it('accepts no Content-Type at all (the Go client) and Go field spellings', async () => {
    const res = await fetch(`${s.url}/api/v2/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'bluemix-instance': INSTANCE_A },
      body: JSON.stringify({ resources: [{ name: 'go-style', Tags: ['from-go'] }] }),
    })
    expect(res.status).toBe(201)
    const key = ((await res.json()) as any).resources[0]
    expect(key.tags).toEqual(['from-go'])
    await kp(s, 'POST', '/key_rings/go-ring')
    const moved = await kp(s, 'PATCH', `/keys/${key.id}`, { body: { KeyRingID: 'go-ring' } })
    expect(moved.status).toBe(200)
    expect(moved.json.resources[0].keyRingID).toBe('go-ring')
    const list = await kp(
      s,
      'GET',
      `/keys?search=${encodeURIComponent('exact:go-style,')}&filter=${encodeURIComponent(' extractable=false')}`,
    )
    expect(list.json.resources.map((k: any) => k.id)).toEqual([key.id])
  })

  it('X-Kms-Key-Ring scopes every key call: a key in another ring is 404 KEY_NOT_FOUND_ERR and is left untouched', async () => {
    await kp(s, 'POST', '/key_rings/scope-ring')
    const created = await kp(s, 'POST', '/keys', {
      body: {
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'scoped-http' }],
      },
      headers: { 'x-kms-key-ring': 'scope-ring' },
    })
    expect(created.status).toBe(201)
    const id = created.json.resources[0].id as string
    const inRing = { 'x-kms-key-ring': 'scope-ring' }
    const elsewhere = { 'x-kms-key-ring': 'default' }
    const wrapped = await kp(s, 'POST', `/keys/${id}/actions/wrap`, { body: {}, headers: inRing })
    expect(wrapped.status).toBe(200)
    for (const [method, path, body] of [
      ['GET', `/keys/${id}`, undefined],
      ['GET', `/keys/${id}/metadata`, undefined],
      ['GET', `/keys/${id}/versions`, undefined],
      ['GET', `/keys/${id}/policies`, undefined],
      ['POST', `/keys/${id}/actions/wrap`, {}],
      ['POST', `/keys/${id}/actions/unwrap`, { ciphertext: wrapped.json.ciphertext }],
      ['POST', `/keys/${id}/actions/rewrap`, { ciphertext: wrapped.json.ciphertext }],
      ['POST', `/keys/${id}/actions/rotate`, {}],
      ['POST', `/keys/${id}/actions/disable`, undefined],
      ['POST', `/keys/${id}/aliases/scoped-alias`, undefined],
      ['DELETE', `/keys/${id}`, undefined],
    ] as const) {
      const r = await kp(s, method, path, { ...(body === undefined ? {} : { body }), headers: elsewhere })
      expect([path, r.status, r.json?.resources?.[0]?.reasons?.[0]?.code]).toEqual([
        path,
        404,
        'KEY_NOT_FOUND_ERR',
      ])
    }
    const k = await kp(s, 'GET', `/keys/${id}`, { headers: inRing })
    expect(k.status).toBe(200)
    expect(k.json.resources[0]).toMatchObject({ state: 1, deleted: false, keyRingID: 'scope-ring' })
    expect(k.json.resources[0].aliases ?? []).toEqual([])
    expect((await kp(s, 'GET', `/keys/${id}/versions`, { headers: inRing })).json.resources).toHaveLength(1)
  })

  it('bad base64 plaintext is 400 INVALID_FIELD_ERR; bad base64 ciphertext on rewrap too; on unwrap 422', async () => {
    let r = await kp(s, 'POST', `/keys/${rootId}/actions/wrap`, { body: { plaintext: 'not base64!!' } })
    expect(r.status).toBe(400)
    expectEnvelope(r.json, 400, 'INVALID_FIELD_ERR')
    expect(r.json.resources[0].reasons[0]).toMatchObject({
      message: "The field 'plaintext' must be: a base64 encoded key material.",
      target: { type: 'field', name: 'plaintext' },
    })
    r = await kp(s, 'POST', `/keys/${rootId}/actions/rewrap`, { body: { ciphertext: '%%%' } })
    expectEnvelope(r.json, 400, 'INVALID_FIELD_ERR')
    r = await kp(s, 'POST', `/keys/${rootId}/actions/unwrap`, { body: { ciphertext: '%%%' } })
    expect(r.status).toBe(422)
    expectEnvelope(r.json, 422, 'UNPROCESSABLE_CIPHERTEXT_ERR')
  })

  it('a ciphertext of another key, a tampered ciphertext and a wrong AAD are 422 UNPROCESSABLE_CIPHERTEXT_ERR', async () => {
    const other = (await kp(s, 'POST', '/keys', { body: { resources: [{ name: 'raw-other' }] } })).json
      .resources[0].id
    let r = await kp(s, 'POST', `/keys/${other}/actions/unwrap`, {
      body: { ciphertext: wrapped.ciphertext, aad: ['ctx-1'] },
    })
    expect(r.status).toBe(422)
    expectEnvelope(r.json, 422, 'UNPROCESSABLE_CIPHERTEXT_ERR')
    r = await kp(s, 'POST', `/keys/${rootId}/actions/unwrap`, {
      body: { ciphertext: wrapped.ciphertext, aad: ['ctx-2'] },
    })
    expectEnvelope(r.json, 422, 'UNPROCESSABLE_CIPHERTEXT_ERR')
    r = await kp(s, 'POST', `/keys/${rootId}/actions/unwrap`, { body: { ciphertext: wrapped.ciphertext } })
    expectEnvelope(r.json, 422, 'UNPROCESSABLE_CIPHERTEXT_ERR')
    const bytes = Buffer.from(wrapped.ciphertext, 'base64')
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1
    r = await kp(s, 'POST', `/keys/${rootId}/actions/unwrap`, {
      body: { ciphertext: bytes.toString('base64'), aad: ['ctx-1'] },
    })
    expectEnvelope(r.json, 422, 'UNPROCESSABLE_CIPHERTEXT_ERR')
    r = await kp(s, 'POST', `/keys/${rootId}/actions/unwrap`, {
      body: { ciphertext: wrapped.ciphertext, aad: ['ctx-1'] },
    })
    expect(r.status).toBe(200)
    expect(r.json.plaintext).toBe(wrapped.plaintext)
  })

  it('an oversized body is 413 and creates nothing', async () => {
    const before = await keyCount()
    const r = await kp(s, 'POST', '/keys', {
      body: { resources: [{ name: 'big', description: 'x'.repeat(20_000) }] },
    })
    expect(r.status).toBe(413)
    expectEnvelope(r.json, 413, 'BODY_TOO_LARGE_ERR')
    expect(await keyCount()).toBe(before)
  })

  it('an oversized chunked body (no Content-Length) is 413 too', async () => {
    const before = await keyCount()
    const chunk = new TextEncoder().encode('x'.repeat(4096))
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0)
          controller.enqueue(new TextEncoder().encode('{"resources":[{"name":"big","description":"'))
        if (sent++ < 8) controller.enqueue(chunk)
        else controller.close()
      },
    })
    const res = await fetch(`${s.url}/api/v2/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'bluemix-instance': INSTANCE_A },
      body,
      duplex: 'half',
    })
    expect(res.status).toBe(413)
    expectEnvelope(await res.json(), 413, 'BODY_TOO_LARGE_ERR')
    expect(await keyCount()).toBe(before)
  })

  it('unknown routes are 404 in the same envelope; the correlation id is echoed (or made)', async () => {
    const r = await kp(s, 'GET', '/nothing-here', {
      headers: { 'correlation-id': '11111111-2222-4333-8444-555555555555' },
    })
    expect(r.status).toBe(404)
    expectEnvelope(r.json, 404, 'NOT_FOUND_ERR')
    expect(r.headers.get('correlation-id')).toBe('11111111-2222-4333-8444-555555555555')
    const made = await kp(s, 'GET', '/keys')
    expect(made.headers.get('correlation-id')).toMatch(/^[0-9a-f-]{36}$/)
    for (const [method, path, token] of [
      ['GET', '/keys/5c8f3a3e-9a0b-4f6e-8e44-000000000000', ADMIN_KEY],
      ['POST', `/keys/${rootId}/actions/unwrap`, ADMIN_KEY],
      ['GET', '/keys', 'not-a-known-token-at-all'],
    ] as const) {
      const r = await kp(s, method, path, {
        token,
        ...(method === 'POST' ? { body: { ciphertext: 'AAAA' } } : {}),
        headers: { 'correlation-id': '22222222-3333-4444-8555-666666666666' },
      })
      expect(r.status, `${method} ${path}`).toBeGreaterThanOrEqual(400)
      expect(r.headers.get('correlation-id'), `${method} ${path}`).toBe(
        '22222222-3333-4444-8555-666666666666',
      )
    }
  })

  it('nothing crashes the server: a burst of garbage leaves it serving', async () => {
    const garbage = [
      '',
      'null',
      '[]',
      '"str"',
      '{"resources":null}',
      '{"resources":[null]}',
      '{"resources":[[]]}',
      '\u0000\u0001',
      '{"a":'.repeat(2000),
    ]
    for (const raw of garbage) {
      for (const path of [
        '/keys',
        `/keys/${rootId}/actions/wrap`,
        `/keys/${rootId}/actions/unwrap`,
        `/keys/${rootId}/policies`,
      ]) {
        const method = path.endsWith('policies') ? 'PUT' : 'POST'
        const r = await kp(s, method, path, { raw })
        expect(r.status, `${method} ${path} ${raw.slice(0, 20)}`).toBeLessThan(500)
        if (r.status >= 400) expect(reasonCode(r.json)).toBeDefined()
      }
    }
    expect((await kp(s, 'GET', `/keys/${rootId}`)).status).toBe(200)
  })
})

describe('authentication and tenancy', () => {
  it('missing, malformed and unknown tokens are 401 with the standard text', async () => {
    for (const headers of [
      {},
      { authorization: 'Basic abc' },
      { authorization: 'Bearer nope-not-a-key-at-all' },
    ]) {
      const res = await fetch(`${s.url}/api/v2/keys`, {
        headers: { ...headers, 'bluemix-instance': INSTANCE_A },
      })
      expect(res.status).toBe(401)
      const json = (await res.json()) as any
      expectEnvelope(json, 401, 'UNAUTHORIZED_ERR')
      expect(json.resources[0].errorMsg).toBe(
        'Unauthorized: The user does not have access to the specified resource.',
      )
    }
  })

  it('JWT: valid HS256 passes; expired, wrong issuer, wrong audience, wrong secret and none-alg are 401', async () => {
    const good = await jwt({ instances: [INSTANCE_A], actions: ['kms.secrets.*'] })
    expect((await kp(s, 'GET', `/keys/${rootId}`, { token: good })).status).toBe(200)
    const now = Math.floor(Date.now() / 1000)
    const bad = [
      await jwt({ instances: [INSTANCE_A], actions: ['kms.secrets.*'] }, { exp: now - 120 }),
      await jwt({ instances: [INSTANCE_A], actions: ['kms.secrets.*'] }, { iss: 'https://evil.test' }),
      await jwt({ instances: [INSTANCE_A], actions: ['kms.secrets.*'] }, { aud: 'someone-else' }),
      await jwt(
        { instances: [INSTANCE_A], actions: ['kms.secrets.*'] },
        { secret: 'another-secret-that-is-32-bytes-long!!' },
      ),
      `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'x', exp: now + 60, instances: '*', actions: ['*'] })).toString('base64url')}.`,
    ]
    for (const token of bad) {
      const r = await kp(s, 'GET', `/keys/${rootId}`, { token })
      expect(r.status).toBe(401)
      expectEnvelope(r.json, 401, 'UNAUTHORIZED_ERR')
    }
  })

  const reader = { instances: [INSTANCE_A], actions: ['kms.secrets.*'] }
  const DAY = 86_400 // the default maximum JWT lifetime (EKMS_JWT_MAX_LIFETIME_S)

  it('JWT: a signature with trailing = (or other non-canonical base64url) is 401', async () => {
    const good = await jwt(reader)
    expect((await kp(s, 'GET', `/keys/${rootId}`, { token: good })).status).toBe(200)
    const [h, p, sig] = good.split('.') as [string, string, string]
    // HS256: 32 bytes in 43 characters, so the last one carries 2 unused bits, which must be zero.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const last = alphabet[alphabet.indexOf(sig.slice(-1)) ^ 1] ?? ''
    const variants = [
      `${good}=`,
      `${good}==`,
      `${h}.${p}.${sig.slice(0, -1)}${last}`,
      `${h}=.${p}.${sig}`,
      `${h}.${p}=.${sig}`,
    ]
    for (const token of variants) await expect401(token)
  })

  it('JWT: exp = 1e300 is 401', async () => {
    await expect401(await jwt(reader, { exp: 1e300 }))
  })

  it('JWT: a non-integer exp, iat or nbf is 401', async () => {
    const now = Math.floor(Date.now() / 1000)
    await expect401(await jwt(reader, { exp: now + 600.5 }))
    await expect401(await jwt(reader, { iat: now + 0.5 }))
    const nbf = await new SignJWT(reader)
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('jwt-user')
      .setIssuer('https://issuer.test')
      .setAudience('envelope-kms')
      .setIssuedAt(now)
      .setNotBefore(now - 0.5)
      .setExpirationTime(now + 600)
      .sign(new TextEncoder().encode(HS256_SECRET))
    await expect401(nbf)
  })

  it('JWT: a lifetime over the maximum (24 h by default) is 401; one just under it passes', async () => {
    const now = Math.floor(Date.now() / 1000)
    await expect401(await jwt(reader, { iat: now, exp: now + DAY + 1 }))
    // Without iat the lifetime is exp - now (plus the 30 s clock tolerance).
    await expect401(await jwt(reader, { iat: null, exp: now + DAY + 120 }))
    // An iat in the future does not stretch it either.
    await expect401(await jwt(reader, { iat: now + DAY, exp: now + 2 * DAY }))
    const under = await jwt(reader, { iat: now, exp: now + DAY - 1 })
    expect((await kp(s, 'GET', `/keys/${rootId}`, { token: under })).status).toBe(200)
    const underNoIat = await jwt(reader, { iat: null, exp: now + DAY - 1 })
    expect((await kp(s, 'GET', `/keys/${rootId}`, { token: underNoIat })).status).toBe(200)
  })

  it('JWT: a token without exp is 401', async () => {
    await expect401(await jwt(reader, { exp: null }))
  })

  it('a token for instance A gets the same 401 for anything of instance B, existing or not', async () => {
    const bKey = (
      await kp(s, 'POST', '/keys', {
        token: TENANT_B_KEY,
        instance: INSTANCE_B,
        body: { resources: [{ name: 'b-only' }] },
      })
    ).json.resources[0].id
    const onExisting = await kp(s, 'GET', `/keys/${bKey}`, { token: TENANT_A_KEY, instance: INSTANCE_B })
    const onMissing = await kp(s, 'GET', '/keys/5c8f3a3e-9a0b-4f6e-8e44-000000000000', {
      token: TENANT_A_KEY,
      instance: INSTANCE_B,
    })
    expect(onExisting.status).toBe(401)
    expect(onMissing.status).toBe(401)
    expect(onExisting.json).toEqual(onMissing.json)
    // Under its own instance, A cannot see B's key either: not found, like any unknown id.
    const own = await kp(s, 'GET', `/keys/${bKey}`, { token: TENANT_A_KEY, instance: INSTANCE_A })
    expect(own.status).toBe(404)
    expectEnvelope(own.json, 404, 'KEY_NOT_FOUND_ERR')
    const jwtA = await jwt({ instances: [INSTANCE_A], actions: ['*'] })
    expect(
      (await kp(s, 'POST', `/keys/${bKey}/actions/wrap`, { token: jwtA, instance: INSTANCE_B })).status,
    ).toBe(401)
  })

  it('an action outside the token’s IAM actions is 401 and changes nothing', async () => {
    expect((await kp(s, 'GET', '/keys', { token: READER_A_KEY })).status).toBe(200)
    expect((await kp(s, 'HEAD', '/keys', { token: READER_A_KEY })).status).toBe(200)
    const before = await keyCount()
    const r = await kp(s, 'POST', '/keys', {
      token: READER_A_KEY,
      body: { resources: [{ name: 'reader-create' }] },
    })
    expect(r.status).toBe(401)
    expect(
      (await kp(s, 'POST', `/keys/${rootId}/actions/wrap`, { token: READER_A_KEY, body: {} })).status,
    ).toBe(401)
    expect((await kp(s, 'GET', `/keys/${rootId}`, { token: READER_A_KEY })).status).toBe(401)
    expect(await keyCount()).toBe(before)
  })

  it('a missing Bluemix-Instance is 400 MISSING_FIELD_ERR', async () => {
    const r = await kp(s, 'GET', '/keys', { instance: null })
    expect(r.status).toBe(400)
    expectEnvelope(r.json, 400, 'MISSING_FIELD_ERR')
    expect(r.json.resources[0].reasons[0].target).toEqual({ type: 'header', name: 'bluemix-instance' })
  })

  it('two instances side by side: keys, aliases, key rings, listings and counts stay apart', async () => {
    const mk = async (token: string, instance: string, name: string): Promise<string> =>
      (
        await kp(s, 'POST', '/keys', {
          token,
          instance,
          body: { resources: [{ name, aliases: ['shared-alias'] }] },
        })
      ).json.resources[0].id
    const a = await mk(TENANT_A_KEY, INSTANCE_A, 'iso-a')
    const b = await mk(TENANT_B_KEY, INSTANCE_B, 'iso-b')
    expect((await kp(s, 'GET', '/keys/shared-alias', { token: TENANT_A_KEY })).json.resources[0].id).toBe(a)
    expect(
      (await kp(s, 'GET', '/keys/shared-alias', { token: TENANT_B_KEY, instance: INSTANCE_B })).json
        .resources[0].id,
    ).toBe(b)
    await kp(s, 'POST', '/key_rings/iso-ring', { token: TENANT_A_KEY })
    const ringsB = await kp(s, 'GET', '/key_rings', { token: TENANT_B_KEY, instance: INSTANCE_B })
    expect(ringsB.json.resources.map((r: any) => r.id)).not.toContain('iso-ring')
    const listB = await kp(s, 'GET', '/keys?limit=5000', { token: TENANT_B_KEY, instance: INSTANCE_B })
    expect(listB.json.resources.every((k: any) => k.crn.includes(`:${INSTANCE_B}:`))).toBe(true)
    expect(listB.json.resources.map((k: any) => k.id)).not.toContain(a)
    const countB = Number(
      (await kp(s, 'HEAD', '/keys', { token: TENANT_B_KEY, instance: INSTANCE_B })).headers.get('key-total'),
    )
    expect(countB).toBe(listB.json.resources.length)
    const w = await kp(s, 'POST', `/keys/${a}/actions/wrap`, { token: TENANT_A_KEY, body: {} })
    const cross = await kp(s, 'POST', `/keys/${b}/actions/unwrap`, {
      token: TENANT_B_KEY,
      instance: INSTANCE_B,
      body: { ciphertext: w.json.ciphertext },
    })
    expect(cross.status).toBe(422)
  })
})

describe('rate limiting, audit and OpenAPI', () => {
  it('429 with the standard text past the per-instance, per-endpoint limit; other endpoints and instances unaffected', async () => {
    const limited = await startTestServer({ app: { rateLimit: { requests: 3, windowMs: 60_000 } } })
    try {
      const statuses: number[] = []
      for (let i = 0; i < 5; i++) statuses.push((await kp(limited, 'GET', '/keys')).status)
      expect(statuses).toEqual([200, 200, 200, 429, 429])
      const r = await kp(limited, 'GET', '/keys')
      expectEnvelope(r.json, 429, 'TOO_MANY_REQUESTS_ERR')
      expect(r.json.resources[0].errorMsg).toBe('Too Many Requests: Wait a few minutes and try again.')
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0)
      expect((await kp(limited, 'GET', '/key_rings')).status).toBe(200)
      expect((await kp(limited, 'GET', '/keys', { instance: INSTANCE_B })).status).toBe(200)
    } finally {
      await limited.close()
    }
  })

  it('audit events name the action, who, instance, key, outcome and correlation id, and never key material', async () => {
    const before = s.audit.events.length
    const w = await kp(s, 'POST', `/keys/${rootId}/actions/wrap`, {
      body: {},
      headers: { 'correlation-id': 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee' },
    })
    await kp(s, 'POST', `/keys/${rootId}/actions/unwrap`, { body: { ciphertext: 'AAAA' } })
    const events = s.audit.events.slice(before)
    expect(events[0]).toMatchObject({
      event: 'kms.secrets.wrap',
      outcome: 'success',
      status: 200,
      subject: 'admin',
      instance: INSTANCE_A,
      keyId: rootId,
      correlationId: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
    })
    expect(events[1]).toMatchObject({
      event: 'kms.secrets.unwrap',
      outcome: 'failure',
      status: 422,
      reason: 'UNPROCESSABLE_CIPHERTEXT_ERR',
    })
    const all = JSON.stringify(s.audit.events)
    expect(all).not.toContain(w.json.plaintext)
    expect(all).not.toContain(w.json.ciphertext)
    expect(all).not.toContain(ADMIN_KEY)
    const meta = s.audit.events.find((e) => e.route === '/api/v2/keys/{id}/metadata')
    if (meta === undefined) await kp(s, 'GET', `/keys/${rootId}/metadata`)
    expect(s.audit.events.find((e) => e.route === '/api/v2/keys/{id}/metadata')?.event).toBe(
      'kms.secrets-metadata.read',
    )
  })

  it('serves an OpenAPI 3.1 document generated from the validation schemas', async () => {
    const res = await fetch(`${s.url}/openapi.json`)
    expect(res.status).toBe(200)
    const doc = (await res.json()) as any
    expect(doc.openapi).toBe('3.1.0')
    for (const p of [
      '/api/v2/keys',
      '/api/v2/keys/{id}/actions/wrap',
      '/api/v2/keys/{id}/policies',
      '/api/v2/key_rings/{key-ring-id}',
    ]) {
      expect(doc.paths[p], p).toBeDefined()
    }
    expect(Object.keys(doc.paths['/api/v2/keys'])).toEqual(expect.arrayContaining(['get', 'post', 'head']))
    const wrapSchema =
      doc.paths['/api/v2/keys/{id}/actions/wrap'].post.requestBody.content[
        'application/vnd.ibm.kms.key_action_wrap+json'
      ].schema
    expect(JSON.stringify(doc.components?.schemas ?? {}) + JSON.stringify(wrapSchema)).toContain('plaintext')
  })

  it('health is always up; ready reports the HSM and catalog', async () => {
    expect((await fetch(`${s.url}/health`)).status).toBe(200)
    const ready = await fetch(`${s.url}/ready`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toMatchObject({ status: 'ready', store: 'ok' })
  })
})
