/**
 * Request headers without the WHATWG `Headers` object: @hono/node-server builds one (undici) the first time
 * `c.req.header()` is called, which costs several microseconds per request. Node's own parsed headers
 * (lower-case names) are read instead when the request came through @hono/node-server.
 */
import type { Context } from 'hono'
import type { IncomingMessage } from 'node:http'

/** The value of header `name` (lower case), or undefined. Repeated headers are joined with ", ". */
export function header(c: Context, name: string): string | undefined {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
  if (incoming === undefined) return c.req.header(name)
  const v = incoming.headers[name]
  return Array.isArray(v) ? v.join(', ') : v
}
