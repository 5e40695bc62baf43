/**
 * IBM Key Protect v2 over the engine: parse and validate, authorise, call core, map the result or the
 * typed error to the wire (spec digest shared/spec/key-protect-v2.md). No business rule lives here.
 * Each endpoint is a named handler in routes/*.ts; pipeline.ts runs the steps every request takes.
 */
import type { OpenAPIHono } from '@hono/zod-openapi'
import {
  operationIdOf,
  register,
  type KeyProtectOptions,
  type RequestHandler,
  type RouteDef,
} from './pipeline.js'
import { aliasRoutes } from './routes/aliases.js'
import { DEPRECATED_ACTIONS, deprecatedActionRoute, deprecatedRoute } from './routes/deprecated-actions.js'
import { eventRoutes } from './routes/events.js'
import { importTokenRoutes } from './routes/import-token.js'
import { instanceRoutes } from './routes/instance.js'
import { keyActionRoutes } from './routes/key-actions.js'
import { keyRingRoutes } from './routes/key-rings.js'
import { keyRoutes } from './routes/keys.js'
import { policyRoutes } from './routes/policies.js'
import { registrationRoutes, registrationsAllKeysRoute } from './routes/registrations.js'

export { toProblem, type KeyProtectOptions, type RouteDef } from './pipeline.js'
export { correlationIdOf } from '../request-frame.js'
export { HttpProblem } from './request.js'

/**
 * Every Key Protect route, in registration (and OpenAPI document) order. The static `GET /keys/registrations`
 * comes before `GET /keys/{id}`, which would otherwise take it (Hono runs the first matching route).
 */
export const KEY_PROTECT_ROUTES: readonly RouteDef[] = [
  registrationsAllKeysRoute,
  ...keyRoutes,
  ...keyActionRoutes,
  ...policyRoutes,
  ...aliasRoutes,
  ...keyRingRoutes,
  deprecatedActionRoute,
  ...importTokenRoutes,
  ...instanceRoutes,
  ...registrationRoutes,
  ...eventRoutes,
]

function toHono(path: string): string {
  return path.replace(/\{([^}]+)\}/g, (_m, name: string) => `:${name.replace(/[^A-Za-z0-9]/g, '_')}`)
}

/** Mounts the Key Protect routes on `app` under `/api/v2` and describes them in its OpenAPI registry. */
export function mountKeyProtect(app: OpenAPIHono, o: KeyProtectOptions): void {
  // Hono dispatches HEAD to the GET route of the same path: the GET handler hands it to the HEAD one.
  const heads = new Map<string, RequestHandler>()
  const operationIds = new Set<string>()
  for (const def of KEY_PROTECT_ROUTES) {
    const id = operationIdOf(def)
    if (id.length === 0 || operationIds.has(id)) {
      throw new Error(
        `Key Protect route ${def.method} ${def.path}: operationId '${id}' is empty or not unique`,
      )
    }
    operationIds.add(id)
    if (def.method === 'head') heads.set(def.path, register(app, def, o))
  }
  // POST /keys/{id}?action=…: each known action runs its own route (its IAM action, schema, handler, audit
  // event) mounted at /keys/{id}; the documented actionOnKey route answers a missing or unknown action.
  const byAction = new Map<string, RequestHandler>()
  for (const [action, path] of DEPRECATED_ACTIONS) {
    const original = KEY_PROTECT_ROUTES.find((d) => d.method === 'post' && d.path === path)
    if (original === undefined) throw new Error(`deprecated action ${action}: no route POST ${path}`)
    byAction.set(action, register(app, deprecatedRoute(action, original), o, { describe: false }))
  }
  for (const def of KEY_PROTECT_ROUTES) {
    if (def.method === 'head') continue
    const handler = register(app, def, o)
    if (def === deprecatedActionRoute) {
      app.post(`/api/v2${toHono(def.path)}`, (c) => (byAction.get(c.req.query('action') ?? '') ?? handler)(c))
      continue
    }
    const head = def.method === 'get' ? heads.get(def.path) : undefined
    app.on(
      def.method.toUpperCase(),
      `/api/v2${toHono(def.path)}`,
      head === undefined ? handler : (c) => (c.req.method === 'HEAD' ? head(c) : handler(c)),
    )
  }
}
