/**
 * The per-request pipeline every Qlik key-provider route runs, in this order: correlation id, the audit frame
 * (request-frame.ts), authentication (bearer), the tenant (the token's one instance), the IAM action, the
 * tenant's rate tier, the fingerprint length, the body (capped read, JSON, schema), the handler. Every
 * failure is answered with Qlik's `{errors:[{code,title,detail}]}` body and a status from errors.ts.
 */
import { createRoute, type OpenAPIHono, type z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { EngineError, type ErrorCode } from '../../core/errors.js'
import type { TenantKeyProviders } from '../../core/tenant-keys/types.js'
import type { AuditSink } from '../audit.js'
import type { Authenticator, Principal } from '../auth.js'
import {
  BODY_REFUSED_HEADERS,
  BodyBudgetError,
  BodyTooLargeError,
  ClientAbortError,
  type BodyBudget,
} from '../body.js'
import { QLIK_ERRORS, QLIK_HTTP_ERRORS, type QlikErrorShape } from '../errors.js'
import { header } from '../headers.js'
import type { FixedWindowLimiter } from '../rate-limit.js'
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
import * as S from './schemas.js'
import { qlikErrorBody } from './wire.js'

/** Where the routes live. */
export const QLIK_PREFIX = '/api/v1/encryption/keyproviders'

/** The IAM actions of the key-provider endpoints: every GET reads, every other method manages. */
export const QLIK_IAM = { read: 'kms.keyproviders.read', manage: 'kms.keyproviders.manage' } as const

export interface QlikOptions {
  readonly tenantKeys: TenantKeyProviders
  readonly auth: Authenticator
  /** Largest accepted request body in bytes; larger → 413. */
  readonly bodyLimitBytes: number
  readonly bodyBudget?: BodyBudget | undefined
  readonly inFlight?: { n: number } | undefined
  /** The seed's rate tiers, counted per tenant: tier 1 (every GET) and tier 2 (every mutation). */
  readonly limiters: { readonly read: FixedWindowLimiter; readonly write: FixedWindowLimiter }
  readonly audit: AuditSink
  readonly now?: (() => number) | undefined
  readonly onServerError?: ((err: unknown, correlationId: string) => void) | undefined
}

/** An error the Qlik layer raises itself, already in wire terms. */
export class QlikProblem extends Error {
  constructor(
    readonly shape: QlikErrorShape,
    detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail)
  }
}

/** One authenticated, authorised, validated request as a Qlik handler sees it. */
export interface QlikReq {
  readonly c: Context
  readonly correlationId: string
  /** The tenant: the token's one instance. */
  readonly tenant: string
  readonly principal: Principal
  readonly body: unknown
  /** The `{arnFingerPrint}` path parameter ('' on routes without one). */
  readonly fingerprint: string
}

export type QlikHandler = (r: QlikReq, o: QlikOptions) => Promise<Response>

/** One Qlik endpoint. */
export interface QlikRouteDef {
  readonly method: 'get' | 'post' | 'patch' | 'delete'
  /** Path under {@link QLIK_PREFIX} (OpenAPI form), e.g. `/{arnFingerPrint}/actions/test`. */
  readonly path: string
  /** The @qlik/api function name (the OpenAPI operationId). */
  readonly operationId: string
  readonly summary: string
  readonly body?: {
    readonly schema: z.ZodType
    /** Rewrites the parsed JSON before validation (e.g. accepting `keyProvider` for `keyprovider`). */
    readonly prepare?: (raw: unknown) => unknown
    /** The error of a body that fails the schema (default: 400 Bad Request). */
    readonly invalid?: QlikErrorShape
  }
  readonly responses: Record<number, { description: string; schema?: z.ZodType }>
  /** This route's statuses for engine codes where the seed gives the route its own (reset's 406). */
  readonly errors?: Partial<Record<ErrorCode, QlikErrorShape>>
  readonly handler: QlikHandler
}

/** The error responses every route documents (`{errors:[…]}`). */
const ERROR_RESPONSES: Record<string, string> = {
  '400': 'Bad request: malformed JSON or an invalid field',
  '401': 'Unauthorized: no valid bearer token or API key',
  '403': 'Forbidden: the token does not name exactly one tenant or lacks the IAM action',
  '429': "Too many requests in the tenant's rate tier",
  '4XX': 'Other client errors (see docs/http-qlik.md)',
  '5XX': 'Server error',
}

/** The response of a failure. */
export function problemResponse(
  shape: QlikErrorShape,
  detail: string,
  correlationId: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(qlikErrorBody(shape, detail)), {
    status: shape.status,
    headers: { 'content-type': 'application/json', 'correlation-id': correlationId, ...headers },
  })
}

/** A JSON response. */
export function json(r: QlikReq, status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'correlation-id': r.correlationId },
  })
}

/** A response without a body (204, 205: null-body statuses). */
export function noBody(r: QlikReq, status: 204 | 205, headers: Record<string, string> = {}): Response {
  return new Response(null, { status, headers: { 'correlation-id': r.correlationId, ...headers } })
}

