/**
 * Key Protect v2 key aliases (`/keys/{id}/aliases/{alias}`, spec digest §4.10). The engine's
 * INVALID_FIELD_ERR for these calls is answered as INVALID_PATH_PARAM_ERR naming `aliases` (`pathParams`).
 */
import type { KeyProtectOptions, RouteDef } from '../pipeline.js'
import type { Req } from '../request.js'
import { empty, json } from '../response.js'
import * as S from '../schemas.js'
import { ALIAS_TYPE, collection, rfc3339 } from '../wire.js'

/**
 * POST /keys/{id}/aliases/{alias}: 201 when added, 200 when the key already had it. Either way the body is
 * the stored alias: an existing one answers its first creator and creation date, not this caller and now.
 */
export async function createAlias(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const a = await engine.addAlias(r.instance, r.param('id'), r.param('alias'), {
    keyRingId: r.keyRing,
    createdBy: r.principal.subject,
  })
  r.keyId = a.keyId
  return json(
    r,
    a.created ? 201 : 200,
    collection(ALIAS_TYPE, [
      {
        keyId: a.keyId,
        alias: a.alias,
        ...(a.createdBy === undefined ? {} : { createdBy: a.createdBy }),
        creationDate: rfc3339(a.createdAt),
      },
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
