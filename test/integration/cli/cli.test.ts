/**
 * The `envelope-kms` command line as an operator meets it: help and version print and exit without doing
 * anything else, and an unknown option or command is a usage error (exit 2) instead of a run with defaults.
 * Run as a real process (dist/cli/main.js, built by the test set-up).
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { env, tempCatalogPath } from '../../helpers/engine.js'

function cli(args: string[], catalog = tempCatalogPath()): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['dist/cli/main.js', ...args], {
    env: {
      ...process.env,
      EKMS_PKCS11_TOKEN_LABEL: env('EKMS_TEST_TOKEN'),
      EKMS_PKCS11_PIN: env('EKMS_TEST_PIN'),
      EKMS_CATALOG: catalog,
      EKMS_HTTP_PORT: '0',
    },
    encoding: 'utf8',
    timeout: 20_000,
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

describe('envelope-kms command line', () => {
  it('--version prints the package version and exits 0', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }
    for (const flag of ['--version', '-v']) {
      const r = cli([flag])
      expect([r.code, r.out.trim()]).toEqual([0, pkg.version])
    }
  })

  it('serve --help and rotate-due --help print their help and do nothing else (no catalog is created)', () => {
    for (const command of ['serve', 'rotate-due']) {
      for (const flag of ['--help', '-h']) {
        const catalog = tempCatalogPath()
        const r = cli([command, flag], catalog)
        expect(r.code).toBe(0)
        expect(r.out).toContain(`usage: envelope-kms ${command}`)
        expect(r.err).not.toContain('listening')
        expect(existsSync(catalog)).toBe(false)
      }
    }
  })

  it('an unknown option is a usage error (exit 2) and runs nothing: rotate-due --dry-run does not rotate', () => {
    for (const args of [['rotate-due', '--dry-run'], ['serve', '--port', '8080'], ['--nope']]) {
      const catalog = tempCatalogPath()
      const r = cli(args, catalog)
      expect(r.code).toBe(2)
      expect(r.err).toMatch(/Unknown option '--[a-z-]+'/)
      expect(r.err).toContain('usage: envelope-kms')
      expect(existsSync(catalog)).toBe(false)
    }
  })

  it('an unknown command or a stray argument is a usage error (exit 2)', () => {
    expect(cli(['rotate']).code).toBe(2)
    const r = cli(['rotate-due', 'now'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('unexpected argument "now"')
  })

  it('help and no command print the usage and exit 0', () => {
    for (const args of [[], ['help'], ['--help']]) {
      const r = cli(args)
      expect(r.code).toBe(0)
      expect(r.out).toContain('usage: envelope-kms <command>')
    }
  })
})
