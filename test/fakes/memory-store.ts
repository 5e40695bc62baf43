/**
 * An in-memory {@link MetadataStore} for unit tests: every role of the catalog (KeyCatalog, UsageLedger,
 * AliasStore, KeyRingStore, PolicyStore, TagStore, DeletionSchedule, PurgeJournal) with the semantics the
 * SQLite store has and ports.ts documents: each call is atomic (one "transaction"), compare-and-set writes return false when
 * the expected state no longer holds, `reserveUsage` never grants beyond `limit`, rows that need their key
 * fail without it (the foreign keys) and go with it, and {@link MemoryStore.changeCounter} changes on every
 * write. Not durable and not shared between processes: a test double, never a store (test/unit only; the
 * conformance suite in test/conformance/metadata-store.ts runs against it in test/unit/fakes).
 *
 * Two engines given the same MemoryStore behave like two processes sharing one catalog.
 */
import { randomUUID } from 'node:crypto'
import { EngineError } from '../../src/core/errors.js'
import type { KeyStateValue } from '../../src/core/key-state.js'
import type {
  AliasAddResult,
  AliasNameRecord,
  DeletedKey,
  DeletionScheduleRecord,
  ImportTokenRecord,
  InstancePolicyRecord,
  KeyEventRecord,
  RegistrationRecord,
  KeyPatch,
  KeyPolicyRecord,
  KeyRecord,
  KeyRingRecord,
  KeyVersionRecord,
  ListKeysQuery,
  MetadataStore,
  PendingVersion,
  PurgingKey,
  TagPair,
  UpdateCondition,
} from '../../src/core/ports.js'

/** Every store method, by name (what {@link MemoryStore.calls} counts and the gate sees). */
export type StoreOp = Exclude<keyof MetadataStore, 'catalogId'>

export interface MemoryStoreOptions {
  readonly catalogId?: string
  /**
   * Awaited at the start of every async call (after it is counted, before it reads or writes anything):
   * tests hold or delay calls here to interleave them. The call's work itself stays atomic.
   */
  readonly gate?: (op: StoreOp, args: readonly unknown[]) => Promise<void> | void
  /**
   * Whether the store can report commits (`changeCounter`, default true). Without it the directory never
   * polls, as with a store that cannot tell cheaply.
   */
  readonly changeCounter?: boolean
}

interface VersionRow {
  rec: KeyVersionRecord
  reserved: number
}

interface AliasRow {
  readonly keyId: string
  readonly createdAt: number
  readonly createdBy: string | undefined
}

const k2 = (a: string, b: string): string => `${a}\u0000${b}`
const k3 = (a: string, b: string, c: string | number): string => `${a}\u0000${b}\u0000${c}`

function fkError(): Error {
  return new Error('memory store: FOREIGN KEY constraint failed')
}

function copyKey(r: KeyRecord): KeyRecord {
  return {
    ...r,
    tags: [...r.tags],
    wrappedPayload: r.wrappedPayload === undefined ? undefined : Buffer.from(r.wrappedPayload),
  }
}

/** See the file header. Create one with {@link createMemoryStore}. */
export class MemoryStore implements MetadataStore {
  readonly catalogId: string
  /** Calls so far, per method (`changeCounter` included). */
  readonly calls: Partial<Record<StoreOp, number>> = {}
  /** Present unless the store was made with `changeCounter: false`. */
  readonly changeCounter?: () => number

  readonly #gate: MemoryStoreOptions['gate']
  readonly #keys = new Map<string, KeyRecord>()
  readonly #versions = new Map<string, Map<number, VersionRow>>()
  readonly #aliases = new Map<string, AliasRow>()
  readonly #pending = new Map<string, PendingVersion>()
  readonly #rings = new Map<string, KeyRingRecord>()
  readonly #policies = new Map<string, KeyPolicyRecord>()
  readonly #aliasNames = new Map<string, AliasNameRecord>()
  readonly #tagPairs = new Map<string, Map<string, string>>()
  readonly #schedules = new Map<string, DeletionScheduleRecord>()
  readonly #importTokens = new Map<string, ImportTokenRecord>()
  readonly #instancePolicies = new Map<string, InstancePolicyRecord>()
  readonly #registrations = new Map<string, RegistrationRecord>()
  readonly #events = new Map<string, KeyEventRecord>()
  #changes = 0
  #closed = false

  constructor(options: MemoryStoreOptions = {}) {
    this.catalogId = options.catalogId ?? randomUUID()
    this.#gate = options.gate
    if (options.changeCounter ?? true) {
      this.changeCounter = () => {
        this.#count('changeCounter')
        return this.#changes
      }
    }
  }

