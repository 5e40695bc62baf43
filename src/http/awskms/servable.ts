/**
 * The AWS-KMS-compatible endpoint as something {@link startServer} can serve (with an in-flight count for
 * graceful draining). It is served at `/` on a listener of its own.
 */
import { Hono } from 'hono'
import type { Servable } from '../server.js'
import { createAwsKmsApp, type AwsKmsAppOptions } from './routes.js'

export function servableAwsKms(options: AwsKmsAppOptions): Servable {
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
  app.route('/', createAwsKmsApp(options))
  return { app, inFlight: () => inFlight }
}
