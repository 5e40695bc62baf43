/**
 * The tenant key-provider roles of the SQLite catalog (KeyProviderStore and DataKeyStore in
 * core/ports-tenant-keys.ts), migration 12: `key_providers`, `tenant_key_state` and `data_keys`.
 * The atomic rules live in single transactions here: deleting a provider checks in the same transaction
 * that it is not current and that no entry is under it; switching the current provider is a
 * compare-and-set on the state's revision that sets both promotion/demotion times.
 */
import type { Database as Db } from 'better-sqlite3'
import { EngineError } from '../../core/errors.js'
import type {
  ComplianceRecord,
  KeyProviderKind,
  KeyProviderPatch,
  KeyProviderRecord,
  KeyProviderStore,
  ReplicaKey,
  TenantKeyState,
} from '../../core/ports-tenant-keys.js'

interface ProviderRow {
  tenant: string
  fingerprint: string
  id: string
  kind: string
  arn: string
  name: string
  description: string | null
  multi_region: number
  replica_keys: string
  created_at: number
  created_by: string | null
  promoted_at: number
  demoted_at: number
  compliance: string | null
}

interface StateRow {
  tenant: string
  current_fingerprint: string
  default_key_id: string | null
  default_promoted_at: number
  default_demoted_at: number
  revision: number
}

function toProvider(r: ProviderRow): KeyProviderRecord {
  return {
    tenant: r.tenant,
    fingerprint: r.fingerprint,
    id: r.id,
    kind: r.kind as KeyProviderKind,
    arn: r.arn,
    name: r.name,
    description: r.description ?? undefined,
    multiRegion: r.multi_region === 1,
    replicaKeys: JSON.parse(r.replica_keys) as ReplicaKey[],
    createdAt: r.created_at,
    createdBy: r.created_by ?? undefined,
    promotedToCurrentAt: r.promoted_at,
    demotedFromCurrentAt: r.demoted_at,
    compliance: r.compliance === null ? undefined : (JSON.parse(r.compliance) as ComplianceRecord),
  }
}

function toState(r: StateRow): TenantKeyState {
  return {
    tenant: r.tenant,
    currentFingerprint: r.current_fingerprint,
    defaultKeyId: r.default_key_id ?? undefined,
    defaultPromotedAt: r.default_promoted_at,
    defaultDemotedAt: r.default_demoted_at,
    revision: r.revision,
  }
}

