/**
 * Per-instance rate limiting, counted per method + endpoint over a fixed window that starts with the first
 * request accepted after the previous window expired (Key Protect's rule, spec digest §1.6).
 */

export interface RateLimitConfig {
  /** Requests allowed per instance, method and endpoint in one window; 0 disables the limit. */
  readonly requests: number
  readonly windowMs: number
  /** Windows tracked at once (oldest dropped first); bounds memory under many instances. */
  readonly maxTracked?: number
}

export class FixedWindowLimiter {
  readonly #limit: number
  readonly #windowMs: number
  readonly #max: number
  readonly #windows = new Map<string, { start: number; count: number }>()

  constructor(config: RateLimitConfig) {
    this.#limit = config.requests
    this.#windowMs = config.windowMs
    this.#max = config.maxTracked ?? 100_000
  }

  /** Counts one request; false when it exceeds the limit (answer 429). */
  take(key: string, now: number): boolean {
    if (this.#limit <= 0) return true
    let w = this.#windows.get(key)
    if (w === undefined || now - w.start >= this.#windowMs) {
      if (w === undefined && this.#windows.size >= this.#max) {
        const oldest = this.#windows.keys().next().value
        if (oldest !== undefined) this.#windows.delete(oldest)
      }
      this.#windows.delete(key)
      w = { start: now, count: 0 }
      this.#windows.set(key, w)
    }
    if (w.count >= this.#limit) return false
    w.count++
    return true
  }

  /** Seconds until the caller's window ends (for Retry-After). */
  retryAfterSec(key: string, now: number): number {
    const w = this.#windows.get(key)
    return w === undefined ? 0 : Math.max(1, Math.ceil((w.start + this.#windowMs - now) / 1000))
  }
}
