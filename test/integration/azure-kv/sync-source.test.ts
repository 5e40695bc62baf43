/**
 * The Azure Key Vault synchronization source against the Azure-Key-Vault-compatible listener over TLS on
 * 127.0.0.1 (a test CA in a file, the challenge-based bearer authentication of the official SDK), in front of
 * a real SoftHSM2 token and a real SQLite catalog. Keys are made with the official @azure/keyvault-keys client
 * as tenant A; the source then discovers them and wraps / unwraps through them. Not real Azure.
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KeyClient } from '@azure/keyvault-keys'
import { createAuthenticator } from '../../../src/http/auth.js'
import { VaultKeys } from '../../../src/core/vault-keys/vault-keys.js'
import { EngineError } from '../../../src/core/errors.js'
import type {
  AzureConnectionParams,
  ConnectionRecord,
  DiscoveredKey,
  SecretResolver,
  SyncSource,
} from '../../../src/core/ports-sync.js'
import { SecretBytes } from '../../../src/index.js'
import { createAzureSyncSource } from '../../../src/providers/azure-kv/index.js'
import { expectCode } from '../../helpers/expect-code.js'
import { env, openTestEngine, type TestEngine } from '../../helpers/engine.js'
import {
  makeTestPki,
  startVault,
  StaticTokenCredential,
  type RunningVault,
  type TestPki,
} from '../../helpers/azure-kv.js'

const KEY_A = 'tenant-a-sync-key-00000000000000'
const KEY_B = 'tenant-b-sync-key-00000000000000'
const AUTHORITY = 'https://login.microsoftonline.com/00000000-0000-0000-0000-0000000000aa'
const RESOURCE = 'https://vault.azure.net'

/** Environment variables the connections name (the catalog would store only these names). */
const ENV_A = 'EKMS_TEST_AZ_SYNC_TOKEN_A'
const ENV_B = 'EKMS_TEST_AZ_SYNC_TOKEN_B'
const ENV_BAD = 'EKMS_TEST_AZ_SYNC_TOKEN_BAD'

/** A resolver as core/sync's: an environment variable or the first line of a file. */
const resolved: string[] = []
const secrets: SecretResolver = async (s) => {
  resolved.push(s.kind === 'env' ? s.name : s.path)
  const v = s.kind === 'env' ? process.env[s.name] : undefined
  if (v === undefined) throw new EngineError('INVALID_FIELD_ERR', `secret: ${s.kind} is not set`)
  return v
}

let backend: TestEngine
let pki: TestPki
let caFile: string
let vault: RunningVault

beforeAll(async () => {
  process.env[ENV_A] = KEY_A
  process.env[ENV_B] = KEY_B
  process.env[ENV_BAD] = 'not-a-known-key-000000000000000'
  backend = await openTestEngine()
  pki = makeTestPki()
  caFile = join(mkdtempSync(join(env('EKMS_TEST_DIR'), 'sync-ca-')), 'ca.pem')
  writeFileSync(caFile, pki.caPem)
  vault = await startVault(pki, {
    vault: new VaultKeys({ backend: backend.provider, store: backend.store.vaultKeys }),
    auth: createAuthenticator({
      apiKeys: [
        { key: KEY_A, subject: 'alice', instances: ['tenant-a'], actions: ['*'] },
        { key: KEY_B, subject: 'bob', instances: ['tenant-b'], actions: ['*'] },
      ],
    }),
    challenge: { authorization: AUTHORITY, resource: RESOURCE },
  })
})
afterAll(async () => {
  await vault.close()
  await backend.engine.close()
})

function connection(params: Partial<AzureConnectionParams> = {}, tokenEnv = ENV_A): ConnectionRecord {
  return {
    tenant: 'sync-tenant',
    id: randomUUID(),
    name: 'azure-vault',
    cloud: 'azure',
    description: undefined,
    params: {
      cloud: 'azure',
      vaultUrl: vault.url,
      credential: { kind: 'static-token', token: { kind: 'env', name: tokenEnv } },
      disableChallengeResourceVerification: true,
      caFile,
      ...params,
    },
    createdAt: 0,
    updatedAt: 0,
    lastTest: undefined,
  }
}

