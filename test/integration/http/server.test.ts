/**
 * The server itself: TLS, plain HTTP refused off loopback, graceful shutdown that drains in-flight
 * requests, `envelope-kms serve` as a real process (dev API key, SIGTERM), and automatic rotation from a
 * rotation policy set over HTTP.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import {
  CreateKeyCommand,
  DecryptCommand,
  EncryptCommand,
  KMSClient,
  ReplicateKeyCommand,
} from '@aws-sdk/client-kms'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRotationScheduler } from '../../../src/core/jobs/scheduler.js'
import { createHttpApp } from '../../../src/http/app.js'
import { createAuthenticator } from '../../../src/http/auth.js'
import { startServer } from '../../../src/http/server.js'
import { expectCode } from '../../helpers/expect-code.js'
import { makeSoftHsmDir } from '../../helpers/softhsm-dir.js'
import { env, tempCatalogPath } from '../../helpers/engine.js'
import { ADMIN_KEY, INSTANCE_A, kp, startTestServer, TEST_AUTH, type TestServer } from '../../helpers/http.js'

const DAY = 86_400_000
let s: TestServer
beforeAll(async () => {
  s = await startTestServer()
})
afterAll(async () => {
  await s.close()
})

describe('listening', () => {
  it('serves HTTPS with the configured certificate', async () => {
    const dir = env('EKMS_TEST_FILE_DIR')
    const cert = join(dir, 'cert.pem')
    const key = join(dir, 'key.pem')
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    )
    const app = createHttpApp({ engine: s.t.engine, auth: createAuthenticator(TEST_AUTH) })
    const tls = await startServer(app, { host: '127.0.0.1', port: 0, tls: { certFile: cert, keyFile: key } })
    try {
      expect(tls.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpsRequest(
          `${tls.url}/api/v2/key_rings`,
          {
            ca: readFileSync(cert),
            headers: { authorization: `Bearer ${ADMIN_KEY}`, 'bluemix-instance': INSTANCE_A },
          },
          (res) => {
            let b = ''
            res.on('data', (c: Buffer) => (b += c.toString()))
            res.on('end', () => resolve(`${res.statusCode} ${b}`))
          },
        )
        req.on('error', reject)
        req.end()
      })
      expect(body).toMatch(/^200 .*"id":"default"/)
    } finally {
      await tls.close()
    }
  })

  it('refuses plain HTTP on a non-loopback address unless asked, and unreadable TLS files', async () => {
    const app = createHttpApp({ engine: s.t.engine, auth: createAuthenticator(TEST_AUTH) })
    await expectCode(startServer(app, { host: '0.0.0.0', port: 0 }), 'CONFIG_INVALID')
    await expectCode(
      startServer(app, {
        host: '127.0.0.1',
        port: 0,
        tls: { certFile: '/nonexistent', keyFile: '/nonexistent' },
      }),
      'CONFIG_INVALID',
    )
    const open = await startServer(app, { host: '0.0.0.0', port: 0, allowPlaintext: true })
    await open.close()
  })

  it('graceful shutdown: an in-flight request completes, new connections are refused', async () => {
    const app = createHttpApp({ engine: s.t.engine, auth: createAuthenticator(TEST_AUTH) })
    const srv = await startServer(app, { host: '127.0.0.1', port: 0 })
    const body = JSON.stringify({ resources: [{ name: 'created-while-closing' }] })
    // Send the headers and half the body, start closing, then send the rest.
    const done = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(
        `${srv.url}/api/v2/keys`,
        {
          method: 'POST',
          headers: {
            authorization: `Bearer ${ADMIN_KEY}`,
            'bluemix-instance': INSTANCE_A,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          let t = ''
          res.on('data', (c: Buffer) => (t += c.toString()))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: t }))
        },
      )
      req.on('error', reject)
      req.write(body.slice(0, 10))
      setTimeout(() => req.end(body.slice(10)), 300)
    })
    await new Promise((r) => setTimeout(r, 100))
    expect(app.inFlight()).toBe(1)
    const closing = srv.close(5000)
    await new Promise((r) => setTimeout(r, 50))
    await expect(fetch(`${srv.url}/health`)).rejects.toThrow()
    const res = await done
    expect(res.status).toBe(201)
    expect(JSON.parse(res.text).resources[0].name).toBe('created-while-closing')
    await closing
  })
})

describe('envelope-kms serve (a real process)', () => {
  it('starts with a generated dev API key, serves Key Protect and AWS KMS, and stops cleanly on SIGTERM', async () => {
    const catalog = tempCatalogPath()
    const awsCreds = join(env('EKMS_TEST_FILE_DIR'), 'aws-credentials.json')
    const secret = 'serve-test-secret-access-key-0123456789'
    writeFileSync(
      awsCreds,
      JSON.stringify([
        { accessKeyId: 'AKIASERVETEST0000001', secretAccessKey: secret, instance: 'cli-instance' },
      ]),
      { mode: 0o600 },
    )
    const child = spawn(process.execPath, ['dist/cli/main.js', 'serve'], {
      env: {
        ...process.env,
        EKMS_PKCS11_TOKEN_LABEL: env('EKMS_TEST_TOKEN'),
        EKMS_PKCS11_PIN: env('EKMS_TEST_PIN'),
        EKMS_CATALOG: catalog,
        EKMS_HTTP_PORT: '0',
        EKMS_AWSKMS_PORT: '0',
        EKMS_AWSKMS_CREDENTIALS_FILE: awsCreds,
        EKMS_AWSKMS_REGIONS: 'eu-west-3,eu-west-1',
        EKMS_AUDIT_LOG: join(env('EKMS_TEST_FILE_DIR'), 'audit.log'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    const awsRequestIds: (string | undefined)[] = []
    const [url, awsUrl] = await new Promise<[string, string]>((resolve, reject) => {
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString()
        const m = /"url":"(http:\/\/[^"]+)","awsKmsUrl":"(http:\/\/[^"]+)"/.exec(stderr)
        if (m?.[1] !== undefined && m[2] !== undefined) resolve([m[1], m[2]])
      })
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)))
    })
    try {
      const key = readFileSync(join(catalog, '..', 'dev-api-key'), 'utf8').trim()
      expect(stderr).not.toContain(key)
      const headers = { authorization: `Bearer ${key}`, 'bluemix-instance': 'cli-instance' }
      expect((await fetch(`${url}/ready`)).status).toBe(200)
      const created = await fetch(`${url}/api/v2/keys`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ resources: [{ name: 'from-cli' }] }),
      })
      expect(created.status).toBe(201)
      expect(
        (
          await fetch(`${url}/api/v2/keys`, {
            headers: { ...headers, authorization: 'Bearer wrong-key-wrong-key' },
          })
        ).status,
      ).toBe(401)
      // The AWS SDK on the second listener: same engine, same tenant.
      const kms = new KMSClient({
        region: 'eu-west-3',
        endpoint: awsUrl,
        credentials: { accessKeyId: 'AKIASERVETEST0000001', secretAccessKey: secret },
        maxAttempts: 1,
      })
      try {
        const k = await kms.send(new CreateKeyCommand({ Description: 'from the AWS SDK' }))
        const enc = await kms.send(
          new EncryptCommand({
            KeyId: k.KeyMetadata?.KeyId,
            Plaintext: Buffer.from('over serve'),
            EncryptionContext: { a: 'b' },
          }),
        )
        const dec = await kms.send(
          new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { a: 'b' } }),
        )
        awsRequestIds.push(k.$metadata.requestId, enc.$metadata.requestId, dec.$metadata.requestId)
        expect(Buffer.from(dec.Plaintext ?? new Uint8Array()).toString()).toBe('over serve')
        // EKMS_AWSKMS_REGIONS: a multi-region key made in the second region, replicated into the default one.
        const kms1 = new KMSClient({
          region: 'eu-west-1',
          endpoint: awsUrl,
          credentials: { accessKeyId: 'AKIASERVETEST0000001', secretAccessKey: secret },
          maxAttempts: 1,
        })
        try {
          const mrk = await kms1.send(new CreateKeyCommand({ MultiRegion: true }))
          expect(mrk.KeyMetadata?.Arn).toMatch(/^arn:aws:kms:eu-west-1:\d{12}:key\/mrk-[0-9a-f]{32}$/)
          const rep = await kms1.send(
            new ReplicateKeyCommand({ KeyId: mrk.KeyMetadata?.KeyId, ReplicaRegion: 'eu-west-3' }),
          )
          const enc3 = await kms.send(
            new EncryptCommand({ KeyId: rep.ReplicaKeyMetadata?.Arn, Plaintext: Buffer.from('dr') }),
          )
          awsRequestIds.push(mrk.$metadata.requestId, rep.$metadata.requestId, enc3.$metadata.requestId)
        } finally {
          kms1.destroy()
        }
        const listed = await fetch(`${url}/api/v2/keys`, { headers })
        expect(((await listed.json()) as any).resources.map((r: any) => r.id)).toContain(k.KeyMetadata?.KeyId)
      } finally {
        kms.destroy()
      }
    } finally {
      child.kill('SIGTERM')
    }
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
    expect(code).toBe(0)
    expect(stderr).toContain('"msg":"stopped"')
    const audit = readFileSync(join(env('EKMS_TEST_FILE_DIR'), 'audit.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    // Both listeners write to the one audit log (issue 12, point 6).
    expect(audit.map((e) => `${e.api} ${e.event} ${e.status}`)).toEqual([
      'keyprotect kms.secrets.create 201',
      'keyprotect kms.secrets.list 401',
      'aws-kms aws-kms.CreateKey 200',
      'aws-kms aws-kms.Encrypt 200',
      'aws-kms aws-kms.Decrypt 200',
      'aws-kms aws-kms.CreateKey 200',
      'aws-kms aws-kms.ReplicateKey 200',
      'aws-kms aws-kms.Encrypt 200',
      'keyprotect kms.secrets.list 200',
    ])
    const awsEvents = audit.filter((e) => e.api === 'aws-kms')
    expect(awsEvents.map((e) => e.correlationId)).toEqual(awsRequestIds)
    for (const e of awsEvents) {
      expect(e).toMatchObject({
        subject: 'AKIASERVETEST0000001',
        instance: 'cli-instance',
        outcome: 'success',
      })
      expect(e.keyId).toMatch(/^[0-9a-f-]{36}$/)
    }
  })
})

/** `envelope-kms serve` as a real process, on the test token, with `extra` in its environment. */
function spawnServe(catalog: string, extra: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['dist/cli/main.js', 'serve'], {
    env: {
      ...process.env,
      EKMS_PKCS11_TOKEN_LABEL: env('EKMS_TEST_TOKEN'),
      EKMS_PKCS11_PIN: env('EKMS_TEST_PIN'),
      EKMS_CATALOG: catalog,
      EKMS_HTTP_PORT: '0',
      ...extra,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

/** A served process that listens: its URL, what it wrote to stderr so far, and a SIGTERM stop. */
interface Served {
  readonly child: ChildProcess
  readonly url: string
  stderr(): string
  stop(): Promise<void>
}

async function startServe(catalog: string, extra: Record<string, string> = {}): Promise<Served> {
  const child = spawnServe(catalog, extra)
  let stderr = ''
  let exited = false
  child.on('exit', () => (exited = true))
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString()
      const m = /"url":"(http:\/\/[^"]+)"/.exec(stderr)
      if (m?.[1] !== undefined) resolve(m[1])
    })
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)))
  })
  return {
    child,
    url,
    stderr: () => stderr,
    stop: async () => {
      if (exited) return
      child.kill('SIGTERM')
      await new Promise((resolve) => child.on('exit', resolve))
    },
  }
}

