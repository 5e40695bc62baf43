/**
 * The per-request pipeline every CCKM route runs, in this order: correlation id, the audit frame
 * (request-frame.ts), authentication (bearer), the tenant (the token's one instance), the IAM action, the
 * `{cloud}` path parameter, the body (capped read, JSON, literal-secret check, schema), the handler. Every
 * failure is answered with CipherTrust's `{code, codeDesc, message}` body and a status from errors.ts.
 */
import { createRoute, type OpenAPIHono, type z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { EngineError } from '../../core/errors.js'
import { SYNC_CLOUDS, type SyncCloud } from '../../core/ports-sync.js'
import type { KeySync } from '../../core/sync/types.js'
import type { AuditSink } from '../audit.js'
import type { Authenticator, Principal } from '../auth.js'
import {
  BODY_REFUSED_HEADERS,
  BodyBudgetError,
  BodyTooLargeError,
  ClientAbortError,
  type BodyBudget,
} from '../body.js'
import { CCKM_ERRORS, CCKM_HTTP_ERRORS, type CckmErrorShape } from '../errors.js'
import { header } from '../headers.js'
import {
  auditedRequest,
  authenticateTenant,
  TenantAuthRefusal,
  clientClosed,
  correlationIdOf,
  InvalidJsonError,
  openApiResponses,
  readJsonBody,
  type AuditRoute,
} from '../request-frame.js'
import { refuseLiteralSecrets } from './connection-input.js'
import * as S from './schemas.js'
import { cckmErrorBody, FieldProblem } from './wire.js'

/** Where the synchronization jobs and linked keys live. */
export const CCKM_PREFIX = '/api/v1/cckm'
/** Where the connections live (CipherTrust's connection manager). */
export const CONNECTIONS_PREFIX = '/api/v1/connectionmgmt'

/**
 * The IAM actions of the CCKM endpoints: every GET reads; wrap and unwrap of a linked key have their own
 * actions (data plane); every other method (jobs, connections) manages.
 */
export const CCKM_IAM = {
  read: 'kms.sync.read',
  manage: 'kms.sync.manage',
  wrap: 'kms.sync.wrap',
  unwrap: 'kms.sync.unwrap',
} as const

export interface CckmOptions {
  readonly sync: KeySync
  readonly auth: Authenticator
  /** Largest accepted request body in bytes; larger → 413. */
  readonly bodyLimitBytes: number
  readonly bodyBudget?: BodyBudget | undefined
  readonly inFlight?: { n: number } | undefined
  readonly audit: AuditSink
  readonly onServerError?: ((err: unknown, correlationId: string) => void) | undefined
}

/** An error the CCKM layer raises itself, already in wire terms. */
export class CckmProblem extends Error {
  constructor(
    readonly shape: CckmErrorShape,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

/** One authenticated, authorised, validated request as a CCKM handler sees it. */
export interface CckmReq {
  readonly c: Context
  readonly correlationId: string
  /** The tenant: the token's one instance. */
  readonly tenant: string
  readonly principal: Principal
  readonly body: unknown
  readonly cloud: SyncCloud
  /** The `{id}` path parameter ('' on routes without one). */
  readonly id: string
}

export type CckmHandler = (r: CckmReq, sync: KeySync) => Promise<Response>

/** One CCKM endpoint. */
export interface CckmRouteDef {
  readonly method: 'get' | 'post' | 'patch' | 'delete'
  /** Full path (OpenAPI form), e.g. `/api/v1/cckm/{cloud}/synchronization-jobs/{id}`. */
  readonly path: string
  readonly operationId: string
  readonly summary: string
  readonly tag: string
  readonly iam: (typeof CCKM_IAM)[keyof typeof CCKM_IAM]
  /** Query parameters, for the OpenAPI description only (handlers parse them, see {@link queryInt}). */
  readonly query?: z.ZodObject
  readonly body?: { readonly schema: z.ZodType }
  readonly responses: Record<number, { description: string; schema?: z.ZodType }>
  readonly handler: CckmHandler
}

const ERROR_RESPONSES: Record<string, string> = {
  '400': 'Bad request: malformed JSON, an unknown or invalid field, a literal secret',
  '401': 'Unauthorized: no valid bearer token or API key',
  '403': 'Forbidden: the token does not name exactly one tenant or lacks the IAM action',
  '404': 'Unknown cloud, job, connection or key',
  '413': 'Request body too large',
  '4XX': 'Other client errors (see docs/http-cckm.md)',
  '5XX': 'Server error',
}

/** The response of a failure. */
export function problemResponse(
  shape: CckmErrorShape,
  message: string,
  correlationId: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(cckmErrorBody(shape, message)), {
    status: shape.status,
    headers: { 'content-type': 'application/json', 'correlation-id': correlationId, ...headers },
  })
}

/** A JSON response. */
export function json(r: CckmReq, status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'correlation-id': r.correlationId },
  })
}

/** 204 without a body. */
export function noContent(r: CckmReq): Response {
  return new Response(null, { status: 204, headers: { 'correlation-id': r.correlationId } })
}

/** A 400 of the adapter's own validation. */
export function badParam(message: string): CckmProblem {
  return new CckmProblem(CCKM_HTTP_ERRORS.invalidParam, message)
}

/**
 * A non-negative integer query parameter, `fallback` when absent, at most `max`.
 * @throws CckmProblem 400 when it is not one
 */
