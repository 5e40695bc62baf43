/**
 * A client that disconnects in the middle of its body (issue #12, finding 7) is a client abort, not a
 * server failure: recorded as 499 (nginx's "client closed request") in the audit and the request log, never
 * as a 5xx, and no server-error hook runs. Both listeners; all traffic on 127.0.0.1.
 */
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEndpoint, TENANT_A, type RunningEndpoint } from '../../helpers/aws-kms.js'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'
import { ADMIN_KEY, INSTANCE_A, startTestServer, type TestServer } from '../../helpers/http.js'

/** Sends `head` and the first bytes of a body that declares 4,096 bytes, then destroys the socket. */
async function abortMidBody(url: string, head: string): Promise<void> {
  const u = new URL(url)
  await new Promise<void>((resolve, reject) => {
    const sock = connect(Number(u.port), '127.0.0.1', () => {
      sock.write(`${head}content-length: 4096\r\n\r\n{"resources":[`)
      setTimeout(() => {
        sock.destroy()
        resolve()
      }, 50)
    })
    sock.on('error', reject)
  })
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 10))
}

describe('a client that leaves mid-body', () => {
  let kp: TestServer
  const serverErrors: unknown[] = []
  beforeAll(async () => {
    kp = await startTestServer({ app: { onServerError: (err) => serverErrors.push(err) } })
  })
  afterAll(async () => {
    await kp.close()
  })

  it('Key Protect: audited as 499 CLIENT_CLOSED_REQUEST, not 500, and no server error is reported', async () => {
    const before = kp.audit.events.length
    await abortMidBody(
      kp.url,
      `POST /api/v2/keys HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${ADMIN_KEY}\r\n` +
        `bluemix-instance: ${INSTANCE_A}\r\ncontent-type: application/vnd.ibm.kms.key+json\r\n`,
    )
    await until(() => kp.audit.events.length > before)
    const e = kp.audit.events.at(-1)
    expect(e).toMatchObject({ status: 499, reason: 'CLIENT_CLOSED_REQUEST', outcome: 'failure' })
    expect(serverErrors).toEqual([])
  })

  describe('AWS-KMS-compatible listener', () => {
    let t: TestEngine
    let ep: RunningEndpoint
    const lines: { level: string; obj: Record<string, unknown> }[] = []
    const logger = {
      info: (obj: Record<string, unknown>) => lines.push({ level: 'info', obj }),
      warn: (obj: Record<string, unknown>) => lines.push({ level: 'warn', obj }),
      error: (obj: Record<string, unknown>) => lines.push({ level: 'error', obj }),
    }
    beforeAll(async () => {
      t = await openTestEngine()
      ep = await startEndpoint(t.engine, 'us-east-1', { logger: logger as never })
    })
    afterAll(async () => {
      await ep.close()
      await t.engine.close()
    })

    it('logged as 499, not as a failed request with a 5xx', async () => {
      // Well-formed SigV4 header fields with a known access key: the body is then read (and cut short).
      const date = new Date()
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d{3}/, '')
      const scope = `${date.slice(0, 8)}/us-east-1/kms/aws4_request`
      await abortMidBody(
        ep.url,
        `POST / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-amz-date: ${date}\r\n` +
          `x-amz-target: TrentService.CreateKey\r\ncontent-type: application/x-amz-json-1.1\r\n` +
          `authorization: AWS4-HMAC-SHA256 Credential=${TENANT_A.accessKeyId}/${scope}, ` +
          `SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=${'0'.repeat(64)}\r\n`,
      )
      await until(() => lines.some((l) => l.obj['status'] !== undefined))
      const done = lines.find((l) => l.obj['status'] !== undefined)
      expect(done?.obj).toMatchObject({ status: 499 })
      expect(lines.filter((l) => l.level === 'error')).toEqual([])
    })
  })
})
