/**
 * A server process for bench/http.ts (so that the load generator and the server do not share an event loop):
 *   node --import tsx bench/http-server.ts engine   the Key Protect API over the engine (dev token, fresh catalog)
 *   node --import tsx bench/http-server.ts hello    a bare Hono hello-world route, served the same way
 * With `engine`, a second listener serves `POST /unwrap` on a bare Hono route calling engine.unwrap (no auth,
 * validation, rate limit or audit): the ceiling the full API can reach with a real HSM call per request.
 * Prints one JSON line with the URL (and, for engine, the key id, a ciphertext and the API key), then serves
 * until SIGTERM.
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
  const http = createHttpApp({
    engine,
    auth: createAuthenticator({
      apiKeys: [{ key: apiKey, subject: 'bench', instances: '*', actions: ['*'] }],
    }),
    audit: pinoAuditSink(join(dir, 'audit.log')),
    rateLimit: { requests: 0, windowMs: 1000 },
  })
  const server = await startServer(http, { host: '127.0.0.1', port: 0 })
  const key = await engine.createKey('bench', { name: 'bench-root' })
  const w = await engine.wrap('bench', key.id)
  w.plaintext?.fill(0)
  const bare = new Hono()
  bare.post('/unwrap', async (c) => {
    const body = JSON.parse(await c.req.text()) as { ciphertext: string }
    const u = await engine.unwrap('bench', key.id, body.ciphertext)
    const out = JSON.stringify({
      plaintext: u.plaintext.toString('base64'),
      keyVersion: { id: u.keyVersion.id },
    })
    u.plaintext.fill(0)
    return new Response(out, { headers: { 'content-type': 'application/json' } })
  })
  const bareServer = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: bare.fetch, hostname: '127.0.0.1', port: 0 }, () => {
      resolve(s)
    })
  })
  const barePort = (bareServer.address() as AddressInfo).port
  const info = {
    url: server.url,
    bareUrl: `http://127.0.0.1:${barePort}`,
    keyId: key.id,
    ciphertext: w.ciphertext,
    apiKey,
  }
  process.stdout.write(`${JSON.stringify(info)}\n`)
  process.once('SIGTERM', () => {
    bareServer.close()
    void server.close().then(() => engine.close())
  })
} else {
  process.stderr.write('usage: http-server.ts engine|hello\n')
  process.exitCode = 2
}
