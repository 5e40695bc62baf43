/**
 * AWS KMS on both sides, over loopback: the engine serves the AWS KMS API for keys held in the HSM, the
 * official AWS SDK uses it, and a second engine keeps its root keys in "AWS KMS" through the AWS KMS
 * provider pointed at that endpoint.
 *
 *   npx tsx examples/aws-kms.ts     (after `npm run setup`; uses the project token and a temporary catalog)
 */
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serve } from '@hono/node-server'
import { CreateKeyCommand, DecryptCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms'
import { createEngine, createEngineFromConfig, loadConfig } from '../src/index.js'
import { createAwsKmsApp } from '../src/http/awskms/index.js'
import { createAwsKmsProvider } from '../src/providers/aws-kms/index.js'
import { openSqliteStore } from '../src/store/sqlite/index.js'
import { printer, runIfMain } from './support.js'

export async function main(): Promise<string[]> {
  const { out, log } = printer()
  const dir = mkdtempSync(join(tmpdir(), 'ekms-aws-example-'))
  const hsmEngine = await createEngineFromConfig(loadConfig(), { lifecycle: { enableCooldownMs: 0 } })
  const credentials = {
    accessKeyId: 'AKIAEXAMPLE000000001',
    secretAccessKey: 'example-secret-change-me-0000000000000',
  }
  const app = createAwsKmsApp({
    engine: hsmEngine,
    region: 'eu-central-1',
    credentials: [{ ...credentials, instance: 'example-tenant' }],
  })
  const server = await new Promise<ReturnType<typeof serve>>((res) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => res(s))
  })
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const kms = new KMSClient({ region: 'eu-central-1', endpoint, credentials })
  try {
    const key = await kms.send(new CreateKeyCommand({ Description: 'created through the AWS SDK' }))
    log(
      `AWS SDK created key ${key.KeyMetadata?.KeyState === 'Enabled' ? 'Enabled' : 'not enabled'} with ARN ${key.KeyMetadata?.Arn?.replace(/[0-9a-f-]{36}$/, '<id>') ?? ''}`,
    )
    const enc = await kms.send(
      new EncryptCommand({
        KeyId: key.KeyMetadata?.KeyId,
        Plaintext: Buffer.from('hello'),
        EncryptionContext: { app: 'demo' },
      }),
    )
    const dec = await kms.send(
      new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { app: 'demo' } }),
    )
    log(`AWS SDK Encrypt then Decrypt: ${Buffer.from(dec.Plaintext ?? []).toString()}`)
    const viaEngine = await hsmEngine.unwrap(
      'example-tenant',
      key.KeyMetadata?.KeyId ?? '',
      Buffer.from(enc.CiphertextBlob ?? []),
      { aad: ['app', 'demo'] },
    )
    log(`the engine API unwraps the AWS ciphertext too: ${viaEngine.plaintext.toString()}`)

    const kmsEngine = await createEngine({
      provider: await createAwsKmsProvider({ regions: [{ region: 'eu-central-1', endpoint }], credentials }),
      store: await openSqliteStore({ path: join(dir, 'catalog.sqlite') }),
    })
    try {
      const root = await kmsEngine.createKey('app', { name: 'root-in-kms' })
      const w = await kmsEngine.wrap('app', root.id, { aad: ['order-7'] })
      const u = await kmsEngine.unwrap('app', root.id, w.ciphertext, { aad: ['order-7'] })
      log(
        `engine on the AWS KMS provider (${kmsEngine.providerName}): wrap then unwrap returns the DEK: ${u.plaintext.equals(w.plaintext ?? Buffer.alloc(0))}`,
      )
    } finally {
      await kmsEngine.close()
    }
  } finally {
    kms.destroy()
    await new Promise<void>((res) => server.close(() => res()))
    await hsmEngine.close()
    rmSync(dir, { recursive: true, force: true })
  }
  return out
}

runIfMain(import.meta.url, main)
