/**
 * The AWS-KMS-compatible endpoint as something {@link startServer} can serve (with an in-flight count for
 * graceful draining). It is served at `/` on a listener of its own.
 */
import { countingServable, type Servable } from '../server.js'
import { createAwsKmsApp, type AwsKmsAppOptions } from './routes.js'

export function servableAwsKms(options: AwsKmsAppOptions): Servable {
  return countingServable(createAwsKmsApp(options))
}
