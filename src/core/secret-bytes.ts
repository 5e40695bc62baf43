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

/** Bytes per slab of a {@link SecretSlab} (far above V8's 64-byte limit for typed arrays kept on its heap). */
const SLAB_BYTES = 16 * 1024

/**
 * Zero-filled memory outside V8's heap for the DEKs of one batch, carved from 16 KiB slabs.
 *
 * A buffer per DEK is a separate `malloc` chunk (and a V8 backing-store record). When a batch's 100,000 DEKs
 * are collected, glibc parks those small chunks in its fastbins, and the next larger allocation on that
 * thread merges them all (`malloc_consolidate`): 15-25 ms with the event loop stopped, measured with perf
 * uprobes. Slabs make that a few allocations per batch.
 *
 * Off-heap memory never moves, so zeroing a DEK's view wipes its only copy. The DEKs of one slab share one
 * `ArrayBuffer`: they go to the same caller (one batch, one instance and key), like the pool's results.
 */
export class SecretSlab {
  #slab: Buffer | undefined
  #used = 0
  #scratch: Buffer | undefined

  /** `n` zero-filled bytes of their own: regions handed out are never handed out again. */
  take(n: number): Buffer {
    let slab = this.#slab
    if (slab === undefined || this.#used + n > slab.length) {
      slab = Buffer.alloc(Math.max(SLAB_BYTES, n))
      this.#slab = slab
      this.#used = 0
    }
    const b = slab.subarray(this.#used, this.#used + n)
    this.#used += n
    return b
  }

  /**
   * `n` bytes of a region that every call returns again, for a DEK that does not outlive its item (rewrap, a
   * caller's DEK to wrap). Zero-filled when first allocated; the user zeroes it when done
   * ({@link SecretBytes.zeroize} does).
   */
  scratch(n: number): Buffer {
    let s = this.#scratch
    if (s === undefined || s.length < n) {
      s?.fill(0)
      s = Buffer.alloc(Math.max(SLAB_BYTES / 4, n))
      this.#scratch = s
    }
    return s.subarray(0, n)
  }

  /** Zeroes the scratch region and forgets both (what {@link take} handed out belongs to its takers). */
  close(): void {
    this.#scratch?.fill(0)
    this.#scratch = undefined
    this.#slab = undefined
  }
}
