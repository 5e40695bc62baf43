/**
 * Test wiring for the Qlik key providers API: the default services (engine on the test token, SQLite
 * catalog, the job runner, tenant key providers) as `serve` opens them, behind a real server on 127.0.0.1,
 * and, when asked, an AWS-KMS-compatible endpoint on loopback (its own engine and catalog: the customer's
 * AWS) that the AWS KMS backend of the providers talks to.
 */
import { CreateKeyCommand, KMSClient, PutKeyPolicyCommand, ReplicateKeyCommand } from '@aws-sdk/client-kms'
import { expect } from 'vitest'
import { createEngineServicesFromConfig, type EngineServices } from '../../src/default-engine.js'
import { createHttpApp, type HttpAppOptions } from '../../src/http/app.js'
import { createAuthenticator, type AuthConfig } from '../../src/http/auth.js'
import { startServer, type RunningServer } from '../../src/http/server.js'
import type { TenantKeyProviders } from '../../src/core/tenant-keys/types.js'
import { startEndpoint, TENANT_A as AWS_TENANT, type RunningEndpoint } from './aws-kms.js'
import { openTestEngine, tempCatalogPath, type TestEngine } from './engine.js'
import { testConfig } from './tenant-keys.js'
import { INSTANCE_A, INSTANCE_B, MemoryAudit, readResponse, TEST_AUTH } from './http.js'

export const QLIK_READER_A_KEY = 'qlik-reader-a-api-key-0123456789ab'
export const TWO_TENANTS_KEY = 'two-tenants-api-key-0123456789abcd'

/** The HTTP tests' keys, plus a read-only key-provider reader of tenant A and a key for two tenants. */
export const QLIK_AUTH: AuthConfig = {
  ...TEST_AUTH,
  apiKeys: [
    ...(TEST_AUTH.apiKeys ?? []),
    {
      key: QLIK_READER_A_KEY,
      subject: 'qlik-reader',
      instances: [INSTANCE_A],
      actions: ['kms.keyproviders.read'],
    },
    { key: TWO_TENANTS_KEY, subject: 'two', instances: [INSTANCE_A, INSTANCE_B], actions: ['*'] },
  ],
}

export interface QlikTestServer {
  readonly url: string
  readonly services: EngineServices
  readonly t: { readonly engine: EngineServices['engine'] }
  readonly tenantKeys: TenantKeyProviders
  readonly audit: MemoryAudit
  /** The customer's AWS (when started with `aws`): endpoint and its engine. */
  readonly aws: { readonly endpoint: RunningEndpoint; readonly t: TestEngine } | undefined
  readonly catalogPath: string
  /** Stops the job runner (submitted jobs stay queued) / starts it again. */
  pauseJobs(): Promise<void>
  resumeJobs(): Promise<void>
  close(): Promise<void>
}

export async function startQlikServer(
  o: { app?: Partial<Omit<HttpAppOptions, 'engine' | 'auth' | 'audit' | 'tenantKeys'>>; aws?: boolean } = {},
): Promise<QlikTestServer> {
  let aws: QlikTestServer['aws']
  if (o.aws === true) {
    const t = await openTestEngine()
    // The tenants' home region and their DR region, both served by the one endpoint (SigV4 scope).
    aws = { t, endpoint: await startEndpoint(t.engine, undefined, { regions: ['eu-west-1', 'eu-west-3'] }) }
  }
  const catalogPath = tempCatalogPath()
  const services = await createEngineServicesFromConfig(
    testConfig(catalogPath, {
      awsEndpoint: aws?.endpoint.url,
      awsCredentials:
        aws === undefined
          ? undefined
          : { accessKeyId: AWS_TENANT.accessKeyId, secretAccessKey: AWS_TENANT.secretAccessKey },
    }),
    { jobs: { sweepIntervalMs: 200, pollIntervalMs: 50 } },
  )
  const audit = new MemoryAudit()
  const http = createHttpApp({
    engine: services.engine,
    tenantKeys: services.tenantKeys,
    // As `serve` runs it: the CCKM key synchronization API is mounted too.
    sync: services.sync,
    auth: createAuthenticator(QLIK_AUTH),
    audit,
    ...o.app,
  })
  let server: RunningServer
  try {
    server = await startServer(http, { host: '127.0.0.1', port: 0 })
  } catch (err) {
    await services.close()
    throw err
  }
  return {
    url: server.url,
    services,
    t: { engine: services.engine },
    tenantKeys: services.tenantKeys,
    audit,
    aws,
    catalogPath,
    pauseJobs: () => services.jobs.close(),
    resumeJobs: () => services.jobs.start(),
    async close() {
      await server.close(2000)
      await services.close()
      if (aws !== undefined) {
        await aws.endpoint.close()
        await aws.t.engine.close()
      }
    },
  }
}

