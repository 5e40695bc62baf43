/**
 * The official Azure SDK (@azure/keyvault-keys KeyClient and CryptographyClient, unchanged) against the
 * Azure-Key-Vault-compatible endpoint over TLS on loopback, in front of a real SoftHSM2 token and a real
 * SQLite catalog. The client trusts the test CA through `tlsOptions: { ca }` and sets
 * `disableChallengeResourceVerification` (127.0.0.1 cannot end with `.vault.azure.net`).
 */
import { createDecipheriv, randomBytes } from 'node:crypto'
import { request } from 'node:https'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CryptographyClient, KeyClient, type KeyClientOptions } from '@azure/keyvault-keys'
import { createAuthenticator } from '../../../src/http/auth.js'
import { VaultKeys } from '../../../src/core/vault-keys/vault-keys.js'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'
import {
  makeTestPki,
  startVault,
  StaticTokenCredential,
  type RunningVault,
  type TestPki,
} from '../../helpers/azure-kv.js'

const KEY_A = 'tenant-a-api-key-0000000000000000'
const KEY_B = 'tenant-b-api-key-0000000000000000'
const KEY_ALL = 'all-tenants-api-key-0000000000000'
const AUTHORITY = 'https://login.microsoftonline.com/00000000-0000-0000-0000-0000000000aa'
const RESOURCE = 'https://vault.azure.net'

let t: TestEngine
let pki: TestPki
let vault: RunningVault
let credA: StaticTokenCredential
let clientA: KeyClient
let clientB: KeyClient
let options: KeyClientOptions

beforeAll(async () => {
  t = await openTestEngine()
  pki = makeTestPki()
  const auth = createAuthenticator({
    apiKeys: [
      { key: KEY_A, subject: 'alice', instances: ['tenant-a'], actions: ['*'] },
      { key: KEY_B, subject: 'bob', instances: ['tenant-b'], actions: ['*'] },
      { key: KEY_ALL, subject: 'root', instances: '*', actions: ['*'] },
    ],
  })
  const service = new VaultKeys({ backend: t.provider, store: t.store.vaultKeys })
  vault = await startVault(pki, {
    vault: service,
    auth,
    challenge: { authorization: AUTHORITY, resource: RESOURCE },
    maxBodyBytes: 4096,
  })
  options = {
    disableChallengeResourceVerification: true,
    tlsOptions: { ca: pki.caPem },
    retryOptions: { maxRetries: 0 },
  }
  credA = new StaticTokenCredential(KEY_A)
  clientA = new KeyClient(vault.url, credA, options)
  clientB = new KeyClient(vault.url, new StaticTokenCredential(KEY_B), options)
})

afterAll(async () => {
  await vault.close()
  await t.engine.close()
})

/** One HTTPS request to the vault, trusting the test CA (its JSON body untyped). */
function raw(
  method: string,
  path: string,
  init: { token?: string; body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: any }> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, vault.url)
    const req = request(
      u,
      {
        method,
        ca: pki.caPem,
        headers: {
          ...(init.token === undefined ? {} : { authorization: `Bearer ${init.token}` }),
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...init.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text === '' ? undefined : JSON.parse(text),
          })
        })
      },
    )
    req.on('error', reject)
    req.end(init.body)
  })
}

/** The RestError fields of a failed SDK call. */
async function restError(p: Promise<unknown>): Promise<{ statusCode: number; code: string }> {
  try {
    await p
  } catch (err) {
    const e = err as { statusCode?: number; code?: string }
    return { statusCode: e.statusCode ?? 0, code: e.code ?? '' }
  }
  throw new Error('expected the call to fail')
}

