/**
 * The CCKM endpoints over {@link KeySync}: synchronization jobs (`/api/v1/cckm/{cloud}/synchronization-jobs`),
 * connections (`/api/v1/connectionmgmt/services/{cloud}/connections`) and linked keys
 * (`/api/v1/cckm/{cloud}/keys`). Each handler is one library call (plus the cloud check of a resource named
 * by id) and a reply shaped by wire.ts. Decisions on the seed's ambiguities: docs/http-cckm.md.
 */
import { z } from '@hono/zod-openapi'
import { EngineError } from '../../core/errors.js'
import type { SyncCloud } from '../../core/ports-sync.js'
import { SecretBytes } from '../../core/secret-bytes.js'
import type {
  ConnectionView,
  KeySync,
  LinkedKeyView,
  SyncJobView,
  SyncOverallStatus,
} from '../../core/sync/types.js'
import {
  badParam,
  CCKM_IAM,
  CCKM_PREFIX,
  CONNECTIONS_PREFIX,
  json,
  noContent,
  queryInt,
  type CckmReq,
  type CckmRouteDef,
} from './pipeline.js'
import * as S from './schemas.js'
import {
  connectionWire,
  CREDENTIAL_FIELDS,
  linkedKeyWire,
  paramsOf,
  paramsWire,
  syncJobWire,
} from './wire.js'

const JOBS = `${CCKM_PREFIX}/{cloud}/synchronization-jobs`
const CONNECTIONS = `${CONNECTIONS_PREFIX}/services/{cloud}/connections`
const KEYS = `${CCKM_PREFIX}/{cloud}/keys`

/** Default and largest `limit` of a list (CipherTrust's default is 10). */
const DEFAULT_LIMIT = 10
const MAX_LIMIT = 1000
const MAX_SKIP = 1_000_000_000

/** The list fields of a job request each cloud takes (one of them at a time). */
const LIST_FIELDS: Readonly<Record<SyncCloud, readonly ('key_vaults' | 'kms' | 'tokens')[]>> = {
  azure: ['key_vaults'],
  aws: ['kms', 'key_vaults'],
  pkcs11: ['tokens', 'key_vaults'],
}

const OVERALL_STATUSES: readonly SyncOverallStatus[] = ['in_progress', 'completed', 'failed', 'cancelled']

function page(r: CckmReq, skip: number, limit: number, total: number, resources: unknown[]): Response {
  return json(r, 200, { skip, limit, total, resources })
}

// ---------------------------------------------------------------- synchronization jobs

/** POST …/synchronization-jobs: validates the list/`synchronize_all` rule per cloud, starts the job; 201. */
async function startSync(r: CckmReq, sync: KeySync): Promise<Response> {
  const b = r.body as z.infer<typeof S.SyncJobCreate>
  const allowed = LIST_FIELDS[r.cloud]
  const given = (['key_vaults', 'kms', 'tokens'] as const).filter((f) => b[f] !== undefined)
  for (const f of given) {
    if (!allowed.includes(f)) {
      throw badParam(`${f}: not a field of a ${r.cloud} synchronization (use ${allowed.join(' or ')})`)
    }
  }
  if (given.length > 1) throw badParam(`${given.join(', ')}: give one of them`)
  if (b.regions !== undefined && r.cloud !== 'aws') throw badParam('regions: only for an aws synchronization')
  if (b.take_cloud_key_backup === true) {
    throw badParam('take_cloud_key_backup: this engine takes no cloud key backups; send false or omit it')
  }
  const listField = given[0]
  const list = listField === undefined ? undefined : b[listField]
  const all = b.synchronize_all === true
  if (all && list !== undefined && list.length > 0) {
    throw badParam(
      `${listField ?? 'key_vaults'} and synchronize_all are mutually exclusive: give one of them`,
    )
  }
  if (!all && (list === undefined || list.length === 0)) {
    throw badParam(`give ${allowed.join(' or ')} (connection names or ids) or synchronize_all: true`)
  }
  const job = await sync.startSync(r.tenant, {
    cloud: r.cloud,
    ...(all ? { synchronizeAll: true } : { vaults: list }),
    ...(b.regions === undefined ? {} : { regions: b.regions }),
    createdBy: r.principal.subject,
  })
  return json(r, 201, syncJobWire(job))
}

/** The `overall_status` filter; `in progress` (the seed's spelling) is accepted for `in_progress`. */
function statusFilter(r: CckmReq): SyncOverallStatus | undefined {
  const v = r.c.req.query('overall_status')
  if (v === undefined || v === '') return undefined
  const s = v.replace(' ', '_') as SyncOverallStatus
  if (!OVERALL_STATUSES.includes(s)) throw badParam(`overall_status: one of ${OVERALL_STATUSES.join(', ')}`)
  return s
}

