/**
 * The vault-key role of the SQLite catalog ({@link VaultKeyStore}, core/ports-vault-keys.ts): tables
 * `vault_keys` and `vault_key_versions` (migration 13). Each write is one statement or one transaction.
 */
import type { Database as Db } from 'better-sqlite3'
import type {
  VaultKeyOp,
  VaultKeyRecord,
  VaultKeyStore,
  VaultKeyType,
  VaultKeyVersionPatch,
  VaultKeyVersionRecord,
} from '../../core/ports-vault-keys.js'

interface KeyRow {
  instance: string
  name: string
  created_at: number
  current_version: string
  deleted_at: number | null
  purge_at: number | null
}

interface VersionRow {
  instance: string
  name: string
  version: string
  seq: number
  kty: string
  size: number
  provider_ref: string
  public_n: Buffer | null
  public_e: Buffer | null
  imported: number
  enabled: number
  key_ops: string
  tags: string
  not_before: number | null
  expires: number | null
  created_at: number
  updated_at: number
}

function toKey(r: KeyRow): VaultKeyRecord {
  return {
    instance: r.instance,
    name: r.name,
    createdAt: r.created_at,
    currentVersion: r.current_version,
    deleted:
      r.deleted_at === null || r.purge_at === null
        ? undefined
        : { deletedAt: r.deleted_at, purgeAt: r.purge_at },
  }
}

function toVersion(r: VersionRow): VaultKeyVersionRecord {
  return {
    instance: r.instance,
    name: r.name,
    version: r.version,
    seq: r.seq,
    kty: r.kty as VaultKeyType,
    size: r.size,
    ref: r.provider_ref,
    publicKey:
      r.public_n === null || r.public_e === null
        ? undefined
        : { n: Buffer.from(r.public_n), e: Buffer.from(r.public_e) },
    imported: r.imported === 1,
    enabled: r.enabled === 1,
    keyOps: JSON.parse(r.key_ops) as VaultKeyOp[],
    tags: JSON.parse(r.tags) as Record<string, string>,
    notBefore: r.not_before ?? undefined,
    expires: r.expires ?? undefined,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }
}

