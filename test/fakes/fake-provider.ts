/**
 * An INSECURE root-key provider for unit tests: real AES-GCM (node:crypto) under root keys kept in plain
 * process memory, like Tink's `testing/fakekms`. It speaks the real {@link RootKeyProvider} port and counts
 * its calls. Never use it outside test/: the "root keys" are ordinary Buffers on the heap.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto'
import { EngineError, invalidField } from '../../src/core/errors.js'
import type {
  CallOptions,
  CreateVersionRequest,
  GcmSealed,
  OutputOptions,
  ProviderCapabilities,
  ProviderHealth,
  ProviderObject,
  RootKeyProvider,
} from '../../src/core/ports.js'
import { SecretBytes } from '../../src/core/secret-bytes.js'

/** The provider calls that are counted. */
export type ProviderOp = 'createVersion' | 'destroyVersion' | 'encrypt' | 'decrypt' | 'generateRandom'

export interface InsecureMemoryProviderOptions {
  /**
   * Awaited at the start of every counted call (after it is counted): tests delay or hold calls here to
   * interleave them.
   */
  readonly gate?: (op: ProviderOp) => Promise<void> | void
}

interface RootKey {
  readonly material: Buffer
  readonly catalogId: string
  readonly keyId: string
  readonly version: number
}

const IMPORT_LENGTHS = [16, 24, 32] as const

/** See the file header: root keys in plain memory. Test-only. */
export class InsecureMemoryProvider implements RootKeyProvider {
  readonly name = 'insecure-memory'
  readonly capabilities: ProviderCapabilities = { importMaterial: true, importLengths: [...IMPORT_LENGTHS] }
  /** Calls so far, per operation. */
  readonly calls: Record<ProviderOp, number> = {
    createVersion: 0,
    destroyVersion: 0,
    encrypt: 0,
    decrypt: 0,
    generateRandom: 0,
  }
  readonly #keys = new Map<string, RootKey>()
  readonly #gate: InsecureMemoryProviderOptions['gate']
  #closed = false

  constructor(options: InsecureMemoryProviderOptions = {}) {
    this.#gate = options.gate
  }

  /** Root-key versions currently held. */
  get size(): number {
    return this.#keys.size
  }

  async createVersion(req: CreateVersionRequest, opts?: CallOptions): Promise<string> {
    await this.#enter('createVersion', opts)
    let material: Buffer
    if (req.material === undefined) {
      material = randomBytes(32)
    } else {
      if (!(IMPORT_LENGTHS as readonly number[]).includes(req.material.length)) {
        throw invalidField('payload', 'must be 16, 24 or 32 bytes (AES)')
      }
      material = Buffer.from(req.material.bytes)
    }
    const ref = `mem-${randomUUID()}`
    this.#keys.set(ref, { material, catalogId: req.catalogId, keyId: req.keyId, version: req.version })
    return ref
  }

  async destroyVersion(ref: string, opts?: CallOptions): Promise<void> {
    await this.#enter('destroyVersion', opts)
    const k = this.#keys.get(ref)
    k?.material.fill(0)
    this.#keys.delete(ref)
  }

  async encrypt(ref: string, plaintext: SecretBytes, aad: Buffer, opts?: CallOptions): Promise<GcmSealed> {
    await this.#enter('encrypt', opts)
    const k = this.#key(ref)
    const iv = randomBytes(12)
    const c = createCipheriv(gcm(k.material), k.material, iv, { authTagLength: 16 })
    c.setAAD(aad)
    const encrypted = Buffer.concat([c.update(plaintext.bytes), c.final()])
    return { iv, encrypted, tag: c.getAuthTag() }
  }

  async decrypt(ref: string, sealed: GcmSealed, aad: Buffer, opts?: OutputOptions): Promise<SecretBytes> {
    await this.#enter('decrypt', opts)
    const k = this.#key(ref)
    try {
      const d = createDecipheriv(gcm(k.material), k.material, sealed.iv, { authTagLength: 16 })
      d.setAAD(aad)
      d.setAuthTag(sealed.tag)
      return SecretBytes.adopt(Buffer.concat([d.update(sealed.encrypted), d.final()]))
    } catch {
      throw new EngineError('UNWRAP_AAD_MISMATCH', 'provider: AES-GCM authentication failed')
    }
  }

  async generateRandom(length: number, opts?: OutputOptions): Promise<SecretBytes> {
    await this.#enter('generateRandom', opts)
    return SecretBytes.adopt(randomBytes(length))
  }

  async listObjects(): Promise<ProviderObject[]> {
    this.#checkOpen()
    return [...this.#keys].map(([ref, k]) => ({
      ref,
      catalogId: k.catalogId,
      keyId: k.keyId,
      version: k.version,
    }))
  }

  async health(): Promise<ProviderHealth> {
    return { ok: !this.#closed, detail: this.#closed ? 'closed' : 'in memory' }
  }

  async close(): Promise<void> {
    this.#closed = true
  }

  async #enter(op: ProviderOp, opts: CallOptions | undefined): Promise<void> {
    this.calls[op]++
    this.#checkOpen()
    if (opts?.signal?.aborted === true) throw new EngineError('ABORTED', `${op}: aborted by the caller`)
    await this.#gate?.(op)
  }

  #checkOpen(): void {
    if (this.#closed) throw new EngineError('PROVIDER_UNAVAILABLE', 'provider: closed')
  }

  #key(ref: string): RootKey {
    const k = this.#keys.get(ref)
    if (k === undefined) {
      // As the PKCS#11 provider answers for an object the token does not have: permanent, not retryable.
      throw new EngineError('KEY_VERSION_MATERIAL_MISSING', 'provider: no such root-key version')
    }
    return k
  }
}

function gcm(material: Buffer): 'aes-256-gcm' {
  return `aes-${material.length * 8}-gcm` as 'aes-256-gcm'
}

/** An {@link InsecureMemoryProvider}: real AES-GCM over root keys in plain memory. Unit tests only. */
export function createInsecureMemoryProvider(
  options?: InsecureMemoryProviderOptions,
): InsecureMemoryProvider {
  return new InsecureMemoryProvider(options)
}
