/**
 * The AWS KMS synchronization source against the AWS-KMS-compatible endpoint on 127.0.0.1 serving two
 * regions, backed by a real engine on a real SoftHSM2 token and a real SQLite catalog. Keys, aliases, a
 * disabled key and a key scheduled for deletion are made with @aws-sdk/client-kms; the source discovers them
 * per region and wraps / unwraps through them. Not real AWS.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DisableKeyCommand,
  EncryptCommand,
  ScheduleKeyDeletionCommand,
  type KMSClient,
} from '@aws-sdk/client-kms'
import { EngineError, SecretBytes } from '../../../src/index.js'
import type {
  AwsConnectionParams,
  ConnectionRecord,
  DiscoveredKey,
  SecretResolver,
  SyncSource,
} from '../../../src/core/ports-sync.js'
import { createAwsSyncSource, createSdkKmsClient } from '../../../src/providers/aws-kms/index.js'
import { expectCode } from '../../helpers/expect-code.js'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'
import { sdkClient, startEndpoint, TENANT_A, TENANT_B, type RunningEndpoint } from '../../helpers/aws-kms.js'

const US = 'us-east-1'
const EU = 'eu-west-1'

/** Environment variables the connections name (the catalog would store only these names). */
const ENV = {
  idA: 'EKMS_TEST_AWS_SYNC_ID_A',
  secretA: 'EKMS_TEST_AWS_SYNC_SECRET_A',
  idB: 'EKMS_TEST_AWS_SYNC_ID_B',
  secretB: 'EKMS_TEST_AWS_SYNC_SECRET_B',
  badSecret: 'EKMS_TEST_AWS_SYNC_SECRET_BAD',
}

/** A resolver as core/sync's for environment variables. */
const secrets: SecretResolver = async (s) => {
  const v = s.kind === 'env' ? process.env[s.name] : undefined
  if (v === undefined) throw new EngineError('INVALID_FIELD_ERR', `secret: the ${s.kind} source is not set`)
  return v
}

let backend: TestEngine
let ep: RunningEndpoint

beforeAll(async () => {
  process.env[ENV.idA] = TENANT_A.accessKeyId
  process.env[ENV.secretA] = TENANT_A.secretAccessKey
  process.env[ENV.idB] = TENANT_B.accessKeyId
  process.env[ENV.secretB] = TENANT_B.secretAccessKey
  process.env[ENV.badSecret] = 'wrong-secret-key-000000000000000000000000'
  backend = await openTestEngine({ engine: { lifecycle: { enableCooldownMs: 0, minRotationIntervalMs: 0 } } })
  ep = await startEndpoint(backend.engine, undefined, { regions: [US, EU] })
})
afterAll(async () => {
  await ep.close()
  await backend.engine.close()
})

function connection(
  params: Partial<AwsConnectionParams> = {},
  id = ENV.idA,
  secret = ENV.secretA,
): ConnectionRecord {
  return {
    tenant: 'sync-tenant',
    id: randomUUID(),
    name: 'aws-account',
    cloud: 'aws',
    description: undefined,
    params: {
      cloud: 'aws',
      regions: [US, EU],
      endpoint: ep.url,
      credentials: {
        kind: 'static',
        accessKeyId: { kind: 'env', name: id },
        secretAccessKey: { kind: 'env', name: secret },
      },
      ...params,
    },
    createdAt: 0,
    updatedAt: 0,
    lastTest: undefined,
  }
}

const fast = { retry: { maxAttempts: 1 } }

function open(
  params: Partial<AwsConnectionParams> = {},
  id = ENV.idA,
  secret = ENV.secretA,
): Promise<SyncSource> {
  return createAwsSyncSource(connection(params, id, secret), secrets, fast)
}

async function discoverAll(
  s: SyncSource,
  options: { regions?: readonly string[] } = {},
): Promise<Map<string, DiscoveredKey>> {
  const out = new Map<string, DiscoveredKey>()
  for await (const k of s.discover(options)) out.set(k.sourceKeyId, k)
  return out
}

const dek = (fill: number): SecretBytes => SecretBytes.copyOf(Buffer.alloc(32, fill))

