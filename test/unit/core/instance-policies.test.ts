/**
 * Instance-policy rules in core (keys/instance-policies.ts, address-list.ts) against the in-memory fakes: the
 * CIDR matching of allowedIP, the cache that keeps the per-request check off the catalog, and a second
 * process's change seen once the cache entry expires.
 */
import { describe, expect, it } from 'vitest'
import { addressList, normalizeAddress } from '../../../src/core/address-list.js'
import { EnvelopeEngine } from '../../../src/core/engine.js'
import { expectCode } from '../../helpers/expect-code.js'
import { createInsecureMemoryProvider } from '../../fakes/fake-provider.js'
import { ManualClock } from '../../fakes/manual-clock.js'
import { createMemoryStore } from '../../fakes/memory-store.js'

describe('address lists (allowedIP, trusted proxies)', () => {
  it('match IPv4 and IPv6 CIDRs, bare addresses as one host, IPv4-mapped IPv6 as IPv4, zone ids dropped', () => {
    const l = addressList(['10.0.0.0/8', '192.0.2.1', '2001:db8::/32', 'fe80::/10'])
    for (const ok of [
      '10.255.0.1',
      '192.0.2.1',
      '::ffff:10.1.2.3',
      '::FFFF:192.0.2.1',
      '2001:db8:1::9',
      'fe80::1%eth0',
    ]) {
      expect([ok, l.matches(ok)]).toEqual([ok, true])
    }
    for (const bad of [
      '11.0.0.1',
      '192.0.2.2',
      '::ffff:11.0.0.1',
      '2001:db9::1',
      '::1',
      'localhost',
      '',
      undefined,
    ]) {
      expect([bad, l.matches(bad)]).toEqual([bad, false])
    }
    expect(addressList(['0.0.0.0/0']).matches('::1')).toBe(false) // IPv4 list, IPv6 client
    expect(addressList(['::/0']).matches('2001:db8::1')).toBe(true)
    expect(normalizeAddress('::ffff:127.0.0.1')).toEqual({ address: '127.0.0.1', family: 4 })
  })

  it('refuse an invalid entry, naming it', () => {
    for (const bad of [
      '10.0.0.0/33',
      '2001:db8::/129',
      '10.0.0/8',
      'host.example',
      '10.0.0.0/-1',
      '10.0.0.0/',
    ]) {
      expect(() => addressList([bad])).toThrow(bad)
    }
  })
})

describe('instance policies in the engine', () => {
  function world() {
    const store = createMemoryStore()
    const clock = new ManualClock()
    const provider = createInsecureMemoryProvider()
    const engine = new EnvelopeEngine({ provider, store, clock, metadataCacheTtlMs: 1000 })
    return { store, clock, provider, engine }
  }

  it('checkClientAddress answers synchronously from the cache; a PUT here invalidates it, another process is seen after the TTL', async () => {
    const w = world()
    await w.engine.setInstancePolicies('i1', [
      { type: 'allowedIP', enabled: true, attributes: { allowed_ip: ['10.0.0.0/8'] } },
    ])
    // First call after the PUT loads (a promise); later ones are synchronous and read nothing.
    await expectCode(
      Promise.resolve(w.engine.checkClientAddress('i1', '192.0.2.1')),
      'IP_ADDRESS_NOT_ALLOWED_ERR',
    )
    const reads = w.store.calls.listInstancePolicies ?? 0
    expect(w.engine.checkClientAddress('i1', '10.1.1.1')).toBeUndefined()
    expect(() => w.engine.checkClientAddress('i1', '192.0.2.1')).toThrow(/not allowed/)
    expect(() => w.engine.checkClientAddress('i1', undefined)).toThrow(/unknown/)
    expect(w.store.calls.listInstancePolicies ?? 0).toBe(reads)
    // No policy: every address passes.
    await w.engine.checkClientAddress('i2', '192.0.2.1')
    expect(w.engine.checkClientAddress('i2', undefined)).toBeUndefined()

    // Another engine on the same catalog lifts the policy: seen here once the entry is older than the TTL.
    const other = new EnvelopeEngine({ provider: w.provider, store: w.store, clock: w.clock })
    await other.setInstancePolicies('i1', [{ type: 'allowedIP', enabled: false }])
    expect(() => w.engine.checkClientAddress('i1', '192.0.2.1')).toThrow(/not allowed/)
    w.clock.advance(1000)
    await w.engine.checkClientAddress('i1', '192.0.2.1')
    expect(w.engine.checkClientAddress('i1', '192.0.2.1')).toBeUndefined()
  })

  it('keeps the first creation date and creator; disabling drops the attributes', async () => {
    const w = world()
    await w.engine.setInstancePolicies(
      'i1',
      [{ type: 'rotation', enabled: true, attributes: { interval_month: 2 } }],
      {
        updatedBy: 'alice',
      },
    )
    const created = w.clock.now()
    w.clock.advance(5000)
    const [p] = await w.engine.setInstancePolicies('i1', [{ type: 'rotation', enabled: false }], {
      updatedBy: 'bob',
    })
    expect(p).toMatchObject({
      type: 'rotation',
      enabled: false,
      attributes: undefined,
      createdBy: 'alice',
      updatedBy: 'bob',
    })
    expect(p?.createdAt.getTime()).toBe(created)
    expect(p?.updatedAt.getTime()).toBe(created + 5000)
    await expectCode(w.engine.getInstancePolicies('i1', 'nope' as never), 'INVALID_FIELD_ERR')
    await expectCode(w.engine.setInstancePolicies('i1', []), 'INVALID_FIELD_ERR')
  })
})
