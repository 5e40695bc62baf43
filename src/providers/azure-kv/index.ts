/**
 * Azure Key Vault / Managed HSM root-key provider (subpath export `envelope-kms/providers/azure-kv`). Loads
 * `@azure/keyvault-keys` (and `@azure/identity` for a client secret or a managed identity) when built.
 */
export {
  createAzureKvProvider,
  AzureKvProvider,
  BLOB_A256GCM,
  BLOB_RSA_OAEP_256,
  BLOB_RSA_OAEP,
  BLOB_A256KW,
} from './provider.js'
export type { AzureKvProviderOptions } from './provider.js'
export type { AzureKvCredential, AzureTokenCredential, AzureAccessToken } from './client.js'
export { createAzureSyncSource } from './sync-source.js'
export type { AzureSyncSourceOptions } from './sync-source.js'
