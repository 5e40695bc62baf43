/** A {@link Clock} that stands still until the test moves it. Test-only (fakes are never imported from src/). */
import type { Clock } from '../../src/core/ports.js'

export class ManualClock implements Clock {
  #t: number

  constructor(start: number = Date.parse('2026-01-01T00:00:00Z')) {
    this.#t = start
  }

  now(): number {
    return this.#t
  }

  /** Moves the clock forward by `ms` (never backwards). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`ManualClock: cannot move by ${ms} ms`)
    this.#t += ms
  }

  /** Sets the clock to `t` (not before the current time). */
  set(t: number): void {
    if (t < this.#t) throw new Error('ManualClock: cannot go back in time')
    this.#t = t
  }
}