describe('discovery, wrap and unwrap of keys made with @aws-sdk/client-kms in two regions', () => {
  const keys: Record<string, { arn: string; id: string }> = {}
  let us: KMSClient
  let eu: KMSClient

  async function create(c: KMSClient, description: string): Promise<{ arn: string; id: string }> {
    const out = await c.send(new CreateKeyCommand({ Description: description }))
    return { arn: out.KeyMetadata?.Arn ?? '', id: out.KeyMetadata?.KeyId ?? '' }
  }

  beforeAll(async () => {
    us = sdkClient(ep, TENANT_A, { region: US })
    eu = sdkClient(ep, TENANT_A, { region: EU })
    keys['billing'] = await create(us, 'billing data keys')
    await us.send(
      new CreateAliasCommand({ AliasName: 'alias/sync-billing', TargetKeyId: keys['billing'].id }),
    )
    await us.send(new CreateAliasCommand({ AliasName: 'alias/sync-alpha', TargetKeyId: keys['billing'].id }))
    keys['plain'] = await create(us, 'no alias')
    keys['off'] = await create(us, 'disabled')
    await us.send(new CreateAliasCommand({ AliasName: 'alias/sync-off', TargetKeyId: keys['off'].id }))
    await us.send(new DisableKeyCommand({ KeyId: keys['off'].id }))
    keys['doomed'] = await create(us, 'scheduled for deletion')
    await us.send(new ScheduleKeyDeletionCommand({ KeyId: keys['doomed'].id, PendingWindowInDays: 7 }))
    keys['eu'] = await create(eu, 'in the EU')
    await eu.send(new CreateAliasCommand({ AliasName: 'alias/sync-eu', TargetKeyId: keys['eu'].id }))
  })
  afterAll(() => {
    us.destroy()
    eu.destroy()
  })

  it('finds every key of every region, with name, type, state, one version and attributes', async () => {
    const s = await open()
    const found = await discoverAll(s)
    const arns = Object.values(keys).map((k) => k.arn)
    expect([...found.keys()].sort()).toEqual([...arns].sort())
    const billing = found.get(keys['billing']?.arn ?? '')
    expect(billing).toMatchObject({
      vault: US,
      name: 'sync-alpha',
      keyType: 'SYMMETRIC_DEFAULT',
      usable: true,
      enabled: true,
      versions: [{ version: keys['billing']?.id, ref: keys['billing']?.arn, enabled: true }],
    })
    expect(billing?.versions[0]?.createdAt).toEqual(expect.any(Number))
    expect(billing?.attributes).toMatchObject({
      aliases: ['alias/sync-alpha', 'alias/sync-billing'],
      keyState: 'Enabled',
      keyManager: 'CUSTOMER',
      multiRegion: false,
      description: 'billing data keys',
      keyUsage: 'ENCRYPT_DECRYPT',
      origin: 'AWS_KMS',
    })
    expect(JSON.parse(JSON.stringify(billing?.attributes))).toEqual(billing?.attributes)
    expect(found.get(keys['plain']?.arn ?? '')).toMatchObject({ name: keys['plain']?.id, vault: US })
    expect(found.get(keys['off']?.arn ?? '')).toMatchObject({
      name: 'sync-off',
      enabled: false,
      usable: true,
      versions: [{ enabled: false }],
      attributes: { keyState: 'Disabled' },
    })
    const doomed = found.get(keys['doomed']?.arn ?? '')
    expect(doomed).toMatchObject({ enabled: false, attributes: { keyState: 'PendingDeletion' } })
    // Seven days after the scheduling, on the engine's (manual) clock.
    expect(Date.parse(String(doomed?.attributes['deletionDate']))).toBeGreaterThan(backend.clock.now())
    expect(found.get(keys['eu']?.arn ?? '')).toMatchObject({ vault: EU, name: 'sync-eu', enabled: true })
    expect(keys['eu']?.arn).toContain(`:${EU}:`)
    await s.close()
  })

  it('discovers a subset of the regions, or a connection of one region; refuses a region not of the connection', async () => {
    const s = await open()
    expect([...(await discoverAll(s, { regions: [EU] })).keys()]).toEqual([keys['eu']?.arn])
    await expectCode(discoverAll(s, { regions: ['ap-south-1'] }), 'INVALID_FIELD_ERR')
    await s.close()
    const euOnly = await open({ regions: [EU] })
    expect([...(await discoverAll(euOnly)).keys()]).toEqual([keys['eu']?.arn])
    await euOnly.close()
  })

  it('pages through ListKeys and ListAliases (one item a page, the real listener behind)', async () => {
    const listed: string[] = []
    const s = await createAwsSyncSource(connection(), secrets, {
      ...fast,
      clientFactory: (config) => {
        const real = createSdkKmsClient(config)
        return {
          ...real,
          listKeys: (i, o) => {
            listed.push(`keys ${config.region}`)
            return real.listKeys({ ...i, Limit: 1 }, o)
          },
          listAliases: (i, o) => {
            listed.push(`aliases ${config.region}`)
            return real.listAliases?.({ ...i, Limit: 1 }, o) ?? Promise.reject(new Error('no ListAliases'))
          },
        }
      },
    })
    const found = await discoverAll(s)
    expect(found.size).toBe(5)
    expect(found.get(keys['billing']?.arn ?? '')?.attributes['aliases']).toEqual([
      'alias/sync-alpha',
      'alias/sync-billing',
    ])
    expect(listed.filter((l) => l === `keys ${US}`).length).toBeGreaterThanOrEqual(4)
    expect(listed.filter((l) => l === `aliases ${US}`).length).toBeGreaterThanOrEqual(4)
    await s.close()
  })

  it('wraps and unwraps through a key of each region; the AAD is bound as the encryption context', async () => {
    const s = await open()
    for (const [i, k] of [keys['billing'], keys['eu']].entries()) {
      const ref = k?.arn ?? ''
      const aad = Buffer.from(`order-${i}`)
      const blob = await s.wrap(ref, dek(i + 1), aad)
      expect((await s.unwrap(ref, blob, aad)).bytes.equals(Buffer.alloc(32, i + 1))).toBe(true)
      await expectCode(s.unwrap(ref, blob, Buffer.from('other')), 'UNWRAP_AAD_MISMATCH')
      const t = Buffer.from(blob)
      t[t.length - 5] = (t[t.length - 5] as number) ^ 1
      await expectCode(s.unwrap(ref, t, aad), 'UNWRAP_AAD_MISMATCH')
    }
    await s.close()
  })

  it('a blob encrypted under another encryption context does not unwrap: UNWRAP_AAD_MISMATCH', async () => {
    const ref = keys['billing']?.arn ?? ''
    const out = await us.send(
      new EncryptCommand({
        KeyId: ref,
        Plaintext: Buffer.alloc(32, 9),
        EncryptionContext: { 'envelope-kms:aad-sha256': '00'.repeat(32) },
      }),
    )
    const s = await open()
    await expectCode(
      s.unwrap(ref, Buffer.from(out.CiphertextBlob ?? []), Buffer.from('x')),
      'UNWRAP_AAD_MISMATCH',
    )
    await s.close()
  })

  it('a disabled key or one pending deletion cannot wrap; a ref that is no ARN is refused', async () => {
    const s = await open()
    await expectCode(s.wrap(keys['off']?.arn ?? '', dek(1), Buffer.alloc(0)), 'KEY_ACTION_INVALID_STATE_ERR')
    await expectCode(
      s.wrap(keys['doomed']?.arn ?? '', dek(1), Buffer.alloc(0)),
      'KEY_ACTION_INVALID_STATE_ERR',
    )
    await expectCode(s.wrap('alias/sync-billing', dek(1), Buffer.alloc(0)), 'CIPHERTEXT_INVALID')
    await s.close()
  })

  it("another account's credentials see none of these keys", async () => {
    const b = await open({}, ENV.idB, ENV.secretB)
    const found = await discoverAll(b)
    for (const k of Object.values(keys)) expect(found.has(k.arn)).toBe(false)
    await b.close()
  })
})

