import { runRootKeyProviderConformance } from '../../conformance/root-key-provider.js'
import { openProvider } from '../../helpers/engine.js'

runRootKeyProviderConformance('pkcs11 softhsm2 (sync, session key copies)', () => openProvider())
runRootKeyProviderConformance('pkcs11 softhsm2 (sync, token keys)', () =>
  openProvider({ sessionKeyCopy: false }),
)
runRootKeyProviderConformance('pkcs11 softhsm2 (async on the libuv pool, 4 sessions)', () =>
  openProvider({ callMode: 'async', maxSessions: 4 }),
)
