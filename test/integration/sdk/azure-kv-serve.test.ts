/**
 * `envelope-kms serve` as a real process with the Azure-Key-Vault-compatible listener (EKMS_AZUREKV_*): the
 * official KeyClient and CryptographyClient over its HTTPS port, the same auth file as Key Protect, a clean
 * stop on SIGTERM.
 */
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CryptographyClient, KeyClient } from '@azure/keyvault-keys'
import { env, tempCatalogPath } from '../../helpers/engine.js'
import { makeTestPki, StaticTokenCredential } from '../../helpers/azure-kv.js'

describe('envelope-kms serve with EKMS_AZUREKV_PORT', () => {
  it('serves the Key Vault API over HTTPS beside Key Protect, and stops cleanly on SIGTERM', async () => {
    const pki = makeTestPki()
    const apiKey = 'serve-azure-api-key-0123456789abcdef'
    const authFile = join(env('EKMS_TEST_FILE_DIR'), 'azure-auth.json')
    writeFileSync(
      authFile,
      JSON.stringify({ apiKeys: [{ key: apiKey, subject: 'az', instances: ['az-tenant'], actions: ['*'] }] }),
      { mode: 0o600 },
    )
    const child = spawn(process.execPath, ['dist/cli/main.js', 'serve'], {
      env: {
        ...process.env,
        EKMS_PKCS11_TOKEN_LABEL: env('EKMS_TEST_TOKEN'),
        EKMS_PKCS11_PIN: env('EKMS_TEST_PIN'),
        EKMS_CATALOG: tempCatalogPath(),
        EKMS_AUTH_FILE: authFile,
        EKMS_HTTP_PORT: '0',
        EKMS_AZUREKV_PORT: '0',
        EKMS_AZUREKV_TLS_CERT: pki.certFile,
        EKMS_AZUREKV_TLS_KEY: pki.keyFile,
        EKMS_AUDIT_LOG: join(env('EKMS_TEST_FILE_DIR'), 'azure-audit.log'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString()
        const m = /"azureKvUrl":"(https:\/\/[^"]+)"/.exec(stderr)
        if (m?.[1] !== undefined) resolve(m[1])
      })
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)))
    })
    try {
      const options = { disableChallengeResourceVerification: true, tlsOptions: { ca: pki.caPem } }
      const credential = new StaticTokenCredential(apiKey)
      const client = new KeyClient(url, credential, options)
      const key = await client.createKey('served', 'oct-HSM')
      const crypto = new CryptographyClient(key, credential, options)
      const enc = await crypto.encrypt({ algorithm: 'A256GCM', plaintext: Buffer.from('over serve') })
      const dec = await crypto.decrypt({
        algorithm: 'A256GCM',
        ciphertext: enc.result,
        iv: enc.iv!,
        authenticationTag: enc.authenticationTag!,
      })
      expect(Buffer.from(dec.result).toString()).toBe('over serve')
      expect(stderr).not.toContain(apiKey)
    } finally {
      child.kill('SIGTERM')
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
      expect(code).toBe(0)
    }
  })
})
