/**
 * The HTTP adapter: one Hono app with `/health`, `/ready`, `/openapi.json` and the API families
 * (Key Protect v2 under `/api/v2`; the Qlik key providers under `/api/v1/encryption/keyproviders` when
 * tenant key providers are given). Thin by design: see DESIGN.md.
 */
import { OpenAPIHono } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { addressList, type AddressList } from '../core/address-list.js'
import type { EnvelopeEngine } from '../core/engine.js'
import { EngineError } from '../core/errors.js'
import { type AuditSink, nullAuditSink } from './audit.js'
import type { Authenticator } from './auth.js'
import { BodyBudget, DEFAULT_BODY_BUDGET_FACTOR } from './body.js'
import { header } from './headers.js'
import { correlationIdOf, mountKeyProtect } from './keyprotect/index.js'
import { isQlikPath, mountQlik, qlikNotFound } from './qlik/index.js'
import { cckmNotFound, cckmProblemResponse, isCckmPath, mountCckm } from './cckm/index.js'
import { problemResponse } from './qlik/pipeline.js'
import { CCKM_HTTP_ERRORS, QLIK_HTTP_ERRORS } from './errors.js'
import { auditUnknownRoute } from './request-frame.js'
import type { TenantKeyProviders } from '../core/tenant-keys/types.js'
import type { KeySync } from '../core/sync/types.js'
import { errorBody, type WireOptions } from './keyprotect/wire.js'
import { FixedWindowLimiter, type RateLimitConfig } from './rate-limit.js'
import { PACKAGE } from '../version.js'

export interface HttpAppOptions {
  readonly engine: EnvelopeEngine
  readonly auth: Authenticator
  /** Largest accepted request body in bytes (default 64 KiB); larger bodies get 413. */
  readonly bodyLimitBytes?: number
  /**
   * Request body bytes in flight at once on this listener (default 64 × bodyLimitBytes); a body that does
   * not fit is refused with 503 SERVICE_UNAVAILABLE_ERR and `Retry-After: 1` without being read.
   */
  readonly maxInFlightBodyBytes?: number
  /** Per-instance, per-endpoint rate limit (default 10,000 requests per second). */
  readonly rateLimit?: RateLimitConfig
  /** Where audit events go; `envelope-kms serve` uses `pinoAuditSink`. Default: dropped. */
  readonly audit?: AuditSink
  /** Region and account printed in Key Protect CRNs (default `local`, `envelope-kms`). */
  readonly wire?: Partial<WireOptions>
  /**
   * Proxies (IPv4/IPv6 addresses or CIDRs) whose `X-Forwarded-For` header names the client address for the
   * allowedIP instance policy; default none (the socket's peer is the client).
   * @throws EngineError CONFIG_INVALID (from createHttpApp) for an invalid entry
   */
  readonly trustedProxies?: readonly string[]
  /**
   * Tenant key providers: when given, the Qlik Cloud encryption key providers API is mounted under
   * `/api/v1/encryption/keyproviders` (docs/http-qlik.md).
   */
  readonly tenantKeys?: TenantKeyProviders
  /**
   * The Qlik API's rate tiers per tenant: `reads` (every GET, default 1,000) and `mutations` (default 100)
   * per `windowMs` (default 60,000); 0 disables a tier.
   */
  readonly qlikRateLimit?: {
    readonly reads?: number
    readonly mutations?: number
    readonly windowMs?: number
  }
  /**
   * Key synchronization: when given, the Thales CCKM API (synchronization jobs and linked keys under
   * `/api/v1/cckm/{cloud}`, connections under `/api/v1/connectionmgmt/services/{cloud}/connections`) is
   * mounted (docs/http-cckm.md).
   */
  readonly sync?: KeySync
  readonly now?: () => number
  readonly onServerError?: (err: unknown, correlationId: string) => void
}

export interface HttpApp {
  readonly app: OpenAPIHono
  /** Requests being served now (graceful shutdown waits for 0). */
  inFlight(): number
}

/** The trusted proxies as an address list; CONFIG_INVALID naming the first invalid entry. */
function trustedProxyList(cidrs: readonly string[]): AddressList {
  try {
    return addressList(cidrs)
  } catch (err) {
    throw new EngineError('CONFIG_INVALID', `trustedProxies: ${(err as Error).message}`, { cause: err })
  }
}

