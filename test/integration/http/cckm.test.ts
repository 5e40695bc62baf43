/**
 * The CCKM API over the REAL key synchronization service (createEngineServicesFromConfig: SoftHSM2 test
 * token, SQLite catalog, the job runner) behind a real server on loopback. The one cloud that can be
 * connected here is `pkcs11`, through a source factory given in EngineServicesOptions.syncSources that
 * reads the connection's PIN reference and then finds the token unreachable (PROVIDER_UNAVAILABLE): the
 * path of a cloud that is down. Discovery of real keys is the sources' tests' (docs/key-sync-sources.md).
 */
import { readFileSync } from 'node:fs'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EngineError } from '../../../src/core/errors.js'
import type { SyncSourceFactory } from '../../../src/core/ports-sync.js'
import type { EngineServices } from '../../../src/default-engine.js'
import { createHttpApp } from '../../../src/http/app.js'
import { createAuthenticator } from '../../../src/http/auth.js'
import { startServer, type RunningServer } from '../../../src/http/server.js'
import { tempCatalogPath } from '../../helpers/engine.js'
import {
  INSTANCE_A,
  MemoryAudit,
  readResponse,
  TENANT_A_KEY,
  TENANT_B_KEY,
  TEST_AUTH,
} from '../../helpers/http.js'
import { openServices } from '../../helpers/tenant-keys.js'

const PIN_VAR = 'EKMS_TEST_CCKM_PIN'
const PIN_VALUE = 'pin-value-7f3a9c1e'

/** The pkcs11 source of a token that cannot be reached: it resolves the PIN, then fails to open. */
const unreachable: SyncSourceFactory = async (connection, secrets) => {
  if (connection.params.cloud !== 'pkcs11') throw new EngineError('INTERNAL_ERROR', 'pkcs11 only')
  const pin = await secrets(connection.params.pin)
  throw new EngineError(
    'PROVIDER_UNAVAILABLE',
    `token ${connection.params.tokenLabel} is not reachable (login with ${pin} not attempted)`,
  )
}

let services: EngineServices
let server: RunningServer
let url: string
const catalog = tempCatalogPath()
const audit = new MemoryAudit()

beforeAll(async () => {
  process.env[PIN_VAR] = PIN_VALUE
  services = await openServices(catalog, { syncSources: { pkcs11: unreachable } })
  const http = createHttpApp({
    engine: services.engine,
    tenantKeys: services.tenantKeys,
    sync: services.sync,
    auth: createAuthenticator(TEST_AUTH),
    audit,
  })
  server = await startServer(http, { host: '127.0.0.1', port: 0 })
  url = server.url
})
afterAll(async () => {
  await server?.close(2000)
  await services?.close()
  Reflect.deleteProperty(process.env, PIN_VAR)
})

type Res = Awaited<ReturnType<typeof readResponse>>

