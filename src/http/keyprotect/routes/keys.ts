/**
 * Key Protect v2 keys: count, list, create (or import), get, metadata, move (PATCH), delete, purge,
 * restore and list versions (spec digest §2).
 */
import type { z } from '@hono/zod-openapi'
import type { KeyInfo } from '../../../core/engine.js'
import { parseStateList } from '../../../core/keys/query-language.js'
import type { KeyProtectOptions, RouteDef } from '../pipeline.js'
import { HttpProblem, int, materialInput, policiesInput, type Req } from '../request.js'
import { empty, json, keyEnvelope, keyWithPayload } from '../response.js'
import * as S from '../schemas.js'
import { collection, KEY_TYPE, keyResource, rfc3339 } from '../wire.js'

/** HEAD /keys: the number of keys in the Key-Total header. */
export async function headKeys(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const q = r.query
  const res = await engine.listKeys(r.instance, {
    limit: 1,
    ...(q['state'] === undefined ? {} : { states: parseStateList(q['state'], 'state') }),
    ...(q['extractable'] === undefined ? {} : { extractable: q['extractable'] === 'true' }),
    ...(q['filter'] === undefined ? {} : { filter: q['filter'] }),
    ...(r.keyRing === undefined ? {} : { keyRingId: r.keyRing }),
  })
  return new Response(null, {
    status: 200,
    headers: { 'key-total': String(res.total), 'correlation-id': r.correlationId },
  })
}

/** GET /keys. */
export async function listKeys(r: Req, { engine, wire }: KeyProtectOptions): Promise<Response> {
  const q = r.query
  const res = await engine.listKeys(r.instance, {
    limit: int(q['limit'], 'limit', 1, 5000, 200),
    offset: int(q['offset'], 'offset', 0, Number.MAX_SAFE_INTEGER, 0),
    ...(q['state'] === undefined ? {} : { states: parseStateList(q['state'], 'state') }),
    ...(q['extractable'] === undefined ? {} : { extractable: q['extractable'] === 'true' }),
    ...(q['search'] === undefined ? {} : { search: q['search'] }),
    ...(q['filter'] === undefined ? {} : { filter: q['filter'] }),
    ...(q['sort'] === undefined ? {} : { sort: q['sort'] }),
    ...(r.keyRing === undefined ? {} : { keyRingId: r.keyRing }),
  })
  return json(
    r,
    200,
    collection(
      KEY_TYPE,
      res.keys.map((k) => keyResource(wire, k)),
      {
        ...(q['totalCount'] === 'true' ? { totalCount: res.total } : {}),
        ...(res.incompleteSearch === true ? { incompleteSearch: true } : {}),
      },
    ),
  )
}

/** POST /keys and /keys_with_policy_overrides: create or import a key (with key-level policies). */
export async function createKey(r: Req, o: KeyProtectOptions): Promise<Response> {
  const body = r.body as z.infer<typeof S.CreateKeyWithPoliciesBody>
  const res = body.resources[0]
  if (res === undefined) throw new HttpProblem(400, 'MISSING_FIELD_ERR', 'resources: is empty')
  const material = materialInput(res)
  const policies = policiesInput(res.rotation, res.dualAuthDelete)
  const k = await o.engine.createKey(r.instance, {
    name: res.name,
    ...(res.description === undefined ? {} : { description: res.description }),
    extractable: res.extractable ?? false,
    ...material,
    ...(res.expirationDate === undefined ? {} : { expirationDate: new Date(res.expirationDate) }),
    ...(res.aliases === undefined ? {} : { aliases: res.aliases }),
    ...(res.tags === undefined ? {} : { tags: res.tags }),
    createdBy: r.principal.subject,
    ...(r.keyRing === undefined ? {} : { keyRingId: r.keyRing }),
    ...(Object.keys(policies).length === 0 ? {} : { policies }),
  })
  r.keyId = k.id
  if (r.prefer === 'return=minimal') {
    return json(r, 201, collection(KEY_TYPE, [{ id: k.id }]))
  }
  return keyWithPayload(o, r, 201, k, r.prefer === 'return=representation')
}

