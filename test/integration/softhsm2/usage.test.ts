/**
 * AES-GCM usage accounting per root-key version (NIST SP 800-38D's 2^32 random-IV limit), with a small
 * limit so that it is reached in a test.
 */
import { describe, expect, it } from 'vitest'
import { expectCode } from '../../helpers/expect-code.js'
import { openTestEngine } from '../../helpers/engine.js'

describe('usage accounting', () => {
  it('refuses wraps past the limit with KEY_USAGE_LIMIT_ERR until the key is rotated', async () => {
    const t = await openTestEngine({ engine: { usage: { limit: 10, block: 4 } } })
    const key = await t.engine.createKey('u', { name: 'limited' })
    const w = await t.engine.wrap('u', key.id)
    for (let i = 1; i < 10; i++) await t.engine.wrap('u', key.id, { plaintext: Buffer.alloc(32, i) })
    await expectCode(t.engine.wrap('u', key.id), 'KEY_USAGE_LIMIT_ERR')
    await expectCode(t.engine.seal('u', key.id, Buffer.alloc(1)), 'KEY_USAGE_LIMIT_ERR')
    // decryption is not limited
    expect(
      (await t.engine.unwrap('u', key.id, w.ciphertext)).plaintext.equals(w.plaintext ?? Buffer.alloc(0)),
    ).toBe(true)
    expect(await t.engine.usage('u', key.id)).toEqual({
      limit: 10,
      versions: [{ number: 1, reserved: 10, usedByThisProcess: 10 }],
    })
    await t.engine.rotate('u', key.id)
    // unwrap of a v1 ciphertext rewraps it under v2: that counts against v2
    const u = await t.engine.unwrap('u', key.id, w.ciphertext)
    expect(u.rewrapped?.keyVersion.number).toBe(2)
    expect((await t.engine.usage('u', key.id)).versions[1]).toEqual({
      number: 2,
      reserved: 4,
      usedByThisProcess: 1,
    })
    await t.engine.close()
  })

  it('a batch reserves what it needs in one catalog transaction before its first chunk, in whole blocks', async () => {
    const t = await openTestEngine({ engine: { usage: { limit: 1000, block: 30 } } })
    const key = await t.engine.createKey('u', { name: 'batch-ahead' })
    const before = (await t.engine.usage('u', key.id)).versions[0]?.reserved ?? 0
    const reservations: number[] = []
    const reserve = t.store.reserveUsage.bind(t.store)
    t.store.reserveUsage = async (...args) => {
      reservations.push(args[3])
      return reserve(...args)
    }
    const out = await t.engine.wrapMany('u', key.id, 100, { chunkSize: 10 })
    expect(out.every((r) => r.ok)).toBe(true)
    const after = await t.engine.usage('u', key.id)
    // one reservation of ceil(100 / 30) = 4 blocks (not 4 reservations of one block, one per 30 items)
    expect(reservations).toEqual([120])
    expect(after.versions[0]?.reserved).toBe(before + 120)
    expect(after.versions[0]?.usedByThisProcess).toBe(100)
    // at the limit a batch still gets what is left, and the items past it fail alone
    const rest = await t.engine.wrapMany('u', key.id, 1000, { chunkSize: 100 })
    expect(rest.filter((r) => r.ok)).toHaveLength(900)
    expect(rest.filter((r) => !r.ok).every((r) => !r.ok && r.error.code === 'KEY_USAGE_LIMIT_ERR')).toBe(true)
    await t.engine.close()
  })

  it('processes sharing a catalog never exceed the limit together', async () => {
    const a = await openTestEngine({ engine: { usage: { limit: 10, block: 3 } } })
    const b = await openTestEngine({
      catalogPath: a.catalogPath,
      clock: a.clock,
      engine: { usage: { limit: 10, block: 3 } },
    })
    const key = await a.engine.createKey('u', { name: 'shared-limit' })
    let ok = 0
    for (let i = 0; i < 5; i++) {
      await a.engine.wrap('u', key.id)
      ok++
    }
    for (;;) {
      try {
        await b.engine.wrap('u', key.id)
        ok++
      } catch (err) {
        expect((err as { code: string }).code).toBe('KEY_USAGE_LIMIT_ERR')
        break
      }
    }
    // a reserved 6 (2 blocks) and used 5; b got the remaining 4
    expect(ok).toBe(9)
    expect((await a.engine.usage('u', key.id)).versions[0]?.reserved).toBe(10)
    await a.engine.wrap('u', key.id) // a's last reserved invocation
    await expectCode(a.engine.wrap('u', key.id), 'KEY_USAGE_LIMIT_ERR')
    await a.engine.close()
    await b.engine.close()
  })

  it('concurrent wraps reserve once per block and stay within the limit', async () => {
    const t = await openTestEngine({ engine: { usage: { limit: 100, block: 25 } } })
    const key = await t.engine.createKey('u', { name: 'burst' })
    const results = await Promise.allSettled(Array.from({ length: 150 }, () => t.engine.wrap('u', key.id)))
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(100)
    expect(
      results.filter((r) => r.status === 'rejected').every((r) => r.reason.code === 'KEY_USAGE_LIMIT_ERR'),
    ).toBe(true)
    await t.engine.close()
  })
})
