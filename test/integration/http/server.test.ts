/**
 * The server itself: TLS, plain HTTP refused off loopback, graceful shutdown that drains in-flight
 * requests, `envelope-kms serve` as a real process (dev API key, SIGTERM), and automatic rotation from a
 * rotation policy set over HTTP.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { CreateKeyCommand, DecryptCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms'
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
        EKMS_AWSKMS_REGION: 'eu-west-3',
        EKMS_AUDIT_LOG: join(env('EKMS_TEST_FILE_DIR'), 'audit.log'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
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
        expect(Buffer.from(dec.Plaintext ?? new Uint8Array()).toString()).toBe('over serve')
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
    expect(audit.map((e) => `${e.event} ${e.status}`)).toEqual([
      'kms.secrets.create 201',
      'kms.secrets.list 401',
      'kms.secrets.list 200',
    ])
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
