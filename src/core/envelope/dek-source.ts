/**
 * DekSource: where an operation's DEK comes from — straight from the provider, or through the DEK cache
 * (the AWS Encryption SDK's caching materials manager has this shape). Which one is decided once, when the
 * engine is made: {@link createDekSource}. Unwrap, rewrap and message open take DEKs from `open`; seal takes
 * data keys from `dataKey`. The `*Sync` variants answer from the cache without any await, or not at all.
 */
import { assertAllowed, checkAborted, usableKey, usableKeyNow, type EngineContext } from '../context.js'
import { EngineError, invalidField } from '../errors.js'
import {
  GENERATED_DEK_BYTES,
  parseCiphertext,
  validateAad,
  type ParsedCiphertext,
} from '../format/ciphertext.js'
import type { EncodedContext } from '../format/message.js'
import type { CallOptions, CachedDek, DataKeyLease, DekCache, DekMemo } from '../ports.js'
import { SecretBytes } from '../secret-bytes.js'
import { currentVersion, versionOf, type CachedKey, type VersionEntry } from '../keys/directory.js'
import { wrapDek } from '../wrap/wrap.js'
import type { KeyScope } from '../engine-types.js'

/** The first half of unwrap, rewrap and message open: the key, the version that wrapped, the AAD and the DEK. */
export interface OpenedDek {
  readonly k: CachedKey
  readonly from: VersionEntry
  readonly aad: readonly string[]
  /** A copy the caller owns and zeroes. */
  readonly dek: SecretBytes
  readonly memo?: DekMemo | undefined
}

/** Options of {@link DekSource.open}: the caller's AAD, abort signal and key-ring scope. */
export interface OpenDekOptions extends CallOptions, KeyScope {
  readonly aad?: readonly string[] | undefined
}

export interface DekSource {
  /**
   * {@link open} from the cache alone, without any await: undefined unless the key's metadata and this
   * exact (ciphertext, AAD) are both cached. The key's state is checked as on every call.
   */
  openSync(
    action: 'unwrap' | 'rewrap',
    instance: string,
    idOrAlias: string,
    ciphertext: string | Uint8Array,
    o: OpenDekOptions,
  ): OpenedDek | undefined
  /**
   * Resolves the key, checks `action` against its state, and decrypts the DEK (or takes it from the cache).
   * `parsed` skips parsing again; `cacheKey` replaces the default cache key (messages key by context).
   */
  open(
    action: 'unwrap' | 'rewrap',
    instance: string,
    idOrAlias: string,
    ciphertext: string | Uint8Array,
    o: OpenDekOptions,
    parsed?: ParsedCiphertext,
    cacheKey?: string,
  ): Promise<OpenedDek>
  /** A cached data key for one seal, leased at once; undefined when the full path must run. */
  dataKeySync(
    instance: string,
    idOrAlias: string,
    ctx: EncodedContext,
    bytes: number,
  ): DataKeyLease | undefined
  /** A data key (DEK and its wrapped form) for one message of `bytes` bytes (undefined: unknown length). */
  dataKey(
    instance: string,
    idOrAlias: string,
    ctx: EncodedContext,
    bytes: number | undefined,
    o: CallOptions,
  ): Promise<DataKeyLease>
  /**
   * Runs `use` synchronously on a cached message DEK's own bytes (no copy) when the key's metadata and the
   * DEK are both cached and the key allows unwrap; undefined when the full path must run.
   */
  withMessageDekSync<R>(
    instance: string,
    keyId: string,
    cacheKey: string,
    use: (dek: Buffer, memo: DekMemo | undefined) => R,
  ): R | undefined
}

/** The source the engine's options ask for: through `ctx.dekCache` when there is one. */
export function createDekSource(ctx: EngineContext): DekSource {
  return ctx.dekCache === undefined ? new DirectDekSource(ctx) : new CachedDekSource(ctx, ctx.dekCache)
}

/**
 * A new DEK from the provider's RNG, wrapped under `k`'s latest version: what a seal needs on a cache miss.
 * The key was resolved and checked by the caller (once per seal).
 */
