/**
 * The instance-policy role of the SQLite catalog (InstancePolicyStore in core/ports.ts): one row per instance
 * and policy type (migration 8), the attributes as JSON text.
 */
import type { Database as Db } from 'better-sqlite3'
import type { InstancePolicyRecord, InstancePolicyStore, InstancePolicyType } from '../../core/ports.js'

interface InstancePolicyRow {
  instance: string
  type: InstancePolicyType
  enabled: number
  attributes: string | null
  created_at: number
  created_by: string | null
  updated_at: number
  updated_by: string | null
}

function toPolicy(r: InstancePolicyRow): InstancePolicyRecord {
  return {
    instance: r.instance,
    type: r.type,
    enabled: r.enabled === 1,
    attributes: r.attributes === null ? undefined : (JSON.parse(r.attributes) as Record<string, unknown>),
    createdAt: r.created_at,
    createdBy: r.created_by ?? undefined,
    updatedAt: r.updated_at,
    updatedBy: r.updated_by ?? undefined,
  }
}

/** The {@link InstancePolicyStore} methods over `db` (SqliteStore delegates to them). */
export function instancePolicyStore(db: Db): InstancePolicyStore {
  const list = db.prepare<[string], InstancePolicyRow>(
    'SELECT * FROM instance_policies WHERE instance = ? ORDER BY type',
  )
  const put = db.prepare(
    `INSERT OR REPLACE INTO instance_policies (instance, type, enabled, attributes, created_at, created_by,
       updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  )
  const putTx = db.transaction((instance: string, policies: readonly InstancePolicyRecord[]) => {
    for (const p of policies) {
      if (p.instance !== instance) throw new Error('instance policies: a policy of another instance')
      put.run(
        instance,
        p.type,
        p.enabled ? 1 : 0,
        p.attributes === undefined ? null : JSON.stringify(p.attributes),
        p.createdAt,
        p.createdBy ?? null,
        p.updatedAt,
        p.updatedBy ?? null,
      )
    }
  })
  return {
    putInstancePolicies: async (instance, policies) => {
      putTx.immediate(instance, policies)
    },
    listInstancePolicies: async (instance) => list.all(instance).map(toPolicy),
  }
}
