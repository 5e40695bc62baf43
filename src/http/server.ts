/**
 * Serves an {@link HttpApp} over HTTP or HTTPS with graceful shutdown: stop accepting, let in-flight
 * requests finish (bounded), then close the remaining connections.
 */
import { readFileSync } from 'node:fs'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { EngineError } from '../core/errors.js'
/** What {@link startServer} serves: a fetch handler and a count of requests in flight (for draining). */
export interface Servable {
  // Hono's fetch, with the Node bindings @hono/node-server passes as `env`.
  readonly app: {
    readonly fetch: (
      request: Request,
      env: { incoming: unknown; outgoing: unknown },
    ) => Response | Promise<Response>
  }
  inFlight(): number
}

/**
 * `app` served at `/` with an in-flight counter (for graceful draining): how the extra listeners of `serve`
 * (the AWS-KMS- and Azure-Key-Vault-compatible APIs) become something {@link startServer} can serve.
 */
export function countingServable(app: Hono): Servable {
  const outer = new Hono()
  let inFlight = 0
  outer.use('*', async (_c, next) => {
    inFlight++
    try {
      await next()
    } finally {
      inFlight--
    }
  })
  outer.route('/', app)
  return { app: outer, inFlight: () => inFlight }
}

export interface ListenOptions {
  /** Address to bind (default 127.0.0.1). */
  readonly host?: string
  /** Port (default 8443 with TLS, 8080 without; 0 picks a free one). */
  readonly port?: number
  /** PEM certificate and key files; without them the server speaks plain HTTP. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string }
  /** Plain HTTP on a non-loopback address must be asked for explicitly. */
  readonly allowPlaintext?: boolean
}

export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string
  readonly port: number
  /** Stops accepting, waits up to `graceMs` (default 10 s) for in-flight requests, then closes. */
  close(graceMs?: number): Promise<void>
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost'])

/**
 * Starts serving `http` on `listen`.
 * @throws EngineError CONFIG_INVALID (plain HTTP on a public address, unreadable TLS files)
 */
export async function startServer(http: Servable, listen: ListenOptions = {}): Promise<RunningServer> {
  const host = listen.host ?? '127.0.0.1'
  if (listen.tls === undefined && !LOOPBACK.has(host) && listen.allowPlaintext !== true) {
    throw new EngineError(
      'CONFIG_INVALID',
      `http: plain HTTP on ${host} is refused; configure TLS (EKMS_HTTP_TLS_CERT/EKMS_HTTP_TLS_KEY) or set EKMS_HTTP_ALLOW_PLAINTEXT=1`,
    )
  }
  let tlsOptions: { cert: Buffer; key: Buffer } | undefined
  if (listen.tls !== undefined) {
    try {
      tlsOptions = { cert: readFileSync(listen.tls.certFile), key: readFileSync(listen.tls.keyFile) }
    } catch (err) {
      throw new EngineError('CONFIG_INVALID', 'http: cannot read the TLS certificate or key file', {
        cause: err,
      })
    }
  }
  const port = listen.port ?? (tlsOptions === undefined ? 8080 : 8443)
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve(
      {
        fetch: http.app.fetch,
        hostname: host,
        port,
        ...(tlsOptions === undefined ? {} : { createServer: createHttpsServer, serverOptions: tlsOptions }),
      },
      () => {
        resolve(s)
      },
    ) as Server
    s.once('error', (err) => {
      reject(new EngineError('CONFIG_INVALID', `http: cannot listen on ${host}:${port}`, { cause: err }))
    })
  })
  server.keepAliveTimeout = 5000
  const addr = server.address() as AddressInfo
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  let closing: Promise<void> | undefined
  return {
    url: `${tlsOptions === undefined ? 'http' : 'https'}://${shownHost}:${addr.port}`,
    port: addr.port,
    close(graceMs = 10_000) {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => {
          resolve()
        })
        server.closeIdleConnections()
        const deadline = Date.now() + graceMs
        const tick = (): void => {
          if (http.inFlight() === 0 || Date.now() >= deadline) {
            server.closeAllConnections()
            return
          }
          server.closeIdleConnections()
          setTimeout(tick, 20).unref()
        }
        tick()
      })
      return closing
    },
  }
}
