/**
 * The one typed configuration: an optional JSON file, then environment variables on top, validated at
 * startup. Defaults run on one machine with the project's SoftHSM2 token and an SQLite file.
 *
 * | variable | meaning | default |
 * |---|---|---|
 * | EKMS_CONFIG | JSON file: `{ pkcs11?: { module?, tokenLabel?, pin?, pinFile?, profile? }, catalog?: { path? }, dekCache? }`, strictly validated | none |
 * | EKMS_PKCS11_MODULE | PKCS#11 library | the SoftHSM2 library where Debian installs it |
 * | EKMS_PKCS11_TOKEN_LABEL | token label | `envelope-kms` |
 * | EKMS_PKCS11_PIN | user PIN | none: read from EKMS_PKCS11_PIN_FILE |
 * | EKMS_PKCS11_PIN_FILE | file holding the user PIN | `.softhsm/user-pin` (written by `envelope-kms init`) |
 * | EKMS_PKCS11_PROFILE | `softhsm2`, `luna` or a profile file | `softhsm2` |
 * | EKMS_CATALOG | SQLite catalog file | `data/catalog.sqlite` |
 * | EKMS_DEK_CACHE | `on`: cache unwrapped DEKs and reuse data keys for seal (bounded, zeroed) | `off` |
 * | EKMS_TENANT_HOME_REGION | tenant key providers: the tenants' home region (AWS keys should be there) | `eu-west-1` |
 * | EKMS_TENANT_DR_REGION | tenant key providers: the disaster-recovery region (AWS keys need a replica there) | `eu-west-3` |
 * | EKMS_KEYPROVIDERS_AWS_ENDPOINT | tenant key providers: AWS KMS endpoint override (a KMS-compatible server) | AWS's regional endpoints |
 * | EKMS_KEYPROVIDERS_AWS_ACCESS_KEY_ID, EKMS_KEYPROVIDERS_AWS_SECRET_ACCESS_KEY | tenant key providers: static AWS credentials, both or neither (never logged) | the AWS SDK's default chain |
 * | SOFTHSM2_CONF | SoftHSM2's own config | `./softhsm2.conf` if it exists, else `.softhsm/softhsm2.conf` (written by `envelope-kms init`), when the profile is softhsm2 and the file exists |
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { z } from 'zod'
import { EngineError } from './core/errors.js'

export interface Pkcs11Config {
  readonly module: string
  readonly tokenLabel: string
  /** Never logged; {@link describeConfig} masks it. */
  readonly pin: string
  readonly profile: string
}

/** Settings of tenant key providers (`createEngineServicesFromConfig`). */
export interface TenantKeysConfig {
  readonly homeRegion: string
  readonly drRegion: string
  /** AWS KMS endpoint override for customer-managed keys; undefined: AWS's regional endpoints. */
  readonly awsEndpoint: string | undefined
  /** Static AWS credentials; undefined: the AWS SDK's default chain. Never logged ({@link describeConfig}). */
  readonly awsCredentials: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined
  /** Entries per migration batch (`EKMS_MIGRATION_BATCH_SIZE`); undefined: the job's default (256). */
  readonly migrationBatchSize?: number | undefined
  /**
   * Least interval between a migration's durable checkpoints (`EKMS_MIGRATION_CHECKPOINT_MS`); undefined:
   * the job's default (1000 ms).
   */
  readonly migrationCheckpointIntervalMs?: number | undefined
}

export interface EngineConfig {
  readonly pkcs11: Pkcs11Config
  readonly catalog: { readonly path: string }
  /** Use the DEK cache with its default bounds. */
  readonly dekCache: boolean
  /** Tenant key providers; absent: the defaults of {@link resolveTenantKeysConfig} with an empty environment. */
  readonly tenantKeys?: TenantKeysConfig
}

const REGION_RE = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/

/**
 * Reads the tenant key provider settings from the environment.
 * @throws EngineError CONFIG_INVALID naming the setting at fault
 */