/**
 * GET …/synchronization-jobs: newest first, `{skip, limit, total, resources}`. `id` and `key_vaults` (comma
 * separated names or ids) filter in the adapter over the cloud's whole list (the library pages by status).
 */
async function listJobs(r: CckmReq, sync: KeySync): Promise<Response> {
  const skip = queryInt(r, 'skip', 0, MAX_SKIP)
  const limit = queryInt(r, 'limit', DEFAULT_LIMIT, MAX_LIMIT)
  const overallStatus = statusFilter(r)
  const id = r.c.req.query('id')
  const vaults = (r.c.req.query('key_vaults') ?? '')
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v.length > 0)
  const base = { cloud: r.cloud, ...(overallStatus === undefined ? {} : { overallStatus }) }
  if ((id === undefined || id === '') && vaults.length === 0) {
    const p = await sync.listSyncJobs(r.tenant, { ...base, skip, limit })
    return page(r, skip, limit, p.total, p.jobs.map(syncJobWire))
  }
  const all: SyncJobView[] = []
  for (;;) {
    const p = await sync.listSyncJobs(r.tenant, { ...base, skip: all.length, limit: MAX_LIMIT })
    all.push(...p.jobs)
    if (p.jobs.length === 0 || all.length >= p.total) break
  }
  const matching = all.filter(
    (j) =>
      (id === undefined || id === '' || j.id === id) &&
      (vaults.length === 0 || j.vaults.some((v) => vaults.includes(v.name) || vaults.includes(v.id))),
  )
  return page(r, skip, limit, matching.length, matching.slice(skip, skip + limit).map(syncJobWire))
}

/** The job of the path, of the path's cloud. @throws EngineError JOB_NOT_FOUND */
async function jobOf(r: CckmReq, sync: KeySync): Promise<SyncJobView> {
  const j = await sync.getSyncJob(r.tenant, r.id)
  if (j.cloud !== r.cloud) throw new EngineError('JOB_NOT_FOUND', `no ${r.cloud} synchronization job ${r.id}`)
  return j
}

async function getJob(r: CckmReq, sync: KeySync): Promise<Response> {
  return json(r, 200, syncJobWire(await jobOf(r, sync)))
}

/** POST …/{id}/cancel (and its synonym /abort): requests the cancel; 200 with the job (`abort: true`). */
async function cancelJob(r: CckmReq, sync: KeySync): Promise<Response> {
  const j = await jobOf(r, sync)
  return json(r, 200, syncJobWire(await sync.cancelSync(r.tenant, j.id)))
}

// ---------------------------------------------------------------- connections

async function connectionOf(r: CckmReq, sync: KeySync): Promise<ConnectionView> {
  const c = await sync.getConnection(r.tenant, r.id)
  if (c.cloud !== r.cloud) throw new EngineError('CONNECTION_NOT_FOUND', `no ${r.cloud} connection ${r.id}`)
  return c
}

async function createConnection(r: CckmReq, sync: KeySync): Promise<Response> {
  const b = r.body as z.infer<typeof S.ConnectionCreate>
  const c = await sync.createConnection(r.tenant, {
    name: b.name,
    description: b.description,
    params: paramsOf(r.cloud, b),
  })
  return json(r, 201, connectionWire(c, r.tenant))
}

async function listConnections(r: CckmReq, sync: KeySync): Promise<Response> {
  const skip = queryInt(r, 'skip', 0, MAX_SKIP)
  const limit = queryInt(r, 'limit', DEFAULT_LIMIT, MAX_LIMIT)
  const all = await sync.listConnections(r.tenant, { cloud: r.cloud })
  return page(
    r,
    skip,
    limit,
    all.length,
    all.slice(skip, skip + limit).map((c) => connectionWire(c, r.tenant)),
  )
}

async function getConnection(r: CckmReq, sync: KeySync): Promise<Response> {
  return json(r, 200, connectionWire(await connectionOf(r, sync), r.tenant))
}

/**
 * PATCH …/connections/{id}: the given fields replace the connection's (merged over its current params, which
 * are validated again as a whole); changing `credential_type` drops the old credential's fields.
 */
