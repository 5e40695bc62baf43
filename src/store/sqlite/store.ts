/**
 * The embedded catalog: one SQLite file (WAL, synchronous=FULL), `instance` on every row.
 *
 * This file holds {@link SqliteStore} (the MetadataStore methods, their transactions and compare-and-set
 * checks) and {@link openSqliteStore} (open, pragmas, migrations). The prepared statements are in
 * `statements.ts`, the row shapes and row→record mappers in `rows.ts`, the schema in `migrations.ts`.
 * At ~600 lines it stays one file because MetadataStore is one interface: each method is a few lines over
 * a statement, and splitting the class by role belongs to the port's split in core/ports.ts.
 */
import { randomUUID } from 'node:crypto'
import { chmodSync, existsSync } from 'node:fs'
import Database from 'better-sqlite3'
import type { Database as Db } from 'better-sqlite3'
import { EngineError } from '../../core/errors.js'
import type { KeyStateValue } from '../../core/key-state.js'
import type {
  AliasAddResult,
  AliasNameRecord,
  DeletedKey,
  DeletionScheduleRecord,
  ImportTokenRecord,
  ImportTokenStore,
  InstancePolicyRecord,
  InstancePolicyStore,
  KeyEventLog,
  KeyEventRecord,
  KeyPatch,
  KeyPolicyRecord,
  KeyRecord,
  KeyRingRecord,
  KeyVersionRecord,
  ListKeysQuery,
  MetadataStore,
  PendingVersion,
  PurgingKey,
  RegistrationRecord,
  RegistrationStore,
  TagPair,
  UpdateCondition,
} from '../../core/ports.js'
import type { JobPatch, JobRecord, JobStore, ListJobsQuery } from '../../core/ports-jobs.js'
import type {
  DataKeyRecord,
  DataKeyStore,
  KeyProviderPatch,
  KeyProviderRecord,
  KeyProviderStore,
  TenantKeyState,
} from '../../core/ports-tenant-keys.js'
import type {
  ConnectionPatch,
  ConnectionRecord,
  ConnectionStore,
  DiscoveredKey,
  LinkedKeyQuery,
  LinkedKeyRecord,
  LinkedKeyStore,
  SyncCloud,
  UpsertOutcome,
} from '../../core/ports-sync.js'
import { connectionStore } from './connections.js'
import { dataKeyStore } from './data-keys.js'
import { linkedKeyStore } from './linked-keys.js'
import type { KeyRegionRecord, KeyRegionStore } from '../../core/ports-key-regions.js'
import type { VaultKeyStore } from '../../core/ports-vault-keys.js'
import { importTokenStore } from './import-tokens.js'
import { jobStore } from './jobs.js'
import { keyProviderStore } from './key-providers.js'
import { instancePolicyStore } from './instance-policies.js'
import { keyRegionStore } from './key-regions.js'
import { MIGRATIONS } from './migrations.js'
import { registrationStore } from './registrations.js'
import { vaultKeyStore } from './vault-keys.js'
import {
  PATCH_COLUMNS,
  toAliasName,
  toPolicy,
  toRecord,
  toRing,
  toVersion,
  type AliasNameRow,
  type KeyRow,
  type VersionRow,
} from './rows.js'
import { prepareStatements, type Statements } from './statements.js'

/** Options of {@link openSqliteStore}. */
export interface SqliteStoreOptions {
  /** Path of the catalog file; created (mode 0600) when missing. `:memory:` for a throwaway catalog. */
  readonly path: string
  /** How long a writer waits for a lock held by another process (default 5000 ms). */
  readonly busyTimeoutMs?: number
}

function isUniqueViolation(err: unknown): boolean {
  return (
    typeof err === 'object' && err !== null && 'code' in err && err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
  )
}

/**
 * {@link MetadataStore} on one SQLite file, with the JobStore, KeyRegionStore, KeyProviderStore, DataKeyStore,
 * ConnectionStore and LinkedKeyStore roles beside it.
 */
