/**
 * Validation of cloud connections ({@link ConnectionInput}: name, description, params per cloud). Params hold
 * secret *references* only ({@link SecretSource}: an environment variable's name or a file's path); unknown
 * fields are refused, so that no secret value can reach the catalog by a misspelt field.
 */
import { isAbsolute } from 'node:path'
import { invalidField } from '../errors.js'
import { SYNC_CLOUDS, type ConnectionParams, type SecretSource, type SyncCloud } from '../ports-sync.js'

export const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/
const ENV_RE = /^[A-Z_][A-Z0-9_]*$/
const AWS_REGION_RE = /^[a-z]{2}(-[a-z]+)+-\d+$/
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/
const MAX_DESCRIPTION = 1024
const MAX_TEXT = 256
const MAX_TOKEN_LABEL = 32
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]'])

type Obj = Record<string, unknown>

export function obj(v: unknown, field: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidField(field, 'must be an object')
  return v as Obj
}

export function onlyKeys(o: Obj, field: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw invalidField(`${field}.${k}`, 'is not a known field')
  }
}

function text(v: unknown, field: string, max = MAX_TEXT): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max || CONTROL_RE.test(v)) {
    throw invalidField(field, `must be 1-${max} printable characters`)
  }
  return v
}

function optBool(v: unknown, field: string): boolean | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'boolean') throw invalidField(field, 'must be a boolean')
  return v
}

function absPath(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 4096 || !isAbsolute(v) || v.includes('\0')) {
    throw invalidField(field, 'must be an absolute path')
  }
  return v
}

function url(v: unknown, field: string, rule: 'https' | 'http(s)'): string {
  if (typeof v !== 'string' || v.length > 2048) throw invalidField(field, 'must be a URL')
  let u: URL
  try {
    u = new URL(v)
  } catch {
    throw invalidField(field, 'must be a URL')
  }
  if (u.username !== '' || u.password !== '') throw invalidField(field, 'must not carry credentials')
  if (rule === 'https') {
    // Key Vault clients refuse bearer tokens over plain HTTP; http is allowed only on a loopback host
    // (a local test listener), never across a network.
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && LOOPBACK_HOSTS.has(u.hostname))) {
      throw invalidField(field, 'must be an https URL (http only on a loopback host)')
    }
  } else if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw invalidField(field, 'must be an http(s) URL')
  }
  return v
}

/** A {@link SecretSource}: `{kind:'env', name}` (`[A-Z_][A-Z0-9_]*`) or `{kind:'file', path}` (absolute). */
export function validateSecretSource(v: unknown, field: string): SecretSource {
  const o = obj(v, field)
  if (o['kind'] === 'env') {
    onlyKeys(o, field, ['kind', 'name'])
    const name = o['name']
    if (typeof name !== 'string' || name.length > 256 || !ENV_RE.test(name)) {
      throw invalidField(`${field}.name`, 'must be an environment variable name [A-Z_][A-Z0-9_]*')
    }
    return { kind: 'env', name }
  }
  if (o['kind'] === 'file') {
    onlyKeys(o, field, ['kind', 'path'])
    return { kind: 'file', path: absPath(o['path'], `${field}.path`) }
  }
  throw invalidField(`${field}.kind`, "must be 'env' or 'file' (a reference to the secret, never the secret)")
}

function optSecret(v: unknown, field: string): SecretSource | undefined {
  return v === undefined ? undefined : validateSecretSource(v, field)
}

function azureParams(o: Obj): ConnectionParams {
  onlyKeys(o, 'params', ['cloud', 'vaultUrl', 'credential', 'disableChallengeResourceVerification', 'caFile'])
  const c = obj(o['credential'], 'params.credential')
  let credential: Extract<ConnectionParams, { cloud: 'azure' }>['credential']
  switch (c['kind']) {
    case 'client-secret': {
      onlyKeys(c, 'params.credential', ['kind', 'tenantId', 'clientId', 'secret', 'authorityHost'])
      credential = {
        kind: 'client-secret',
        tenantId: text(c['tenantId'], 'params.credential.tenantId'),
        clientId: text(c['clientId'], 'params.credential.clientId'),
        secret: validateSecretSource(c['secret'], 'params.credential.secret'),
        authorityHost:
          c['authorityHost'] === undefined
            ? undefined
            : url(c['authorityHost'], 'params.credential.authorityHost', 'https'),
      }
      break
    }
    case 'managed-identity':
      onlyKeys(c, 'params.credential', ['kind', 'clientId'])
      credential = {
        kind: 'managed-identity',
        clientId: c['clientId'] === undefined ? undefined : text(c['clientId'], 'params.credential.clientId'),
      }
      break
    case 'static-token':
      onlyKeys(c, 'params.credential', ['kind', 'token'])
      credential = {
        kind: 'static-token',
        token: validateSecretSource(c['token'], 'params.credential.token'),
      }
      break
    default:
      throw invalidField(
        'params.credential.kind',
        "must be 'client-secret', 'managed-identity' or 'static-token'",
      )
  }
  return {
    cloud: 'azure',
    vaultUrl: url(o['vaultUrl'], 'params.vaultUrl', 'https'),
    credential,
    disableChallengeResourceVerification: optBool(
      o['disableChallengeResourceVerification'],
      'params.disableChallengeResourceVerification',
    ),
    caFile: o['caFile'] === undefined ? undefined : absPath(o['caFile'], 'params.caFile'),
  }
}

