/**
 * The Thales CCKM key-synchronization API (spec digest Part B) over the library's {@link KeySync}:
 * synchronization jobs, CipherTrust-style connections and the linked keys they discover. Parse and
 * validate, authorise, call one library method, shape the reply. Decisions: docs/http-cckm.md.
 */
import type { OpenAPIHono } from '@hono/zod-openapi'
import type { Context } from 'hono'
import type { AuditSink } from '../audit.js'
import { CCKM_HTTP_ERRORS } from '../errors.js'
import { header } from '../headers.js'
import { auditUnknownRoute, correlationIdOf } from '../request-frame.js'
import {
  CCKM_PREFIX,
  CONNECTIONS_PREFIX,
  mountCckmRoute,
  problemResponse,
  type CckmOptions,
} from './pipeline.js'
import { CCKM_ROUTES } from './routes.js'

export { CCKM_IAM, CCKM_PREFIX, CONNECTIONS_PREFIX, type CckmOptions } from './pipeline.js'
export { CCKM_ROUTES } from './routes.js'

/** Mounts the routes on `app` and describes them in its OpenAPI registry. */
export function mountCckm(app: OpenAPIHono, o: CckmOptions): void {
  for (const def of CCKM_ROUTES) mountCckmRoute(app, def, o)
}

/** True for a path under the CCKM or connection-manager prefix (its unknown routes get CCKM's error body). */
export function isCckmPath(path: string): boolean {
  return [CCKM_PREFIX, CONNECTIONS_PREFIX].some((p) => path === p || path.startsWith(`${p}/`))
}

/** The 404 of an unknown route under the prefixes, in CCKM's error body, audited like every request. */
export async function cckmNotFound(c: Context, audit: AuditSink): Promise<Response> {
  const correlationId = correlationIdOf(header(c, 'correlation-id'))
  await auditUnknownRoute(c, audit, correlationId, 'NCERRNoRoute', 'cckm')
  return problemResponse(
    CCKM_HTTP_ERRORS.noRoute,
    `${c.req.method.slice(0, 16)} ${c.req.path.slice(0, 256)}: no such endpoint`,
    correlationId,
  )
}

export { problemResponse as cckmProblemResponse }
