/** SQLite catalog (subpath export `envelope-kms/store/sqlite`). */
export { openSqliteStore, SqliteStore } from './store.js'
export type { SqliteStoreOptions } from './store.js'
export { inspectSqliteCatalog } from './inspect.js'
export type { CatalogInspection } from './inspect.js'
