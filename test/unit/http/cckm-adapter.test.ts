/**
 * The CCKM HTTP adapter's translation and validation (src/http/cckm), over a real listener on loopback and a
 * small in-memory KeySync written here for the adapter's shape only: request validation, status codes,
 * bodies, the error table, auth and tenant isolation, 400/404/409/413 paths. The real service runs in
 * test/integration/http/cckm.test.ts.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EngineError } from '../../../src/core/errors.js'
import type { SyncCloud } from '../../../src/core/ports-sync.js'
import { SecretBytes } from '../../../src/core/secret-bytes.js'
import type {
  ConnectionInput,
  ConnectionView,
  KeySync,
  LinkedKeyView,
  SyncJobRequest,
  SyncJobView,
} from '../../../src/core/sync/types.js'
import { CCKM_ERRORS } from '../../../src/http/errors.js'
import {
  ADMIN_KEY,
  INSTANCE_A,
  INSTANCE_B,
  READER_A_KEY,
  readResponse,
  startTestServer,
  TENANT_A_KEY,
  TENANT_B_KEY,
  type TestServer,
} from '../../helpers/http.js'

/** The adapter's counterpart: every call recorded, tenant-scoped state, the library's error codes. */
class SmallKeySync implements KeySync {
  readonly calls: { method: string; args: unknown[] }[] = []
  readonly connections = new Map<string, ConnectionView & { tenant: string }>()
  readonly jobs = new Map<string, SyncJobView>()
  readonly keys = new Map<string, LinkedKeyView & { tenant: string }>()

