/** Worker pool for batch operations (subpath export `envelope-kms/pool`). Loads piscina. */
export { createWorkerPool, WorkerPool } from './pool.js'
export type { WorkerPoolOptions } from './pool.js'