describe('serve and the development API key', () => {
  const auditLog = { EKMS_AUDIT_LOG: join(env('EKMS_TEST_FILE_DIR'), 'audit-devkey.log') }

  it("a serve that fails to start (port taken) leaves the running server's dev API key file untouched", async () => {
    const catalog = tempCatalogPath()
    const first = await startServe(catalog, auditLog)
    try {
      const keyFile = join(catalog, '..', 'dev-api-key')
      const key = readFileSync(keyFile, 'utf8')
      const second = spawnServe(catalog, { ...auditLog, EKMS_HTTP_PORT: new URL(first.url).port })
      let err2 = ''
      second.stderr?.on('data', (c: Buffer) => (err2 += c.toString()))
      const code = await new Promise<number | null>((resolve) => second.on('exit', resolve))
      expect(code).toBe(1)
      expect(err2).toMatch(/cannot listen/)
      expect(readFileSync(keyFile, 'utf8')).toBe(key)
      const res = await fetch(`${first.url}/api/v2/keys`, {
        headers: { authorization: `Bearer ${key.trim()}`, 'bluemix-instance': 'dev-key-instance' },
      })
      expect(res.status).toBe(200)
    } finally {
      await first.stop()
    }
  })

  it('a second serve on the same catalog reuses the existing dev API key', async () => {
    const catalog = tempCatalogPath()
    const keyFile = join(catalog, '..', 'dev-api-key')
    const keys: string[] = []
    for (let i = 0; i < 2; i++) {
      const served = await startServe(catalog, auditLog)
      try {
        const key = readFileSync(keyFile, 'utf8').trim()
        keys.push(key)
        const res = await fetch(`${served.url}/api/v2/keys`, {
          headers: { authorization: `Bearer ${key}`, 'bluemix-instance': 'dev-key-instance' },
        })
        expect(res.status).toBe(200)
        expect(served.stderr()).not.toContain(key)
      } finally {
        await served.stop()
      }
    }
    expect(keys[1]).toBe(keys[0])
  })
})