function open(params: Partial<AzureConnectionParams> = {}, tokenEnv = ENV_A): Promise<SyncSource> {
  return createAzureSyncSource(connection(params, tokenEnv), secrets, { retry: { maxRetries: 0 } })
}

function keyClient(token = KEY_A): KeyClient {
  return new KeyClient(vault.url, new StaticTokenCredential(token), {
    disableChallengeResourceVerification: true,
    tlsOptions: { ca: pki.caPem },
    retryOptions: { maxRetries: 0 },
  })
}

async function discoverAll(s: SyncSource): Promise<Map<string, DiscoveredKey>> {
  const out = new Map<string, DiscoveredKey>()
  for await (const k of s.discover()) out.set(k.sourceKeyId, k)
  return out
}

const host = (): string => new URL(vault.url).host
const dek = (fill: number): SecretBytes => SecretBytes.copyOf(Buffer.alloc(32, fill))

describe('discovery, wrap and unwrap of keys made with the official client', () => {
  const ids: Record<string, string[]> = {}

  beforeAll(async () => {
    const c = keyClient()
    const kid = (k: { id?: string | undefined }): string => k.id ?? ''
    ids['rsa'] = [
      kid(
        await c.createKey('sync-rsa', 'RSA-HSM', {
          keySize: 2048,
          keyOps: ['wrapKey', 'unwrapKey'],
          tags: { app: 'billing' },
        }),
      ),
    ]
    ids['oct'] = [kid(await c.createKey('sync-oct', 'oct-HSM', { keySize: 256 }))]
    ids['kw'] = [
      kid(await c.createKey('sync-kw', 'oct-HSM', { keySize: 256, keyOps: ['wrapKey', 'unwrapKey'] })),
    ]
    const r1 = kid(await c.createKey('sync-rotated', 'oct-HSM', { keySize: 256 }))
    await new Promise((r) => setTimeout(r, 1100)) // versions ordered by creation time (seconds on the wire)
    ids['rotated'] = [r1, kid(await c.rotateKey('sync-rotated'))]
    const d = await c.createKey('sync-disabled', 'oct-HSM', { keySize: 256 })
    await c.updateKeyProperties('sync-disabled', d.properties.version ?? '', { enabled: false })
    ids['disabled'] = [kid(d)]
    ids['encrypt-only'] = [
      kid(
        await c.createKey('sync-encrypt-only', 'RSA-HSM', { keySize: 2048, keyOps: ['encrypt', 'decrypt'] }),
      ),
    ]
  })

  it('finds every key with its type, versions (oldest first), usability, state and attributes', async () => {
    const s = await open()
    const found = await discoverAll(s)
    expect([...found.keys()].sort()).toEqual([
      'sync-disabled',
      'sync-encrypt-only',
      'sync-kw',
      'sync-oct',
      'sync-rotated',
      'sync-rsa',
    ])
    const rsa = found.get('sync-rsa')
    expect(rsa).toMatchObject({
      vault: host(),
      name: 'sync-rsa',
      keyType: 'RSA-HSM',
      usable: true,
      enabled: true,
      versions: [{ ref: ids['rsa']?.[0], enabled: true }],
    })
    expect(rsa?.attributes).toMatchObject({ tags: { app: 'billing' }, keyOps: ['wrapKey', 'unwrapKey'] })
    expect(JSON.parse(JSON.stringify(rsa?.attributes))).toEqual(rsa?.attributes) // JSON-safe
    expect(found.get('sync-oct')).toMatchObject({ keyType: 'oct-HSM', usable: true, enabled: true })
    expect(found.get('sync-kw')).toMatchObject({ keyType: 'oct-HSM', usable: true })
    const rotated = found.get('sync-rotated')
    expect(rotated?.versions.map((v) => v.ref)).toEqual(ids['rotated'])
    expect(rotated?.versions.map((v) => v.version)).toEqual(ids['rotated']?.map((k) => k.split('/').at(-1)))
    expect(rotated?.versions.every((v) => typeof v.createdAt === 'number')).toBe(true)
    expect(found.get('sync-disabled')).toMatchObject({
      usable: true,
      enabled: false,
      versions: [{ ref: ids['disabled']?.[0], enabled: false }],
    })
    expect(found.get('sync-encrypt-only')).toMatchObject({ keyType: 'RSA-HSM', usable: false })
    expect(resolved).toContain(ENV_A)
    await s.close()
  })

  it('wraps and unwraps through every usable key and version, each with its blob layout', async () => {
    const s = await open()
    const cases: [string, number][] = [
      [ids['rsa']?.[0] ?? '', 0x03], // RSA-OAEP-256 refused by SoftHSM2 behind the listener: RSA-OAEP
      [ids['oct']?.[0] ?? '', 0x01], // A256GCM
      [ids['kw']?.[0] ?? '', 0x04], // A256KW of DEK ‖ SHA-256(AAD)
      [ids['rotated']?.[0] ?? '', 0x01],
      [ids['rotated']?.[1] ?? '', 0x01],
    ]
    let n = 0
    for (const [ref, layout] of cases) {
      const aad = Buffer.from(`order-${n}`)
      const blob = await s.wrap(ref, dek(n + 1), aad)
      expect(blob[0]).toBe(layout)
      expect((await s.unwrap(ref, blob, aad)).bytes.equals(Buffer.alloc(32, n + 1))).toBe(true)
      n++
    }
    await s.close()
  })

  it('another AAD or an altered blob fails with UNWRAP_AAD_MISMATCH, for every layout', async () => {
    const s = await open()
    for (const ref of [ids['rsa']?.[0] ?? '', ids['oct']?.[0] ?? '', ids['kw']?.[0] ?? '']) {
      const aad = Buffer.from('right')
      const blob = await s.wrap(ref, dek(7), aad)
      await expectCode(s.unwrap(ref, blob, Buffer.from('wrong')), 'UNWRAP_AAD_MISMATCH')
      const t = Buffer.from(blob)
      t[t.length - 3] = (t[t.length - 3] as number) ^ 1
      await expectCode(s.unwrap(ref, t, aad), 'UNWRAP_AAD_MISMATCH')
      await expectCode(s.unwrap(ref, Buffer.of(0x7f, ...blob.subarray(1)), aad), 'UNWRAP_AAD_MISMATCH')
    }
    await s.close()
  })

  it('a disabled version cannot wrap, a key without wrap operations is refused before any wrap call', async () => {
    const s = await open()
    await expectCode(
      s.wrap(ids['disabled']?.[0] ?? '', dek(1), Buffer.alloc(0)),
      'KEY_ACTION_INVALID_STATE_ERR',
    )
    await expectCode(s.wrap(ids['encrypt-only']?.[0] ?? '', dek(1), Buffer.alloc(0)), 'PROVIDER_UNSUPPORTED')
    await expectCode(s.wrap('not a kid', dek(1), Buffer.alloc(0)), 'CIPHERTEXT_INVALID')
    await s.close()
  })

  it("another tenant's token sees none of these keys, and cannot unwrap their blobs", async () => {
    const a = await open()
    const blob = await a.wrap(ids['oct']?.[0] ?? '', dek(3), Buffer.alloc(0))
    const b = await open({}, ENV_B)
    expect([...(await discoverAll(b)).keys()]).toEqual([])
    await expectCode(b.unwrap(ids['oct']?.[0] ?? '', blob, Buffer.alloc(0)), 'KEY_VERSION_MATERIAL_MISSING')
    await a.close()
    await b.close()
  })

  it('a soft-deleted key is no longer discovered', async () => {
    const c = keyClient()
    await c.createKey('sync-doomed', 'oct-HSM', { keySize: 256 })
    const s = await open()
    expect((await discoverAll(s)).has('sync-doomed')).toBe(true)
    await (await c.beginDeleteKey('sync-doomed', { intervalInMs: 10 })).pollUntilDone()
    const after = await discoverAll(s)
    expect(after.has('sync-doomed')).toBe(false)
    expect(after.has('sync-oct')).toBe(true)
    expect((await c.getDeletedKey('sync-doomed')).name).toBe('sync-doomed') // soft-deleted, not purged
    await s.close()
  })
})

