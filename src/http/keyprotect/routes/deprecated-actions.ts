/**
 * The deprecated generic action endpoint `POST /keys/{id}?action=<action>` (spec digest §3.2). Each action is
 * the same route as its `/keys/{id}/actions/<action>` (or `/keys/{id}/restore`) endpoint — same IAM action,
 * body schema, handler, status and audit event — mounted at `/keys/{id}` with `action` added to its query.
 * One OpenAPI operation (`actionOnKey`, the name in the newer official SDKs) documents the form.
 */
import { z } from '@hono/zod-openapi'
import type { RouteDef } from '../pipeline.js'
import { HttpProblem, type Req } from '../request.js'
import * as S from '../schemas.js'

/** `action` value → the path of the route it stands for. */
export const DEPRECATED_ACTIONS: ReadonlyMap<string, string> = new Map([
  ['wrap', '/keys/{id}/actions/wrap'],
  ['unwrap', '/keys/{id}/actions/unwrap'],
  ['rewrap', '/keys/{id}/actions/rewrap'],
  ['rotate', '/keys/{id}/actions/rotate'],
  ['enable', '/keys/{id}/actions/enable'],
  ['disable', '/keys/{id}/actions/disable'],
  ['setKeyForDeletion', '/keys/{id}/actions/setKeyForDeletion'],
  ['unsetKeyForDeletion', '/keys/{id}/actions/unsetKeyForDeletion'],
  ['restore', '/keys/{id}/restore'],
])

const ActionName = z.enum([...DEPRECATED_ACTIONS.keys()] as [string, ...string[]])

/** The route of `action` at `/keys/{id}`: the original, with `action` required in its query. */
export function deprecatedRoute(action: string, original: RouteDef): RouteDef {
  return {
    ...original,
    path: '/keys/{id}',
    operationId: `${original.operationId ?? original.handler.name}ByAction`,
    query: original.query.extend({ action: z.literal(action) }).strict(),
  }
}

/**
 * A request whose `action` is missing or unknown: the only requests this route's handler sees (known actions
 * are dispatched to their own routes). Authenticated and audited like any request, then 400.
 */
async function unknownAction(r: Req): Promise<Response> {
  const action = r.query['action']
  throw new HttpProblem(
    400,
    'INVALID_PARAM_ERR',
    action === undefined
      ? "The query parameter 'action' is required."
      : `The query parameter 'action' must be one of: ${[...DEPRECATED_ACTIONS.keys()].join(', ')}.`,
    { type: 'param', name: 'action' },
  )
}

/** The documented operation: `POST /keys/{id}?action=…`. */
export const deprecatedActionRoute: RouteDef = {
  method: 'post',
  path: '/keys/{id}',
  operationId: 'actionOnKey',
  // The weakest read permission: a known action runs under its own IAM action (its own route).
  iam: 'kms.secrets.readmetadata',
  what: 'Key action',
  summary:
    'Deprecated: perform an action on a key (same bodies, statuses and permissions as /keys/{id}/actions/<action> and /keys/{id}/restore)',
  params: S.IdParam,
  query: z.object({ action: z.string().optional().openapi({ enum: ActionName.options }) }).strict(),
  body: { schema: z.unknown(), contentType: 'application/vnd.ibm.kms.key_action+json', required: false },
  responses: {
    200: {
      description: 'wrap, unwrap, rewrap: as the action endpoint; rotate with Prefer: return=representation',
    },
    201: { description: 'restore: the restored key' },
    204: { description: 'rotate, enable, disable, setKeyForDeletion, unsetKeyForDeletion' },
  },
  handler: unknownAction,
}