export function queryInt(r: CckmReq, name: string, fallback: number, max: number): number {
  const v = r.c.req.query(name)
  if (v === undefined || v === '') return fallback
  if (!/^\d{1,9}$/.test(v) || Number(v) > max) {
    throw badParam(`${name}: a non-negative integer of at most ${max}`)
  }
  return Number(v)
}

/** Any error → its CCKM shape and message. Unknown errors are internal (the detail stays in the server log). */
export function toCckmProblem(err: unknown): CckmProblem {
  if (err instanceof CckmProblem) return err
  if (err instanceof TenantAuthRefusal) {
    return new CckmProblem(
      err.kind === 'unauthorized' ? CCKM_HTTP_ERRORS.unauthorized : CCKM_HTTP_ERRORS.forbidden,
      err.message,
    )
  }
  if (err instanceof FieldProblem) return badParam(err.message)
  if (err instanceof InvalidJsonError) return new CckmProblem(CCKM_HTTP_ERRORS.badRequest, err.message)
  if (err instanceof BodyTooLargeError) {
    return new CckmProblem(CCKM_HTTP_ERRORS.bodyTooLarge, err.message, BODY_REFUSED_HEADERS)
  }
  if (err instanceof BodyBudgetError) {
    return new CckmProblem(CCKM_HTTP_ERRORS.unavailable, 'Too many request bodies in flight; retry later.', {
      'Retry-After': '1',
      ...BODY_REFUSED_HEADERS,
    })
  }
  if (err instanceof EngineError) {
    const shape = CCKM_ERRORS[err.code]
    const headers: Record<string, string> = shape.status === 503 ? { 'Retry-After': '1' } : {}
    return new CckmProblem(shape, shape.status >= 500 ? `${err.code}: service error` : err.message, headers)
  }
  return new CckmProblem(CCKM_HTTP_ERRORS.internal, 'internal error')
}

/** The first issue of a failed validation, as a message (`path: message`). */
function issueMessage(error: z.ZodError): string {
  const issue = error.issues[0]
  if (issue === undefined) return 'invalid request body'
  const path = issue.path.map(String).join('.')
  return `${path.length === 0 ? 'body' : path}: ${issue.message}`
}

const isCloud = (s: string): s is SyncCloud => (SYNC_CLOUDS as readonly string[]).includes(s)
const toHono = (path: string): string => path.replace(/\{([^}]+)\}/g, ':$1')

/** Describes `def` in the OpenAPI registry and mounts it on `app`. */
export function mountCckmRoute(app: OpenAPIHono, def: CckmRouteDef, o: CckmOptions): void {
  const responses = openApiResponses(def.responses, ERROR_RESPONSES, S.CckmError)
  const hasId = def.path.includes('{id}')
  app.openAPIRegistry.registerPath(
    createRoute({
      method: def.method,
      path: def.path,
      operationId: def.operationId,
      summary: def.summary,
      tags: [def.tag],
      request: {
        headers: S.Headers,
        params: hasId ? S.CloudIdParams : S.CloudParam,
        ...(def.query === undefined ? {} : { query: def.query }),
        ...(def.body === undefined
          ? {}
          : { body: { required: true, content: { 'application/json': { schema: def.body.schema } } } }),
      },
      responses: responses as Parameters<typeof createRoute>[0]['responses'],
    }),
  )
  const auditRoute: AuditRoute = {
    event: def.iam,
    method: def.method.toUpperCase(),
    route: def.path,
    api: 'cckm',
    operation: def.operationId,
  }
  const refused = (correlationId: string): Response =>
    problemResponse(
      CCKM_HTTP_ERRORS.unavailable,
      'The audit log is not accepting events; retry later.',
      correlationId,
      {
        'Retry-After': '1',
      },
    )

  app.on(def.method.toUpperCase(), toHono(def.path), (c) => {
    const correlationId = correlationIdOf(header(c, 'correlation-id'))
    return auditedRequest(
      o,
      auditRoute,
      correlationId,
      () => refused(correlationId),
      async (facts) => {
        try {
          const { tenant, principal } = await authenticateTenant(
            o.auth,
            header(c, 'authorization'),
            def.iam,
            'the CCKM API',
            facts,
          )
          const cloud = c.req.param('cloud') ?? ''
          if (!isCloud(cloud)) {
            throw new CckmProblem(
              CCKM_HTTP_ERRORS.notFound,
              `unknown cloud "${cloud.slice(0, 64)}": one of ${SYNC_CLOUDS.join(', ')}`,
            )
          }
          const id = hasId ? (c.req.param('id') ?? '') : ''
          facts.keyId = hasId ? id.slice(0, 256) : undefined
          let body: unknown
          if (def.body !== undefined) {
            const raw = await readJsonBody(c, o.bodyLimitBytes, o.bodyBudget)
            if (raw === undefined)
              throw new CckmProblem(CCKM_HTTP_ERRORS.badRequest, 'The request body is required.')
            refuseLiteralSecrets(raw)
            const parsed = def.body.schema.safeParse(raw)
            if (!parsed.success) throw badParam(issueMessage(parsed.error))
            body = parsed.data
          }
          const res = await def.handler({ c, correlationId, tenant, principal, body, cloud, id }, o.sync)
          facts.status = res.status
          return res
        } catch (err) {
          if (err instanceof ClientAbortError) return clientClosed(facts)
          const p = toCckmProblem(err)
          if (p.shape.status >= 500) o.onServerError?.(err, correlationId)
          facts.status = p.shape.status
          facts.reason = p.shape.codeDesc.slice(0, p.shape.codeDesc.indexOf(':'))
          return problemResponse(p.shape, p.message, correlationId, p.headers)
        }
      },
    )
  })
}
