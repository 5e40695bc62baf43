/**
 * Untrusted request bodies (issue #12, findings 1 and 4): both listeners refuse an unauthenticated or
 * oversized upload without buffering it, and the AWS listener refuses requests whose SignedHeaders leave
 * out `x-amz-target` or `content-type` (a captured request replayed under another operation).
 *
 * The servers run in this process, so `process.memoryUsage().rss` around a request measures what the
 * server kept; the client streams its upload by reusing one 64 KiB chunk, so it holds next to nothing.
 * All traffic is on 127.0.0.1.
 */
import { createHash } from 'node:crypto'
import { request } from 'node:http'
import { HttpRequest } from '@smithy/protocol-http'
import { SignatureV4 } from '@smithy/signature-v4'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NodeSha256 } from '../../../src/http/awskms/sigv4.js'
import { signedFetch, startEndpoint, TENANT_A, type RunningEndpoint } from '../../helpers/aws-kms.js'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'
import { ADMIN_KEY, INSTANCE_A, startTestServer, type TestServer } from '../../helpers/http.js'

const CHUNK = Buffer.alloc(64 * 1024, 0x61) // 'a'
const UPLOAD_BYTES = 64 * 1024 * 1024
const RSS_BUDGET = 8 * 1024 * 1024

interface Upload {
  status: number
  json: Record<string, unknown> | undefined
  /** Bytes the client had handed to the socket when the answer arrived (or the upload ended). */
  sent: number
  ms: number
  rssGrowth: number
}

/** The upload body: one reused chunk, `UPLOAD_BYTES` in all (bounded loop). */
function* chunks(): Generator<Buffer> {
  for (let n = 0; n < UPLOAD_BYTES / CHUNK.length; n++) yield CHUNK
}

/** SHA-256 of the whole upload, computed chunk by chunk. */
function uploadSha256(): string {
  const h = createHash('sha256')
  for (const c of chunks()) h.update(c)
  return h.digest('hex')
}

/**
 * POSTs the 64 MiB upload as a chunked stream (no Content-Length) and stops sending as soon as an answer
 * arrives. Measures the RSS growth of this process (server included) from before the request to the answer.
 */
async function chunkedUpload(url: string, path: string, headers: Record<string, string>): Promise<Upload> {
  const u = new URL(url)
  globalThis.gc?.()
  const rss0 = process.memoryUsage().rss
  let peak = rss0
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 5)
  const t0 = Date.now()
  let sent = 0
  try {
    return await new Promise<Upload>((resolve, reject) => {
      let answered = false
      const req = request({
        host: '127.0.0.1',
        port: Number(u.port),
        path,
        method: 'POST',
        headers: { ...headers, 'transfer-encoding': 'chunked' },
      })
      req.on('response', (res) => {
        answered = true
        const sentAtAnswer = sent
        const ms = Date.now() - t0
        const parts: Buffer[] = []
        res.on('data', (d: Buffer) => parts.push(d))
        res.on('end', () => {
          peak = Math.max(peak, process.memoryUsage().rss)
          const text = Buffer.concat(parts).toString('utf8')
          let json: Record<string, unknown> | undefined
          try {
            json = JSON.parse(text) as Record<string, unknown>
          } catch {
            json = undefined
          }
          resolve({ status: res.statusCode ?? 0, json, sent: sentAtAnswer, ms, rssGrowth: peak - rss0 })
          req.destroy()
        })
      })
      req.on('error', (err) => {
        // The server may close the connection after answering: only an error before the answer counts.
        if (!answered) reject(err)
      })
      void (async () => {
        for (const c of chunks()) {
          if (answered || req.destroyed) return
          sent += c.length
          if (!req.write(c)) {
            await new Promise<void>((r) => {
              const done = (): void => {
                req.off('drain', done)
                req.off('close', done)
                r()
              }
              req.once('drain', done)
              req.once('close', done)
            })
          }
        }
        if (!answered && !req.destroyed) req.end()
      })()
    })
  } finally {
    clearInterval(sampler)
  }
}

