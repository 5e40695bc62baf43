/** PKCS#11 root-key provider (subpath export `envelope-kms/providers/pkcs11`). Loads pkcs11js. */
export { createPkcs11Provider, Pkcs11Provider } from './provider.js'
export type { Pkcs11ProviderOptions, Pkcs11ObjectAttributes } from './provider.js'
export { loadProfile, parseProfile, nativeConfigDir } from './profile.js'
export type { Pkcs11Profile, BuiltinProfileName } from './profile.js'
export { initToken, tokenPresent, diagnosePkcs11 } from './token-admin.js'
export type { TokenCheck } from './token-admin.js'
export { createPkcs11SyncSource, ENGINE_LABEL_NAMESPACE, PKCS11_SYNC_BLOB_FORMAT } from './sync-source.js'
