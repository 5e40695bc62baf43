/**
 * The connection role of the SQLite catalog (ConnectionStore in core/ports-sync.ts), migration 15:
 * `sync_connections`, one row per cloud connection of a tenant, its params as JSON (secret references only:
 * core validates that params hold no secret value). Names are unique per tenant, case-insensitively (the
 * column is `COLLATE NOCASE`). Deleting a connection checks, in the same transaction, that no linked key
 * refers to it.
 */
import type { Database as Db } from 'better-sqlite3'
import type {
  ConnectionParams,
  ConnectionPatch,
  ConnectionRecord,
  ConnectionStore,
  ConnectionTestRecord,
  SyncCloud,
} from '../../core/ports-sync.js'

interface ConnectionRow {
  tenant: string
  id: string
  name: string
  cloud: string
  description: string | null
  params: string
  created_at: number
  updated_at: number
  last_test: string | null
}

function toConnection(r: ConnectionRow): ConnectionRecord {
  return {
    tenant: r.tenant,
    id: r.id,
    name: r.name,
    cloud: r.cloud as SyncCloud,
    description: r.description ?? undefined,
    params: JSON.parse(r.params) as ConnectionParams,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    lastTest: r.last_test === null ? undefined : (JSON.parse(r.last_test) as ConnectionTestRecord),
  }
}

/** The {@link ConnectionStore} methods over `db` (SqliteStore delegates to them). */
export function connectionStore(db: Db): ConnectionStore {
  const insert = db.prepare(
    `INSERT OR IGNORE INTO sync_connections (tenant, id, name, cloud, description, params, created_at,
       updated_at, last_test) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  )
  const get = db.prepare<[string, string], ConnectionRow>(
    'SELECT * FROM sync_connections WHERE tenant = ? AND id = ?',
  )
  const byName = db.prepare<[string, string], ConnectionRow>(
    'SELECT * FROM sync_connections WHERE tenant = ? AND name = ?',
  )
  const list = db.prepare<[string], ConnectionRow>(
    'SELECT * FROM sync_connections WHERE tenant = ? ORDER BY name, id',
  )
  const listCloud = db.prepare<[string, string], ConnectionRow>(
    'SELECT * FROM sync_connections WHERE tenant = ? AND cloud = ? ORDER BY name, id',
  )
  const anyLinked = db.prepare<[string, string], number>(
    'SELECT 1 FROM linked_keys WHERE tenant = ? AND connection_id = ? LIMIT 1',
  )
  const del = db.prepare('DELETE FROM sync_connections WHERE tenant = ? AND id = ?')

  const anyPresent = db.prepare<[string, string], number>(
    "SELECT 1 FROM linked_keys WHERE tenant = ? AND connection_id = ? AND source_state <> 'deleted' LIMIT 1",
  )
  const purgeDeleted = db.prepare(
    "DELETE FROM linked_keys WHERE tenant = ? AND connection_id = ? AND source_state = 'deleted'",
  )

  const deleteTx = db.transaction(
    (tenant: string, id: string, purge: boolean): 'deleted' | 'not-found' | 'in-use' => {
      if (get.get(tenant, id) === undefined) return 'not-found'
      if (purge) {
        if (anyPresent.get(tenant, id) !== undefined) return 'in-use'
        purgeDeleted.run(tenant, id)
      } else if (anyLinked.get(tenant, id) !== undefined) return 'in-use'
      del.run(tenant, id)
      return 'deleted'
    },
  )

  const patchTx = db.transaction((tenant: string, id: string, patch: ConnectionPatch): boolean => {
    const sets: string[] = []
    const args: unknown[] = []
    if ('description' in patch) {
      sets.push('description = ?')
      args.push(patch.description ?? null)
    }
    if (patch.params !== undefined) {
      // The cloud is the params' cloud; core refuses a change of cloud before it gets here.
      sets.push('params = ?', 'cloud = ?')
      args.push(JSON.stringify(patch.params), patch.params.cloud)
    }
    if ('lastTest' in patch) {
      sets.push('last_test = ?')
      args.push(patch.lastTest === undefined ? null : JSON.stringify(patch.lastTest))
    }
    if (patch.updatedAt !== undefined) {
      sets.push('updated_at = ?')
      args.push(patch.updatedAt)
    }
    if (sets.length === 0) return get.get(tenant, id) !== undefined
    return (
      db
        .prepare(`UPDATE sync_connections SET ${sets.join(', ')} WHERE tenant = ? AND id = ?`)
        .run(...args, tenant, id).changes === 1
    )
  })

  return {
    insertConnection: async (r) =>
      insert.run(
        r.tenant,
        r.id,
        r.name,
        r.cloud,
        r.description ?? null,
        JSON.stringify(r.params),
        r.createdAt,
        r.updatedAt,
        r.lastTest === undefined ? null : JSON.stringify(r.lastTest),
      ).changes === 1,
    getConnection: async (tenant, id) => {
      const r = get.get(tenant, id)
      return r === undefined ? undefined : toConnection(r)
    },
    getConnectionByName: async (tenant, name) => {
      const r = byName.get(tenant, name)
      return r === undefined ? undefined : toConnection(r)
    },
    listConnections: async (tenant, cloud) =>
      (cloud === undefined ? list.all(tenant) : listCloud.all(tenant, cloud)).map(toConnection),
    updateConnection: async (tenant, id, patch) => patchTx.immediate(tenant, id, patch),
    deleteConnection: async (tenant, id, options = {}) =>
      deleteTx.immediate(tenant, id, options.purgeDeleted === true),
  }
}
