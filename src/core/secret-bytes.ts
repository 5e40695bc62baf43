import { EngineError } from './errors.js'

/**
 * Holds plaintext key bytes (a DEK or imported key material) and zeroes them when done.
 *
 * The buffer is owned: callers that hand a Buffer to {@link SecretBytes.adopt} must not keep using it.
 * `inspect`/`toJSON` never print the bytes, so a SecretBytes that reaches a log shows as `[SecretBytes 32]`.
 */
export class SecretBytes {
  #buf: Buffer | undefined

  private constructor(buf: Buffer) {
    this.#buf = buf
  }

  /** Takes ownership of `buf` (no copy). */
  static adopt(buf: Buffer): SecretBytes {
    return new SecretBytes(buf)
  }

  /** Copies `bytes` into a new buffer outside Node's shared allocation pool. */
  static copyOf(bytes: Uint8Array): SecretBytes {
    const buf = Buffer.allocUnsafeSlow(bytes.length)
    buf.set(bytes)
    return new SecretBytes(buf)
  }

  /** Number of bytes (0 once zeroized). */
  get length(): number {
    return this.#buf?.length ?? 0
  }

  /** True once {@link zeroize} ran. */
  get zeroized(): boolean {
    return this.#buf === undefined
  }

  /**
   * The bytes themselves. Valid until {@link zeroize}; do not keep references to it.
   * @throws EngineError INTERNAL_ERROR after zeroize (a use-after-free in the caller)
   */
  get bytes(): Buffer {
    if (this.#buf === undefined) throw new EngineError('INTERNAL_ERROR', 'SecretBytes: used after zeroize')
    return this.#buf
  }

  /** Returns a copy the caller owns (for example the DEK handed back to an application). */
  exportCopy(): Buffer {
    return Buffer.from(this.bytes)
  }

  /**
   * Hands the buffer itself to the caller, who owns it from now on (and should zero it when done); this
   * SecretBytes is empty afterwards. Saves a copy when a DEK is returned to the application.
   */
  release(): Buffer {
    const b = this.bytes
    this.#buf = undefined
    return b
  }

  /** Overwrites the bytes with zeros and drops the reference. Idempotent. */
  zeroize(): void {
    if (this.#buf !== undefined) {
      this.#buf.fill(0)
      this.#buf = undefined
    }
  }

  toJSON(): string {
    return `[SecretBytes ${this.length}]`
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `[SecretBytes ${this.length}]`
  }
}