export class SqliteStore
  implements
    MetadataStore,
    JobStore,
    KeyRegionStore,
    KeyProviderStore,
    DataKeyStore,
    ConnectionStore,
    LinkedKeyStore
{
  readonly catalogId: string
  readonly #db: Db
  readonly #s: Statements
  readonly #tokens: ImportTokenStore
  readonly #instancePolicies: InstancePolicyStore
  readonly #regs: RegistrationStore & KeyEventLog
  readonly #providers: KeyProviderStore
  readonly #dataKeys: DataKeyStore
  readonly #connections: ConnectionStore
  readonly #linkedKeys: LinkedKeyStore
  readonly #jobs: JobStore
  readonly #keyRegions: KeyRegionStore
  /** The vault keys of the Azure-Key-Vault-compatible API (vault-keys.ts): a role beside MetadataStore. */
  readonly vaultKeys: VaultKeyStore
  #closed = false

  constructor(db: Db) {
    this.#db = db
    this.#s = prepareStatements(db)
    this.#tokens = importTokenStore(db)
    this.#instancePolicies = instancePolicyStore(db)
    this.#regs = registrationStore(db)
    this.#providers = keyProviderStore(db)
    this.#dataKeys = dataKeyStore(db)
    this.#connections = connectionStore(db)
    this.#linkedKeys = linkedKeyStore(db)
    this.#jobs = jobStore(db)
    this.#keyRegions = keyRegionStore(db)
    const id = db.prepare<[], string>("SELECT v FROM catalog_meta WHERE k = 'catalog_id'").pluck().get()
    if (id === undefined) throw new EngineError('STORE_ERROR', 'catalog: has no catalog_id')
    this.catalogId = id
    this.vaultKeys = vaultKeyStore(db, id)
  }

  changeCounter(): number {
    return this.#s.dataVersion.get() ?? 0
  }

  // Tenant key providers and tenant key state: key-providers.ts.
  insertKeyProvider(r: KeyProviderRecord): Promise<boolean> {
    return this.#providers.insertKeyProvider(r)
  }
  getKeyProvider(tenant: string, fingerprint: string): Promise<KeyProviderRecord | undefined> {
    return this.#providers.getKeyProvider(tenant, fingerprint)
  }
  listKeyProviders(tenant: string): Promise<KeyProviderRecord[]> {
    return this.#providers.listKeyProviders(tenant)
  }
  updateKeyProvider(tenant: string, fingerprint: string, patch: KeyProviderPatch): Promise<boolean> {
    return this.#providers.updateKeyProvider(tenant, fingerprint, patch)
  }
  deleteKeyProvider(tenant: string, fingerprint: string): Promise<'deleted' | 'not-found' | 'in-use'> {
    return this.#providers.deleteKeyProvider(tenant, fingerprint)
  }
  getTenantKeyState(tenant: string): Promise<TenantKeyState | undefined> {
    return this.#providers.getTenantKeyState(tenant)
  }
  initTenantKeyState(state: TenantKeyState): Promise<TenantKeyState> {
    return this.#providers.initTenantKeyState(state)
  }
  setDefaultKey(tenant: string, keyId: string): Promise<TenantKeyState> {
    return this.#providers.setDefaultKey(tenant, keyId)
  }
  switchCurrent(
    tenant: string,
    expectedRevision: number,
    toFingerprint: string,
    at: number,
  ): Promise<TenantKeyState | undefined> {
    return this.#providers.switchCurrent(tenant, expectedRevision, toFingerprint, at)
  }

  // The data-key catalog: data-keys.ts.
  insertDataKey(r: DataKeyRecord): Promise<boolean> {
    return this.#dataKeys.insertDataKey(r)
  }
  getDataKey(tenant: string, name: string): Promise<DataKeyRecord | undefined> {
    return this.#dataKeys.getDataKey(tenant, name)
  }
  listDataKeys(
    tenant: string,
    query: { readonly after?: string | undefined; readonly limit: number },
  ): Promise<DataKeyRecord[]> {
    return this.#dataKeys.listDataKeys(tenant, query)
  }
  deleteDataKey(tenant: string, name: string): Promise<boolean> {
    return this.#dataKeys.deleteDataKey(tenant, name)
  }
  countDataKeys(tenant: string, fingerprint?: string): Promise<number> {
    return this.#dataKeys.countDataKeys(tenant, fingerprint)
  }
  listDataKeysNotUnder(
    tenant: string,
    fingerprint: string,
    after: string | undefined,
    limit: number,
  ): Promise<DataKeyRecord[]> {
    return this.#dataKeys.listDataKeysNotUnder(tenant, fingerprint, after, limit)
  }
  replaceWrapped(
    tenant: string,
    updates: Parameters<DataKeyStore['replaceWrapped']>[1],
    options?: Parameters<DataKeyStore['replaceWrapped']>[2],
  ): Promise<number> {
    return this.#dataKeys.replaceWrapped(tenant, updates, options)
  }

  // Connections of key synchronization: connections.ts.
  insertConnection(r: ConnectionRecord): Promise<boolean> {
    return this.#connections.insertConnection(r)
  }
  getConnection(tenant: string, id: string): Promise<ConnectionRecord | undefined> {
    return this.#connections.getConnection(tenant, id)
  }
  getConnectionByName(tenant: string, name: string): Promise<ConnectionRecord | undefined> {
    return this.#connections.getConnectionByName(tenant, name)
  }
  listConnections(tenant: string, cloud?: SyncCloud): Promise<ConnectionRecord[]> {
    return this.#connections.listConnections(tenant, cloud)
  }
  updateConnection(tenant: string, id: string, patch: ConnectionPatch): Promise<boolean> {
    return this.#connections.updateConnection(tenant, id, patch)
  }
  deleteConnection(
    tenant: string,
    id: string,
    options?: { readonly purgeDeleted?: boolean | undefined },
  ): Promise<'deleted' | 'not-found' | 'in-use'> {
    return this.#connections.deleteConnection(tenant, id, options)
  }

  // Linked (synchronized) keys: linked-keys.ts.
  upsertLinkedKeys(
    tenant: string,
    connectionId: string,
    cloud: SyncCloud,
    keys: readonly (DiscoveredKey & { readonly id: string })[],
    seen: { readonly at: number; readonly jobId: string },
  ): Promise<UpsertOutcome[]> {
    return this.#linkedKeys.upsertLinkedKeys(tenant, connectionId, cloud, keys, seen)
  }
  getLinkedKey(tenant: string, id: string): Promise<LinkedKeyRecord | undefined> {
    return this.#linkedKeys.getLinkedKey(tenant, id)
  }
  listLinkedKeys(tenant: string, query: LinkedKeyQuery): Promise<LinkedKeyRecord[]> {
    return this.#linkedKeys.listLinkedKeys(tenant, query)
  }
  countLinkedKeys(tenant: string, query?: Omit<LinkedKeyQuery, 'after' | 'limit'>): Promise<number> {
    return this.#linkedKeys.countLinkedKeys(tenant, query)
  }
  markMissingDeleted(
    tenant: string,
    connectionId: string,
    jobId: string,
    at: number,
    vaults?: readonly string[],
  ): Promise<number> {
    return this.#linkedKeys.markMissingDeleted(tenant, connectionId, jobId, at, vaults)
  }
  deleteLinkedKey(tenant: string, id: string): Promise<'deleted' | 'not-found' | 'present'> {
    return this.#linkedKeys.deleteLinkedKey(tenant, id)
  }

  // Jobs: jobs.ts.
  insertJob(job: JobRecord): Promise<boolean> {
    return this.#jobs.insertJob(job)
  }
  getJob(id: string): Promise<JobRecord | undefined> {
    return this.#jobs.getJob(id)
  }
  listJobs(query: ListJobsQuery): Promise<{ jobs: JobRecord[]; total: number }> {
    return this.#jobs.listJobs(query)
  }
  updateJob(id: string, expectedRevision: number, patch: JobPatch): Promise<JobRecord | undefined> {
    return this.#jobs.updateJob(id, expectedRevision, patch)
  }
  listActiveJobs(): Promise<JobRecord[]> {
    return this.#jobs.listActiveJobs()
  }

  // Key regions (the AWS-compatible endpoint's regions and key policies): key-regions.ts.
  listKeyRegions(instance: string, keyId: string): Promise<KeyRegionRecord[]> {
    return this.#keyRegions.listKeyRegions(instance, keyId)
  }
  listInstanceKeyRegions(instance: string): Promise<KeyRegionRecord[]> {
    return this.#keyRegions.listInstanceKeyRegions(instance)
  }
  insertKeyRegion(r: KeyRegionRecord): Promise<boolean> {
    return this.#keyRegions.insertKeyRegion(r)
  }
  setKeyRegionPolicy(
    instance: string,
    keyId: string,
    region: string,
    policy: string | undefined,
    updatedAt: number,
  ): Promise<boolean> {
    return this.#keyRegions.setKeyRegionPolicy(instance, keyId, region, policy, updatedAt)
  }

  // Registrations and key events: registrations.ts.
  getRegistration(instance: string, keyId: string, crn: string): Promise<RegistrationRecord | undefined> {
    return this.#regs.getRegistration(instance, keyId, crn)
  }
  insertRegistration(r: RegistrationRecord): Promise<boolean> {
    return this.#regs.insertRegistration(r)
  }
  updateRegistration(r: RegistrationRecord): Promise<boolean> {
    return this.#regs.updateRegistration(r)
  }
  deleteRegistration(instance: string, keyId: string, crn: string): Promise<boolean> {
    return this.#regs.deleteRegistration(instance, keyId, crn)
  }
  deleteKeyRegistrations(instance: string, keyId: string): Promise<number> {
    return this.#regs.deleteKeyRegistrations(instance, keyId)
  }
  listRegistrations(
    instance: string,
    query: { readonly keyId?: string | undefined; readonly keyRingId?: string | undefined },
  ): Promise<RegistrationRecord[]> {
    return this.#regs.listRegistrations(instance, query)
  }
  appendKeyEvents(events: readonly KeyEventRecord[]): Promise<void> {
    return this.#regs.appendKeyEvents(events)
  }
  listKeyEvents(instance: string, keyId: string): Promise<KeyEventRecord[]> {
    return this.#regs.listKeyEvents(instance, keyId)
  }
  getKeyEvent(instance: string, eventId: string): Promise<KeyEventRecord | undefined> {
    return this.#regs.getKeyEvent(instance, eventId)
  }
  ackKeyEvent(instance: string, eventId: string, ackedAt: number, ackState: string): Promise<boolean> {
    return this.#regs.ackKeyEvent(instance, eventId, ackedAt, ackState)
  }

  // Import tokens: import-tokens.ts.
  putImportToken(t: ImportTokenRecord): Promise<ImportTokenRecord | undefined> {
    return this.#tokens.putImportToken(t)
  }
  getImportToken(instance: string): Promise<ImportTokenRecord | undefined> {
    return this.#tokens.getImportToken(instance)
  }
  takeImportTokenRetrieval(instance: string, ref: string): Promise<ImportTokenRecord | undefined> {
    return this.#tokens.takeImportTokenRetrieval(instance, ref)
  }
  deleteImportToken(instance: string, ref: string): Promise<boolean> {
    return this.#tokens.deleteImportToken(instance, ref)
  }
  listExpiredImportTokens(now: number): Promise<ImportTokenRecord[]> {
    return this.#tokens.listExpiredImportTokens(now)
  }

  // Instance policies: instance-policies.ts.
  putInstancePolicies(instance: string, policies: readonly InstancePolicyRecord[]): Promise<void> {
    return this.#instancePolicies.putInstancePolicies(instance, policies)
  }
  listInstancePolicies(instance: string): Promise<InstancePolicyRecord[]> {
    return this.#instancePolicies.listInstancePolicies(instance)
  }

  async getKey(instance: string, id: string): Promise<KeyRecord | undefined> {
    const r = this.#s.getKey.get(instance, id)
    return r === undefined ? undefined : toRecord(r)
  }

  async getKeyIdByAlias(instance: string, alias: string): Promise<string | undefined> {
    return this.#s.aliasToId.get(instance, alias)
  }

  async getSystemKey(instance: string): Promise<KeyRecord | undefined> {
    const r = this.#s.systemKey.get(instance)
    return r === undefined ? undefined : toRecord(r)
  }

  async findInstanceOfKey(keyId: string): Promise<string | undefined> {
    return this.#s.instanceOfKey.get(keyId)
  }

  async listKeys(instance: string, q: ListKeysQuery): Promise<{ keys: KeyRecord[]; total: number }> {
    const where = ['instance = ?', 'internal = 0', `state IN (${q.states.map(() => '?').join(',')})`]
    const args: unknown[] = [instance, ...q.states]
    if (q.extractable !== undefined) {
      where.push('extractable = ?')
      args.push(q.extractable ? 1 : 0)
    }
    if (q.keyRingId !== undefined) {
      where.push('key_ring_id = ?')
      args.push(q.keyRingId)
    }
    const w = where.join(' AND ')
    const total =
      this.#db
        .prepare<unknown[], number>(`SELECT count(*) FROM keys WHERE ${w}`)
        .pluck()
        .get(...args) ?? 0
    const rows = this.#db
      .prepare<unknown[], KeyRow>(`SELECT * FROM keys WHERE ${w} ORDER BY created_at, id LIMIT ? OFFSET ?`)
      .all(...args, q.limit, q.offset)
    return { keys: rows.map(toRecord), total }
  }

  async listVersions(instance: string, keyId: string): Promise<KeyVersionRecord[]> {
    return this.#s.versions.all(instance, keyId).map(toVersion)
  }

  async listAliases(instance: string, keyId: string): Promise<string[]> {
    return this.#s.aliasesOfKey.all(instance, keyId)
  }

  async addPending(p: PendingVersion): Promise<void> {
    this.#s.addPending.run(p.instance, p.keyId, p.version, p.startedAt)
  }

  async removePending(instance: string, keyId: string, version: number): Promise<void> {
    this.#s.removePending.run(instance, keyId, version)
  }

  async listPending(): Promise<PendingVersion[]> {
    return this.#s.listPending.all()
  }

  async insertKey(
    key: KeyRecord,
    version: KeyVersionRecord,
    aliases: readonly string[],
    policies: readonly KeyPolicyRecord[] = [],
  ): Promise<void> {
    const tx = this.#db.transaction(() => {
      this.#s.insertInstance.run(key.instance, key.createdAt)
      if (key.keyRingId !== 'default' && this.#s.getRing.get(key.instance, key.keyRingId) === undefined) {
        throw new EngineError('KEY_RING_NOT_FOUND_ERR', `keyRingID: "${key.keyRingId}" does not exist`)
      }
      this.#s.insertKey.run({
        instance: key.instance,
        id: key.id,
        name: key.name,
        description: key.description ?? null,
        extractable: key.extractable ? 1 : 0,
        imported: key.imported ? 1 : 0,
        state: key.state,
        key_ring_id: key.keyRingId,
        tags: JSON.stringify(key.tags),
        created_at: key.createdAt,
        created_by: key.createdBy ?? null,
        updated_at: key.updatedAt,
        state_changed_at: key.stateChangedAt,
        last_rotated_at: key.lastRotatedAt ?? null,
        expiration_date: key.expirationDate ?? null,
        deleted_at: key.deletedAt ?? null,
        deleted_by: key.deletedBy ?? null,
        current_version: key.currentVersion,
        wrapped_payload: key.wrappedPayload ?? null,
        internal: key.internal ? 1 : 0,
      })
      if (!key.extractable) {
        this.#s.insertVersion.run(
          version.instance,
          version.keyId,
          version.version,
          version.versionId,
          version.providerRef,
          version.createdAt,
        )
      }
      for (const a of aliases) {
        try {
          this.#s.insertAlias.run(key.instance, a, key.id, key.createdAt, key.createdBy ?? null)
        } catch (err) {
          if (isUniqueViolation(err)) {
            throw new EngineError(
              'KEY_ALIAS_NOT_UNIQUE_ERR',
              `aliases: "${a}" is already in use in this instance`,
            )
          }
          throw err
        }
      }
      for (const p of policies) this.#putPolicy(p)
      this.#s.removePending.run(key.instance, key.id, version.version)
    })
    tx.immediate()
  }

  async insertVersion(v: KeyVersionRecord, patch: KeyPatch): Promise<boolean> {
    const tx = this.#db.transaction((): boolean => {
      const updatedAt = patch.updatedAt ?? v.createdAt
      const res = this.#s.bumpVersion.run(
        v.version,
        patch.lastRotatedAt ?? null,
        updatedAt,
        v.instance,
        v.keyId,
        v.version - 1,
      )
      if (res.changes !== 1) return false
      this.#s.insertVersion.run(v.instance, v.keyId, v.version, v.versionId, v.providerRef, v.createdAt)
      this.#s.removePending.run(v.instance, v.keyId, v.version)
      return true
    })
    return tx.immediate()
  }

  async reserveUsage(
    instance: string,
    keyId: string,
    version: number,
    block: number,
    limit: number,
  ): Promise<number> {
    const tx = this.#db.transaction((): number => {
      const before = this.#s.usage.get(instance, keyId, version)
      if (before === undefined) return 0
      const after = Math.min(limit, before + block)
      if (after <= before) return 0
      this.#s.setUsage.run(after, instance, keyId, version)
      return after - before
    })
    return tx.immediate()
  }

  async usageReserved(instance: string, keyId: string, version: number): Promise<number> {
    return this.#s.usage.get(instance, keyId, version) ?? 0
  }

  async adoptVersion(v: KeyVersionRecord): Promise<void> {
    this.#s.insertVersion.run(v.instance, v.keyId, v.version, v.versionId, v.providerRef, v.createdAt)
  }

  async updateKey(
    instance: string,
    id: string,
    expectState: KeyStateValue,
    patch: KeyPatch,
    condition: UpdateCondition = {},
  ): Promise<boolean> {
    const sets: string[] = []
    const args: unknown[] = []
    for (const [k, col] of Object.entries(PATCH_COLUMNS) as [keyof KeyPatch, string][]) {
      if (k in patch) {
        sets.push(`${col} = ?`)
        args.push(patch[k] ?? null)
      }
    }
    if (sets.length === 0) return true
    // One statement: the schedule check and the write are atomic against another process's
    // scheduleDeletion (which runs in an IMMEDIATE transaction).
    const unlessPending =
      condition.unlessPendingDeletion === true
        ? ' AND NOT EXISTS (SELECT 1 FROM key_deletion_schedule s WHERE s.instance = keys.instance AND s.key_id = keys.id)'
        : ''
    const unlessRegistered =
      condition.unlessRegistered === undefined
        ? ''
        : ` AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.instance = keys.instance AND r.key_id = keys.id${
            condition.unlessRegistered === 'protected' ? ' AND r.prevent_key_deletion = 1' : ''
          })`
    const res = this.#db
      .prepare(
        `UPDATE keys SET ${sets.join(', ')} WHERE instance = ? AND id = ? AND state = ? AND purging_since IS NULL${unlessPending}${unlessRegistered}`,
      )
      .run(...args, instance, id, expectState)
    return res.changes === 1
  }

  async deleteKeyRows(instance: string, id: string): Promise<void> {
    this.#s.deleteKey.run(instance, id)
  }

  async listAllVersions(): Promise<KeyVersionRecord[]> {
    return this.#db
      .prepare<[], VersionRow>('SELECT * FROM key_versions ORDER BY instance, key_id, version')
      .all()
      .map(toVersion)
  }

  async markPurging(
    instance: string,
    keyId: string,
    expectState: KeyStateValue,
    patch: KeyPatch,
    since: number,
  ): Promise<boolean> {
    const sets = ['purging_since = ?']
    const args: unknown[] = [since]
    for (const [k, col] of Object.entries(PATCH_COLUMNS) as [keyof KeyPatch, string][]) {
      if (k in patch) {
        sets.push(`${col} = ?`)
        args.push(patch[k] ?? null)
      }
    }
    const res = this.#db
      .prepare(
        `UPDATE keys SET ${sets.join(', ')} WHERE instance = ? AND id = ? AND state = ? AND purging_since IS NULL`,
      )
      .run(...args, instance, keyId, expectState)
    return res.changes === 1
  }

  async listPurging(): Promise<PurgingKey[]> {
    return this.#db
      .prepare<[], PurgingKey>(
        `SELECT instance, id AS keyId, purging_since AS since FROM keys WHERE purging_since IS NOT NULL
         ORDER BY purging_since, instance, id`,
      )
      .all()
  }

  async listDeletedBefore(before: number, limit: number): Promise<DeletedKey[]> {
    return this.#db
      .prepare<[number, number], DeletedKey>(
        `SELECT instance, id AS keyId, coalesce(deleted_at, state_changed_at) AS deletedAt FROM keys
         WHERE state = 5 AND coalesce(deleted_at, state_changed_at) <= ?
         ORDER BY deletedAt, instance, id LIMIT ?`,
      )
      .all(before, limit)
  }

  async addAlias(
    instance: string,
    keyId: string,
    alias: string,
    createdAt: number,
    maxPerKey: number,
    createdBy?: string,
  ): Promise<AliasAddResult> {
    const tx = this.#db.transaction((): AliasAddResult => {
      const owner = this.#s.aliasOwner.get(instance, alias)
      if (owner?.key_id === keyId) {
        return { result: 'exists', createdAt: owner.created_at, createdBy: owner.created_by ?? undefined }
      }
      if (owner !== undefined) {
        throw new EngineError(
          'KEY_ALIAS_NOT_UNIQUE_ERR',
          `alias: "${alias}" is already in use in this instance`,
        )
      }
      if ((this.#s.aliasCount.get(instance, keyId) ?? 0) >= maxPerKey) {
        throw new EngineError('KEY_ALIAS_QUOTA_ERR', `alias: a key has at most ${maxPerKey} aliases`)
      }
      this.#s.insertAlias.run(instance, alias, keyId, createdAt, createdBy ?? null)
      return { result: 'created', createdAt, createdBy }
    })
    return tx.immediate()
  }

  async removeAlias(instance: string, keyId: string, alias: string): Promise<boolean> {
    return this.#s.deleteAlias.run(instance, keyId, alias).changes === 1
  }

  async createKeyRing(ring: KeyRingRecord, max: number): Promise<'created' | 'exists'> {
    const tx = this.#db.transaction((): 'created' | 'exists' => {
      if (this.#s.getRing.get(ring.instance, ring.id) !== undefined) return 'exists'
      if ((this.#s.ringCount.get(ring.instance) ?? 0) >= max) {
        throw new EngineError(
          'KEY_RING_RESOURCE_QUOTA_ERR',
          `keyRing: an instance has at most ${max} key rings besides default`,
        )
      }
      this.#s.insertInstance.run(ring.instance, ring.createdAt)
      this.#s.insertRing.run(ring.instance, ring.id, ring.createdAt, ring.createdBy ?? null)
      return 'created'
    })
    return tx.immediate()
  }

  async getKeyRing(instance: string, id: string): Promise<KeyRingRecord | undefined> {
    const r = this.#s.getRing.get(instance, id)
    return r === undefined ? undefined : toRing(r)
  }

  async listKeyRings(instance: string): Promise<KeyRingRecord[]> {
    return this.#s.rings.all(instance).map(toRing)
  }

  async deleteKeyRing(instance: string, id: string, force: boolean, now: number): Promise<boolean> {
    const tx = this.#db.transaction((): boolean => {
      if (this.#s.getRing.get(instance, id) === undefined) return false
      const all = this.#s.ringKeys.get(instance, id) ?? 0
      if (all > 0) {
        if (!force) {
          throw new EngineError(
            'KEY_RING_NOT_EMPTY_ERR',
            `keyRing: "${id}" holds ${all} key(s); delete them, or force when all are deleted`,
          )
        }
        const live = this.#s.ringLiveKeys.get(instance, id) ?? 0
        if (live > 0) {
          throw new EngineError(
            'KEY_RING_KEYS_NOT_DELETED_ERR',
            `keyRing: "${id}" holds ${live} key(s) that are not deleted`,
          )
        }
        this.#s.moveRingKeys.run(now, instance, id)
      }
      this.#s.deleteRing.run(instance, id)
      return true
    })
    return tx.immediate()
  }

  async moveKey(instance: string, id: string, from: string, to: string, now: number): Promise<boolean> {
    const tx = this.#db.transaction((): boolean => {
      if (to !== 'default' && this.#s.getRing.get(instance, to) === undefined) {
        throw new EngineError('KEY_RING_NOT_FOUND_ERR', `keyRingID: "${to}" does not exist`)
      }
      return this.#s.moveKey.run(to, now, instance, id, from).changes === 1
    })
    return tx.immediate()
  }

  async putKeyPolicy(p: KeyPolicyRecord): Promise<void> {
    this.#db
      .transaction(() => {
        this.#putPolicy(p)
      })
      .immediate()
  }

  #putPolicy(p: KeyPolicyRecord): void {
    this.#s.putPolicy.run({
      instance: p.instance,
      key_id: p.keyId,
      type: p.type,
      policy_id: p.policyId,
      enabled: p.enabled ? 1 : 0,
      interval_month: p.intervalMonth ?? null,
      created_at: p.createdAt,
      created_by: p.createdBy ?? null,
      updated_at: p.updatedAt,
      updated_by: p.updatedBy ?? null,
    })
  }

  async setDeletionAuth(
    instance: string,
    keyId: string,
    by: string | undefined,
    expiresAt: number | undefined,
  ): Promise<boolean> {
    return (
      this.#s.setAuth.run(by ?? null, by === undefined ? null : (expiresAt ?? null), instance, keyId)
        .changes === 1
    )
  }

  async listKeyPolicies(instance: string, keyId: string): Promise<KeyPolicyRecord[]> {
    return this.#s.policies.all(instance, keyId).map(toPolicy)
  }

  async listEnabledRotationPolicies(): Promise<KeyPolicyRecord[]> {
    return this.#s.rotationPolicies.all().map(toPolicy)
  }

  async ping(): Promise<void> {
    if (this.#closed) throw new EngineError('STORE_ERROR', 'catalog: is closed')
    this.#s.dataVersion.get()
  }

  // ------------------------------------------------ alias names, tag pairs, scheduled deletion (migration 4)

  async createAliasName(instance: string, name: string, keyId: string, now: number): Promise<boolean> {
    const res = this.#db
      .prepare(
        'INSERT OR IGNORE INTO alias_names (instance, name, key_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(instance, name, keyId, now, now)
    return res.changes === 1
  }

  async updateAliasName(instance: string, name: string, keyId: string, now: number): Promise<boolean> {
    const res = this.#db
      .prepare('UPDATE alias_names SET key_id = ?, updated_at = ? WHERE instance = ? AND name = ?')
      .run(keyId, now, instance, name)
    return res.changes === 1
  }

  async deleteAliasName(instance: string, name: string): Promise<boolean> {
    const res = this.#db
      .prepare('DELETE FROM alias_names WHERE instance = ? AND name = ?')
      .run(instance, name)
    return res.changes === 1
  }

  async getAliasName(instance: string, name: string): Promise<AliasNameRecord | undefined> {
    const row = this.#db
      .prepare<[string, string], AliasNameRow>('SELECT * FROM alias_names WHERE instance = ? AND name = ?')
      .get(instance, name)
    return row === undefined ? undefined : toAliasName(row)
  }

  async listAliasNames(
    instance: string,
    query: {
      readonly keyId?: string | undefined
      readonly after?: string | undefined
      readonly limit: number
    },
  ): Promise<AliasNameRecord[]> {
    const where = ['instance = ?']
    const args: unknown[] = [instance]
    if (query.keyId !== undefined) {
      where.push('key_id = ?')
      args.push(query.keyId)
    }
    if (query.after !== undefined) {
      where.push('name > ?')
      args.push(query.after)
    }
    return this.#db
      .prepare<unknown[], AliasNameRow>(
        `SELECT * FROM alias_names WHERE ${where.join(' AND ')} ORDER BY name LIMIT ?`,
      )
      .all(...args, query.limit)
      .map(toAliasName)
  }

  async putTagPairs(instance: string, keyId: string, tags: readonly TagPair[], max: number): Promise<void> {
    const tx = this.#db.transaction(() => {
      const put = this.#db.prepare(
        `INSERT INTO key_tag_pairs (instance, key_id, tag_key, tag_value) VALUES (?, ?, ?, ?)
         ON CONFLICT (instance, key_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value`,
      )
      for (const t of tags) put.run(instance, keyId, t.key, t.value)
      const n = this.#db
        .prepare<[string, string], number>(
          'SELECT count(*) FROM key_tag_pairs WHERE instance = ? AND key_id = ?',
        )
        .pluck()
        .get(instance, keyId)
      if ((n ?? 0) > max) throw new EngineError('TAG_QUOTA_ERR', `tags: a key has at most ${max} tags`)
    })
    tx.immediate()
  }

  async removeTagPairs(instance: string, keyId: string, keys: readonly string[]): Promise<void> {
    const tx = this.#db.transaction(() => {
      const del = this.#db.prepare(
        'DELETE FROM key_tag_pairs WHERE instance = ? AND key_id = ? AND tag_key = ?',
      )
      for (const k of keys) del.run(instance, keyId, k)
    })
    tx.immediate()
  }

  async listTagPairs(instance: string, keyId: string): Promise<TagPair[]> {
    return this.#db
      .prepare<[string, string], TagPair>(
        'SELECT tag_key AS key, tag_value AS value FROM key_tag_pairs WHERE instance = ? AND key_id = ? ORDER BY tag_key',
      )
      .all(instance, keyId)
  }

  async scheduleDeletion(
    instance: string,
    keyId: string,
    expectState: KeyStateValue,
    patch: KeyPatch,
    deletionDate: number,
  ): Promise<boolean> {
    const tx = this.#db.transaction((): boolean => {
      const sets: string[] = []
      const args: unknown[] = []
      for (const [k, col] of Object.entries(PATCH_COLUMNS) as [keyof KeyPatch, string][]) {
        if (k in patch) {
          sets.push(`${col} = ?`)
          args.push(patch[k] ?? null)
        }
      }
      if (sets.length > 0) {
        const res = this.#db
          .prepare(
            `UPDATE keys SET ${sets.join(', ')} WHERE instance = ? AND id = ? AND state = ? AND purging_since IS NULL`,
          )
          .run(...args, instance, keyId, expectState)
        if (res.changes !== 1) return false
      }
      this.#db
        .prepare(
          `INSERT INTO key_deletion_schedule (instance, key_id, deletion_date) VALUES (?, ?, ?)
           ON CONFLICT (instance, key_id) DO UPDATE SET deletion_date = excluded.deletion_date`,
        )
        .run(instance, keyId, deletionDate)
      return true
    })
    return tx.immediate()
  }

  async cancelDeletion(instance: string, keyId: string): Promise<boolean> {
    const res = this.#db
      .prepare(
        `DELETE FROM key_deletion_schedule WHERE instance = ? AND key_id = ? AND NOT EXISTS
           (SELECT 1 FROM keys k WHERE k.instance = key_deletion_schedule.instance
              AND k.id = key_deletion_schedule.key_id AND k.purging_since IS NOT NULL)`,
      )
      .run(instance, keyId)
    return res.changes === 1
  }

  async getDeletionSchedule(instance: string, keyId: string): Promise<DeletionScheduleRecord | undefined> {
    return this.#db
      .prepare<[string, string], DeletionScheduleRecord>(
        'SELECT instance, key_id AS keyId, deletion_date AS deletionDate FROM key_deletion_schedule WHERE instance = ? AND key_id = ?',
      )
      .get(instance, keyId)
  }

  async listDueDeletions(now: number): Promise<DeletionScheduleRecord[]> {
    return this.#db
      .prepare<[number], DeletionScheduleRecord>(
        'SELECT instance, key_id AS keyId, deletion_date AS deletionDate FROM key_deletion_schedule WHERE deletion_date <= ? ORDER BY deletion_date, instance, key_id',
      )
      .all(now)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#db.close()
  }
}