describe('test()', () => {
  it('connect and list pass in every region with good credentials', async () => {
    const s = await open()
    expect(await s.test()).toEqual([
      { check: 'connect', where: US, ok: true },
      { check: 'list', where: US, ok: true },
      { check: 'connect', where: EU, ok: true },
      { check: 'list', where: EU, ok: true },
    ])
    await s.close()
  })

  it('a wrong secret key: every check fails with PROVIDER_LOGIN_FAILED; no secret in the messages', async () => {
    const s = await open({}, ENV.idA, ENV.badSecret)
    const checks = await s.test()
    expect(checks.map((c) => [c.check, c.where, c.ok, c.error?.code])).toEqual([
      ['connect', US, false, 'PROVIDER_LOGIN_FAILED'],
      ['list', US, false, 'PROVIDER_LOGIN_FAILED'],
      ['connect', EU, false, 'PROVIDER_LOGIN_FAILED'],
      ['list', EU, false, 'PROVIDER_LOGIN_FAILED'],
    ])
    const text = JSON.stringify(checks)
    expect(text).not.toContain(process.env[ENV.badSecret])
    expect(text).not.toContain(TENANT_A.secretAccessKey)
    await expectCode(discoverAll(s), 'PROVIDER_LOGIN_FAILED')
    await s.close()
  })

  it('an endpoint where nothing listens: PROVIDER_UNAVAILABLE', async () => {
    const gone = await startEndpoint(backend.engine, US)
    await gone.close()
    const s = await open({ endpoint: gone.url, regions: [US] })
    const checks = await s.test()
    expect(checks.map((c) => [c.check, c.ok, c.error?.code])).toEqual([
      ['connect', false, 'PROVIDER_UNAVAILABLE'],
      ['list', false, 'PROVIDER_UNAVAILABLE'],
    ])
    await s.close()
  })
})

describe('opening a source', () => {
  it('refuses another cloud, no regions, a bad endpoint and an unset secret with INVALID_FIELD_ERR', async () => {
    const azure: ConnectionRecord = {
      ...connection(),
      cloud: 'azure',
      params: {
        cloud: 'azure',
        vaultUrl: 'https://x.vault.azure.net',
        credential: { kind: 'managed-identity' },
      },
    }
    await expectCode(createAwsSyncSource(azure, secrets), 'INVALID_FIELD_ERR')
    await expectCode(open({ regions: [] }), 'INVALID_FIELD_ERR')
    await expectCode(open({ regions: ['US EAST'] }), 'INVALID_FIELD_ERR')
    await expectCode(open({ endpoint: 'ftp://127.0.0.1' }), 'INVALID_FIELD_ERR')
    await expectCode(open({}, 'EKMS_TEST_AWS_SYNC_UNSET'), 'INVALID_FIELD_ERR')
  })
})
