/**
 * The per-request pipeline every Key Protect route runs, in this order: correlation id, authentication,
 * instance header, IAM action, rate limit, query and body validation, the route's handler, and the audit
 * event (always, success or failure). Errors of any step become the Key Protect error envelope here.
 */
import { createRoute, type OpenAPIHono, type z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import type { EnvelopeEngine } from '../../core/engine.js'
import type { AddressList } from '../../core/address-list.js'
import { EngineError, isEngineError } from '../../core/errors.js'
import type { AuditSink } from '../audit.js'
import { allowed, AuthError, type Authenticator, type Principal } from '../auth.js'
import { ClientAbortError, type BodyBudget } from '../body.js'
import { wireOf } from '../errors.js'
import { header } from '../headers.js'
import type { FixedWindowLimiter } from '../rate-limit.js'
import {
  auditedRequest,
  clientAddress,
  clientClosed,
  correlationIdOf,
  openApiResponses,
  type AuditRoute,
} from '../request-frame.js'
import { HttpProblem, normalizeKeys, readBody, Req, validate } from './request.js'
import * as S from './schemas.js'
import { errorBody, type WireOptions } from './wire.js'

export interface KeyProtectOptions {
  readonly engine: EnvelopeEngine
  readonly auth: Authenticator
  /** Largest accepted request body in bytes; larger bodies get 413 BODY_TOO_LARGE_ERR. */
  readonly bodyLimitBytes: number
  /** Body bytes in flight on this listener (shared by its routes); past it, 503 SERVICE_UNAVAILABLE_ERR. */
  readonly bodyBudget?: BodyBudget
  /** Requests being served, for graceful draining (shared with the app). */
  readonly inFlight?: { n: number }
  readonly limiter: FixedWindowLimiter
  readonly audit: AuditSink
  /** Region and account printed in CRNs. */
  readonly wire: WireOptions
  /**
   * Proxies whose `X-Forwarded-For` is believed (EKMS_TRUSTED_PROXIES): the client address of a request is
   * its socket's peer, or, when that peer is a trusted proxy, the right-most `X-Forwarded-For` entry that is
   * not one. Used by the allowedIP instance policy.
   */
  readonly trustedProxies?: AddressList
  /** Time source of the rate limiter (tests inject one). */
  readonly now?: () => number
  /** Where unexpected failures (5xx) are reported, with the correlation id; never request bodies. */
  readonly onServerError?: (err: unknown, correlationId: string) => void
}

/** A route handler: one engine call (or a few), the response shaped for the wire. */
export type Handler = (r: Req, o: KeyProtectOptions) => Promise<Response>

/** One Key Protect endpoint: what the pipeline needs to run it and OpenAPI needs to describe it. */
export interface RouteDef {
  readonly method: 'get' | 'post' | 'put' | 'patch' | 'delete' | 'head'
  /** OpenAPI path under /api/v2, e.g. `/keys/{id}/actions/wrap`. */
  readonly path: string
  readonly iam: string
  /** Audit event name when it differs from the IAM action. */
  readonly event?: string
  /** What the request does, for `errorMsg` ("Wrap with key"). */
  readonly what: string
  readonly summary: string
  /** OpenAPI operationId; default: the handler's name (`wrapKey`), which must then be unique. */
  readonly operationId?: string
  readonly params?: z.ZodObject
  /**
   * The path parameter the handler's INVALID_FIELD_ERR is about: the pipeline answers such an engine error
   * as INVALID_PATH_PARAM_ERR naming it (`aliases: <message>`), as Key Protect does for alias and key-ring
   * names. One name per route today.
   */
  readonly pathParams?: readonly [string]
  readonly query: z.ZodObject
  readonly body?: { readonly schema: z.ZodType; readonly contentType: string; readonly required: boolean }
  readonly responses: Record<number, { description: string; schema?: z.ZodType }>
  readonly handler: Handler
}

export type RequestHandler = (c: Context) => Promise<Response>

/** The route's OpenAPI operationId: explicit, or its handler's name. */
export function operationIdOf(def: RouteDef): string {
  return def.operationId ?? def.handler.name
}

/**
 * The error responses every route documents, in Key Protect's error envelope: a request can always be
 * malformed (400), unauthenticated (401), forbidden for its IAM action or instance (403), rate-limited (429),
 * or meet an unavailable HSM or catalog (503); `4XX`/`5XX` cover the rest (404, 409, 413, 422, 500…), whose
 * reason codes are in docs/errors.md.
 */
const ERROR_RESPONSES: Record<string, string> = {
  '400': 'Bad request: a missing or invalid header, parameter or field',
  '401': 'Unauthorized: no valid bearer token or API key',
  '403': 'Forbidden: the IAM action or the instance is not allowed for this caller',
  '429': 'Too many requests for this instance and endpoint',
  '4XX': 'Other client errors (not found, conflict, body too large, invalid key state)',
  '503': 'The HSM or the catalog is unavailable, or the listener is saturated; retry later',
  '5XX': 'Server error',
}

/** Describes `def` in the OpenAPI registry (unless `describe` is false) and returns its request handler. */
export function register(
  app: OpenAPIHono,
  def: RouteDef,
  o: KeyProtectOptions,
  { describe = true }: { readonly describe?: boolean } = {},
): RequestHandler {
  const now = o.now ?? Date.now
  const responses = openApiResponses(def.responses, ERROR_RESPONSES, S.ErrorCollection)
  const route = createRoute({
    method: def.method,
    path: `/api/v2${def.path}`,
    operationId: operationIdOf(def),
    summary: def.summary,
    tags: ['Key Protect'],
    request: {
      headers: S.Headers,
      query: def.query,
      ...(def.params === undefined ? {} : { params: def.params }),
      ...(def.body === undefined
        ? {}
        : {
            body: {
              required: def.body.required,
              content: {
                [def.body.contentType]: { schema: def.body.schema },
                'application/json': { schema: def.body.schema },
              },
            },
          }),
    },
    responses: responses as Parameters<typeof createRoute>[0]['responses'],
  })
  if (describe) app.openAPIRegistry.registerPath(route)
  const event = def.event ?? def.iam
  const paramNames = new Map(
    [...def.path.matchAll(/\{([^}]+)\}/g)].map((m) => [
      m[1] ?? '',
      (m[1] ?? '').replace(/[^A-Za-z0-9]/g, '_'),
    ]),
  )
  const limiterRoute = `${def.method.toUpperCase()} ${def.path}`
  const pathParam = def.pathParams?.[0]
  // Per-route constants, computed once rather than per request.
  const hasId = def.params !== undefined && 'id' in def.params.shape

  const auditRoute: AuditRoute = {
    event,
    method: def.method.toUpperCase(),
    route: `/api/v2${def.path}`,
    api: 'keyprotect',
  }
  const problemResponse = (p: HttpProblem, correlationId: string): Response =>
    new Response(JSON.stringify(errorBody(p.status, p.code, p.message, def.what, p.target)), {
      status: p.status,
      headers: { 'content-type': 'application/json', 'correlation-id': correlationId, ...p.headers },
    })
  // Audit is a security control: a request whose event cannot be kept (full buffer, fail-closed policy)
  // does not run. The refusal is reported by the audit sink itself (once per stall), not per request.
  const auditRefused = (correlationId: string): Response =>
    problemResponse(
      new HttpProblem(
        503,
        'SERVICE_UNAVAILABLE_ERR',
        'The audit log is not accepting events; retry later.',
        undefined,
        { 'Retry-After': '1' },
      ),
      correlationId,
    )

  return async (c) => {
    const correlationId = correlationIdOf(header(c, 'correlation-id'))
    // Handlers read it from Req; the Context variable stays for middleware a user adds to the public app.
    c.set('correlationId' as never, correlationId as never)
    return auditedRequest(
      o,
      auditRoute,
      correlationId,
      () => auditRefused(correlationId),
      async (facts) => {
        let req: Req | undefined
        try {
          let principal: Principal
          try {
            principal = await o.auth.authenticate(header(c, 'authorization'))
          } catch (err) {
            if (err instanceof AuthError) throw new HttpProblem(401, 'UNAUTHORIZED_ERR', err.message)
            throw err
          }
          facts.principal = principal
          const instance = header(c, 'bluemix-instance')
          if (instance === undefined || instance.length === 0) {
            throw new HttpProblem(400, 'MISSING_FIELD_ERR', "The header 'bluemix-instance' is required.", {
              type: 'header',
              name: 'bluemix-instance',
            })
          }
          facts.instance = instance
          if (!allowed(principal, instance, def.iam)) {
            throw new HttpProblem(401, 'UNAUTHORIZED_ERR', `not allowed: ${def.iam}`)
          }
          // The instance's allowedIP policy: synchronous while its policies are cached in the engine.
          const ipCheck = o.engine.checkClientAddress(instance, clientAddress(c, o.trustedProxies))
          if (ipCheck !== undefined) await ipCheck
          const rlKey = `${instance}\u0000${limiterRoute}`
          const t = now()
          if (!o.limiter.take(rlKey, t)) {
            throw new HttpProblem(429, 'TOO_MANY_REQUESTS_ERR', 'rate limit', undefined, {
              'Retry-After': String(o.limiter.retryAfterSec(rlKey, t)),
            })
          }
          // Most calls have no query string: skip parsing it.
          const query = (
            c.req.url.includes('?') ? validate(def.query, c.req.query(), 'param') : {}
          ) as Record<string, string>
          let body: unknown
          if (def.body !== undefined) {
            const parsed = await readBody(c, o.bodyLimitBytes, o.bodyBudget)
            if (parsed !== undefined) {
              body = validate(def.body.schema, normalizeKeys(parsed, def.body.schema), 'field')
            } else if (def.body.required) {
              throw new HttpProblem(400, 'MISSING_FIELD_ERR', 'The request body is required.', {
                type: 'field',
                name: 'body',
              })
            }
          }
          const preferRaw = header(c, 'prefer')?.trim().toLowerCase()
          const keyRing = header(c, 'x-kms-key-ring')
          req = new Req(
            c,
            correlationId,
            instance,
            principal,
            body,
            query,
            keyRing === undefined || keyRing.length === 0 ? undefined : keyRing,
            preferRaw === 'return=representation' || preferRaw === 'return=minimal' ? preferRaw : undefined,
            paramNames,
          )
          if (hasId) req.keyId = req.param('id')
          const res = await def.handler(req, o)
          facts.status = res.status
          return res
        } catch (err) {
          // The client left mid-body: nothing to answer, nothing failed here (no server-error log).
          if (err instanceof ClientAbortError) return clientClosed(facts)
          // Engine errors come from the handler, or from the allowedIP check (IP_ADDRESS_NOT_ALLOWED_ERR).
          const p =
            pathParam !== undefined && isEngineError(err, 'INVALID_FIELD_ERR')
              ? new HttpProblem(400, 'INVALID_PATH_PARAM_ERR', `${pathParam}: ${err.message}`, {
                  type: 'path_param',
                  name: pathParam,
                })
              : toProblem(err)
          if (p.status >= 500) o.onServerError?.(err, correlationId)
          facts.status = p.status
          facts.reason = p.code
          return problemResponse(p, correlationId)
        } finally {
          facts.keyId = req?.keyId
        }
      },
    )
  }
}

/** Any error → its wire form. Unknown errors are internal (their detail stays in the server log). */
export function toProblem(err: unknown): HttpProblem {
  if (err instanceof HttpProblem) return err
  if (err instanceof EngineError) {
    const w = wireOf(err.code)
    // 503 (the HSM or KMS is away, the engine is closing): a client may retry, and is told when.
    const headers: Record<string, string> = w.status === 503 ? { 'Retry-After': '1' } : {}
    return new HttpProblem(
      w.status,
      w.code,
      w.status >= 500 ? 'service error' : err.message,
      err.target,
      headers,
    )
  }
  return new HttpProblem(500, 'INTERNAL_SERVER_ERR', 'internal error')
}
