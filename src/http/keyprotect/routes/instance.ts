/**
 * Key Protect v2 instance endpoints (spec digest §3.5, §4.7): `PUT /instance/policies` (204),
 * `GET /instance/policies` (200, the policy collection) and `GET /instance/allowed_ip_port` (200). The rules
 * (validation, defaults, enforcement) are in core/keys/instance-policies.ts; allowedIP is enforced for every
 * request by the pipeline.
 */
import type { IncomingMessage } from 'node:http'
import type { z } from '@hono/zod-openapi'
import type { InstancePolicyInfo } from '../../../core/engine.js'
import type { KeyProtectOptions, RouteDef } from '../pipeline.js'
import { HttpProblem, type Req } from '../request.js'
import { empty, json } from '../response.js'
import * as S from '../schemas.js'
import { collection, POLICY_TYPE, rfc3339 } from '../wire.js'

const ALLOWED_IP_METADATA_TYPE = 'application/vnd.ibm.kms.allowed_ip_metadata+json'

type PolicyType = NonNullable<z.infer<typeof S.InstancePolicyQuery>['policy']>

function instancePolicyResource(p: InstancePolicyInfo): Record<string, unknown> {
  return {
    policy_type: p.type,
    policy_data: {
      enabled: p.enabled,
      ...(p.attributes === undefined ? {} : { attributes: p.attributes }),
    },
    createdBy: p.createdBy ?? 'unknown',
    creationDate: rfc3339(p.createdAt),
    updatedBy: p.updatedBy ?? 'unknown',
    lastUpdated: rfc3339(p.updatedAt),
  }
}

/** PUT /instance/policies: sets one or more instance policies (only the one named by `policy=`). */
export async function putInstancePolicy(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const body = r.body as z.infer<typeof S.PutInstancePoliciesBody>
  const only = r.query['policy'] as PolicyType | undefined
  const other = body.resources.find((p) => only !== undefined && p.policy_type !== only)
  if (other !== undefined) {
    throw new HttpProblem(
      400,
      'INVALID_FIELD_ERR',
      `resources: only the ${String(only)} policy may be sent with policy=${String(only)}`,
      { type: 'field', name: 'policy_type' },
    )
  }
  await engine.setInstancePolicies(
    r.instance,
    body.resources.map((p) => ({
      type: p.policy_type,
      enabled: p.policy_data.enabled,
      attributes: p.policy_data.attributes,
    })),
    { updatedBy: r.principal.subject },
  )
  return empty(r, 204)
}

/** GET /instance/policies: the instance's policies (or the one named by `policy=`); none set: empty. */
export async function getInstancePolicy(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const list = await engine.getInstancePolicies(r.instance, r.query['policy'] as PolicyType | undefined)
  return json(r, 200, collection(POLICY_TYPE, list.map(instancePolicyResource)))
}

/**
 * GET /instance/allowed_ip_port: with an enabled allowedIP policy, the port of the listener the request
 * arrived on (this server has no separate private endpoint: its one listener is what the policy guards);
 * without one, an empty collection.
 */
export async function getAllowedIpPort(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const [policy] = await engine.getInstancePolicies(r.instance, 'allowedIP')
  const incoming = (r.c.env as { incoming?: IncomingMessage } | undefined)?.incoming
  const port = incoming?.socket.localPort
  const resources = policy?.enabled === true && port !== undefined ? [{ private_endpoint_port: port }] : []
  return json(r, 200, collection(ALLOWED_IP_METADATA_TYPE, resources))
}

export const instanceRoutes: readonly RouteDef[] = [
  {
    method: 'put',
    path: '/instance/policies',
    iam: 'kms.instancepolicies.write',
    event: 'kms.instance-policies.write',
    what: 'Set instance policies',
    summary:
      'Set instance policies (dualAuthDelete, rotation, allowedNetwork, allowedIP, keyCreateImportAccess, metrics)',
    query: S.InstancePolicyQuery,
    body: { schema: S.PutInstancePoliciesBody, contentType: POLICY_TYPE, required: true },
    responses: { 204: { description: 'The policies are set' } },
    handler: putInstancePolicy,
  },
  {
    method: 'get',
    path: '/instance/policies',
    iam: 'kms.instancepolicies.read',
    event: 'kms.instance-policies.read',
    what: 'Get instance policies',
    summary: 'Get instance policies (a type never set is absent)',
    query: S.InstancePolicyQuery,
    responses: { 200: { description: 'Instance policies', schema: S.InstancePolicyCollection } },
    handler: getInstancePolicy,
  },
  {
    method: 'get',
    path: '/instance/allowed_ip_port',
    iam: 'kms.instance.readallowedipport',
    event: 'kms.instance-allowed-ip-port.read',
    what: 'Retrieve allowed IP port',
    summary: 'The port the allowedIP policy guards (empty without an enabled allowedIP policy)',
    query: S.EmptyQuery,
    responses: { 200: { description: 'The port', schema: S.AllowedIpPortCollection } },
    handler: getAllowedIpPort,
  },
]
