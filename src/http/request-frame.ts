/**
 * The steps every API family's request pipeline shares (Key Protect v2, Qlik key providers): the correlation
 * id, the client address behind trusted proxies, the JSON body read under the cap, and the audit frame (in
 * flight count, the fail-closed audit check, exactly one audit event per request). Each family keeps its own
 * error bodies and codes: the steps here throw typed errors the family maps.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Context } from 'hono'
import type { AddressList } from '../core/address-list.js'
import type { AuditEvent, AuditSink } from './audit.js'
import { allowed, AuthError, type Authenticator, type Principal } from './auth.js'
import { CLIENT_CLOSED_REQUEST, readCappedBody, type BodyBudget } from './body.js'
import { header } from './headers.js'

/** A correlation id for the request: the caller's, or a fresh v4 UUID. */
export function correlationIdOf(header: string | undefined): string {
  return header !== undefined && /^[A-Za-z0-9-]{1,128}$/.test(header) ? header : randomUUID()
}

/**
 * The client address of a request: the socket's peer, or, when the peer is a trusted proxy, the right-most
 * `X-Forwarded-For` entry that is not a trusted proxy (the left-most when all are). Undefined when the
 * request came without a socket (e.g. `app.request()` in-process).
 */
export function clientAddress(c: Context, trusted: AddressList | undefined): string | undefined {
  const peer = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket.remoteAddress
  if (trusted === undefined || peer === undefined || !trusted.matches(peer)) return peer
  const xff = header(c, 'x-forwarded-for')
  if (xff === undefined) return peer
  const hops = xff
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h.length > 0)
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i] ?? ''
    if (!trusted.matches(hop)) return hop
  }
  return hops[0] ?? peer
}

/** The request body is not valid JSON. */
export class InvalidJsonError extends Error {
  constructor() {
    super('The request body is not valid JSON.')
  }
}

/**
 * The request body parsed as JSON: `undefined` when it is empty (or only white space).
 * @throws BodyTooLargeError, BodyBudgetError, ClientAbortError (body.ts); InvalidJsonError
 */
export async function readJsonBody(c: Context, limit: number, budget?: BodyBudget): Promise<unknown> {
  const text = (await readCappedBody(c, limit, budget)).toString('utf8')
  if (text.trim().length === 0) return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new InvalidJsonError()
  }
}

/** What a request's audit event says about the caller and the outcome, filled in as the request runs. */
export class AuditFacts {
  principal: Principal | undefined = undefined
  instance: string | undefined = undefined
  keyId: string | undefined = undefined
  status = 500
  reason: string | undefined = undefined
}

/**
 * A bearer request of a single-tenant API (Qlik, CCKM) refused before its route runs: no valid token
 * (`unauthorized`), a token not bound to exactly one tenant (`tenant`), or an action the token may not take
 * (`action`). Each API family maps it to its own error body.
 */
export class TenantAuthRefusal extends Error {
  constructor(
    readonly kind: 'unauthorized' | 'tenant' | 'action',
    message: string,
  ) {
    super(message)
  }
}

/**
 * The bearer step of the single-tenant APIs: authenticates the token, takes the tenant from it (its one
 * instance; `api` names the API in the refusal), checks the IAM action `iam`, and records the principal and
 * the tenant in `facts` as it goes.
 * @throws TenantAuthRefusal
 */
export async function authenticateTenant(
  auth: Authenticator,
  authorization: string | undefined,
  iam: string,
  api: string,
  facts: AuditFacts,
): Promise<{ readonly tenant: string; readonly principal: Principal }> {
  let principal: Principal
  try {
    principal = await auth.authenticate(authorization)
  } catch (err) {
    if (err instanceof AuthError) throw new TenantAuthRefusal('unauthorized', err.message)
    throw err
  }
  facts.principal = principal
  const only =
    principal.instances === '*' || principal.instances.size !== 1 ? undefined : [...principal.instances][0]
  if (only === undefined) {
    throw new TenantAuthRefusal(
      'tenant',
      principal.instances === '*'
        ? `The token is valid for every instance ("*"); ${api} needs a token bound to exactly one tenant.`
        : `The token names ${principal.instances.size} instances; ${api} needs a token bound to exactly one tenant.`,
    )
  }
  facts.instance = only
  if (!allowed(principal, only, iam)) throw new TenantAuthRefusal('action', `not allowed: ${iam}`)
  return { tenant: only, principal }
}