/** The {@link VaultKeyStore} methods over `db` (SqliteStore delegates to them). */
export function vaultKeyStore(db: Db, catalogId: string): VaultKeyStore {
  const getKey = db.prepare<[string, string], KeyRow>(
    'SELECT * FROM vault_keys WHERE instance = ? AND name = ?',
  )
  const insertKey = db.prepare(
    'INSERT INTO vault_keys (instance, name, created_at, current_version) VALUES (?, ?, ?, ?)',
  )
  const setCurrent = db.prepare('UPDATE vault_keys SET current_version = ? WHERE instance = ? AND name = ?')
  const maxSeq = db
    .prepare<[string, string], number>(
      'SELECT COALESCE(MAX(seq), 0) FROM vault_key_versions WHERE instance = ? AND name = ?',
    )
    .pluck()
  const insertVersion = db.prepare(
    `INSERT INTO vault_key_versions (instance, name, version, seq, kty, size, provider_ref, public_n, public_e,
       imported, enabled, key_ops, tags, not_before, expires, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  )
  const getVersion = db.prepare<[string, string, string], VersionRow>(
    'SELECT * FROM vault_key_versions WHERE instance = ? AND name = ? AND version = ?',
  )
  const getCurrent = db.prepare<[string, string], VersionRow>(
    `SELECT v.* FROM vault_key_versions v JOIN vault_keys k
       ON k.instance = v.instance AND k.name = v.name AND k.current_version = v.version
     WHERE k.instance = ? AND k.name = ?`,
  )
  const listLive = db.prepare<[string, string, number], KeyRow>(
    'SELECT * FROM vault_keys WHERE instance = ? AND deleted_at IS NULL AND name > ? ORDER BY name LIMIT ?',
  )
  const listDeleted = db.prepare<[string, string, number], KeyRow>(
    'SELECT * FROM vault_keys WHERE instance = ? AND deleted_at IS NOT NULL AND name > ? ORDER BY name LIMIT ?',
  )
  const listVersions = db.prepare<[string, string, number, number], VersionRow>(
    'SELECT * FROM vault_key_versions WHERE instance = ? AND name = ? AND seq > ? ORDER BY seq LIMIT ?',
  )
  const setDeleted = db.prepare(
    'UPDATE vault_keys SET deleted_at = ?, purge_at = ? WHERE instance = ? AND name = ? AND deleted_at IS NULL',
  )
  const setRecovered = db.prepare(
    'UPDATE vault_keys SET deleted_at = NULL, purge_at = NULL WHERE instance = ? AND name = ? AND deleted_at IS NOT NULL',
  )
  const updateVersion = db.prepare(
    `UPDATE vault_key_versions SET enabled = ?, key_ops = ?, tags = ?, not_before = ?, expires = ?, updated_at = ?
     WHERE instance = ? AND name = ? AND version = ?`,
  )
  const purge = db.prepare(
    'DELETE FROM vault_keys WHERE instance = ? AND name = ? AND deleted_at IS NOT NULL',
  )

  const add = db.transaction((v: VaultKeyVersionRecord): 'added' | 'deleted' => {
    const key = getKey.get(v.instance, v.name)
    if (key !== undefined && key.deleted_at !== null) return 'deleted'
    if (key === undefined) insertKey.run(v.instance, v.name, v.createdAt, v.version)
    else setCurrent.run(v.version, v.instance, v.name)
    const seq = (maxSeq.get(v.instance, v.name) ?? 0) + 1
    insertVersion.run(
      v.instance,
      key?.name ?? v.name,
      v.version,
      seq,
      v.kty,
      v.size,
      v.ref,
      v.publicKey?.n ?? null,
      v.publicKey?.e ?? null,
      v.imported ? 1 : 0,
      v.enabled ? 1 : 0,
      JSON.stringify(v.keyOps),
      JSON.stringify(v.tags),
      v.notBefore ?? null,
      v.expires ?? null,
      v.createdAt,
      v.updatedAt,
    )
    return 'added'
  })

  const update = db.transaction(
    (instance: string, name: string, version: string, p: VaultKeyVersionPatch): VersionRow | undefined => {
      const row = getVersion.get(instance, name, version)
      if (row === undefined) return undefined
      const next: VersionRow = {
        ...row,
        enabled: p.enabled === undefined ? row.enabled : p.enabled ? 1 : 0,
        key_ops: p.keyOps === undefined ? row.key_ops : JSON.stringify(p.keyOps),
        tags: p.tags === undefined ? row.tags : JSON.stringify(p.tags),
        not_before: p.notBefore === undefined ? row.not_before : p.notBefore,
        expires: p.expires === undefined ? row.expires : p.expires,
        updated_at: p.updatedAt,
      }
      updateVersion.run(
        next.enabled,
        next.key_ops,
        next.tags,
        next.not_before,
        next.expires,
        next.updated_at,
        instance,
        name,
        version,
      )
      return next
    },
  )

  return {
    catalogId,
    async addVaultKeyVersion(v) {
      return add.immediate(v)
    },
    async getVaultKey(instance, name) {
      const r = getKey.get(instance, name)
      return r === undefined ? undefined : toKey(r)
    },
    async getVaultKeyVersion(instance, name, version) {
      const r =
        version === undefined ? getCurrent.get(instance, name) : getVersion.get(instance, name, version)
      return r === undefined ? undefined : toVersion(r)
    },
    async listVaultKeys(instance, q) {
      const rows = (q.deleted ? listDeleted : listLive).all(instance, q.after ?? '', q.limit)
      const out: { key: VaultKeyRecord; current: VaultKeyVersionRecord }[] = []
      for (const r of rows) {
        const v = getCurrent.get(r.instance, r.name)
        if (v !== undefined) out.push({ key: toKey(r), current: toVersion(v) })
      }
      return out
    },
    async listVaultKeyVersions(instance, name, q) {
      return listVersions.all(instance, name, q.afterSeq, q.limit).map(toVersion)
    },
    async updateVaultKeyVersion(instance, name, version, patch) {
      const r = update.immediate(instance, name, version, patch)
      return r === undefined ? undefined : toVersion(r)
    },
    async setVaultKeyDeleted(instance, name, deleted) {
      const r =
        deleted === undefined
          ? setRecovered.run(instance, name)
          : setDeleted.run(deleted.deletedAt, deleted.purgeAt, instance, name)
      return r.changes === 1
    },
    async purgeVaultKey(instance, name) {
      return purge.run(instance, name).changes === 1
    },
  }
}
