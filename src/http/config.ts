/**
 * Configuration of `envelope-kms serve`, from environment variables (validated at startup).
 *
 * | variable | meaning | default |
 * |---|---|---|
 * | EKMS_HTTP_HOST | address to bind | `127.0.0.1` |
 * | EKMS_HTTP_PORT | port | `8080` (`8443` with TLS) |
 * | EKMS_HTTP_TLS_CERT / EKMS_HTTP_TLS_KEY | PEM files; both or neither | none (plain HTTP, loopback only) |
 * | EKMS_HTTP_ALLOW_PLAINTEXT | `1`: allow plain HTTP on a non-loopback address | off |
 * | EKMS_HTTP_BODY_LIMIT | largest request body, bytes | `65536` |
 * | EKMS_HTTP_RATE_LIMIT | requests per second per instance and endpoint (`0` = off) | `10000` |
 * | EKMS_AUTH_FILE | JSON {@link AuthConfig}: API keys and/or JWT settings | none: a development API key is generated (loopback only) |
 * | EKMS_JWT_MAX_LIFETIME_S | longest accepted JWT lifetime, seconds (1 to 366 days); overrides `jwt.maxLifetimeSec` of the auth file | `86400` (24 h) |
 * | EKMS_AUDIT_LOG | audit JSON-lines file, or `-` for stdout | `-` |
 * | EKMS_AUDIT_SYNC | `1`: write every audit line before answering (default: batches of 64 KiB or 200 ms) | off |
 * | EKMS_AUDIT_BUFFER_BYTES | audit bytes waiting to be written at most (the destination stalled) | `4194304` (4 MiB) |
 * | EKMS_AUDIT_WHEN_FULL | `reject`: refuse requests with 503 while the audit buffer is full; `drop`: run them, count lost lines | `reject` |
 * | EKMS_TRUSTED_PROXIES | comma-separated IPv4/IPv6 addresses or CIDRs of proxies whose `X-Forwarded-For` is believed (allowedIP instance policy) | none |
 * | EKMS_ROTATION_INTERVAL_MS | time between automatic-rotation passes | `3600000` |
 * | EKMS_REGION / EKMS_ACCOUNT | printed in CRNs | `local` / `envelope-kms` |
 * | EKMS_AWSKMS_CREDENTIALS_FILE | JSON `[{accessKeyId, secretAccessKey, instance, accountId?}]`: serve the AWS-KMS-compatible API | none (not served) |
 * | EKMS_AWSKMS_PORT | its port (same host and TLS settings as above) | `4599` |
 * | EKMS_AWSKMS_REGIONS | comma-separated regions it serves, the default one first (e.g. `eu-west-1,eu-west-3`) | `us-east-1` |
 * | EKMS_AWSKMS_REGION | one region (the one-region form of EKMS_AWSKMS_REGIONS; not both) | `us-east-1` |
 * | EKMS_AZUREKV_PORT | serve the Azure-Key-Vault-compatible API on this port (same host; HTTPS only) | none (not served) |
 * | EKMS_AZUREKV_TLS_CERT / EKMS_AZUREKV_TLS_KEY | its PEM certificate and key (required with the port) | none |
 * | EKMS_AZUREKV_AUTHORITY | the `authorization` of its 401 challenge (token authority with tenant) | `https://login.microsoftonline.com/envelope-kms` |
 * | EKMS_AZUREKV_RESOURCE | the `resource` of its challenge (clients ask for `<resource>/.default`) | `https://vault.azure.net` |
 * | EKMS_AZUREKV_RETENTION_DAYS | days a soft-deleted vault key stays recoverable (7 to 90) | `90` |
 */
import { readFileSync } from 'node:fs'
import { z } from 'zod'
import { EngineError } from '../core/errors.js'
import { MAX_JWT_LIFETIME_LIMIT_S, type AuthConfig } from './auth.js'
import type { AwsKmsCredential } from './awskms/sigv4.js'
import type { ListenOptions } from './server.js'