async function patchConnection(r: CckmReq, sync: KeySync): Promise<Response> {
  const b = r.body as Record<string, unknown>
  const keys = Object.keys(b).filter((k) => b[k] !== undefined)
  if (keys.length === 0) throw badParam('body: give at least one field to change')
  const current = await connectionOf(r, sync)
  const paramKeys = keys.filter((k) => k !== 'description')
  let params
  if (paramKeys.length > 0) {
    const dropped: readonly string[] = 'credential_type' in b ? CREDENTIAL_FIELDS : []
    const kept = Object.entries(paramsWire(current.params)).filter(([f]) => !dropped.includes(f))
    // `null` removes a field: paramsOf treats null as absent.
    params = paramsOf(r.cloud, {
      ...Object.fromEntries(kept),
      ...Object.fromEntries(paramKeys.map((f) => [f, b[f]])),
    })
  }
  const description = b['description'] === null ? '' : (b['description'] as string | undefined)
  const c = await sync.updateConnection(r.tenant, current.id, {
    ...(description === undefined ? {} : { description }),
    ...(params === undefined ? {} : { params }),
  })
  return json(r, 200, connectionWire(c, r.tenant))
}

/**
 * DELETE …/connections/{id}: 204; 409 while linked keys refer to it. `purge_deleted=true` purges the links of
 * its keys deleted at the source with it (keys still present at the source block it either way).
 */
async function deleteConnection(r: CckmReq, sync: KeySync): Promise<Response> {
  const purge = r.c.req.query('purge_deleted')
  if (purge !== undefined && purge !== '' && purge !== 'true' && purge !== 'false') {
    throw badParam('purge_deleted: true or false')
  }
  const c = await connectionOf(r, sync)
  await sync.deleteConnection(r.tenant, c.id, purge === 'true' ? { purgeDeleted: true } : {})
  return noContent(r)
}

/** POST …/connections/{id}/test: probes it; 200 with the connection and the checks (a failed probe too). */
async function testConnection(r: CckmReq, sync: KeySync): Promise<Response> {
  const c = await connectionOf(r, sync)
  return json(r, 200, connectionWire(await sync.testConnection(r.tenant, c.id), r.tenant))
}

// ---------------------------------------------------------------- linked keys

async function keyOf(r: CckmReq, sync: KeySync): Promise<LinkedKeyView> {
  const k = await sync.getLinkedKey(r.tenant, r.id)
  if (k.cloud !== r.cloud) throw new EngineError('LINKED_KEY_NOT_FOUND', `no ${r.cloud} key ${r.id}`)
  return k
}

/**
 * GET …/keys: `skip` is walked over the library's keyset pages (`after`, also accepted directly, is the
 * cheap way to page far); `connection` (name or id) and `source_state` filter.
 */
async function listKeys(r: CckmReq, sync: KeySync): Promise<Response> {
  const skip = queryInt(r, 'skip', 0, MAX_SKIP)
  const limit = queryInt(r, 'limit', DEFAULT_LIMIT, MAX_LIMIT)
  const stateParam = r.c.req.query('source_state')
  const state = stateParam === 'present' || stateParam === 'deleted' ? stateParam : undefined
  if (state === undefined && stateParam !== undefined && stateParam !== '') {
    throw badParam('source_state: present or deleted')
  }
  const connection = r.c.req.query('connection')
  const query: Parameters<KeySync['listLinkedKeys']>[1] = {
    cloud: r.cloud,
    ...(connection === undefined || connection === '' ? {} : { connection }),
    ...(state === undefined ? {} : { sourceState: state }),
  }
  let after: string | undefined = r.c.req.query('after') || undefined
  let toSkip = skip
  let total: number | undefined
  while (toSkip > 0) {
    const p = await sync.listLinkedKeys(r.tenant, {
      ...query,
      ...(after === undefined ? {} : { after }),
      limit: Math.min(toSkip, MAX_LIMIT),
    })
    total = p.total
    const last = p.keys.at(-1)
    if (last === undefined) break
    toSkip -= p.keys.length
    after = last.id
  }
  if (toSkip > 0) return page(r, skip, limit, total ?? 0, [])
  const p = await sync.listLinkedKeys(r.tenant, {
    ...query,
    ...(after === undefined ? {} : { after }),
    limit,
  })
  return page(
    r,
    skip,
    limit,
    p.total,
    p.keys.map((k) => linkedKeyWire(k, r.tenant)),
  )
}

async function getKey(r: CckmReq, sync: KeySync): Promise<Response> {
  return json(r, 200, linkedKeyWire(await keyOf(r, sync), r.tenant))
}

/**
 * DELETE …/keys/{id}: purges the link of a key deleted at its source; 204. A key still present at its source
 * is 409 (delete it there and synchronize first).
 */
async function purgeKey(r: CckmReq, sync: KeySync): Promise<Response> {
  const k = await keyOf(r, sync)
  await sync.purgeLinkedKey(r.tenant, k.id)
  return noContent(r)
}

