/** Key Protect v2 key policies: rotation and dual-authorization delete (spec digest §3.4). */
import type { z } from '@hono/zod-openapi'
import type { KeyProtectOptions, RouteDef } from '../pipeline.js'
import { HttpProblem, policiesInput, type Req } from '../request.js'
import { json } from '../response.js'
import * as S from '../schemas.js'
import { collection, POLICY_TYPE, policyResource } from '../wire.js'

/** PUT /keys/{id}/policies: set rotation and/or dualAuthDelete (only the one named by `policy=`). */
export async function setKeyPolicies(r: Req, { engine, wire }: KeyProtectOptions): Promise<Response> {
  const body = r.body as z.infer<typeof S.PutPoliciesBody>
  const only = r.query['policy']
  let rotation: { enabled: boolean; interval_month?: number | undefined } | undefined
  let dual: { enabled: boolean } | undefined
  for (const p of body.resources) {
    if (p.rotation !== undefined) rotation = p.rotation
    if (p.dualAuthDelete !== undefined) dual = p.dualAuthDelete
  }
  if ((only === 'rotation' && dual !== undefined) || (only === 'dualAuthDelete' && rotation !== undefined)) {
    throw new HttpProblem(
      400,
      'INVALID_FIELD_ERR',
      `resources: only the ${only} policy may be sent with policy=${only}`,
      {
        type: 'field',
        name: only === 'rotation' ? 'dualAuthDelete' : 'rotation',
      },
    )
  }
  const set = await engine.setKeyPolicies(r.instance, r.param('id'), policiesInput(rotation, dual), {
    updatedBy: r.principal.subject,
    keyRingId: r.keyRing,
  })
  return json(
    r,
    200,
    collection(
      POLICY_TYPE,
      set.map((p) => policyResource(wire, r.instance, p)),
    ),
  )
}

/** GET /keys/{id}/policies. */
export async function getKeyPolicies(r: Req, { engine, wire }: KeyProtectOptions): Promise<Response> {
  const only = r.query['policy'] as 'rotation' | 'dualAuthDelete' | undefined
  const list = await engine.getKeyPolicies(r.instance, r.param('id'), only, { keyRingId: r.keyRing })
  return json(
    r,
    200,
    collection(
      POLICY_TYPE,
      list.map((p) => policyResource(wire, r.instance, p)),
    ),
  )
}

export const policyRoutes: readonly RouteDef[] = [
  {
    method: 'put',
    path: '/keys/{id}/policies',
    iam: 'kms.policies.write',
    what: 'Set key policies',
    summary: 'Set key policies (rotation, dualAuthDelete)',
    params: S.IdParam,
    query: S.PolicyQuery,
    body: { schema: S.PutPoliciesBody, contentType: POLICY_TYPE, required: true },
    responses: { 200: { description: 'Policies', schema: S.PolicyCollection } },
    operationId: 'putPolicy',
    handler: setKeyPolicies,
  },
  {
    method: 'get',
    path: '/keys/{id}/policies',
    iam: 'kms.policies.read',
    what: 'Get key policies',
    summary: 'Get key policies',
    params: S.IdParam,
    query: S.PolicyQuery,
    responses: { 200: { description: 'Policies', schema: S.PolicyCollection } },
    operationId: 'getPolicy',
    handler: getKeyPolicies,
  },
]
