/**
 * The per-tenant data-key catalog of the SQLite store (DataKeyStore in core/ports-tenant-keys.ts),
 * migration 12: one row per named DEK, holding only its wrapped form and the provider it is under.
 */
import type { Database as Db } from 'better-sqlite3'
import type { DataKeyRecord, DataKeyStore } from '../../core/ports-tenant-keys.js'

interface DataKeyRow {
  tenant: string
  name: string
  wrapped: string
  provider_fingerprint: string
  created_at: number
  updated_at: number
}

function toRecord(r: DataKeyRow): DataKeyRecord {
  return {
    tenant: r.tenant,
    name: r.name,
    wrapped: r.wrapped,
    providerFingerprint: r.provider_fingerprint,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }
}

/** PRAGMA synchronous = FULL, as the store opens its connection (store.ts). */
const FULL = 2

/** The {@link DataKeyStore} methods over `db` (SqliteStore delegates to them). */
export function dataKeyStore(db: Db): DataKeyStore {
  // Deferred flushes (replaceWrapped durable: false) rely on the WAL's ordering; other modes flush each commit.
  const wal = String(db.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal'
  const insert = db.prepare(
    `INSERT OR IGNORE INTO data_keys (tenant, name, wrapped, provider_fingerprint, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?)`,
  )
  const get = db.prepare<[string, string], DataKeyRow>(
    'SELECT * FROM data_keys WHERE tenant = ? AND name = ?',
  )
  const list = db.prepare<[string, string, number], DataKeyRow>(
    'SELECT * FROM data_keys WHERE tenant = ? AND name > ? ORDER BY name LIMIT ?',
  )
  const del = db.prepare('DELETE FROM data_keys WHERE tenant = ? AND name = ?')
  const countAll = db.prepare<[string], number>('SELECT count(*) FROM data_keys WHERE tenant = ?').pluck()
  const countUnder = db
    .prepare<[string, string], number>(
      'SELECT count(*) FROM data_keys WHERE tenant = ? AND provider_fingerprint = ?',
    )
    .pluck()
  const notUnder = db.prepare<[string, string, string, number], DataKeyRow>(
    `SELECT * FROM data_keys WHERE tenant = ? AND name > ? AND provider_fingerprint <> ?
     ORDER BY name LIMIT ?`,
  )
  const replace = db.prepare(
    `UPDATE data_keys SET wrapped = ?, provider_fingerprint = ?, updated_at = ?
     WHERE tenant = ? AND name = ? AND wrapped = ?`,
  )
  const replaceTx = db.transaction(
    (tenant: string, updates: Parameters<DataKeyStore['replaceWrapped']>[1]): number => {
      let n = 0
      for (const u of updates) {
        n += replace.run(
          u.wrapped,
          u.providerFingerprint,
          u.updatedAt,
          tenant,
          u.name,
          u.expectedWrapped,
        ).changes
      }
      return n
    },
  )
  return {
    insertDataKey: async (r) =>
      insert.run(r.tenant, r.name, r.wrapped, r.providerFingerprint, r.createdAt, r.updatedAt).changes === 1,
    getDataKey: async (tenant, name) => {
      const r = get.get(tenant, name)
      return r === undefined ? undefined : toRecord(r)
    },
    listDataKeys: async (tenant, q) => list.all(tenant, q.after ?? '', q.limit).map(toRecord),
    deleteDataKey: async (tenant, name) => del.run(tenant, name).changes === 1,
    countDataKeys: async (tenant, fp) =>
      (fp === undefined ? countAll.get(tenant) : countUnder.get(tenant, fp)) ?? 0,
    listDataKeysNotUnder: async (tenant, fp, after, limit) =>
      notUnder.all(tenant, after ?? '', fp, limit).map(toRecord),
    replaceWrapped: async (tenant, updates, options) => {
      if (options?.durable !== false) return replaceTx.immediate(tenant, updates)
      // WAL with synchronous = NORMAL for this one commit: its frames are appended to the WAL without an
      // fsync of their own; the next durable (FULL) commit on this connection syncs the WAL up to and
      // including them. The WAL is replayed in order, so a power loss drops a suffix of commits, never an
      // earlier one without the later. The connection is this process's only one and this runs without
      // awaiting, so no other statement sees the lowered setting.
      if (!wal || (db.pragma('synchronous', { simple: true }) as number) !== FULL) {
        return replaceTx.immediate(tenant, updates)
      }
      db.pragma('synchronous = NORMAL')
      try {
        return replaceTx.immediate(tenant, updates)
      } finally {
        db.pragma('synchronous = FULL')
      }
    },
  }
}
