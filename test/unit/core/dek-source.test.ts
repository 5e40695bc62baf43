/**
 * DekSource (src/core/envelope/dek-source.ts): where unwrap, rewrap, open and seal get their DEKs — straight
 * from the provider, or through the DEK cache (the real lru-cache implementation, src/cache). An
 * EngineContext wired by hand as the engine wires it, over the fakes (test/fakes).
 */
import { describe, expect, it } from 'vitest'
import { createDekCache, type DekCacheOptions, type LruDekCache } from '../../../src/cache/index.js'
import type { EngineContext } from '../../../src/core/context.js'
import { KEY_PROTECT_LIFECYCLE } from '../../../src/core/engine-types.js'
import { createDekSource } from '../../../src/core/envelope/dek-source.js'
import { encodeContext } from '../../../src/core/format/message.js'
import { KeyDirectory } from '../../../src/core/keys/directory.js'
import { createKey } from '../../../src/core/keys/lifecycle.js'
import { InstancePolicyCache } from '../../../src/core/keys/instance-policies.js'
import { KeyLocks } from '../../../src/core/keys/locks.js'
import { disable } from '../../../src/core/keys/transitions.js'
import { createDekWrapper } from '../../../src/core/wrap/dek-wrapper.js'
import { UsageMeter } from '../../../src/core/wrap/usage-meter.js'
import { wrap } from '../../../src/core/wrap/wrap.js'
import { expectCode, expectCodeSync } from '../../helpers/expect-code.js'
import {
  createInsecureMemoryProvider,
  type InsecureMemoryProvider,
  type InsecureMemoryProviderOptions,
} from '../../fakes/fake-provider.js'
import { ManualClock } from '../../fakes/manual-clock.js'
import { createMemoryStore, type MemoryStore } from '../../fakes/memory-store.js'

const I = 'dek-source'
const POLL_MS = 50
const NO_CONTEXT = encodeContext(undefined)

interface World {
  ctx: EngineContext
  provider: InsecureMemoryProvider
  store: MemoryStore
  clock: ManualClock
  cache: LruDekCache | undefined
  /** A new root key. */
  key(): Promise<string>
  /** A DEK wrapped under `keyId` with `aad`: the ciphertext (base64) and the DEK. */
  wrapped(keyId: string, aad?: string[]): Promise<{ ciphertext: string; dek: Buffer }>
}

/** The engine's wiring (src/core/engine.ts), with or without a DEK cache. */
function world(o: { cache?: DekCacheOptions | false; provider?: InsecureMemoryProviderOptions } = {}): World {
  const provider = createInsecureMemoryProvider(o.provider)
  const store = createMemoryStore()
  const clock = new ManualClock()
  const cache = o.cache === false || o.cache === undefined ? undefined : createDekCache({ ...o.cache, clock })
  const wrapper = createDekWrapper(provider)
  const keys = new KeyDirectory({
    store,
    clock,
    ttlMs: 60_000,
    pollMs: POLL_MS,
    mechanism: wrapper.mechanism,
    dekCache: cache,
  })
  const partial: Omit<EngineContext, 'deks'> = {
    provider,
    store,
    clock,
    life: KEY_PROTECT_LIFECYCLE,
    keys,
    instancePolicies: new InstancePolicyCache(store, () => clock.now(), 60_000),
    locks: new KeyLocks(),
    usage: new UsageMeter(store, 2 ** 32, 65_536),
    wrapper,
    dekCache: cache,
    pool: undefined,
    reconcileGraceMs: 60_000,
    systemKeyInflight: new Map(),
    closed: false,
  }
  const ctx = partial as EngineContext
  ;(ctx as { deks: EngineContext['deks'] }).deks = createDekSource(ctx)
  return {
    ctx,
    provider,
    store,
    clock,
    cache,
    key: async () => (await createKey(ctx, I, { name: 'dek-source-key' })).id,
    wrapped: async (keyId, aad = []) => {
      const r = await wrap(ctx, I, keyId, { aad })
      return { ciphertext: r.ciphertext, dek: r.plaintext! }
    },
  }
}

/** Another process suspends the key; this process notices at its next poll of the change counter. */
async function suspendedByAnotherProcess(w: World, id: string): Promise<void> {
  expect(await w.store.updateKey(I, id, 1, { state: 2 })).toBe(true)
  w.clock.advance(POLL_MS)
}

