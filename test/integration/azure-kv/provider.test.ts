/**
 * The Azure Key Vault provider (the official @azure/keyvault-keys client underneath, unchanged) against the
 * Azure-Key-Vault-compatible listener over TLS on 127.0.0.1 (a test CA, the challenge-based bearer
 * authentication), in front of a real SoftHSM2 token and a real SQLite catalog: the provider conformance
 * suite with oct-HSM keys, an engine whose root keys live in "Azure", RSA-HSM keys, destroy semantics, and
 * the typed errors of a wrong token, another tenant's token and a listener that is down. Not real Azure.
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KeyClient } from '@azure/keyvault-keys'
import { createAuthenticator } from '../../../src/http/auth.js'
import { VaultKeys } from '../../../src/core/vault-keys/vault-keys.js'
import { createEngine, SecretBytes, type EnvelopeEngine } from '../../../src/index.js'
import { createAzureKvProvider, type AzureKvProviderOptions } from '../../../src/providers/azure-kv/index.js'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'
import { runRootKeyProviderConformance } from '../../conformance/root-key-provider.js'
import { expectCode } from '../../helpers/expect-code.js'
import { env, openTestEngine, tempCatalogPath, type TestEngine } from '../../helpers/engine.js'
import {
  makeTestPki,
  startVault,
  StaticTokenCredential,
  type RunningVault,
  type TestPki,
} from '../../helpers/azure-kv.js'

const KEY_A = 'tenant-a-api-key-0000000000000000'
const KEY_B = 'tenant-b-api-key-0000000000000000'
const KEY_NO_RNG = 'tenant-a-no-rng-key-0000000000000'
const AUTHORITY = 'https://login.microsoftonline.com/00000000-0000-0000-0000-0000000000aa'
const RESOURCE = 'https://vault.azure.net'

let backend: TestEngine
let pki: TestPki
let vault: RunningVault

beforeAll(async () => {
  backend = await openTestEngine()
  pki = makeTestPki()
  const auth = createAuthenticator({
    apiKeys: [
      { key: KEY_A, subject: 'alice', instances: ['tenant-a'], actions: ['*'] },
      { key: KEY_B, subject: 'bob', instances: ['tenant-b'], actions: ['*'] },
      {
        key: KEY_NO_RNG,
        subject: 'carol',
        instances: ['tenant-a'],
        actions: ['kms.secrets.create', 'kms.secrets.list', 'kms.secrets.read'],
      },
    ],
  })
  vault = await startVault(pki, {
    vault: new VaultKeys({ backend: backend.provider, store: backend.store.vaultKeys }),
    auth,
    challenge: { authorization: AUTHORITY, resource: RESOURCE },
  })
})
afterAll(async () => {
  await vault.close()
  await backend.engine.close()
})

function options(extra: Partial<AzureKvProviderOptions> = {}): AzureKvProviderOptions {
  return {
    vaultUrl: vault.url,
    credential: { kind: 'static-token', token: KEY_A },
    disableChallengeResourceVerification: true,
    tlsOptions: { ca: pki.caPem },
    retry: { maxRetries: 0 },
    deletePollIntervalMs: 10,
    ...extra,
  }
}

/** The official client as tenant A, to look at what the provider left in the vault. */
function keyClient(): KeyClient {
  return new KeyClient(vault.url, new StaticTokenCredential(KEY_A), {
    disableChallengeResourceVerification: true,
    tlsOptions: { ca: pki.caPem },
    retryOptions: { maxRetries: 0 },
  })
}

runRootKeyProviderConformance(
  'azure-kv (oct-HSM, A256GCM) against the Azure-Key-Vault-compatible listener',
  () => createAzureKvProvider(options()),
)

async function engineOnAzure(extra: Partial<AzureKvProviderOptions> = {}): Promise<EnvelopeEngine> {
  return createEngine({
    provider: await createAzureKvProvider(options(extra)),
    store: await openSqliteStore({ path: tempCatalogPath() }),
    lifecycle: { minRotationIntervalMs: 0 },
  })
}