/** A KMS client of the AWS endpoint signed for `region`. */
function kms(s: QlikTestServer, region: string): KMSClient {
  if (s.aws === undefined) throw new Error('the server was started without aws')
  return new KMSClient({
    region,
    endpoint: s.aws.endpoint.url,
    credentials: { accessKeyId: AWS_TENANT.accessKeyId, secretAccessKey: AWS_TENANT.secretAccessKey },
    maxAttempts: 1,
  })
}

/**
 * A symmetric key created on the AWS endpoint in `region`: multi-region with a replica in `replicaIn` when
 * asked, with `policy` (a key policy document) on the key and its replica.
 */
export async function awsKey(
  s: QlikTestServer,
  region: string,
  o: { replicaIn?: string; policy?: string } = {},
): Promise<{ arn: string; keyId: string; multiRegion: boolean; replicaArn: string | undefined }> {
  const home = kms(s, region)
  try {
    const r = await home.send(new CreateKeyCommand(o.replicaIn === undefined ? {} : { MultiRegion: true }))
    const m = r.KeyMetadata
    if (m?.Arn === undefined || m.KeyId === undefined) throw new Error('CreateKey returned no ARN')
    let replicaArn: string | undefined
    if (o.replicaIn !== undefined) {
      const rep = await home.send(new ReplicateKeyCommand({ KeyId: m.Arn, ReplicaRegion: o.replicaIn }))
      replicaArn = rep.ReplicaKeyMetadata?.Arn
    }
    if (o.policy !== undefined) {
      await home.send(new PutKeyPolicyCommand({ KeyId: m.Arn, PolicyName: 'default', Policy: o.policy }))
      if (replicaArn !== undefined && o.replicaIn !== undefined) {
        const dr = kms(s, o.replicaIn)
        try {
          await dr.send(
            new PutKeyPolicyCommand({ KeyId: replicaArn, PolicyName: 'default', Policy: o.policy }),
          )
        } finally {
          dr.destroy()
        }
      }
    }
    return { arn: m.Arn, keyId: m.KeyId, multiRegion: m.MultiRegion === true, replicaArn }
  } finally {
    home.destroy()
  }
}

/** A key policy that allows everything but denies `actions`, in `region` only when given. */
export function denyPolicy(actions: readonly string[], region?: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Sid: 'all', Effect: 'Allow', Principal: { AWS: '*' }, Action: 'kms:*', Resource: '*' },
      {
        Sid: 'deny',
        Effect: 'Deny',
        Principal: '*',
        Action: actions,
        Resource: '*',
        ...(region === undefined ? {} : { Condition: { StringEquals: { 'aws:RequestedRegion': region } } }),
      },
    ],
  })
}

/** A raw request to the Qlik API: `path` is under /api/v1/encryption/keyproviders. */
export async function q(
  s: { readonly url: string },
  method: string,
  path: string,
  o: { token?: string | null; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const headers: Record<string, string> = { ...o.headers }
  if (o.token !== null) headers['authorization'] = `Bearer ${o.token ?? ''}`
  let body: string | undefined
  if (o.raw !== undefined) body = o.raw
  else if (o.body !== undefined) body = JSON.stringify(o.body)
  if (body !== undefined) headers['content-type'] ??= 'application/json'
  const res = await fetch(`${s.url}/api/v1/encryption/keyproviders${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
  })
  return readResponse(res)
}

/** Asserts a Qlik error answer: the status, the `{errors:[{code,title,detail}]}` body, a correlation id. */
export function expectQlikError(
  r: { status: number; headers: Headers; json: any; text: string },
  status: number,
  code: string,
): void {
  expect(r.status, r.text).toBe(status)
  expect(r.headers.get('content-type')).toContain('application/json')
  expect(r.headers.get('correlation-id')).toBeTruthy()
  expect(r.json?.errors).toHaveLength(1)
  expect(r.json.errors[0]).toEqual({ code, title: expect.any(String), detail: expect.any(String) })
  expect(r.json.errors[0].title.length).toBeGreaterThan(0)
}
