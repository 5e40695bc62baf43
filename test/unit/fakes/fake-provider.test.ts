/**
 * The fake provider passes the same conformance suite as the SoftHSM2 and AWS KMS providers: real AES-GCM,
 * fresh IVs, typed failures.
 */
import { runRootKeyProviderConformance } from '../../conformance/root-key-provider.js'
import { createInsecureMemoryProvider } from '../../fakes/fake-provider.js'

runRootKeyProviderConformance('insecure in-memory fake (test/fakes)', async () =>
  createInsecureMemoryProvider(),
)