  #conn(tenant: string, idOrName: string): ConnectionView & { tenant: string } {
    for (const c of this.connections.values()) {
      if (c.tenant === tenant && (c.id === idOrName || c.name === idOrName)) return c
    }
    throw new EngineError('CONNECTION_NOT_FOUND', `no connection ${idOrName}`)
  }

  async createConnection(tenant: string, input: ConnectionInput): Promise<ConnectionView> {
    this.calls.push({ method: 'createConnection', args: [tenant, input] })
    if ([...this.connections.values()].some((c) => c.tenant === tenant && c.name === input.name)) {
      throw new EngineError('CONNECTION_EXISTS', `connection ${input.name} exists`)
    }
    const now = new Date()
    const c = {
      tenant,
      id: randomUUID(),
      name: input.name,
      cloud: input.params.cloud,
      description: input.description,
      params: input.params,
      createdAt: now,
      updatedAt: now,
      lastTest: undefined,
    }
    this.connections.set(c.id, c)
    return c
  }
  async getConnection(tenant: string, idOrName: string): Promise<ConnectionView> {
    return this.#conn(tenant, idOrName)
  }
  async listConnections(tenant: string, query?: { readonly cloud?: SyncCloud }): Promise<ConnectionView[]> {
    return [...this.connections.values()]
      .filter((c) => c.tenant === tenant && (query?.cloud === undefined || c.cloud === query.cloud))
      .sort((a, b) => a.name.localeCompare(b.name))
  }
  async updateConnection(
    tenant: string,
    idOrName: string,
    patch: Parameters<KeySync['updateConnection']>[2],
  ): Promise<ConnectionView> {
    this.calls.push({ method: 'updateConnection', args: [tenant, idOrName, patch] })
    const c = this.#conn(tenant, idOrName)
    const next = {
      ...c,
      ...(patch.description === undefined ? {} : { description: patch.description }),
      ...(patch.params === undefined ? {} : { params: patch.params }),
      updatedAt: new Date(),
    }
    this.connections.set(c.id, next)
    return next
  }
  async deleteConnection(
    tenant: string,
    idOrName: string,
    options: Parameters<KeySync['deleteConnection']>[2] = {},
  ): Promise<void> {
    this.calls.push({ method: 'deleteConnection', args: [tenant, idOrName, options] })
    const c = this.#conn(tenant, idOrName)
    const links = [...this.keys.values()].filter((k) => k.connectionId === c.id)
    const blocking = options.purgeDeleted === true ? links.filter((k) => k.sourceState === 'present') : links
    if (blocking.length > 0) throw new EngineError('CONNECTION_IN_USE', 'linked keys refer to it')
    for (const k of links) this.keys.delete(k.id)
    this.connections.delete(c.id)
  }
  async purgeLinkedKey(tenant: string, id: string): Promise<void> {
    this.calls.push({ method: 'purgeLinkedKey', args: [tenant, id] })
    const k = await this.getLinkedKey(tenant, id)
    if (k.sourceState === 'present') {
      throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'still present at its source')
    }
    this.keys.delete(k.id)
  }
  async testConnection(tenant: string, idOrName: string): Promise<ConnectionView> {
    const c = this.#conn(tenant, idOrName)
    const next = {
      ...c,
      lastTest: {
        testedAt: new Date(),
        ok: false,
        checks: [
          { check: 'connect', where: 'vault', ok: true },
          {
            check: 'list',
            where: 'vault',
            ok: false,
            error: { code: 'PROVIDER_ACCESS_DENIED', message: 'list refused' },
          },
        ],
      },
    }
    this.connections.set(c.id, next)
    return next
  }

  async startSync(tenant: string, request: SyncJobRequest): Promise<SyncJobView> {
    this.calls.push({ method: 'startSync', args: [tenant, request] })
    const vaults =
      request.synchronizeAll === true
        ? (await this.listConnections(tenant, { cloud: request.cloud })).map((c) => ({
            name: c.name,
            id: c.id,
          }))
        : (request.vaults ?? []).map((v) => {
            const c = this.#conn(tenant, v)
            return { name: c.name, id: c.id }
          })
    for (const j of this.jobs.values()) {
      if (j.tenant === tenant && j.cloud === request.cloud && j.overallStatus === 'in_progress') {
        throw new EngineError('JOB_CONFLICT', `a ${request.cloud} synchronization is running`)
      }
    }
    const now = new Date()
    const job: SyncJobView = {
      id: randomUUID(),
      tenant,
      cloud: request.cloud,
      overallStatus: 'in_progress',
      state: 'queued',
      abort: false,
      vaults,
      regions: request.regions,
      synchronizeAll: request.synchronizeAll === true,
      done: 0,
      total: vaults.length,
      progress: 0,
      counts: { discovered: 0, inserted: 0, updated: 0, unchanged: 0, markedDeleted: 0 },
      error: undefined,
      createdBy: request.createdBy,
      createdAt: now,
      updatedAt: now,
      startedAt: undefined,
      finishedAt: undefined,
    }
    this.jobs.set(job.id, job)
    return job
  }
  async getSyncJob(tenant: string, id: string): Promise<SyncJobView> {
    const j = this.jobs.get(id)
    if (j === undefined || j.tenant !== tenant) throw new EngineError('JOB_NOT_FOUND', `no job ${id}`)
    return j
  }
  async listSyncJobs(
    tenant: string,
    query: Parameters<KeySync['listSyncJobs']>[1] = {},
  ): Promise<{ jobs: SyncJobView[]; total: number }> {
    this.calls.push({ method: 'listSyncJobs', args: [tenant, query] })
    const all = [...this.jobs.values()]
      .filter(
        (j) =>
          j.tenant === tenant &&
          (query.cloud === undefined || j.cloud === query.cloud) &&
          (query.overallStatus === undefined || j.overallStatus === query.overallStatus),
      )
      .reverse()
    const skip = query.skip ?? 0
    return { jobs: all.slice(skip, skip + (query.limit ?? 100)), total: all.length }
  }
  async cancelSync(tenant: string, id: string): Promise<SyncJobView> {
    const j = await this.getSyncJob(tenant, id)
    if (j.overallStatus !== 'in_progress') throw new EngineError('JOB_FINISHED', `job ${id} is finished`)
    const next: SyncJobView = { ...j, abort: true, updatedAt: new Date() }
    this.jobs.set(id, next)
    return next
  }
  /** Test control: the job completes. */
  finish(id: string): void {
    const j = this.jobs.get(id)
    if (j === undefined) throw new Error('no such job')
    const now = new Date()
    this.jobs.set(id, {
      ...j,
      overallStatus: 'completed',
      state: 'completed',
      done: j.total,
      progress: 100,
      counts: { discovered: 3, inserted: 2, updated: 1, unchanged: 0, markedDeleted: 0 },
      startedAt: now,
      finishedAt: now,
    })
  }
  async waitForSync(tenant: string, id: string): Promise<SyncJobView> {
    return this.getSyncJob(tenant, id)
  }
  subscribeSync(): () => void {
    return () => undefined
  }

  async getLinkedKey(tenant: string, id: string): Promise<LinkedKeyView> {
    const k = this.keys.get(id)
    if (k === undefined || k.tenant !== tenant) throw new EngineError('LINKED_KEY_NOT_FOUND', `no key ${id}`)
    return k
  }
  async listLinkedKeys(
    tenant: string,
    query: Parameters<KeySync['listLinkedKeys']>[1] = {},
  ): Promise<{ keys: LinkedKeyView[]; total: number }> {
    this.calls.push({ method: 'listLinkedKeys', args: [tenant, query] })
    const all = [...this.keys.values()]
      .filter(
        (k) =>
          k.tenant === tenant &&
          (query.cloud === undefined || k.cloud === query.cloud) &&
          (query.sourceState === undefined || k.sourceState === query.sourceState),
      )
      .sort((a, b) => a.id.localeCompare(b.id))
    const after = all.filter((k) => query.after === undefined || k.id > query.after)
    return { keys: after.slice(0, query.limit ?? 100), total: all.length }
  }
  /** The "ciphertext": base64 of `keyId|version|aad|dek-base64` (the adapter never looks inside). */
  async wrap(
    tenant: string,
    id: string,
    input: Parameters<KeySync['wrap']>[2] = {},
  ): Promise<{ ciphertext: string; keyId: string; keyVersion: number; plaintext: SecretBytes | undefined }> {
    const k = await this.getLinkedKey(tenant, id)
    if (k.sourceState === 'deleted') throw new EngineError('LINKED_KEY_UNAVAILABLE', 'deleted at its source')
    const given = input.plaintext
    const dek =
      given === undefined ? randomBytes(32) : Buffer.from(given instanceof SecretBytes ? given.bytes : given)
    const ct = Buffer.from(`${k.id}|1|${(input.aad ?? []).join(',')}|${dek.toString('base64')}`).toString(
      'base64',
    )
    return {
      ciphertext: ct,
      keyId: k.id,
      keyVersion: 1,
      plaintext: given === undefined ? SecretBytes.adopt(dek) : undefined,
    }
  }
  async unwrap(
    tenant: string,
    input: { readonly ciphertext: string; readonly aad?: readonly string[] },
  ): Promise<{ plaintext: SecretBytes; keyId: string; keyVersion: number }> {
    const [keyId, , aad, dek] = Buffer.from(input.ciphertext, 'base64').toString().split('|')
    if (keyId === undefined || dek === undefined)
      throw new EngineError('CIPHERTEXT_INVALID', 'not a ciphertext')
    await this.getLinkedKey(tenant, keyId)
    if (aad !== (input.aad ?? []).join(',')) throw new EngineError('UNWRAP_AAD_MISMATCH', 'aad differs')
    return { plaintext: SecretBytes.adopt(Buffer.from(dek, 'base64')), keyId, keyVersion: 1 }
  }

  addKey(tenant: string, cloud: SyncCloud, connectionId: string, sourceState: 'present' | 'deleted'): string {
    const id = randomUUID()
    const now = new Date()
    this.keys.set(id, {
      tenant,
      id,
      cloud,
      connectionId,
      vault: 'vault.example',
      sourceKeyId: `key-${id.slice(0, 8)}`,
      name: `key-${id.slice(0, 8)}`,
      keyType: 'oct-HSM',
      usable: true,
      enabled: true,
      versions: [
        { version: 'v1', ref: `https://vault.example/keys/k/v1`, enabled: true, createdAt: now.getTime() },
      ],
      attributes: { key_ops: ['wrapKey', 'unwrapKey'] },
      sourceState,
      deletedAtSourceAt: sourceState === 'deleted' ? now : undefined,
      firstSyncedAt: now,
      lastSyncedAt: now,
      lastSyncJobId: randomUUID(),
    })
    return id
  }
}