describe('an engine whose root keys live in (this listener speaking) Azure Key Vault', () => {
  it('creates a key, wraps, rotates, unwraps the old and the new ciphertexts, rewraps; AAD bound', async () => {
    const engine = await engineOnAzure()
    const key = await engine.createKey('app', { name: 'on-azure' })
    const w1 = await engine.wrap('app', key.id, { aad: ['order-1'] })
    const raw = Buffer.from(w1.ciphertext, 'base64')
    expect(raw[1]).toBe(0x10) // mechanism: provider-opaque blob
    const u1 = await engine.unwrap('app', key.id, w1.ciphertext, { aad: ['order-1'] })
    expect(u1.plaintext.equals(w1.plaintext ?? Buffer.alloc(0))).toBe(true)
    await expectCode(engine.unwrap('app', key.id, w1.ciphertext, { aad: ['order-2'] }), 'UNWRAP_AAD_MISMATCH')

    await engine.rotate('app', key.id)
    const w2 = await engine.wrap('app', key.id, { aad: ['order-3'] })
    const old = await engine.unwrap('app', key.id, w1.ciphertext, { aad: ['order-1'] })
    expect(old.keyVersion.number).toBe(1)
    expect(old.plaintext.equals(u1.plaintext)).toBe(true)
    expect(old.rewrapped?.keyVersion.number).toBe(2)
    const neu = await engine.unwrap('app', key.id, w2.ciphertext, { aad: ['order-3'] })
    expect(neu.keyVersion.number).toBe(2)
    expect(neu.plaintext.equals(w2.plaintext ?? Buffer.alloc(0))).toBe(true)
    const r = await engine.rewrap('app', key.id, w1.ciphertext, { aad: ['order-1'] })
    expect(r.rewrappedKeyVersion.number).toBe(2)
    expect(
      (await engine.unwrap('app', key.id, r.ciphertext, { aad: ['order-1'] })).plaintext.equals(u1.plaintext),
    ).toBe(true)

    // Both engine versions are versions of one Key Vault key, tagged with the engine's ids.
    const versions = []
    for await (const v of keyClient().listPropertiesOfKeyVersions(`ekms-${key.id}`)) versions.push(v)
    expect(versions.map((v) => v.tags?.['envelope-kms-version']).sort()).toEqual(['1', '2'])
    expect((await engine.reconcile()).unknown).toEqual([])
    await engine.close()
  })
})

describe('destroyVersion', () => {
  it('disables one version while others live; deletes and purges the key with its last version', async () => {
    const p = await createAzureKvProvider(options())
    const keyId = randomUUID()
    const catalogId = randomUUID()
    const v1 = await p.createVersion({ catalogId, keyId, version: 1 })
    const v2 = await p.createVersion({ catalogId, keyId, version: 2 })
    const aad = Buffer.from('aad')
    const blob2 = await p.encryptOpaque(v2, SecretBytes.copyOf(Buffer.alloc(32, 2)), aad)
    await p.destroyVersion(v1)
    await expectCode(
      p.encryptOpaque(v1, SecretBytes.copyOf(Buffer.alloc(32)), aad),
      'KEY_ACTION_INVALID_STATE_ERR',
    )
    expect((await p.decryptOpaque(v2, blob2, aad)).bytes.equals(Buffer.alloc(32, 2))).toBe(true)
    const listed = (await p.listObjects()).filter((o) => o.keyId === keyId)
    expect(listed).toEqual([{ ref: v2, catalogId, keyId, version: 2 }])
    await p.destroyVersion(v2)
    await p.destroyVersion(v2) // idempotent
    const client = keyClient()
    const gone = await client.getKey(`ekms-${keyId}`).then(
      () => 0,
      (e: unknown) => (e as { statusCode?: number }).statusCode,
    )
    expect(gone).toBe(404)
    const purged = await client.getDeletedKey(`ekms-${keyId}`).then(
      () => 0,
      (e: unknown) => (e as { statusCode?: number }).statusCode,
    )
    expect(purged).toBe(404)
    await expectCode(p.decryptOpaque(v2, blob2, aad), 'KEY_VERSION_MATERIAL_MISSING')
    await p.close()
  })

  it('with purgeOnDestroy false, the key is left soft-deleted (recoverable until its retention ends)', async () => {
    const p = await createAzureKvProvider(options({ purgeOnDestroy: false }))
    const keyId = randomUUID()
    const ref = await p.createVersion({ catalogId: randomUUID(), keyId, version: 1 })
    await p.destroyVersion(ref)
    const deleted = await keyClient().getDeletedKey(`ekms-${keyId}`)
    expect(deleted.properties.scheduledPurgeDate).toBeInstanceOf(Date)
    await p.destroyVersion(ref) // idempotent on a soft-deleted key
    await p.close()
  })
})