describe('DekSource without a DEK cache (direct)', () => {
  it('every open decrypts with the provider, and the synchronous paths never answer', async () => {
    const w = world()
    const id = await w.key()
    const { ciphertext, dek } = await w.wrapped(id)
    for (let i = 0; i < 3; i++) {
      const opened = await w.ctx.deks.open('unwrap', I, id, ciphertext, {})
      expect(opened.dek.bytes.equals(dek)).toBe(true)
    }
    expect(w.provider.calls.decrypt).toBe(3)
    expect(w.ctx.deks.openSync('unwrap', I, id, ciphertext, {})).toBeUndefined()
    expect(w.ctx.deks.dataKeySync(I, id, NO_CONTEXT, 10)).toBeUndefined()
  })

  it('every seal gets a fresh data key from the provider', async () => {
    const w = world()
    const id = await w.key()
    for (let i = 0; i < 3; i++) (await w.ctx.deks.dataKey(I, id, NO_CONTEXT, 10, {})).release()
    expect(w.provider.calls.generateRandom).toBe(3)
  })

  it('N concurrent opens of one ciphertext make N provider calls (no sharing without a cache)', async () => {
    const w = world()
    const id = await w.key()
    const { ciphertext } = await w.wrapped(id)
    await Promise.all(Array.from({ length: 5 }, () => w.ctx.deks.open('unwrap', I, id, ciphertext, {})))
    expect(w.provider.calls.decrypt).toBe(5)
  })
})

describe('DekSource with a DEK cache', () => {
  it('the second open of a ciphertext with the same AAD is served from the cache, also synchronously', async () => {
    const w = world({ cache: {} })
    const id = await w.key()
    const { ciphertext, dek } = await w.wrapped(id, ['a'])
    await w.ctx.deks.open('unwrap', I, id, ciphertext, { aad: ['a'] })
    const again = await w.ctx.deks.open('unwrap', I, id, ciphertext, { aad: ['a'] })
    const sync = w.ctx.deks.openSync('unwrap', I, id, ciphertext, { aad: ['a'] })
    expect(w.provider.calls.decrypt).toBe(1)
    expect(again.dek.bytes.equals(dek)).toBe(true)
    expect(sync?.dek.bytes.equals(dek)).toBe(true)
  })

  it('a cached DEK is not served for another AAD: that open goes to the provider and fails with UNWRAP_AAD_MISMATCH', async () => {
    const w = world({ cache: {} })
    const id = await w.key()
    const { ciphertext } = await w.wrapped(id, ['right'])
    await w.ctx.deks.open('unwrap', I, id, ciphertext, { aad: ['right'] })
    expect(w.ctx.deks.openSync('unwrap', I, id, ciphertext, { aad: ['wrong'] })).toBeUndefined()
    await expectCode(w.ctx.deks.open('unwrap', I, id, ciphertext, { aad: ['wrong'] }), 'UNWRAP_AAD_MISMATCH')
    await expectCode(w.ctx.deks.open('unwrap', I, id, ciphertext, {}), 'UNWRAP_AAD_MISMATCH')
    expect(w.provider.calls.decrypt).toBe(3)
  })

  it('each open returns a copy the caller owns: zeroing it leaves the cached DEK intact', async () => {
    const w = world({ cache: {} })
    const id = await w.key()
    const { ciphertext, dek } = await w.wrapped(id)
    const first = await w.ctx.deks.open('unwrap', I, id, ciphertext, {})
    first.dek.zeroize()
    const second = await w.ctx.deks.open('unwrap', I, id, ciphertext, {})
    expect(second.dek.bytes.equals(dek)).toBe(true)
    expect(w.provider.calls.decrypt).toBe(1)
  })

  it('single flight: N concurrent opens of one ciphertext make one provider decrypt, and each gets its own copy', async () => {
    // Every decrypt yields to the event loop first, so the opens overlap for certain.
    const w = world({
      cache: {},
      provider: { gate: (op) => (op === 'decrypt' ? new Promise<void>((r) => setImmediate(r)) : undefined) },
    })
    const id = await w.key()
    const { ciphertext, dek } = await w.wrapped(id)
    const opened = await Promise.all(
      Array.from({ length: 20 }, () => w.ctx.deks.open('unwrap', I, id, ciphertext, {})),
    )
    expect(w.provider.calls.decrypt).toBe(1)
    expect(opened.every((o) => o.dek.bytes.equals(dek))).toBe(true)
    expect(new Set(opened.map((o) => o.dek.bytes.buffer)).size).toBe(20) // no two callers share memory
  })

  it('the unwrap cache honours its entry bound: the oldest entry is dropped and decrypted again', async () => {
    const w = world({ cache: { unwrap: { maxEntries: 2 } } })
    const id = await w.key()
    const cts = [await w.wrapped(id), await w.wrapped(id), await w.wrapped(id)].map((x) => x.ciphertext)
    for (const ct of cts) await w.ctx.deks.open('unwrap', I, id, ct, {})
    await w.ctx.deks.open('unwrap', I, id, cts[2]!, {}) // still cached
    expect(w.provider.calls.decrypt).toBe(3)
    await w.ctx.deks.open('unwrap', I, id, cts[0]!, {}) // evicted
    expect(w.provider.calls.decrypt).toBe(4)
  })

  it('the unwrap cache honours its TTL', async () => {
    const w = world({ cache: { unwrap: { ttlMs: 1000 } } })
    const id = await w.key()
    const { ciphertext } = await w.wrapped(id)
    await w.ctx.deks.open('unwrap', I, id, ciphertext, {})
    w.clock.advance(999)
    await w.ctx.deks.open('unwrap', I, id, ciphertext, {})
    expect(w.provider.calls.decrypt).toBe(1)
    w.clock.advance(1)
    await w.ctx.deks.open('unwrap', I, id, ciphertext, {})
    expect(w.provider.calls.decrypt).toBe(2)
  })
})

