/**
 * The only file that imports `@aws-sdk/client-kms`. The provider sees a structural client with just the
 * calls it makes ({@link KmsCalls}), as the AWS Encryption SDK's KMS keyring types its client; tests and
 * other SDK builds can hand in anything with these methods.
 */
import {
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateRandomCommand,
  KMSClient,
  ListKeysCommand,
  ReEncryptCommand,
  ScheduleKeyDeletionCommand,
} from '@aws-sdk/client-kms'

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
      | { Arn?: string | undefined; Description?: string | undefined; KeyState?: string | undefined }
      | undefined
  }>
  listKeys(
    i: { Limit: number; Marker?: string | undefined },
    o?: KmsCallOptions,
  ): Promise<{
    Keys?: { KeyId?: string | undefined; KeyArn?: string | undefined }[] | undefined
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
    createKey: (i, o) =>
      client.send(
        new CreateKeyCommand({ ...i, KeyUsage: 'ENCRYPT_DECRYPT', KeySpec: 'SYMMETRIC_DEFAULT' }),
        h(o),
      ),
    scheduleKeyDeletion: (i, o) => client.send(new ScheduleKeyDeletionCommand(i), h(o)),
    describeKey: (i, o) => client.send(new DescribeKeyCommand(i), h(o)),
    listKeys: (i, o) => client.send(new ListKeysCommand(i), h(o)),
    destroy: () => {
      client.destroy()
    },
  }
}