let s: TestServer
let sync: SmallKeySync

beforeAll(async () => {
  sync = new SmallKeySync()
  s = await startTestServer({ app: { sync, bodyLimitBytes: 4096 } })
})
afterAll(async () => {
  await s?.close()
})

async function call(
  method: string,
  path: string,
  o: { token?: string | null; body?: unknown; raw?: string } = {},
): ReturnType<typeof readResponse> {
  const headers: Record<string, string> = {}
  if (o.token !== null) headers['authorization'] = `Bearer ${o.token ?? TENANT_A_KEY}`
  let body: string | undefined
  if (o.raw !== undefined) body = o.raw
  else if (o.body !== undefined) body = JSON.stringify(o.body)
  if (body !== undefined) headers['content-type'] = 'application/json'
  return readResponse(
    await fetch(`${s.url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) }),
  )
}

type Res = Awaited<ReturnType<typeof readResponse>>

/** The ids of a list response's resources. */
function ids(r: Res): string[] {
  return (r.json as { resources: { id: string }[] }).resources.map((x) => x.id)
}

/** A CCKM error body: the status, the integer code and its codeDesc name. */
function expectCckmError(r: Res, status: number, code: number, name: string): void {
  expect(r.status, JSON.stringify(r.json)).toBe(status)
  expect(r.json).toEqual({
    code,
    codeDesc: expect.stringMatching(new RegExp(`^NCERR${name}: `)),
    message: expect.any(String),
  })
}

const CONNS = (cloud: string): string => `/api/v1/connectionmgmt/services/${cloud}/connections`
const JOBS = (cloud: string): string => `/api/v1/cckm/${cloud}/synchronization-jobs`
const NANO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/

async function azureConnection(name: string, token = TENANT_A_KEY): Promise<Res['json']> {
  const r = await call('POST', CONNS('azure'), {
    token,
    body: {
      name,
      vault_url: `https://${name}.vault.azure.net`,
      tenant_id: 'aad-tenant',
      client_id: 'app-id',
      client_secret: { env: 'AZURE_CLIENT_SECRET' },
    },
  })
  expect(r.status, r.text).toBe(201)
  return r.json
}