/** GET /keys/{id}: the key, with the payload of a standard key. */
export async function getKey(r: Req, o: KeyProtectOptions): Promise<Response> {
  const k = await o.engine.getKey(r.instance, r.param('id'), { keyRingId: r.keyRing })
  r.keyId = k.id
  return keyWithPayload(o, r, 200, k, true)
}

/** GET /keys/{id}/metadata: the key, never its payload. */
export async function getKeyMetadata(r: Req, { engine, wire }: KeyProtectOptions): Promise<Response> {
  const k = await engine.getKey(r.instance, r.param('id'), { keyRingId: r.keyRing })
  r.keyId = k.id
  return json(r, 200, keyEnvelope(wire, k))
}

/** PATCH /keys/{id}: move a key to another key ring. */
export async function patchKey(r: Req, { engine, wire }: KeyProtectOptions): Promise<Response> {
  const body = r.body as z.infer<typeof S.PatchKeyBody>
  const k = await engine.moveKey(r.instance, r.param('id'), body.keyRingID, {
    ...(r.keyRing === undefined ? {} : { expectedRing: r.keyRing }),
  })
  r.keyId = k.id
  return json(r, 200, keyEnvelope(wire, k))
}

/** DELETE /keys/{id}: soft delete (restorable for 30 days). */
export async function deleteKey(r: Req, { engine, wire }: KeyProtectOptions): Promise<Response> {
  const k = await engine.deleteKey(r.instance, r.param('id'), {
    deletedBy: r.principal.subject,
    force: r.query['force'] === 'true',
    keyRingId: r.keyRing,
  })
  r.keyId = k.id
  return r.prefer === 'return=representation' ? json(r, 200, keyEnvelope(wire, k)) : empty(r, 204)
}

/** DELETE /keys/{id}/purge: purge a deleted key. */
export async function purgeKey(r: Req, { engine, wire }: KeyProtectOptions): Promise<Response> {
  const k = await engine.getKey(r.instance, r.param('id'), { keyRingId: r.keyRing })
  r.keyId = k.id
  await engine.purgeKey(r.instance, k.id)
  return r.prefer === 'return=representation' ? json(r, 200, keyEnvelope(wire, k)) : empty(r, 204)
}

/**
 * POST /keys/{id}/restore: restore a deleted key (imported keys with their material). 201 with the key;
 * with `Prefer: return=minimal`, 201 with only its id (`resources:[{id}]`, as create, spec digest §1.5).
 */
export async function restoreKey(r: Req, { engine, wire }: KeyProtectOptions): Promise<Response> {
  const res = (r.body as z.infer<typeof S.RestoreBody> | undefined)?.resources[0]
  const material = res === undefined ? {} : materialInput(res)
  let k: KeyInfo
  try {
    k = await engine.restoreKey(r.instance, r.param('id'), { keyRingId: r.keyRing, ...material })
  } finally {
    material.payload?.fill(0)
  }
  r.keyId = k.id
  if (r.prefer === 'return=minimal') return json(r, 201, collection(KEY_TYPE, [{ id: k.id }]))
  return json(r, 201, keyEnvelope(wire, k))
}

/** GET /keys/{id}/versions. */
export async function listKeyVersions(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const q = r.query
  const res = await engine.listKeyVersions(r.instance, r.param('id'), {
    keyRingId: r.keyRing,
    limit: int(q['limit'], 'limit', 1, 5000, 200),
    offset: int(q['offset'], 'offset', 0, Number.MAX_SAFE_INTEGER, 0),
    allKeyStates: q['allKeyStates'] === 'true',
  })
  return json(
    r,
    200,
    collection(
      KEY_TYPE,
      res.versions.map((v) => ({ id: v.id, creationDate: rfc3339(v.createdAt) })),
      q['totalCount'] === 'true' ? { totalCount: res.total } : {},
    ),
  )
}

