/**
 * The Azure-Key-Vault-compatible endpoint as something {@link startServer} can serve (with an in-flight count
 * for graceful draining). It is served at `/` on a listener of its own, over HTTPS.
 */
import { countingServable, type Servable } from '../server.js'
import { createAzureKvApp, type AzureKvAppOptions } from './app.js'

/** The app of {@link createAzureKvApp} with an in-flight counter. */
export function servableAzureKv(options: AzureKvAppOptions): Servable {
  return countingServable(createAzureKvApp(options))
}