describe('connections', () => {
  it('POST creates an azure connection: 201, the secret only as its reference, never a literal', async () => {
    const c = await azureConnection('kv-create')
    expect(c).toMatchObject({
      name: 'kv-create',
      service: 'azure',
      account: `kylo:kylo:admin:accounts:${INSTANCE_A}`,
      vault_url: 'https://kv-create.vault.azure.net',
      credential_type: 'client-secret',
      tenant_id: 'aad-tenant',
      client_id: 'app-id',
      client_secret: { env: 'AZURE_CLIENT_SECRET' },
      last_connection_ok: null,
    })
    expect(c.uri).toBe(`kylo:kylo:connectionmgmt:connections:kv-create-${c.id}`)
    expect(c.createdAt).toMatch(NANO)
    const input = sync.calls.filter((x) => x.method === 'createConnection').at(-1)?.args[1] as ConnectionInput
    expect(input.params).toEqual({
      cloud: 'azure',
      vaultUrl: 'https://kv-create.vault.azure.net',
      credential: {
        kind: 'client-secret',
        tenantId: 'aad-tenant',
        clientId: 'app-id',
        secret: { kind: 'env', name: 'AZURE_CLIENT_SECRET' },
      },
    })
  })

  it('a literal secret is refused with 400 saying to use a reference, without echoing it', async () => {
    for (const [cloud, body] of [
      [
        'azure',
        {
          name: 'lit1',
          vault_url: 'https://x',
          tenant_id: 't',
          client_id: 'c',
          client_secret: 'S3cr3t-literal',
        },
      ],
      [
        'aws',
        {
          name: 'lit2',
          regions: ['eu-west-1'],
          access_key_id: { env: 'K' },
          secret_access_key: 'S3cr3t-literal',
        },
      ],
      ['pkcs11', { name: 'lit3', module: '/usr/lib/softhsm/libsofthsm2.so', token_label: 't', pin: 1234 }],
    ] as const) {
      const r = await call('POST', CONNS(cloud), { body })
      expectCckmError(r, 400, 4, 'InvalidParamValue')
      expect(r.json.message).toMatch(
        /literal secret is not accepted.*\{"env":"VARIABLE_NAME"\}.*\{"file":"\/absolute\/path"\}/,
      )
      expect(r.text).not.toContain('S3cr3t-literal')
      expect(r.text).not.toContain('1234')
    }
    expect(
      sync.calls.some((x) => x.method === 'createConnection' && JSON.stringify(x.args).includes('lit')),
    ).toBe(false)
  })

  it('aws and pkcs11 params map to ConnectionParams; a file reference must be absolute', async () => {
    const aws = await call('POST', CONNS('aws'), {
      body: {
        name: 'aws-1',
        regions: ['eu-west-1', 'eu-west-3'],
        endpoint: 'https://127.0.0.1:4443',
        access_key_id: { env: 'AWS_KEY_ID' },
        secret_access_key: { file: '/run/secrets/aws' },
      },
    })
    expect(aws.status, aws.text).toBe(201)
    expect(aws.json).toMatchObject({
      service: 'aws',
      credential_type: 'static',
      secret_access_key: { file: '/run/secrets/aws' },
    })
    const input = sync.calls.filter((x) => x.method === 'createConnection').at(-1)?.args[1] as ConnectionInput
    expect(input.params).toEqual({
      cloud: 'aws',
      regions: ['eu-west-1', 'eu-west-3'],
      endpoint: 'https://127.0.0.1:4443',
      credentials: {
        kind: 'static',
        accessKeyId: { kind: 'env', name: 'AWS_KEY_ID' },
        secretAccessKey: { kind: 'file', path: '/run/secrets/aws' },
      },
    })
    const p11 = await call('POST', CONNS('pkcs11'), {
      body: {
        name: 'hsm-1',
        module: '/usr/lib/softhsm/libsofthsm2.so',
        token_label: 'tok',
        pin: { file: '/etc/pin' },
      },
    })
    expect(p11.status, p11.text).toBe(201)
    expect(p11.json).toMatchObject({
      module: '/usr/lib/softhsm/libsofthsm2.so',
      token_label: 'tok',
      pin: { file: '/etc/pin' },
    })
    const relative = await call('POST', CONNS('pkcs11'), {
      body: { name: 'hsm-2', module: '/m.so', token_label: 'tok', pin: { file: 'pin.txt' } },
    })
    expectCckmError(relative, 400, 4, 'InvalidParamValue')
  })

  it('400 for a missing field, a field of another cloud, an unknown field; 409 for a taken name', async () => {
    expectCckmError(
      await call('POST', CONNS('azure'), { body: { name: 'm1', tenant_id: 't' } }),
      400,
      4,
      'InvalidParamValue',
    )
    const foreign = await call('POST', CONNS('azure'), {
      body: { name: 'm2', vault_url: 'https://x', credential_type: 'managed-identity', module: '/m.so' },
    })
    expectCckmError(foreign, 400, 4, 'InvalidParamValue')
    expect(foreign.json.message).toMatch(/^module: not a field of a azure connection/)
    const unknown = await call('POST', CONNS('azure'), {
      body: { name: 'm3', vault_url: 'https://x', credential_type: 'managed-identity', vaultUrl: 'typo' },
    })
    expectCckmError(unknown, 400, 4, 'InvalidParamValue')
    expect(unknown.json.message).toMatch(/vaultUrl/)
    await azureConnection('kv-dup')
    const dup = await call('POST', CONNS('azure'), {
      body: { name: 'kv-dup', vault_url: 'https://x', credential_type: 'managed-identity' },
    })
    expectCckmError(dup, 409, 7, 'ResourceAlreadyExists')
  })

  it('GET by id or name, list {skip, limit, total, resources}; another cloud or tenant: 404', async () => {
    const c = await azureConnection('kv-get')
    expect((await call('GET', `${CONNS('azure')}/${c.id}`)).json.name).toBe('kv-get')
    expect((await call('GET', `${CONNS('azure')}/kv-get`)).json.id).toBe(c.id)
    expectCckmError(await call('GET', `${CONNS('aws')}/${c.id}`), 404, 5, 'ResourceNotFound')
    expectCckmError(
      await call('GET', `${CONNS('azure')}/${c.id}`, { token: TENANT_B_KEY }),
      404,
      5,
      'ResourceNotFound',
    )
    const list = await call('GET', `${CONNS('azure')}?skip=1&limit=2`)
    expect(list.status).toBe(200)
    expect(list.json).toMatchObject({ skip: 1, limit: 2, total: expect.any(Number) })
    expect(list.json.resources).toHaveLength(2)
    expect(
      (list.json as { resources: { service: string }[] }).resources.every((x) => x.service === 'azure'),
    ).toBe(true)
    expectCckmError(await call('GET', `${CONNS('azure')}?limit=x`), 400, 4, 'InvalidParamValue')
  })

  it('PATCH merges over the current params; changing credential_type drops the old credential', async () => {
    const c = await azureConnection('kv-patch')
    const r1 = await call('PATCH', `${CONNS('azure')}/${c.id}`, {
      body: { description: 'd', tenant_id: 't2' },
    })
    expect(r1.status, r1.text).toBe(200)
    expect(r1.json).toMatchObject({
      description: 'd',
      tenant_id: 't2',
      client_secret: { env: 'AZURE_CLIENT_SECRET' },
    })
    const r2 = await call('PATCH', `${CONNS('azure')}/kv-patch`, {
      body: { credential_type: 'managed-identity' },
    })
    expect(r2.status, r2.text).toBe(200)
    expect(r2.json.credential_type).toBe('managed-identity')
    expect(r2.json.client_secret).toBeUndefined()
    expectCckmError(
      await call('PATCH', `${CONNS('azure')}/kv-patch`, { body: {} }),
      400,
      4,
      'InvalidParamValue',
    )
    expectCckmError(
      await call('PATCH', `${CONNS('azure')}/kv-patch`, { body: { name: 'x' } }),
      400,
      4,
      'InvalidParamValue',
    )
    expectCckmError(
      await call('PATCH', `${CONNS('azure')}/kv-patch`, { body: { client_secret: 'lit' } }),
      400,
      4,
      'InvalidParamValue',
    )
  })

  it('POST …/test answers 200 with the checks; DELETE 204, then 404; in use: 409', async () => {
    const c = await azureConnection('kv-test')
    const t = await call('POST', `${CONNS('azure')}/${c.id}/test`)
    expect(t.status, t.text).toBe(200)
    expect(t.json).toMatchObject({
      last_connection_ok: false,
      last_connection_error: 'PROVIDER_ACCESS_DENIED: list refused',
      checks: [
        { check: 'connect', ok: true },
        { check: 'list', ok: false, error: { code: 'PROVIDER_ACCESS_DENIED' } },
      ],
    })
    expect(t.json.last_connection_at).toMatch(NANO)
    const d = await call('DELETE', `${CONNS('azure')}/kv-test`)
    expect(d.status).toBe(204)
    expect(d.text).toBe('')
    expectCckmError(await call('GET', `${CONNS('azure')}/${c.id}`), 404, 5, 'ResourceNotFound')
    const used = await azureConnection('kv-used')
    sync.addKey(INSTANCE_A, 'azure', used.id, 'present')
    expectCckmError(await call('DELETE', `${CONNS('azure')}/${used.id}`), 409, 21, 'ConnectionInUse')
  })
})

