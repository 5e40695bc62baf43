/**
 * Test wiring for the AWS-KMS-compatible endpoint: a real HTTP server on 127.0.0.1 (ephemeral port) in
 * front of a real engine, requests signed with the real SigV4 signer.
 */
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { HttpRequest } from '@smithy/protocol-http'
import { SignatureV4 } from '@smithy/signature-v4'
import { KMSClient } from '@aws-sdk/client-kms'
import type { EnvelopeEngine } from '../../src/index.js'
import { NodeSha256 } from '../../src/http/awskms/sigv4.js'
import { createAwsKmsApp, type AwsKmsAppOptions, type AwsKmsCredential } from '../../src/http/awskms/index.js'

export const TENANT_A: AwsKmsCredential = {
  accessKeyId: 'AKIATENANTA000000001',
  secretAccessKey: 'tenant-a-secret-key-0000000000000000000000',
  instance: 'tenant-a',
}
export const TENANT_B: AwsKmsCredential = {
  accessKeyId: 'AKIATENANTB000000002',
  secretAccessKey: 'tenant-b-secret-key-0000000000000000000000',
  instance: 'tenant-b',
  accountId: '222222222222',
}

export interface RunningEndpoint {
  readonly url: string
  /** The default region (the first served one). */
  readonly region: string
  /** Every region served, the default one first. */
  readonly regions: readonly string[]
  /** Requests that reached the operation stage, by operation name. */
  readonly served: Map<string, number>
  /** Answer ThrottlingException to the next `n` authenticated requests. */
  throttleNext(n: number): void
  close(): Promise<void>
}

/**
 * Starts the endpoint on 127.0.0.1 serving `region`, or every region of `extra.regions` (the first one the
 * default), e.g. `startEndpoint(engine, undefined, { regions: ['eu-west-1', 'eu-west-3'] })`.
 */
export async function startEndpoint(
  engine: EnvelopeEngine,
  region = 'us-east-1',
  extra: Partial<AwsKmsAppOptions> = {},
): Promise<RunningEndpoint> {
  const served = new Map<string, number>()
  let throttle = 0
  const regions = extra.regions ?? [region]
  const app = createAwsKmsApp({
    engine,
    ...(extra.regions === undefined ? { region } : {}),
    credentials: [TENANT_A, TENANT_B],
    throttle: (op) => {
      if (throttle > 0) {
        throttle--
        return true
      }
      served.set(op, (served.get(op) ?? 0) + 1)
      return false
    },
    ...extra,
  })
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s))
  })
  const port = (server.address() as AddressInfo).port
  let closed = false
  return {
    url: `http://127.0.0.1:${port}`,
    region: regions[0] ?? region,
    regions,
    served,
    throttleNext: (n) => {
      throttle = n
    },
    close: () =>
      closed
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            closed = true
            server.close((err) => (err ? reject(err) : resolve()))
            ;(server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.()
          }),
  }
}

export function sdkClient(
  ep: { url: string; region: string },
  cred: AwsKmsCredential = TENANT_A,
  extra: { maxAttempts?: number; systemClockOffset?: number; secret?: string; region?: string } = {},
): KMSClient {
  return new KMSClient({
    region: extra.region ?? ep.region,
    endpoint: ep.url,
    credentials: { accessKeyId: cred.accessKeyId, secretAccessKey: extra.secret ?? cred.secretAccessKey },
    maxAttempts: extra.maxAttempts ?? 1,
    ...(extra.systemClockOffset === undefined ? {} : { systemClockOffset: extra.systemClockOffset }),
  })
}

/** A raw request signed like the SDK signs it (for bodies the SDK would never send). */
export async function signedFetch(
  ep: { url: string; region: string },
  target: string,
  body: string,
  options: { cred?: AwsKmsCredential; contentType?: string } = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const cred = options.cred ?? TENANT_A
  const url = new URL(ep.url)
  const signer = new SignatureV4({
    credentials: { accessKeyId: cred.accessKeyId, secretAccessKey: cred.secretAccessKey },
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
        'content-type': options.contentType ?? 'application/x-amz-json-1.1',
        'x-amz-target': target,
      },
      body,
    }),
  )
  const res = await fetch(ep.url, { method: 'POST', headers: req.headers as Record<string, string>, body })
  return { status: res.status, json: (await res.json()) as Record<string, unknown> }
}