/** SigV4 headers for a POST / to the AWS endpoint, signed like the SDK signs (optionally leaving some out). */
async function signHeaders(
  ep: { url: string; region: string },
  target: string,
  body: string,
  o: { extra?: Record<string, string>; unsigned?: string[]; accessKeyId?: string } = {},
): Promise<Record<string, string>> {
  const url = new URL(ep.url)
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: o.accessKeyId ?? TENANT_A.accessKeyId,
      secretAccessKey: TENANT_A.secretAccessKey,
    },
    region: ep.region,
    service: 'kms',
    sha256: NodeSha256,
  })
  const req = await signer.sign(
    new HttpRequest({
      method: 'POST',
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: '/',
      headers: {
        host: url.host,
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': target,
        ...o.extra,
      },
      body,
    }),
    o.unsigned === undefined ? {} : { unsignableHeaders: new Set(o.unsigned) },
  )
  return req.headers
}

describe('AWS-KMS-compatible listener: untrusted bodies', () => {
  let t: TestEngine
  let ep: RunningEndpoint

  beforeAll(async () => {
    t = await openTestEngine({ engine: { lifecycle: { enableCooldownMs: 0, minRotationIntervalMs: 0 } } })
    ep = await startEndpoint(t.engine)
  })
  afterAll(async () => {
    await ep.close()
    await t.engine.close()
  })

  it('refuses a chunked 64 MiB POST without Authorization before reading it', async () => {
    const r = await chunkedUpload(ep.url, '/', {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': 'TrentService.ListKeys',
    })
    expect(r.status).toBe(400)
    expect(r.json?.['__type']).toBe('MissingAuthenticationTokenException')
    expect(r.sent).toBeLessThan(UPLOAD_BYTES / 2)
    expect(r.rssGrowth).toBeLessThan(RSS_BUDGET)
  })

  it('refuses a chunked 64 MiB POST signed with an unknown access key before reading it', async () => {
    const headers = await signHeaders(ep, 'TrentService.ListKeys', '{}', {
      accessKeyId: 'AKIAUNKNOWN000000000',
    })
    const r = await chunkedUpload(ep.url, '/', headers)
    expect(r.status).toBe(400)
    expect(r.json?.['__type']).toBe('UnrecognizedClientException')
    expect(r.sent).toBeLessThan(UPLOAD_BYTES / 2)
    expect(r.rssGrowth).toBeLessThan(RSS_BUDGET)
  })

  it('refuses a malformed Authorization before reading the body', async () => {
    const r = await chunkedUpload(ep.url, '/', {
      authorization: 'AWS4-HMAC-SHA256 garbage',
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': 'TrentService.ListKeys',
    })
    expect(r.status).toBe(400)
    expect(r.json?.['__type']).toBe('IncompleteSignatureException')
    expect(r.rssGrowth).toBeLessThan(RSS_BUDGET)
  })

  it('answers 413 to a validly signed chunked 64 MiB POST without buffering past the cap', async () => {
    // Signed over the real payload hash (x-amz-content-sha256, computed chunk by chunk).
    const headers = await signHeaders(ep, 'TrentService.ListKeys', '', {
      extra: { 'x-amz-content-sha256': uploadSha256() },
    })
    const r = await chunkedUpload(ep.url, '/', headers)
    expect(r.status).toBe(413)
    expect(r.json?.['__type']).toBe('RequestEntityTooLargeException')
    expect(r.sent).toBeLessThan(UPLOAD_BYTES / 2)
    expect(r.rssGrowth).toBeLessThan(RSS_BUDGET)
  })

  it('refuses a signed request whose SignedHeaders omit x-amz-target (no replay under another operation)', async () => {
    const created = await signedFetch(ep, 'TrentService.CreateKey', '{}')
    expect(created.status).toBe(200)
    const keyId = (created.json['KeyMetadata'] as { KeyId: string }).KeyId
    const body = JSON.stringify({ KeyId: keyId })
    // A DescribeKey signed without x-amz-target, replayed as ScheduleKeyDeletion with the same signature.
    const headers = await signHeaders(ep, 'TrentService.DescribeKey', body, { unsigned: ['x-amz-target'] })
    expect(headers['authorization']).not.toContain('x-amz-target')
    const before = ep.served.get('ScheduleKeyDeletion') ?? 0
    const res = await fetch(ep.url, {
      method: 'POST',
      headers: { ...headers, 'x-amz-target': 'TrentService.ScheduleKeyDeletion' },
      body,
    })
    const json = (await res.json()) as Record<string, unknown>
    expect(res.status).toBe(400)
    expect(json['__type']).toBe('InvalidSignatureException')
    expect(String(json['message'])).toContain('x-amz-target')
    expect(ep.served.get('ScheduleKeyDeletion') ?? 0).toBe(before)
    const described = await signedFetch(ep, 'TrentService.DescribeKey', body)
    expect((described.json['KeyMetadata'] as { KeyState: string }).KeyState).toBe('Enabled')
  })

  it('refuses a signed request whose SignedHeaders omit content-type', async () => {
    const headers = await signHeaders(ep, 'TrentService.ListKeys', '{}', { unsigned: ['content-type'] })
    const res = await fetch(ep.url, { method: 'POST', headers, body: '{}' })
    const json = (await res.json()) as Record<string, unknown>
    expect(res.status).toBe(400)
    expect(json['__type']).toBe('InvalidSignatureException')
    expect(String(json['message'])).toContain('content-type')
  })

  it('refuses a body whose x-amz-content-sha256 does not match it', async () => {
    const headers = await signHeaders(ep, 'TrentService.ListKeys', '{}', {
      extra: { 'x-amz-content-sha256': createHash('sha256').update('{}').digest('hex') },
    })
    const ok = await fetch(ep.url, { method: 'POST', headers, body: '{}' })
    expect(ok.status).toBe(200)
    const res = await fetch(ep.url, { method: 'POST', headers, body: '{"Limit":1}' })
    const json = (await res.json()) as Record<string, unknown>
    expect(res.status).toBe(400)
    expect(json['__type']).toBe('InvalidSignatureException')
  })
})