export interface HttpConfig {
  readonly listen: ListenOptions
  readonly bodyLimitBytes: number
  readonly rateLimitPerSecond: number
  /** Undefined: no auth file given. Its `jwt.maxLifetimeSec` is EKMS_JWT_MAX_LIFETIME_S when that is set. */
  readonly auth: AuthConfig | undefined
  /** EKMS_JWT_MAX_LIFETIME_S, validated; undefined when unset (the auth file's value or 24 h applies). */
  readonly jwtMaxLifetimeSec: number | undefined
  readonly auditLog: string
  /** Write each audit line before its request is answered (no batching). */
  readonly auditSync: boolean
  /** Bound of the audit buffer, bytes (EKMS_AUDIT_BUFFER_BYTES). */
  readonly auditBufferBytes: number
  /** What a full audit buffer does (EKMS_AUDIT_WHEN_FULL). */
  readonly auditWhenFull: 'reject' | 'drop'

  /** EKMS_TRUSTED_PROXIES: proxies whose X-Forwarded-For names the client (allowedIP policy); [] = none. */
  readonly trustedProxies: readonly string[]
  readonly rotationIntervalMs: number
  readonly region: string
  readonly account: string
  /** The AWS-KMS-compatible listener; undefined when no credentials file is configured. */
  readonly awsKms:
    | {
        readonly port: number
        /** The regions served, the default one first (EKMS_AWSKMS_REGIONS or EKMS_AWSKMS_REGION). */
        readonly regions: readonly string[]
        readonly credentials: AwsKmsCredential[]
      }
    | undefined
  /** The Azure-Key-Vault-compatible listener (always HTTPS); undefined when EKMS_AZUREKV_PORT is unset. */
  readonly azureKv: AzureKvListenConfig | undefined
}

/** The Azure-Key-Vault-compatible listener's settings (EKMS_AZUREKV_*). */
export interface AzureKvListenConfig {
  readonly port: number
  readonly tls: { readonly certFile: string; readonly keyFile: string }
  readonly authority: string
  readonly resource: string
  readonly retentionDays: number
}