/** POST …/keys/{id}/wrap: wraps the given DEK, or a generated one (returned in `plaintext`); 200. */
async function wrapKey(r: CckmReq, sync: KeySync): Promise<Response> {
  const b = r.body as z.infer<typeof S.WrapRequest>
  const k = await keyOf(r, sync)
  const dek = b.plaintext === undefined ? undefined : SecretBytes.adopt(Buffer.from(b.plaintext, 'base64'))
  let generated: SecretBytes | undefined
  try {
    const w = await sync.wrap(r.tenant, k.id, {
      ...(dek === undefined ? {} : { plaintext: dek }),
      ...(b.aad === undefined ? {} : { aad: b.aad }),
    })
    generated = w.plaintext
    return json(r, 200, {
      ciphertext: w.ciphertext,
      keyId: w.keyId,
      keyVersion: w.keyVersion,
      ...(generated === undefined ? {} : { plaintext: generated.bytes.toString('base64') }),
    })
  } finally {
    dek?.zeroize()
    generated?.zeroize()
  }
}

/** POST …/keys/{id}/unwrap: the ciphertext must have been made under the path's key; 200 `{plaintext}`. */
async function unwrapKey(r: CckmReq, sync: KeySync): Promise<Response> {
  const b = r.body as z.infer<typeof S.UnwrapRequest>
  const k = await keyOf(r, sync)
  const u = await sync.unwrap(r.tenant, {
    ciphertext: b.ciphertext,
    ...(b.aad === undefined ? {} : { aad: b.aad }),
  })
  try {
    if (u.keyId !== k.id) {
      throw new EngineError('CIPHERTEXT_INVALID', `the ciphertext was not made under key ${k.id}`)
    }
    return json(r, 200, {
      plaintext: u.plaintext.bytes.toString('base64'),
      keyId: u.keyId,
      keyVersion: u.keyVersion,
    })
  } finally {
    u.plaintext.zeroize()
  }
}

// ---------------------------------------------------------------- the table

const PageQuery = z.object({ skip: z.string().optional(), limit: z.string().optional() })
const JOBS_TAG = 'CCKM synchronization jobs'
const CONN_TAG = 'Connections'
const KEYS_TAG = 'CCKM linked keys'

const jobDoc = { description: 'The synchronization job', schema: S.SyncJob }
const connDoc = { description: 'The connection', schema: S.Connection }

