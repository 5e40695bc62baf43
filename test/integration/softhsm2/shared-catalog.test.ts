/**
 * Two engines sharing one catalog file and token (as two processes would): a state change made through
 * one is enforced by the other at once, although both cache key metadata.
 */
import { describe, expect, it } from 'vitest'
import { expectCode } from '../../helpers/expect-code.js'
import { openTestEngine } from '../../helpers/engine.js'

describe('shared catalog', () => {
  it('with catalogPollIntervalMs 0, a disable, rotate or delete through one engine is seen by the other on its next call', async () => {
    const a = await openTestEngine({ engine: { catalogPollIntervalMs: 0 } })
    const b = await openTestEngine({
      catalogPath: a.catalogPath,
      clock: a.clock,
      engine: { catalogPollIntervalMs: 0 },
    })
    const key = await a.engine.createKey('shared', { name: 'shared-key' })
    const w = await b.engine.wrap('shared', key.id) // b caches the key's metadata now
    await a.engine.disable('shared', key.id)
    await expectCode(b.engine.wrap('shared', key.id), 'KEY_ACTION_INVALID_STATE_ERR')
    a.clock.advance(30_000)
    await b.engine.enable('shared', key.id)
    await a.engine.rotate('shared', key.id)
    const u = await b.engine.unwrap('shared', key.id, w.ciphertext)
    expect(u.rewrapped?.keyVersion.number).toBe(2)
    expect((await b.engine.wrap('shared', key.id)).keyVersion.number).toBe(2)
    await b.engine.deleteKey('shared', key.id)
    await expectCode(a.engine.unwrap('shared', key.id, w.ciphertext), 'KEY_DELETED_ERR')
    await a.engine.close()
    await b.engine.close()
  })

  it('by default a change made elsewhere is seen within the 50 ms poll interval', async () => {
    const a = await openTestEngine()
    const b = await openTestEngine({ catalogPath: a.catalogPath, clock: a.clock })
    const key = await a.engine.createKey('shared', { name: 'polled' })
    expect((await b.engine.wrap('shared', key.id)).keyVersion.number).toBe(1)
    await a.engine.disable('shared', key.id)
    a.clock.advance(50)
    await expectCode(b.engine.wrap('shared', key.id), 'KEY_ACTION_INVALID_STATE_ERR')
    await a.engine.close()
    await b.engine.close()
  })
})
