/**
 * KeyDirectory (src/core/keys/directory.ts): key metadata and alias cache over the catalog — TTL, polling the
 * store's change counter, invalidation, key-ring scope, internal keys. Over the in-memory store and a manual
 * clock (test/fakes); the store's call counts tell when the catalog was read.
 */
import { randomUUID } from 'node:crypto'
import { describe, expect, it, vi } from 'vitest'
import { createDekCache } from '../../../src/cache/index.js'
import { Mechanism } from '../../../src/core/format/ciphertext.js'
import { KeyDirectory } from '../../../src/core/keys/directory.js'
import { newKeyRecord } from '../../../src/core/keys/key-record.js'
import type { KeyRecord } from '../../../src/core/ports.js'
import { expectCode } from '../../helpers/expect-code.js'
import { ManualClock } from '../../fakes/manual-clock.js'
import { createMemoryStore, type MemoryStore, type MemoryStoreOptions } from '../../fakes/memory-store.js'

const I = 'dir-instance'

interface Setup {
  store: MemoryStore
  clock: ManualClock
  dir: KeyDirectory
  /** Inserts a root key (version 1) straight into the catalog, as another process would. */
  addKey: (fields?: Partial<KeyRecord>, aliases?: string[], instance?: string) => Promise<string>
}

function setup(
  o: { ttlMs?: number; pollMs?: number; store?: MemoryStoreOptions; dekCache?: boolean } = {},
): Setup & { dekCache: ReturnType<typeof createDekCache> | undefined } {
  const store = createMemoryStore(o.store)
  const clock = new ManualClock()
  const dekCache = o.dekCache === true ? createDekCache({ clock }) : undefined
  const dir = new KeyDirectory({
    store,
    clock,
    ttlMs: o.ttlMs ?? 1000,
    pollMs: o.pollMs ?? 50,
    mechanism: Mechanism.AES_GCM,
    dekCache,
  })
  const addKey = async (
    fields: Partial<KeyRecord> = {},
    aliases: string[] = [],
    instance = I,
  ): Promise<string> => {
    const id = randomUUID()
    const rec = newKeyRecord(instance, id, 'k', clock.now(), fields)
    await store.insertKey(
      rec,
      { instance, keyId: id, version: 1, versionId: id, providerRef: 'r', createdAt: 0 },
      aliases,
    )
    return id
  }
  return { store, clock, dir, addKey, dekCache }
}

describe('KeyDirectory: TTL', () => {
  it('a loaded key is served from memory within the TTL: peek hits and load does not read the catalog', async () => {
    const { store, clock, dir, addKey } = setup({ ttlMs: 1000 })
    const id = await addKey()
    await dir.load(I, id)
    expect(store.calls.getKey).toBe(1)
    clock.advance(999)
    expect(dir.peek(I, id, clock.now())?.record.id).toBe(id)
    await dir.load(I, id)
    await dir.resolve(I, id)
    expect(store.calls.getKey).toBe(1)
  })

  it('a peek after the TTL misses, and the next load reads the catalog again', async () => {
    const { store, clock, dir, addKey } = setup({ ttlMs: 1000 })
    const id = await addKey()
    await dir.load(I, id)
    clock.advance(1000)
    expect(dir.peek(I, id, clock.now())).toBeUndefined()
    await dir.load(I, id)
    expect(store.calls.getKey).toBe(2)
  })

  it('a TTL of 0 disables caching: nothing to peek, every load and alias lookup reads the catalog', async () => {
    const { store, clock, dir, addKey } = setup({ ttlMs: 0 })
    const id = await addKey({}, ['zero-ttl'])
    await dir.load(I, id)
    expect(dir.peek(I, id, clock.now())).toBeUndefined()
    await dir.load(I, id)
    expect(store.calls.getKey).toBe(2)
    await dir.resolve(I, 'zero-ttl')
    await dir.resolve(I, 'zero-ttl')
    expect(store.calls.getKeyIdByAlias).toBe(2)
  })

  it('fresh loads always read the catalog, even within the TTL', async () => {
    const { store, dir, addKey } = setup({ ttlMs: 60_000 })
    const id = await addKey()
    await dir.load(I, id)
    await dir.load(I, id, true)
    await dir.resolve(I, id, true)
    expect(store.calls.getKey).toBe(3)
  })
})

