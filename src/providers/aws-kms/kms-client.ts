/**
 * The only file that loads `@aws-sdk/client-kms`, and only when a client is built: the SDK is an optional peer
 * dependency, so importing `envelope-kms/providers/aws-kms` works without it and {@link createSdkKmsClient}
 * says what to install. The provider sees a structural client with just the calls it makes ({@link KmsCalls}),
 * as the AWS Encryption SDK's KMS keyring types its client; tests and other SDK builds can hand in anything
 * with these methods.
 */
import { createRequire } from 'node:module'
import type * as KmsSdk from '@aws-sdk/client-kms'
import { EngineError } from '../../core/errors.js'

let sdk: typeof KmsSdk | undefined

/** Loads the SDK once (synchronously, as pkcs11js is loaded); a missing package is a typed error. */
function loadSdk(): typeof KmsSdk {
  if (sdk !== undefined) return sdk
  try {
    sdk = createRequire(import.meta.url)('@aws-sdk/client-kms') as typeof KmsSdk
  } catch (err) {
    const missing = (err as { code?: unknown }).code === 'MODULE_NOT_FOUND'
    throw new EngineError(
      'PROVIDER_MODULE_LOAD_FAILED',
      missing
        ? 'aws-kms: the optional dependency @aws-sdk/client-kms is not installed (npm install @aws-sdk/client-kms)'
        : 'aws-kms: @aws-sdk/client-kms could not be loaded',
      { cause: err },
    )
  }
  return sdk
}

/** Per-call options: the caller's AbortSignal. */
export interface KmsCallOptions {
  readonly abortSignal?: AbortSignal | undefined
}

type Ctx = Record<string, string>

/** The KMS operations the provider uses, typed structurally (inputs and outputs as the SDK has them). */
export interface KmsCalls {
  encrypt(
    i: { KeyId: string; Plaintext: Uint8Array; EncryptionContext: Ctx },
    o?: KmsCallOptions,
  ): Promise<{ CiphertextBlob?: Uint8Array | undefined }>
  decrypt(
    i: { KeyId: string; CiphertextBlob: Uint8Array; EncryptionContext: Ctx },
    o?: KmsCallOptions,
  ): Promise<{ Plaintext?: Uint8Array | undefined; KeyId?: string | undefined }>
  reEncrypt(
    i: {
      CiphertextBlob: Uint8Array
      SourceKeyId: string
      SourceEncryptionContext: Ctx
      DestinationKeyId: string
      DestinationEncryptionContext: Ctx
    },
    o?: KmsCallOptions,
  ): Promise<{ CiphertextBlob?: Uint8Array | undefined }>
  generateRandom(
    i: { NumberOfBytes: number },
    o?: KmsCallOptions,
  ): Promise<{ Plaintext?: Uint8Array | undefined }>
  createKey(
    i: { Description: string; Tags: { TagKey: string; TagValue: string }[] },
    o?: KmsCallOptions,
  ): Promise<{ KeyMetadata?: { Arn?: string | undefined; KeyId?: string | undefined } | undefined }>
  scheduleKeyDeletion(i: { KeyId: string; PendingWindowInDays: number }, o?: KmsCallOptions): Promise<unknown>
  describeKey(
    i: { KeyId: string },
    o?: KmsCallOptions,
  ): Promise<{
    KeyMetadata?:
      | {
          KeyId?: string | undefined
          Arn?: string | undefined
          CreationDate?: Date | undefined
          DeletionDate?: Date | undefined
          Description?: string | undefined
          KeyManager?: string | undefined
          Origin?: string | undefined
          KeyState?: string | undefined
          Enabled?: boolean | undefined
          KeySpec?: string | undefined
          KeyUsage?: string | undefined
          MultiRegion?: boolean | undefined
          MultiRegionConfiguration?:
            | {
                MultiRegionKeyType?: string | undefined
                PrimaryKey?: { Arn?: string | undefined; Region?: string | undefined } | undefined
                ReplicaKeys?: { Arn?: string | undefined; Region?: string | undefined }[] | undefined
              }
            | undefined
        }
      | undefined
  }>
  /** Optional: only the tenant key providers' probe uses it. */
  generateDataKey?(
    i: { KeyId: string; KeySpec: 'AES_256'; EncryptionContext: Ctx },
    o?: KmsCallOptions,
  ): Promise<{ Plaintext?: Uint8Array | undefined; CiphertextBlob?: Uint8Array | undefined }>
  listKeys(
    i: { Limit: number; Marker?: string | undefined },
    o?: KmsCallOptions,
  ): Promise<{
    Keys?: { KeyId?: string | undefined; KeyArn?: string | undefined }[] | undefined
    NextMarker?: string | undefined
    Truncated?: boolean | undefined
  }>
  /** Optional: only the synchronization source (sync-source.ts) uses it. */
  listAliases?(
    i: { Limit: number; Marker?: string | undefined },
    o?: KmsCallOptions,
  ): Promise<{
    Aliases?: { AliasName?: string | undefined; TargetKeyId?: string | undefined }[] | undefined
    NextMarker?: string | undefined
    Truncated?: boolean | undefined
  }>
  destroy(): void
}

