/**
 * The catalog's key-region role ({@link KeyRegionStore}) as the engine hands it out: only when the store
 * implements it, every call refused on a closed engine and its untyped failures turned into STORE_ERROR.
 */
import { checkOpen, storeCall, type EngineContext } from '../context.js'
import type { KeyRegionStore } from '../ports-key-regions.js'

const METHODS = ['listKeyRegions', 'listInstanceKeyRegions', 'insertKeyRegion', 'setKeyRegionPolicy'] as const

/** True when `store` implements every method of {@link KeyRegionStore}. */
function hasKeyRegions(store: object): store is KeyRegionStore {
  return METHODS.every((m) => typeof (store as Record<string, unknown>)[m] === 'function')
}

/** The store's key-region role behind the engine's guards, or undefined when the store has none. */
export function keyRegionRole(ctx: EngineContext): KeyRegionStore | undefined {
  const store = ctx.store
  if (!hasKeyRegions(store)) return undefined
  const call = <T>(op: string, fn: () => Promise<T>): Promise<T> => {
    checkOpen(ctx, op)
    return storeCall(fn)
  }
  return {
    listKeyRegions: (instance, keyId) => call('listKeyRegions', () => store.listKeyRegions(instance, keyId)),
    listInstanceKeyRegions: (instance) =>
      call('listInstanceKeyRegions', () => store.listInstanceKeyRegions(instance)),
    insertKeyRegion: (r) => call('insertKeyRegion', () => store.insertKeyRegion(r)),
    setKeyRegionPolicy: (instance, keyId, region, policy, updatedAt) =>
      call('setKeyRegionPolicy', () => store.setKeyRegionPolicy(instance, keyId, region, policy, updatedAt)),
  }
}
