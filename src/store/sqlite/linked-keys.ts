/**
 * The linked-key role of the SQLite catalog (LinkedKeyStore in core/ports-sync.ts), migration 16:
 * `linked_keys`, one row per key a synchronization job discovered, unique by (tenant, connection, identity at
 * the source). A batch of discovered keys is upserted in one transaction; an existing key keeps its id and
 * first-sync time, and is `unchanged` when nothing the source reports differs (canonical JSON of versions and
 * attributes, so that the order of an object's members does not count as a change). A row is deleted only
 * explicitly, and only once its key is marked deleted at the source (`deleteLinkedKey`).
 */
import type { Database as Db } from 'better-sqlite3'
import type {
  DiscoveredKey,
  LinkedKeyQuery,
  LinkedKeyRecord,
  LinkedKeyStore,
  LinkedKeyVersion,
  SyncCloud,
  UpsertOutcome,
} from '../../core/ports-sync.js'

interface LinkedKeyRow {
  tenant: string
  id: string
  cloud: string
  connection_id: string
  source_key_id: string
  vault: string
  name: string
  key_type: string
  usable: number
  enabled: number
  versions: string
  attributes: string
  source_state: string
  deleted_at_source_at: number | null
  first_synced_at: number
  last_synced_at: number
  last_sync_job_id: string
}

function toLinkedKey(r: LinkedKeyRow): LinkedKeyRecord {
  return {
    tenant: r.tenant,
    id: r.id,
    cloud: r.cloud as SyncCloud,
    connectionId: r.connection_id,
    sourceKeyId: r.source_key_id,
    vault: r.vault,
    name: r.name,
    keyType: r.key_type,
    usable: r.usable === 1,
    enabled: r.enabled === 1,
    versions: (JSON.parse(r.versions) as LinkedKeyVersion[]).map((v) => ({
      version: v.version,
      ref: v.ref,
      enabled: v.enabled,
      createdAt: v.createdAt ?? undefined,
    })),
    attributes: JSON.parse(r.attributes) as Record<string, unknown>,
    sourceState: r.source_state === 'deleted' ? 'deleted' : 'present',
    deletedAtSourceAt: r.deleted_at_source_at ?? undefined,
    firstSyncedAt: r.first_synced_at,
    lastSyncedAt: r.last_synced_at,
    lastSyncJobId: r.last_sync_job_id,
  }
}

/** JSON with object members in key order (arrays keep theirs): equal values encode alike. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
    const o = v as Record<string, unknown>
    return Object.fromEntries(
      Object.keys(o)
        .sort()
        .map((k) => [k, o[k]]),
    )
  })
}

const versionsJson = (vs: readonly LinkedKeyVersion[]): string =>
  canonicalJson(
    vs.map((v) => ({ version: v.version, ref: v.ref, enabled: v.enabled, createdAt: v.createdAt ?? null })),
  )

/** The filter of a query as SQL (after `tenant = ?`) and its arguments. */
function where(query: Omit<LinkedKeyQuery, 'after' | 'limit'>): { sql: string; args: unknown[] } {
  const parts: string[] = []
  const args: unknown[] = []
  if (query.cloud !== undefined) {
    parts.push('cloud = ?')
    args.push(query.cloud)
  }
  if (query.connectionId !== undefined) {
    parts.push('connection_id = ?')
    args.push(query.connectionId)
  }
  if (query.sourceState !== undefined) {
    parts.push('source_state = ?')
    args.push(query.sourceState)
  }
  return { sql: parts.map((p) => ` AND ${p}`).join(''), args }
}

