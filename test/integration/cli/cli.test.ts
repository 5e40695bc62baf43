/**
 * The `envelope-kms` command line as an operator meets it: help and version print and exit without doing
 * anything else, and an unknown option or command is a usage error (exit 2) instead of a run with defaults.
 * Run as a real process (dist/cli/main.js, built by the test set-up).
 *
 * `init` runs in a fresh directory with no EKMS_* or SOFTHSM2_CONF in the environment, as in an application
 * that installed the package: it writes its own SoftHSM2 config and token directory there (a real token),
 * and the commands after it find everything by the same defaults.
 */
import { spawnSync } from 'node:child_process'
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { beforeAll, describe, expect, it } from 'vitest'
import { env, tempCatalogPath } from '../../helpers/engine.js'

const MAIN = resolve('dist/cli/main.js')

/** The environment of an application's shell: none of the engine's variables. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('EKMS_') && k !== 'SOFTHSM2_CONF') e[k] = v
  return { ...e, ...extra }
}

/** Runs the CLI in `cwd` with `environment` (default: clean), stdin from `input`. */
function run(
  cwd: string,
  args: string[],
  options: { env?: Record<string, string>; input?: string | Buffer } = {},
): { code: number | null; out: string; err: string; raw: Buffer } {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    cwd,
    env: cleanEnv(options.env),
    input: options.input ?? '',
    timeout: 20_000,
  })
  return { code: r.status, out: r.stdout.toString('utf8'), err: r.stderr.toString('utf8'), raw: r.stdout }
}

function freshDir(): string {
  return mkdtempSync(join(env('EKMS_TEST_DIR'), 'app-'))
}

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

  it('every command and keys subcommand: --help prints its usage and does nothing else', () => {
    const dir = freshDir()
    const commands = [
      ['init'],
      ['doctor'],
      ['wrap'],
      ['unwrap'],
      ['keys'],
      ...['list', 'create', 'import', 'get', 'rotate', 'disable', 'enable', 'delete', 'restore'].map((s) => [
        'keys',
        s,
      ]),
      ['import-token'],
      ['import-token', 'create'],
      ['import-token', 'show'],
    ]
    for (const command of commands) {
      const r = run(dir, [...command, '--help'])
      expect([command, r.code]).toEqual([command, 0])
      expect(r.out).toContain(`usage: envelope-kms ${command.join(' ')}`)
    }
    expect(readdirSync(dir)).toEqual([])
  })
})