/**
 * Opens (and creates or migrates) an SQLite catalog.
 * @throws EngineError STORE_ERROR when the file cannot be opened or is newer than this build
 */
export async function openSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  const isNew = options.path !== ':memory:' && !existsSync(options.path)
  let db: Db
  try {
    db = new Database(options.path)
  } catch (err) {
    throw new EngineError('STORE_ERROR', `catalog: cannot open ${options.path}`, { cause: err })
  }
  try {
    if (isNew) chmodSync(options.path, 0o600)
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    db.pragma('foreign_keys = ON')
    migrate(db)
    return new SqliteStore(db)
  } catch (err) {
    db.close()
    if (err instanceof EngineError) throw err
    throw new EngineError('STORE_ERROR', `catalog: cannot initialise ${options.path}`, { cause: err })
  }
}

function migrate(db: Db): void {
  const tx = db.transaction(() => {
    const current = db.pragma('user_version', { simple: true }) as number
    if (current > MIGRATIONS.length) {
      throw new EngineError(
        'STORE_ERROR',
        `catalog: schema version ${current} is newer than this build supports (${MIGRATIONS.length})`,
      )
    }
    for (let i = current; i < MIGRATIONS.length; i++) {
      db.exec(MIGRATIONS[i] ?? '')
      if (i === 0) db.prepare("INSERT INTO catalog_meta (k, v) VALUES ('catalog_id', ?)").run(randomUUID())
      db.pragma(`user_version = ${i + 1}`)
    }
  })
  tx.immediate()
}