describe('synchronization jobs', () => {
  it("POST starts a job: 201 with the seed's resource (name::id vaults, nanosecond times, AzureCloud)", async () => {
    const c = await azureConnection('keyvault-softkeys')
    // The seed's own example: synchronize_all false with a non-empty list.
    const r = await call('POST', JOBS('azure'), { body: { key_vaults: [c.id], synchronize_all: false } })
    expect(r.status, r.text).toBe(201)
    expect(r.json).toMatchObject({
      uri: `kylo:kylo:cckm:synchronize:${r.json.id}`,
      account: `kylo:kylo:admin:accounts:${INSTANCE_A}`,
      application: 'ncryptify:gemalto:admin:apps:kylo',
      devAccount: 'ncryptify:gemalto:admin:accounts:gemalto',
      overall_status: 'in_progress',
      cloud: 'AzureCloud',
      key_vaults: [`keyvault-softkeys::${c.id}`],
      abort: false,
      synchronize_all: false,
      progress: 0,
      counts: { discovered: 0, inserted: 0, updated: 0, unchanged: 0, marked_deleted: 0 },
    })
    expect(r.json.createdAt).toMatch(NANO)
    expect(r.json.updatedAt).toMatch(NANO)
    const req = sync.calls.filter((x) => x.method === 'startSync').at(-1)?.args
    expect(req).toEqual([INSTANCE_A, { cloud: 'azure', vaults: [c.id], createdBy: 'alice' }])

    // One job per cloud at a time.
    const again = await call('POST', JOBS('azure'), { body: { synchronize_all: true } })
    expectCckmError(again, 409, 19, 'SyncInProgress')

    // GET, the list, cancel (abort true), cancel of a finished job, the /abort synonym.
    const got = await call('GET', `${JOBS('azure')}/${r.json.id}`)
    expect(got.json.id).toBe(r.json.id)
    expectCckmError(await call('GET', `${JOBS('aws')}/${r.json.id}`), 404, 5, 'ResourceNotFound')
    expectCckmError(
      await call('GET', `${JOBS('azure')}/${r.json.id}`, { token: TENANT_B_KEY }),
      404,
      5,
      'ResourceNotFound',
    )
    const cancelled = await call('POST', `${JOBS('azure')}/${r.json.id}/cancel`)
    expect(cancelled.status, cancelled.text).toBe(200)
    expect(cancelled.json.abort).toBe(true)
    sync.finish(r.json.id)
    expectCckmError(await call('POST', `${JOBS('azure')}/${r.json.id}/abort`), 409, 20, 'JobFinished')
    const done = await call('GET', `${JOBS('azure')}/${r.json.id}`)
    expect(done.json).toMatchObject({
      overall_status: 'completed',
      progress: 100,
      counts: { inserted: 2, updated: 1 },
    })
    expect(done.json.finishedAt).toMatch(NANO)
  })

  it('aws takes kms (or key_vaults) and regions; pkcs11 takes tokens; the cloud names', async () => {
    await call('POST', CONNS('aws'), { body: { name: 'aws-jobs', regions: ['eu-west-1'] } })
    const aws = await call('POST', JOBS('aws'), { body: { kms: ['aws-jobs'], regions: ['eu-west-1'] } })
    expect(aws.status, aws.text).toBe(201)
    expect(aws.json).toMatchObject({ cloud: 'aws', regions: ['eu-west-1'] })
    expect(sync.calls.filter((x) => x.method === 'startSync').at(-1)?.args[1]).toEqual({
      cloud: 'aws',
      vaults: ['aws-jobs'],
      regions: ['eu-west-1'],
      createdBy: 'alice',
    })
    sync.finish(aws.json.id)
    await call('POST', CONNS('pkcs11'), {
      body: { name: 'hsm-jobs', module: '/m.so', token_label: 'lbl', pin: { env: 'PIN' } },
    })
    const p11 = await call('POST', JOBS('pkcs11'), { body: { tokens: ['hsm-jobs'] } })
    expect(p11.status, p11.text).toBe(201)
    expect(p11.json.cloud).toBe('pkcs11')
    sync.finish(p11.json.id)
  })

  it('400 for neither, both, an unknown field, a field of another cloud, bad types, malformed JSON', async () => {
    const cases: [unknown, RegExp][] = [
      [{}, /key_vaults .*or synchronize_all: true/],
      [{ synchronize_all: false }, /synchronize_all: true/],
      [{ key_vaults: [] }, /synchronize_all: true/],
      [{ key_vaults: ['a'], synchronize_all: true }, /mutually exclusive/],
      [{ synchronise_all: true }, /synchronise_all/],
      [{ kms: ['a'] }, /^kms: not a field of a azure synchronization/],
      [{ synchronize_all: true, regions: ['eu-west-1'] }, /^regions: only for an aws/],
      [{ key_vaults: 'kv' }, /^key_vaults: /],
      [{ synchronize_all: 'yes' }, /^synchronize_all: /],
      [{ synchronize_all: true, take_cloud_key_backup: true }, /take_cloud_key_backup/],
      [[], /^body: /],
    ]
    for (const [body, message] of cases) {
      const r = await call('POST', JOBS('azure'), { body })
      expectCckmError(r, 400, 4, 'InvalidParamValue')
      expect(r.json.message, JSON.stringify(body)).toMatch(message)
    }
    expectCckmError(
      await call('POST', JOBS('aws'), { body: { kms: ['a'], tokens: ['b'] } }),
      400,
      4,
      'InvalidParamValue',
    )
    expectCckmError(await call('POST', JOBS('azure'), { raw: '{"key_vaults": [' }), 400, 3, 'BadRequest')
    expectCckmError(await call('POST', JOBS('azure'), { raw: '' }), 400, 3, 'BadRequest')
    // An unknown vault is the library's CONNECTION_NOT_FOUND.
    expectCckmError(
      await call('POST', JOBS('azure'), { body: { key_vaults: ['nope'] } }),
      404,
      5,
      'ResourceNotFound',
    )
    expect(
      sync.calls
        .filter((x) => x.method === 'startSync')
        .every((x) => JSON.stringify(x.args).indexOf('synchronise') < 0),
    ).toBe(true)
  })

  it('GET lists {skip, limit, total, resources} newest first; overall_status (either spelling), id and key_vaults filter', async () => {
    const c = await azureConnection('kv-list')
    const j = await call('POST', JOBS('azure'), { body: { key_vaults: ['kv-list'] } })
    expect(j.status, j.text).toBe(201)
    const all = await call('GET', `${JOBS('azure')}?limit=1`)
    expect(all.status).toBe(200)
    expect(all.json).toMatchObject({ skip: 0, limit: 1, total: expect.any(Number) })
    expect(ids(all)).toEqual([j.json.id])
    expect(all.json.total).toBeGreaterThan(1)
    const running = await call('GET', `${JOBS('azure')}?overall_status=${encodeURIComponent('in progress')}`)
    expect(ids(running)).toEqual([j.json.id])
    expect(sync.calls.filter((x) => x.method === 'listSyncJobs').at(-1)?.args[1]).toEqual({
      cloud: 'azure',
      overallStatus: 'in_progress',
      skip: 0,
      limit: 10,
    })
    const byId = await call('GET', `${JOBS('azure')}?id=${j.json.id}`)
    expect(byId.json).toMatchObject({ total: 1, resources: [{ id: j.json.id }] })
    const byVault = await call('GET', `${JOBS('azure')}?key_vaults=other,${c.id}`)
    expect(ids(byVault)).toEqual([j.json.id])
    expectCckmError(await call('GET', `${JOBS('azure')}?overall_status=done`), 400, 4, 'InvalidParamValue')
    expectCckmError(await call('GET', `${JOBS('azure')}?skip=-1`), 400, 4, 'InvalidParamValue')
    expectCckmError(await call('GET', `${JOBS('azure')}?limit=1001`), 400, 4, 'InvalidParamValue')
    sync.finish(j.json.id)
  })
})