describe('challenge-based authentication', () => {
  it('answers a request without a token with 401 and the Key Vault challenge, before the body', async () => {
    const r = await raw('POST', '/keys/k/create?api-version=7.4', { body: '{not json' })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(`Bearer authorization="${AUTHORITY}", resource="${RESOURCE}"`)
    expect(r.body.error.code).toBe('Unauthorized')
  })

  it('the SDK follows the challenge: its credential is asked for <resource>/.default', async () => {
    await clientA.createKey('challenge-probe', 'oct-HSM')
    expect(credA.asked.at(0)?.scopes).toEqual([`${RESOURCE}/.default`])
  })

  it('refuses an unknown token with 401 and a token for every instance with 403', async () => {
    const bad = await raw('GET', '/keys?api-version=7.4', { token: 'not-a-known-key-000000000' })
    expect(bad.status).toBe(401)
    expect(bad.headers['www-authenticate']).toContain('Bearer authorization=')
    const all = await raw('GET', '/keys?api-version=7.4', { token: KEY_ALL })
    expect(all.status).toBe(403)
    expect(all.body.error.code).toBe('Forbidden')
  })
})

describe('oct-HSM keys (HSM AES keys)', () => {
  it('create, get by name and by version, kid from the origin the client used', async () => {
    const k = await clientA.createKey('aes-1', 'oct-HSM', {
      keyOps: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
    })
    expect(k.keyType).toBe('oct-HSM')
    expect(k.id).toMatch(new RegExp(`^${vault.url}/keys/aes-1/[0-9a-f]{32}$`))
    expect(k.key?.k).toBeUndefined()
    const latest = await clientA.getKey('aes-1')
    expect(latest.id).toBe(k.id)
    const byVersion = await clientA.getKey('aes-1', { version: k.properties.version! })
    expect(byVersion.properties.enabled).toBe(true)
    expect(byVersion.properties.recoveryLevel).toBe('Recoverable+Purgeable')
  })

  it('encrypt/decrypt A256GCM with AAD (the server makes the IV); a tampered ciphertext fails with BadParameter', async () => {
    const k = await clientA.createKey('aes-gcm', 'oct-HSM')
    const crypto = new CryptographyClient(k, credA, options)
    const aad = Buffer.from('context')
    const enc = await crypto.encrypt({
      algorithm: 'A256GCM',
      plaintext: Buffer.from('hello vault'),
      additionalAuthenticatedData: aad,
    })
    expect(enc.iv?.length).toBe(12)
    expect(enc.authenticationTag?.length).toBe(16)
    const dec = await crypto.decrypt({
      algorithm: 'A256GCM',
      ciphertext: enc.result,
      iv: enc.iv!,
      authenticationTag: enc.authenticationTag!,
      additionalAuthenticatedData: aad,
    })
    expect(Buffer.from(dec.result).toString()).toBe('hello vault')
    const tampered = Buffer.from(enc.result)
    tampered[0] = (tampered[0] ?? 0) ^ 1
    const err = await restError(
      crypto.decrypt({
        algorithm: 'A256GCM',
        ciphertext: tampered,
        iv: enc.iv!,
        authenticationTag: enc.authenticationTag!,
        additionalAuthenticatedData: aad,
      }),
    )
    expect(err).toEqual({ statusCode: 400, code: 'BadParameter' })
    const otherAad = await restError(
      crypto.decrypt({
        algorithm: 'A256GCM',
        ciphertext: enc.result,
        iv: enc.iv!,
        authenticationTag: enc.authenticationTag!,
      }),
    )
    expect(otherAad.code).toBe('BadParameter')
  })

  it('a CryptographyClient made from the key name uses the latest version (/keys/{name}//encrypt)', async () => {
    await clientA.createKey('aes-by-name', 'oct-HSM')
    const kid = `${vault.url}/keys/aes-by-name`
    const crypto = new CryptographyClient(kid, credA, options)
    const enc = await crypto.encrypt({ algorithm: 'A256GCM', plaintext: Buffer.from('x') })
    const dec = await crypto.decrypt({
      algorithm: 'A256GCM',
      ciphertext: enc.result,
      iv: enc.iv!,
      authenticationTag: enc.authenticationTag!,
    })
    expect(Buffer.from(dec.result).toString()).toBe('x')
  })

  it('wrapKey/unwrapKey A256KW (RFC 3394 in the HSM); a tampered blob and a wrong length are BadParameter, and TLS survives the HSM failure', async () => {
    const k = await clientA.createKey('aes-kw', 'oct-HSM')
    const crypto = new CryptographyClient(k, credA, options)
    const dek = randomBytes(32)
    const w = await crypto.wrapKey('A256KW', dek)
    expect(w.result.length).toBe(40)
    const u = await crypto.unwrapKey('A256KW', w.result)
    expect(Buffer.from(u.result).equals(dek)).toBe(true)
    const bad = Buffer.from(w.result)
    bad[5] = (bad[5] ?? 0) ^ 0x80
    expect(await restError(crypto.unwrapKey('A256KW', bad))).toEqual({
      statusCode: 400,
      code: 'BadParameter',
    })
    // SoftHSM2's failed unwrap left an error on Node's OpenSSL queue (errors.ts clearOpenSslErrorQueue): the
    // next TLS request of the process must still work.
    const after = await raw('GET', '/keys/aes-kw/?api-version=7.4', { token: KEY_A })
    expect(after.status).toBe(200)
    expect((await restError(crypto.wrapKey('A256KW', randomBytes(17)))).code).toBe('BadParameter')
  })

  it('import ("Hsm": true) puts the given AES key in the HSM: a GCM encryption decrypts locally with it', async () => {
    const material = randomBytes(32)
    const k = await clientA.importKey(
      'imported',
      { kty: 'oct-HSM', k: material, keyOps: ['encrypt', 'decrypt'] },
      { hardwareProtected: true },
    )
    expect(k.keyOperations).toEqual(['encrypt', 'decrypt'])
    const crypto = new CryptographyClient(k, credA, options)
    const enc = await crypto.encrypt({ algorithm: 'A256GCM', plaintext: Buffer.from('imported!') })
    const d = createDecipheriv('aes-256-gcm', material, enc.iv!)
    d.setAuthTag(enc.authenticationTag!)
    expect(Buffer.concat([d.update(enc.result), d.final()]).toString()).toBe('imported!')
    // key_ops without wrapKey: the server refuses even if the client did not check.
    const r = await raw('POST', `/keys/imported/${k.properties.version}/wrapkey?api-version=7.4`, {
      token: KEY_A,
      body: JSON.stringify({ alg: 'A256KW', value: randomBytes(32).toString('base64url') }),
    })
    expect(r.status).toBe(403)
  })

  it('rotate makes a new current version; versions list both; the old version still decrypts', async () => {
    const k1 = await clientA.createKey('aes-rot', 'oct-HSM')
    const c1 = new CryptographyClient(k1, credA, options)
    const enc = await c1.encrypt({ algorithm: 'A256GCM', plaintext: Buffer.from('v1') })
    const k2 = await clientA.rotateKey('aes-rot')
    expect(k2.properties.version).not.toBe(k1.properties.version)
    expect((await clientA.getKey('aes-rot')).properties.version).toBe(k2.properties.version)
    const versions: string[] = []
    for await (const p of clientA.listPropertiesOfKeyVersions('aes-rot')) versions.push(p.version!)
    expect(versions.sort()).toEqual([k1.properties.version, k2.properties.version].sort())
    const dec = await c1.decrypt({
      algorithm: 'A256GCM',
      ciphertext: enc.result,
      iv: enc.iv!,
      authenticationTag: enc.authenticationTag!,
    })
    expect(Buffer.from(dec.result).toString()).toBe('v1')
  })

  it('update: disabling a version makes it refuse encryption with 403 Forbidden; tags round-trip', async () => {
    const k = await clientA.createKey('aes-upd', 'oct-HSM')
    const p = await clientA.updateKeyProperties('aes-upd', k.properties.version!, {
      enabled: false,
      tags: { team: 'x' },
    })
    expect(p.properties.enabled).toBe(false)
    expect(p.properties.tags).toEqual({ team: 'x' })
    const crypto = new CryptographyClient(`${vault.url}/keys/aes-upd/${k.properties.version}`, credA, options)
    expect(await restError(crypto.encrypt({ algorithm: 'A256GCM', plaintext: Buffer.from('x') }))).toEqual({
      statusCode: 403,
      code: 'Forbidden',
    })
  })
})

