/**
 * `envelope-kms init`: provisions a SoftHSM2 token and the SQLite catalog in the working directory, with the
 * defaults the default engine uses (src/config.ts), so that `init` then `serve`, `doctor` or `keys` work with
 * no environment. What native-config/setup-token.sh does for a clone of the repository (it calls this).
 *
 * - SoftHSM2 config: SOFTHSM2_CONF, else ./softhsm2.conf when it exists, else .softhsm/softhsm2.conf, written
 *   here (0600) with its token directory beside it (.softhsm/tokens, 0700).
 * - The token is initialised in-process through pkcs11js (C_InitToken, C_InitPIN): the PINs never appear on a
 *   command line. User and SO PINs are random (96 bits), written to the PIN file and `<PIN file>.so` (0600),
 *   never printed.
 * - Idempotent: a token with the label and its PIN file → nothing to do. It refuses (exit 1) when the token
 *   exists but its PIN file does not, or the PIN file exists but the token does not (another SOFTHSM2_CONF?),
 *   rather than guess.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { resolveConfigSettings, softHsmConfPath, loadConfig } from '../../config.js'
import { createEngineFromConfig } from '../../default-engine.js'
import { EngineError } from '../../core/errors.js'
import { stringOption, type Command } from '../args.js'
import { out } from '../output.js'

/** The `directories.tokendir` a SoftHSM2 config names (the last one), resolved against the cwd. */
function tokenDirOf(conf: string): string {
  const lines = readFileSync(conf, 'utf8').split('\n')
  let dir: string | undefined
  for (const line of lines) {
    const m = /^\s*directories\.tokendir\s*=\s*(.*?)\s*$/.exec(line)
    if (m?.[1] !== undefined) dir = m[1]
  }
  if (dir === undefined || dir === '')
    throw new EngineError('CONFIG_INVALID', `SOFTHSM2_CONF: ${conf} names no directories.tokendir`)
  return resolve(dir)
}

/** Writes a SoftHSM2 config with its token directory beside it, unless the file exists. */
function ensureSoftHsmConf(conf: string): { tokenDir: string; created: boolean } {
  if (existsSync(conf)) {
    const tokenDir = tokenDirOf(conf)
    mkdirSync(tokenDir, { recursive: true, mode: 0o700 })
    return { tokenDir, created: false }
  }
  const tokenDir = join(dirname(conf), 'tokens')
  mkdirSync(tokenDir, { recursive: true, mode: 0o700 })
  writeFileSync(
    conf,
    `# SoftHSM2 configuration written by \`envelope-kms init\`.\ndirectories.tokendir = ${tokenDir}/\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\nslots.mechanisms = ALL\nlibrary.reset_on_fork = false\n`,
    { mode: 0o600, flag: 'wx' },
  )
  return { tokenDir, created: true }
}

function nonEmptyFile(path: string): boolean {
  try {
    return statSync(path).size > 0
  } catch {
    return false
  }
}

/** SoftHSM2 missing: install it when asked to and root, else say how. */
function ensureModule(module: string, installDeps: boolean): void {
  if (existsSync(module)) return
  const isRoot = process.getuid?.() === 0
  if (!installDeps || !isRoot) {
    throw new EngineError(
      'PROVIDER_MODULE_LOAD_FAILED',
      `SoftHSM2 is not installed (no PKCS#11 module at ${module}). Install it with:\n  apt-get install -y softhsm2\n(as root; or run \`envelope-kms init --install-deps\` as root)`,
    )
  }
  process.stderr.write('init: installing softhsm2 (Debian package)\n')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  execFileSync('apt-get', ['update', '-qq'], { env, stdio: ['ignore', 'ignore', 'inherit'] })
  execFileSync('apt-get', ['install', '-y', '-qq', 'softhsm2'], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  })
}

