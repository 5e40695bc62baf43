/**
 * SoftHSM2 runs its cryptography with Node's own OpenSSL, and a failed operation in the token (here an AES
 * key unwrap of garbage) leaves its error on the thread's OpenSSL error queue; the next TLS read of the
 * process then failed (ECONNRESET). The provider's binding wrapper (module.ts clearingOpenSslErrors) empties
 * the queue after every failed C_* call, wherever it is made: this calls the binding directly, outside any
 * provider path that cleared it before, and then makes an HTTPS round trip in the same process.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Agent, createServer, request, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  acquireModule,
  pkcs11js,
  releaseModule,
  type ModuleEntry,
} from '../../../src/providers/pkcs11/module.js'
import type { Pkcs11Provider } from '../../../src/providers/pkcs11/index.js'
import { env, openProvider, SOFTHSM_MODULE } from '../../helpers/engine.js'
import { makeTestPki, type TestPki } from '../../helpers/azure-kv.js'

let provider: Pkcs11Provider
let entry: ModuleEntry
let pki: TestPki
let server: Server
let port = 0
/** One kept-alive connection: the failure must not break a TLS connection that is already open. */
let agent: Agent

beforeAll(async () => {
  provider = await openProvider() // loads the library and logs in (login is per application)
  entry = acquireModule(SOFTHSM_MODULE)
  pki = makeTestPki()
  server = createServer({ cert: readFileSync(pki.certFile), key: readFileSync(pki.keyFile) }, (_req, res) => {
    res.end('ok')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  port = (server.address() as AddressInfo).port
  agent = new Agent({ keepAlive: true, maxSockets: 1, ca: pki.caPem })
})
afterAll(async () => {
  agent.destroy()
  server.closeAllConnections()
  await new Promise<void>((r) => server.close(() => r()))
  releaseModule(entry)
  await provider.close()
})

function httpsGet(): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve(Buffer.concat(chunks).toString()))
    })
    req.on('error', reject)
    req.end()
  })
}

it('a failed PKCS#11 call (AES key unwrap of garbage in SoftHSM2) does not break the next TLS round trip', async () => {
  const js = pkcs11js()
  const p11 = entry.p11
  const label = env('EKMS_TEST_TOKEN')
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === label)
  if (slot === undefined) throw new Error(`no token ${label}`)
  const s = p11.C_OpenSession(slot, js.CKF_SERIAL_SESSION | js.CKF_RW_SESSION)
  try {
    const kek = p11.C_GenerateKey(s, { mechanism: js.CKM_AES_KEY_GEN }, [
      { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
      { type: js.CKA_TOKEN, value: false },
      { type: js.CKA_VALUE_LEN, value: 32 },
      { type: js.CKA_UNWRAP, value: true },
    ])
    expect(await httpsGet()).toBe('ok')
    for (let i = 0; i < 3; i++) {
      expect(() =>
        p11.C_UnwrapKey(s, { mechanism: js.CKM_AES_KEY_WRAP }, kek, randomBytes(40), [
          { type: js.CKA_CLASS, value: js.CKO_SECRET_KEY },
          { type: js.CKA_KEY_TYPE, value: js.CKK_AES },
          { type: js.CKA_TOKEN, value: false },
        ]),
      ).toThrow()
      expect(await httpsGet()).toBe('ok')
    }
    agent.destroy()
    agent = new Agent({ keepAlive: true, maxSockets: 1, ca: pki.caPem })
    expect(await httpsGet()).toBe('ok')
  } finally {
    p11.C_CloseSession(s)
  }
})