describe('RSA-HSM keys (HSM RSA key pairs)', () => {
  it('create 2048 and 3072; the public key is returned as JWK n/e', async () => {
    const k = await clientA.createRsaKey('rsa-2048', { hsm: true, keySize: 2048 })
    expect(k.keyType).toBe('RSA-HSM')
    expect(k.key?.n?.length).toBe(256)
    expect(Buffer.from(k.key!.e!).toString('hex')).toBe('010001')
    expect(k.key?.d).toBeUndefined()
    const k3 = await clientA.createRsaKey('rsa-3072', { hsm: true, keySize: 3072 })
    expect(k3.key?.n?.length).toBe(384)
  })

  it('RSA-OAEP: the client encrypts and wraps locally, the HSM decrypts and unwraps', async () => {
    const k = await clientA.createRsaKey('rsa-oaep', { hsm: true, keySize: 2048 })
    const crypto = new CryptographyClient(k, credA, options)
    const enc = await crypto.encrypt({ algorithm: 'RSA-OAEP', plaintext: Buffer.from('rsa secret') })
    const dec = await crypto.decrypt({ algorithm: 'RSA-OAEP', ciphertext: enc.result })
    expect(Buffer.from(dec.result).toString()).toBe('rsa secret')
    const dek = randomBytes(32)
    const w = await crypto.wrapKey('RSA-OAEP', dek)
    const u = await crypto.unwrapKey('RSA-OAEP', w.result)
    expect(Buffer.from(u.result).equals(dek)).toBe(true)
    const bad = Buffer.from(w.result)
    bad[10] = (bad[10] ?? 0) ^ 1
    expect(await restError(crypto.unwrapKey('RSA-OAEP', bad))).toEqual({
      statusCode: 400,
      code: 'BadParameter',
    })
  })

  it('RSA-OAEP-256 (sent to the server): SoftHSM2 2.6.1 decrypts OAEP with SHA-1 only, so BadParameter', async () => {
    const k = await clientA.createRsaKey('rsa-oaep256', { hsm: true, keySize: 2048 })
    const crypto = new CryptographyClient(k, credA, options)
    const e = await restError(crypto.encrypt({ algorithm: 'RSA-OAEP-256', plaintext: Buffer.from('x') }))
    expect(e).toEqual({ statusCode: 400, code: 'BadParameter' })
    const r = await raw('POST', `/keys/rsa-oaep256/${k.properties.version}/decrypt?api-version=7.4`, {
      token: KEY_A,
      body: JSON.stringify({ alg: 'RSA-OAEP-256', value: randomBytes(256).toString('base64url') }),
    })
    expect(r.status).toBe(400)
    expect(r.body.error.message).toContain('RSA-OAEP-256')
  })
})