export const INIT: Command = {
  help: `usage: envelope-kms init [options]

Provisions a SoftHSM2 token and the SQLite catalog for the default engine, in the working directory:
  SoftHSM2 config   $SOFTHSM2_CONF, else ./softhsm2.conf if it exists, else .softhsm/softhsm2.conf (created)
  token directory   the config's directories.tokendir (.softhsm/tokens when init wrote the config)
  token label       envelope-kms            (EKMS_PKCS11_TOKEN_LABEL)
  user PIN file     .softhsm/user-pin, 0600 (EKMS_PKCS11_PIN_FILE); the SO PIN in <PIN file>.so
  catalog           data/catalog.sqlite     (EKMS_CATALOG)
The PINs are random and never printed. Running it again does nothing when the token and its PIN file are
there; it refuses when only one of them is. After it, serve, doctor and keys need no environment (if you
passed options, set the matching variables init prints).

options:
  --softhsm-conf F  SoftHSM2 config to use, or to create (sets SOFTHSM2_CONF)
  --token-label L   token label (EKMS_PKCS11_TOKEN_LABEL)
  --pin-file F      user PIN file (EKMS_PKCS11_PIN_FILE)
  --catalog F       SQLite catalog file (EKMS_CATALOG)
  --module F        PKCS#11 library (EKMS_PKCS11_MODULE; default: SoftHSM2 where Debian installs it)
  --install-deps    when SoftHSM2 is missing and this runs as root: apt-get install -y softhsm2
  -h, --help        print this help and exit
`,
  options: {
    'softhsm-conf': { type: 'string' },
    'token-label': { type: 'string' },
    'pin-file': { type: 'string' },
    catalog: { type: 'string' },
    module: { type: 'string' },
    'install-deps': { type: 'boolean' },
  },
  run: async (values) => {
    // Options become the same environment variables the engine reads, so init and the engine agree.
    const given: Record<string, string> = {}
    const map: [string, string][] = [
      ['softhsm-conf', 'SOFTHSM2_CONF'],
      ['token-label', 'EKMS_PKCS11_TOKEN_LABEL'],
      ['pin-file', 'EKMS_PKCS11_PIN_FILE'],
      ['catalog', 'EKMS_CATALOG'],
      ['module', 'EKMS_PKCS11_MODULE'],
    ]
    for (const [option, variable] of map) {
      const v = stringOption(values, option)
      if (v !== undefined)
        given[variable] =
          variable === 'SOFTHSM2_CONF' || variable === 'EKMS_PKCS11_PIN_FILE' || variable === 'EKMS_CATALOG'
            ? resolve(v)
            : v
    }
    Object.assign(process.env, given)
    const env = process.env
    const settings = resolveConfigSettings(env)
    if (settings.profile !== 'softhsm2') {
      throw new EngineError(
        'CONFIG_INVALID',
        `init provisions SoftHSM2 tokens; profile "${settings.profile}" is provisioned with its HSM's own tools`,
      )
    }
    if (settings.pin !== undefined) {
      throw new EngineError(
        'CONFIG_INVALID',
        'init writes a new random PIN to the PIN file; unset EKMS_PKCS11_PIN (or pkcs11.pin) to use it',
      )
    }
    ensureModule(settings.module, values['install-deps'] === true)
    const module = resolveConfigSettings(env).module
    const conf = softHsmConfPath(env)
    const { tokenDir, created } = ensureSoftHsmConf(conf)
    if (created) out(`init: wrote ${conf}`)
    env['SOFTHSM2_CONF'] = conf // SoftHSM2 reads it at C_Initialize, below
    const { tokenPresent, initToken } = await import('../../providers/pkcs11/token-admin.js')
    const label = settings.tokenLabel
    const pinFile = resolve(settings.pinFile)
    const present = tokenPresent(module, label)
    const pinPresent = nonEmptyFile(pinFile)
    if (present && !pinPresent) {
      throw new EngineError(
        'CONFIG_INVALID',
        `token "${label}" exists in ${tokenDir} but its PIN file ${pinFile} is missing; restore the file, or delete the token (softhsm2-util --delete-token --token ${label}) and run init again`,
      )
    }
    if (!present && pinPresent) {
      throw new EngineError(
        'CONFIG_INVALID',
        `the PIN file ${pinFile} exists but token "${label}" is not in ${tokenDir} (SOFTHSM2_CONF=${conf}); check SOFTHSM2_CONF, or delete ${pinFile} and ${pinFile}.so to create a new token`,
      )
    }
    if (present) {
      out(`init: token "${label}" ready (${conf})`)
    } else {
      mkdirSync(dirname(pinFile), { recursive: true, mode: 0o700 })
      const userPin = randomBytes(12).toString('hex')
      const soPin = randomBytes(12).toString('hex')
      const soFile = `${pinFile}.so`
      writeFileSync(pinFile, userPin, { mode: 0o600, flag: 'wx' })
      try {
        writeFileSync(soFile, soPin, { mode: 0o600, flag: 'w' })
        chmodSync(soFile, 0o600)
        initToken({ module, label, soPin, userPin })
      } catch (err) {
        // No PIN file without its token: a second run must not refuse because of a failed first one.
        for (const f of [pinFile, soFile]) if (existsSync(f)) unlinkSync(f)
        throw err
      }
      out(`init: initialised token "${label}" in ${tokenDir} (user PIN in ${pinFile}, SO PIN in ${soFile})`)
    }
    // Opening the default engine proves the login and creates (or migrates) the catalog.
    const config = loadConfig(env)
    const engine = await createEngineFromConfig(config)
    await engine.close()
    out(`init: catalog ${resolve(config.catalog.path)} ready`)
    const exports = Object.entries(given).map(([k, v]) => `${k}=${v}`)
    if (exports.length > 0)
      out(`init: serve, doctor and keys need the same settings: export ${exports.join(' ')}`)
    return undefined
  },
}