/** How to reach one region. */
export interface KmsClientConfig {
  readonly region: string
  /** Endpoint override (a VPC endpoint, a KMS-compatible server); absent: the region's public endpoint. */
  readonly endpoint?: string | undefined
  /** Static credentials; absent: the SDK's default provider chain (env, profile, SSO, IMDS, ...). */
  readonly credentials?:
    | { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string }
    | undefined
  /** Milliseconds to establish a connection. */
  readonly connectTimeoutMs: number
  /** Milliseconds a request may wait for its response. */
  readonly requestTimeoutMs: number
}

/**
 * A KMS client for one region. The SDK's own retries are off (maxAttempts 1): the provider retries with
 * its own bounded backoff and jitter, and fails over between regions.
 */
export function createSdkKmsClient(c: KmsClientConfig): KmsCalls {
  const {
    CreateKeyCommand,
    DecryptCommand,
    DescribeKeyCommand,
    EncryptCommand,
    GenerateDataKeyCommand,
    GenerateRandomCommand,
    KMSClient,
    ListAliasesCommand,
    ListKeysCommand,
    ReEncryptCommand,
    ScheduleKeyDeletionCommand,
  } = loadSdk()
  const client = new KMSClient({
    region: c.region,
    ...(c.endpoint === undefined ? {} : { endpoint: c.endpoint }),
    ...(c.credentials === undefined ? {} : { credentials: c.credentials }),
    maxAttempts: 1,
    requestHandler: {
      connectionTimeout: c.connectTimeoutMs,
      requestTimeout: c.requestTimeoutMs,
      throwOnRequestTimeout: true,
    },
  })
  const h = (o: KmsCallOptions | undefined): { abortSignal?: AbortSignal } =>
    o?.abortSignal === undefined ? {} : { abortSignal: o.abortSignal }
  return {
    encrypt: (i, o) => client.send(new EncryptCommand(i), h(o)),
    decrypt: (i, o) => client.send(new DecryptCommand(i), h(o)),
    reEncrypt: (i, o) => client.send(new ReEncryptCommand(i), h(o)),
    generateRandom: (i, o) => client.send(new GenerateRandomCommand(i), h(o)),
    generateDataKey: (i, o) => client.send(new GenerateDataKeyCommand(i), h(o)),
    createKey: (i, o) =>
      client.send(
        new CreateKeyCommand({ ...i, KeyUsage: 'ENCRYPT_DECRYPT', KeySpec: 'SYMMETRIC_DEFAULT' }),
        h(o),
      ),
    scheduleKeyDeletion: (i, o) => client.send(new ScheduleKeyDeletionCommand(i), h(o)),
    describeKey: (i, o) => client.send(new DescribeKeyCommand(i), h(o)),
    listKeys: (i, o) => client.send(new ListKeysCommand(i), h(o)),
    listAliases: (i, o) => client.send(new ListAliasesCommand(i), h(o)),
    destroy: () => {
      client.destroy()
    },
  }
}