describe('RSA-HSM keys', () => {
  it('RSA-OAEP (wrapped by the SDK with the public key, unwrapped in the HSM) binds the AAD', async () => {
    const p = await createAzureKvProvider(options({ keyType: 'RSA-HSM', rsaAlgorithm: 'RSA-OAEP' }))
    const ref = await p.createVersion({ catalogId: randomUUID(), keyId: randomUUID(), version: 1 })
    const aad = Buffer.from('rsa-aad')
    const blob = await p.encryptOpaque(ref, SecretBytes.copyOf(Buffer.alloc(32, 9)), aad)
    expect(blob[0]).toBe(0x03)
    expect(blob).toHaveLength(1 + 256)
    expect((await p.decryptOpaque(ref, blob, aad)).bytes.equals(Buffer.alloc(32, 9))).toBe(true)
    await expectCode(p.decryptOpaque(ref, blob, Buffer.from('other')), 'UNWRAP_AAD_MISMATCH')
    const t = Buffer.from(blob)
    t[100] = (t[100] as number) ^ 1
    await expectCode(p.decryptOpaque(ref, t, aad), 'UNWRAP_AAD_MISMATCH')
    await p.destroyVersion(ref)
    await p.close()
  })

  it('RSA-OAEP-256 runs in the vault, which SoftHSM2 behind this listener cannot: PROVIDER_UNSUPPORTED', async () => {
    const p = await createAzureKvProvider(options({ keyType: 'RSA-HSM' }))
    const ref = await p.createVersion({ catalogId: randomUUID(), keyId: randomUUID(), version: 1 })
    await expectCode(
      p.encryptOpaque(ref, SecretBytes.copyOf(Buffer.alloc(32)), Buffer.alloc(0)),
      'PROVIDER_UNSUPPORTED',
    )
    await p.destroyVersion(ref)
    await p.close()
  })
})

describe('random bytes and health', () => {
  it('generateRandom takes the vault RNG (POST /rng); a principal without it, or without encrypt, gets PROVIDER_ACCESS_DENIED', async () => {
    const p = await createAzureKvProvider(options())
    const a = await p.generateRandom(64)
    expect(a.length).toBe(64)
    await expectCode(p.generateRandom(0), 'INVALID_FIELD_ERR')
    await p.close()
    const limited = await createAzureKvProvider(
      options({ credential: { kind: 'static-token', token: KEY_NO_RNG } }),
    )
    await expectCode(limited.generateRandom(16), 'PROVIDER_ACCESS_DENIED')
    // An IAM refusal of a crypto call (innererror ForbiddenByPolicy) is access, not the key's state.
    const ref = await limited.createVersion({ catalogId: randomUUID(), keyId: randomUUID(), version: 1 })
    await expectCode(
      limited.encryptOpaque(ref, SecretBytes.copyOf(Buffer.alloc(32)), Buffer.alloc(0)),
      'PROVIDER_ACCESS_DENIED',
    )
    expect((await limited.health()).ok).toBe(true) // listing is allowed
    await limited.close()
  })

  it('health is cached for a second (single-flight)', async () => {
    let requests = 0
    const p = await createAzureKvProvider(
      options({
        additionalPolicies: [
          {
            position: 'perCall',
            policy: {
              name: 'count',
              sendRequest: (req, next) => {
                requests++
                return next(req)
              },
            },
          },
        ],
      }),
    )
    const answers = await Promise.all([p.health(), p.health(), p.health()])
    expect(answers.every((h) => h.ok)).toBe(true)
    const first = requests
    expect(first).toBeGreaterThan(0)
    expect((await p.health()).ok).toBe(true)
    expect(requests).toBe(first)
    await new Promise((r) => setTimeout(r, 1050))
    expect((await p.health()).ok).toBe(true)
    expect(requests).toBeGreaterThan(first)
    await p.close()
  })
})