describe('KeyDirectory: polling the change counter', () => {
  it('drops the cache when another writer changed the catalog, but asks no more often than pollMs', async () => {
    const { store, clock, dir, addKey } = setup({ ttlMs: 60_000, pollMs: 50 })
    const id = await addKey()
    await dir.load(I, id) // polls now
    const polls = store.calls.changeCounter ?? 0
    expect(await store.updateKey(I, id, 1, { state: 2 })).toBe(true) // another process disables the key
    clock.advance(49)
    for (let i = 0; i < 10; i++) expect(dir.peek(I, id, clock.now())?.record.state).toBe(1) // not noticed yet
    expect(store.calls.changeCounter).toBe(polls)
    clock.advance(1)
    expect(dir.peek(I, id, clock.now())).toBeUndefined()
    expect(store.calls.changeCounter).toBe(polls + 1)
    expect((await dir.load(I, id)).record.state).toBe(2)
  })

  it('keeps the cache when the change counter did not move', async () => {
    const { store, clock, dir, addKey } = setup({ ttlMs: 60_000, pollMs: 50 })
    const id = await addKey()
    await dir.load(I, id)
    clock.advance(500)
    expect(dir.peek(I, id, clock.now())).toBeDefined()
    expect(store.calls.getKey).toBe(1)
  })

  it('with pollMs 0 asks the store on every lookup', async () => {
    const { store, clock, dir, addKey } = setup({ ttlMs: 60_000, pollMs: 0 })
    const id = await addKey()
    await dir.load(I, id)
    const polls = store.calls.changeCounter ?? 0
    for (let i = 0; i < 5; i++) dir.peek(I, id, clock.now())
    expect(store.calls.changeCounter).toBe(polls + 5)
    await store.updateKey(I, id, 1, { state: 2 })
    expect(dir.peek(I, id, clock.now())).toBeUndefined()
  })

  it('a store without a change counter: another writer’s change is seen only after the TTL', async () => {
    const { store, clock, dir, addKey } = setup({ ttlMs: 1000, pollMs: 0, store: { changeCounter: false } })
    const id = await addKey()
    await dir.load(I, id)
    await store.updateKey(I, id, 1, { state: 2 })
    clock.advance(999)
    expect(dir.peek(I, id, clock.now())?.record.state).toBe(1)
    clock.advance(1)
    expect(dir.peek(I, id, clock.now())).toBeUndefined()
  })
})

describe('KeyDirectory: alias cache', () => {
  it('an alias is looked up in the catalog once within the TTL', async () => {
    const { store, dir, addKey } = setup({ ttlMs: 1000 })
    const id = await addKey({}, ['my-alias'])
    expect((await dir.resolve(I, 'my-alias')).record.id).toBe(id)
    expect((await dir.resolve(I, 'my-alias')).record.id).toBe(id)
    expect(store.calls.getKeyIdByAlias).toBe(1)
  })

  it('the alias cache expires with the TTL, and fresh bypasses it', async () => {
    const { store, clock, dir, addKey } = setup({ ttlMs: 1000 })
    await addKey({}, ['my-alias'])
    await dir.resolve(I, 'my-alias')
    await dir.resolve(I, 'my-alias', true)
    expect(store.calls.getKeyIdByAlias).toBe(2)
    clock.advance(1000)
    await dir.resolve(I, 'my-alias')
    expect(store.calls.getKeyIdByAlias).toBe(3)
  })

  it('invalidate drops every alias mapping: a removed alias is KEY_NOT_FOUND_ERR at once', async () => {
    const { store, dir, addKey } = setup({ ttlMs: 60_000, store: { changeCounter: false } })
    const id = await addKey({}, ['going-away'])
    await dir.resolve(I, 'going-away')
    expect(await store.removeAlias(I, id, 'going-away')).toBe(true)
    expect((await dir.resolve(I, 'going-away')).record.id).toBe(id) // still cached: nothing told the directory
    dir.invalidate(I, randomUUID()) // a change to any key clears the alias cache
    await expectCode(dir.resolve(I, 'going-away'), 'KEY_NOT_FOUND_ERR')
  })

  it('a change noticed through the change counter also drops the alias cache', async () => {
    const { store, clock, dir, addKey } = setup({ ttlMs: 60_000, pollMs: 50 })
    const id = await addKey({}, ['polled-alias'])
    await dir.resolve(I, 'polled-alias')
    await store.removeAlias(I, id, 'polled-alias')
    clock.advance(50)
    await expectCode(dir.resolve(I, 'polled-alias'), 'KEY_NOT_FOUND_ERR')
  })

  it('an unknown alias is KEY_NOT_FOUND_ERR and is not cached', async () => {
    const { store, dir } = setup()
    await expectCode(dir.resolve(I, 'nobody'), 'KEY_NOT_FOUND_ERR')
    await expectCode(dir.resolve(I, 'nobody'), 'KEY_NOT_FOUND_ERR')
    expect(store.calls.getKeyIdByAlias).toBe(2)
  })
})

