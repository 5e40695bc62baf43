/**
 * Key Protect v2 key rings (spec digest §4.9). The engine's INVALID_FIELD_ERR for a ring id is answered as
 * INVALID_PATH_PARAM_ERR naming `key-ring-id` (`pathParams`).
 */
import { allowed } from '../../auth.js'
import type { KeyProtectOptions, RouteDef } from '../pipeline.js'
import { bool, HttpProblem, int, type Req } from '../request.js'
import { empty, json } from '../response.js'
import * as S from '../schemas.js'
import { collection, KEY_RING_TYPE, rfc3339 } from '../wire.js'

/** GET /key_rings (`default` first; paged here). */
export async function listKeyRings(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const limit = int(r.query['limit'], 'limit', 0, 5000, 100)
  const offset = int(r.query['offset'], 'offset', 0, Number.MAX_SAFE_INTEGER, 0)
  const rings = await engine.listKeyRings(r.instance)
  return json(
    r,
    200,
    collection(
      KEY_RING_TYPE,
      rings.slice(offset, offset + limit).map((k) => ({
        id: k.id,
        ...(k.createdAt === undefined
          ? {}
          : { creationDate: rfc3339(k.createdAt), createdBy: k.createdBy ?? 'unknown' }),
      })),
      r.query['totalCount'] === 'true' ? { totalCount: rings.length } : {},
    ),
  )
}

/** POST /key_rings/{key-ring-id}: 201 (empty body) when created, 204 when it exists. */
export async function createKeyRing(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const id = r.param('key-ring-id')
  const res = await engine.createKeyRing(r.instance, id, { createdBy: r.principal.subject })
  return empty(r, res.created ? 201 : 204)
}

/** DELETE /key_rings/{key-ring-id}; `force` (which also needs kms.secrets.patch) moves deleted keys to default. */
export async function deleteKeyRing(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const force = bool(r.query['force']) ?? false
  if (force && !allowed(r.principal, r.instance, 'kms.secrets.patch')) {
    throw new HttpProblem(401, 'UNAUTHORIZED_ERR', 'force also needs kms.secrets.patch')
  }
  await engine.deleteKeyRing(r.instance, r.param('key-ring-id'), { force })
  return empty(r, 204)
}

export const keyRingRoutes: readonly RouteDef[] = [
  {
    method: 'get',
    path: '/key_rings',
    iam: 'kms.keyrings.list',
    event: 'kms.key-rings.list',
    what: 'List key rings',
    summary: 'List key rings',
    query: S.KeyRingsQuery,
    responses: { 200: { description: 'Key rings', schema: S.KeyRingCollection } },
    handler: listKeyRings,
  },
  {
    method: 'post',
    path: '/key_rings/{key-ring-id}',
    iam: 'kms.keyrings.create',
    event: 'kms.key-rings.create',
    what: 'Create key ring',
    summary: 'Create a key ring (201, empty body; 204 if it exists)',
    params: S.KeyRingParam,
    pathParams: ['key-ring-id'],
    query: S.EmptyQuery,
    responses: { 201: { description: 'Created (empty body)' }, 204: { description: 'Already exists' } },
    handler: createKeyRing,
  },
  {
    method: 'delete',
    path: '/key_rings/{key-ring-id}',
    iam: 'kms.keyrings.delete',
    event: 'kms.key-rings.delete',
    what: 'Delete key ring',
    summary: 'Delete a key ring (force moves deleted keys to default)',
    params: S.KeyRingParam,
    pathParams: ['key-ring-id'],
    query: S.DeleteQuery,
    responses: { 204: { description: 'Deleted' } },
    handler: deleteKeyRing,
  },
]
