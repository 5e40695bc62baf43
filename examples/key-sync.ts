/**
 * Key synchronization (the CipherTrust CCKM model): connect a tenant to an AWS KMS account, run a
 * synchronization job over the CCKM HTTP API, and wrap / unwrap with a discovered key through the engine.
 * The "AWS account" here is this engine's own AWS-KMS-compatible endpoint on loopback (keys made with the
 * official AWS SDK); point `endpoint` at nothing (AWS itself) in production.
 *
 *   npx tsx examples/key-sync.ts     (after `npm run setup`; uses the project token and its catalog)
 */
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { serve } from '@hono/node-server'
import { CreateAliasCommand, CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms'
import { createEngineServicesFromConfig, SecretBytes } from '../src/index.js'
import { createAwsKmsApp } from '../src/http/awskms/index.js'
import { createAuthenticator, createHttpApp, startServer } from '../src/http/index.js'
import { printer, runIfMain } from './support.js'

const TENANT = 'example-sync-tenant'
const REGION = 'eu-central-1'

export async function main(): Promise<string[]> {
  const { out, log } = printer()
  const services = await createEngineServicesFromConfig()
  // The stand-in AWS account: the engine's AWS-KMS-compatible endpoint, in an instance of its own.
  const aws = { accessKeyId: 'AKIAEXAMPLESYNC00001', secretAccessKey: randomBytes(30).toString('base64url') }
  const kmsApp = createAwsKmsApp({
    engine: services.engine,
    region: REGION,
    credentials: [{ ...aws, instance: 'example-aws-account' }],
  })
  const kmsServer = await new Promise<ReturnType<typeof serve>>((res) => {
    const s = serve({ fetch: kmsApp.fetch, hostname: '127.0.0.1', port: 0 }, () => res(s))
  })
  const endpoint = `http://127.0.0.1:${(kmsServer.address() as AddressInfo).port}`
  const kms = new KMSClient({ region: REGION, endpoint, credentials: aws })
  // The CCKM API of the engine, for a token of the tenant.
  const token = randomBytes(24).toString('base64url')
  const http = createHttpApp({
    engine: services.engine,
    sync: services.sync,
    auth: createAuthenticator({
      apiKeys: [{ key: token, subject: 'ops', instances: [TENANT], actions: ['kms.sync.*'] }],
    }),
  })
  const server = await startServer(http, { host: '127.0.0.1', port: 0 })
  try {
    for (const name of ['payments', 'orders']) {
      const k = await kms.send(new CreateKeyCommand({ Description: `${name} key` }))
      await kms.send(
        new CreateAliasCommand({ AliasName: `alias/${name}`, TargetKeyId: k.KeyMetadata?.KeyId }),
      )
    }

    // The catalog stores where the credentials come from, never the credentials.
    process.env['EXAMPLE_AWS_ACCESS_KEY_ID'] = aws.accessKeyId
    process.env['EXAMPLE_AWS_SECRET_ACCESS_KEY'] = aws.secretAccessKey
    const conn = await services.sync.createConnection(TENANT, {
      name: 'aws-prod',
      params: {
        cloud: 'aws',
        regions: [REGION],
        endpoint,
        credentials: {
          kind: 'static',
          accessKeyId: { kind: 'env', name: 'EXAMPLE_AWS_ACCESS_KEY_ID' },
          secretAccessKey: { kind: 'env', name: 'EXAMPLE_AWS_SECRET_ACCESS_KEY' },
        },
      },
    })
    const tested = await services.sync.testConnection(TENANT, conn.id)
    log(`connection aws-prod tested: ${tested.lastTest?.ok === true ? 'ok' : 'failed'}`)

    // CCKM: POST /api/v1/cckm/aws/synchronization-jobs, then follow the job.
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
    const started = await fetch(`${server.url}/api/v1/cckm/aws/synchronization-jobs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ kms: ['aws-prod'] }),
    })
    const job = (await started.json()) as { id: string; key_vaults: string[] }
    log(
      `sync job started (status ${started.status}) for ${job.key_vaults.map((v) => v.split('::')[0]).join(', ')}`,
    )
    const done = await services.sync.waitForSync(TENANT, job.id)
    const got = await fetch(`${server.url}/api/v1/cckm/aws/synchronization-jobs/${job.id}`, { headers })
    const body = (await got.json()) as { overall_status: string }
    log(
      `sync job ${body.overall_status}: ${done.counts.discovered} keys discovered, ${done.counts.inserted} linked`,
    )

    const { keys } = await services.sync.listLinkedKeys(TENANT, { cloud: 'aws' })
    log(
      `linked keys: ${keys
        .map((k) => k.name)
        .sort()
        .join(', ')}`,
    )
    const payments = keys.find((k) => k.name === 'payments')
    if (payments === undefined) throw new Error('payments was not discovered')
    const dek = SecretBytes.copyOf(randomBytes(32))
    const wrapped = await services.sync.wrap(TENANT, payments.id, { plaintext: dek, aad: ['invoice', '42'] })
    const back = await services.sync.unwrap(TENANT, {
      ciphertext: wrapped.ciphertext,
      aad: ['invoice', '42'],
    })
    log(
      `wrap then unwrap through AWS KMS returns the DEK: ${Buffer.from(back.plaintext.bytes).equals(dek.bytes)}`,
    )
    back.plaintext.zeroize()
    dek.zeroize()
    return out
  } finally {
    await server.close()
    await new Promise<void>((res) => kmsServer.close(() => res()))
    await services.close()
  }
}

runIfMain(import.meta.url, main)