describe('serve and signals', () => {
  it('SIGHUP reopens the audit log (rotation): the server keeps running and new lines go to the new file', async () => {
    const catalog = tempCatalogPath()
    const auditLog = join(env('EKMS_TEST_FILE_DIR'), 'rotate', 'audit.log')
    const served = await startServe(catalog, { EKMS_AUDIT_LOG: auditLog })
    const { child, url } = served
    let exited: number | null | undefined
    child.on('exit', (code) => (exited = code))
    const key = readFileSync(join(catalog, '..', 'dev-api-key'), 'utf8').trim()
    const list = (instance: string): Promise<Response> =>
      fetch(`${url}/api/v2/keys`, {
        headers: { authorization: `Bearer ${key}`, 'bluemix-instance': instance },
      })
    try {
      expect((await list('before-rotation')).status).toBe(200)
      await new Promise((r) => setTimeout(r, 400)) // the audit buffer is written every 200 ms
      renameSync(auditLog, `${auditLog}.1`)
      child.kill('SIGHUP')
      for (let i = 0; i < 50 && !served.stderr().includes('audit log reopened'); i++)
        await new Promise((r) => setTimeout(r, 20))
      expect(served.stderr()).toContain('audit log reopened')
      expect(exited).toBeUndefined()
      expect((await list('after-rotation')).status).toBe(200)
    } finally {
      await served.stop()
    }
    const lines = (f: string): string[] =>
      readFileSync(f, 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { instance: string }).instance)
    expect(lines(`${auditLog}.1`)).toEqual(['before-rotation'])
    expect(lines(auditLog)).toEqual(['after-rotation'])
  })
})