describe('soft delete, recover, purge', () => {
  it('delete → deleted key bundle; get is 404; recover; delete again; purge → 204; the name is free again', async () => {
    await clientA.createKey('doomed', 'oct-HSM')
    const poller = await clientA.beginDeleteKey('doomed', { intervalInMs: 10 })
    const deleted = await poller.pollUntilDone()
    expect(deleted.properties.recoveryId).toBe(`${vault.url}/deletedkeys/doomed`)
    const p = deleted.properties
    expect(p.scheduledPurgeDate!.getTime() - p.deletedOn!.getTime()).toBe(90 * 86_400_000)
    expect((await restError(clientA.getKey('doomed'))).statusCode).toBe(404)
    expect((await clientA.getDeletedKey('doomed')).name).toBe('doomed')
    expect(await restError(clientA.createKey('doomed', 'oct-HSM'))).toEqual({
      statusCode: 409,
      code: 'Conflict',
    })
    const names: string[] = []
    for await (const d of clientA.listDeletedKeys()) names.push(d.name)
    expect(names).toContain('doomed')
    const recovered = await (
      await clientA.beginRecoverDeletedKey('doomed', { intervalInMs: 10 })
    ).pollUntilDone()
    expect(recovered.name).toBe('doomed')
    await (await clientA.beginDeleteKey('doomed', { intervalInMs: 10 })).pollUntilDone()
    await clientA.purgeDeletedKey('doomed')
    expect((await restError(clientA.getDeletedKey('doomed'))).statusCode).toBe(404)
    const again = await clientA.createKey('doomed', 'oct-HSM')
    expect(again.name).toBe('doomed')
  })
})

