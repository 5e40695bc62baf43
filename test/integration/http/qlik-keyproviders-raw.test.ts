/**
 * The Qlik key providers API over raw HTTP, against a real server (SoftHSM2 token, SQLite catalog, the job
 * runner): every error status with its `{errors:[{code,title,detail}]}` body, the framing refusals
 * (malformed JSON, oversized body, unknown routes under the prefix), the null-body statuses, the rate tiers
 * per tenant, tenant isolation, and the audit events. Providers here are engine keys (`envelope-kms`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ADMIN_KEY,
  INSTANCE_A,
  INSTANCE_B,
  READER_A_KEY,
  TENANT_A_KEY,
  TENANT_B_KEY,
} from '../../helpers/http.js'
import {
  awsKey,
  expectQlikError,
  q,
  QLIK_READER_A_KEY,
  startQlikServer,
  TWO_TENANTS_KEY,
  type QlikTestServer,
} from '../../helpers/qlik.js'

let s: QlikTestServer

async function rootKey(instance: string, name: string): Promise<string> {
  return (await s.t.engine.createKey(instance, { name, extractable: false })).id
}

async function register(instance: string, token: string, name: string): Promise<string> {
  const arn = await rootKey(instance, name)
  const r = await q(s, 'POST', '', { token, body: { arn, name, keyprovider: 'envelope-kms' } })
  expect(r.status, r.text).toBe(201)
  return r.json.arnFingerPrint as string
}

beforeAll(async () => {
  s = await startQlikServer({ app: { bodyLimitBytes: 4096 } })
})
afterAll(async () => {
  await s.close()
})

describe('authentication and tenancy', () => {
  it('401 Encryption-110 without a token or with an unknown one, on every route', async () => {
    for (const [method, path] of [
      ['GET', ''],
      ['POST', ''],
      ['GET', '/actions/list'],
      ['GET', '/migration/actions/details'],
      ['DELETE', '/abc'],
    ] as const) {
      expectQlikError(await q(s, method, path, { token: null }), 401, 'Encryption-110')
      expectQlikError(await q(s, method, path, { token: 'nope-not-a-key-0000000000' }), 401, 'Encryption-110')
    }
  })

  it("403 Encryption-112 for a token valid for every instance ('*') or for several", async () => {
    const all = await q(s, 'GET', '/actions/list', { token: ADMIN_KEY })
    expectQlikError(all, 403, 'Encryption-112')
    expect(all.json.errors[0].detail).toContain('"*"')
    expectQlikError(await q(s, 'GET', '/actions/list', { token: TWO_TENANTS_KEY }), 403, 'Encryption-112')
  })

  it('403 Encryption-111 without the IAM action: kms.keyproviders.read for GETs, .manage for the rest', async () => {
    expectQlikError(await q(s, 'GET', '', { token: READER_A_KEY }), 403, 'Encryption-111')
    const reader = await q(s, 'GET', '/actions/list', { token: QLIK_READER_A_KEY })
    expect(reader.status).toBe(200)
    expectQlikError(
      await q(s, 'POST', '', { token: QLIK_READER_A_KEY, body: { arn: 'x', name: 'y' } }),
      403,
      'Encryption-111',
    )
    expectQlikError(
      await q(s, 'POST', '/actions/reset-to-default-provider', { token: QLIK_READER_A_KEY }),
      403,
      'Encryption-111',
    )
  })

  it("tenant isolation: tenant B gets 404 for tenant A's fingerprint, and never lists it", async () => {
    const fp = await register(INSTANCE_A, TENANT_A_KEY, 'isolated-a')
    expect((await q(s, 'GET', `/${fp}`, { token: TENANT_A_KEY })).status).toBe(200)
    expectQlikError(await q(s, 'GET', `/${fp}`, { token: TENANT_B_KEY }), 404, 'Encryption-120')
    expectQlikError(await q(s, 'DELETE', `/${fp}`, { token: TENANT_B_KEY }), 404, 'Encryption-120')
    expectQlikError(
      await q(s, 'POST', `/${fp}/actions/migrate`, { token: TENANT_B_KEY }),
      404,
      'Encryption-120',
    )
    const listB = await q(s, 'GET', '/actions/list', { token: TENANT_B_KEY })
    expect(listB.json.map((p: any) => p.arnFingerPrint)).toEqual([INSTANCE_B])
    // A's own default entry is A's tenant id; B cannot read it either.
    expectQlikError(await q(s, 'GET', `/${INSTANCE_A}`, { token: TENANT_B_KEY }), 404, 'Encryption-120')
  })
})

describe('framing', () => {
  it('400 Encryption-101 for a malformed JSON body; 400 Encryption-100 for a missing field', async () => {
    expectQlikError(await q(s, 'POST', '', { token: TENANT_A_KEY, raw: '{"arn": ' }), 400, 'Encryption-101')
    expectQlikError(
      await q(s, 'POST', '', { token: TENANT_A_KEY, body: { arn: 'x' } }),
      400,
      'Encryption-100',
    )
    expectQlikError(await q(s, 'POST', '', { token: TENANT_A_KEY }), 400, 'Encryption-100')
  })

  it('413 Encryption-132 for a body over the limit, without reading it', async () => {
    const r = await q(s, 'POST', '', {
      token: TENANT_A_KEY,
      raw: JSON.stringify({ arn: 'a'.repeat(5000), name: 'big' }),
    })
    expectQlikError(r, 413, 'Encryption-132')
    expect(r.headers.get('connection')).toBe('close')
  })

  it('404 Encryption-122 for unknown routes and methods under the prefix, in the Qlik body', async () => {
    for (const [method, path] of [
      ['GET', '/a/b/c'],
      ['PUT', ''],
      ['PUT', '/abc'],
      ['POST', '/abc/actions/rotate'],
      ['GET', '/migration/actions'],
    ] as const) {
      expectQlikError(await q(s, method, path, { token: TENANT_A_KEY }), 404, 'Encryption-122')
    }
    const unknown = s.audit.events.filter((e) => e.api === 'qlik' && e.event === 'kms.request.unknown')
    expect(unknown.length).toBeGreaterThanOrEqual(5)
  })

  it('414 Encryption-133 for a fingerprint over 128 characters; 128 characters is an ordinary 404', async () => {
    expectQlikError(await q(s, 'GET', `/${'a'.repeat(129)}`, { token: TENANT_A_KEY }), 414, 'Encryption-133')
    expectQlikError(
      await q(s, 'DELETE', `/${'a'.repeat(200)}`, { token: TENANT_A_KEY }),
      414,
      'Encryption-133',
    )
    expectQlikError(await q(s, 'GET', `/${'a'.repeat(128)}`, { token: TENANT_A_KEY }), 404, 'Encryption-120')
  })
})

describe('registration, patch and delete', () => {
  it('201 with keyprovider in lower case; keyProvider is accepted on input; read-only fields are ignored', async () => {
    const arn = await rootKey(INSTANCE_A, 'spelling')
    const r = await q(s, 'POST', '', {
      token: TENANT_A_KEY,
      body: { arn, name: 'spelling', keyProvider: 'envelope-kms', current: true, drCompliant: true },
    })
    expect(r.status, r.text).toBe(201)
    expect(r.json).toMatchObject({ arn, name: 'spelling', keyprovider: 'envelope-kms', tenantId: INSTANCE_A })
    expect(r.json).not.toHaveProperty('keyProvider')
    expect(r.json).not.toHaveProperty('current')
    expect(r.json.arnFingerPrint).toMatch(/^[0-9a-f]{32}$/)
    expect(r.json.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    expect(r.json.promotedToCurrentAt).toBe('0001-01-01T00:00:00Z')
    expect(r.json.demotedFromCurrentAt).toBe('0001-01-01T00:00:00Z')
  })

  it('409 Encryption-131 for a key already registered; 417 Encryption-134 for a malformed ARN', async () => {
    const arn = await rootKey(INSTANCE_A, 'dup')
    const body = { arn, name: 'dup', keyprovider: 'envelope-kms' }
    expect((await q(s, 'POST', '', { token: TENANT_A_KEY, body })).status).toBe(201)
    expectQlikError(await q(s, 'POST', '', { token: TENANT_A_KEY, body }), 409, 'Encryption-131')
    expectQlikError(
      await q(s, 'POST', '', {
        token: TENANT_A_KEY,
        body: { arn: 'arn:aws:kms:nope', name: 'bad', keyprovider: 'AWS-KMS' },
      }),
      417,
      'Encryption-134',
    )
  })

  it('PATCH: 204 without a body; all operations or none; 400 Encryption-102 for anything but replace of name/description', async () => {
    const fp = await register(INSTANCE_A, TENANT_A_KEY, 'patch-me')
    const ok = await q(s, 'PATCH', `/${fp}`, {
      token: TENANT_A_KEY,
      body: [
        { op: 'replace', path: '/name', value: 'patched' },
        { op: 'replace', path: '/description', value: 'a description' },
      ],
    })
    expect(ok.status).toBe(204)
    expect(ok.text).toBe('')
    const got = await q(s, 'GET', `/${fp}`, { token: TENANT_A_KEY })
    expect(got.json).toMatchObject({ name: 'patched', description: 'a description' })
    for (const body of [
      [{ op: 'add', path: '/name', value: 'x' }],
      [{ op: 'replace', path: '/arn', value: 'x' }],
      [{ op: 'replace', path: '/name', value: 7 }],
      { op: 'replace', path: '/name', value: 'x' },
      [],
      [
        { op: 'replace', path: '/name', value: 'half' },
        { op: 'remove', path: '/description', value: '' },
      ],
    ]) {
      expectQlikError(await q(s, 'PATCH', `/${fp}`, { token: TENANT_A_KEY, body }), 400, 'Encryption-102')
    }
    expect((await q(s, 'GET', `/${fp}`, { token: TENANT_A_KEY })).json.name).toBe('patched')
    expectQlikError(
      await q(s, 'PATCH', '/0123456789abcdef0123456789abcdef', {
        token: TENANT_A_KEY,
        body: [{ op: 'replace', path: '/name', value: 'x' }],
      }),
      404,
      'Encryption-120',
    )
  })

  it('DELETE: 204 without a body for an inactive provider; 424 Encryption-135 for the default; 404 after', async () => {
    const fp = await register(INSTANCE_A, TENANT_A_KEY, 'delete-me')
    const del = await q(s, 'DELETE', `/${fp}`, { token: TENANT_A_KEY })
    expect(del.status).toBe(204)
    expect(del.text).toBe('')
    expectQlikError(await q(s, 'GET', `/${fp}`, { token: TENANT_A_KEY }), 404, 'Encryption-120')
    expectQlikError(await q(s, 'DELETE', `/${INSTANCE_A}`, { token: TENANT_A_KEY }), 424, 'Encryption-135')
  })
})

describe('migration', () => {
  it('migrate: 200 MigrationInformation; 428 while it runs; reset 406 while it runs; 424 to delete the current one; details until Completed; reset 205 without a body; 424 when already default', async () => {
    const tenant = INSTANCE_B
    const token = TENANT_B_KEY
    expectQlikError(await q(s, 'GET', '/migration/actions/details', { token }), 404, 'Encryption-121')
    expectQlikError(
      await q(s, 'POST', '/actions/reset-to-default-provider', { token }),
      424,
      'Encryption-136',
    )
    for (let i = 0; i < 300; i++) await s.tenantKeys.createDataKey(tenant, `entry-${i}`)
    const fp = await register(tenant, token, 'target')
    await s.pauseJobs()
    const m = await q(s, 'POST', `/${fp}/actions/migrate`, { token })
    expect(m.status, m.text).toBe(200)
    expect(m.json).toMatchObject({
      state: 'New',
      tenantId: tenant,
      migratingFrom: '#QLIK_MANAGED_KEY_PROVIDER#',
      migratingToFingerprint: fp,
      migratingToFingerPrint: fp,
      migratingToPrefix: `#BYOKv1#:${fp}`,
      completedAt: '0001-01-01T00:00:00Z',
    })
    expect(m.json.migrationId).toBe(m.json.id)
    expect(m.json.initiatedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    // While it is active: a second migrate 428, reset 406, delete of the current one 424.
    expectQlikError(await q(s, 'POST', `/${fp}/actions/migrate`, { token }), 428, 'Encryption-137')
    expectQlikError(
      await q(s, 'POST', '/actions/reset-to-default-provider', { token }),
      406,
      'Encryption-138',
    )
    expectQlikError(await q(s, 'DELETE', `/${fp}`, { token }), 424, 'Encryption-135')
    // Promoted at the start: the target is current, the default demoted at the same second.
    const list = (await q(s, 'GET', '/actions/list', { token })).json
    expect(list[0]).toMatchObject({ keyprovider: 'Qlik', arnFingerPrint: tenant })
    expect(list[0]).not.toHaveProperty('current')
    const target = list.find((p: any) => p.arnFingerPrint === fp)
    expect(target.current).toBe(true)
    expect(target.promotedToCurrentAt).toBe(list[0].demotedFromCurrentAt)
    await s.resumeJobs()
    let details: any
    for (let i = 0; i < 600; i++) {
      details = (await q(s, 'GET', '/migration/actions/details', { token })).json
      if (details.state === 'Completed') break
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(details).toMatchObject({ id: m.json.id, state: 'Completed', progress: 100 })
    expect(details.completedAt).not.toBe('0001-01-01T00:00:00Z')

    const reset = await q(s, 'POST', '/actions/reset-to-default-provider', { token })
    expect(reset.status).toBe(205)
    expect(reset.text).toBe('')
    expect(reset.headers.get('location')).toBe('/api/v1/encryption/keyproviders/migration/actions/details')
    const resetId = reset.headers.get('x-migration-id')
    expect(resetId).toBeTruthy()
    const back = await s.tenantKeys.waitForMigration(tenant, resetId ?? '')
    expect(back.jobState).toBe('completed')
    const after = (await q(s, 'GET', '/migration/actions/details', { token })).json
    expect(after).toMatchObject({
      id: resetId,
      state: 'Completed',
      migratingTo: '#QLIK_MANAGED_KEY_PROVIDER#',
    })
    expectQlikError(
      await q(s, 'POST', '/actions/reset-to-default-provider', { token }),
      424,
      'Encryption-136',
    )
    // Every entry still reads, and the old target can go now.
    expect((await s.tenantKeys.getDataKey(tenant, 'entry-299')).providerFingerprint).toBe(tenant)
    expect((await q(s, 'DELETE', `/${fp}`, { token })).status).toBe(204)
  })
})

describe('the AWS KMS side (the AWS-KMS-compatible endpoint on loopback)', () => {
  it('register: 406 Encryption-139 for a key that does not exist there; 408 Encryption-130 when the endpoint is down', async () => {
    const withAws = await startQlikServer({ aws: true })
    try {
      const key = await awsKey(withAws, 'eu-west-1')
      const absent = key.arn.replace(/key\/.*$/, 'key/00000000-0000-4000-8000-000000000000')
      expectQlikError(
        await q(withAws, 'POST', '', {
          token: TENANT_A_KEY,
          body: { arn: absent, name: 'absent', keyprovider: 'AWS-KMS' },
        }),
        406,
        'Encryption-139',
      )
      await withAws.aws?.endpoint.close()
      const down = await q(withAws, 'POST', '', {
        token: TENANT_A_KEY,
        body: { arn: key.arn, name: 'down', keyprovider: 'AWS-KMS' },
      })
      expectQlikError(down, 408, 'Encryption-130')
      expect(down.json.errors[0].title).toContain('might be unavailable')
    } finally {
      await withAws.close()
    }
  }, 60_000)
})

describe('rate tiers', () => {
  it('per tenant: tier 1 (GET) and tier 2 (mutations) counted apart; 429 Encryption-140 with Retry-After', async () => {
    const limited = await startQlikServer({
      app: { qlikRateLimit: { reads: 3, mutations: 2, windowMs: 60_000 } },
    })
    try {
      for (let i = 0; i < 3; i++)
        expect((await q(limited, 'GET', '', { token: TENANT_A_KEY })).status).toBe(200)
      const over = await q(limited, 'GET', '/actions/list', { token: TENANT_A_KEY })
      expectQlikError(over, 429, 'Encryption-140')
      expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0)
      // Mutations have their own tier; another tenant its own windows.
      expectQlikError(await q(limited, 'DELETE', '/nope', { token: TENANT_A_KEY }), 404, 'Encryption-120')
      expectQlikError(await q(limited, 'DELETE', '/nope', { token: TENANT_A_KEY }), 404, 'Encryption-120')
      expectQlikError(await q(limited, 'DELETE', '/nope', { token: TENANT_A_KEY }), 429, 'Encryption-140')
      expect((await q(limited, 'GET', '', { token: TENANT_B_KEY })).status).toBe(200)
    } finally {
      await limited.close()
    }
  })
})

describe('audit', () => {
  it("one event per request with api 'qlik', the IAM action as event, the operation, tenant and fingerprint", async () => {
    const before = s.audit.events.length
    await q(s, 'GET', `/${INSTANCE_A}`, {
      token: TENANT_A_KEY,
      headers: { 'correlation-id': 'qlik-audit-1' },
    })
    const e = s.audit.events.slice(before).find((x) => x.correlationId === 'qlik-audit-1')
    expect(e).toMatchObject({
      api: 'qlik',
      event: 'kms.keyproviders.read',
      operation: 'getEncryptionKeyprovider',
      instance: INSTANCE_A,
      keyId: INSTANCE_A,
      subject: 'alice',
      status: 200,
      outcome: 'success',
    })
  })
})
