/**
 * The fake store passes the same conformance suite as the SQLite store (test/integration/sqlite): the
 * rules unit-tested over it see the semantics of the real catalog.
 */
import { runMetadataStoreConformance } from '../../conformance/metadata-store.js'
import { createMemoryStore } from '../../fakes/memory-store.js'

runMetadataStoreConformance('in-memory fake (test/fakes)', async () => createMemoryStore())
