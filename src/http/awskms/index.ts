/** The AWS-KMS-compatible HTTP endpoint (Hono app factory). */
export { createAwsKmsApp, AWS_KMS_OPERATIONS } from './routes.js'
export type { AwsKmsAppOptions } from './routes.js'
export type { AwsKmsCredential } from './sigv4.js'
export { AWS_KMS_ERRORS } from '../errors.js'
export { servableAwsKms } from './servable.js'