function awsParams(o: Obj): ConnectionParams {
  onlyKeys(o, 'params', ['cloud', 'regions', 'endpoint', 'credentials'])
  const r = o['regions']
  if (!Array.isArray(r) || r.length === 0)
    throw invalidField('params.regions', 'must list at least one region')
  const regions: string[] = []
  for (const region of r) {
    if (typeof region !== 'string' || !AWS_REGION_RE.test(region)) {
      throw invalidField('params.regions', 'must hold AWS region names like eu-west-1')
    }
    if (regions.includes(region)) throw invalidField('params.regions', `lists ${region} twice`)
    regions.push(region)
  }
  const c = obj(o['credentials'], 'params.credentials')
  let credentials: Extract<ConnectionParams, { cloud: 'aws' }>['credentials']
  if (c['kind'] === 'default') {
    onlyKeys(c, 'params.credentials', ['kind'])
    credentials = { kind: 'default' }
  } else if (c['kind'] === 'static') {
    onlyKeys(c, 'params.credentials', ['kind', 'accessKeyId', 'secretAccessKey', 'sessionToken'])
    credentials = {
      kind: 'static',
      accessKeyId: validateSecretSource(c['accessKeyId'], 'params.credentials.accessKeyId'),
      secretAccessKey: validateSecretSource(c['secretAccessKey'], 'params.credentials.secretAccessKey'),
      sessionToken: optSecret(c['sessionToken'], 'params.credentials.sessionToken'),
    }
  } else {
    throw invalidField('params.credentials.kind', "must be 'default' or 'static'")
  }
  return {
    cloud: 'aws',
    regions,
    endpoint: o['endpoint'] === undefined ? undefined : url(o['endpoint'], 'params.endpoint', 'http(s)'),
    credentials,
  }
}

function pkcs11Params(o: Obj): ConnectionParams {
  onlyKeys(o, 'params', ['cloud', 'module', 'tokenLabel', 'pin'])
  return {
    cloud: 'pkcs11',
    module: absPath(o['module'], 'params.module'),
    tokenLabel: text(o['tokenLabel'], 'params.tokenLabel', MAX_TOKEN_LABEL),
    pin: validateSecretSource(o['pin'], 'params.pin'),
  }
}

/** Drops the undefined optional members (what the catalog's JSON would drop anyway). */
function compact<T extends object>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T
}

/**
 * Validates a connection's params and returns them normalised (known fields only).
 * @throws EngineError INVALID_FIELD_ERR naming the field at fault (never its value)
 */
export function validateConnectionParams(params: unknown): ConnectionParams {
  const o = obj(params, 'params')
  const cloud = o['cloud']
  if (typeof cloud !== 'string' || !(SYNC_CLOUDS as readonly string[]).includes(cloud)) {
    throw invalidField('params.cloud', `must be one of ${SYNC_CLOUDS.join(', ')}`)
  }
  const c = cloud as SyncCloud
  switch (c) {
    case 'azure':
      return compact(azureParams(o))
    case 'aws':
      return compact(awsParams(o))
    case 'pkcs11':
      return compact(pkcs11Params(o))
  }
}

/** A connection name: 1-64 characters `[A-Za-z0-9._-]`. */
export function validateConnectionName(name: unknown): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw invalidField('name', 'must be 1-64 characters [A-Za-z0-9._-]')
  }
  return name
}

export function validateDescription(d: unknown): string | undefined {
  if (d === undefined) return undefined
  if (typeof d !== 'string' || d.length > MAX_DESCRIPTION || CONTROL_RE.test(d)) {
    throw invalidField('description', `must be at most ${MAX_DESCRIPTION} printable characters`)
  }
  return d
}