/** The listener state the frame uses. */
export interface FrameOptions {
  readonly audit: AuditSink
  /** Requests being served, for graceful draining (shared with the app). */
  readonly inFlight?: { n: number } | undefined
}

/** The fixed fields of a route's audit events. */
export type AuditRoute = Pick<AuditEvent, 'event' | 'method' | 'route' | 'api'> & {
  readonly operation?: string
}

/**
 * Runs one request inside the audit frame: counted in flight while it runs; refused with `refused()` (and
 * not run, not audited: the sink counts refusals itself) when the audit sink does not accept events, since
 * an operation that cannot be audited must not happen; otherwise `run`, then exactly one audit event from
 * the facts `run` filled in (awaited when the sink writes synchronously, EKMS_AUDIT_SYNC).
 */
export async function auditedRequest(
  o: FrameOptions,
  route: AuditRoute,
  correlationId: string,
  refused: () => Response,
  run: (facts: AuditFacts) => Promise<Response>,
): Promise<Response> {
  const counter = o.inFlight
  if (counter !== undefined) counter.n++
  try {
    if (o.audit.accepting?.() === false) return refused()
    const facts = new AuditFacts()
    try {
      return await run(facts)
    } finally {
      const written = o.audit.record({
        event: route.event,
        outcome: facts.status < 400 ? 'success' : 'failure',
        status: facts.status,
        subject: facts.principal?.subject,
        instance: facts.instance,
        keyId: facts.keyId,
        correlationId,
        reason: facts.reason,
        method: route.method,
        route: route.route,
        ...(route.api === undefined ? {} : { api: route.api }),
        ...(route.operation === undefined ? {} : { operation: route.operation }),
      })
      if (written !== undefined) await written
    }
  } finally {
    if (counter !== undefined) counter.n--
  }
}

/** Records the audit event of a request no route took (404), awaited when the sink writes synchronously. */
export async function auditUnknownRoute(
  c: Context,
  audit: AuditSink,
  correlationId: string,
  reason: string,
  api: NonNullable<AuditEvent['api']>,
): Promise<void> {
  const written = audit.record({
    event: 'kms.request.unknown',
    outcome: 'failure',
    status: 404,
    subject: undefined,
    instance: undefined,
    keyId: undefined,
    correlationId,
    reason,
    method: c.req.method.slice(0, 16),
    route: c.req.path.slice(0, 256),
    api,
  })
  if (written !== undefined) await written
}

/**
 * The answer to a request whose client left mid-body ({@link ClientAbortError}): nothing to answer and
 * nothing failed here (no server-error log); recorded as 499 CLIENT_CLOSED_REQUEST.
 */
export function clientClosed(facts: AuditFacts): Response {
  facts.status = CLIENT_CLOSED_REQUEST
  facts.reason = 'CLIENT_CLOSED_REQUEST'
  return new Response(null, { status: CLIENT_CLOSED_REQUEST, headers: { connection: 'close' } })
}

/**
 * A route's OpenAPI responses: its own (a JSON schema where it has one), then every error response of the
 * family with the family's error body, unless the route documents that status itself.
 */
export function openApiResponses(
  own: Readonly<Record<number, { readonly description: string; readonly schema?: unknown }>>,
  errors: Readonly<Record<string, string>>,
  errorSchema: unknown,
): Record<string, unknown> {
  const responses: Record<string, unknown> = {}
  for (const [status, r] of Object.entries(own)) {
    responses[status] =
      r.schema === undefined
        ? { description: r.description }
        : { description: r.description, content: { 'application/json': { schema: r.schema } } }
  }
  for (const [status, description] of Object.entries(errors)) {
    responses[status] ??= { description, content: { 'application/json': { schema: errorSchema } } }
  }
  return responses
}
