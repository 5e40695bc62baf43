/**
 * Runs every example in examples/ against the test token and a fresh catalog, and checks what it printed.
 */
import { describe, expect, it, vi } from 'vitest'
import { env, tempCatalogPath } from './helpers/engine.js'

function useTestToken(): void {
  process.env['EKMS_PKCS11_TOKEN_LABEL'] = env('EKMS_TEST_TOKEN')
  process.env['EKMS_PKCS11_PIN'] = env('EKMS_TEST_PIN')
  process.env['EKMS_CATALOG'] = tempCatalogPath()
}

describe('examples', () => {
  vi.spyOn(console, 'log').mockImplementation(() => undefined)

  it('quickstart: create, wrap, unwrap, rotate, unwrap-with-rewrap, rewrap', async () => {
    useTestToken()
    const { main } = await import('../examples/quickstart.js')
    const lines = await main()
    expect(lines).toHaveLength(6)
    expect(lines[0]).toMatch(/^created root key [0-9a-f-]{36} \(version 1\) in pkcs11:softhsm2$/)
    expect(lines[1]).toMatch(/wrapped a generated 32-byte DEK under version 1/)
    expect(lines[2]).toBe('unwrap returns the same DEK: true')
    expect(lines[3]).toBe('after rotation the old ciphertext still unwraps: true; rewrapped under version 2')
    expect(lines[4]).toBe('rewrap moved the ciphertext from version 1 to 2')
    expect(lines[5]).toBe('unwrap with the wrong AAD fails with UNWRAP_AAD_MISMATCH')
  })

  it('import-and-standard-keys: BYOK root key, rotation with material, standard key payload', async () => {
    useTestToken()
    const { main } = await import('../examples/import-and-standard-keys.js')
    const lines = await main()
    expect(lines).toEqual([
      expect.stringMatching(/^imported root key [0-9a-f-]{36}: imported=true, extractable=false$/),
      'rotating an imported key without new material fails with MISSING_FIELD_ERR',
      'rotated with new material: now version 2',
      expect.stringMatching(/^standard key [0-9a-f-]{36} returns its payload: true$/),
      "asking for a root key's material fails with KEY_NOT_EXTRACTABLE_ERR",
    ])
  })

  it('secure-import: import token, material unwrapped in the HSM, wrap/unwrap, wrong nonce refused', async () => {
    useTestToken()
    const { main } = await import('../examples/secure-import.js')
    expect(await main()).toEqual([
      expect.stringMatching(/^import token valid until \d{4}-\d\d-\d\dT.*Z, 2 retrievals$/),
      expect.stringMatching(/^securely imported root key [0-9a-f-]{36}: imported=true, extractable=false$/),
      'wrap and unwrap with it: true',
      'a payload that does not prove the nonce fails with INVALID_FIELD_ERR',
    ])
  })

  it('seal-open: record with context, wrong context refused, 8 MiB stream, cached data keys', async () => {
    useTestToken()
    const { main } = await import('../examples/seal-open.js')
    expect(await main()).toEqual([
      expect.stringMatching(/^sealed a \d+-byte record into \d+ bytes$/),
      'open with the same context returns it: true',
      'open with another context fails with CONTEXT_MISMATCH',
      '8 MiB streamed through sealStream and openStream intact: true',
      '10 more seals reused the cached data key: true',
    ])
  })

  it('batch-rewrap: rotation then rewrapMany on the worker pool with progress', async () => {
    useTestToken()
    const { main } = await import('../examples/batch-rewrap.js')
    const lines = await main()
    expect(lines[0]).toBe('wrapped 5000 DEKs under version 1')
    expect(lines).toContain('progress: 5001/5001')
    expect(lines.at(-1)).toBe('rewrapped 5000 to version 2; failed: CIPHERTEXT_INVALID')
  })

  it('keyprotect-http: the official IBM SDK against the served Key Protect API', async () => {
    useTestToken()
    const { main } = await import('../examples/keyprotect-http.js')
    expect(await main()).toEqual([
      expect.stringMatching(/^SDK created root key [0-9a-f-]{36} over HTTP \(status 201\)$/),
      'wrapped a generated DEK: 32 bytes',
      'after rotate, unwrap returns the same DEK (true) and a ciphertext rewrapped under the new version (true)',
      'rotation policy: every 3 months',
      'another instance is refused with HTTP 401',
    ])
  })

  it('qlik-keyproviders: @qlik/api registers a provider, migrates the tenant to it and back', async () => {
    useTestToken()
    const { main } = await import('../examples/qlik-keyproviders.js')
    expect(await main()).toEqual([
      'providers: Qlik (current: true)',
      'registered CMK-01 (status 201), fingerprint of 32 hex characters',
      expect.stringMatching(/^migration (New|InProgress|Completed), new wraps carry #BYOKv1#:<fp>$/),
      'migration Completed: 100%',
      'reset (status 205): data keys back under the default provider: true',
    ])
  })

  it('aws-kms: the AWS SDK against the endpoint, interop with the engine API, an engine on the AWS KMS provider', async () => {
    useTestToken()
    const { main } = await import('../examples/aws-kms.js')
    expect(await main()).toEqual([
      expect.stringMatching(
        /^AWS SDK created key Enabled with ARN arn:aws:kms:eu-central-1:\d{12}:key\/<id>$/,
      ),
      'AWS SDK Encrypt then Decrypt: hello',
      'the engine API unwraps the AWS ciphertext too: hello',
      'engine on the AWS KMS provider (aws-kms): wrap then unwrap returns the DEK: true',
    ])
  })

  it('key-sync: a connection to an AWS KMS account, a CCKM sync job over HTTP, wrap/unwrap with a linked key', async () => {
    useTestToken()
    const { main } = await import('../examples/key-sync.js')
    expect(await main()).toEqual([
      'connection aws-prod tested: ok',
      'sync job started (status 201) for aws-prod',
      'sync job completed: 2 keys discovered, 2 linked',
      'linked keys: orders, payments',
      'wrap then unwrap through AWS KMS returns the DEK: true',
    ])
  })
})
