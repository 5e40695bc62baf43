/**
 * The catalog's prepared statements, prepared once per connection when the store opens (after the
 * migrations ran, so every table exists). Queries whose shape depends on the call (optional filters, a
 * partial patch) and the statements of migration 4's tables are prepared where they are used, in
 * `store.ts`. The compare-and-set statements (`bumpVersion`, `moveKey`) carry the expected value in their
 * WHERE clause: a change of 0 rows means another writer won.
 */
import type { Database as Db, Statement } from 'better-sqlite3'
import type { PendingVersion } from '../../core/ports.js'
import type { AliasRow, KeyRow, PolicyRow, RingRow, VersionRow } from './rows.js'

/** The prepared statements of one catalog connection, by purpose. */
export interface Statements {
  dataVersion: Statement<[], number>
  getKey: Statement<[string, string], KeyRow>
  aliasToId: Statement<[string, string], string>
  systemKey: Statement<[string], KeyRow>
  instanceOfKey: Statement<[string], string>
  versions: Statement<[string, string], VersionRow>
  aliasesOfKey: Statement<[string, string], string>
  insertInstance: Statement<[string, number]>
  insertKey: Statement<Record<string, unknown>>
  insertVersion: Statement<[string, string, number, string, string, number]>
  insertAlias: Statement<[string, string, string, number, string | null]>
  addPending: Statement<[string, string, number, number]>
  removePending: Statement<[string, string, number]>
  listPending: Statement<[], PendingVersion>
  bumpVersion: Statement<[number, number | null, number, string, string, number]>
  deleteKey: Statement<[string, string]>
  aliasOwner: Statement<[string, string], AliasRow>
  aliasCount: Statement<[string, string], number>
  deleteAlias: Statement<[string, string, string]>
  usage: Statement<[string, string, number], number>
  setUsage: Statement<[number, string, string, number]>
  getRing: Statement<[string, string], RingRow>
  rings: Statement<[string], RingRow>
  ringCount: Statement<[string], number>
  insertRing: Statement<[string, string, number, string | null]>
  deleteRing: Statement<[string, string]>
  ringKeys: Statement<[string, string], number>
  ringLiveKeys: Statement<[string, string], number>
  moveRingKeys: Statement<[number, string, string]>
  moveKey: Statement<[string, number, string, string, string]>
  putPolicy: Statement<Record<string, unknown>>
  policies: Statement<[string, string], PolicyRow>
  rotationPolicies: Statement<[], PolicyRow>
  setAuth: Statement<[string | null, number | null, string, string]>
}

