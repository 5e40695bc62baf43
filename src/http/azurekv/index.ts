/** The Azure-Key-Vault-compatible HTTP endpoint (Hono app factory). */
export { createAzureKvApp, AZURE_KV_API_VERSIONS } from './app.js'
export type { AzureKvAppOptions, AzureChallenge } from './app.js'
export { AZURE_KV_ERRORS } from '../errors.js'
export { servableAzureKv } from './servable.js'
