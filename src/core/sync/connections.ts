/**
 * Cloud connections of key synchronization: the CRUD rules over the {@link ConnectionStore} (inputs checked
 * by connection-params.ts), the `test` action, and the cache of open {@link SyncSource}s (one per
 * connection, reopened when the connection changed, closed on update, delete and close).
 */
import { randomUUID } from 'node:crypto'
import { EngineError, invalidField } from '../errors.js'
import type { Clock } from '../ports.js'
import type {
  ConnectionCheck,
  ConnectionParams,
  ConnectionRecord,
  ConnectionStore,
  LinkedKeyStore,
  SecretResolver,
  SyncCloud,
  SyncSource,
  SyncSourceFactories,
} from '../ports-sync.js'
import type { ConnectionInput } from './types.js'
import {
  NAME_RE,
  obj,
  onlyKeys,
  UUID_RE,
  validateConnectionName,
  validateConnectionParams,
  validateDescription,
} from './connection-params.js'

/** The store roles key synchronization uses (the SQLite store implements both). */
export type SyncStore = ConnectionStore & LinkedKeyStore

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