describe('DekSource with a DEK cache: data-key bounds', () => {
  it('a data key is reused for at most maxMessages messages', async () => {
    const w = world({ cache: { dataKeys: { maxMessages: 3 } } })
    const id = await w.key()
    const leases = []
    for (let i = 0; i < 3; i++) leases.push(await w.ctx.deks.dataKey(I, id, NO_CONTEXT, 10, {}))
    expect(w.provider.calls.generateRandom).toBe(1)
    expect(w.ctx.deks.dataKeySync(I, id, NO_CONTEXT, 10)).toBeUndefined() // a 4th message would exceed it
    const fourth = await w.ctx.deks.dataKey(I, id, NO_CONTEXT, 10, {})
    expect(w.provider.calls.generateRandom).toBe(2)
    expect(fourth.dek.bytes.equals(leases[0]!.dek.bytes)).toBe(false)
    for (const l of [...leases, fourth]) l.release()
  })

  it('a data key is reused for at most maxBytes plaintext bytes in all', async () => {
    const w = world({ cache: { dataKeys: { maxBytes: 100 } } })
    const id = await w.key()
    ;(await w.ctx.deks.dataKey(I, id, NO_CONTEXT, 60, {})).release()
    const sync = w.ctx.deks.dataKeySync(I, id, NO_CONTEXT, 40) // 60 + 40 = 100: still within the bound
    expect(sync).toBeDefined()
    sync!.release()
    expect(w.provider.calls.generateRandom).toBe(1)
    expect(w.ctx.deks.dataKeySync(I, id, NO_CONTEXT, 1)).toBeUndefined() // 101 would exceed it
    ;(await w.ctx.deks.dataKey(I, id, NO_CONTEXT, 1, {})).release()
    expect(w.provider.calls.generateRandom).toBe(2)
  })

  it('a message larger than maxBytes, or of unknown length, gets a data key of its own that is not cached', async () => {
    const w = world({ cache: { dataKeys: { maxBytes: 100 } } })
    const id = await w.key()
    ;(await w.ctx.deks.dataKey(I, id, NO_CONTEXT, 101, {})).release()
    ;(await w.ctx.deks.dataKey(I, id, NO_CONTEXT, undefined, {})).release()
    ;(await w.ctx.deks.dataKey(I, id, NO_CONTEXT, undefined, {})).release()
    expect(w.provider.calls.generateRandom).toBe(3)
    expect(w.ctx.deks.dataKeySync(I, id, NO_CONTEXT, 1)).toBeUndefined()
  })

  it('a data key is reused for at most maxAgeMs', async () => {
    const w = world({ cache: { dataKeys: { maxAgeMs: 1000 } } })
    const id = await w.key()
    ;(await w.ctx.deks.dataKey(I, id, NO_CONTEXT, 1, {})).release()
    w.clock.advance(999)
    ;(await w.ctx.deks.dataKey(I, id, NO_CONTEXT, 1, {})).release()
    expect(w.provider.calls.generateRandom).toBe(1)
    w.clock.advance(1)
    ;(await w.ctx.deks.dataKey(I, id, NO_CONTEXT, 1, {})).release()
    expect(w.provider.calls.generateRandom).toBe(2)
  })

  it('data keys are per encryption context: another context gets another data key', async () => {
    const w = world({ cache: {} })
    const id = await w.key()
    ;(await w.ctx.deks.dataKey(I, id, encodeContext({ tenant: 'a' }), 1, {})).release()
    ;(await w.ctx.deks.dataKey(I, id, encodeContext({ tenant: 'b' }), 1, {})).release()
    ;(await w.ctx.deks.dataKey(I, id, encodeContext({ tenant: 'a' }), 1, {})).release()
    expect(w.provider.calls.generateRandom).toBe(2)
  })
})