describe('linked keys', () => {
  it('list, get; another cloud: 404; wrap a generated or given DEK; unwrap; another key: 422; deleted: 409', async () => {
    const c = await azureConnection('kv-keys')
    const k1 = sync.addKey(INSTANCE_A, 'azure', c.id, 'present')
    const gone = sync.addKey(INSTANCE_A, 'azure', c.id, 'deleted')
    const list = await call('GET', '/api/v1/cckm/azure/keys?limit=1000&source_state=present')
    expect(list.status, list.text).toBe(200)
    expect(ids(list)).toContain(k1)
    expect(ids(list)).not.toContain(gone)
    const skipped = await call('GET', '/api/v1/cckm/azure/keys?skip=1&limit=1000')
    expect(skipped.json.resources.length).toBe(skipped.json.total - 1)
    expectCckmError(
      await call('GET', '/api/v1/cckm/azure/keys?source_state=gone'),
      400,
      4,
      'InvalidParamValue',
    )
    const got = await call('GET', `/api/v1/cckm/azure/keys/${k1}`)
    expect(got.json).toMatchObject({
      id: k1,
      cloud: 'azure',
      connection_id: c.id,
      key_type: 'oct-HSM',
      source_state: 'present',
    })
    expect(got.json.versions[0].createdAt).toMatch(NANO)
    expectCckmError(await call('GET', `/api/v1/cckm/aws/keys/${k1}`), 404, 5, 'ResourceNotFound')
    expectCckmError(
      await call('GET', `/api/v1/cckm/azure/keys/${k1}`, { token: TENANT_B_KEY }),
      404,
      5,
      'ResourceNotFound',
    )

    const gen = await call('POST', `/api/v1/cckm/azure/keys/${k1}/wrap`, { body: {} })
    expect(gen.status, gen.text).toBe(200)
    expect(gen.json).toMatchObject({ keyId: k1, keyVersion: 1 })
    expect(Buffer.from(gen.json.plaintext, 'base64')).toHaveLength(32)
    const dek = randomBytes(32).toString('base64')
    const given = await call('POST', `/api/v1/cckm/azure/keys/${k1}/wrap`, {
      body: { plaintext: dek, aad: ['a', 'b'] },
    })
    expect(given.json.plaintext).toBeUndefined()
    const un = await call('POST', `/api/v1/cckm/azure/keys/${k1}/unwrap`, {
      body: { ciphertext: given.json.ciphertext, aad: ['a', 'b'] },
    })
    expect(un.status, un.text).toBe(200)
    expect(un.json).toEqual({ plaintext: dek, keyId: k1, keyVersion: 1 })
    expectCckmError(
      await call('POST', `/api/v1/cckm/azure/keys/${k1}/unwrap`, {
        body: { ciphertext: given.json.ciphertext },
      }),
      422,
      16,
      'InvalidCiphertext',
    )
    const k2 = sync.addKey(INSTANCE_A, 'azure', c.id, 'present')
    expectCckmError(
      await call('POST', `/api/v1/cckm/azure/keys/${k2}/unwrap`, {
        body: { ciphertext: given.json.ciphertext, aad: ['a', 'b'] },
      }),
      422,
      16,
      'InvalidCiphertext',
    )
    expectCckmError(
      await call('POST', `/api/v1/cckm/azure/keys/${gone}/wrap`, { body: {} }),
      409,
      22,
      'KeyUnavailable',
    )
    expectCckmError(
      await call('POST', `/api/v1/cckm/azure/keys/${k1}/wrap`, { body: { plaintext: 'not base64!' } }),
      400,
      4,
      'InvalidParamValue',
    )
    expectCckmError(
      await call('POST', `/api/v1/cckm/azure/keys/${k1}/unwrap`, { body: {} }),
      400,
      4,
      'InvalidParamValue',
    )
  })
})

