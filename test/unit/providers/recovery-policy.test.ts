/**
 * The re-initialisation rule of the PKCS#11 provider (recovery-policy.ts): confirmed failures counted until
 * the profile's threshold, reset by a working token, attempts spaced by a doubling back-off with a ceiling.
 */
import { describe, expect, it } from 'vitest'
import { RecoveryPolicy } from '../../../src/providers/pkcs11/recovery-policy.js'

function policy(consecutiveFailures: number): { p: RecoveryPolicy; advance: (ms: number) => void } {
  let t = 1_000_000
  const p = new RecoveryPolicy({ consecutiveFailures, backoffMs: 100, maxBackoffMs: 1000 }, () => t)
  return { p, advance: (ms) => (t += ms) }
}

describe('RecoveryPolicy', () => {
  it('allows a re-initialisation only at the threshold of consecutive confirmed failures', () => {
    const { p } = policy(3)
    expect([p.failure(), p.failure()]).toEqual([false, false])
    expect(p.failure()).toBe(true)
    expect(p.failures).toBe(3)
  })

  it('a working token between failures resets the count: they are no longer consecutive', () => {
    const { p } = policy(2)
    expect(p.failure()).toBe(false)
    p.working()
    expect(p.failures).toBe(0)
    expect(p.failure()).toBe(false)
    expect(p.failure()).toBe(true)
  })

  it('threshold 1: the first confirmed failure re-initialises at once', () => {
    const { p } = policy(1)
    expect(p.failure()).toBe(true)
  })

  it('one attempt at a time: an allowed attempt blocks further ones until the back-off has passed', () => {
    const { p, advance } = policy(1)
    expect(p.failure()).toBe(true)
    // A storm of failures while that attempt runs, or right after it: no second attempt.
    for (let i = 0; i < 1000; i++) expect(p.failure()).toBe(false)
    p.attempted(false)
    advance(99)
    expect(p.failure()).toBe(false)
    advance(1) // backoffMs after the failed attempt
    expect(p.failure()).toBe(true)
  })

  it('failed attempts double the back-off up to its ceiling, so a long outage costs one attempt per ceiling', () => {
    const { p, advance } = policy(1)
    expect(p.failure()).toBe(true)
    const spacing: number[] = []
    for (let i = 0; i < 6; i++) {
      p.attempted(false)
      let waited = 0
      while (!p.failure()) {
        advance(10)
        waited += 10
      }
      spacing.push(waited)
    }
    expect(spacing).toEqual([100, 200, 400, 800, 1000, 1000])
    expect(p.failedAttempts).toBe(6)
  })

  it('a successful attempt resets the count and the back-off', () => {
    const { p } = policy(2)
    p.failure()
    expect(p.failure()).toBe(true)
    p.attempted(true)
    expect([p.failures, p.failedAttempts]).toEqual([0, 0])
    expect(p.failure()).toBe(false) // counting starts again from zero
    expect(p.failure()).toBe(true) // and no back-off is left over
  })
})
