/**
 * Key synchronization end to end with the real sources (issue 15): keys created directly in the
 * Azure-Key-Vault-compatible listener (official @azure/keyvault-keys client, TLS with a test CA), directly on a
 * second SoftHSM2 token through raw PKCS#11 with labels, and directly through the AWS-KMS-compatible endpoint
 * (official @aws-sdk/client-kms, two regions) are discovered by synchronization jobs of
 * createEngineServicesFromConfig (the default sync sources, SQLite catalog, job runner) and then wrap and
 * unwrap through the engine; a re-sync is idempotent; keys deleted at the source are marked; tenants are
 * isolated. Not real Azure or AWS: the engine's own listeners stand in for them (docs/key-sync-sources.md).
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KeyClient } from '@azure/keyvault-keys'
import { CreateAliasCommand, CreateKeyCommand, ScheduleKeyDeletionCommand } from '@aws-sdk/client-kms'
import { createAuthenticator } from '../../../src/http/auth.js'
import { createHttpApp, startServer } from '../../../src/http/index.js'
import { VaultKeys } from '../../../src/core/vault-keys/vault-keys.js'
import type { EngineServices, LinkedKeyView, SyncCloud } from '../../../src/index.js'
import { SecretBytes } from '../../../src/index.js'
import { expectCode } from '../../helpers/expect-code.js'
import { env, openTestEngine, type TestEngine } from '../../helpers/engine.js'
import {
  makeTestPki,
  startVault,
  StaticTokenCredential,
  type RunningVault,
  type TestPki,
} from '../../helpers/azure-kv.js'
import { sdkClient, startEndpoint, TENANT_A, type RunningEndpoint } from '../../helpers/aws-kms.js'
import { openServices } from '../../helpers/tenant-keys.js'
import { createAesKeys, destroyAesKey, secondTokenConnection } from '../../helpers/sync.js'

const T = 'sync-e2e'
const OTHER = 'sync-e2e-other'
const AZ_TOKEN = 'azure-sync-e2e-token-0123456789abcdef'
const AZ_ENV = 'EKMS_TEST_E2E_AZ_TOKEN'
const AWS_ID_ENV = 'EKMS_TEST_E2E_AWS_ID'
const AWS_SECRET_ENV = 'EKMS_TEST_E2E_AWS_SECRET'

let backend: TestEngine
let pki: TestPki
let caFile: string
let vault: RunningVault
let kms: RunningEndpoint
let s: EngineServices
const awsArns: string[] = []

beforeAll(async () => {
  process.env[AZ_ENV] = AZ_TOKEN
  process.env[AWS_ID_ENV] = TENANT_A.accessKeyId
  process.env[AWS_SECRET_ENV] = TENANT_A.secretAccessKey
  // The "clouds": an engine of their own on the test token, behind the two compatible listeners.
  backend = await openTestEngine()
  pki = makeTestPki()
  caFile = join(mkdtempSync(join(env('EKMS_TEST_DIR'), 'e2e-ca-')), 'ca.pem')
  writeFileSync(caFile, pki.caPem)
  vault = await startVault(pki, {
    vault: new VaultKeys({ backend: backend.provider, store: backend.store.vaultKeys }),
    auth: createAuthenticator({
      apiKeys: [{ key: AZ_TOKEN, subject: 'az', instances: ['az-tenant'], actions: ['*'] }],
    }),
    challenge: {
      authorization: 'https://login.microsoftonline.com/00000000-0000-0000-0000-0000000000aa',
      resource: 'https://vault.azure.net',
    },
  })
  kms = await startEndpoint(backend.engine, undefined, { regions: ['us-east-1', 'eu-west-1'] })

  // Keys made directly at each source.
  const kc = new KeyClient(vault.url, new StaticTokenCredential(AZ_TOKEN), {
    disableChallengeResourceVerification: true,
    tlsOptions: { ca: pki.caPem },
  })
  await kc.createKey('az-oct', 'oct-HSM', { keySize: 256 })
  await kc.createRsaKey('az-rsa', { hsm: true, keySize: 2048 })
  await kc.rotateKey('az-rsa')
  await kc.createKey('az-doomed', 'oct-HSM', { keySize: 256 })
  for (const region of kms.regions) {
    const c = sdkClient(kms, TENANT_A, { region })
    const k = await c.send(new CreateKeyCommand({ Description: `sync ${region}` }))
    await c.send(
      new CreateAliasCommand({ AliasName: `alias/app-${region}`, TargetKeyId: k.KeyMetadata!.KeyId! }),
    )
    awsArns.push(k.KeyMetadata!.Arn!)
  }
  createAesKeys(env('EKMS_TEST_TOKEN_2'), env('EKMS_TEST_PIN'), [
    { label: 'hsm-app-key', id: 'e2e001' },
    { label: 'hsm-doomed', id: 'e2e002' },
  ])

  s = await openServices()
  await s.sync.createConnection(T, {
    name: 'az-vault',
    params: {
      cloud: 'azure',
      vaultUrl: vault.url,
      credential: { kind: 'static-token', token: { kind: 'env', name: AZ_ENV } },
      disableChallengeResourceVerification: true,
      caFile,
    },
  })
  await s.sync.createConnection(T, {
    name: 'aws-acct',
    params: {
      cloud: 'aws',
      regions: [...kms.regions],
      endpoint: kms.url,
      credentials: {
        kind: 'static',
        accessKeyId: { kind: 'env', name: AWS_ID_ENV },
        secretAccessKey: { kind: 'env', name: AWS_SECRET_ENV },
      },
    },
  })
  await s.sync.createConnection(T, secondTokenConnection())
}, 60_000)

afterAll(async () => {
  await s?.close()
  await vault?.close()
  await kms?.close()
  await backend?.engine.close()
})

async function syncAndWait(cloud: SyncCloud, vaults?: string[]) {
  const job = await s.sync.startSync(
    T,
    vaults === undefined ? { cloud, synchronizeAll: true } : { cloud, vaults },
  )
  return s.sync.waitForSync(T, job.id)
}

async function linked(cloud: SyncCloud): Promise<Map<string, LinkedKeyView>> {
  const { keys } = await s.sync.listLinkedKeys(T, { cloud, limit: 100 })
  return new Map(keys.map((k) => [k.name, k]))
}

async function roundTrip(id: string): Promise<void> {
  const dek = SecretBytes.copyOf(Buffer.alloc(32, 7))
  const w = await s.sync.wrap(T, id, { plaintext: dek, aad: ['orders', 'v1'] })
  const u = await s.sync.unwrap(T, { ciphertext: w.ciphertext, aad: ['orders', 'v1'] })
  expect(Buffer.from(u.plaintext.bytes).equals(Buffer.alloc(32, 7))).toBe(true)
  expect(u.keyId).toBe(id)
  u.plaintext.zeroize()
  await expectCode(
    s.sync.unwrap(T, { ciphertext: w.ciphertext, aad: ['orders', 'v2'] }),
    'UNWRAP_AAD_MISMATCH',
  )
  await expectCode(
    s.sync.unwrap(OTHER, { ciphertext: w.ciphertext, aad: ['orders', 'v1'] }),
    'LINKED_KEY_NOT_FOUND',
  )
}

describe('synchronization with the real sources', () => {
  it('every connection tests ok', async () => {
    for (const c of await s.sync.listConnections(T)) {
      const v = await s.sync.testConnection(T, c.id)
      expect(v.lastTest?.ok, `${c.name}: ${JSON.stringify(v.lastTest?.checks)}`).toBe(true)
      // The catalog holds the references only.
      expect(JSON.stringify(v)).not.toContain(AZ_TOKEN)
      expect(JSON.stringify(v)).not.toContain(TENANT_A.secretAccessKey)
      expect(JSON.stringify(v)).not.toContain(env('EKMS_TEST_PIN'))
    }
  })

  it('discovers the keys made in Azure, on the token and in AWS; each wraps and unwraps through its source', async () => {
    const az = await syncAndWait('azure', ['az-vault'])
    expect(az.overallStatus).toBe('completed')
    expect(az.counts).toMatchObject({ discovered: 3, inserted: 3, markedDeleted: 0 })
    const p11 = await syncAndWait('pkcs11', [env('EKMS_TEST_TOKEN_2')]) // a token label names its connection
    expect(p11.overallStatus).toBe('completed')
    expect(p11.counts).toMatchObject({ discovered: 2, inserted: 2 })
    const aws = await syncAndWait('aws')
    expect(aws.overallStatus).toBe('completed')
    expect(aws.counts).toMatchObject({ discovered: 2, inserted: 2 })

    const a = await linked('azure')
    expect([...a.keys()].sort()).toEqual(['az-doomed', 'az-oct', 'az-rsa'])
    expect(a.get('az-rsa')!.versions).toHaveLength(2)
    expect(a.get('az-rsa')!.keyType).toBe('RSA-HSM')
    const h = await linked('pkcs11')
    expect(h.get('hsm-app-key')).toMatchObject({ sourceKeyId: 'id:e2e001', keyType: 'AES', usable: true })
    const w = await linked('aws')
    expect([...w.keys()].sort()).toEqual(['app-eu-west-1', 'app-us-east-1'])
    expect([...w.values()].map((k) => k.sourceKeyId).sort()).toEqual([...awsArns].sort())
    expect(new Set([...w.values()].map((k) => k.vault))).toEqual(new Set(kms.regions))

    for (const k of [a.get('az-oct')!, a.get('az-rsa')!, h.get('hsm-app-key')!, ...w.values()]) {
      expect(k.sourceState).toBe('present')
      await roundTrip(k.id)
    }
    // The RSA key wraps under its newest version; a ciphertext names it.
    const rsa = await s.sync.wrap(T, a.get('az-rsa')!.id)
    expect(rsa.keyVersion).toBe(2)
    rsa.plaintext?.zeroize()
  }, 60_000)

  it('a re-sync is idempotent: the same ids, nothing inserted or updated', async () => {
    const before = await s.sync.listLinkedKeys(T, { limit: 100 })
    for (const cloud of ['azure', 'pkcs11', 'aws'] as const) {
      const job = await syncAndWait(cloud)
      expect(job.counts).toMatchObject({ inserted: 0, updated: 0, markedDeleted: 0 })
      expect(job.counts.unchanged).toBe(job.counts.discovered)
    }
    const after = await s.sync.listLinkedKeys(T, { limit: 100 })
    expect(after.keys.map((k) => k.id).sort()).toEqual(before.keys.map((k) => k.id).sort())
  }, 60_000)

  it('keys deleted at the source are marked, never dropped; they can no longer wrap', async () => {
    const kc = new KeyClient(vault.url, new StaticTokenCredential(AZ_TOKEN), {
      disableChallengeResourceVerification: true,
      tlsOptions: { ca: pki.caPem },
    })
    await (await kc.beginDeleteKey('az-doomed')).pollUntilDone()
    expect(destroyAesKey(env('EKMS_TEST_TOKEN_2'), env('EKMS_TEST_PIN'), 'e2e002')).toBe(1)
    await sdkClient(kms, TENANT_A, { region: 'eu-west-1' }).send(
      new ScheduleKeyDeletionCommand({ KeyId: awsArns[1]!, PendingWindowInDays: 7 }),
    )
    expect((await syncAndWait('azure')).counts.markedDeleted).toBe(1)
    expect((await syncAndWait('pkcs11')).counts.markedDeleted).toBe(1)
    const awsJob = await syncAndWait('aws')
    expect(awsJob.counts).toMatchObject({ markedDeleted: 0, updated: 1 }) // pending deletion: still listed

    const doomed = (await linked('azure')).get('az-doomed')!
    expect(doomed.sourceState).toBe('deleted')
    expect(doomed.deletedAtSourceAt).toBeInstanceOf(Date)
    await expectCode(s.sync.wrap(T, doomed.id), 'LINKED_KEY_UNAVAILABLE')
    const hsmDoomed = (await linked('pkcs11')).get('hsm-doomed')!
    expect(hsmDoomed.sourceState).toBe('deleted')
    await expectCode(s.sync.wrap(T, hsmDoomed.id), 'LINKED_KEY_UNAVAILABLE')
    const pending = [...(await linked('aws')).values()].find((k) => k.sourceKeyId === awsArns[1])!
    expect(pending).toMatchObject({ sourceState: 'present', enabled: false })
    await expectCode(s.sync.wrap(T, pending.id), 'LINKED_KEY_UNAVAILABLE')
    // Marked keys stay listed, with the rest.
    expect((await s.sync.listLinkedKeys(T, { sourceState: 'deleted', limit: 10 })).total).toBe(2)
  }, 60_000)

  it('another tenant sees none of it', async () => {
    expect((await s.sync.listLinkedKeys(OTHER, { limit: 10 })).total).toBe(0)
    expect(await s.sync.listConnections(OTHER)).toEqual([])
    const any = (await s.sync.listLinkedKeys(T, { limit: 1 })).keys[0]!
    await expectCode(s.sync.getLinkedKey(OTHER, any.id), 'LINKED_KEY_NOT_FOUND')
    await expectCode(s.sync.wrap(OTHER, any.id), 'LINKED_KEY_NOT_FOUND')
    await expectCode(
      s.sync.startSync(OTHER, { cloud: 'azure', vaults: ['az-vault'] }),
      'CONNECTION_NOT_FOUND',
    )
  })

  it('over the CCKM API: a job, the linked keys, wrap and unwrap through the real source', async () => {
    const apiKey = 'cckm-e2e-api-key-0123456789abcdef'
    const app = createHttpApp({
      engine: s.engine,
      sync: s.sync,
      auth: createAuthenticator({
        apiKeys: [{ key: apiKey, subject: 'ops', instances: [T], actions: ['kms.sync.*'] }],
      }),
    })
    const server = await startServer(app, { host: '127.0.0.1', port: 0 })
    const call = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${server.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- wire JSON, checked field by field below
      return { status: r.status, json: (await r.json()) as Record<string, any> }
    }
    try {
      const started = await call('POST', '/api/v1/cckm/pkcs11/synchronization-jobs', { tokens: ['hsm-2'] })
      expect(started.status).toBe(201)
      expect(started.json.key_vaults).toEqual([expect.stringMatching(/^hsm-2::[0-9a-f-]{36}$/)])
      await s.sync.waitForSync(T, started.json.id)
      const job = await call('GET', `/api/v1/cckm/pkcs11/synchronization-jobs/${started.json.id}`)
      expect(job.json.overall_status).toBe('completed')
      const list = await call('GET', '/api/v1/cckm/pkcs11/keys?source_state=present')
      const resources = list.json.resources as { id: string; name: string }[]
      const key = resources.find((k) => k.name === 'hsm-app-key')!
      expect(key).toBeDefined()
      const dek = Buffer.alloc(32, 9).toString('base64')
      const w = await call('POST', `/api/v1/cckm/pkcs11/keys/${key.id}/wrap`, { plaintext: dek, aad: ['x'] })
      expect(w.status).toBe(200)
      const u = await call('POST', `/api/v1/cckm/pkcs11/keys/${key.id}/unwrap`, {
        ciphertext: w.json.ciphertext,
        aad: ['x'],
      })
      expect(u.status).toBe(200)
      expect(u.json.plaintext).toBe(dek)
      const bad = await call('POST', `/api/v1/cckm/pkcs11/keys/${key.id}/unwrap`, {
        ciphertext: w.json.ciphertext,
        aad: ['y'],
      })
      expect(bad.status).toBeGreaterThanOrEqual(400)
      expect(bad.status).toBeLessThan(500)
      expect(bad.json.codeDesc).toMatch(/^NCERR/)
    } finally {
      await server.close()
    }
  }, 60_000)
})