/** The {@link LinkedKeyStore} methods over `db` (SqliteStore delegates to them). */
export function linkedKeyStore(db: Db): LinkedKeyStore {
  const bySource = db.prepare<[string, string, string], LinkedKeyRow>(
    'SELECT * FROM linked_keys WHERE tenant = ? AND connection_id = ? AND source_key_id = ?',
  )
  const get = db.prepare<[string, string], LinkedKeyRow>(
    'SELECT * FROM linked_keys WHERE tenant = ? AND id = ?',
  )
  const insert = db.prepare(
    `INSERT INTO linked_keys (tenant, id, cloud, connection_id, source_key_id, vault, name, key_type, usable,
       enabled, versions, attributes, source_state, deleted_at_source_at, first_synced_at, last_synced_at,
       last_sync_job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'present', NULL, ?, ?, ?)`,
  )
  const update = db.prepare(
    `UPDATE linked_keys SET vault = ?, name = ?, key_type = ?, usable = ?, enabled = ?, versions = ?,
       attributes = ?, source_state = 'present', deleted_at_source_at = NULL, last_synced_at = ?,
       last_sync_job_id = ?
     WHERE tenant = ? AND id = ?`,
  )
  const delLinked = db.prepare(
    "DELETE FROM linked_keys WHERE tenant = ? AND id = ? AND source_state = 'deleted'",
  )
  const touch = db.prepare(
    'UPDATE linked_keys SET last_synced_at = ?, last_sync_job_id = ? WHERE tenant = ? AND id = ?',
  )

  const upsertTx = db.transaction(
    (
      tenant: string,
      connectionId: string,
      cloud: SyncCloud,
      keys: readonly (DiscoveredKey & { readonly id: string })[],
      seen: { readonly at: number; readonly jobId: string },
    ): UpsertOutcome[] =>
      keys.map((k): UpsertOutcome => {
        const versions = versionsJson(k.versions)
        const attributes = canonicalJson(k.attributes)
        const usable = k.usable ? 1 : 0
        const enabled = k.enabled ? 1 : 0
        const old = bySource.get(tenant, connectionId, k.sourceKeyId)
        if (old === undefined) {
          insert.run(
            tenant,
            k.id,
            cloud,
            connectionId,
            k.sourceKeyId,
            k.vault,
            k.name,
            k.keyType,
            usable,
            enabled,
            versions,
            attributes,
            seen.at,
            seen.at,
            seen.jobId,
          )
          return 'inserted'
        }
        const same =
          old.source_state === 'present' &&
          old.vault === k.vault &&
          old.name === k.name &&
          old.key_type === k.keyType &&
          old.usable === usable &&
          old.enabled === enabled &&
          old.versions === versions &&
          old.attributes === attributes
        if (same) {
          touch.run(seen.at, seen.jobId, tenant, old.id)
          return 'unchanged'
        }
        update.run(
          k.vault,
          k.name,
          k.keyType,
          usable,
          enabled,
          versions,
          attributes,
          seen.at,
          seen.jobId,
          tenant,
          old.id,
        )
        return 'updated'
      }),
  )

  const markTx = db.transaction(
    (
      tenant: string,
      connectionId: string,
      jobId: string,
      at: number,
      vaults: readonly string[] | undefined,
    ): number => {
      let sql = `UPDATE linked_keys SET source_state = 'deleted', deleted_at_source_at = ?
        WHERE tenant = ? AND connection_id = ? AND source_state = 'present' AND last_sync_job_id <> ?`
      const args: unknown[] = [at, tenant, connectionId, jobId]
      if (vaults !== undefined) {
        if (vaults.length === 0) return 0
        sql += ` AND vault IN (${vaults.map(() => '?').join(', ')})`
        args.push(...vaults)
      }
      return db.prepare(sql).run(...args).changes
    },
  )

  const deleteTx = db.transaction((tenant: string, id: string): 'deleted' | 'not-found' | 'present' => {
    const r = get.get(tenant, id)
    if (r === undefined) return 'not-found'
    if (r.source_state !== 'deleted') return 'present'
    delLinked.run(tenant, id)
    return 'deleted'
  })

  return {
    upsertLinkedKeys: async (tenant, connectionId, cloud, keys, seen) =>
      upsertTx.immediate(tenant, connectionId, cloud, keys, seen),
    getLinkedKey: async (tenant, id) => {
      const r = get.get(tenant, id)
      return r === undefined ? undefined : toLinkedKey(r)
    },
    listLinkedKeys: async (tenant, query) => {
      const w = where(query)
      const rows = db
        .prepare<unknown[], LinkedKeyRow>(
          `SELECT * FROM linked_keys WHERE tenant = ?${w.sql} AND id > ? ORDER BY id LIMIT ?`,
        )
        .all(tenant, ...w.args, query.after ?? '', Math.max(0, Math.floor(query.limit)))
      return rows.map(toLinkedKey)
    },
    countLinkedKeys: async (tenant, query = {}) => {
      const w = where(query)
      return (
        db
          .prepare<unknown[], number>(`SELECT count(*) FROM linked_keys WHERE tenant = ?${w.sql}`)
          .pluck()
          .get(tenant, ...w.args) ?? 0
      )
    },
    markMissingDeleted: async (tenant, connectionId, jobId, at, vaults) =>
      markTx.immediate(tenant, connectionId, jobId, at, vaults),
    deleteLinkedKey: async (tenant, id) => deleteTx.immediate(tenant, id),
  }
}