export function resolveTenantKeysConfig(env: NodeJS.ProcessEnv = process.env): TenantKeysConfig {
  const region = (name: string, dflt: string): string => {
    const v = str(env[name], name) ?? dflt
    if (!REGION_RE.test(v))
      throw new EngineError('CONFIG_INVALID', `${name}: must be a region name like eu-west-1`)
    return v
  }
  const endpoint = str(env['EKMS_KEYPROVIDERS_AWS_ENDPOINT'], 'EKMS_KEYPROVIDERS_AWS_ENDPOINT')
  if (endpoint !== undefined && !/^https?:\/\/[^\s]+$/.test(endpoint)) {
    throw new EngineError('CONFIG_INVALID', 'EKMS_KEYPROVIDERS_AWS_ENDPOINT: must be an http(s) URL')
  }
  const id = str(env['EKMS_KEYPROVIDERS_AWS_ACCESS_KEY_ID'], 'EKMS_KEYPROVIDERS_AWS_ACCESS_KEY_ID')
  const secret = str(
    env['EKMS_KEYPROVIDERS_AWS_SECRET_ACCESS_KEY'],
    'EKMS_KEYPROVIDERS_AWS_SECRET_ACCESS_KEY',
  )
  if ((id === undefined) !== (secret === undefined)) {
    throw new EngineError(
      'CONFIG_INVALID',
      'EKMS_KEYPROVIDERS_AWS_ACCESS_KEY_ID and EKMS_KEYPROVIDERS_AWS_SECRET_ACCESS_KEY: set both or neither',
    )
  }
  const int = (name: string, min: number, max: number): number | undefined => {
    const v = str(env[name], name)
    if (v === undefined) return undefined
    const n = /^\d+$/.test(v) ? Number(v) : Number.NaN
    if (!(n >= min && n <= max)) {
      throw new EngineError('CONFIG_INVALID', `${name}: must be an integer from ${min} to ${max}`)
    }
    return n
  }
  return {
    migrationBatchSize: int('EKMS_MIGRATION_BATCH_SIZE', 1, 10_000),
    migrationCheckpointIntervalMs: int('EKMS_MIGRATION_CHECKPOINT_MS', 0, 600_000),
    homeRegion: region('EKMS_TENANT_HOME_REGION', 'eu-west-1'),
    drRegion: region('EKMS_TENANT_DR_REGION', 'eu-west-3'),
    awsEndpoint: endpoint,
    awsCredentials:
      id === undefined || secret === undefined ? undefined : { accessKeyId: id, secretAccessKey: secret },
  }
}

const SOFTHSM_MODULES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
]

/** The EKMS_CONFIG file: strict, so that an unknown key or a wrong type is a startup error naming it. */
const CONFIG_FILE = z.strictObject({
  pkcs11: z
    .strictObject({
      module: z.string().min(1).optional(),
      tokenLabel: z.string().min(1).optional(),
      pin: z.string().min(1).optional(),
      pinFile: z.string().min(1).optional(),
      profile: z.string().min(1).optional(),
    })
    .optional(),
  catalog: z.strictObject({ path: z.string().min(1).optional() }).optional(),
  /** Use the DEK cache with its default bounds (EKMS_DEK_CACHE overrides it). */
  dekCache: z.boolean().optional(),
})
type ConfigFile = z.infer<typeof CONFIG_FILE>

function str(v: unknown, name: string): string | undefined {
  if (v === undefined || v === '') return undefined
  if (typeof v !== 'string') throw new EngineError('CONFIG_INVALID', `${name}: must be a string`)
  return v
}

/** Where `envelope-kms init` puts the user PIN, and where the default engine reads it (relative: the cwd). */
export const DEFAULT_PIN_FILE = '.softhsm/user-pin'
/** The default catalog file (relative: the working directory). */
export const DEFAULT_CATALOG = 'data/catalog.sqlite'
/** The SoftHSM2 config `envelope-kms init` writes when `./softhsm2.conf` does not exist. */
export const DEFAULT_SOFTHSM_CONF = '.softhsm/softhsm2.conf'

/**
 * The configuration before the PIN is read: what `envelope-kms init` provisions and `envelope-kms doctor`
 * checks, with the same defaults as {@link loadConfig}.
 */
export interface ConfigSettings {
  readonly module: string
  readonly tokenLabel: string
  readonly profile: string
  /** The PIN when given directly (EKMS_PKCS11_PIN or pkcs11.pin); otherwise it is read from `pinFile`. */
  readonly pin: string | undefined
  readonly pinFile: string
  readonly catalogPath: string
  readonly dekCache: boolean
}

/**
 * Reads `EKMS_CONFIG` (if set) and the environment, without reading the PIN file.
 * @throws EngineError CONFIG_INVALID naming the setting at fault
 */
export function resolveConfigSettings(env: NodeJS.ProcessEnv = process.env): ConfigSettings {
  let file: ConfigFile = {}
  const cfgPath = str(env['EKMS_CONFIG'], 'EKMS_CONFIG')
  if (cfgPath !== undefined) {
    let raw: unknown
    try {
      raw = JSON.parse(readFileSync(cfgPath, 'utf8'))
    } catch (err) {
      throw new EngineError('CONFIG_INVALID', `EKMS_CONFIG: ${cfgPath} is not a readable JSON file`, {
        cause: err,
      })
    }
    const parsed = CONFIG_FILE.safeParse(raw)
    if (!parsed.success) {
      // Every fault at once, each with its path and what was expected: a typo never passes silently.
      const faults = parsed.error.issues.map(
        (i) => `${i.path.length === 0 ? '(top level)' : i.path.join('.')}: ${i.message}`,
      )
      throw new EngineError('CONFIG_INVALID', `EKMS_CONFIG: ${cfgPath}: ${faults.join('; ')}`)
    }
    file = parsed.data
  }
  const p = file.pkcs11 ?? {}
  const module =
    str(env['EKMS_PKCS11_MODULE'], 'EKMS_PKCS11_MODULE') ??
    str(p.module, 'pkcs11.module') ??
    SOFTHSM_MODULES.find((m) => existsSync(m)) ??
    SOFTHSM_MODULES[0]
  const tokenLabel =
    str(env['EKMS_PKCS11_TOKEN_LABEL'], 'EKMS_PKCS11_TOKEN_LABEL') ??
    str(p.tokenLabel, 'pkcs11.tokenLabel') ??
    'envelope-kms'
  const profile =
    str(env['EKMS_PKCS11_PROFILE'], 'EKMS_PKCS11_PROFILE') ?? str(p.profile, 'pkcs11.profile') ?? 'softhsm2'
  const pin = str(env['EKMS_PKCS11_PIN'], 'EKMS_PKCS11_PIN') ?? str(p.pin, 'pkcs11.pin')
  const pinFile =
    str(env['EKMS_PKCS11_PIN_FILE'], 'EKMS_PKCS11_PIN_FILE') ??
    str(p.pinFile, 'pkcs11.pinFile') ??
    DEFAULT_PIN_FILE
  const catalogPath =
    str(env['EKMS_CATALOG'], 'EKMS_CATALOG') ?? str(file.catalog?.path, 'catalog.path') ?? DEFAULT_CATALOG
  const cacheSetting =
    str(env['EKMS_DEK_CACHE'], 'EKMS_DEK_CACHE') ??
    (file.dekCache === undefined ? 'off' : file.dekCache ? 'on' : 'off')
  if (cacheSetting !== 'on' && cacheSetting !== 'off')
    throw new EngineError('CONFIG_INVALID', 'EKMS_DEK_CACHE: must be on or off')
  return {
    module: module ?? '',
    tokenLabel,
    profile,
    pin,
    pinFile,
    catalogPath,
    dekCache: cacheSetting === 'on',
  }
}