  /** How many writes committed so far (what `changeCounter` reports). */
  get writes(): number {
    return this.#changes
  }

  // ------------------------------------------------------------------------------------------ KeyCatalog

  async getKey(instance: string, id: string): Promise<KeyRecord | undefined> {
    await this.#enter('getKey', [instance, id])
    const r = this.#keys.get(k2(instance, id))
    return r === undefined ? undefined : copyKey(r)
  }

  async getSystemKey(instance: string): Promise<KeyRecord | undefined> {
    await this.#enter('getSystemKey', [instance])
    const r = this.#sorted([...this.#keys.values()].filter((k) => k.instance === instance && k.internal))[0]
    return r === undefined ? undefined : copyKey(r)
  }

  async findInstanceOfKey(keyId: string): Promise<string | undefined> {
    await this.#enter('findInstanceOfKey', [keyId])
    for (const k of this.#keys.values()) if (k.id === keyId) return k.instance
    return undefined
  }

  async listKeys(instance: string, q: ListKeysQuery): Promise<{ keys: KeyRecord[]; total: number }> {
    await this.#enter('listKeys', [instance, q])
    const all = this.#sorted(
      [...this.#keys.values()].filter(
        (k) =>
          k.instance === instance &&
          !k.internal &&
          q.states.includes(k.state) &&
          (q.extractable === undefined || k.extractable === q.extractable) &&
          (q.keyRingId === undefined || k.keyRingId === q.keyRingId),
      ),
    )
    return { keys: all.slice(q.offset, q.offset + q.limit).map(copyKey), total: all.length }
  }

  async listVersions(instance: string, keyId: string): Promise<KeyVersionRecord[]> {
    await this.#enter('listVersions', [instance, keyId])
    const vs = this.#versions.get(k2(instance, keyId))
    if (vs === undefined) return []
    return [...vs.values()].sort((a, b) => a.rec.version - b.rec.version).map((v) => ({ ...v.rec }))
  }

  async addPending(p: PendingVersion): Promise<void> {
    await this.#enter('addPending', [p])
    const key = k3(p.instance, p.keyId, p.version)
    if (this.#pending.has(key)) return // INSERT OR IGNORE
    this.#pending.set(key, { ...p })
    this.#wrote()
  }

  async removePending(instance: string, keyId: string, version: number): Promise<void> {
    await this.#enter('removePending', [instance, keyId, version])
    if (this.#pending.delete(k3(instance, keyId, version))) this.#wrote()
  }

  async listPending(): Promise<PendingVersion[]> {
    await this.#enter('listPending', [])
    return [...this.#pending.values()].sort((a, b) => a.startedAt - b.startedAt).map((p) => ({ ...p }))
  }

  async insertKey(
    key: KeyRecord,
    version: KeyVersionRecord,
    aliases: readonly string[],
    policies: readonly KeyPolicyRecord[] = [],
  ): Promise<void> {
    await this.#enter('insertKey', [key, version, aliases, policies])
    const kk = k2(key.instance, key.id)
    // Checks first, writes after: the call is one transaction.
    if (key.keyRingId !== 'default' && !this.#rings.has(k2(key.instance, key.keyRingId))) {
      throw new EngineError('KEY_RING_NOT_FOUND_ERR', `keyRingID: "${key.keyRingId}" does not exist`)
    }
    if ([...this.#keys.values()].some((k) => k.id === key.id)) {
      throw new Error('memory store: UNIQUE constraint failed: keys.id')
    }
    const seen = new Set<string>()
    for (const a of aliases) {
      if (this.#aliases.has(k2(key.instance, a)) || seen.has(a)) {
        throw new EngineError(
          'KEY_ALIAS_NOT_UNIQUE_ERR',
          `aliases: "${a}" is already in use in this instance`,
        )
      }
      seen.add(a)
    }
    this.#keys.set(kk, copyKey(key))
    if (!key.extractable) {
      this.#versions.set(kk, new Map([[version.version, { rec: { ...version }, reserved: 0 }]]))
    }
    for (const a of aliases)
      this.#aliases.set(k2(key.instance, a), {
        keyId: key.id,
        createdAt: key.createdAt,
        createdBy: key.createdBy,
      })
    for (const p of policies) this.#putPolicy(p)
    this.#pending.delete(k3(key.instance, key.id, version.version))
    this.#wrote()
  }

  async insertVersion(v: KeyVersionRecord, patch: KeyPatch): Promise<boolean> {
    await this.#enter('insertVersion', [v, patch])
    const kk = k2(v.instance, v.keyId)
    const r = this.#keys.get(kk)
    if (r === undefined || r.currentVersion !== v.version - 1 || r.purgingSince !== undefined) return false
    this.#keys.set(kk, {
      ...r,
      currentVersion: v.version,
      lastRotatedAt: patch.lastRotatedAt ?? r.lastRotatedAt,
      updatedAt: patch.updatedAt ?? v.createdAt,
    })
    this.#addVersionRow(v)
    this.#pending.delete(k3(v.instance, v.keyId, v.version))
    this.#wrote()
    return true
  }

