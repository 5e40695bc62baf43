import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { describeConfig, loadConfig, resolveTenantKeysConfig } from '../../src/index.js'
import { expectCodeSync } from '../helpers/expect-code.js'

describe('configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ekms-config-'))

  it('reads the PIN from the environment, or from the PIN file', () => {
    const c = loadConfig({ EKMS_PKCS11_PIN: '1234', EKMS_PKCS11_TOKEN_LABEL: 't', EKMS_CATALOG: 'x.sqlite' })
    expect(c.pkcs11).toMatchObject({ pin: '1234', tokenLabel: 't', profile: 'softhsm2' })
    expect(c.catalog.path).toBe('x.sqlite')
    const pinFile = join(dir, 'pin')
    writeFileSync(pinFile, '5678\n')
    expect(loadConfig({ EKMS_PKCS11_PIN_FILE: pinFile }).pkcs11.pin).toBe('5678')
  })

  it('migration tuning: EKMS_MIGRATION_BATCH_SIZE and EKMS_MIGRATION_CHECKPOINT_MS, range-checked', () => {
    expect(resolveTenantKeysConfig({})).toMatchObject({
      migrationBatchSize: undefined,
      migrationCheckpointIntervalMs: undefined,
    })
    expect(
      resolveTenantKeysConfig({ EKMS_MIGRATION_BATCH_SIZE: '5', EKMS_MIGRATION_CHECKPOINT_MS: '0' }),
    ).toMatchObject({ migrationBatchSize: 5, migrationCheckpointIntervalMs: 0 })
    for (const [name, v] of [
      ['EKMS_MIGRATION_BATCH_SIZE', '0'],
      ['EKMS_MIGRATION_BATCH_SIZE', '10001'],
      ['EKMS_MIGRATION_BATCH_SIZE', '2.5'],
      ['EKMS_MIGRATION_CHECKPOINT_MS', '-1'],
      ['EKMS_MIGRATION_CHECKPOINT_MS', 'soon'],
    ] as const) {
      expect(
        expectCodeSync(() => resolveTenantKeysConfig({ [name]: v }), 'CONFIG_INVALID').message,
      ).toContain(name)
    }
  })

  it('a missing PIN file points to `npx envelope-kms init`, which an installed package has (not `npm run setup`)', () => {
    const message = expectCodeSync(
      () => loadConfig({ EKMS_PKCS11_PIN_FILE: join(dir, 'no-such-pin') }),
      'CONFIG_INVALID',
    ).message
    expect(message).toContain('npx envelope-kms init')
    expect(message).not.toContain('npm run setup')
  })

  it('merges a JSON file under the environment', () => {
    const file = join(dir, 'cfg.json')
    writeFileSync(
      file,
      JSON.stringify({
        pkcs11: { module: '/m.so', tokenLabel: 'from-file', pin: 'p' },
        catalog: { path: 'f.sqlite' },
      }),
    )
    const c = loadConfig({ EKMS_CONFIG: file, EKMS_PKCS11_TOKEN_LABEL: 'from-env' })
    expect(c.pkcs11).toMatchObject({ module: '/m.so', tokenLabel: 'from-env', pin: 'p' })
    expect(c.catalog.path).toBe('f.sqlite')
  })

  it('fails with CONFIG_INVALID when no PIN can be found or the file is bad, and never prints the PIN', () => {
    expect(
      expectCodeSync(() => loadConfig({ EKMS_PKCS11_PIN_FILE: join(dir, 'missing') }), 'CONFIG_INVALID')
        .message,
    ).toMatch(/PIN file/)
    const bad = join(dir, 'bad.json')
    writeFileSync(bad, '{')
    expectCodeSync(() => loadConfig({ EKMS_CONFIG: bad, EKMS_PKCS11_PIN: 'x' }), 'CONFIG_INVALID')
    const c = loadConfig({ EKMS_PKCS11_PIN: 'do-not-print-me' })
    expect(JSON.stringify(describeConfig(c))).not.toContain('do-not-print-me')
  })

  it('an EKMS_CONFIG file with an unknown key or a wrong type is CONFIG_INVALID naming the file, the path and the expected type', () => {
    const typo = join(dir, 'typo.json')
    writeFileSync(typo, JSON.stringify({ pkcs11: { tokenLabl: 'x', pin: 'p' }, dekcache: true }))
    const e1 = expectCodeSync(() => loadConfig({ EKMS_CONFIG: typo }), 'CONFIG_INVALID')
    expect(e1.message).toContain(typo)
    expect(e1.message).toMatch(/pkcs11: Unrecognized key: "tokenLabl"/)
    expect(e1.message).toMatch(/\(top level\): Unrecognized key: "dekcache"/)
    const wrong = join(dir, 'wrong.json')
    writeFileSync(wrong, JSON.stringify({ pkcs11: { pin: 1234 }, dekCache: 'yes' }))
    const e2 = expectCodeSync(() => loadConfig({ EKMS_CONFIG: wrong }), 'CONFIG_INVALID')
    expect(e2.message).toMatch(/pkcs11\.pin: Invalid input: expected string/)
    expect(e2.message).toMatch(/dekCache: Invalid input: expected boolean/)
    expect(e2.message).not.toContain('1234')
  })

  it('dekCache in the EKMS_CONFIG file is honoured, and EKMS_DEK_CACHE overrides it', () => {
    const file = join(dir, 'cache.json')
    writeFileSync(file, JSON.stringify({ pkcs11: { pin: 'p' }, dekCache: true }))
    expect(loadConfig({ EKMS_CONFIG: file }).dekCache).toBe(true)
    expect(loadConfig({ EKMS_CONFIG: file, EKMS_DEK_CACHE: 'off' }).dekCache).toBe(false)
  })
})
