/** DEK cache (subpath export `envelope-kms/cache`). */
export { createDekCache, LruDekCache } from './dek-cache.js'
export type { DekCacheOptions } from './dek-cache.js'