describe('purging linked keys', () => {
  it('DELETE …/keys/{id}: 204 for a key deleted at its source, then 404; 409 while present; another cloud or tenant: 404; manage only', async () => {
    const c = await azureConnection('kv-purge')
    const present = sync.addKey(INSTANCE_A, 'azure', c.id, 'present')
    const gone = sync.addKey(INSTANCE_A, 'azure', c.id, 'deleted')
    const still = await call('DELETE', `/api/v1/cckm/azure/keys/${present}`)
    expectCckmError(still, 409, 11, 'Conflict')
    expect(still.json.message).toMatch(/still present at its source/)
    expect(sync.keys.has(present)).toBe(true)
    expectCckmError(await call('DELETE', `/api/v1/cckm/aws/keys/${gone}`), 404, 5, 'ResourceNotFound')
    expectCckmError(
      await call('DELETE', `/api/v1/cckm/azure/keys/${gone}`, { token: TENANT_B_KEY }),
      404,
      5,
      'ResourceNotFound',
    )
    expectCckmError(
      await call('DELETE', `/api/v1/cckm/azure/keys/${gone}`, { token: READER_A_KEY }),
      403,
      9,
      'Forbidden',
    )
    expect(sync.keys.has(gone)).toBe(true)
    const before = s.audit.events.length
    const d = await call('DELETE', `/api/v1/cckm/azure/keys/${gone}`)
    expect(d.status, d.text).toBe(204)
    expect(d.text).toBe('')
    expect(sync.calls.at(-1)).toEqual({ method: 'purgeLinkedKey', args: [INSTANCE_A, gone] })
    expect(s.audit.events.slice(before)[0]).toMatchObject({
      event: 'kms.sync.manage',
      operation: 'purgeLinkedKey',
      status: 204,
    })
    expectCckmError(await call('DELETE', `/api/v1/cckm/azure/keys/${gone}`), 404, 5, 'ResourceNotFound')
    expectCckmError(
      await call('DELETE', `/api/v1/cckm/azure/keys/${randomUUID()}`),
      404,
      5,
      'ResourceNotFound',
    )
  })

  it('DELETE …/connections/{id}?purge_deleted=true passes purgeDeleted; a bad value is 400', async () => {
    const c = await azureConnection('kv-purge-conn')
    sync.addKey(INSTANCE_A, 'azure', c.id, 'deleted')
    expectCckmError(await call('DELETE', `${CONNS('azure')}/${c.id}`), 409, 21, 'ConnectionInUse')
    expectCckmError(
      await call('DELETE', `${CONNS('azure')}/${c.id}?purge_deleted=yes`),
      400,
      4,
      'InvalidParamValue',
    )
    const d = await call('DELETE', `${CONNS('azure')}/${c.id}?purge_deleted=true`)
    expect(d.status, d.text).toBe(204)
    expect(sync.calls.at(-1)).toEqual({
      method: 'deleteConnection',
      args: [INSTANCE_A, c.id, { purgeDeleted: true }],
    })
    expect([...sync.keys.values()].some((k) => k.connectionId === c.id)).toBe(false)
  })
})

