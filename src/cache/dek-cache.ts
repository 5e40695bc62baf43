/**
 * The DEK cache (lru-cache): unwrapped DEKs, and data keys reused for sealing within the AWS Encryption
 * SDK's caching bounds (max age, max messages, max bytes). Every plaintext byte it holds (the DEK, and the
 * message-key deriver kept in the entry's memo) is wiped when the entry is evicted, expires, is invalidated
 * or the cache closes; a data key still lent to a seal is wiped when its last lease is released. Misses are single-flight: concurrent misses for one entry wait for one
 * load (unlike the ESDK's caching CMM, aws-encryption-sdk-javascript#421).
 */
import { LRUCache } from 'lru-cache'
import { EngineError } from '../core/errors.js'
import { wipeDekMemo } from '../core/format/message.js'
import type { CachedDek, Clock, DataKeyLease, DekCache, DekCacheStats, DekMemo } from '../core/ports.js'
import { SecretBytes } from '../core/secret-bytes.js'

/** Options of {@link createDekCache}. `false` turns a part off. */
export interface DekCacheOptions {
  readonly unwrap?:
    | false
    | {
        /** Entries at most (default 10,000). */
        readonly maxEntries?: number
        /** Time to live (default 5 minutes). */
        readonly ttlMs?: number
      }
  readonly dataKeys?:
    | false
    | {
        /** Partitions (instance + key version + context) at most (default 1,000). */
        readonly maxEntries?: number
        /** A data key is used for sealing for at most this long (default 60 s). */
        readonly maxAgeMs?: number
        /** ... for at most this many messages (default 1,000,000; each message derives its own key). */
        readonly maxMessages?: number
        /** ... for at most this many plaintext bytes in all (default 2^40). */
        readonly maxBytes?: number
      }
  /** How often expired entries are swept and zeroed (default 1000 ms; the timer does not keep the process alive). */
  readonly sweepIntervalMs?: number
  /** Time source (tests). */
  readonly clock?: Clock
}

interface UnwrapEntry {
  readonly instance: string
  readonly keyId: string
  readonly version: number
  readonly dek: SecretBytes
  readonly expires: number
  readonly memo: DekMemo
}

interface DataKeyEntry extends CachedDek {
  readonly memo: DekMemo
  readonly instance: string
  readonly keyId: string
  readonly createdAt: number
  messages: number
  bytes: number
  refs: number
  retired: boolean
}

function wipeData(e: DataKeyEntry): void {
  e.dek.zeroize()
  wipeDekMemo(e.memo)
}

function positive(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !(v > 0))
    throw new EngineError('CONFIG_INVALID', `dekCache.${name}: must be a positive number`)
  return v
}

/** {@link DekCache} on lru-cache. Create it with {@link createDekCache}. */
export class LruDekCache implements DekCache {
  readonly #clock: Clock
  readonly #unwrap: LRUCache<string, UnwrapEntry> | undefined
  readonly #data: LRUCache<string, DataKeyEntry> | undefined
  readonly #ttl: number
  readonly #maxAge: number
  readonly #maxMessages: number
  readonly #maxBytes: number
  readonly #unwrapInflight = new Map<string, Promise<SecretBytes>>()
  readonly #dataInflight = new Map<string, Promise<void>>()
  readonly #timer: NodeJS.Timeout
  #closed = false
  #s = { unwrapHits: 0, unwrapMisses: 0, dataKeyHits: 0, dataKeyMisses: 0, evictions: 0 }