describe('KeyDirectory: invalidation', () => {
  it('invalidate drops the key’s metadata: the next lookup reads the catalog', async () => {
    const { store, clock, dir, addKey } = setup({ ttlMs: 60_000, store: { changeCounter: false } })
    const id = await addKey()
    await dir.load(I, id)
    await store.updateKey(I, id, 1, { state: 2 })
    dir.invalidate(I, id)
    expect(dir.peek(I, id, clock.now())).toBeUndefined()
    expect((await dir.resolve(I, id)).record.state).toBe(2)
  })

  it('invalidate drops the key’s cached DEKs too', async () => {
    const { dir, addKey, dekCache } = setup({ dekCache: true })
    const id = await addKey()
    const spy = vi.spyOn(dekCache!, 'invalidateKey')
    dir.invalidate(I, id)
    expect(spy).toHaveBeenCalledWith(I, id)
    dekCache!.close()
  })

  it('clear drops every key of every instance but leaves cached DEKs alone', async () => {
    const { clock, dir, addKey, dekCache } = setup({ ttlMs: 60_000, dekCache: true })
    const a = await addKey()
    const b = await addKey({}, [], 'other-instance')
    await dir.load(I, a)
    await dir.load('other-instance', b)
    const spy = vi.spyOn(dekCache!, 'invalidateKey')
    dir.clear()
    expect(dir.peek(I, a, clock.now())).toBeUndefined()
    expect(dir.peek('other-instance', b, clock.now())).toBeUndefined()
    expect(spy).not.toHaveBeenCalled()
    dekCache!.close()
  })

  // Regression: a load that read the catalog before a change and finished after the change's invalidate()
  // used to put the old record back, served until the TTL (a wrap could pass on a key just disabled).
  it('a load in flight when the key is invalidated does not put the old record back in the cache', async () => {
    let hold: Promise<void> | undefined
    const { store, clock, dir, addKey } = setup({
      ttlMs: 60_000,
      store: { changeCounter: false, gate: (op) => (op === 'listVersions' ? hold : undefined) },
    })
    const id = await addKey()
    let release!: () => void
    hold = new Promise<void>((r) => (release = r))
    const inFlight = dir.load(I, id) // has read state 1, now waits on listVersions
    await new Promise((r) => setImmediate(r))
    hold = undefined
    await store.updateKey(I, id, 1, { state: 2 }) // this engine disables the key ...
    dir.invalidate(I, id) // ... and invalidates, as transition() does
    release()
    await inFlight
    expect(dir.peek(I, id, clock.now())?.record.state ?? 'miss').not.toBe(1)
  })
})

describe('KeyDirectory: scope', () => {
  it('a key outside the given key ring is KEY_NOT_FOUND_ERR, by id and by alias; peek returns undefined', async () => {
    const { store, clock, dir, addKey } = setup({ ttlMs: 60_000 })
    await store.createKeyRing({ instance: I, id: 'ring-one', createdAt: 0, createdBy: undefined }, 10)
    const id = await addKey({ keyRingId: 'ring-one' }, ['ringed'])
    expect((await dir.resolve(I, id, false, 'ring-one')).record.id).toBe(id)
    await expectCode(dir.resolve(I, id, false, 'default'), 'KEY_NOT_FOUND_ERR')
    await expectCode(dir.resolve(I, 'ringed', false, 'other-ring'), 'KEY_NOT_FOUND_ERR')
    const now = clock.now()
    expect(dir.peek(I, id, now, 'ring-one')).toBeDefined() // cached...
    expect(dir.peek(I, id, now, 'default')).toBeUndefined() // ...and still invisible outside its ring
    expect(dir.peek(I, id, now)).toBeDefined() // no scope: any ring
  })

  it('internal keys (the instance’s system key) are invisible to resolve and peek', async () => {
    const { clock, dir, addKey } = setup({ ttlMs: 60_000 })
    const id = await addKey({ internal: true }, ['system-alias'])
    expect((await dir.load(I, id)).record.internal).toBe(true) // the engine itself can load it
    await expectCode(dir.resolve(I, id), 'KEY_NOT_FOUND_ERR')
    await expectCode(dir.resolve(I, 'system-alias'), 'KEY_NOT_FOUND_ERR')
    expect(dir.peek(I, id, clock.now())).toBeUndefined()
  })

  it('instances are apart: another instance’s key is KEY_NOT_FOUND_ERR and never peeked', async () => {
    const { clock, dir, addKey } = setup({ ttlMs: 60_000 })
    const id = await addKey()
    await dir.load(I, id)
    await expectCode(dir.resolve('someone-else', id), 'KEY_NOT_FOUND_ERR')
    expect(dir.peek('someone-else', id, clock.now())).toBeUndefined()
  })

  it('an upper-case UUID finds the cached key', async () => {
    const { clock, dir, addKey } = setup({ ttlMs: 60_000 })
    const id = await addKey()
    await dir.load(I, id)
    expect(dir.peek(I, id.toUpperCase(), clock.now())?.record.id).toBe(id)
    expect((await dir.resolve(I, id.toUpperCase())).record.id).toBe(id)
  })
})