export const CCKM_ROUTES: readonly CckmRouteDef[] = [
  {
    method: 'post',
    path: JOBS,
    operationId: 'createSynchronizationJob',
    summary: 'Start a synchronization of the cloud keys of some connections, or of all',
    tag: JOBS_TAG,
    iam: CCKM_IAM.manage,
    body: { schema: S.SyncJobCreate },
    responses: {
      201: { description: 'The job, started', schema: S.SyncJob },
      409: { description: 'A job of this cloud is in progress' },
    },
    handler: startSync,
  },
  {
    method: 'get',
    path: JOBS,
    operationId: 'listSynchronizationJobs',
    summary: 'List synchronization jobs, newest first',
    tag: JOBS_TAG,
    iam: CCKM_IAM.read,
    query: PageQuery.extend({
      overall_status: z.enum(['in_progress', 'completed', 'failed', 'cancelled']).optional(),
      id: z.string().optional(),
      key_vaults: z.string().optional().openapi({ description: 'Comma-separated connection names or ids' }),
    }),
    responses: { 200: { description: 'A page of jobs', schema: S.SyncJobList } },
    handler: listJobs,
  },
  {
    method: 'get',
    path: `${JOBS}/{id}`,
    operationId: 'getSynchronizationJob',
    summary: 'Get a synchronization job',
    tag: JOBS_TAG,
    iam: CCKM_IAM.read,
    responses: { 200: jobDoc },
    handler: getJob,
  },
  {
    method: 'post',
    path: `${JOBS}/{id}/cancel`,
    operationId: 'cancelSynchronizationJob',
    summary: 'Cancel a synchronization job',
    tag: JOBS_TAG,
    iam: CCKM_IAM.manage,
    responses: { 200: jobDoc, 409: { description: 'The job is finished' } },
    handler: cancelJob,
  },
  {
    method: 'post',
    path: `${JOBS}/{id}/abort`,
    operationId: 'abortSynchronizationJob',
    summary: 'Cancel a synchronization job (synonym of /cancel)',
    tag: JOBS_TAG,
    iam: CCKM_IAM.manage,
    responses: { 200: jobDoc, 409: { description: 'The job is finished' } },
    handler: cancelJob,
  },
  {
    method: 'post',
    path: CONNECTIONS,
    operationId: 'createConnection',
    summary: 'Create a connection (secrets only as references)',
    tag: CONN_TAG,
    iam: CCKM_IAM.manage,
    body: { schema: S.ConnectionCreate },
    responses: { 201: connDoc, 409: { description: 'A connection of that name exists' } },
    handler: createConnection,
  },
  {
    method: 'get',
    path: CONNECTIONS,
    operationId: 'listConnections',
    summary: "List the cloud's connections, by name",
    tag: CONN_TAG,
    iam: CCKM_IAM.read,
    query: PageQuery,
    responses: { 200: { description: 'A page of connections', schema: S.ConnectionList } },
    handler: listConnections,
  },
  {
    method: 'get',
    path: `${CONNECTIONS}/{id}`,
    operationId: 'getConnection',
    summary: 'Get a connection (by id or name)',
    tag: CONN_TAG,
    iam: CCKM_IAM.read,
    responses: { 200: connDoc },
    handler: getConnection,
  },
  {
    method: 'patch',
    path: `${CONNECTIONS}/{id}`,
    operationId: 'updateConnection',
    summary: 'Change a connection (by id or name)',
    tag: CONN_TAG,
    iam: CCKM_IAM.manage,
    body: { schema: S.ConnectionPatch },
    responses: { 200: connDoc },
    handler: patchConnection,
  },
  {
    method: 'delete',
    path: `${CONNECTIONS}/{id}`,
    operationId: 'deleteConnection',
    summary: 'Delete a connection no linked key refers to',
    tag: CONN_TAG,
    iam: CCKM_IAM.manage,
    query: z.object({
      purge_deleted: z.enum(['true', 'false']).optional().openapi({
        description: 'Purge the links of its keys deleted at the source with it',
      }),
    }),
    responses: { 204: { description: 'Deleted' }, 409: { description: 'Linked keys refer to it' } },
    handler: deleteConnection,
  },
  {
    method: 'post',
    path: `${CONNECTIONS}/{id}/test`,
    operationId: 'testConnection',
    summary: 'Probe a connection; records and returns the outcome',
    tag: CONN_TAG,
    iam: CCKM_IAM.manage,
    responses: { 200: connDoc },
    handler: testConnection,
  },
  {
    method: 'get',
    path: KEYS,
    operationId: 'listLinkedKeys',
    summary: 'List the linked keys synchronized from the cloud',
    tag: KEYS_TAG,
    iam: CCKM_IAM.read,
    query: PageQuery.extend({
      connection: z.string().optional(),
      source_state: z.enum(['present', 'deleted']).optional(),
      after: z
        .string()
        .optional()
        .openapi({ description: 'Keyset paging: the last id of the previous page' }),
    }),
    responses: { 200: { description: 'A page of linked keys', schema: S.LinkedKeyList } },
    handler: listKeys,
  },
  {
    method: 'get',
    path: `${KEYS}/{id}`,
    operationId: 'getLinkedKey',
    summary: 'Get a linked key',
    tag: KEYS_TAG,
    iam: CCKM_IAM.read,
    responses: { 200: { description: 'The linked key', schema: S.LinkedKey } },
    handler: getKey,
  },
  {
    method: 'delete',
    path: `${KEYS}/{id}`,
    operationId: 'purgeLinkedKey',
    summary: 'Purge the link of a key deleted at its source (its ciphertexts no longer unwrap here)',
    tag: KEYS_TAG,
    iam: CCKM_IAM.manage,
    responses: {
      204: { description: 'Purged' },
      409: { description: 'The key is still present at its source: delete it there and synchronize first' },
    },
    handler: purgeKey,
  },
  {
    method: 'post',
    path: `${KEYS}/{id}/wrap`,
    operationId: 'wrapWithLinkedKey',
    summary: 'Wrap a DEK (or a generated one) under the linked key, through its source',
    tag: KEYS_TAG,
    iam: CCKM_IAM.wrap,
    body: { schema: S.WrapRequest },
    responses: { 200: { description: 'The ciphertext', schema: S.WrapResult } },
    handler: wrapKey,
  },
  {
    method: 'post',
    path: `${KEYS}/{id}/unwrap`,
    operationId: 'unwrapWithLinkedKey',
    summary: 'Unwrap a ciphertext of /wrap',
    tag: KEYS_TAG,
    iam: CCKM_IAM.unwrap,
    body: { schema: S.UnwrapRequest },
    responses: { 200: { description: 'The DEK', schema: S.UnwrapResult } },
    handler: unwrapKey,
  },
]
