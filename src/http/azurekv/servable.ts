/**
 * The Azure-Key-Vault-compatible endpoint as something {@link startServer} can serve (with an in-flight count
 * for graceful draining). It is served at `/` on a listener of its own, over HTTPS.
 */
import { Hono } from 'hono'
import type { Servable } from '../server.js'
import { createAzureKvApp, type AzureKvAppOptions } from './app.js'

/** The app of {@link createAzureKvApp} with an in-flight counter. */
export function servableAzureKv(options: AzureKvAppOptions): Servable {
  const app = new Hono()
  let inFlight = 0
  app.use('*', async (_c, next) => {
    inFlight++
    try {
      await next()
    } finally {
      inFlight--
    }
  })
  app.route('/', createAzureKvApp(options))
  return { app, inFlight: () => inFlight }
}
