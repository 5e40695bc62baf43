/**
 * Import-token rules (src/core/keys/import-token.ts) that need no HSM, through the real EnvelopeEngine over
 * the fakes: a provider without import tokens (like AWS KMS) refuses them with PROVIDER_UNSUPPORTED, and
 * the options and secure-import fields are validated before any provider call. The HSM side (key pair,
 * unwrap, nonce proof) is tested against SoftHSM2 in test/integration/http/keyprotect-import-token.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { EnvelopeEngine } from '../../../src/core/engine.js'
import { expectCode } from '../../helpers/expect-code.js'
import { createInsecureMemoryProvider } from '../../fakes/fake-provider.js'
import { ManualClock } from '../../fakes/manual-clock.js'
import { createMemoryStore } from '../../fakes/memory-store.js'

const I = 'import-token'

function engine(): { engine: EnvelopeEngine; store: ReturnType<typeof createMemoryStore> } {
  const store = createMemoryStore()
  const provider = createInsecureMemoryProvider()
  return { engine: new EnvelopeEngine({ provider, store, clock: new ManualClock() }), store }
}

describe('import tokens without provider support', () => {
  it('createImportToken and a secure import answer PROVIDER_UNSUPPORTED and write nothing', async () => {
    const { engine: e, store } = engine()
    await expectCode(e.createImportToken(I), 'PROVIDER_UNSUPPORTED')
    await expectCode(
      e.createKey(I, {
        name: 'key-1',
        secureImport: { payload: Buffer.alloc(256), encryptedNonce: Buffer.alloc(28), iv: Buffer.alloc(12) },
      }),
      'PROVIDER_UNSUPPORTED',
    )
    expect(store.calls.putImportToken).toBeUndefined()
    expect((await e.listKeys(I)).total).toBe(0)
  })

  it('validates expiration (300-86400 s) and maxAllowedRetrievals (1-500) first', async () => {
    const { engine: e } = engine()
    await expectCode(e.createImportToken(I, { expirationSec: 299 }), 'INVALID_FIELD_ERR')
    await expectCode(e.createImportToken(I, { expirationSec: 86_401 }), 'INVALID_FIELD_ERR')
    await expectCode(e.createImportToken(I, { maxAllowedRetrievals: 0 }), 'INVALID_FIELD_ERR')
    await expectCode(e.createImportToken(I, { maxAllowedRetrievals: 1.5 }), 'INVALID_FIELD_ERR')
  })

  it('getImportToken without a token: IMPORT_TOKEN_NOT_FOUND_ERR', async () => {
    await expectCode(engine().engine.getImportToken(I), 'IMPORT_TOKEN_NOT_FOUND_ERR')
  })

  it('a secure import needs payload, encryptedNonce and iv, and not a payload beside it', async () => {
    const { engine: e } = engine()
    const secureImport = { payload: Buffer.alloc(256), encryptedNonce: Buffer.alloc(28) } as never
    await expectCode(e.createKey(I, { name: 'key-1', secureImport }), 'MISSING_FIELD_ERR')
    await expectCode(
      e.createKey(I, {
        name: 'key-1',
        payload: Buffer.alloc(32),
        secureImport: { payload: Buffer.alloc(256), encryptedNonce: Buffer.alloc(28), iv: Buffer.alloc(12) },
      }),
      'INVALID_FIELD_ERR',
    )
    await expectCode(
      e.createKey(I, {
        name: 'key-1',
        extractable: true,
        secureImport: { payload: Buffer.alloc(256), encryptedNonce: Buffer.alloc(28), iv: Buffer.alloc(12) },
      }),
      'INVALID_FIELD_ERR',
    )
  })
})