/**
 * Reads the user PIN of `settings`: the one given directly, else the PIN file's content.
 * @throws EngineError CONFIG_INVALID when the PIN file cannot be read or the PIN is empty
 */
export function readPin(settings: ConfigSettings): string {
  let pin = settings.pin
  if (pin === undefined) {
    try {
      pin = readFileSync(settings.pinFile, 'utf8').trim()
    } catch (err) {
      throw new EngineError(
        'CONFIG_INVALID',
        `EKMS_PKCS11_PIN: not set, and the PIN file ${settings.pinFile} cannot be read (run \`npx envelope-kms init\` to provision a SoftHSM2 token and its PIN file)`,
        { cause: err },
      )
    }
  }
  if (pin.length === 0) throw new EngineError('CONFIG_INVALID', 'EKMS_PKCS11_PIN: is empty')
  return pin
}

/**
 * Builds the configuration from `EKMS_CONFIG` (if set) and the environment.
 * @throws EngineError CONFIG_INVALID naming the setting at fault
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): EngineConfig {
  const s = resolveConfigSettings(env)
  return {
    pkcs11: { module: s.module, tokenLabel: s.tokenLabel, pin: readPin(s), profile: s.profile },
    catalog: { path: s.catalogPath },
    dekCache: s.dekCache,
    tenantKeys: resolveTenantKeysConfig(env),
  }
}

/** The configuration with secrets masked, for logs. */
export function describeConfig(c: EngineConfig): Record<string, unknown> {
  const t = c.tenantKeys
  return {
    pkcs11: { ...c.pkcs11, pin: '***' },
    catalog: c.catalog,
    dekCache: c.dekCache,
    ...(t === undefined
      ? {}
      : {
          tenantKeys: {
            homeRegion: t.homeRegion,
            drRegion: t.drRegion,
            awsEndpoint: t.awsEndpoint,
            awsCredentials: t.awsCredentials === undefined ? undefined : '***',
            migrationBatchSize: t.migrationBatchSize,
            migrationCheckpointIntervalMs: t.migrationCheckpointIntervalMs,
          },
        }),
  }
}

/**
 * The SoftHSM2 config the default engine and `envelope-kms init` use: `SOFTHSM2_CONF`, else
 * `./softhsm2.conf` when it exists (a clone of this repository), else `.softhsm/softhsm2.conf` (written by
 * `envelope-kms init`). Absolute; the file may not exist yet.
 */
export function softHsmConfPath(env: NodeJS.ProcessEnv = process.env): string {
  const set = env['SOFTHSM2_CONF']
  if (set !== undefined && set !== '') return resolve(set)
  return existsSync('softhsm2.conf') ? resolve('softhsm2.conf') : resolve(DEFAULT_SOFTHSM_CONF)
}

/**
 * Points SoftHSM2 at {@link softHsmConfPath} when the environment names no config, the profile is softhsm2
 * and the file exists. SoftHSM2 reads SOFTHSM2_CONF once, at C_Initialize.
 */
export function defaultSoftHsmConf(c: EngineConfig, env: NodeJS.ProcessEnv = process.env): void {
  if (c.pkcs11.profile !== 'softhsm2' || env['SOFTHSM2_CONF'] !== undefined) return
  const conf = softHsmConfPath(env)
  if (existsSync(conf)) env['SOFTHSM2_CONF'] = conf
}

/** Creates the folder of the catalog file. */
export function ensureCatalogDir(c: EngineConfig): void {
  if (c.catalog.path !== ':memory:')
    mkdirSync(dirname(resolve(c.catalog.path)), { recursive: true, mode: 0o700 })
}