async function newDataKey(
  ctx: EngineContext,
  instance: string,
  k: CachedKey,
  aad: readonly string[],
  o: CallOptions,
): Promise<CachedDek> {
  checkAborted(o.signal)
  const dek = await ctx.provider.generateRandom(GENERATED_DEK_BYTES, o)
  try {
    /* Postcondition: a generated DEK is 32 bytes. */
    if (dek.length !== GENERATED_DEK_BYTES) {
      throw new EngineError('PROVIDER_ERROR', 'provider: random output has an unexpected length')
    }
    const wrapped = await wrapDek(ctx, instance, currentVersion(k), dek, aad, o)
    return { dek, wrapped }
  } catch (err) {
    dek.zeroize()
    throw err
  }
}

/** The key for a seal: resolved once and checked for wrap (even when a cached data key would do). */
async function sealKey(ctx: EngineContext, instance: string, idOrAlias: string): Promise<CachedKey> {
  return (
    usableKeyNow(ctx, 'wrap', instance, idOrAlias, ctx.clock.now()) ??
    usableKey(ctx, 'wrap', instance, idOrAlias)
  )
}

class DirectDekSource implements DekSource {
  readonly #ctx: EngineContext

  constructor(ctx: EngineContext) {
    this.#ctx = ctx
  }

  openSync(): undefined {
    return undefined
  }

  async open(
    action: 'unwrap' | 'rewrap',
    instance: string,
    idOrAlias: string,
    ciphertext: string | Uint8Array,
    o: OpenDekOptions,
    parsedAlready?: ParsedCiphertext,
  ): Promise<OpenedDek> {
    const ctx = this.#ctx
    const now = ctx.clock.now()
    const aad = validateAad(o.aad)
    const ring = o.keyRingId
    const k =
      usableKeyNow(ctx, action, instance, idOrAlias, now, ring) ??
      (await usableKey(ctx, action, instance, idOrAlias, ring))
    const parsed = parsedAlready ?? parseCiphertext(ciphertext)
    const from = versionOf(k, parsed)
    checkAborted(o.signal)
    return { k, from, aad, dek: await ctx.wrapper.unwrap(instance, from, parsed, aad, o) }
  }

  dataKeySync(): undefined {
    return undefined
  }

  async dataKey(
    instance: string,
    idOrAlias: string,
    enc: EncodedContext,
    _bytes: number | undefined,
    o: CallOptions,
  ): Promise<DataKeyLease> {
    const ctx = this.#ctx
    const k = await sealKey(ctx, instance, idOrAlias)
    return lease(await newDataKey(ctx, instance, k, enc.aad, o))
  }

  withMessageDekSync(): undefined {
    return undefined
  }
}

class CachedDekSource implements DekSource {
  readonly #ctx: EngineContext
  readonly #cache: DekCache

  constructor(ctx: EngineContext, cache: DekCache) {
    this.#ctx = ctx
    this.#cache = cache
  }

  openSync(
    action: 'unwrap' | 'rewrap',
    instance: string,
    idOrAlias: string,
    ciphertext: string | Uint8Array,
    o: OpenDekOptions,
  ): OpenedDek | undefined {
    // A hit means this ciphertext was unwrapped with this AAD by this key of this instance before, so it is
    // not parsed again; the key's state is checked as on every call.
    if (typeof ciphertext !== 'string') return undefined
    const ctx = this.#ctx
    const now = ctx.clock.now()
    const k = ctx.keys.peek(instance, idOrAlias, now, o.keyRingId)
    if (k === undefined) return undefined
    const aad = validateAad(o.aad)
    assertAllowed(ctx, action, k.record, now)
    const hit = this.#cache.peek(instance, k.record.id, cacheKeyOf(ciphertext, aad))
    if (hit === undefined) return undefined
    const from = k.versions.get(hit.version)
    if (from === undefined) {
      hit.dek.zeroize()
      return undefined
    }
    return { k, from, aad, dek: hit.dek }
  }

