/**
 * Key Protect v2 registrations (spec digest §3.7): create, merge (PATCH), replace (PUT), delete, the
 * deprecated `?action=deactivate`, and the lists per key and across keys. The resource CRN travels
 * percent-encoded in the path (`%2F` inside it is not a separator: the router matches the raw segment and
 * the parameter is decoded once). The engine's INVALID_FIELD_ERR about a CRN or the CRN query (target type
 * `param`) is Key Protect's INVALID_PARAM_ERR.
 */
import type { z } from '@hono/zod-openapi'
import type { RegistrationInput } from '../../../core/engine.js'
import { isEngineError } from '../../../core/errors.js'
import type { KeyProtectOptions, RouteDef } from '../pipeline.js'
import { HttpProblem, int, type Req } from '../request.js'
import { empty, json } from '../response.js'
import * as S from '../schemas.js'
import { collection, REGISTRATION_TYPE, registrationResource, RESOURCE_CRN_TYPE } from '../wire.js'

const REGISTRATION_INPUT_TYPE = 'application/vnd.ibm.kms.registration_input+json'
const CRN_TYPE = 'application/vnd.ibm.kms.crn+json'

/** Runs `fn`, answering an engine refusal of a query or path parameter as INVALID_PARAM_ERR. */
async function params<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (isEngineError(err, 'INVALID_FIELD_ERR') && err.target?.type === 'param') {
      throw new HttpProblem(400, 'INVALID_PARAM_ERR', err.message, err.target)
    }
    throw err
  }
}

function input(r: Req): RegistrationInput {
  const res = (r.body as z.infer<typeof S.RegistrationBody> | undefined)?.resources[0]
  if (res === undefined) return {}
  const p = res.preventKeyDeletion
  return {
    ...(p === undefined ? {} : { preventKeyDeletion: p === true || p === 'true' }),
    ...(res.description === undefined ? {} : { description: res.description }),
    ...(res.registrationMetadata === undefined ? {} : { registrationMetadata: res.registrationMetadata }),
    ...(res.keyVersionId === undefined ? {} : { keyVersionId: res.keyVersionId }),
  }
}

/** The CRN query as sent: the doc has callers URL-encode it, so a still-encoded value is decoded once more. */
function crnQuery(v: string | undefined): string | undefined {
  if (v === undefined || !v.includes('%')) return v
  try {
    return decodeURIComponent(v)
  } catch {
    return v
  }
}

function listOptions(r: Req) {
  const q = r.query
  const crn = crnQuery(q['urlEncodedResourceCRNQuery'])
  return {
    limit: int(q['limit'], 'limit', 1, 5000, 200),
    offset: int(q['offset'], 'offset', 0, Number.MAX_SAFE_INTEGER, 0),
    ...(crn === undefined ? {} : { resourceCrnQuery: crn }),
    ...(q['preventKeyDeletion'] === undefined
      ? {}
      : { preventKeyDeletion: q['preventKeyDeletion'] === 'true' }),
    ...(r.keyRing === undefined ? {} : { keyRingId: r.keyRing }),
  }
}

/** POST /keys/{id}/registrations/{urlEncodedResourceCRN}: 201 new, 200 when an identical one exists. */
export async function createRegistration(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const res = await params(() =>
    engine.createRegistration(r.instance, r.param('id'), r.param('urlEncodedResourceCRN'), input(r), {
      by: r.principal.subject,
      keyRingId: r.keyRing,
    }),
  )
  r.keyId = res.registration.keyId
  return json(
    r,
    res.created ? 201 : 200,
    collection(REGISTRATION_TYPE, [registrationResource(res.registration)]),
  )
}

/** PATCH /keys/{id}/registrations/{urlEncodedResourceCRN}: merge. */
export async function updateRegistration(r: Req, o: KeyProtectOptions): Promise<Response> {
  return changeRegistration(r, o.engine.updateRegistration.bind(o.engine))
}

/** PUT /keys/{id}/registrations/{urlEncodedResourceCRN}: replace. */
export async function replaceRegistration(r: Req, o: KeyProtectOptions): Promise<Response> {
  return changeRegistration(r, o.engine.replaceRegistration.bind(o.engine))
}

/** PATCH and PUT: the same call shape and the same 200 answer; only the engine's rule differs. */
async function changeRegistration(
  r: Req,
  change: KeyProtectOptions['engine']['updateRegistration'],
): Promise<Response> {
  const g = await params(() =>
    change(r.instance, r.param('id'), r.param('urlEncodedResourceCRN'), input(r), {
      by: r.principal.subject,
      keyRingId: r.keyRing,
    }),
  )
  r.keyId = g.keyId
  return json(r, 200, collection(REGISTRATION_TYPE, [registrationResource(g)]))
}

/** DELETE /keys/{id}/registrations/{urlEncodedResourceCRN}: 204, or 200 with it (return=representation). */
export async function deleteRegistration(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const g = await params(() =>
    engine.deleteRegistration(r.instance, r.param('id'), r.param('urlEncodedResourceCRN'), {
      keyRingId: r.keyRing,
    }),
  )
  r.keyId = g.keyId
  return r.prefer === 'return=representation'
    ? json(r, 200, collection(REGISTRATION_TYPE, [registrationResource(g)]))
    : empty(r, 204)
}

