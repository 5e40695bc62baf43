import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { describeConfig, loadConfig } from '../../src/index.js'
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
})