/** Any error → its Qlik shape and detail. Unknown errors are internal (the detail stays in the server log). */
export function toQlikProblem(
  err: unknown,
  overrides: Partial<Record<ErrorCode, QlikErrorShape>> | undefined,
): QlikProblem {
  if (err instanceof QlikProblem) return err
  if (err instanceof TenantAuthRefusal) {
    const shape = {
      unauthorized: QLIK_HTTP_ERRORS.unauthorized,
      tenant: QLIK_HTTP_ERRORS.forbiddenTenant,
      action: QLIK_HTTP_ERRORS.forbiddenAction,
    }[err.kind]
    return new QlikProblem(shape, err.message)
  }
  if (err instanceof InvalidJsonError) return new QlikProblem(QLIK_HTTP_ERRORS.badJson, err.message)
  if (err instanceof BodyTooLargeError) {
    return new QlikProblem(QLIK_HTTP_ERRORS.bodyTooLarge, err.message, BODY_REFUSED_HEADERS)
  }
  if (err instanceof BodyBudgetError) {
    return new QlikProblem(QLIK_HTTP_ERRORS.unavailable, 'Too many request bodies in flight; retry later.', {
      'Retry-After': '1',
      ...BODY_REFUSED_HEADERS,
    })
  }
  if (err instanceof EngineError) {
    const shape = overrides?.[err.code] ?? QLIK_ERRORS[err.code]
    const headers: Record<string, string> = shape.status === 503 ? { 'Retry-After': '1' } : {}
    return new QlikProblem(shape, shape.status >= 500 ? 'service error' : err.message, headers)
  }
  return new QlikProblem(QLIK_HTTP_ERRORS.internal, 'internal error')
}

/** The first issue of a failed validation, as a detail line (`path: message`). */
function issueDetail(error: z.ZodError): string {
  const issue = error.issues[0]
  if (issue === undefined) return 'invalid request body'
  const path = issue.path.map(String).join('.')
  return `${path.length === 0 ? 'body' : path}: ${issue.message}`
}

/** Describes `def` in the OpenAPI registry and returns its request handler. */
export function registerQlikRoute(
  app: OpenAPIHono,
  def: QlikRouteDef,
  o: QlikOptions,
): (c: Context) => Promise<Response> {
  const now = o.now ?? Date.now
  const responses = openApiResponses(def.responses, ERROR_RESPONSES, S.StandardError)
  const hasFingerprint = def.path.includes('{arnFingerPrint}')
  app.openAPIRegistry.registerPath(
    createRoute({
      method: def.method,
      path: `${QLIK_PREFIX}${def.path}`,
      operationId: def.operationId,
      summary: def.summary,
      tags: ['Qlik key providers'],
      request: {
        headers: S.Headers,
        ...(hasFingerprint ? { params: S.FingerprintParams } : {}),
        ...(def.body === undefined
          ? {}
          : { body: { required: true, content: { 'application/json': { schema: def.body.schema } } } }),
      },
      responses: responses as Parameters<typeof createRoute>[0]['responses'],
    }),
  )
  const iam = def.method === 'get' ? QLIK_IAM.read : QLIK_IAM.manage
  const limiter = def.method === 'get' ? o.limiters.read : o.limiters.write
  const tier = def.method === 'get' ? 'tier1' : 'tier2'
  const auditRoute: AuditRoute = {
    event: iam,
    method: def.method.toUpperCase(),
    route: `${QLIK_PREFIX}${def.path}`,
    api: 'qlik',
    operation: def.operationId,
  }
  const refused = (correlationId: string): Response =>
    problemResponse(
      QLIK_HTTP_ERRORS.unavailable,
      'The audit log is not accepting events; retry later.',
      correlationId,
      {
        'Retry-After': '1',
      },
    )

  return (c) => {
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
            iam,
            'the key-provider API',
            facts,
          )
          const rlKey = `${tenant}\u0000${tier}`
          const t = now()
          if (!limiter.take(rlKey, t)) {
            throw new QlikProblem(QLIK_HTTP_ERRORS.tooManyRequests, `rate limit of ${tier} exceeded`, {
              'Retry-After': String(limiter.retryAfterSec(rlKey, t)),
            })
          }
          const fingerprint = hasFingerprint ? (c.req.param('arnFingerPrint') ?? '') : ''
          if (fingerprint.length > S.MAX_FINGERPRINT_LENGTH) {
            throw new QlikProblem(
              QLIK_HTTP_ERRORS.fingerprintTooLong,
              `arnFingerPrint: at most ${S.MAX_FINGERPRINT_LENGTH} characters`,
            )
          }
          facts.keyId = hasFingerprint ? fingerprint : undefined
          let body: unknown
          if (def.body !== undefined) {
            const raw = await readJsonBody(c, o.bodyLimitBytes, o.bodyBudget)
            if (raw === undefined) {
              throw new QlikProblem(
                def.body.invalid ?? QLIK_HTTP_ERRORS.badRequest,
                'The request body is required.',
              )
            }
            const r = def.body.schema.safeParse(def.body.prepare === undefined ? raw : def.body.prepare(raw))
            if (!r.success) {
              throw new QlikProblem(def.body.invalid ?? QLIK_HTTP_ERRORS.badRequest, issueDetail(r.error))
            }
            body = r.data
          }
          const res = await def.handler({ c, correlationId, tenant, principal, body, fingerprint }, o)
          facts.status = res.status
          return res
        } catch (err) {
          // The client left mid-body: nothing to answer, nothing failed here (no server-error log).
          if (err instanceof ClientAbortError) return clientClosed(facts)
          const p = toQlikProblem(err, def.errors)
          if (p.shape.status >= 500) o.onServerError?.(err, correlationId)
          facts.status = p.shape.status
          facts.reason = p.shape.code
          return problemResponse(p.shape, p.message, correlationId, p.headers)
        }
      },
    )
  }
}