  async open(
    action: 'unwrap' | 'rewrap',
    instance: string,
    idOrAlias: string,
    ciphertext: string | Uint8Array,
    o: OpenDekOptions,
    parsedAlready?: ParsedCiphertext,
    givenCacheKey?: string,
  ): Promise<OpenedDek> {
    const ctx = this.#ctx
    const now = ctx.clock.now()
    const aad = validateAad(o.aad)
    const ring = o.keyRingId
    const k =
      usableKeyNow(ctx, action, instance, idOrAlias, now, ring) ??
      (await usableKey(ctx, action, instance, idOrAlias, ring))
    const cacheKey =
      givenCacheKey ??
      cacheKeyOf(
        typeof ciphertext === 'string' ? ciphertext : Buffer.from(ciphertext).toString('base64'),
        aad,
      )
    const hit = this.#cache.peek(instance, k.record.id, cacheKey)
    const hitVersion = hit === undefined ? undefined : k.versions.get(hit.version)
    if (hit !== undefined && hitVersion !== undefined)
      return { k, from: hitVersion, aad, dek: hit.dek, memo: hit.memo }
    hit?.dek.zeroize()
    const parsed = parsedAlready ?? parseCiphertext(ciphertext)
    const from = versionOf(k, parsed)
    const dek = await this.#cache.unwrap(instance, k.record.id, cacheKey, from.version, () => {
      checkAborted(o.signal)
      return ctx.wrapper.unwrap(instance, from, parsed, aad, o)
    })
    return { k, from, aad, dek } // an owned copy
  }

  dataKeySync(
    instance: string,
    idOrAlias: string,
    enc: EncodedContext,
    bytes: number,
  ): DataKeyLease | undefined {
    const cache = this.#cache
    if (cache.tryAcquireDataKey === undefined) return undefined
    const ctx = this.#ctx
    const now = ctx.clock.now()
    const k = ctx.keys.peek(instance, idOrAlias, now)
    if (k === undefined) return undefined
    assertAllowed(ctx, 'wrap', k.record, now)
    return cache.tryAcquireDataKey(instance, partitionOf(k, enc), bytes)
  }

  async dataKey(
    instance: string,
    idOrAlias: string,
    enc: EncodedContext,
    bytes: number | undefined,
    o: CallOptions,
  ): Promise<DataKeyLease> {
    const ctx = this.#ctx
    if (bytes !== undefined && (!Number.isSafeInteger(bytes) || bytes < 0)) {
      throw invalidField('plaintextLength', 'must be a non-negative integer')
    }
    const k = await sealKey(ctx, instance, idOrAlias)
    // A stream of unknown length cannot be checked against the byte bound: it gets a DEK of its own.
    if (bytes === undefined) return lease(await newDataKey(ctx, instance, k, enc.aad, o))
    return this.#cache.acquireDataKey(instance, k.record.id, partitionOf(k, enc), bytes, () =>
      newDataKey(ctx, instance, k, enc.aad, o),
    )
  }

  withMessageDekSync<R>(
    instance: string,
    keyId: string,
    cacheKey: string,
    use: (dek: Buffer, memo: DekMemo | undefined) => R,
  ): R | undefined {
    const cache = this.#cache
    if (cache.peekWith === undefined) return undefined
    const ctx = this.#ctx
    const now = ctx.clock.now()
    const k = ctx.keys.peek(instance, keyId, now)
    if (k === undefined) return undefined
    assertAllowed(ctx, 'unwrap', k.record, now)
    // The DEK is used in place, within this synchronous call: no copy to make and wipe.
    return cache.peekWith(instance, k.record.id, cacheKey, (dek, v, memo) =>
      k.versions.has(v) ? use(dek, memo) : undefined,
    )
  }
}

/** A data key that is not cached: released = zeroed. */
function lease(m: CachedDek): DataKeyLease {
  return {
    ...m,
    release: () => {
      m.dek.zeroize()
    },
  }
}

/** The DEK cache key of a ciphertext (base64) and its AAD; the cache adds the instance and key. */
function cacheKeyOf(ciphertext: string, aad: readonly string[]): string {
  return aad.length === 0 ? ciphertext : `${ciphertext}\u0000${JSON.stringify(aad)}`
}

/** The data-key cache partition of a seal: key, latest version and canonical context. */
function partitionOf(k: CachedKey, enc: EncodedContext): string {
  return `${k.record.id}\u0000${currentVersion(k).version}\u0000${enc.key}`
}