describe('AWS-KMS-compatible listener: in-flight body budget', () => {
  let t: TestEngine
  let ep: RunningEndpoint

  beforeAll(async () => {
    t = await openTestEngine()
    // Room for one body of the cap at a time.
    ep = await startEndpoint(t.engine, 'us-east-1', {
      maxBodyBytes: 64 * 1024,
      maxInFlightBodyBytes: 64 * 1024,
    })
  })
  afterAll(async () => {
    await ep.close()
    await t.engine.close()
  })

  it('answers ThrottlingException while the budget is taken, and serves again once it is free', async () => {
    const headers = await signHeaders(ep, 'TrentService.ListKeys', '{}')
    // A signed upload that sends a little and then stalls holds the whole budget.
    const u = new URL(ep.url)
    const slow = request({
      host: '127.0.0.1',
      port: Number(u.port),
      path: '/',
      method: 'POST',
      headers: { ...headers, 'transfer-encoding': 'chunked' },
    })
    slow.on('error', () => undefined)
    slow.write('{')
    await new Promise((r) => setTimeout(r, 100))
    const busy = await signedFetch(ep, 'TrentService.ListKeys', '{}')
    expect(busy.status).toBe(400)
    expect(busy.json['__type']).toBe('ThrottlingException')
    slow.end('}')
    await new Promise((r) => slow.once('response', r))
    const again = await signedFetch(ep, 'TrentService.ListKeys', '{}')
    expect(again.status).toBe(200)
  })
})

describe('Key Protect listener: untrusted bodies', () => {
  let s: TestServer

  beforeAll(async () => {
    s = await startTestServer()
  })
  afterAll(async () => {
    await s.close()
  })

  it('refuses a chunked 64 MiB POST without Authorization before reading it', async () => {
    const r = await chunkedUpload(s.url, '/api/v2/keys', {
      'content-type': 'application/vnd.ibm.kms.key+json',
      'bluemix-instance': INSTANCE_A,
    })
    expect(r.status).toBe(401)
    expect(r.sent).toBeLessThan(UPLOAD_BYTES / 2)
    expect(r.rssGrowth).toBeLessThan(RSS_BUDGET)
  })

  it('answers 413 to an authenticated chunked 64 MiB POST without buffering past the cap', async () => {
    const r = await chunkedUpload(s.url, '/api/v2/keys', {
      authorization: `Bearer ${ADMIN_KEY}`,
      'content-type': 'application/vnd.ibm.kms.key+json',
      'bluemix-instance': INSTANCE_A,
    })
    expect(r.status).toBe(413)
    expect(r.sent).toBeLessThan(UPLOAD_BYTES / 2)
    expect(r.rssGrowth).toBeLessThan(RSS_BUDGET)
  })
})
