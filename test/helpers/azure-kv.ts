/**
 * Test wiring for the Azure-Key-Vault-compatible endpoint: a test CA and a server certificate for 127.0.0.1
 * and localhost (made with the openssl command line), a real HTTPS server on 127.0.0.1 (ephemeral port) in
 * front of a real vault-key service, and a TokenCredential that hands the SDK a test API key.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { serve } from '@hono/node-server'
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth'
import { createAzureKvApp, type AzureKvAppOptions } from '../../src/http/azurekv/index.js'
import { env } from './engine.js'

export interface TestPki {
  readonly caPem: string
  readonly certFile: string
  readonly keyFile: string
}

/** A throwaway CA and a server certificate (SAN IP:127.0.0.1, DNS:localhost) signed by it. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(env('EKMS_TEST_DIR'), 'pki-'))
  const f = (n: string): string => join(dir, n)
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { stdio: 'ignore' })
  }
  ssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=envelope-kms test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  )
  ssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  )
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  ssl(
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.pem'),
    '-days',
    '2',
    '-extfile',
    f('ext.cnf'),
  )
  return { caPem: readFileSync(f('ca.pem'), 'utf8'), certFile: f('server.pem'), keyFile: f('server.key') }
}

/** A TokenCredential returning `token`; records the scopes and tenant the SDK asked for. */
export class StaticTokenCredential implements TokenCredential {
  readonly asked: { scopes: string[]; tenantId: string | undefined }[] = []
  constructor(readonly token: string) {}
  async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
    this.asked.push({ scopes: [scopes].flat(), tenantId: options?.tenantId })
    return { token: this.token, expiresOnTimestamp: Date.now() + 3_600_000 }
  }
}

export interface RunningVault {
  readonly url: string
  close(): Promise<void>
}

/** Serves {@link createAzureKvApp} over HTTPS on 127.0.0.1. */
export async function startVault(pki: TestPki, options: AzureKvAppOptions): Promise<RunningVault> {
  const app = createAzureKvApp(options)
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve(
      {
        fetch: app.fetch,
        hostname: '127.0.0.1',
        port: 0,
        createServer,
        serverOptions: { cert: readFileSync(pki.certFile), key: readFileSync(pki.keyFile) },
      },
      () => resolve(s),
    )
  })
  const port = (server.address() as AddressInfo).port
  return {
    url: `https://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        ;(server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.()
      }),
  }
}