  async adoptVersion(v: KeyVersionRecord): Promise<void> {
    await this.#enter('adoptVersion', [v])
    this.#addVersionRow(v)
    this.#wrote()
  }

  async updateKey(
    instance: string,
    id: string,
    expectState: KeyStateValue,
    patch: KeyPatch,
    condition: UpdateCondition = {},
  ): Promise<boolean> {
    await this.#enter('updateKey', [instance, id, expectState, patch])
    if (condition.unlessPendingDeletion === true && this.#schedules.has(k2(instance, id))) return false
    if (condition.unlessRegistered !== undefined) {
      for (const r of this.#registrations.values()) {
        if (
          r.instance === instance &&
          r.keyId === id &&
          (condition.unlessRegistered === 'any' || r.preventKeyDeletion)
        ) {
          return false
        }
      }
    }
    if (!this.#patchIf(instance, id, expectState, patch)) return false
    this.#wrote()
    return true
  }

  async deleteKeyRows(instance: string, id: string): Promise<void> {
    await this.#enter('deleteKeyRows', [instance, id])
    const kk = k2(instance, id)
    if (!this.#keys.delete(kk)) return
    // ON DELETE CASCADE
    this.#versions.delete(kk)
    for (const [a, row] of this.#aliases)
      if (a.startsWith(`${instance}\u0000`) && row.keyId === id) this.#aliases.delete(a)
    for (const [p, row] of this.#policies)
      if (row.instance === instance && row.keyId === id) this.#policies.delete(p)
    for (const [n, row] of this.#aliasNames)
      if (row.instance === instance && row.keyId === id) this.#aliasNames.delete(n)
    this.#tagPairs.delete(kk)
    this.#schedules.delete(kk)
    for (const [n, row] of this.#registrations)
      if (row.instance === instance && row.keyId === id) this.#registrations.delete(n)
    for (const [n, row] of this.#events)
      if (row.instance === instance && row.keyId === id) this.#events.delete(n)
    this.#wrote()
  }

  async listAllVersions(): Promise<KeyVersionRecord[]> {
    await this.#enter('listAllVersions', [])
    return [...this.#versions.values()]
      .flatMap((vs) => [...vs.values()].map((v) => ({ ...v.rec })))
      .sort((a, b) => cmp(a.instance, b.instance) || cmp(a.keyId, b.keyId) || a.version - b.version)
  }

  async markPurging(
    instance: string,
    keyId: string,
    expectState: KeyStateValue,
    patch: KeyPatch,
    since: number,
  ): Promise<boolean> {
    await this.#enter('markPurging', [instance, keyId, expectState, patch, since])
    if (!this.#patchIf(instance, keyId, expectState, { ...patch, purgingSince: since })) {
      return false
    }
    this.#wrote()
    return true
  }

  async listPurging(): Promise<PurgingKey[]> {
    await this.#enter('listPurging', [])
    return [...this.#keys.values()]
      .filter((r) => r.purgingSince !== undefined)
      .map((r) => ({ instance: r.instance, keyId: r.id, since: r.purgingSince ?? 0 }))
      .sort((a, b) => a.since - b.since || cmp(a.instance, b.instance) || cmp(a.keyId, b.keyId))
  }

  async listDeletedBefore(before: number, limit: number): Promise<DeletedKey[]> {
    await this.#enter('listDeletedBefore', [before, limit])
    return [...this.#keys.values()]
      .filter((r) => r.state === 5 && (r.deletedAt ?? r.stateChangedAt) <= before)
      .map((r) => ({ instance: r.instance, keyId: r.id, deletedAt: r.deletedAt ?? r.stateChangedAt }))
      .sort((a, b) => a.deletedAt - b.deletedAt || cmp(a.instance, b.instance) || cmp(a.keyId, b.keyId))
      .slice(0, limit)
  }

  async ping(): Promise<void> {
    await this.#enter('ping', [])
  }

  async close(): Promise<void> {
    this.#count('close')
    this.#closed = true
  }

  // ------------------------------------------------------------------------------------------ UsageLedger

  async reserveUsage(
    instance: string,
    keyId: string,
    version: number,
    block: number,
    limit: number,
  ): Promise<number> {
    await this.#enter('reserveUsage', [instance, keyId, version, block, limit])
    const row = this.#versions.get(k2(instance, keyId))?.get(version)
    if (row === undefined) return 0
    const after = Math.min(limit, row.reserved + block)
    if (after <= row.reserved) return 0
    const granted = after - row.reserved
    row.reserved = after
    this.#wrote()
    return granted
  }

  async usageReserved(instance: string, keyId: string, version: number): Promise<number> {
    await this.#enter('usageReserved', [instance, keyId, version])
    return this.#versions.get(k2(instance, keyId))?.get(version)?.reserved ?? 0
  }

  // ------------------------------------------------------------------------------------------ AliasStore

  async getKeyIdByAlias(instance: string, alias: string): Promise<string | undefined> {
    await this.#enter('getKeyIdByAlias', [instance, alias])
    return this.#aliases.get(k2(instance, alias))?.keyId
  }

  async listAliases(instance: string, keyId: string): Promise<string[]> {
    await this.#enter('listAliases', [instance, keyId])
    return [...this.#aliases]
      .filter(([a, row]) => a.startsWith(`${instance}\u0000`) && row.keyId === keyId)
      .map(([a, row]) => ({ alias: a.slice(instance.length + 1), createdAt: row.createdAt }))
      .sort((x, y) => x.createdAt - y.createdAt || cmp(x.alias, y.alias))
      .map((x) => x.alias)
  }

  async addAlias(
    instance: string,
    keyId: string,
    alias: string,
    createdAt: number,
    maxPerKey: number,
    createdBy?: string,
  ): Promise<AliasAddResult> {
    await this.#enter('addAlias', [instance, keyId, alias, createdAt, maxPerKey, createdBy])
    const owner = this.#aliases.get(k2(instance, alias))
    if (owner?.keyId === keyId) {
      return { result: 'exists', createdAt: owner.createdAt, createdBy: owner.createdBy }
    }
    if (owner !== undefined) {
      throw new EngineError(
        'KEY_ALIAS_NOT_UNIQUE_ERR',
        `alias: "${alias}" is already in use in this instance`,
      )
    }
    let n = 0
    for (const [a, row] of this.#aliases) if (a.startsWith(`${instance}\u0000`) && row.keyId === keyId) n++
    if (n >= maxPerKey)
      throw new EngineError('KEY_ALIAS_QUOTA_ERR', `alias: a key has at most ${maxPerKey} aliases`)
    this.#needKey(instance, keyId)
    this.#aliases.set(k2(instance, alias), { keyId, createdAt, createdBy })
    this.#wrote()
    return { result: 'created', createdAt, createdBy }
  }

  async removeAlias(instance: string, keyId: string, alias: string): Promise<boolean> {
    await this.#enter('removeAlias', [instance, keyId, alias])
    const key = k2(instance, alias)
    if (this.#aliases.get(key)?.keyId !== keyId) return false
    this.#aliases.delete(key)
    this.#wrote()
    return true
  }

  async createAliasName(instance: string, name: string, keyId: string, now: number): Promise<boolean> {
    await this.#enter('createAliasName', [instance, name, keyId, now])
    const key = k2(instance, name)
    if (this.#aliasNames.has(key)) return false
    this.#needKey(instance, keyId)
    this.#aliasNames.set(key, { instance, name, keyId, createdAt: now, updatedAt: now })
    this.#wrote()
    return true
  }

  async updateAliasName(instance: string, name: string, keyId: string, now: number): Promise<boolean> {
    await this.#enter('updateAliasName', [instance, name, keyId, now])
    const key = k2(instance, name)
    const r = this.#aliasNames.get(key)
    if (r === undefined) return false
    this.#needKey(instance, keyId)
    this.#aliasNames.set(key, { ...r, keyId, updatedAt: now })
    this.#wrote()
    return true
  }

  async deleteAliasName(instance: string, name: string): Promise<boolean> {
    await this.#enter('deleteAliasName', [instance, name])
    if (!this.#aliasNames.delete(k2(instance, name))) return false
    this.#wrote()
    return true
  }

  async getAliasName(instance: string, name: string): Promise<AliasNameRecord | undefined> {
    await this.#enter('getAliasName', [instance, name])
    const r = this.#aliasNames.get(k2(instance, name))
    return r === undefined ? undefined : { ...r }
  }

  async listAliasNames(
    instance: string,
    query: {
      readonly keyId?: string | undefined
      readonly after?: string | undefined
      readonly limit: number
    },
  ): Promise<AliasNameRecord[]> {
    await this.#enter('listAliasNames', [instance, query])
    const { keyId, after } = query
    return [...this.#aliasNames.values()]
      .filter(
        (r) =>
          r.instance === instance &&
          (keyId === undefined || r.keyId === keyId) &&
          (after === undefined || cmp(r.name, after) > 0),
      )
      .sort((a, b) => cmp(a.name, b.name))
      .slice(0, query.limit)
      .map((r) => ({ ...r }))
  }

  // ------------------------------------------------------------------------------------------ KeyRingStore

  async createKeyRing(ring: KeyRingRecord, max: number): Promise<'created' | 'exists'> {
    await this.#enter('createKeyRing', [ring, max])
    const key = k2(ring.instance, ring.id)
    if (this.#rings.has(key)) return 'exists'
    if ([...this.#rings.values()].filter((r) => r.instance === ring.instance).length >= max) {
      throw new EngineError(
        'KEY_RING_RESOURCE_QUOTA_ERR',
        `keyRing: an instance has at most ${max} key rings besides default`,
      )
    }
    this.#rings.set(key, { ...ring })
    this.#wrote()
    return 'created'
  }

  async getKeyRing(instance: string, id: string): Promise<KeyRingRecord | undefined> {
    await this.#enter('getKeyRing', [instance, id])
    const r = this.#rings.get(k2(instance, id))
    return r === undefined ? undefined : { ...r }
  }

  async listKeyRings(instance: string): Promise<KeyRingRecord[]> {
    await this.#enter('listKeyRings', [instance])
    return [...this.#rings.values()]
      .filter((r) => r.instance === instance)
      .sort((a, b) => a.createdAt - b.createdAt || cmp(a.id, b.id))
      .map((r) => ({ ...r }))
  }

  async deleteKeyRing(instance: string, id: string, force: boolean, now: number): Promise<boolean> {
    await this.#enter('deleteKeyRing', [instance, id, force, now])
    if (!this.#rings.has(k2(instance, id))) return false
    const inRing = [...this.#keys.values()].filter((k) => k.instance === instance && k.keyRingId === id)
    const visible = inRing.filter((k) => !k.internal)
    if (visible.length > 0) {
      if (!force) {
        throw new EngineError(
          'KEY_RING_NOT_EMPTY_ERR',
          `keyRing: "${id}" holds ${visible.length} key(s); delete them, or force when all are deleted`,
        )
      }
      const live = visible.filter((k) => k.state !== 5).length
      if (live > 0) {
        throw new EngineError(
          'KEY_RING_KEYS_NOT_DELETED_ERR',
          `keyRing: "${id}" holds ${live} key(s) that are not deleted`,
        )
      }
    }
    for (const k of inRing) this.#keys.set(k2(instance, k.id), { ...k, keyRingId: 'default', updatedAt: now })
    this.#rings.delete(k2(instance, id))
    this.#wrote()
    return true
  }

  async moveKey(instance: string, id: string, from: string, to: string, now: number): Promise<boolean> {
    await this.#enter('moveKey', [instance, id, from, to, now])
    if (to !== 'default' && !this.#rings.has(k2(instance, to))) {
      throw new EngineError('KEY_RING_NOT_FOUND_ERR', `keyRingID: "${to}" does not exist`)
    }
    const kk = k2(instance, id)
    const r = this.#keys.get(kk)
    if (r === undefined || r.keyRingId !== from) return false
    this.#keys.set(kk, { ...r, keyRingId: to, updatedAt: now })
    this.#wrote()
    return true
  }

  // ------------------------------------------------------------------------------------------ PolicyStore

  async putKeyPolicy(p: KeyPolicyRecord): Promise<void> {
    await this.#enter('putKeyPolicy', [p])
    this.#putPolicy(p)
    this.#wrote()
  }

  async setDeletionAuth(
    instance: string,
    keyId: string,
    by: string | undefined,
    expiresAt: number | undefined,
  ): Promise<boolean> {
    await this.#enter('setDeletionAuth', [instance, keyId, by, expiresAt])
    const key = k3(instance, keyId, 'dualAuthDelete')
    const p = this.#policies.get(key)
    if (p === undefined) return false
    this.#policies.set(key, { ...p, authBy: by, authExpiresAt: by === undefined ? undefined : expiresAt })
    this.#wrote()
    return true
  }

  async listKeyPolicies(instance: string, keyId: string): Promise<KeyPolicyRecord[]> {
    await this.#enter('listKeyPolicies', [instance, keyId])
    return [...this.#policies.values()]
      .filter((p) => p.instance === instance && p.keyId === keyId)
      .sort((a, b) => cmp(a.type, b.type))
      .map((p) => ({ ...p }))
  }

  async listEnabledRotationPolicies(): Promise<KeyPolicyRecord[]> {
    await this.#enter('listEnabledRotationPolicies', [])
    return [...this.#policies.values()]
      .filter((p) => p.type === 'rotation' && p.enabled)
      .sort((a, b) => cmp(a.instance, b.instance) || cmp(a.keyId, b.keyId))
      .map((p) => ({ ...p }))
  }

  // ------------------------------------------------------------------------------------------ TagStore

  async putTagPairs(instance: string, keyId: string, tags: readonly TagPair[], max: number): Promise<void> {
    await this.#enter('putTagPairs', [instance, keyId, tags, max])
    this.#needKey(instance, keyId)
    const kk = k2(instance, keyId)
    const next = new Map(this.#tagPairs.get(kk))
    for (const t of tags) next.set(t.key, t.value)
    if (next.size > max) throw new EngineError('TAG_QUOTA_ERR', `tags: a key has at most ${max} tags`)
    this.#tagPairs.set(kk, next)
    this.#wrote()
  }

  async removeTagPairs(instance: string, keyId: string, keys: readonly string[]): Promise<void> {
    await this.#enter('removeTagPairs', [instance, keyId, keys])
    const m = this.#tagPairs.get(k2(instance, keyId))
    if (m === undefined) return
    for (const k of keys) m.delete(k)
    this.#wrote()
  }

  async listTagPairs(instance: string, keyId: string): Promise<TagPair[]> {
    await this.#enter('listTagPairs', [instance, keyId])
    return [...(this.#tagPairs.get(k2(instance, keyId)) ?? [])]
      .sort(([a], [b]) => cmp(a, b))
      .map(([key, value]) => ({ key, value }))
  }

  // ------------------------------------------------------------------------------------------ DeletionSchedule

  async scheduleDeletion(
    instance: string,
    keyId: string,
    expectState: KeyStateValue,
    patch: KeyPatch,
    deletionDate: number,
  ): Promise<boolean> {
    await this.#enter('scheduleDeletion', [instance, keyId, expectState, patch, deletionDate])
    if (!this.#patchIf(instance, keyId, expectState, patch)) return false
    this.#schedules.set(k2(instance, keyId), { instance, keyId, deletionDate })
    this.#wrote()
    return true
  }

  async cancelDeletion(instance: string, keyId: string): Promise<boolean> {
    await this.#enter('cancelDeletion', [instance, keyId])
    if (this.#keys.get(k2(instance, keyId))?.purgingSince !== undefined) return false
    if (!this.#schedules.delete(k2(instance, keyId))) return false
    this.#wrote()
    return true
  }

  async getDeletionSchedule(instance: string, keyId: string): Promise<DeletionScheduleRecord | undefined> {
    await this.#enter('getDeletionSchedule', [instance, keyId])
    const s = this.#schedules.get(k2(instance, keyId))
    return s === undefined ? undefined : { ...s }
  }

  async listDueDeletions(now: number): Promise<DeletionScheduleRecord[]> {
    await this.#enter('listDueDeletions', [now])
    return [...this.#schedules.values()]
      .filter((s) => s.deletionDate <= now)
      .sort((a, b) => a.deletionDate - b.deletionDate || cmp(a.instance, b.instance) || cmp(a.keyId, b.keyId))
      .map((s) => ({ ...s }))
  }

  // ------------------------------------------------------------------------------------------ ImportTokenStore

  async putImportToken(t: ImportTokenRecord): Promise<ImportTokenRecord | undefined> {
    await this.#enter('putImportToken', [t])
    const old = this.#importTokens.get(t.instance)
    this.#importTokens.set(t.instance, { ...t, nonce: Buffer.from(t.nonce) })
    this.#wrote()
    return old
  }

  async getImportToken(instance: string): Promise<ImportTokenRecord | undefined> {
    await this.#enter('getImportToken', [instance])
    const t = this.#importTokens.get(instance)
    return t === undefined ? undefined : { ...t, nonce: Buffer.from(t.nonce) }
  }

  async takeImportTokenRetrieval(
    instance: string,
    providerRef: string,
  ): Promise<ImportTokenRecord | undefined> {
    await this.#enter('takeImportTokenRetrieval', [instance, providerRef])
    const t = this.#importTokens.get(instance)
    if (t === undefined || t.providerRef !== providerRef || t.remainingRetrievals <= 0) return undefined
    const next = { ...t, remainingRetrievals: t.remainingRetrievals - 1 }
    this.#importTokens.set(instance, next)
    this.#wrote()
    return { ...next, nonce: Buffer.from(next.nonce) }
  }

  async deleteImportToken(instance: string, providerRef: string): Promise<boolean> {
    await this.#enter('deleteImportToken', [instance, providerRef])
    if (this.#importTokens.get(instance)?.providerRef !== providerRef) return false
    this.#importTokens.delete(instance)
    this.#wrote()
    return true
  }

  async listExpiredImportTokens(now: number): Promise<ImportTokenRecord[]> {
    await this.#enter('listExpiredImportTokens', [now])
    return [...this.#importTokens.values()]
      .filter((t) => t.expiresAt <= now)
      .map((t) => ({ ...t, nonce: Buffer.from(t.nonce) }))
  }

  // -------------------------------------------------------------------------------------- InstancePolicyStore

  async putInstancePolicies(instance: string, policies: readonly InstancePolicyRecord[]): Promise<void> {
    await this.#enter('putInstancePolicies', [instance, policies])
    if (policies.some((p) => p.instance !== instance)) {
      throw new Error('instance policies: a policy of another instance')
    }
    for (const p of policies) {
      this.#instancePolicies.set(`${instance}\u0000${p.type}`, structuredClone(p))
    }
    this.#wrote()
  }

  async listInstancePolicies(instance: string): Promise<InstancePolicyRecord[]> {
    await this.#enter('listInstancePolicies', [instance])
    return [...this.#instancePolicies.values()]
      .filter((p) => p.instance === instance)
      .sort((a, b) => cmp(a.type, b.type))
      .map((p) => structuredClone(p))
  }

  // ------------------------------------------------------------------------------- RegistrationStore

  async getRegistration(
    instance: string,
    keyId: string,
    crn: string,
  ): Promise<RegistrationRecord | undefined> {
    await this.#enter('getRegistration', [instance, keyId, crn])
    const r = this.#registrations.get(k3(instance, keyId, crn))
    return r === undefined ? undefined : { ...r }
  }

  async insertRegistration(r: RegistrationRecord): Promise<boolean> {
    await this.#enter('insertRegistration', [r])
    const id = k3(r.instance, r.keyId, r.resourceCrn)
    if (this.#registrations.has(id)) return false
    const key = this.#keys.get(k2(r.instance, r.keyId))
    if (key === undefined || key.state !== 1 || key.purgingSince !== undefined) return false
    this.#registrations.set(id, { ...r })
    this.#wrote()
    return true
  }

  async updateRegistration(r: RegistrationRecord): Promise<boolean> {
    await this.#enter('updateRegistration', [r])
    const id = k3(r.instance, r.keyId, r.resourceCrn)
    if (!this.#registrations.has(id)) return false
    this.#registrations.set(id, { ...r })
    this.#wrote()
    return true
  }

  async deleteRegistration(instance: string, keyId: string, crn: string): Promise<boolean> {
    await this.#enter('deleteRegistration', [instance, keyId, crn])
    if (!this.#registrations.delete(k3(instance, keyId, crn))) return false
    this.#wrote()
    return true
  }

  async deleteKeyRegistrations(instance: string, keyId: string): Promise<number> {
    await this.#enter('deleteKeyRegistrations', [instance, keyId])
    let n = 0
    for (const [id, r] of this.#registrations) {
      if (r.instance === instance && r.keyId === keyId) {
        this.#registrations.delete(id)
        n++
      }
    }
    if (n > 0) this.#wrote()
    return n
  }

  async listRegistrations(
    instance: string,
    query: { readonly keyId?: string | undefined; readonly keyRingId?: string | undefined },
  ): Promise<RegistrationRecord[]> {
    await this.#enter('listRegistrations', [instance, query])
    return [...this.#registrations.values()]
      .filter(
        (r) =>
          r.instance === instance &&
          (query.keyId !== undefined
            ? r.keyId === query.keyId
            : query.keyRingId === undefined ||
              this.#keys.get(k2(instance, r.keyId))?.keyRingId === query.keyRingId),
      )
      .sort((a, b) => a.createdAt - b.createdAt || cmp(a.keyId, b.keyId) || cmp(a.resourceCrn, b.resourceCrn))
      .map((r) => ({ ...r }))
  }

  // ------------------------------------------------------------------------------------- KeyEventLog

  async appendKeyEvents(events: readonly KeyEventRecord[]): Promise<void> {
    await this.#enter('appendKeyEvents', [events])
    for (const e of events) {
      if (!this.#keys.has(k2(e.instance, e.keyId))) throw fkError()
      if (this.#events.has(k2(e.instance, e.eventId)))
        throw new Error('memory store: UNIQUE constraint failed')
    }
    for (const e of events) this.#events.set(k2(e.instance, e.eventId), { ...e })
    this.#wrote()
  }

  async listKeyEvents(instance: string, keyId: string): Promise<KeyEventRecord[]> {
    await this.#enter('listKeyEvents', [instance, keyId])
    // Map iteration order is insertion order: the append order.
    return [...this.#events.values()]
      .filter((e) => e.instance === instance && e.keyId === keyId)
      .map((e) => ({ ...e }))
  }

  async getKeyEvent(instance: string, eventId: string): Promise<KeyEventRecord | undefined> {
    await this.#enter('getKeyEvent', [instance, eventId])
    const e = this.#events.get(k2(instance, eventId))
    return e === undefined ? undefined : { ...e }
  }

  async ackKeyEvent(instance: string, eventId: string, ackedAt: number, ackState: string): Promise<boolean> {
    await this.#enter('ackKeyEvent', [instance, eventId, ackedAt, ackState])
    const e = this.#events.get(k2(instance, eventId))
    if (e === undefined) return false
    this.#events.set(k2(instance, eventId), { ...e, ackedAt, ackState })
    this.#wrote()
    return true
  }

  // ------------------------------------------------------------------------------------------ internals

  #count(op: StoreOp): void {
    this.calls[op] = (this.calls[op] ?? 0) + 1
  }

  async #enter(op: StoreOp, args: readonly unknown[]): Promise<void> {
    this.#count(op)
    if (this.#closed) throw new Error('memory store: closed')
    await this.#gate?.(op, args)
    if (this.#closed) throw new Error('memory store: closed')
  }

  #wrote(): void {
    this.#changes++
  }

  /** Keys in listing order: creation time, then id. */
  #sorted(keys: KeyRecord[]): KeyRecord[] {
    return keys.sort((a, b) => a.createdAt - b.createdAt || cmp(a.id, b.id))
  }

  #needKey(instance: string, keyId: string): void {
    if (!this.#keys.has(k2(instance, keyId))) throw fkError()
  }

  /** The compare-and-set write of updateKey and scheduleDeletion: `patch` if the state is still `expect`. */
  #patchIf(instance: string, id: string, expect: KeyStateValue, patch: Partial<KeyRecord>): boolean {
    const kk = k2(instance, id)
    const r = this.#keys.get(kk)
    if (r === undefined || r.state !== expect || r.purgingSince !== undefined) return false
    this.#keys.set(kk, { ...r, ...patch })
    return true
  }

  #addVersionRow(v: KeyVersionRecord): void {
    const kk = k2(v.instance, v.keyId)
    if (!this.#keys.has(kk)) throw fkError()
    let vs = this.#versions.get(kk)
    if (vs === undefined) {
      vs = new Map()
      this.#versions.set(kk, vs)
    }
    if (vs.has(v.version)) throw new Error('memory store: UNIQUE constraint failed: key_versions')
    vs.set(v.version, { rec: { ...v }, reserved: 0 })
  }

  #putPolicy(p: KeyPolicyRecord): void {
    this.#needKey(p.instance, p.keyId)
    const key = k3(p.instance, p.keyId, p.type)
    const old = this.#policies.get(key)
    this.#policies.set(
      key,
      old === undefined
        ? { ...p, authBy: undefined, authExpiresAt: undefined }
        : {
            ...old,
            enabled: p.enabled,
            intervalMonth: p.intervalMonth,
            updatedAt: p.updatedAt,
            updatedBy: p.updatedBy,
          },
    )
  }
}

/** Byte-order comparison (SQLite's BINARY collation for ASCII names). */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** A fresh, empty {@link MemoryStore}. Unit tests only. */
export function createMemoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options)
}
