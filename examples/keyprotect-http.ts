/**
 * HTTP mode: serve the Key Protect v2 API on 127.0.0.1 over the embedded engine, then use it with IBM's
 * official Node SDK (@ibm-cloud/ibm-key-protect), unchanged: create a root key, wrap a generated DEK,
 * rotate, unwrap the old ciphertext (which comes back rewrapped), set a rotation policy.
 *
 *   node --import tsx examples/keyprotect-http.ts
 *
 * The same API from a shell: `npm run serve`, then curl with `Authorization: Bearer <data/dev-api-key>` and
 * `Bluemix-Instance: <any id>` (README, "HTTP mode").
 */
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { createEngineFromConfig } from '../src/index.js'
import { createAuthenticator, createHttpApp, startServer } from '../src/http/index.js'
import { printer, runIfMain } from './support.js'

const require = createRequire(import.meta.url)

/** The parts of the SDK's responses this example reads. */
interface SdkResponse {
  status: number
  result: {
    resources: { id: string; rotation?: { interval_month?: number } }[]
    plaintext?: string
    ciphertext?: string
    rewrappedKeyVersion?: { id: string }
  }
}
type Sdk = Record<string, (params: Record<string, unknown>) => Promise<SdkResponse>>

export async function main(): Promise<string[]> {
  const { out, log } = printer()
  const engine = await createEngineFromConfig()
  const apiKey = randomBytes(24).toString('base64url')
  const http = createHttpApp({
    engine,
    auth: createAuthenticator({
      apiKeys: [{ key: apiKey, subject: 'example', instances: ['example-instance'], actions: ['kms.*'] }],
    }),
  })
  const server = await startServer(http, { host: '127.0.0.1', port: 0 })
  try {
    // The official SDK, exactly as an application would use it against IBM Cloud.
    const KeyProtectV2 = require('@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2') as new (
      o: object,
    ) => Sdk
    const { BearerTokenAuthenticator } = require('@ibm-cloud/ibm-key-protect/auth') as {
      BearerTokenAuthenticator: new (o: { bearerToken: string }) => object
    }
    const kp = new KeyProtectV2({
      authenticator: new BearerTokenAuthenticator({ bearerToken: apiKey }),
      serviceUrl: server.url,
    })
    const bluemixInstance = 'example-instance'

    const created = await kp['createKey']!({
      bluemixInstance,
      body: {
        resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'http-root', extractable: false }],
      },
    })
    const key = created.result.resources[0]!
    log(`SDK created root key ${key.id} over HTTP (status ${created.status})`)

    const wrapped = await kp['wrapKey']!({
      bluemixInstance,
      id: key.id,
      keyActionWrapBody: { aad: ['tenant-7'] },
    })
    log(`wrapped a generated DEK: ${Buffer.from(wrapped.result.plaintext ?? '', 'base64').length} bytes`)

    await kp['rotateKey']!({ bluemixInstance, id: key.id, keyActionRotateBody: {} })
    const unwrapped = await kp['unwrapKey']!({
      bluemixInstance,
      id: key.id,
      keyActionUnwrapBody: { ciphertext: wrapped.result.ciphertext, aad: ['tenant-7'] },
    })
    log(
      `after rotate, unwrap returns the same DEK (${unwrapped.result.plaintext === wrapped.result.plaintext}) ` +
        `and a ciphertext rewrapped under the new version (${unwrapped.result.rewrappedKeyVersion !== undefined})`,
    )

    await kp['putPolicy']!({
      bluemixInstance,
      id: key.id,
      setKeyPoliciesOneOf: {
        resources: [
          { type: 'application/vnd.ibm.kms.policy+json', rotation: { enabled: true, interval_month: 3 } },
        ],
      },
    })
    const meta = await kp['getKeyMetadata']!({ bluemixInstance, id: key.id })
    log(`rotation policy: every ${String(meta.result.resources[0]?.rotation?.interval_month)} months`)

    try {
      await kp['getKey']!({ bluemixInstance: 'someone-else', id: key.id })
    } catch (err) {
      log(`another instance is refused with HTTP ${String((err as { status: number }).status)}`)
    }
  } finally {
    await server.close()
    await engine.close()
  }
  return out
}

runIfMain(import.meta.url, main)