export const keyRoutes: readonly RouteDef[] = [
  {
    method: 'head',
    path: '/keys',
    iam: 'kms.secrets.head',
    what: 'Key count',
    summary: 'Number of keys (Key-Total header)',
    query: S.HeadKeysQuery,
    responses: { 200: { description: 'Key-Total header, no body' } },
    operationId: 'getKeyCollectionMetadata',
    handler: headKeys,
  },
  {
    method: 'get',
    path: '/keys',
    iam: 'kms.secrets.list',
    what: 'List keys',
    summary: 'List keys',
    query: S.ListKeysQuery,
    responses: { 200: { description: 'Keys', schema: S.KeyCollection } },
    operationId: 'getKeys',
    handler: listKeys,
  },
  {
    method: 'post',
    path: '/keys',
    iam: 'kms.secrets.create',
    what: 'Create key',
    summary: 'Create or import a key',
    query: S.EmptyQuery,
    body: { schema: S.CreateKeyBody, contentType: KEY_TYPE, required: true },
    responses: { 201: { description: 'Created', schema: S.KeyCollection } },
    handler: createKey,
  },
  {
    method: 'post',
    path: '/keys_with_policy_overrides',
    operationId: 'createKeyWithPoliciesOverrides',
    iam: 'kms.secrets-with-policy-overrides.create',
    what: 'Create key',
    summary: 'Create a key with key-level policies',
    query: S.EmptyQuery,
    body: { schema: S.CreateKeyWithPoliciesBody, contentType: KEY_TYPE, required: true },
    responses: { 201: { description: 'Created', schema: S.KeyCollection } },
    handler: createKey,
  },
  {
    method: 'get',
    path: '/keys/{id}',
    iam: 'kms.secrets.read',
    what: 'Get key',
    summary: 'Get a key (standard keys include payload)',
    params: S.IdParam,
    query: S.EmptyQuery,
    responses: { 200: { description: 'The key', schema: S.KeyCollection } },
    handler: getKey,
  },
  {
    method: 'get',
    path: '/keys/{id}/metadata',
    iam: 'kms.secrets.readmetadata',
    event: 'kms.secrets-metadata.read',
    what: 'Get key metadata',
    summary: 'Get key metadata (never payload)',
    params: S.IdParam,
    query: S.EmptyQuery,
    responses: { 200: { description: 'The key', schema: S.KeyCollection } },
    handler: getKeyMetadata,
  },
  {
    method: 'patch',
    path: '/keys/{id}',
    iam: 'kms.secrets.patch',
    what: 'Update key',
    summary: 'Move a key to another key ring',
    params: S.IdParam,
    query: S.EmptyQuery,
    body: { schema: S.PatchKeyBody, contentType: KEY_TYPE, required: true },
    responses: { 200: { description: 'The key', schema: S.KeyCollection } },
    handler: patchKey,
  },
  {
    method: 'delete',
    path: '/keys/{id}',
    iam: 'kms.secrets.delete',
    what: 'Delete key',
    summary: 'Delete a key (soft: restorable for 30 days)',
    params: S.IdParam,
    query: S.DeleteQuery,
    responses: {
      200: { description: 'The deleted key', schema: S.KeyCollection },
      204: { description: 'Deleted' },
    },
    handler: deleteKey,
  },
  {
    method: 'delete',
    path: '/keys/{id}/purge',
    iam: 'kms.secrets.purge',
    what: 'Purge key',
    summary: 'Purge a deleted key (4 h after deletion)',
    params: S.IdParam,
    query: S.EmptyQuery,
    responses: {
      200: { description: 'The purged key', schema: S.KeyCollection },
      204: { description: 'Purged' },
    },
    handler: purgeKey,
  },
  {
    method: 'post',
    path: '/keys/{id}/restore',
    iam: 'kms.secrets.restore',
    what: 'Restore key',
    summary: 'Restore a deleted key',
    params: S.IdParam,
    query: S.EmptyQuery,
    body: {
      schema: S.RestoreBody,
      contentType: 'application/vnd.ibm.kms.key_action_restore+json',
      required: false,
    },
    responses: { 201: { description: 'Restored', schema: S.KeyCollection } },
    handler: restoreKey,
  },
  {
    method: 'get',
    path: '/keys/{id}/versions',
    iam: 'kms.secrets.listkeyversions',
    event: 'kms.secrets-key-versions.list',
    what: 'List key versions',
    summary: 'List root key versions',
    params: S.IdParam,
    query: S.VersionsQuery,
    responses: { 200: { description: 'Versions', schema: S.VersionCollection } },
    operationId: 'getKeyVersions',
    handler: listKeyVersions,
  },
]