describe('tenants and domain separation', () => {
  it("another tenant's token sees 404 for a key it does not own", async () => {
    await clientA.createKey('tenant-a-only', 'oct-HSM')
    expect(await restError(clientB.getKey('tenant-a-only'))).toEqual({ statusCode: 404, code: 'KeyNotFound' })
    const names: string[] = []
    for await (const p of clientB.listPropertiesOfKeys()) names.push(p.name)
    expect(names).not.toContain('tenant-a-only')
  })

  it('vault keys and engine root keys never meet: not in each other’s lists, refs refused by the other kind', async () => {
    const root = await t.engine.createKey('tenant-a', { name: 'engine-root' })
    expect(await restError(clientA.getKey(root.id))).toEqual({ statusCode: 404, code: 'KeyNotFound' })
    expect((await restError(clientA.getKey('engine-root'))).statusCode).toBe(404)
    const listed = await t.engine.listKeys('tenant-a')
    expect(listed.keys.map((k) => k.name)).not.toContain('aes-1')
    const v = await t.store.vaultKeys.getVaultKeyVersion('tenant-a', 'aes-1', undefined)
    const rootRef = (await t.store.listVersions('tenant-a', root.id))[0]!.providerRef
    const { SecretBytes } = await import('../../../src/core/secret-bytes.js')
    await expect(
      t.provider.encrypt(v!.ref, SecretBytes.adopt(Buffer.alloc(32)), Buffer.alloc(0)),
    ).rejects.toMatchObject({
      code: 'KEY_VERSION_MATERIAL_MISSING',
    })
    await expect(t.provider.vaultEncrypt(rootRef, Buffer.alloc(32), Buffer.alloc(0))).rejects.toMatchObject({
      code: 'KEY_VERSION_MATERIAL_MISSING',
    })
  })
})

describe('bad input', () => {
  it('an unknown api-version is 400 BadParameter in Key Vault’s error body; the encoded api%2Dversion is accepted', async () => {
    const r = await raw('GET', '/keys?api-version=2016-10-01', { token: KEY_A })
    expect(r.status).toBe(400)
    expect(r.body).toEqual({
      error: { code: 'BadParameter', message: expect.stringContaining('2016-10-01') },
    })
    const ok = await raw('GET', '/keys?api%2Dversion=2025-07-01', { token: KEY_A })
    expect(ok.status).toBe(200)
    expect(Array.isArray(ok.body.value)).toBe(true)
  })

  it('malformed JSON is 400, an oversized body 413, an unknown route 404', async () => {
    const bad = await raw('POST', '/keys/x/create?api-version=7.4', { token: KEY_A, body: '{"kty":' })
    expect(bad.status).toBe(400)
    expect(bad.body.error.code).toBe('BadParameter')
    const big = await raw('POST', '/keys/x/create?api-version=7.4', {
      token: KEY_A,
      body: JSON.stringify({ kty: 'oct-HSM', pad: 'x'.repeat(5000) }),
    })
    expect(big.status).toBe(413)
    expect(big.body.error.code).toBe('RequestEntityTooLarge')
    const none = await raw('GET', '/secrets/x?api-version=7.4', { token: KEY_A })
    expect(none.status).toBe(404)
  })

  it('software key types (oct, RSA) and EC are refused: this vault is HSM-only', async () => {
    expect(await restError(clientA.createKey('soft', 'RSA'))).toEqual({
      statusCode: 400,
      code: 'BadParameter',
    })
    expect((await restError(clientA.createEcKey('ec', { hsm: true }))).code).toBe('BadParameter')
  })
})

describe('lists', () => {
  it('pages with nextLink (maxresults), each key once', async () => {
    const client = new KeyClient(vault.url, new StaticTokenCredential(KEY_B), options)
    for (const n of ['page-1', 'page-2', 'page-3']) await client.createKey(n, 'oct-HSM')
    const pages: string[][] = []
    for await (const page of client.listPropertiesOfKeys().byPage({ maxPageSize: 2 }))
      pages.push(page.map((p) => p.name))
    expect(pages.length).toBeGreaterThanOrEqual(2)
    expect(
      pages
        .flat()
        .filter((n) => n.startsWith('page-'))
        .sort(),
    ).toEqual(['page-1', 'page-2', 'page-3'])
  })
})