describe('envelope-kms init, doctor, keys, wrap and unwrap in a fresh directory', () => {
  let app = ''
  const instance = 'cli-tenant'

  beforeAll(() => {
    app = freshDir()
    const r = run(app, ['init'])
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
  })

  it('init writes the SoftHSM2 config, token, 0600 PIN files and catalog under the working directory, never printing a PIN; a second init does nothing', () => {
    const pin = readFileSync(join(app, '.softhsm/user-pin'), 'utf8')
    const soPin = readFileSync(join(app, '.softhsm/user-pin.so'), 'utf8')
    expect(pin).toMatch(/^[0-9a-f]{24}$/)
    expect(soPin).toMatch(/^[0-9a-f]{24}$/)
    expect(statSync(join(app, '.softhsm/user-pin')).mode & 0o777).toBe(0o600)
    expect(statSync(join(app, '.softhsm/user-pin.so')).mode & 0o777).toBe(0o600)
    expect(readFileSync(join(app, '.softhsm/softhsm2.conf'), 'utf8')).toContain(
      `directories.tokendir = ${join(app, '.softhsm/tokens')}/`,
    )
    expect(existsSync(join(app, 'data/catalog.sqlite'))).toBe(true)
    const again = run(app, ['init'])
    expect(again.code).toBe(0)
    expect(again.out).toContain('token "envelope-kms" ready')
    for (const out of [again.out, again.err]) {
      expect(out).not.toContain(pin)
      expect(out).not.toContain(soPin)
    }
    expect(readFileSync(join(app, '.softhsm/user-pin'), 'utf8')).toBe(pin)
  })

  it('doctor after init: every check ok with no environment, exit 0; --json is an array of {check, ok, detail}', () => {
    const r = run(app, ['doctor'])
    expect(r.code).toBe(0)
    const names = ['config', 'module', 'token', 'pin', 'mechanisms', 'catalog', 'clock']
    for (const name of names) expect(r.out).toMatch(new RegExp(`^ok +${name} `, 'm'))
    const j = run(app, ['doctor', '--json'])
    expect(j.code).toBe(0)
    const checks = JSON.parse(j.out) as { check: string; ok: boolean; detail: string }[]
    expect(checks.map((c) => [c.check, c.ok])).toEqual(names.map((n) => [n, true]))
  })

  it('doctor reports a wrong PIN and a missing module as FAIL lines with the fix, exit 1', () => {
    const wrongPin = join(freshDir(), 'pin')
    writeFileSync(wrongPin, '000000000000')
    const r = run(app, ['doctor'], { env: { EKMS_PKCS11_PIN_FILE: wrongPin } })
    expect(r.code).toBe(1)
    expect(r.out).toMatch(/^FAIL +pin +login failed \(CKR_PIN_INCORRECT\); fix: /m)
    expect(r.out).toMatch(/^ok +token /m)
    const m = run(app, ['doctor', '--json'], { env: { EKMS_PKCS11_MODULE: '/nonexistent/libpkcs11.so' } })
    expect(m.code).toBe(1)
    const checks = JSON.parse(m.out) as { check: string; ok: boolean; detail: string }[]
    expect(checks.find((c) => c.check === 'module')).toMatchObject({ ok: false })
    expect(checks.find((c) => c.check === 'module')?.detail).toContain('apt-get install -y softhsm2')
    expect(checks.find((c) => c.check === 'catalog')).toMatchObject({ ok: true })
  })

  it('init refuses a token whose PIN file is missing, and a PIN file whose token is missing (exit 1)', () => {
    const dir = freshDir()
    expect(run(dir, ['init']).code).toBe(0)
    renameSync(join(dir, '.softhsm/user-pin'), join(dir, 'saved-pin'))
    const r = run(dir, ['init'])
    expect(r.code).toBe(1)
    expect(r.err).toMatch(
      /error CONFIG_INVALID: token "envelope-kms" exists .* but its PIN file .* is missing/,
    )
    expect(existsSync(join(dir, '.softhsm/user-pin'))).toBe(false)
    renameSync(join(dir, 'saved-pin'), join(dir, '.softhsm/user-pin'))
    const other = run(dir, ['init', '--token-label', 'other'])
    expect(other.code).toBe(1)
    expect(other.err).toMatch(/the PIN file .* exists but token "other" is not in/)
  })

  it('keys create, list, get, rotate, disable, enable, delete, restore with --json; typed errors on stderr', () => {
    const k = (...args: string[]) => run(app, ['keys', ...args, '--instance', instance])
    const created = k('create', 'orders', '--description', 'cli test', '--json')
    expect(created.code).toBe(0)
    const key = JSON.parse(created.out) as { id: string; state: number; name: string }
    expect(key).toMatchObject({ name: 'orders', state: 1 })
    const listed = JSON.parse(k('list', '--json').out) as { keys: { id: string }[]; total: number }
    expect(listed.keys.map((x) => x.id)).toContain(key.id)
    expect(k('list').out).toMatch(new RegExp(`^${key.id} +active +1 `, 'm'))
    expect(JSON.parse(k('get', key.id, '--json').out)).toMatchObject({ id: key.id, description: 'cli test' })
    const rotated = JSON.parse(k('rotate', key.id, '--json').out) as { keyVersion: { number: number } }
    expect(rotated.keyVersion.number).toBe(2)
    expect(k('disable', key.id).out).toContain(`${key.id}  suspended`)
    const early = k('enable', key.id)
    expect(early.code).toBe(1)
    expect(early.err).toMatch(/^envelope-kms: error KEY_ACTION_INVALID_STATE_ERR: /)
    expect(k('enable', key.id, '--ignore-cooldown').out).toContain(`${key.id}  active`)
    expect(JSON.parse(k('delete', key.id, '--json').out)).toMatchObject({ state: 5, deleted: true })
    const tooEarly = k('restore', key.id)
    expect([tooEarly.code, tooEarly.err]).toEqual([
      1,
      expect.stringMatching(/^envelope-kms: error REQ_TOO_EARLY_ERR: /),
    ])
    // Key Protect restores from 30 s after the delete: age the deletion in the catalog file.
    const db = new Database(join(app, 'data/catalog.sqlite'))
    db.prepare(
      'UPDATE keys SET deleted_at = deleted_at - 60000, state_changed_at = state_changed_at - 60000 WHERE id = ?',
    ).run(key.id)
    db.close()
    const restored = k('restore', key.id, '--json')
    expect(restored.code).toBe(0)
    expect(JSON.parse(restored.out)).toMatchObject({ id: key.id, state: 1 })
    const missing = k('get', 'no-such-key')
    expect([missing.code, missing.err]).toEqual([
      3,
      expect.stringMatching(/^envelope-kms: error KEY_NOT_FOUND_ERR: /),
    ])
    const noInstance = run(app, ['keys', 'list'])
    expect([noInstance.code, noInstance.err]).toEqual([2, expect.stringContaining('--instance is required')])
  })

  it('wrap | unwrap round-trips raw DEK bytes with AAD; a different AAD fails; --generate and --base64', () => {
    const key = JSON.parse(run(app, ['keys', 'create', 'dek-key', '--instance', instance, '--json']).out) as {
      id: string
    }
    const dek = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff))
    const opts = ['--instance', instance, '--key', key.id, '--aad', 'order-42', '--aad', 'eu']
    const wrapped = run(app, ['wrap', ...opts], { input: dek })
    expect(wrapped.code).toBe(0)
    const ciphertext = wrapped.out.trim()
    expect(ciphertext).toMatch(/^[A-Za-z0-9+/]+=*$/)
    const unwrapped = run(app, ['unwrap', ...opts], { input: ciphertext })
    expect(unwrapped.code).toBe(0)
    expect(unwrapped.raw.equals(dek)).toBe(true)
    const wrongAad = run(app, ['unwrap', '--instance', instance, '--key', key.id, '--aad', 'order-43'], {
      input: ciphertext,
    })
    expect(wrongAad.code).toBe(1)
    expect(wrongAad.err).toMatch(/^envelope-kms: error UNWRAP_AAD_MISMATCH: /)
    expect(wrongAad.raw.length).toBe(0)
    const generated = JSON.parse(run(app, ['wrap', ...opts, '--generate']).out) as {
      ciphertext: string
      plaintext: string
    }
    const back = run(app, ['unwrap', ...opts, '--base64'], { input: `${generated.ciphertext}\n` })
    expect(back.out.trim()).toBe(generated.plaintext)
    expect(Buffer.from(generated.plaintext, 'base64').length).toBe(32)
  })
})