describe('serve and a stalled audit reader (issue 12, point 8)', () => {
  /**
   * `serve` with its audit log on stdout, a pipe this test does not read (a readable stream without a
   * reader stops reading once its buffer is full): unauthenticated requests (each one audited, with a long
   * instance name for long lines) until the pipe, the stream's buffer and the audit buffer are full.
   */
  async function stall(whenFull: 'reject' | 'drop'): Promise<void> {
    const served = await startServe(tempCatalogPath(), {
      EKMS_AUDIT_LOG: '-',
      EKMS_AUDIT_BUFFER_BYTES: '65536',
      EKMS_AUDIT_WHEN_FULL: whenFull,
    })
    const { child, url } = served
    const stdout = child.stdout
    if (stdout === null) throw new Error('no stdout pipe')
    const call = (i: number): Promise<Response> =>
      fetch(`${url}/api/v2/keys`, {
        headers: {
          authorization: 'Bearer not-a-key-not-a-key',
          'correlation-id': `c${i}-${'x'.repeat(120)}`,
        },
        signal: AbortSignal.timeout(3000),
      })
    try {
      let refused: Response | undefined
      let sent = 0
      // About 400 bytes a line: the 64 KiB pipe, the stream's buffer and twice the 64 KiB bound are ~1,000.
      while (sent < 1600 && refused === undefined) {
        const batch = await Promise.all(Array.from({ length: 20 }, (_, j) => call(sent + j)))
        sent += batch.length
        for (const r of batch) {
          expect([401, 503]).toContain(r.status)
          if (r.status === 503 && refused === undefined) refused = r
          else await r.body?.cancel()
        }
        if (whenFull === 'drop' && served.stderr().includes('audit output stalled')) break
      }
      // The event loop never waits for the audit output: /health answers at once.
      const t0 = Date.now()
      const health = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })
      expect(health.status).toBe(200)
      expect(Date.now() - t0).toBeLessThan(1000)
      expect(served.stderr()).toContain('audit output stalled: buffer full')
      const warning = served
        .stderr()
        .split('\n')
        .find((l) => l.includes('audit output stalled'))
      const counters = JSON.parse(warning ?? '{}') as { refused: number; dropped: number; full: boolean }
      expect(counters.full).toBe(true)
      if (whenFull === 'reject') {
        // Fail closed: a request that cannot be audited does not run.
        expect(refused?.status).toBe(503)
        expect(refused?.headers.get('retry-after')).toBe('1')
        const body = (await refused?.json()) as { resources: { reasons: { code: string }[] }[] }
        expect(body.resources[0]?.reasons[0]?.code).toBe('SERVICE_UNAVAILABLE_ERR')
        expect(counters.refused).toBeGreaterThan(0)
      } else {
        expect(refused).toBeUndefined()
        expect(counters.dropped).toBeGreaterThan(0)
      }
      // A reader again: the buffer drains and requests run (and are audited) as before.
      let lines = ''
      stdout.on('data', (c: Buffer) => (lines += c.toString()))
      for (let i = 0; i < 100 && !served.stderr().includes('audit output resumed'); i++)
        await new Promise((r) => setTimeout(r, 50))
      expect(served.stderr()).toContain('audit output resumed')
      const after = await call(99_999)
      expect(after.status).toBe(401)
      for (let i = 0; i < 40 && !lines.includes('"c99999-'); i++) await new Promise((r) => setTimeout(r, 50))
      expect(lines).toContain('"c99999-')
    } finally {
      child.stdout?.resume()
      await served.stop()
    }
    expect(served.child.exitCode).toBe(0)
  }

  it('policy reject (default): /health answers, requests get 503 SERVICE_UNAVAILABLE_ERR while the buffer is full, then run again', async () => {
    await stall('reject')
  })

  it('policy drop: /health answers, requests run, dropped lines are counted in the warning on stderr', async () => {
    await stall('drop')
  })
})

