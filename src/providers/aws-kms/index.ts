/** AWS KMS root-key provider (subpath export `envelope-kms/providers/aws-kms`). Loads `@aws-sdk/client-kms`. */
export { createAwsKmsProvider, AwsKmsProvider, arnInRegion } from './provider.js'
export type { AwsKmsProviderOptions, AwsKmsRegion } from './provider.js'
export type { KmsCalls, KmsClientConfig, KmsCallOptions } from './kms-client.js'
export { createSdkKmsClient } from './kms-client.js'
export { createAwsKmsKeyBackend } from './external-key.js'
export type { AwsKmsKeyBackendOptions } from './external-key.js'
export { createAwsSyncSource } from './sync-source.js'
export type { AwsSyncSourceOptions } from './sync-source.js'