describe('credentials and errors', () => {
  it('a token the vault does not know: PROVIDER_LOGIN_FAILED, and health says not ok', async () => {
    const p = await createAzureKvProvider(
      options({ credential: { kind: 'static-token', token: 'not-a-known-key-000000000000000' } }),
    )
    await expectCode(
      p.createVersion({ catalogId: randomUUID(), keyId: randomUUID(), version: 1 }),
      'PROVIDER_LOGIN_FAILED',
    )
    const h = await p.health()
    expect(h.ok).toBe(false)
    expect(h.detail).not.toContain('not-a-known-key')
    await p.close()
  })

  it("another tenant's token does not see tenant A's key versions: KEY_VERSION_MATERIAL_MISSING", async () => {
    const a = await createAzureKvProvider(options())
    const ref = await a.createVersion({ catalogId: randomUUID(), keyId: randomUUID(), version: 1 })
    const blob = await a.encryptOpaque(ref, SecretBytes.copyOf(Buffer.alloc(32, 1)), Buffer.alloc(0))
    const b = await createAzureKvProvider(options({ credential: { kind: 'static-token', token: KEY_B } }))
    const e = await expectCode(b.decryptOpaque(ref, blob, Buffer.alloc(0)), 'KEY_VERSION_MATERIAL_MISSING')
    expect(e.retryable).toBe(false)
    expect((await b.listObjects()).some((o) => o.ref === ref)).toBe(false)
    await b.close()
    await a.destroyVersion(ref)
    await a.close()
  })

  it('a token read from a file on each request (renewable by another process)', async () => {
    const file = join(mkdtempSync(join(env('EKMS_TEST_DIR'), 'token-')), 'token')
    writeFileSync(file, `${KEY_B}\n`)
    const p = await createAzureKvProvider(options({ credential: { kind: 'static-token', tokenFile: file } }))
    expect((await p.generateRandom(8)).length).toBe(8)
    await p.close()
  })

  it('a listener that is down: PROVIDER_UNAVAILABLE (retryable), health not ok', async () => {
    const gone = await startVault(pki, {
      vault: new VaultKeys({ backend: backend.provider, store: backend.store.vaultKeys }),
      auth: createAuthenticator({
        apiKeys: [{ key: KEY_A, subject: 'a', instances: ['tenant-a'], actions: ['*'] }],
      }),
      challenge: { authorization: AUTHORITY, resource: RESOURCE },
    })
    const url = gone.url
    await gone.close()
    const p = await createAzureKvProvider(options({ vaultUrl: url }))
    const e = await expectCode(p.generateRandom(8), 'PROVIDER_UNAVAILABLE')
    expect(e.retryable).toBe(true)
    expect((await p.health()).ok).toBe(false)
    await p.close()
  })

  it('configuration errors are CONFIG_INVALID', async () => {
    await expectCode(createAzureKvProvider(options({ vaultUrl: 'http://127.0.0.1:1' })), 'CONFIG_INVALID')
    await expectCode(
      createAzureKvProvider(options({ credential: { kind: 'static-token', token: ' ' } })),
      'CONFIG_INVALID',
    )
    await expectCode(createAzureKvProvider(options({ keyNamePrefix: 'bad_prefix' })), 'CONFIG_INVALID')
  })
})
