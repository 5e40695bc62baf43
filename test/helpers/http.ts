/** Test wiring for the HTTP APIs: a real engine (SoftHSM2 + SQLite) behind a real server on 127.0.0.1. */
import { createHttpApp, type HttpApp, type HttpAppOptions } from '../../src/http/app.js'
import type { AuditEvent, AuditSink } from '../../src/http/audit.js'
import { createAuthenticator, type AuthConfig } from '../../src/http/auth.js'
import { startServer, type RunningServer } from '../../src/http/server.js'
import { openTestEngine, type TestEngine } from './engine.js'

export const HS256_SECRET = 'test-only-hs256-secret-of-at-least-32-bytes!'
export const ADMIN_KEY = 'admin-api-key-for-tests-0123456789'
export const TENANT_A_KEY = 'tenant-a-api-key-0123456789abcdef'
export const TENANT_B_KEY = 'tenant-b-api-key-0123456789abcdef'
export const READER_A_KEY = 'reader-a-api-key-0123456789abcdef'
export const INSTANCE_A = '4b2c8c5e-0a6f-4a8e-9d54-2f1f1c0a0a01'
export const INSTANCE_B = '4b2c8c5e-0a6f-4a8e-9d54-2f1f1c0a0a02'

export const TEST_AUTH: AuthConfig = {
  apiKeys: [
    { key: ADMIN_KEY, subject: 'admin', instances: '*', actions: ['*'] },
    { key: TENANT_A_KEY, subject: 'alice', instances: [INSTANCE_A], actions: ['kms.*'] },
    { key: TENANT_B_KEY, subject: 'bob', instances: [INSTANCE_B], actions: ['kms.*'] },
    {
      key: READER_A_KEY,
      subject: 'reader',
      instances: [INSTANCE_A],
      actions: ['kms.secrets.list', 'kms.secrets.head', 'kms.secrets.readmetadata'],
    },
  ],
  jwt: { hs256Secret: HS256_SECRET, issuer: 'https://issuer.test', audience: 'envelope-kms' },
}

export class MemoryAudit implements AuditSink {
  readonly events: AuditEvent[] = []
  record(e: AuditEvent): void {
    this.events.push(e)
  }
}

export interface TestServer {
  t: TestEngine
  http: HttpApp
  server: RunningServer
  url: string
  audit: MemoryAudit
  close(): Promise<void>
}

export async function startTestServer(
  options: {
    engine?: Parameters<typeof openTestEngine>[0]
    app?: Partial<Omit<HttpAppOptions, 'engine' | 'auth' | 'audit'>>
    auth?: AuthConfig
  } = {},
): Promise<TestServer> {
  const t = await openTestEngine(options.engine)
  const audit = new MemoryAudit()
  const http = createHttpApp({
    engine: t.engine,
    auth: createAuthenticator(options.auth ?? TEST_AUTH),
    audit,
    ...options.app,
  })
  const server = await startServer(http, { host: '127.0.0.1', port: 0 })
  return {
    t,
    http,
    server,
    url: server.url,
    audit,
    async close() {
      await server.close(2000)
      await t.engine.close()
    },
  }
}

/** fetch against the server with Key Protect headers. */
export async function kp(
  s: TestServer,
  method: string,
  path: string,
  o: {
    token?: string | null
    instance?: string | null
    body?: unknown
    raw?: string
    headers?: Record<string, string>
  } = {},
): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const headers: Record<string, string> = { ...o.headers }
  if (o.token !== null) headers['authorization'] = `Bearer ${o.token ?? ADMIN_KEY}`
  if (o.instance !== null) headers['bluemix-instance'] = o.instance ?? INSTANCE_A
  let body: string | undefined
  if (o.raw !== undefined) body = o.raw
  else if (o.body !== undefined) {
    body = JSON.stringify(o.body)
    headers['content-type'] ??= 'application/json'
  }
  const res = await fetch(`${s.url}/api/v2${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
  })
  return readResponse(res)
}

/** A response's status, headers, text and JSON body (undefined when empty or not JSON). */
export async function readResponse(
  res: Response,
): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const text = await res.text()
  let json: unknown
  try {
    json = text.length > 0 ? JSON.parse(text) : undefined
  } catch {
    json = undefined
  }
  return { status: res.status, headers: res.headers, json, text }
}

/** The first reason code of a Key Protect error body. */
export function reasonCode(json: any): string | undefined {
  return json?.resources?.[0]?.reasons?.[0]?.code
}