/** POST /keys/{id}/registrations?action=deactivate (deprecated): 204, or 200 with the CRN. */
export async function deactivateRegistration(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const crn = (r.body as z.infer<typeof S.DeactivateBody>).resources[0]?.resourceCrn ?? ''
  const g = await params(async () => {
    try {
      return await engine.deactivateRegistration(r.instance, r.param('id'), crn, {
        by: r.principal.subject,
        keyRingId: r.keyRing,
      })
    } catch (err) {
      // Here the CRN is a body field (spec digest §3.7: 400 INVALID_FIELD_ERR `resourceCrn`).
      if (isEngineError(err, 'INVALID_FIELD_ERR') && err.target?.type === 'param') {
        throw new HttpProblem(400, 'INVALID_FIELD_ERR', err.message, { type: 'field', name: 'resourceCrn' })
      }
      throw err
    }
  })
  r.keyId = g.keyId
  return r.prefer === 'return=representation'
    ? json(r, 200, collection(RESOURCE_CRN_TYPE, [{ resourceCrn: g.resourceCrn }]))
    : empty(r, 204)
}

/** GET /keys/{id}/registrations. */
export async function getRegistrations(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const res = await params(() => engine.listRegistrations(r.instance, r.param('id'), listOptions(r)))
  return json(
    r,
    200,
    collection(
      REGISTRATION_TYPE,
      res.registrations.map(registrationResource),
      r.query['totalCount'] === 'true' ? { totalCount: res.total } : {},
    ),
  )
}

/** GET /keys/registrations: across keys (registered before GET /keys/{id}). */
export async function getRegistrationsAllKeys(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const res = await params(() => engine.listAllRegistrations(r.instance, listOptions(r)))
  return json(
    r,
    200,
    collection(
      REGISTRATION_TYPE,
      res.registrations.map(registrationResource),
      r.query['totalCount'] === 'true' ? { totalCount: res.total } : {},
    ),
  )
}

const PATH = '/keys/{id}/registrations/{urlEncodedResourceCRN}'
const ONE = { description: 'The registration', schema: S.RegistrationCollection }

/** GET /keys/registrations: mounted before the key routes, so that it does not fall into GET /keys/{id}. */
export const registrationsAllKeysRoute: RouteDef = {
  method: 'get',
  path: '/keys/registrations',
  iam: 'kms.registrations.list',
  what: 'List registrations',
  summary: 'List registrations across keys, by resource CRN',
  query: S.RegistrationsQuery,
  responses: { 200: { description: 'Registrations', schema: S.RegistrationCollection } },
  handler: getRegistrationsAllKeys,
}

export const registrationRoutes: readonly RouteDef[] = [
  {
    method: 'post',
    path: PATH,
    iam: 'kms.registrations.create',
    what: 'Create registration',
    summary: 'Register a cloud resource to a root key',
    params: S.RegistrationParams,
    query: S.EmptyQuery,
    body: { schema: S.RegistrationBody, contentType: REGISTRATION_INPUT_TYPE, required: false },
    responses: {
      200: { description: 'An identical registration exists', schema: S.RegistrationCollection },
      201: ONE,
    },
    handler: createRegistration,
  },
  {
    method: 'patch',
    path: PATH,
    iam: 'kms.registrations.merge',
    what: 'Update registration',
    summary: 'Merge-update a registration',
    params: S.RegistrationParams,
    query: S.EmptyQuery,
    body: { schema: S.RegistrationBody, contentType: REGISTRATION_INPUT_TYPE, required: true },
    responses: { 200: ONE },
    handler: updateRegistration,
  },
  {
    method: 'put',
    path: PATH,
    iam: 'kms.registrations.write',
    what: 'Replace registration',
    summary: 'Replace a registration',
    params: S.RegistrationParams,
    query: S.EmptyQuery,
    body: { schema: S.RegistrationBody, contentType: REGISTRATION_INPUT_TYPE, required: true },
    responses: { 200: ONE },
    handler: replaceRegistration,
  },
  {
    method: 'delete',
    path: PATH,
    iam: 'kms.registrations.delete',
    what: 'Delete registration',
    summary: 'Delete a registration',
    params: S.RegistrationParams,
    query: S.EmptyQuery,
    responses: { 200: ONE, 204: { description: 'Deleted' } },
    handler: deleteRegistration,
  },
  {
    method: 'post',
    path: '/keys/{id}/registrations',
    // The doc lists no IAM action for the deprecated deactivate: it changes a registration, as PUT does.
    iam: 'kms.registrations.write',
    what: 'Deactivate registration',
    summary: 'Deactivate a suspended registration (deprecated)',
    params: S.IdParam,
    query: S.DeactivateQuery,
    body: { schema: S.DeactivateBody, contentType: CRN_TYPE, required: true },
    responses: {
      200: { description: 'The deactivated resource', schema: S.ResourceCrnCollection },
      204: { description: 'Deactivated' },
    },
    handler: deactivateRegistration,
  },
  {
    method: 'get',
    path: '/keys/{id}/registrations',
    iam: 'kms.registrations.list',
    what: 'List registrations',
    summary: "List a key's registrations",
    params: S.IdParam,
    query: S.RegistrationsQuery,
    responses: { 200: { description: 'Registrations', schema: S.RegistrationCollection } },
    handler: getRegistrations,
  },
]
