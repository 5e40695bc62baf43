/**
 * `envelope-kms doctor`: checks what the default engine needs, one verdict per line, and changes nothing:
 * config, module, token, pin, mechanisms (src/providers/pkcs11/token-admin.ts), catalog (read-only,
 * src/store/sqlite/inspect.ts) and clock. Exit 0 when every check is ok, 1 otherwise.
 */
import { existsSync } from 'node:fs'
import { readPin, resolveConfigSettings, softHsmConfPath, type ConfigSettings } from '../../config.js'
import type { Command } from '../args.js'
import { EXIT, out, outJson } from '../output.js'

interface Check {
  readonly check: string
  readonly ok: boolean
  readonly detail: string
}

/** No clock before this is plausible for this build (it was released after it). */
const CLOCK_FLOOR_MS = Date.parse('2026-11-01T00:00:00Z')
/** How far the newest catalog record may lie ahead of this clock (another host's small skew). */
const CLOCK_SKEW_MS = 5 * 60_000

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

async function checkCatalog(settings: ConfigSettings): Promise<{ check: Check; newest: number | undefined }> {
  const { inspectSqliteCatalog } = await import('../../store/sqlite/inspect.js')
  const path = settings.catalogPath
  try {
    const c = inspectSqliteCatalog(path)
    if (!c.exists)
      return {
        check: {
          check: 'catalog',
          ok: false,
          detail: `${path} does not exist; fix: run \`npx envelope-kms init\` (or set EKMS_CATALOG)`,
        },
        newest: undefined,
      }
    const faults: string[] = []
    if (c.schemaVersion > c.supportedVersion)
      faults.push(
        `schema version ${c.schemaVersion} is newer than this build supports (${c.supportedVersion}); fix: upgrade envelope-kms`,
      )
    if (!c.writable)
      faults.push('the file or its folder is not writable by this user; fix: check ownership and modes')
    if (faults.length > 0)
      return {
        check: { check: 'catalog', ok: false, detail: `${path}: ${faults.join('; ')}` },
        newest: c.newestUpdateMs,
      }
    const schema =
      c.schemaVersion === c.supportedVersion
        ? `schema ${c.schemaVersion} (current)`
        : `schema ${c.schemaVersion}, migrated to ${c.supportedVersion} at the next start`
    return {
      check: { check: 'catalog', ok: true, detail: `${path}: ${schema}, writable, ${c.keys} key(s)` },
      newest: c.newestUpdateMs,
    }
  } catch (err) {
    return {
      check: { check: 'catalog', ok: false, detail: `${message(err)}; fix: check EKMS_CATALOG` },
      newest: undefined,
    }
  }
}

function checkClock(newest: number | undefined): Check {
  const now = Date.now()
  const iso = new Date(now).toISOString()
  if (now < CLOCK_FLOOR_MS)
    return {
      check: 'clock',
      ok: false,
      detail: `${iso} is before this build's release (${new Date(CLOCK_FLOOR_MS).toISOString()}); fix: set the system clock (NTP)`,
    }
  if (newest !== undefined && newest > now + CLOCK_SKEW_MS)
    return {
      check: 'clock',
      ok: false,
      detail: `${iso} is behind the catalog's newest change (${new Date(newest).toISOString()}): the clock went back; fix: set the system clock (NTP) before serving`,
    }
  return { check: 'clock', ok: true, detail: iso }
}

export const DOCTOR: Command = {
  help: `usage: envelope-kms doctor [--json]

Checks, without changing anything, what the default engine needs (the same settings as serve):
  config      EKMS_CONFIG and the EKMS_* variables are valid
  module      the PKCS#11 library loads and initialises
  token       the token label is found (SoftHSM2: in the config SOFTHSM2_CONF names)
  pin         a user login works with the PIN (EKMS_PKCS11_PIN or the PIN file)
  mechanisms  the token offers what the profile needs (AES-GCM encrypt/decrypt, AES key generation, RNG)
  catalog     the SQLite catalog exists, its schema is one this build knows, it is writable
  clock       the system clock is not before this build, nor behind the catalog's newest change
One line per check: "ok" or "FAIL" with what is wrong and the fix. Exit 0 when all are ok, else 1.

options:
  --json      print [{check, ok, detail}, ...] as JSON
  -h, --help  print this help and exit
`,
  options: { json: { type: 'boolean' } },
  run: async (values) => {
    const checks: Check[] = []
    let settings: ConfigSettings | undefined
    try {
      settings = resolveConfigSettings()
      checks.push({
        check: 'config',
        ok: true,
        detail: `profile ${settings.profile}, token "${settings.tokenLabel}"`,
      })
    } catch (err) {
      checks.push({ check: 'config', ok: false, detail: `${message(err)}; fix: correct that setting` })
    }
    let newest: number | undefined
    if (settings === undefined) {
      for (const check of ['module', 'token', 'pin', 'mechanisms', 'catalog'])
        checks.push({ check, ok: false, detail: 'not checked: config failed' })
    } else {
      const s = settings
      let tokenHint = ''
      if (s.profile === 'softhsm2') {
        // The same SoftHSM2 config the engine would use (src/config.ts defaultSoftHsmConf).
        const conf = softHsmConfPath()
        if (process.env['SOFTHSM2_CONF'] === undefined && existsSync(conf))
          process.env['SOFTHSM2_CONF'] = conf
        tokenHint = `; SOFTHSM2_CONF is ${process.env['SOFTHSM2_CONF'] ?? `not set and ${conf} does not exist`}`
      }
      const { diagnosePkcs11 } = await import('../../providers/pkcs11/token-admin.js')
      checks.push(
        ...diagnosePkcs11({
          module: s.module,
          tokenLabel: s.tokenLabel,
          profile: s.profile,
          pin: () => readPin(s),
          tokenHint,
        }),
      )
      const catalog = await checkCatalog(s)
      checks.push(catalog.check)
      newest = catalog.newest
    }
    checks.push(checkClock(newest))
    if (values['json'] === true) outJson(checks)
    else {
      const width = Math.max(...checks.map((c) => c.check.length))
      for (const c of checks) out(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.check.padEnd(width)}  ${c.detail}`)
    }
    return checks.every((c) => c.ok) ? EXIT.ok : EXIT.failed
  },
}
