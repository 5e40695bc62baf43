/**
 * A server process for bench/http.ts (so that the load generator and the server do not share an event loop):
 *   node --import tsx bench/http-server.ts engine   the Key Protect API over the engine (dev token, fresh catalog)
 *   node --import tsx bench/http-server.ts hello    a bare Hono hello-world route, served the same way
 * With `engine`, the same server (same app, router and listener) also serves `POST /bench/unwrap`: a bare Hono
 * route making the same engine.unwrap call as the Key Protect unwrap endpoint, without auth, validation, rate
 * limit or audit: the ceiling the full API can reach with a real HSM call per request.
 * Prints one JSON line with the URL (and, for engine, the key id, a ciphertext and the API key), then serves
 * until SIGTERM. When started with an IPC channel, answers the message `'cpu'` with `process.cpuUsage()`, so
 * that the driver can charge server CPU time to the requests of one run.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Hono } from 'hono'
import { serve } from '@hono/node-server'
import type { AddressInfo } from 'node:net'
import { createEngineFromConfig, loadConfig } from '../dist/index.js'
import { createHttpApp } from '../dist/http/app.js'
import { pinoAuditSink } from '../dist/http/audit.js'
import { createAuthenticator } from '../dist/http/auth.js'
import { startServer } from '../dist/http/server.js'

process.env['SOFTHSM2_CONF'] ??= resolve('softhsm2.conf')
const mode = process.argv[2]

if (process.send !== undefined) {
  process.on('message', (m) => {
    if (m === 'cpu') process.send?.(process.cpuUsage())
  })
  // The IPC channel must not keep the process alive after SIGTERM (a --cpu-prof profile is written at exit).
  process.channel?.unref()
}

if (mode === 'hello') {
  const app = new Hono()
  app.post('/hello', (c) => c.json({ hello: 'world' }))
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) => {
    process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${info.port}` })}\n`)
  })
  process.once('SIGTERM', () => server.close())
} else if (mode === 'engine') {
  const dir = mkdtempSync(join(tmpdir(), 'ekms-bench-http-'))
  const engine = await createEngineFromConfig({
    ...loadConfig(),
    catalog: { path: join(dir, 'catalog.sqlite') },
  })
  const apiKey = randomBytes(24).toString('base64url')
  const audit = pinoAuditSink(join(dir, 'audit.log'))
  const http = createHttpApp({
    engine,
    auth: createAuthenticator({
      apiKeys: [{ key: apiKey, subject: 'bench', instances: '*', actions: ['*'] }],
    }),
    audit,
    rateLimit: { requests: 0, windowMs: 1000 },
  })
  const key = await engine.createKey('bench', { name: 'bench-root' })
  const w = await engine.wrap('bench', key.id)
  w.plaintext?.fill(0)
  // The bare route: same server, same engine call, same response shape as the API's unwrap.
  http.app.post('/bench/unwrap', async (c) => {
    const body = JSON.parse(await c.req.text()) as { ciphertext: string }
    const u = await engine.unwrap('bench', key.id, body.ciphertext)
    const out = JSON.stringify({
      plaintext: u.plaintext.toString('base64'),
      keyVersion: { id: u.keyVersion.id },
    })
    u.plaintext.fill(0)
    return new Response(out, { headers: { 'content-type': 'application/json' } })
  })
  const server = await startServer(http, { host: '127.0.0.1', port: 0 })
  const info = {
    url: server.url,
    bareUrl: `${server.url}/bench`,
    keyId: key.id,
    ciphertext: w.ciphertext,
    apiKey,
  }
  process.stdout.write(`${JSON.stringify(info)}\n`)
  process.once('SIGTERM', () => {
    void server
      .close()
      .then(() => engine.close())
      .then(() => audit.close())
  })
} else {
  process.stderr.write('usage: http-server.ts engine|hello\n')
  process.exitCode = 2
}
