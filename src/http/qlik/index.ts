/**
 * The Qlik Cloud encryption key providers API (`/api/v1/encryption/keyproviders`, spec digest Part A) over
 * the library's {@link TenantKeyProviders}: parse and validate, authorise, call one library method, shape the
 * reply. No business rule lives here. Decisions on the seed's ambiguities: docs/http-qlik.md.
 */
import type { OpenAPIHono } from '@hono/zod-openapi'
import type { Context } from 'hono'
import type { AuditSink } from '../audit.js'
import { QLIK_HTTP_ERRORS } from '../errors.js'
import { header } from '../headers.js'
import { auditUnknownRoute, correlationIdOf } from '../request-frame.js'
import { problemResponse, QLIK_PREFIX, registerQlikRoute, type QlikOptions } from './pipeline.js'
import { QLIK_ROUTES } from './routes.js'

export { QLIK_IAM, QLIK_PREFIX, type QlikOptions } from './pipeline.js'
export { QLIK_ROUTES } from './routes.js'

const toHono = (path: string): string => path.replace(/\{([^}]+)\}/g, ':$1')

/** Mounts the ten routes on `app` and describes them in its OpenAPI registry. */
export function mountQlik(app: OpenAPIHono, o: QlikOptions): void {
  for (const def of QLIK_ROUTES) {
    app.on(def.method.toUpperCase(), `${QLIK_PREFIX}${toHono(def.path)}`, registerQlikRoute(app, def, o))
  }
}

/** True for a path under the Qlik prefix (its unknown routes get Qlik's error body). */
export function isQlikPath(path: string): boolean {
  return path === QLIK_PREFIX || path.startsWith(`${QLIK_PREFIX}/`)
}

/** The 404 of an unknown route under the prefix, in Qlik's error body, audited like every request. */
export async function qlikNotFound(c: Context, audit: AuditSink): Promise<Response> {
  const correlationId = correlationIdOf(header(c, 'correlation-id'))
  await auditUnknownRoute(c, audit, correlationId, QLIK_HTTP_ERRORS.noRoute.code, 'qlik')
  return problemResponse(
    QLIK_HTTP_ERRORS.noRoute,
    `${c.req.method.slice(0, 16)} ${c.req.path.slice(0, 256)}: no such endpoint`,
    correlationId,
  )
}