/** EKMS_AZUREKV_*: undefined without a port; the TLS files are required with it (the SDK needs HTTPS). */
function azureKvConfig(env: NodeJS.ProcessEnv): AzureKvListenConfig | undefined {
  const port = env['EKMS_AZUREKV_PORT']
  if (port === undefined || port === '') return undefined
  const certFile = env['EKMS_AZUREKV_TLS_CERT']
  const keyFile = env['EKMS_AZUREKV_TLS_KEY']
  if (certFile === undefined || certFile === '' || keyFile === undefined || keyFile === '') {
    throw new EngineError(
      'CONFIG_INVALID',
      'EKMS_AZUREKV_TLS_CERT / EKMS_AZUREKV_TLS_KEY: are required with EKMS_AZUREKV_PORT (Azure SDKs send tokens over HTTPS only)',
    )
  }
  const url = (name: string, dflt: string): string => {
    const v = env[name] ?? dflt
    if (!/^https:\/\/[^\s"]+$/.test(v))
      throw new EngineError('CONFIG_INVALID', `${name}: must be an https URL`)
    return v.replace(/\/+$/, '')
  }
  return {
    port: intVar(env, 'EKMS_AZUREKV_PORT', 0, 0, 65535),
    tls: { certFile, keyFile },
    authority: url('EKMS_AZUREKV_AUTHORITY', 'https://login.microsoftonline.com/envelope-kms'),
    resource: url('EKMS_AZUREKV_RESOURCE', 'https://vault.azure.net'),
    retentionDays: intVar(env, 'EKMS_AZUREKV_RETENTION_DAYS', 90, 7, 90),
  }
}

function intVar(env: NodeJS.ProcessEnv, name: string, dflt: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return dflt
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new EngineError('CONFIG_INVALID', `${name}: must be an integer from ${min} to ${max}`)
  }
  return n
}

function auditWhenFull(raw: string | undefined): 'reject' | 'drop' {
  if (raw === undefined || raw === '' || raw === 'reject') return 'reject'
  if (raw === 'drop') return 'drop'
  throw new EngineError('CONFIG_INVALID', 'EKMS_AUDIT_WHEN_FULL: must be reject or drop')
}

/** EKMS_AUTH_FILE ({@link AuthConfig}), strictly: an unknown key (`apikeys`) is an error, not ignored. */
const AUTH_FILE = z.strictObject({
  apiKeys: z
    .array(
      z.strictObject({
        key: z.string().min(1).optional(),
        keySha256: z.string().min(1).optional(),
        subject: z.string().min(1),
        instances: z.union([z.literal('*'), z.array(z.string().min(1))]),
        actions: z.array(z.string().min(1)),
      }),
    )
    .optional(),
  jwt: z
    .strictObject({
      hs256Secret: z.string().min(1).optional(),
      hs256SecretFile: z.string().min(1).optional(),
      publicKeyFiles: z.array(z.string().min(1)).optional(),
      jwksFile: z.string().min(1).optional(),
      issuer: z.string().min(1).optional(),
      audience: z.string().min(1).optional(),
      instancesClaim: z.string().min(1).optional(),
      actionsClaim: z.string().min(1).optional(),
      clockToleranceSec: z.number().optional(),
      maxLifetimeSec: z.number().optional(),
    })
    .optional(),
})

/** EKMS_AWSKMS_CREDENTIALS_FILE: `[{ accessKeyId, secretAccessKey, instance, accountId? }]`, strictly. */
const AWS_CREDENTIALS_FILE = z.array(
  z.strictObject({
    accessKeyId: z.string().min(1),
    secretAccessKey: z.string().min(1),
    instance: z.string().min(1),
    accountId: z.string().min(1).optional(),
  }),
)

/** One EKMS_TRUSTED_PROXIES entry: an IPv4/IPv6 address or CIDR. */
const TRUSTED_PROXY = z.union([z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()])

/** EKMS_TRUSTED_PROXIES, comma-separated; every invalid entry named. */
function trustedProxies(raw: string | undefined): string[] {
  if (raw === undefined || raw.trim() === '') return []
  const entries = raw.split(',').map((e) => e.trim())
  const bad = entries.filter((e) => !TRUSTED_PROXY.safeParse(e).success)
  if (bad.length > 0) {
    throw new EngineError(
      'CONFIG_INVALID',
      `EKMS_TRUSTED_PROXIES: not an IPv4/IPv6 address or CIDR: ${bad.map((b) => JSON.stringify(b)).join(', ')}`,
    )
  }
  return entries
}

const REGION_RE = /^[a-z0-9-]{1,64}$/

/** EKMS_AWSKMS_REGIONS (comma-separated, default first) or EKMS_AWSKMS_REGION; `us-east-1` without either. */
function awsRegions(env: NodeJS.ProcessEnv): string[] {
  const list = env['EKMS_AWSKMS_REGIONS']
  const one = env['EKMS_AWSKMS_REGION']
  const hasList = list !== undefined && list.trim() !== ''
  const hasOne = one !== undefined && one !== ''
  if (hasList && hasOne)
    throw new EngineError('CONFIG_INVALID', 'EKMS_AWSKMS_REGIONS / EKMS_AWSKMS_REGION: give one of them')
  const regions = hasList ? list.split(',').map((r) => r.trim()) : [hasOne ? one : 'us-east-1']
  const name = hasList ? 'EKMS_AWSKMS_REGIONS' : 'EKMS_AWSKMS_REGION'
  const bad = regions.filter((r) => !REGION_RE.test(r))
  if (bad.length > 0)
    throw new EngineError(
      'CONFIG_INVALID',
      `${name}: not a region name: ${bad.map((b) => JSON.stringify(b)).join(', ')}`,
    )
  if (new Set(regions).size !== regions.length)
    throw new EngineError('CONFIG_INVALID', `${name}: a region repeats`)
  return regions
}

/**
 * `raw` checked against `schema`; every fault at once, each with its path and what was expected (never the
 * value: these files hold secrets).
 * @throws EngineError CONFIG_INVALID naming the variable, the file and the paths
 */
function strictFile(schema: z.ZodType, raw: unknown, variable: string, file: string): unknown {
  const parsed = schema.safeParse(raw)
  // No transforms: what passed is the JSON as read (zod's optional types allow `undefined`, JSON never has it).
  if (parsed.success) return raw
  const faults = parsed.error.issues.map(
    (i) => `${i.path.length === 0 ? '(top level)' : i.path.join('.')}: ${i.message}`,
  )
  throw new EngineError('CONFIG_INVALID', `${variable}: ${file}: ${faults.join('; ')}`)
}

export function loadHttpConfig(env: NodeJS.ProcessEnv = process.env): HttpConfig {
  const cert = env['EKMS_HTTP_TLS_CERT']
  const key = env['EKMS_HTTP_TLS_KEY']
  if ((cert === undefined) !== (key === undefined)) {
    throw new EngineError('CONFIG_INVALID', 'EKMS_HTTP_TLS_CERT / EKMS_HTTP_TLS_KEY: give both or neither')
  }
  let auth: AuthConfig | undefined
  const authFile = env['EKMS_AUTH_FILE']
  if (authFile !== undefined && authFile !== '') {
    let raw: unknown
    try {
      raw = JSON.parse(readFileSync(authFile, 'utf8'))
    } catch (err) {
      throw new EngineError('CONFIG_INVALID', `EKMS_AUTH_FILE: ${authFile} is not a readable JSON file`, {
        cause: err,
      })
    }
    auth = strictFile(AUTH_FILE, raw, 'EKMS_AUTH_FILE', authFile) as AuthConfig
  }
  // Validated even without an auth file, so that a typo is a startup error rather than silently ignored.
  const rawLifetime = env['EKMS_JWT_MAX_LIFETIME_S']
  const jwtMaxLifetimeSec =
    rawLifetime === undefined || rawLifetime === ''
      ? undefined
      : intVar(env, 'EKMS_JWT_MAX_LIFETIME_S', 0, 1, MAX_JWT_LIFETIME_LIMIT_S)
  if (jwtMaxLifetimeSec !== undefined && auth?.jwt !== undefined) {
    auth = { ...auth, jwt: { ...auth.jwt, maxLifetimeSec: jwtMaxLifetimeSec } }
  }
  let awsKms: HttpConfig['awsKms']
  const awsFile = env['EKMS_AWSKMS_CREDENTIALS_FILE']
  if (awsFile !== undefined && awsFile !== '') {
    let credentials: unknown
    try {
      credentials = JSON.parse(readFileSync(awsFile, 'utf8'))
    } catch (err) {
      throw new EngineError(
        'CONFIG_INVALID',
        `EKMS_AWSKMS_CREDENTIALS_FILE: ${awsFile} is not a readable JSON file`,
        {
          cause: err,
        },
      )
    }
    const creds = strictFile(
      AWS_CREDENTIALS_FILE,
      credentials,
      'EKMS_AWSKMS_CREDENTIALS_FILE',
      awsFile,
    ) as AwsKmsCredential[]
    awsKms = {
      port: intVar(env, 'EKMS_AWSKMS_PORT', 4599, 0, 65535),
      regions: awsRegions(env),
      credentials: creds,
    }
  }
  const port = env['EKMS_HTTP_PORT']
  return {
    awsKms,
    azureKv: azureKvConfig(env),
    listen: {
      host: env['EKMS_HTTP_HOST'] ?? '127.0.0.1',
      ...(port === undefined || port === '' ? {} : { port: intVar(env, 'EKMS_HTTP_PORT', 8080, 0, 65535) }),
      ...(cert === undefined || key === undefined ? {} : { tls: { certFile: cert, keyFile: key } }),
      allowPlaintext: env['EKMS_HTTP_ALLOW_PLAINTEXT'] === '1',
    },
    bodyLimitBytes: intVar(env, 'EKMS_HTTP_BODY_LIMIT', 65_536, 1024, 64 * 1024 * 1024),
    rateLimitPerSecond: intVar(env, 'EKMS_HTTP_RATE_LIMIT', 10_000, 0, 1_000_000_000),
    auth,
    jwtMaxLifetimeSec,
    auditLog: env['EKMS_AUDIT_LOG'] ?? '-',
    auditSync: env['EKMS_AUDIT_SYNC'] === '1',
    auditBufferBytes: intVar(env, 'EKMS_AUDIT_BUFFER_BYTES', 4 * 1024 * 1024, 65_536, 1024 * 1024 * 1024),
    auditWhenFull: auditWhenFull(env['EKMS_AUDIT_WHEN_FULL']),
    trustedProxies: trustedProxies(env['EKMS_TRUSTED_PROXIES']),
    rotationIntervalMs: intVar(env, 'EKMS_ROTATION_INTERVAL_MS', 3_600_000, 1000, 2 ** 31 - 1),
    region: env['EKMS_REGION'] ?? 'local',
    account: env['EKMS_ACCOUNT'] ?? 'envelope-kms',
  }
}