describe('automatic rotation', () => {
  it('a rotation policy set over HTTP rotates the key when due, with one catch-up after downtime', async () => {
    const key = (await kp(s, 'POST', '/keys', { body: { resources: [{ name: 'auto-rotated' }] } })).json
      .resources[0]
    const put = await kp(s, 'PUT', `/keys/${key.id}/policies?policy=rotation`, {
      body: {
        resources: [
          { type: 'application/vnd.ibm.kms.policy+json', rotation: { enabled: true, interval_month: 1 } },
        ],
      },
    })
    expect(put.status).toBe(200)
    const passes: string[][] = []
    const sched = startRotationScheduler(s.t.engine, {
      intervalMs: 3_600_000,
      onPass: (r) => passes.push(r.rotated),
    })
    try {
      await sched.runNow()
      expect(passes.flat()).not.toContain(key.id)
      s.t.clock.advance(75 * DAY) // "down" for two and a half intervals
      await sched.runNow()
      expect(passes.flat().filter((id) => id === key.id)).toHaveLength(1)
      const versions = await kp(s, 'GET', `/keys/${key.id}/versions`)
      expect(versions.json.metadata.collectionTotal).toBe(2)
      const meta = await kp(s, 'GET', `/keys/${key.id}/metadata`)
      expect(meta.json.resources[0].lastRotateDate).toBeDefined()
    } finally {
      await sched.stop()
    }
  })
})

