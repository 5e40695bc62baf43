/**
 * The import-token role of the SQLite catalog (ImportTokenStore in core/ports.ts): one row per instance
 * (migration 6), the retrieval counter decremented by one conditional UPDATE.
 */
import type { Database as Db } from 'better-sqlite3'
import type { ImportTokenRecord, ImportTokenStore } from '../../core/ports.js'

interface ImportTokenRow {
  instance: string
  provider_ref: string
  public_key_pem: string
  nonce: Buffer
  created_at: number
  expires_at: number
  max_retrievals: number
  remaining_retrievals: number
}

function toToken(r: ImportTokenRow): ImportTokenRecord {
  return {
    instance: r.instance,
    providerRef: r.provider_ref,
    publicKeyPem: r.public_key_pem,
    nonce: Buffer.from(r.nonce),
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    maxRetrievals: r.max_retrievals,
    remainingRetrievals: r.remaining_retrievals,
  }
}

/** The {@link ImportTokenStore} methods over `db` (SqliteStore delegates to them). */
export function importTokenStore(db: Db): ImportTokenStore {
  const get = db.prepare<[string], ImportTokenRow>('SELECT * FROM import_tokens WHERE instance = ?')
  const put = db.prepare(
    `INSERT OR REPLACE INTO import_tokens (instance, provider_ref, public_key_pem, nonce, created_at, expires_at,
       max_retrievals, remaining_retrievals) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  )
  const take = db.prepare<[string, string], ImportTokenRow>(
    `UPDATE import_tokens SET remaining_retrievals = remaining_retrievals - 1
     WHERE instance = ? AND provider_ref = ? AND remaining_retrievals > 0 RETURNING *`,
  )
  const del = db.prepare('DELETE FROM import_tokens WHERE instance = ? AND provider_ref = ?')
  const expired = db.prepare<[number], ImportTokenRow>(
    'SELECT * FROM import_tokens WHERE expires_at <= ? ORDER BY expires_at, instance',
  )
  const putTx = db.transaction((t: ImportTokenRecord): ImportTokenRecord | undefined => {
    const old = get.get(t.instance)
    put.run(
      t.instance,
      t.providerRef,
      t.publicKeyPem,
      t.nonce,
      t.createdAt,
      t.expiresAt,
      t.maxRetrievals,
      t.remainingRetrievals,
    )
    return old === undefined ? undefined : toToken(old)
  })
  return {
    putImportToken: async (t) => putTx.immediate(t),
    getImportToken: async (instance) => {
      const r = get.get(instance)
      return r === undefined ? undefined : toToken(r)
    },
    takeImportTokenRetrieval: async (instance, ref) => {
      const r = take.get(instance, ref)
      return r === undefined ? undefined : toToken(r)
    },
    deleteImportToken: async (instance, ref) => del.run(instance, ref).changes > 0,
    listExpiredImportTokens: async (now) => expired.all(now).map(toToken),
  }
}