describe('DekSource: the key state is checked on every cached hit', () => {
  it('a key suspended by another process refuses unwrap although its DEK is still cached', async () => {
    const w = world({ cache: {} })
    const id = await w.key()
    const { ciphertext } = await w.wrapped(id)
    await w.ctx.deks.open('unwrap', I, id, ciphertext, {})
    await suspendedByAnotherProcess(w, id)
    await expectCode(w.ctx.deks.open('unwrap', I, id, ciphertext, {}), 'KEY_ACTION_INVALID_STATE_ERR')
    expectCodeSync(() => w.ctx.deks.openSync('unwrap', I, id, ciphertext, {}), 'KEY_ACTION_INVALID_STATE_ERR')
    expect(w.cache!.peek(I, id, ciphertext)).toBeDefined() // the DEK was cached all along
    expect(w.provider.calls.decrypt).toBe(1)
  })

  it('a key suspended by another process refuses a cached data key for sealing', async () => {
    const w = world({ cache: {} })
    const id = await w.key()
    ;(await w.ctx.deks.dataKey(I, id, NO_CONTEXT, 1, {})).release()
    await suspendedByAnotherProcess(w, id)
    await expectCode(w.ctx.deks.dataKey(I, id, NO_CONTEXT, 1, {}), 'KEY_ACTION_INVALID_STATE_ERR')
    await w.ctx.keys.resolve(I, id) // metadata cached again (state 2), so the sync path answers
    expectCodeSync(() => w.ctx.deks.dataKeySync(I, id, NO_CONTEXT, 1), 'KEY_ACTION_INVALID_STATE_ERR')
    expect(w.provider.calls.generateRandom).toBe(1)
  })

  it('a cached message DEK is not handed out synchronously for a suspended key', async () => {
    const w = world({ cache: {} })
    const id = await w.key()
    const { ciphertext } = await w.wrapped(id)
    await w.ctx.deks.open('unwrap', I, id, ciphertext, {}, undefined, 'message-cache-key')
    let used = 0
    expect(w.ctx.deks.withMessageDekSync(I, id, 'message-cache-key', () => ++used)).toBe(1)
    await suspendedByAnotherProcess(w, id)
    await w.ctx.keys.resolve(I, id) // metadata cached again, now with state 2
    expectCodeSync(
      () => w.ctx.deks.withMessageDekSync(I, id, 'message-cache-key', () => ++used),
      'KEY_ACTION_INVALID_STATE_ERR',
    )
    expect(used).toBe(1)
  })

  it('disabling through this engine drops the key’s cached DEKs at once', async () => {
    const w = world({ cache: {} })
    const id = await w.key()
    const { ciphertext } = await w.wrapped(id)
    await w.ctx.deks.open('unwrap', I, id, ciphertext, {})
    await disable(w.ctx, I, id, {})
    expect(w.cache!.peek(I, id, ciphertext)).toBeUndefined()
    await expectCode(w.ctx.deks.open('unwrap', I, id, ciphertext, {}), 'KEY_ACTION_INVALID_STATE_ERR')
  })
})