/** The {@link KeyProviderStore} methods over `db` (SqliteStore delegates to them). */
export function keyProviderStore(db: Db): KeyProviderStore {
  const insert = db.prepare(
    `INSERT OR IGNORE INTO key_providers (tenant, fingerprint, id, kind, arn, name, description, multi_region,
       replica_keys, created_at, created_by, promoted_at, demoted_at, compliance)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  )
  const get = db.prepare<[string, string], ProviderRow>(
    'SELECT * FROM key_providers WHERE tenant = ? AND fingerprint = ?',
  )
  const list = db.prepare<[string], ProviderRow>(
    'SELECT * FROM key_providers WHERE tenant = ? ORDER BY created_at, fingerprint',
  )
  const getState = db.prepare<[string], StateRow>('SELECT * FROM tenant_key_state WHERE tenant = ?')
  const initState = db.prepare(
    `INSERT OR IGNORE INTO tenant_key_state (tenant, current_fingerprint, default_key_id, default_promoted_at,
       default_demoted_at, revision) VALUES (?, ?, ?, ?, ?, ?)`,
  )
  const setDefault = db.prepare(
    `UPDATE tenant_key_state SET default_key_id = ?, revision = revision + 1
     WHERE tenant = ? AND default_key_id IS NULL`,
  )
  const anyEntryUnder = db.prepare<[string, string], number>(
    'SELECT 1 FROM data_keys WHERE tenant = ? AND provider_fingerprint = ? LIMIT 1',
  )
  const del = db.prepare('DELETE FROM key_providers WHERE tenant = ? AND fingerprint = ?')
  const demoteRecord = db.prepare(
    'UPDATE key_providers SET demoted_at = ? WHERE tenant = ? AND fingerprint = ?',
  )
  const promoteRecord = db.prepare(
    'UPDATE key_providers SET promoted_at = ? WHERE tenant = ? AND fingerprint = ?',
  )
  const switchState = db.prepare(
    `UPDATE tenant_key_state SET current_fingerprint = ?, revision = revision + 1,
       default_promoted_at = CASE WHEN ? = tenant THEN ? ELSE default_promoted_at END,
       default_demoted_at = CASE WHEN current_fingerprint = tenant THEN ? ELSE default_demoted_at END
     WHERE tenant = ? AND revision = ?`,
  )

  const deleteTx = db.transaction((tenant: string, fp: string): 'deleted' | 'not-found' | 'in-use' => {
    if (get.get(tenant, fp) === undefined) return 'not-found'
    if (getState.get(tenant)?.current_fingerprint === fp) return 'in-use'
    if (anyEntryUnder.get(tenant, fp) !== undefined) return 'in-use'
    del.run(tenant, fp)
    return 'deleted'
  })

  const switchTx = db.transaction(
    (tenant: string, expected: number, to: string, at: number): TenantKeyState | undefined => {
      const s = getState.get(tenant)
      if (s === undefined || s.revision !== expected) return undefined
      if (to !== tenant && get.get(tenant, to) === undefined) {
        throw new EngineError('KEY_PROVIDER_NOT_FOUND', 'no key provider of this tenant has that fingerprint')
      }
      if (s.current_fingerprint !== tenant) demoteRecord.run(at, tenant, s.current_fingerprint)
      if (to !== tenant) promoteRecord.run(at, tenant, to)
      switchState.run(to, to, at, at, tenant, expected)
      const after = getState.get(tenant)
      return after === undefined ? undefined : toState(after)
    },
  )

  const patchTx = db.transaction((tenant: string, fp: string, patch: KeyProviderPatch): boolean => {
    const sets: string[] = []
    const args: unknown[] = []
    if (patch.name !== undefined) {
      sets.push('name = ?')
      args.push(patch.name)
    }
    if ('description' in patch) {
      sets.push('description = ?')
      args.push(patch.description ?? null)
    }
    if (patch.multiRegion !== undefined) {
      sets.push('multi_region = ?')
      args.push(patch.multiRegion ? 1 : 0)
    }
    if (patch.replicaKeys !== undefined) {
      sets.push('replica_keys = ?')
      args.push(JSON.stringify(patch.replicaKeys))
    }
    if ('compliance' in patch) {
      sets.push('compliance = ?')
      args.push(patch.compliance === undefined ? null : JSON.stringify(patch.compliance))
    }
    if (sets.length === 0) return get.get(tenant, fp) !== undefined
    return (
      db
        .prepare(`UPDATE key_providers SET ${sets.join(', ')} WHERE tenant = ? AND fingerprint = ?`)
        .run(...args, tenant, fp).changes === 1
    )
  })

  return {
    insertKeyProvider: async (r) =>
      insert.run(
        r.tenant,
        r.fingerprint,
        r.id,
        r.kind,
        r.arn,
        r.name,
        r.description ?? null,
        r.multiRegion ? 1 : 0,
        JSON.stringify(r.replicaKeys),
        r.createdAt,
        r.createdBy ?? null,
        r.promotedToCurrentAt,
        r.demotedFromCurrentAt,
        r.compliance === undefined ? null : JSON.stringify(r.compliance),
      ).changes === 1,
    getKeyProvider: async (tenant, fp) => {
      const r = get.get(tenant, fp)
      return r === undefined ? undefined : toProvider(r)
    },
    listKeyProviders: async (tenant) => list.all(tenant).map(toProvider),
    updateKeyProvider: async (tenant, fp, patch) => patchTx.immediate(tenant, fp, patch),
    deleteKeyProvider: async (tenant, fp) => deleteTx.immediate(tenant, fp),
    getTenantKeyState: async (tenant) => {
      const r = getState.get(tenant)
      return r === undefined ? undefined : toState(r)
    },
    initTenantKeyState: async (s) => {
      initState.run(
        s.tenant,
        s.currentFingerprint,
        s.defaultKeyId ?? null,
        s.defaultPromotedAt,
        s.defaultDemotedAt,
        s.revision,
      )
      const r = getState.get(s.tenant)
      if (r === undefined) throw new EngineError('STORE_ERROR', 'tenant key state: not stored')
      return toState(r)
    },
    setDefaultKey: async (tenant, keyId) => {
      setDefault.run(keyId, tenant)
      const r = getState.get(tenant)
      if (r === undefined) throw new EngineError('STORE_ERROR', 'tenant key state: not initialised')
      return toState(r)
    },
    switchCurrent: async (tenant, expected, to, at) => switchTx.immediate(tenant, expected, to, at),
  }
}