async function call(method: string, path: string, o: { token?: string; body?: unknown } = {}): Promise<Res> {
  const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? TENANT_A_KEY}` }
  if (o.body !== undefined) headers['content-type'] = 'application/json'
  return readResponse(
    await fetch(`${url}${path}`, {
      method,
      headers,
      ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
    }),
  )
}

function expectCckmError(r: Res, status: number, code: number): void {
  expect(r.status, r.text).toBe(status)
  expect(r.json).toMatchObject({
    code,
    codeDesc: expect.stringMatching(/^NCERR/),
    message: expect.any(String),
  })
}

/** Polls the job until it leaves in_progress. */
async function settled(id: string): Promise<Res> {
  for (let i = 0; i < 200; i++) {
    const r = await call('GET', `/api/v1/cckm/pkcs11/synchronization-jobs/${id}`)
    if (r.json?.overall_status !== 'in_progress') return r
    await new Promise((res) => setTimeout(res, 50))
  }
  throw new Error(`job ${id} still in progress`)
}

const CONNS = '/api/v1/connectionmgmt/services/pkcs11/connections'
const JOBS = '/api/v1/cckm/pkcs11/synchronization-jobs'

describe('connections over the real service', () => {
  it('creates a pkcs11 connection; the catalog holds the reference, never the PIN', async () => {
    const r = await call('POST', CONNS, {
      body: {
        name: 'hsm-a',
        module: '/usr/lib/softhsm/libsofthsm2.so',
        token_label: 'tok-a',
        pin: { env: PIN_VAR },
      },
    })
    expect(r.status, r.text).toBe(201)
    expect(r.json).toMatchObject({
      name: 'hsm-a',
      service: 'pkcs11',
      token_label: 'tok-a',
      pin: { env: PIN_VAR },
    })
    expect(r.json.createdAt).toMatch(/\.\d{9}Z$/)
    const db = new Database(catalog, { readonly: true })
    try {
      const dump = JSON.stringify(db.prepare('SELECT * FROM sync_connections').all())
      expect(dump).toContain(PIN_VAR)
      expect(dump).not.toContain(PIN_VALUE)
    } finally {
      db.close()
    }
    expect(readFileSync(catalog).includes(PIN_VALUE)).toBe(false)
  })

  it('a cloud without a source in this engine: 400 CloudNotSupported; a taken name: 409; get/list/patch', async () => {
    const az = await call('POST', '/api/v1/connectionmgmt/services/azure/connections', {
      body: { name: 'kv', vault_url: 'https://kv.vault.azure.net', credential_type: 'managed-identity' },
    })
    expectCckmError(az, 400, 17)
    const dup = await call('POST', CONNS, {
      body: { name: 'hsm-a', module: '/m.so', token_label: 't', pin: { env: PIN_VAR } },
    })
    expectCckmError(dup, 409, 7)
    const got = await call('GET', `${CONNS}/hsm-a`)
    expect(got.status).toBe(200)
    const list = await call('GET', CONNS)
    expect(list.json).toMatchObject({ skip: 0, limit: 10, total: 1, resources: [{ id: got.json.id }] })
    const patched = await call('PATCH', `${CONNS}/${got.json.id}`, { body: { description: 'the A token' } })
    expect(patched.status, patched.text).toBe(200)
    expect(patched.json).toMatchObject({ description: 'the A token', token_label: 'tok-a' })
    expectCckmError(await call('GET', `${CONNS}/hsm-a`, { token: TENANT_B_KEY }), 404, 5)
  })

  it('test: 200 with the failed connect check recorded, the PIN redacted from its message', async () => {
    const r = await call('POST', `${CONNS}/hsm-a/test`)
    expect(r.status, r.text).toBe(200)
    expect(r.json).toMatchObject({
      last_connection_ok: false,
      checks: [{ check: 'connect', where: 'tok-a', ok: false, error: { code: 'PROVIDER_UNAVAILABLE' } }],
    })
    expect(r.json.last_connection_error).toMatch(/^PROVIDER_UNAVAILABLE: /)
    expect(r.text).not.toContain(PIN_VALUE)
    const again = await call('GET', `${CONNS}/hsm-a`)
    expect(again.json.last_connection_ok).toBe(false)
  })
})

describe('synchronization jobs over the real service', () => {
  it('201 in_progress; a second one: 409; cancel: 200 abort; the cancelled job ends cancelled', async () => {
    await services.jobs.close()
    try {
      const r = await call('POST', JOBS, { body: { tokens: ['hsm-a'], synchronize_all: false } })
      expect(r.status, r.text).toBe(201)
      const conn = (await call('GET', `${CONNS}/hsm-a`)).json as { id: string }
      expect(r.json).toMatchObject({
        uri: `kylo:kylo:cckm:synchronize:${r.json.id}`,
        account: `kylo:kylo:admin:accounts:${INSTANCE_A}`,
        overall_status: 'in_progress',
        cloud: 'pkcs11',
        key_vaults: [`hsm-a::${conn.id}`],
        abort: false,
      })
      expectCckmError(await call('POST', JOBS, { body: { synchronize_all: true } }), 409, 19)
      const c = await call('POST', `${JOBS}/${r.json.id}/cancel`)
      expect(c.status, c.text).toBe(200)
      expect(c.json.abort).toBe(true)
      await services.jobs.start()
      const done = await settled(r.json.id)
      expect(done.json).toMatchObject({ overall_status: 'cancelled', abort: true })
      expectCckmError(await call('POST', `${JOBS}/${r.json.id}/cancel`), 409, 20)
    } finally {
      await services.jobs.start()
    }
  })

  it('a job over an unreachable token fails with the source code; listed with the filters', async () => {
    const r = await call('POST', JOBS, { body: { synchronize_all: true } })
    expect(r.status, r.text).toBe(201)
    const done = await settled(r.json.id)
    expect(done.json).toMatchObject({ overall_status: 'failed', error: { code: 'PROVIDER_UNAVAILABLE' } })
    expect(done.json.finishedAt).toMatch(/\.\d{9}Z$/)
    const failed = await call('GET', `${JOBS}?overall_status=failed`)
    expect(failed.json).toMatchObject({ total: 1, resources: [{ id: r.json.id }] })
    const all = await call('GET', `${JOBS}?limit=1`)
    expect(all.json).toMatchObject({ skip: 0, limit: 1, total: 2, resources: [{ id: r.json.id }] })
    const byVault = await call('GET', `${JOBS}?key_vaults=hsm-a`)
    expect(byVault.json.total).toBe(2)
    expectCckmError(await call('GET', `${JOBS}/${r.json.id}`, { token: TENANT_B_KEY }), 404, 5)
    expectCckmError(await call('GET', `/api/v1/cckm/azure/synchronization-jobs/${r.json.id}`), 404, 5)
    expectCckmError(await call('POST', JOBS, { body: { tokens: ['no-such-token'] } }), 404, 5)
  })

  it("a failed job's error never carries a secret the source resolved (it is stored in the catalog)", async () => {
    const list = await call('GET', `${JOBS}?overall_status=failed`)
    expect(list.json.total).toBeGreaterThan(0)
    expect(list.text).not.toContain(PIN_VALUE)
    expect(readFileSync(catalog).includes(PIN_VALUE)).toBe(false)
  })
})

describe('linked keys and cleanup over the real service', () => {
  it('no keys were discovered: an empty page; an unknown key: 404; the connection deletes: 204', async () => {
    const list = await call('GET', '/api/v1/cckm/pkcs11/keys')
    expect(list.json).toEqual({ skip: 0, limit: 10, total: 0, resources: [] })
    expectCckmError(
      await call('GET', '/api/v1/cckm/pkcs11/keys/4e1f3b0c-0000-4000-8000-000000000000'),
      404,
      5,
    )
    expectCckmError(
      await call('POST', '/api/v1/cckm/pkcs11/keys/4e1f3b0c-0000-4000-8000-000000000000/wrap', { body: {} }),
      404,
      5,
    )
    const d = await call('DELETE', `${CONNS}/hsm-a`)
    expect(d.status, d.text).toBe(204)
    expectCckmError(await call('GET', `${CONNS}/hsm-a`), 404, 5)
    expect(audit.events.filter((e) => e.api === 'cckm').length).toBeGreaterThan(10)
  })
})
