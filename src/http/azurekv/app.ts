/**
 * An Azure-Key-Vault-compatible endpoint over the HSM (the Key Vault keys REST API, Managed HSM semantics),
 * so that the official Azure SDKs can use keys held in the engine's HSM. Served at the root of a listener of
 * its own, over HTTPS (the SDK sends bearer tokens over TLS only).
 *
 * The per-request pipeline, in this order:
 * 1. no `Authorization` header: 401 with Key Vault's challenge (`WWW-Authenticate: Bearer
 *    authorization="<authority>", resource="<resource>"`), before the body is read (the SDK's first request
 *    of a client carries no token and an empty body, even a POST);
 * 2. the bearer token, verified by the same {@link Authenticator} as the other listeners; the tenant is the
 *    principal's single instance (a token for `*` or several instances is refused: Key Vault has no way to
 *    name one);
 * 3. `api-version` (7.4, 7.5, 7.6 or 2025-07-01; the SDK sends it percent-encoded as `api%2Dversion`);
 * 4. the route and its IAM action (Key Protect's action names: kms.secrets.create, .wrap, ...);
 * 5. the capped body (413 past the cap) and its JSON (400 when malformed);
 * 6. the handler (routes.ts), one vault-key service call; the audit event always.
 *
 * Every success is 200 (the SDK refuses a 201), a purge 204.
 */
import { randomUUID } from 'node:crypto'
import { Hono, type Context } from 'hono'
import type { Logger } from 'pino'
import { EngineError } from '../../core/errors.js'
import type { VaultKeys } from '../../core/vault-keys/vault-keys.js'
import type { AuditEvent, AuditSink } from '../audit.js'
import { allowed, AuthError, type Authenticator } from '../auth.js'
import {
  BodyBudget,
  BodyBudgetError,
  BodyTooLargeError,
  ClientAbortError,
  CLIENT_CLOSED_REQUEST,
  DEFAULT_BODY_BUDGET_FACTOR,
  readCappedBody,
} from '../body.js'
import { AZURE_KV_ERRORS } from '../errors.js'
import { matchRoute } from './routes.js'
import { AzureError, type Json } from './wire.js'

/** The api-versions accepted. */
export const AZURE_KV_API_VERSIONS: readonly string[] = ['7.4', '7.5', '7.6', '2025-07-01']

/** The challenge a request without a token is answered with. */
export interface AzureChallenge {
  /** The `authorization` parameter: the token authority with its tenant, e.g. `https://login.microsoftonline.com/<tenant>`. */
  readonly authorization: string
  /**
   * The `resource` parameter: the SDK asks its credential for `<resource>/.default`, and (unless the client
   * sets `disableChallengeResourceVerification`) checks that the vault host ends with `.<resource host>`.
   */
  readonly resource: string
}

/** Options of {@link createAzureKvApp}. */
export interface AzureKvAppOptions {
  readonly vault: VaultKeys
  readonly auth: Authenticator
  readonly challenge: AzureChallenge
  /** Largest request body in bytes (default 64 KiB); larger ones get 413. */
  readonly maxBodyBytes?: number
  /** Body bytes in flight on this listener (default 64 × maxBodyBytes); past it 429 Throttled, unread. */
  readonly maxInFlightBodyBytes?: number
  /** Largest page of a list (`maxresults`, default 25), at most this (default 25). */
  readonly maxPage?: number
  /** Request log (request id, operation, instance, key name, status, error code; never bodies or tokens). */
  readonly logger?: Pick<Logger, 'info' | 'error'>
  /** Audit events (`api: "azure-kv"`, event `azure-kv.<Operation>`), one per request. Default: dropped. */
  readonly audit?: AuditSink
}

const REQUEST_ID = 'x-ms-request-id'
const JSON_TYPE = 'application/json; charset=utf-8'

function reply(c: Context, status: number, body: Json | undefined, requestId: string): Response {
  if (body === undefined) return c.body(null, status as 204, { [REQUEST_ID]: requestId })
  return c.body(JSON.stringify(body), status as 200, { 'content-type': JSON_TYPE, [REQUEST_ID]: requestId })
}

/** Key Vault's challenge header value. */
function challengeHeader(ch: AzureChallenge): string {
  return `Bearer authorization="${ch.authorization}", resource="${ch.resource}"`
}

/**
 * Builds the Azure-Key-Vault-compatible Hono app. Serve it over HTTPS at the root of its own listener.
 * @throws EngineError CONFIG_INVALID (the challenge parameters)
 */