describe('framing, auth and tenancy', () => {
  it('401 without a token, 403 without the action or with a token for every tenant', async () => {
    expectCckmError(await call('GET', JOBS('azure'), { token: null }), 401, 8, 'Unauthorized')
    expectCckmError(await call('GET', JOBS('azure'), { token: READER_A_KEY }), 403, 9, 'Forbidden')
    const all = await call('GET', JOBS('azure'), { token: ADMIN_KEY })
    expectCckmError(all, 403, 9, 'Forbidden')
    expect(all.json.message).toMatch(/exactly one tenant/)
  })

  it('an unknown cloud is a typed 404, as is an unknown route under the prefixes', async () => {
    const r = await call('POST', JOBS('gcp'), { body: { synchronize_all: true } })
    expectCckmError(r, 404, 5, 'ResourceNotFound')
    expect(r.json.message).toMatch(/unknown cloud "gcp": one of azure, aws, pkcs11/)
    expectCckmError(await call('GET', CONNS('gcp')), 404, 5, 'ResourceNotFound')
    expectCckmError(await call('GET', '/api/v1/cckm/azure/nothing'), 404, 6, 'NoRoute')
    expectCckmError(await call('PUT', JOBS('azure')), 404, 6, 'NoRoute')
  })

  it('413 for a body over the limit', async () => {
    const r = await call('POST', JOBS('azure'), {
      body: { key_vaults: Array.from({ length: 400 }, (_, i) => `vault-${i}`) },
    })
    expectCckmError(r, 413, 10, 'RequestTooLarge')
  })

  it('one audit event per request, api cckm, the IAM action as event, the tenant, the failure reason', async () => {
    const before = s.audit.events.length
    await call('GET', `${JOBS('azure')}/${randomUUID()}`)
    await call('POST', JOBS('azure'), { body: {} })
    const [get, post] = s.audit.events.slice(before)
    expect(get).toMatchObject({
      api: 'cckm',
      event: 'kms.sync.read',
      instance: INSTANCE_A,
      status: 404,
      reason: 'NCERRResourceNotFound',
      operation: 'getSynchronizationJob',
      route: '/api/v1/cckm/{cloud}/synchronization-jobs/{id}',
    })
    expect(post).toMatchObject({
      api: 'cckm',
      event: 'kms.sync.manage',
      status: 400,
      reason: 'NCERRInvalidParamValue',
      subject: 'alice',
    })
  })

  it('every route is in /openapi.json', async () => {
    const doc = (await call('GET', '/openapi.json', { token: null })).json
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/cckm/{cloud}/synchronization-jobs',
        '/api/v1/cckm/{cloud}/synchronization-jobs/{id}',
        '/api/v1/cckm/{cloud}/synchronization-jobs/{id}/cancel',
        '/api/v1/cckm/{cloud}/synchronization-jobs/{id}/abort',
        '/api/v1/connectionmgmt/services/{cloud}/connections',
        '/api/v1/connectionmgmt/services/{cloud}/connections/{id}',
        '/api/v1/connectionmgmt/services/{cloud}/connections/{id}/test',
        '/api/v1/cckm/{cloud}/keys',
        '/api/v1/cckm/{cloud}/keys/{id}',
        '/api/v1/cckm/{cloud}/keys/{id}/wrap',
        '/api/v1/cckm/{cloud}/keys/{id}/unwrap',
      ]),
    )
    expect(doc.paths['/api/v1/cckm/{cloud}/synchronization-jobs'].post.responses['201']).toBeDefined()
  })

  it('the error table: a 5xx never carries the engine message; JOB_CONFLICT is 409', () => {
    expect(CCKM_ERRORS.JOB_CONFLICT.status).toBe(409)
    expect(CCKM_ERRORS.CONNECTION_NOT_FOUND).toMatchObject({ status: 404, code: 5 })
    for (const shape of Object.values(CCKM_ERRORS)) expect(shape.codeDesc).toMatch(/^NCERR[A-Za-z]+: /)
  })
})

it('tenant B sees none of tenant A’s connections, jobs or keys', async () => {
  const b = await call('GET', `${CONNS('azure')}?limit=1000`, { token: TENANT_B_KEY })
  expect(b.json.total).toBe(0)
  const j = await call('GET', JOBS('azure'), { token: TENANT_B_KEY })
  expect(j.json.total).toBe(0)
  const k = await call('GET', '/api/v1/cckm/azure/keys', { token: TENANT_B_KEY })
  expect(k.json.total).toBe(0)
  expect(INSTANCE_B).not.toBe(INSTANCE_A)
})
