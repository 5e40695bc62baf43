/**
 * Key Protect v2 key aliases (`/keys/{id}/aliases/{alias}`, spec digest §4.10). The engine's
 * INVALID_FIELD_ERR for these calls is answered as INVALID_PATH_PARAM_ERR naming `aliases` (`pathParams`).
 */
import type { KeyProtectOptions, RouteDef } from '../pipeline.js'
import type { Req } from '../request.js'
import { empty, json } from '../response.js'
import * as S from '../schemas.js'
import { ALIAS_TYPE, collection, rfc3339 } from '../wire.js'

/** POST /keys/{id}/aliases/{alias}: 201 when added, 200 when the key already had it. */
export async function createAlias(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const alias = r.param('alias')
  const scope = { keyRingId: r.keyRing }
  const res = await engine.addAlias(r.instance, r.param('id'), alias, scope)
  const k = await engine.getKey(r.instance, r.param('id'), scope)
  r.keyId = k.id
  return json(
    r,
    res.created ? 201 : 200,
    collection(ALIAS_TYPE, [
      { keyId: k.id, alias, createdBy: r.principal.subject, creationDate: rfc3339(new Date()) },
    ]),
  )
}

/** DELETE /keys/{id}/aliases/{alias}. */
export async function deleteAlias(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  await engine.removeAlias(r.instance, r.param('id'), r.param('alias'), { keyRingId: r.keyRing })
  return empty(r, 204)
}

export const aliasRoutes: readonly RouteDef[] = [
  {
    method: 'post',
    path: '/keys/{id}/aliases/{alias}',
    iam: 'kms.secrets.createalias',
    event: 'kms.secrets-alias.create',
    what: 'Create alias',
    summary: 'Add an alias to a key',
    params: S.AliasParams,
    pathParams: ['aliases'],
    query: S.EmptyQuery,
    responses: {
      200: { description: 'Exists', schema: S.AliasCollection },
      201: { description: 'Created', schema: S.AliasCollection },
    },
    operationId: 'createKeyAlias',
    handler: createAlias,
  },
  {
    method: 'delete',
    path: '/keys/{id}/aliases/{alias}',
    iam: 'kms.secrets.deletealias',
    event: 'kms.secrets-alias.delete',
    what: 'Delete alias',
    summary: 'Remove an alias',
    params: S.AliasParams,
    pathParams: ['aliases'],
    query: S.EmptyQuery,
    responses: { 204: { description: 'Removed' } },
    operationId: 'deleteKeyAlias',
    handler: deleteAlias,
  },
]
