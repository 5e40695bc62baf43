/**
 * Cloud connections of key synchronization: validation of {@link ConnectionInput} and its params, the CRUD
 * rules over the {@link ConnectionStore}, the `test` action, and the cache of open {@link SyncSource}s (one
 * per connection, reopened when the connection changed, closed on update, delete and close).
 *
 * Params hold secret *references* only ({@link SecretSource}: an environment variable's name or a file's
 * path); unknown fields are refused, so that no secret value can reach the catalog by a misspelt field.
 */
import { isAbsolute } from 'node:path'
import { randomUUID } from 'node:crypto'
import { EngineError, invalidField } from '../errors.js'
import type { Clock } from '../ports.js'
import {
  SYNC_CLOUDS,
  type ConnectionCheck,
  type ConnectionParams,
  type ConnectionRecord,
  type ConnectionStore,
  type LinkedKeyStore,
  type SecretResolver,
  type SecretSource,
  type SyncCloud,
  type SyncSource,
  type SyncSourceFactories,
} from '../ports-sync.js'
import type { ConnectionInput } from './types.js'

/** The store roles key synchronization uses (the SQLite store implements both). */
export type SyncStore = ConnectionStore & LinkedKeyStore

const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/
const ENV_RE = /^[A-Z_][A-Z0-9_]*$/
const AWS_REGION_RE = /^[a-z]{2}(-[a-z]+)+-\d+$/
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/
const MAX_DESCRIPTION = 1024
const MAX_TEXT = 256
const MAX_TOKEN_LABEL = 32
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]'])

type Obj = Record<string, unknown>

function obj(v: unknown, field: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidField(field, 'must be an object')
  return v as Obj
}