/** Prepares every statement of {@link Statements} on `db`. */
export function prepareStatements(db: Db): Statements {
  const p = <A extends unknown[] | Record<string, unknown>, R = unknown>(sql: string): Statement<A, R> =>
    db.prepare<A, R>(sql)
  return {
    dataVersion: p<[], number>('PRAGMA data_version').pluck(),
    getKey: p<[string, string], KeyRow>('SELECT * FROM keys WHERE instance = ? AND id = ?'),
    aliasToId: p<[string, string], string>(
      'SELECT key_id FROM aliases WHERE instance = ? AND alias = ?',
    ).pluck(),
    systemKey: p<[string], KeyRow>(
      'SELECT * FROM keys WHERE instance = ? AND internal = 1 ORDER BY created_at, id LIMIT 1',
    ),
    instanceOfKey: p<[string], string>('SELECT instance FROM keys WHERE id = ?').pluck(),
    versions: p<[string, string], VersionRow>(
      'SELECT * FROM key_versions WHERE instance = ? AND key_id = ? ORDER BY version',
    ),
    aliasesOfKey: p<[string, string], string>(
      'SELECT alias FROM aliases WHERE instance = ? AND key_id = ? ORDER BY created_at, alias',
    ).pluck(),
    insertInstance: p<[string, number]>(
      'INSERT OR IGNORE INTO instances (instance, created_at) VALUES (?, ?)',
    ),
    insertKey: p<
      Record<string, unknown>
    >(`INSERT INTO keys (instance, id, name, description, extractable, imported, state, key_ring_id, tags,
        created_at, created_by, updated_at, state_changed_at, last_rotated_at, expiration_date, deleted_at, deleted_by,
        current_version, wrapped_payload, internal)
        VALUES (@instance, @id, @name, @description, @extractable, @imported, @state, @key_ring_id, @tags,
        @created_at, @created_by, @updated_at, @state_changed_at, @last_rotated_at, @expiration_date, @deleted_at,
        @deleted_by, @current_version, @wrapped_payload, @internal)`),
    insertVersion: p<[string, string, number, string, string, number]>(
      'INSERT INTO key_versions (instance, key_id, version, version_id, provider_ref, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    insertAlias: p<[string, string, string, number, string | null]>(
      'INSERT INTO aliases (instance, alias, key_id, created_at, created_by) VALUES (?, ?, ?, ?, ?)',
    ),
    addPending: p<[string, string, number, number]>(
      'INSERT OR IGNORE INTO pending_versions (instance, key_id, version, started_at) VALUES (?, ?, ?, ?)',
    ),
    removePending: p<[string, string, number]>(
      'DELETE FROM pending_versions WHERE instance = ? AND key_id = ? AND version = ?',
    ),
    listPending: p<[], PendingVersion>(
      'SELECT instance, key_id AS keyId, version, started_at AS startedAt FROM pending_versions ORDER BY started_at',
    ),
    bumpVersion: p<
      [number, number | null, number, string, string, number]
    >(`UPDATE keys SET current_version = ?, last_rotated_at = coalesce(?, last_rotated_at), updated_at = ?
        WHERE instance = ? AND id = ? AND current_version = ? AND purging_since IS NULL`),
    deleteKey: p<[string, string]>('DELETE FROM keys WHERE instance = ? AND id = ?'),
    aliasOwner: p<[string, string], AliasRow>(
      'SELECT key_id, created_at, created_by FROM aliases WHERE instance = ? AND alias = ?',
    ),
    aliasCount: p<[string, string], number>(
      'SELECT count(*) FROM aliases WHERE instance = ? AND key_id = ?',
    ).pluck(),
    deleteAlias: p<[string, string, string]>(
      'DELETE FROM aliases WHERE instance = ? AND key_id = ? AND alias = ?',
    ),
    usage: p<[string, string, number], number>(
      'SELECT gcm_reserved FROM key_versions WHERE instance = ? AND key_id = ? AND version = ?',
    ).pluck(),
    setUsage: p<[number, string, string, number]>(
      'UPDATE key_versions SET gcm_reserved = ? WHERE instance = ? AND key_id = ? AND version = ?',
    ),
    getRing: p<[string, string], RingRow>('SELECT * FROM key_rings WHERE instance = ? AND id = ?'),
    rings: p<[string], RingRow>('SELECT * FROM key_rings WHERE instance = ? ORDER BY created_at, id'),
    ringCount: p<[string], number>('SELECT count(*) FROM key_rings WHERE instance = ?').pluck(),
    insertRing: p<[string, string, number, string | null]>(
      'INSERT INTO key_rings (instance, id, created_at, created_by) VALUES (?, ?, ?, ?)',
    ),
    deleteRing: p<[string, string]>('DELETE FROM key_rings WHERE instance = ? AND id = ?'),
    ringKeys: p<[string, string], number>(
      'SELECT count(*) FROM keys WHERE instance = ? AND key_ring_id = ? AND internal = 0',
    ).pluck(),
    ringLiveKeys: p<[string, string], number>(
      'SELECT count(*) FROM keys WHERE instance = ? AND key_ring_id = ? AND internal = 0 AND state <> 5',
    ).pluck(),
    moveRingKeys: p<[number, string, string]>(
      "UPDATE keys SET key_ring_id = 'default', updated_at = ? WHERE instance = ? AND key_ring_id = ?",
    ),
    moveKey: p<[string, number, string, string, string]>(
      'UPDATE keys SET key_ring_id = ?, updated_at = ? WHERE instance = ? AND id = ? AND key_ring_id = ?',
    ),
    putPolicy: p<Record<string, unknown>>(
      `INSERT INTO key_policies (instance, key_id, type, policy_id, enabled, interval_month, created_at, created_by,
          updated_at, updated_by)
        VALUES (@instance, @key_id, @type, @policy_id, @enabled, @interval_month, @created_at, @created_by,
          @updated_at, @updated_by)
        ON CONFLICT (instance, key_id, type) DO UPDATE SET enabled = excluded.enabled,
          interval_month = excluded.interval_month, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
    ),
    policies: p<[string, string], PolicyRow>(
      'SELECT * FROM key_policies WHERE instance = ? AND key_id = ? ORDER BY type',
    ),
    setAuth: p<[string | null, number | null, string, string]>(
      "UPDATE key_policies SET auth_by = ?, auth_expires_at = ? WHERE instance = ? AND key_id = ? AND type = 'dualAuthDelete'",
    ),
    rotationPolicies: p<[], PolicyRow>(
      "SELECT * FROM key_policies WHERE type = 'rotation' AND enabled = 1 ORDER BY instance, key_id",
    ),
  }
}
