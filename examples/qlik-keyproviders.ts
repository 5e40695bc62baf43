/**
 * Tenant key providers over HTTP: serve the Qlik Cloud encryption key providers API on 127.0.0.1 over the
 * default services (engine, job runner, tenant key providers), then use it with Qlik's official client
 * (@qlik/api), unchanged: list the providers (the built-in default is current), register a customer-managed
 * key (here a root key of the engine itself, the `envelope-kms` provider type), migrate the tenant's data
 * keys to it live, follow the migration, and reset back to the default provider.
 *
 *   node --import tsx examples/qlik-keyproviders.ts
 */
import { randomBytes } from 'node:crypto'
import encryption from '@qlik/api/encryption'
import { createEngineServicesFromConfig } from '../src/index.js'
import { createAuthenticator, createHttpApp, startServer } from '../src/http/index.js'
import { printer, runIfMain } from './support.js'

const TENANT = 'example-tenant'

export async function main(): Promise<string[]> {
  const { out, log } = printer()
  const services = await createEngineServicesFromConfig()
  const apiKey = randomBytes(24).toString('base64url')
  const http = createHttpApp({
    engine: services.engine,
    tenantKeys: services.tenantKeys,
    // A token for exactly one tenant: the Qlik API takes the tenant from it.
    auth: createAuthenticator({
      apiKeys: [{ key: apiKey, subject: 'example', instances: [TENANT], actions: ['kms.keyproviders.*'] }],
    }),
  })
  const server = await startServer(http, { host: '127.0.0.1', port: 0 })
  try {
    const hostConfig = { authType: 'apikey', host: server.url, apiKey } as const
    // Application services keep their data keys in the tenant's catalog.
    for (let i = 0; i < 25; i++)
      (await services.tenantKeys.createDataKey(TENANT, `doc-${i}`)).plaintext.zeroize()

    const all = await encryption.listEncryptionKeyproviders({ hostConfig })
    const [def] = all.data as unknown as { keyprovider: string; current?: boolean }[]
    log(`providers: ${def?.keyprovider ?? '?'} (current: ${String(def?.current)})`)

    const root = await services.engine.createKey(TENANT, { name: 'tenant-cmk', extractable: false })
    const created = await encryption.createEncryptionKeyprovider(
      // `envelope-kms` (a root key of this engine) is this server's extension of the client's enum.
      { arn: root.id, name: 'CMK-01', keyprovider: 'envelope-kms' as 'AWS-KMS' },
      { hostConfig },
    )
    const fp = created.data.arnFingerPrint ?? ''
    log(`registered CMK-01 (status ${created.status}), fingerprint of ${fp.length} hex characters`)

    const m = await encryption.migrateEncryptionKeyprovider(fp, { hostConfig })
    log(`migration ${m.data.state}, new wraps carry ${m.data.migratingToPrefix?.replace(fp, '<fp>') ?? ''}`)
    let details = m.data
    while (details.state !== 'Completed') {
      await new Promise((r) => setTimeout(r, 50))
      details = (await encryption.getEncryptionKeyprovidersMigrationDetails({ hostConfig, noCache: true }))
        .data
    }
    log(`migration Completed: ${String(details.progress)}%`)

    const reset = await encryption.resetEncryptionKeyproviders({ hostConfig })
    await services.tenantKeys.waitForMigration(TENANT, reset.headers.get('x-migration-id') ?? '')
    const back = await services.tenantKeys.getDataKey(TENANT, 'doc-0')
    back.plaintext.zeroize()
    log(
      `reset (status ${reset.status}): data keys back under the default provider: ${String(back.providerFingerprint === TENANT)}`,
    )
    return out
  } finally {
    await server.close()
    await services.close()
  }
}

runIfMain(import.meta.url, main)
