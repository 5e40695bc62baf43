/**
 * The engine's wiring and the few helpers every operation module shares. `createEngine` builds one
 * {@link EngineContext}; operation modules (keys/, wrap/, envelope/, jobs/) receive it as their first argument
 * and never call the facade (engine.ts), so a rule runs once per request however it is reached.
 */
import { EngineError, toEngineError } from './errors.js'
import { assertActionAllowed, effectiveState, type KeyAction, type KeyStateValue } from './key-state.js'
import type { LifecyclePolicy } from './engine-types.js'
import type { BatchRunner, Clock, DekCache, KeyRecord, MetadataStore, RootKeyProvider } from './ports.js'
import type { CachedKey, KeyDirectory } from './keys/directory.js'
import type { InstancePolicyCache } from './keys/instance-policies.js'
import type { KeyLocks } from './keys/locks.js'
import type { UsageMeter } from './wrap/usage-meter.js'
import type { DekWrapper } from './wrap/dek-wrapper.js'
import type { DekSource } from './envelope/dek-source.js'

/** What every operation module receives (explicit wiring, STYLE §2). */
export interface EngineContext {
  readonly provider: RootKeyProvider
  readonly store: MetadataStore
  readonly clock: Clock
  readonly life: LifecyclePolicy
  /** Key metadata and alias cache over the catalog. */
  readonly keys: KeyDirectory
  /** Each instance's policies (allowedIP, keyCreateImportAccess, defaults for new keys), cached. */
  readonly instancePolicies: InstancePolicyCache
  /** Per-key serialisation of read-modify-write operations. */
  readonly locks: KeyLocks
  /** The AES-GCM invocation budget per root-key version. */
  readonly usage: UsageMeter
  /** The one path from (version, DEK, AAD) to ciphertext v1 and back. */
  readonly wrapper: DekWrapper
  /** Where DEKs come from: direct provider calls, or through the DEK cache. */
  readonly deks: DekSource
  readonly dekCache: DekCache | undefined
  readonly pool: BatchRunner | undefined
  /** Pending provider objects younger than this are left alone by reconciliation. */
  readonly reconcileGraceMs: number
  /** In-flight creations of an instance's system key (standard-key protection), one per instance. */
  readonly systemKeyInflight: Map<string, Promise<KeyRecord>>
  /** Set once by close(); every operation refuses to start afterwards. */
  closed: boolean
}

/** Runs an operation: refuses it on a closed engine and turns any failure into a typed EngineError. */
export async function guard<T>(ctx: EngineContext, op: string, fn: () => Promise<T>): Promise<T> {
  if (ctx.closed) throw new EngineError('ENGINE_CLOSED', `${op}: the engine is closed`)
  try {
    return await fn()
  } catch (err) {
    throw toEngineError(err, op)
  }
}

/** A catalog write: any failure that is not already typed becomes STORE_ERROR (with its cause). */
export async function storeCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof EngineError) throw err
    throw new EngineError('STORE_ERROR', 'catalog: write failed', { cause: err })
  }
}

/** Throws ENGINE_CLOSED on a closed engine (the hot paths check this without an async frame). */
export function checkOpen(ctx: EngineContext, op: string): void {
  if (ctx.closed) throw new EngineError('ENGINE_CLOSED', `${op}: the engine is closed`)
}

/** Throws ABORTED when the caller's signal fired. */
export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new EngineError('ABORTED', 'operation: aborted by the caller')
}

/** The key's state now (an expired key is Deactivated). */
export function stateOf(ctx: EngineContext, r: KeyRecord): KeyStateValue {
  return effectiveState(r.state, r.expirationDate, ctx.clock.now())
}

/**
 * Throws unless `action` is allowed on the key now (the key-state table in key-state.ts).
 * @throws EngineError KEY_DELETED_ERR, KEY_ACTION_INVALID_STATE_ERR, KEY_ROOT_REQ_ERR, KEY_PURGE_IN_PROGRESS_ERR, and the action's own code
 */
export function assertAllowed(
  ctx: EngineContext,
  action: KeyAction,
  r: KeyRecord,
  now: number = ctx.clock.now(),
): void {
  assertActionAllowed(
    action,
    effectiveState(r.state, r.expirationDate, now),
    r.extractable,
    r.purgingSince !== undefined,
  )
}

/**
 * The key for `action`, from memory and checked against the key-state table, without any await; undefined
 * when it must be read from the catalog ({@link usableKey}). The hot paths call `usableKeyNow(…) ??
 * (await usableKey(…))`, so that a cache hit costs no promise.
 */
export function usableKeyNow(
  ctx: EngineContext,
  action: KeyAction,
  instance: string,
  idOrAlias: string,
  now: number,
  keyRingId?: string,
): CachedKey | undefined {
  const k = ctx.keys.peek(instance, idOrAlias, now, keyRingId)
  if (k !== undefined) assertAllowed(ctx, action, k.record, now)
  return k
}

/**
 * The key for `action` from the catalog (or a fill of the cache), checked against the key-state table.
 * @throws EngineError KEY_NOT_FOUND_ERR, the table's codes
 */
export async function usableKey(
  ctx: EngineContext,
  action: KeyAction,
  instance: string,
  idOrAlias: string,
  keyRingId?: string,
): Promise<CachedKey> {
  const k = await ctx.keys.resolve(instance, idOrAlias, false, keyRingId)
  assertAllowed(ctx, action, k.record)
  return k
}

/** The error of a compare-and-set write that lost to a concurrent writer (retryable). */
export function concurrentChange(message: string): EngineError {
  return new EngineError('KEY_ACTION_INVALID_STATE_ERR', message, { retryable: true })
}