describe('serve and a short loss of the token storage', () => {
  it("while SoftHSM2's token directory is away, createKey and wraps answer 503 PROVIDER_UNAVAILABLE (AWS: DependencyTimeoutException) and /ready 503; once it is back, they work again without a restart", async () => {
    // A token directory of its own: the outage must not touch the token the rest of this file uses.
    const dir = join(env('EKMS_TEST_FILE_DIR'), 'token-loss')
    const conf = makeSoftHsmDir(dir, [env('EKMS_TEST_TOKEN')], env('EKMS_TEST_SO_PIN'), env('EKMS_TEST_PIN'))
    const tokens = join(dir, 'tokens')
    const catalog = tempCatalogPath()
    const awsCreds = join(dir, 'aws-credentials.json')
    const secret = 'token-loss-secret-access-key-0123456789'
    writeFileSync(
      awsCreds,
      JSON.stringify([{ accessKeyId: 'AKIATOKENLOSS0000001', secretAccessKey: secret, instance: 'loss' }]),
      { mode: 0o600 },
    )
    const served = await startServe(catalog, {
      SOFTHSM2_CONF: conf,
      EKMS_AUDIT_LOG: join(dir, 'audit.log'),
      EKMS_AWSKMS_PORT: '0',
      EKMS_AWSKMS_CREDENTIALS_FILE: awsCreds,
      EKMS_AWSKMS_REGION: 'eu-west-3',
    })
    const awsUrl = /"awsKmsUrl":"(http:\/\/[^"]+)"/.exec(served.stderr())?.[1]
    expect(awsUrl).toBeDefined()
    const kms = new KMSClient({
      region: 'eu-west-3',
      endpoint: awsUrl as string,
      credentials: { accessKeyId: 'AKIATOKENLOSS0000001', secretAccessKey: secret },
      maxAttempts: 1,
    })
    const apiKey = readFileSync(join(catalog, '..', 'dev-api-key'), 'utf8').trim()
    const call = async (
      method: string,
      path: string,
      body?: unknown,
    ): Promise<{ status: number; headers: Headers; json: any }> => {
      const res = await fetch(`${served.url}/api/v2${path}`, {
        method,
        headers: {
          authorization: `Bearer ${apiKey}`,
          'bluemix-instance': 'loss',
          'content-type': 'application/json',
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      const text = await res.text()
      return {
        status: res.status,
        headers: res.headers,
        json: text.length > 0 ? JSON.parse(text) : undefined,
      }
    }
    const createKey = (name: string): ReturnType<typeof call> =>
      call('POST', '/keys', { resources: [{ name }] })
    const wrap = (id: string): ReturnType<typeof call> => call('POST', `/keys/${id}/actions/wrap`, {})
    const ready = async (): Promise<{ status: number; json: any }> => {
      const res = await fetch(`${served.url}/ready`)
      return { status: res.status, json: await res.json() }
    }
    try {
      const used = (await createKey('used-before')).json.resources[0].id as string
      const wrapped = await wrap(used) // this key now has a session copy
      expect(wrapped.status).toBe(200)
      const untouched = await createKey('no-session-copy-yet')
      expect(untouched.status).toBe(201)
      const fresh = untouched.json.resources[0].id as string
      expect((await ready()).status).toBe(200)

      renameSync(tokens, `${tokens}.away`)
      let movedBack = false
      try {
        const created = await createKey('during-the-outage')
        expect(created.status).toBe(503)
        expect(created.json.resources[0].reasons[0].code).toBe('PROVIDER_UNAVAILABLE')
        expect(created.headers.get('retry-after')).toBe('1')
        const w = await wrap(fresh)
        expect(w.status).toBe(503)
        expect(w.json.resources[0].reasons[0].code).toBe('PROVIDER_UNAVAILABLE')
        const err: unknown = await kms
          .send(new CreateKeyCommand({ Description: 'during the outage' }))
          .catch((e: unknown) => e)
        expect(err).toMatchObject({ name: 'DependencyTimeoutException', $metadata: { httpStatusCode: 503 } })
        await new Promise((r) => setTimeout(r, 1100)) // past the probe's cache
        const r = await ready()
        expect(r.status).toBe(503)
        expect(r.json).toMatchObject({ status: 'unavailable', code: 'PROVIDER_UNAVAILABLE', store: 'ok' })
        expect((await fetch(`${served.url}/health`)).status).toBe(200)
        renameSync(`${tokens}.away`, tokens)
        movedBack = true
      } finally {
        if (!movedBack) renameSync(`${tokens}.away`, tokens)
      }

      // Back: the same process recovers within a bounded time, without a restart.
      const deadline = Date.now() + 15_000
      let state = ''
      for (;;) {
        const [r, c, w1, w2] = [
          await ready(),
          await createKey('after-the-outage'),
          await wrap(fresh),
          await wrap(used),
        ]
        state = `${r.status} ${c.status} ${w1.status} ${w2.status}`
        if (state === '200 201 200 200') break
        if (Date.now() > deadline) break
        await new Promise((res) => setTimeout(res, 250))
      }
      expect(state).toBe('200 201 200 200')
      const unwrapped = await call('POST', `/keys/${used}/actions/unwrap`, {
        ciphertext: wrapped.json.ciphertext,
      })
      expect(unwrapped.status).toBe(200)
      expect(unwrapped.json.plaintext).toBe(wrapped.json.plaintext)
      const k = await kms.send(new CreateKeyCommand({ Description: 'after the outage' }))
      expect(k.KeyMetadata?.KeyId).toBeDefined()
      expect(served.child.exitCode).toBeNull()
    } finally {
      kms.destroy()
      await served.stop()
    }
  }, 60_000)
})