  constructor(options: DekCacheOptions = {}) {
    this.#clock = options.clock ?? { now: () => Date.now() }
    const u = options.unwrap === false ? undefined : (options.unwrap ?? {})
    const d = options.dataKeys === false ? undefined : (options.dataKeys ?? {})
    this.#ttl = positive(u?.ttlMs, 'unwrap.ttlMs', 300_000)
    this.#maxAge = positive(d?.maxAgeMs, 'dataKeys.maxAgeMs', 60_000)
    this.#maxMessages = positive(d?.maxMessages, 'dataKeys.maxMessages', 1_000_000)
    this.#maxBytes = positive(d?.maxBytes, 'dataKeys.maxBytes', 2 ** 40)
    this.#unwrap =
      u === undefined
        ? undefined
        : new LRUCache<string, UnwrapEntry>({
            max: positive(u.maxEntries, 'unwrap.maxEntries', 10_000),
            dispose: (e) => {
              this.#s.evictions++
              e.dek.zeroize()
              wipeDekMemo(e.memo)
            },
          })
    this.#data =
      d === undefined
        ? undefined
        : new LRUCache<string, DataKeyEntry>({
            max: positive(d.maxEntries, 'dataKeys.maxEntries', 1_000),
            dispose: (e) => {
              this.#s.evictions++
              this.#retire(e)
            },
          })
    this.#timer = setInterval(
      () => {
        this.sweep()
      },
      positive(options.sweepIntervalMs, 'sweepIntervalMs', 1000),
    )
    this.#timer.unref()
  }

  peek(
    instance: string,
    keyId: string,
    cacheKey: string,
  ): { dek: SecretBytes; version: number; memo: DekMemo } | undefined {
    const hit = this.#hit(instance, keyId, cacheKey)
    if (hit === undefined) return undefined
    this.#s.unwrapHits++
    return { dek: SecretBytes.copyOf(hit.dek.bytes), version: hit.version, memo: hit.memo }
  }

  peekWith<R>(
    instance: string,
    keyId: string,
    cacheKey: string,
    use: (dek: Buffer, version: number, memo: DekMemo) => R,
  ): R | undefined {
    const hit = this.#hit(instance, keyId, cacheKey)
    if (hit === undefined) return undefined
    this.#s.unwrapHits++
    return use(hit.dek.bytes, hit.version, hit.memo)
  }

  #hit(instance: string, keyId: string, cacheKey: string): UnwrapEntry | undefined {
    const cache = this.#unwrap
    if (cache === undefined || this.#closed) return undefined
    // Keyed by the ciphertext (+ AAD) alone; the entry's instance and key must match, so another instance
    // presenting the same ciphertext misses.
    const hit = cache.get(cacheKey)
    if (hit === undefined || hit.instance !== instance || hit.keyId !== keyId) return undefined
    if (hit.expires <= this.#clock.now()) {
      cache.delete(cacheKey)
      return undefined
    }
    return hit
  }

  async unwrap(
    instance: string,
    keyId: string,
    cacheKey: string,
    version: number,
    load: () => Promise<SecretBytes>,
  ): Promise<SecretBytes> {
    const cache = this.#unwrap
    if (cache === undefined || this.#closed) return load()
    const key = `${instance}\u0000${keyId}\u0000${cacheKey}` // single-flight key
    for (;;) {
      const hit = this.peek(instance, keyId, cacheKey)
      if (hit !== undefined) return hit.dek
      const inflight = this.#unwrapInflight.get(key)
      if (inflight !== undefined) {
        const dek = await inflight.catch(() => undefined)
        // Copy in the same synchronous step as the check: the entry may be evicted right after.
        if (dek !== undefined && !dek.zeroized) {
          this.#s.unwrapHits++
          return SecretBytes.copyOf(dek.bytes)
        }
        if (dek === undefined) return load() // the shared load failed: report this caller's own failure
        continue
      }
      this.#s.unwrapMisses++
      const p = load()
      this.#unwrapInflight.set(key, p)
      try {
        const dek = await p
        const copy = SecretBytes.copyOf(dek.bytes)
        if (this.#closed) dek.zeroize()
        else
          cache.set(cacheKey, {
            instance,
            keyId,
            version,
            dek,
            expires: this.#clock.now() + this.#ttl,
            memo: {},
          })
        return copy
      } finally {
        this.#unwrapInflight.delete(key)
      }
    }
  }

  async acquireDataKey(
    instance: string,
    keyId: string,
    partition: string,
    bytes: number,
    create: () => Promise<CachedDek>,
  ): Promise<DataKeyLease> {
    const cache = this.#data
    if (cache === undefined || this.#closed || bytes > this.#maxBytes) return this.#uncached(await create())
    const key = `${instance}\u0000${partition}`
    for (;;) {
      const e = cache.get(key)
      if (e !== undefined) {
        if (this.#usable(e, bytes)) {
          this.#s.dataKeyHits++
          return this.#lease(e, bytes)
        }
        cache.delete(key) // retired: zeroed once its leases are released
      }
      const inflight = this.#dataInflight.get(key)
      if (inflight !== undefined) {
        await inflight.catch(() => undefined)
        if (cache.get(key) === undefined) return this.#uncached(await create())
        continue
      }
      this.#s.dataKeyMisses++
      let resolveInflight: () => void = () => undefined
      this.#dataInflight.set(key, new Promise<void>((r) => (resolveInflight = r)))
      try {
        const m = await create()
        const entry: DataKeyEntry = {
          ...m,
          memo: {},
          instance,
          keyId,
          createdAt: this.#clock.now(),
          messages: 0,
          bytes: 0,
          refs: 0,
          retired: false,
        }
        if (this.#closed) return this.#uncached(m)
        const lease = this.#lease(entry, bytes)
        cache.set(key, entry)
        return lease
      } finally {
        this.#dataInflight.delete(key)
        resolveInflight()
      }
    }
  }

  tryAcquireDataKey(instance: string, partition: string, bytes: number): DataKeyLease | undefined {
    const cache = this.#data
    if (cache === undefined || this.#closed || bytes > this.#maxBytes) return undefined
    const e = cache.get(`${instance}\u0000${partition}`)
    if (e === undefined || !this.#usable(e, bytes)) return undefined
    this.#s.dataKeyHits++
    return this.#lease(e, bytes)
  }

  invalidateKey(instance: string, keyId: string): void {
    for (const c of [this.#unwrap, this.#data] as (
      LRUCache<string, UnwrapEntry | DataKeyEntry> | undefined
    )[]) {
      if (c === undefined) continue
      const doomed: string[] = []
      for (const [k, e] of c.entries()) if (e.instance === instance && e.keyId === keyId) doomed.push(k)
      for (const k of doomed) c.delete(k)
    }
  }

  /** Drops expired entries (called by the timer; callable directly). */
  sweep(): void {
    const now = this.#clock.now()
    if (this.#unwrap !== undefined) {
      const doomed: string[] = []
      for (const [k, e] of this.#unwrap.entries()) if (e.expires <= now) doomed.push(k)
      for (const k of doomed) this.#unwrap.delete(k)
    }
    if (this.#data !== undefined) {
      const doomed: string[] = []
      for (const [k, e] of this.#data.entries()) if (now - e.createdAt >= this.#maxAge) doomed.push(k)
      for (const k of doomed) this.#data.delete(k)
    }
  }

  stats(): DekCacheStats {
    let messages = 0
    for (const e of this.#data?.values() ?? []) messages += e.messages
    return {
      ...this.#s,
      entries: (this.#unwrap?.size ?? 0) + (this.#data?.size ?? 0),
      dataKeyMessages: messages,
    }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    this.#unwrap?.clear()
    this.#data?.clear()
  }

  #usable(e: DataKeyEntry, bytes: number): boolean {
    return (
      !e.retired &&
      this.#clock.now() - e.createdAt < this.#maxAge &&
      e.messages + 1 <= this.#maxMessages &&
      e.bytes + bytes <= this.#maxBytes
    )
  }

  #lease(e: DataKeyEntry, bytes: number): DataKeyLease {
    e.messages++
    e.bytes += bytes
    e.refs++
    let released = false
    return {
      dek: e.dek,
      wrapped: e.wrapped,
      memo: e.memo,
      release: () => {
        if (released) return
        released = true
        e.refs--
        if (e.retired && e.refs === 0) wipeData(e)
      },
    }
  }

  #retire(e: DataKeyEntry): void {
    e.retired = true
    if (e.refs === 0) wipeData(e)
  }

  #uncached(m: CachedDek): DataKeyLease {
    return {
      ...m,
      release: () => {
        m.dek.zeroize()
      },
    }
  }
}

/**
 * Creates the lru-cache DEK cache. Pass it as `dekCache` to `createEngine`.
 * @throws EngineError CONFIG_INVALID
 */
export function createDekCache(options: DekCacheOptions = {}): LruDekCache {
  return new LruDekCache(options)
}