describe('test()', () => {
  it('passes connect and list with a good token', async () => {
    const s = await open()
    expect(await s.test()).toEqual([
      { check: 'connect', where: host(), ok: true },
      { check: 'list', where: host(), ok: true },
    ])
    await s.close()
  })

  it('a token the vault refuses: list fails with PROVIDER_LOGIN_FAILED; the token is in no message', async () => {
    const s = await open({}, ENV_BAD)
    const checks = await s.test()
    expect(checks.map((c) => [c.check, c.ok, c.error?.code])).toEqual([
      ['connect', true, undefined],
      ['list', false, 'PROVIDER_LOGIN_FAILED'],
    ])
    expect(JSON.stringify(checks)).not.toContain('not-a-known-key')
    await s.close()
  })

  it('an unset token variable: connect and list fail with PROVIDER_LOGIN_FAILED', async () => {
    const s = await open({}, 'EKMS_TEST_AZ_SYNC_TOKEN_UNSET')
    const checks = await s.test()
    expect(checks.map((c) => [c.check, c.ok, c.error?.code])).toEqual([
      ['connect', false, 'PROVIDER_LOGIN_FAILED'],
      ['list', false, 'PROVIDER_LOGIN_FAILED'],
    ])
    await s.close()
  })

  it('a vault URL where nothing listens: list fails with PROVIDER_UNAVAILABLE; discovery throws it', async () => {
    const gone = await startVault(pki, {
      vault: new VaultKeys({ backend: backend.provider, store: backend.store.vaultKeys }),
      auth: createAuthenticator({ apiKeys: [] }),
      challenge: { authorization: AUTHORITY, resource: RESOURCE },
    })
    await gone.close()
    const s = await open({ vaultUrl: gone.url })
    const checks = await s.test()
    expect(checks.map((c) => [c.check, c.ok, c.error?.code])).toEqual([
      ['connect', true, undefined],
      ['list', false, 'PROVIDER_UNAVAILABLE'],
    ])
    await expectCode(discoverAll(s), 'PROVIDER_UNAVAILABLE')
    await s.close()
  })

  it('without the test CA the TLS handshake fails: list is not ok', async () => {
    const s = await open({ caFile: undefined })
    const [, list] = await s.test()
    expect(list?.ok).toBe(false)
    await s.close()
  })
})

describe('opening a source', () => {
  it('refuses another cloud, a non-https vault URL and an unreadable CA file with INVALID_FIELD_ERR', async () => {
    const aws: ConnectionRecord = {
      ...connection(),
      cloud: 'aws',
      params: { cloud: 'aws', regions: ['us-east-1'], credentials: { kind: 'default' } },
    }
    await expectCode(createAzureSyncSource(aws, secrets), 'INVALID_FIELD_ERR')
    await expectCode(open({ vaultUrl: 'http://127.0.0.1:1' }), 'INVALID_FIELD_ERR')
    await expectCode(open({ vaultUrl: `${vault.url}/keys` }), 'INVALID_FIELD_ERR')
    await expectCode(open({ caFile: join(caFile, 'missing') }), 'INVALID_FIELD_ERR')
  })
})