export function createAzureKvApp(options: AzureKvAppOptions): Hono {
  for (const [k, v] of Object.entries(options.challenge)) {
    if (typeof v !== 'string' || !/^https:\/\/[^\s"]+$/.test(v))
      throw new EngineError('CONFIG_INVALID', `azure-kv challenge.${k}: must be an https URL`)
  }
  const maxBody = options.maxBodyBytes ?? 64 * 1024
  const budget = new BodyBudget(options.maxInFlightBodyBytes ?? DEFAULT_BODY_BUDGET_FACTOR * maxBody)
  const maxPage = options.maxPage ?? 25
  const challenge = challengeHeader(options.challenge)
  const { vault, auth, audit, logger: log } = options
  const app = new Hono()

  app.all('*', async (c) => {
    const requestId = randomUUID()
    const method = c.req.method
    const url = new URL(c.req.url)
    let status = 500
    let code: string | undefined
    let op = 'unknown'
    let subject: string | undefined
    let instance: string | undefined
    let keyName: string | undefined
    let bodyRead = false
    let auditRefused = false
    try {
      if (audit?.accepting?.() === false) {
        auditRefused = true
        throw new AzureError(503, 'ServiceUnavailable', 'The audit log is not accepting events; retry later.')
      }
      const authorization = c.req.header('authorization')
      if (authorization === undefined) {
        throw new AzureError(401, 'Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.')
      }
      let principal
      try {
        principal = await auth.authenticate(authorization)
      } catch (err) {
        if (err instanceof AuthError)
          throw new AzureError(401, 'Unauthorized', `AKV10032: Invalid token (${err.message}).`)
        throw err
      }
      subject = principal.subject
      const instances = principal.instances
      if (instances === '*' || instances.size !== 1) {
        throw new AzureError(
          403,
          'Forbidden',
          'The token must name exactly one instance: on this listener the vault is the instance of the token.',
        )
      }
      instance = [...instances][0] ?? ''
      const apiVersion = url.searchParams.get('api-version')
      if (apiVersion === null || !AZURE_KV_API_VERSIONS.includes(apiVersion)) {
        throw new AzureError(
          400,
          'BadParameter',
          `The specified version (${(apiVersion ?? '').slice(0, 20)}) is not recognized. Consider using the latest supported version (${AZURE_KV_API_VERSIONS.join(', ')}).`,
        )
      }
      const segments = url.pathname.split('/').slice(1)
      const m = matchRoute(method, segments)
      if (m === undefined)
        throw new AzureError(
          404,
          'NotFound',
          `${method} ${url.pathname.slice(0, 200)} is not an operation of this vault`,
        )
      op = m.route.op
      keyName = m.params['name']
      if (!allowed(principal, instance, m.route.iam)) {
        throw new AzureError(403, 'Forbidden', `The token is not allowed ${m.route.iam} on this vault.`)
      }
      let body: Json = {}
      if (m.route.body) {
        let raw: Buffer
        try {
          raw = await readCappedBody(c, maxBody, budget)
        } catch (err) {
          if (err instanceof BodyTooLargeError)
            throw new AzureError(413, 'RequestEntityTooLarge', `The request body exceeds ${maxBody} bytes.`)
          if (err instanceof BodyBudgetError)
            throw new AzureError(429, 'Throttled', 'Too many request bodies in flight; retry later.')
          throw err
        }
        bodyRead = true
        let parsed: unknown
        try {
          parsed = JSON.parse(raw.toString('utf8'))
        } catch {
          throw new AzureError(400, 'BadParameter', 'The request body is not valid JSON.')
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
          throw new AzureError(400, 'BadParameter', 'The request body must be a JSON object.')
        body = parsed as Json
      } else {
        bodyRead = true // bodies of these routes are ignored (the connection is kept)
      }
      const out = await m.route.handler({
        vault,
        instance,
        wire: { origin: url.origin, retentionDays: vault.retentionDays },
        params: m.params,
        query: url.searchParams,
        body,
        apiVersion,
        maxPage,
      })
      status = out.status
      return reply(c, out.status, out.body, requestId)
    } catch (err) {
      if (err instanceof ClientAbortError) {
        status = CLIENT_CLOSED_REQUEST
        code = 'ClientClosedRequest'
        return new Response(null, {
          status: CLIENT_CLOSED_REQUEST,
          headers: { connection: 'close', [REQUEST_ID]: requestId },
        })
      }
      let message: string
      if (err instanceof AzureError) {
        status = err.status
        code = err.code
        message = err.message
      } else if (err instanceof EngineError) {
        const shape = AZURE_KV_ERRORS[err.code]
        status = shape.status
        code = shape.code
        message = status >= 500 ? 'The service failed to process the request; retry later.' : err.message
        if (status >= 500)
          log?.error({ requestId, op, code: err.code, err: err.message }, 'azure-kv request failed')
      } else {
        status = 500
        code = 'InternalServerError'
        message = 'The service failed to process the request; retry later.'
        log?.error(
          { requestId, op, err: err instanceof Error ? err.name : typeof err },
          'azure-kv request failed',
        )
      }
      const res = reply(c, status, { error: { code, message } }, requestId)
      if (status === 401) res.headers.set('www-authenticate', challenge)
      if (auditRefused) res.headers.set('retry-after', '1')
      // Refused before its body was read: close rather than carry the rest of the upload.
      // (A request that declared no body, like the SDK's first, token-less one, keeps its connection.)
      const length = c.req.header('content-length')
      const hasBody = length === undefined ? c.req.header('transfer-encoding') !== undefined : length !== '0'
      if (!bodyRead && hasBody) res.headers.set('connection', 'close')
      return res
    } finally {
      log?.info(
        {
          requestId,
          op,
          ...(instance === undefined ? {} : { instance }),
          ...(keyName === undefined ? {} : { key: keyName.slice(0, 127) }),
          status,
          ...(code === undefined ? {} : { error: code }),
        },
        'azure-kv request',
      )
      if (audit !== undefined && !auditRefused) {
        const written = audit.record({
          event: `azure-kv.${op}`,
          outcome: status < 400 ? 'success' : 'failure',
          status,
          subject,
          instance,
          keyId: keyName?.slice(0, 127),
          correlationId: requestId,
          reason: code,
          method: method.slice(0, 16),
          route: url.pathname.slice(0, 256),
          api: 'azure-kv',
          ...(op === 'unknown' ? {} : { operation: op }),
        } satisfies AuditEvent)
        if (written !== undefined) await written
      }
    }
  })
  return app
}
