/**
 * The key-region role of the SQLite catalog ({@link KeyRegionStore} in core/ports-key-regions.ts),
 * migration 10: one row per key and region, cascading with the key's row.
 */
import type { Database as Db } from 'better-sqlite3'
import type { KeyRegionRecord, KeyRegionStore } from '../../core/ports-key-regions.js'

interface KeyRegionRow {
  instance: string
  key_id: string
  region: string
  primary_region: string
  multi_region: number
  description: string | null
  policy: string | null
  created_at: number
  updated_at: number
}

function toRecord(r: KeyRegionRow): KeyRegionRecord {
  return {
    instance: r.instance,
    keyId: r.key_id,
    region: r.region,
    primaryRegion: r.primary_region,
    multiRegion: r.multi_region === 1,
    description: r.description ?? undefined,
    policy: r.policy ?? undefined,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }
}

/** The {@link KeyRegionStore} methods over `db` (SqliteStore delegates to them). */
export function keyRegionStore(db: Db): KeyRegionStore {
  const ofKey = db.prepare<[string, string], KeyRegionRow>(
    'SELECT * FROM key_regions WHERE instance = ? AND key_id = ? ORDER BY created_at, region',
  )
  const ofInstance = db.prepare<[string], KeyRegionRow>(
    'SELECT * FROM key_regions WHERE instance = ? ORDER BY key_id, region',
  )
  const insert = db.prepare(
    `INSERT INTO key_regions (instance, key_id, region, primary_region, multi_region, description, policy,
       created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
  )
  const setPolicy = db.prepare(
    'UPDATE key_regions SET policy = ?, updated_at = ? WHERE instance = ? AND key_id = ? AND region = ?',
  )
  return {
    listKeyRegions: async (instance, keyId) => ofKey.all(instance, keyId).map(toRecord),
    listInstanceKeyRegions: async (instance) => ofInstance.all(instance).map(toRecord),
    insertKeyRegion: async (r) =>
      insert.run(
        r.instance,
        r.keyId,
        r.region,
        r.primaryRegion,
        r.multiRegion ? 1 : 0,
        r.description ?? null,
        r.policy ?? null,
        r.createdAt,
        r.updatedAt,
      ).changes === 1,
    setKeyRegionPolicy: async (instance, keyId, region, policy, updatedAt) =>
      setPolicy.run(policy ?? null, updatedAt, instance, keyId, region).changes === 1,
  }
}
