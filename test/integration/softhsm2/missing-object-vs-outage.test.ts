/**
 * KEY_VERSION_MATERIAL_MISSING is said only when the token answers and has no such object. While SoftHSM2's
 * token storage is away, C_FindObjects answers an empty list on a working session; that outage must stay a
 * provider failure (PROVIDER_ERROR / PROVIDER_UNAVAILABLE / PROVIDER_TOKEN_NOT_FOUND), never "the material is gone for good". Moves this
 * test file's own token directory (test/per-file-token.ts), so it has a file of its own.
 */
import { renameSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { SecretBytes } from '../../../src/index.js'
import { openProvider } from '../../helpers/engine.js'
import { expectCode } from '../../helpers/expect-code.js'

const tokens = join(process.env['EKMS_TEST_FILE_DIR'] ?? '', 'tokens')
const away = `${tokens}-away`
let moved = false

afterEach(() => {
  if (moved) renameSync(away, tokens)
  moved = false
})

describe('a version object that cannot be found', () => {
  it('is KEY_VERSION_MATERIAL_MISSING when the token answers, a provider failure while its storage is away', async () => {
    const p = await openProvider()
    try {
      const gone = await p.createVersion({ catalogId: 'outage', keyId: 'k-gone', version: 1 })
      const unused = await p.createVersion({ catalogId: 'outage', keyId: 'k-unused', version: 1 })
      await p.destroyVersion(gone)
      const missing = await expectCode(
        p.encrypt(gone, SecretBytes.copyOf(Buffer.alloc(32)), Buffer.alloc(0)),
        'KEY_VERSION_MATERIAL_MISSING',
      )
      expect(missing.retryable).toBe(false)
      // `unused` was never looked up: its first use searches the token, which now has no storage.
      renameSync(tokens, away)
      moved = true
      const outage = await expectCode(
        p.encrypt(unused, SecretBytes.copyOf(Buffer.alloc(32)), Buffer.alloc(0)),
        'PROVIDER_ERROR',
        'PROVIDER_UNAVAILABLE',
        'PROVIDER_TOKEN_NOT_FOUND',
      )
      expect(outage.code).not.toBe('KEY_VERSION_MATERIAL_MISSING')
    } finally {
      await p.close()
    }
  })
})
