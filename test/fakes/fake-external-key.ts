/**
 * An INSECURE in-memory {@link ExternalKeyBackend} for unit tests: AWS-KMS-like keys by ARN whose "blobs"
 * are AES-256-GCM under a per-ARN key in process memory, binding the AAD (as KMS binds its encryption
 * context). Keys are declared with {@link FakeExternalKeys.add}; failures are injected per region and
 * operation with {@link FakeExternalKeys.fail}.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { EngineError, type ErrorCode } from '../../src/core/errors.js'
import type {
  ExternalKey,
  ExternalKeyBackend,
  ExternalKeyDescription,
  ProbeResult,
  ReplicaKey,
} from '../../src/core/ports-tenant-keys.js'
import { SecretBytes } from '../../src/core/secret-bytes.js'

interface FakeKey {
  readonly material: Buffer
  description: ExternalKeyDescription
}

const regionOf = (arn: string): string => arn.split(':')[3] ?? ''

export class FakeExternalKeys implements ExternalKeyBackend {
  readonly kind = 'aws-kms'
  readonly keys = new Map<string, FakeKey>()
  /** region → operation → error code thrown there. */
  readonly failures = new Map<string, Map<string, ErrorCode>>()
  calls = { encrypt: 0, decrypt: 0 }

  add(arn: string, options: Partial<ExternalKeyDescription> = {}): void {
    this.keys.set(arn, {
      material: randomBytes(32),
      description: {
        arn,
        enabled: true,
        symmetric: true,
        multiRegion: false,
        replicaKeys: [],
        ...options,
      },
    })
  }

  fail(
    region: string,
    op: 'Encrypt' | 'Decrypt' | 'GenerateDataKey' | 'Describe',
    code: ErrorCode | undefined,
  ): void {
    let m = this.failures.get(region)
    if (m === undefined) this.failures.set(region, (m = new Map()))
    if (code === undefined) m.delete(op)
    else m.set(op, code)
  }

  #check(region: string, op: string): void {
    const code = this.failures.get(region)?.get(op)
    if (code !== undefined) throw new EngineError(code, `fake ${op} in ${region}: ${code}`)
  }

  async describe(arn: string): Promise<ExternalKeyDescription> {
    this.#check(regionOf(arn), 'Describe')
    const k = this.keys.get(arn)
    if (k === undefined) throw new EngineError('KEY_PROVIDER_NOT_FOUND', 'no such key')
    return k.description
  }

  open(arn: string, replicaKeys: readonly ReplicaKey[]): ExternalKey {
    const regions = [regionOf(arn), ...replicaKeys.map((r) => r.region)]
    const material = (): Buffer => {
      const k = this.keys.get(arn)
      if (k === undefined) throw new EngineError('KEY_VERSION_NOT_FOUND', 'the KMS key does not exist')
      return k.material
    }
    const firstOk = <T>(op: string, fn: () => T): T => {
      let last: unknown
      for (const r of regions) {
        try {
          this.#check(r, op)
          return fn()
        } catch (err) {
          last = err
          if (!(err instanceof EngineError) || err.code !== 'PROVIDER_UNAVAILABLE') throw err
        }
      }
      throw last
    }
    return {
      encrypt: async (plaintext, aad) =>
        firstOk('Encrypt', () => {
          this.calls.encrypt++
          const iv = randomBytes(12)
          const c = createCipheriv('aes-256-gcm', material(), iv).setAAD(aad)
          const body = Buffer.concat([c.update(plaintext.bytes), c.final()])
          return Buffer.concat([iv, body, c.getAuthTag()])
        }),
      decrypt: async (blob, aad) =>
        firstOk('Decrypt', () => {
          this.calls.decrypt++
          try {
            const d = createDecipheriv('aes-256-gcm', material(), blob.subarray(0, 12)).setAAD(aad)
            d.setAuthTag(blob.subarray(blob.length - 16))
            return SecretBytes.adopt(
              Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()]),
            )
          } catch (err) {
            if (err instanceof EngineError) throw err
            throw new EngineError('UNWRAP_AAD_MISMATCH', 'the blob does not authenticate')
          }
        }),
      probe: async () => {
        const out: ProbeResult[] = []
        for (const region of regions) {
          for (const operation of ['GenerateDataKey', 'Encrypt', 'Decrypt'] as const) {
            const code = this.failures.get(region)?.get(operation)
            out.push({
              region,
              operation,
              failure:
                code === undefined
                  ? undefined
                  : {
                      kind:
                        code === 'PROVIDER_ACCESS_DENIED'
                          ? 'access-denied'
                          : code === 'PROVIDER_UNAVAILABLE'
                            ? 'timeout'
                            : 'other',
                      message: code,
                    },
            })
          }
        }
        return out
      },
      close: async () => undefined,
    }
  }

  async close(): Promise<void> {}
}
