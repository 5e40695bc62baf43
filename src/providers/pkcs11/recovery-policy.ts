/**
 * When a {@link SessionGuard} re-initialises the PKCS#11 library: the counting, threshold and back-off of the
 * profile's `recovery` block, kept apart from the PKCS#11 calls so that the rule is testable on its own.
 *
 * The guard reports here only what it has confirmed: a failure whose CKR_ code is in the profile's
 * `reinitializeOn` list **and** a failed token probe (C_GetTokenInfo), a failed reconnection, or a probe
 * that worked. Successful operations are never reported (the hot path does no extra work): the count is
 * "failures since the token was last seen working by a probe", which is the consecutive count, because the
 * guard probes after every suspect failure and a working token resets it.
 */

/** The profile's `recovery` block, resolved. */
export interface RecoverySettings {
  /** Confirmed failures in a row (no working probe between them) before a re-initialisation. At least 1. */
  readonly consecutiveFailures: number
  /** Least time between two re-initialisation attempts; doubles after each failed one. */
  readonly backoffMs: number
  /** The ceiling of that doubling: during a long outage, one attempt per `maxBackoffMs` at most. */
  readonly maxBackoffMs: number
}

/** Counts confirmed failures and decides when a re-initialisation may run. Not thread-safe (one event loop). */
export class RecoveryPolicy {
  readonly #s: RecoverySettings
  readonly #now: () => number
  #failures = 0
  #failedAttempts = 0
  #notBefore = 0

  constructor(settings: RecoverySettings, now: () => number = Date.now) {
    this.#s = settings
    this.#now = now
  }

  /** Confirmed failures since the token was last seen working. */
  get failures(): number {
    return this.#failures
  }

  /** Re-initialisations that failed in a row (the back-off exponent). */
  get failedAttempts(): number {
    return this.#failedAttempts
  }

  /**
   * Records one confirmed failure. True when a re-initialisation should run now: the threshold is reached
   * and the back-off since the last attempt has passed. A true answer reserves the attempt: until
   * {@link attempted} reports its outcome (or `maxBackoffMs` passes), further answers are false.
   */
  failure(): boolean {
    this.#failures++
    const now = this.#now()
    if (this.#failures < this.#s.consecutiveFailures || now < this.#notBefore) return false
    this.#notBefore = now + this.#s.maxBackoffMs // reserved until attempted() reports
    return true
  }

  /** Reports the outcome of a re-initialisation that {@link failure} allowed. */
  attempted(ok: boolean): void {
    if (ok) {
      this.working()
      return
    }
    this.#failedAttempts++
    this.#notBefore = this.#now() + this.#delay()
  }

  /** The token was seen working (a probe or a re-initialisation succeeded): counts and back-off reset. */
  working(): void {
    this.#failures = 0
    this.#failedAttempts = 0
    this.#notBefore = 0
  }

  /** `backoffMs` after the first failed attempt, doubling with each further one, at most `maxBackoffMs`. */
  #delay(): number {
    return Math.min(this.#s.maxBackoffMs, this.#s.backoffMs * 2 ** Math.min(this.#failedAttempts - 1, 30))
  }
}