/** Builds the HTTP app over an open engine. */
export function createHttpApp(o: HttpAppOptions): HttpApp {
  const app = new OpenAPIHono()
  // Counted by the routes themselves (a catch-all middleware would add a compose step to every request).
  const inFlight = { n: 0 }
  const limitBytes = o.bodyLimitBytes ?? 64 * 1024
  const audit = o.audit ?? nullAuditSink
  // One budget of body bytes in flight for the whole listener, whichever API family reads them.
  const bodyBudget = new BodyBudget(o.maxInFlightBodyBytes ?? DEFAULT_BODY_BUDGET_FACTOR * limitBytes)

  // Liveness: the process answers. Never asks the provider, so an HSM outage does not get it restarted.
  app.get('/health', (c) => c.json({ status: 'ok' }))
  // Readiness: a real probe of the provider (cached by the provider for at most a second) and of the catalog.
  app.get('/ready', async (c) => {
    const h = await o.engine.health()
    const store = h.store ? 'ok' : 'unavailable'
    if (h.ok) return c.json({ status: 'ready', provider: h.provider, store }, 200)
    const code = h.providerOk ? 'STORE_ERROR' : 'PROVIDER_UNAVAILABLE'
    return c.json({ status: 'unavailable', code, provider: h.provider, store }, 503, { 'Retry-After': '1' })
  })

  mountKeyProtect(app, {
    engine: o.engine,
    auth: o.auth,
    bodyLimitBytes: limitBytes,
    bodyBudget,
    inFlight,
    limiter: new FixedWindowLimiter(o.rateLimit ?? { requests: 10_000, windowMs: 1000 }),
    audit,
    wire: { region: o.wire?.region ?? 'local', account: o.wire?.account ?? 'envelope-kms' },
    ...(o.trustedProxies === undefined || o.trustedProxies.length === 0
      ? {}
      : { trustedProxies: trustedProxyList(o.trustedProxies) }),
    ...(o.now === undefined ? {} : { now: o.now }),
    ...(o.onServerError === undefined ? {} : { onServerError: o.onServerError }),
  })

  if (o.tenantKeys !== undefined) {
    const q = o.qlikRateLimit ?? {}
    const windowMs = q.windowMs ?? 60_000
    mountQlik(app, {
      tenantKeys: o.tenantKeys,
      auth: o.auth,
      bodyLimitBytes: limitBytes,
      bodyBudget,
      inFlight,
      limiters: {
        read: new FixedWindowLimiter({ requests: q.reads ?? 1000, windowMs }),
        write: new FixedWindowLimiter({ requests: q.mutations ?? 100, windowMs }),
      },
      audit,
      now: o.now,
      onServerError: o.onServerError,
    })
  }

  if (o.sync !== undefined) {
    mountCckm(app, {
      sync: o.sync,
      auth: o.auth,
      bodyLimitBytes: limitBytes,
      bodyBudget,
      inFlight,
      audit,
      onServerError: o.onServerError,
    })
  }

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description:
      "An API key or a JWT from the configured issuer (EKMS_AUTH_FILE), checked per instance (Bluemix-Instance; the Qlik API: the token's one instance is the tenant) and IAM action.",
  })
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'envelope-kms: IBM Key Protect v2 compatible API',
      version: PACKAGE.version,
      description:
        'IBM Key Protect v2 compatible API over envelope-kms (keys, key actions, policies, aliases, key rings); ' +
        'with tenant key providers, the Qlik Cloud encryption key providers API (/api/v1/encryption/keyproviders); ' +
        'with key synchronization, the Thales CCKM API (/api/v1/cckm, /api/v1/connectionmgmt). ' +
        'Error reason codes: docs/errors.md of the package.',
      license: { name: 'Apache-2.0', url: 'https://www.apache.org/licenses/LICENSE-2.0' },
    },
    servers: [{ url: '/', description: 'this server' }],
    security: [{ bearer: [] }],
  })

  const cid = (c: Context): string => correlationIdOf(header(c, 'correlation-id'))
  app.notFound(async (c) => {
    const correlationId = cid(c)
    if (o.tenantKeys !== undefined && isQlikPath(c.req.path)) return qlikNotFound(c, audit)
    if (o.sync !== undefined && isCckmPath(c.req.path)) return cckmNotFound(c, audit)
    // Every request of the listener is audited (the probes /health, /ready and /openapi.json excepted).
    await auditUnknownRoute(c, audit, correlationId, 'NOT_FOUND_ERR', 'keyprotect')
    return c.newResponse(
      JSON.stringify(errorBody(404, 'NOT_FOUND_ERR', 'No such endpoint.', 'Request')),
      404,
      {
        'content-type': 'application/json',
        'correlation-id': correlationId,
      },
    )
  })
  app.onError((err, c) => {
    const id = cid(c)
    o.onServerError?.(err, id)
    if (o.tenantKeys !== undefined && isQlikPath(c.req.path)) {
      return problemResponse(QLIK_HTTP_ERRORS.internal, 'internal error', id)
    }
    if (o.sync !== undefined && isCckmPath(c.req.path)) {
      return cckmProblemResponse(CCKM_HTTP_ERRORS.internal, 'internal error', id)
    }
    return c.newResponse(
      JSON.stringify(errorBody(500, 'INTERNAL_SERVER_ERR', 'internal error', 'Request')),
      500,
      { 'content-type': 'application/json', 'correlation-id': id },
    )
  })

  return { app, inFlight: () => inFlight.n }
}
