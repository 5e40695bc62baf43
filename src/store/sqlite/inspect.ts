/**
 * A read-only look at an SQLite catalog for `envelope-kms doctor`: it never creates, migrates or writes the
 * file (opening it with {@link openSqliteStore} would).
 */
import { accessSync, constants, existsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { EngineError } from '../../core/errors.js'
import { MIGRATIONS } from './migrations.js'

/** What {@link inspectSqliteCatalog} found. */
export interface CatalogInspection {
  readonly exists: boolean
  /** `PRAGMA user_version`: the migrations applied. */
  readonly schemaVersion: number
  /** The migrations this build has; a lower schemaVersion is migrated at the next open. */
  readonly supportedVersion: number
  /** The file and its folder are writable by this process (SQLite's WAL needs both). */
  readonly writable: boolean
  readonly keys: number
  /** The latest `updated_at` of any key (ms since the epoch), when there are keys. */
  readonly newestUpdateMs: number | undefined
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK)
    accessSync(dirname(resolve(path)), constants.W_OK)
    return true
  } catch {
    return false
  }
}

/**
 * Opens the catalog read-only and reports its schema version, writability and key count.
 * @throws EngineError STORE_ERROR when the file exists but is not a readable SQLite catalog
 */
export function inspectSqliteCatalog(path: string): CatalogInspection {
  const supportedVersion = MIGRATIONS.length
  if (!existsSync(path)) {
    return {
      exists: false,
      schemaVersion: 0,
      supportedVersion,
      writable: false,
      keys: 0,
      newestUpdateMs: undefined,
    }
  }
  let db
  try {
    db = new Database(path, { readonly: true, fileMustExist: true })
  } catch (err) {
    throw new EngineError('STORE_ERROR', `catalog: cannot open ${path}`, { cause: err })
  }
  try {
    const schemaVersion = db.pragma('user_version', { simple: true }) as number
    let keys = 0
    let newestUpdateMs: number | undefined
    if (schemaVersion > 0) {
      const row = db.prepare('SELECT COUNT(*) AS n, MAX(updated_at) AS newest FROM keys').get() as {
        n: number
        newest: number | null
      }
      keys = row.n
      newestUpdateMs = row.newest ?? undefined
    }
    return { exists: true, schemaVersion, supportedVersion, writable: writable(path), keys, newestUpdateMs }
  } catch (err) {
    throw new EngineError('STORE_ERROR', `catalog: ${path} is not an envelope-kms catalog`, { cause: err })
  } finally {
    db.close()
  }
}