function onlyKeys(o: Obj, field: string, allowed: readonly string[]): void {
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

function validateDescription(d: unknown): string | undefined {
  if (d === undefined) return undefined
  if (typeof d !== 'string' || d.length > MAX_DESCRIPTION || CONTROL_RE.test(d)) {
    throw invalidField('description', `must be at most ${MAX_DESCRIPTION} printable characters`)
  }
  return d
}

function notFound(): EngineError {
  return new EngineError('CONNECTION_NOT_FOUND', 'no connection of this tenant has that id or name')
}

const keys = (n: number): string => `${n} linked key${n === 1 ? '' : 's'}`

/** Why a connection cannot be deleted, and the way out. */
function inUseMessage(present: number, deleted: number, purged: boolean): string {
  const parts: string[] = []
  if (deleted > 0 && !purged) {
    parts.push(
      `${keys(deleted)} of keys deleted at the source refer to it: purge them (purgeLinkedKey each, or delete the connection with purgeDeleted)`,
    )
  }
  if (present > 0) {
    parts.push(
      `${keys(present)} of keys still present at the source refer to it and block the delete: delete those keys at the source and synchronize first`,
    )
  }
  if (parts.length === 0) parts.push('linked keys still refer to it (a synchronization is linking keys)')
  return `connection: ${parts.join('; ')}`
}

/** The code and a message of a failure to report in a check (a foreign error's message is not shown). */
function failureOf(err: unknown): { code: string; message: string } {
  if (err instanceof EngineError) return { code: err.code, message: err.message }
  return {
    code: 'PROVIDER_ERROR',
    message: `connection: could not be opened (${err instanceof Error ? err.name : 'error'})`,
  }
}

/** Replaces every occurrence of the values in `secrets` in `s` (defence in depth for messages). */
function redact(s: string, secrets: ReadonlySet<string>): string {
  let out = s
  for (const v of secrets) if (v.length > 0) out = out.split(v).join('[redacted]')
  return out
}

interface CachedSource {
  readonly updatedAt: number
  readonly source: Promise<SyncSource>
}

/** The connections of every tenant, with the cache of their open sources. */
export class SyncConnections {
  readonly #sources = new Map<string, CachedSource>()
  /** The secret values resolved for each connection's shared source (to clean source error messages). */
  readonly #resolved = new Map<string, Set<string>>()
  #closed = false

  constructor(
    readonly store: SyncStore,
    readonly factories: SyncSourceFactories,
    readonly clock: Clock,
    readonly secrets: SecretResolver,
  ) {}

  /** The connection of `idOrName` (PKCS#11 connections also by token label when `byLabel`), or undefined. */
  async find(
    tenant: string,
    idOrName: string,
    options: { readonly cloud?: SyncCloud; readonly byLabel?: boolean } = {},
  ): Promise<ConnectionRecord | undefined> {
    if (typeof idOrName !== 'string' || idOrName.length === 0) return undefined
    let r: ConnectionRecord | undefined
    const id = idOrName.toLowerCase()
    if (UUID_RE.test(id)) r = await this.store.getConnection(tenant, id)
    if (r === undefined && NAME_RE.test(idOrName)) r = await this.store.getConnectionByName(tenant, idOrName)
    if (r === undefined && options.byLabel === true) {
      const all = await this.store.listConnections(tenant, 'pkcs11')
      r = all.find((c) => c.params.cloud === 'pkcs11' && c.params.tokenLabel === idOrName)
    }
    if (r !== undefined && options.cloud !== undefined && r.cloud !== options.cloud) return undefined
    return r
  }

  /** @throws EngineError CONNECTION_NOT_FOUND */
  async get(tenant: string, idOrName: string): Promise<ConnectionRecord> {
    const r = await this.find(tenant, idOrName)
    if (r === undefined) throw notFound()
    return r
  }

  /** @throws EngineError INVALID_FIELD_ERR, CONNECTION_EXISTS, PROVIDER_UNSUPPORTED */
  async create(tenant: string, input: ConnectionInput): Promise<ConnectionRecord> {
    const i = obj(input, 'connection')
    onlyKeys(i, 'connection', ['name', 'description', 'params'])
    const name = validateConnectionName(i['name'])
    const description = validateDescription(i['description'])
    const params = validateConnectionParams(i['params'])
    if (this.factories[params.cloud] === undefined) {
      throw new EngineError(
        'PROVIDER_UNSUPPORTED',
        `connection: ${params.cloud} sources are not available in this engine (their SDK is not installed)`,
      )
    }
    const now = this.clock.now()
    const r: ConnectionRecord = {
      tenant,
      id: randomUUID(),
      name,
      cloud: params.cloud,
      description,
      params,
      createdAt: now,
      updatedAt: now,
      lastTest: undefined,
    }
    if (!(await this.store.insertConnection(r))) {
      throw new EngineError(
        'CONNECTION_EXISTS',
        `connection: the tenant already has a connection named ${name}`,
      )
    }
    return r
  }

  /** Replaces description and/or params (same cloud); new params clear the last test. */
  async update(
    tenant: string,
    idOrName: string,
    patch: { readonly description?: string | undefined; readonly params?: ConnectionParams | undefined },
  ): Promise<ConnectionRecord> {
    const p = obj(patch, 'patch')
    onlyKeys(p, 'patch', ['description', 'params'])
    const r = await this.get(tenant, idOrName)
    const description = 'description' in p ? validateDescription(p['description']) : r.description
    const params = p['params'] === undefined ? undefined : validateConnectionParams(p['params'])
    if (params !== undefined && params.cloud !== r.cloud) {
      throw invalidField('params.cloud', `must stay ${r.cloud} (create another connection for another cloud)`)
    }
    const ok = await this.store.updateConnection(tenant, r.id, {
      description,
      updatedAt: Math.max(this.clock.now(), r.updatedAt + 1),
      ...(params === undefined ? {} : { params, lastTest: undefined }),
    })
    if (!ok) throw notFound()
    await this.forget(tenant, r.id)
    return this.get(tenant, r.id)
  }

  /**
   * Deletes a connection no linked key refers to; with `purgeDeleted`, its links of keys deleted at the
   * source go with it (in the store's transaction).
   * @throws EngineError CONNECTION_NOT_FOUND, CONNECTION_IN_USE (the message says the way out)
   */
  async delete(
    tenant: string,
    idOrName: string,
    options: { readonly purgeDeleted?: boolean | undefined } = {},
  ): Promise<void> {
    const r = await this.get(tenant, idOrName)
    const purgeDeleted = options.purgeDeleted === true
    const outcome = await this.store.deleteConnection(tenant, r.id, { purgeDeleted })
    if (outcome === 'not-found') throw notFound()
    if (outcome === 'in-use') {
      const present = await this.store.countLinkedKeys(tenant, { connectionId: r.id, sourceState: 'present' })
      const deleted = await this.store.countLinkedKeys(tenant, { connectionId: r.id, sourceState: 'deleted' })
      throw new EngineError('CONNECTION_IN_USE', inUseMessage(present, deleted, purgeDeleted))
    }
    await this.forget(tenant, r.id)
  }

  /**
   * Opens a fresh source over the connection and runs its probes; records the outcome as the connection's
   * last test. A failure to open is a failed `connect` check with its code; nothing here throws for a probe.
   */
  async test(tenant: string, idOrName: string): Promise<ConnectionRecord> {
    const r = await this.get(tenant, idOrName)
    const seen = new Set<string>()
    const resolver: SecretResolver = async (s) => {
      const v = await this.secrets(s)
      seen.add(v)
      return v
    }
    let checks: ConnectionCheck[]
    const where = r.params.cloud === 'pkcs11' ? r.params.tokenLabel : r.name
    let source: SyncSource | undefined
    try {
      source = await this.#open(r, resolver)
      checks = await source.test()
    } catch (err) {
      checks = [{ check: 'connect', where, ok: false, error: failureOf(err) }]
    } finally {
      await source?.close().catch(() => undefined)
    }
    const clean = checks.map((c): ConnectionCheck => ({
      check: c.check,
      where: c.where,
      ok: c.ok,
      ...(c.error === undefined
        ? {}
        : { error: { code: c.error.code, message: redact(c.error.message, seen) } }),
    }))
    const lastTest = {
      testedAt: this.clock.now(),
      ok: clean.length > 0 && clean.every((c) => c.ok),
      checks: clean,
    }
    if (!(await this.store.updateConnection(tenant, r.id, { lastTest }))) throw notFound()
    return { ...r, lastTest }
  }

  async #open(r: ConnectionRecord, secrets: SecretResolver): Promise<SyncSource> {
    const factory = this.factories[r.cloud]
    if (factory === undefined) {
      throw new EngineError(
        'PROVIDER_UNSUPPORTED',
        `connection: ${r.cloud} sources are not available in this engine (their SDK is not installed)`,
      )
    }
    return factory(r, secrets)
  }

  /**
   * The open source of a connection, opened on first use and shared; reopened when the connection's record
   * changed since (another process updated it).
   */
  async source(r: ConnectionRecord): Promise<SyncSource> {
    if (this.#closed) throw new EngineError('ENGINE_CLOSED', 'key synchronization is closed')
    const k = `${r.tenant}\0${r.id}`
    const cached = this.#sources.get(k)
    if (cached !== undefined && cached.updatedAt === r.updatedAt) return cached.source
    if (cached !== undefined) await this.forget(r.tenant, r.id)
    const seen = this.#resolved.get(k) ?? new Set<string>()
    this.#resolved.set(k, seen)
    const source = this.#open(r, async (ref) => {
      const v = await this.secrets(ref)
      seen.add(v)
      return v
    })
    const entry: CachedSource = { updatedAt: r.updatedAt, source }
    this.#sources.set(k, entry)
    source.catch(() => {
      if (this.#sources.get(k) === entry) this.#sources.delete(k)
    })
    return source
  }

  /**
   * A failure of a connection's shared source as it may be recorded (a job's error goes to the catalog and
   * the API): its message cleaned of every secret value resolved for that connection, whatever the source
   * put in it. The cause is dropped (it may carry the same values).
   */
  failure(tenant: string, id: string, err: EngineError): EngineError {
    const seen = this.#resolved.get(`${tenant}\0${id}`)
    if (seen === undefined || seen.size === 0) return err
    const message = redact(err.message, seen)
    if (message === err.message) return err
    return new EngineError(err.code, message, {
      retryable: err.retryable,
      ...(err.target === undefined ? {} : { target: err.target }),
    })
  }

  /** Closes and forgets the cached source of a connection. */
  async forget(tenant: string, id: string): Promise<void> {
    const k = `${tenant}\0${id}`
    const cached = this.#sources.get(k)
    if (cached === undefined) return
    this.#sources.delete(k)
    await cached.source.then((s) => s.close()).catch(() => undefined)
  }

  async close(): Promise<void> {
    this.#closed = true
    const all = [...this.#sources.values()]
    this.#sources.clear()
    this.#resolved.clear()
    await Promise.all(all.map((c) => c.source.then((s) => s.close()).catch(() => undefined)))
  }
}
