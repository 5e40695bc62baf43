/**
 * Per-key serialisation of read-modify-write operations within this process (rotate, transitions, deletion,
 * policies, moves). Across processes the catalog's compare-and-set writes decide; this lock only keeps one
 * process from racing itself.
 */
export class KeyLocks {
  readonly #tails = new Map<string, Promise<unknown>>()

  /** Runs `fn` after every earlier `withKey` of the same key has settled. */
  async withKey<T>(instance: string, keyId: string, fn: () => Promise<T>): Promise<T> {
    const lockKey = `${instance}\u0000${keyId}`
    const prev = this.#tails.get(lockKey) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => undefined)
    this.#tails.set(lockKey, tail)
    try {
      return await run
    } finally {
      if (this.#tails.get(lockKey) === tail) this.#tails.delete(lockKey)
    }
  }

  /** Keys with an operation running or queued (for tests and diagnostics). */
  get size(): number {
    return this.#tails.size
  }
}
