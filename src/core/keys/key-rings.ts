/**
 * Key rings (Key Protect): every instance has `default`; keys live in exactly one ring and can be moved.
 * The ring scope of a request (`X-Kms-Key-Ring`) is checked where keys are resolved (directory.ts).
 */
import { assertAllowed, concurrentChange, storeCall, type EngineContext } from '../context.js'
import { EngineError, invalidField } from '../errors.js'
import { optionsObject, validateActor, validateInstance, validateKeyRingId } from '../validate.js'
import type { KeyInfo, KeyRingInfo } from '../engine-types.js'
import { toKeyInfo } from './views.js'

/** Moves a key to another ring; `expectedRing`, when given, must be its current ring. */
export async function moveKey(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  keyRingId: string,
  options: { expectedRing?: string },
): Promise<KeyInfo> {
  const to = validateKeyRingId(keyRingId)
  const expected = optionsObject(options).expectedRing
  const k0 = await ctx.keys.resolve(instance, idOrAlias, true)
  return ctx.locks.withKey(instance, k0.record.id, async () => {
    const r = (await ctx.keys.load(instance, k0.record.id, true)).record
    assertAllowed(ctx, 'move', r)
    if (expected !== undefined && expected !== r.keyRingId) {
      throw new EngineError('KEY_NOT_FOUND_ERR', 'key: not found in the given key ring')
    }
    if (to !== r.keyRingId) {
      const ok = await storeCall(() => ctx.store.moveKey(instance, r.id, r.keyRingId, to, ctx.clock.now()))
      ctx.keys.invalidate(instance, r.id)
      if (!ok) throw concurrentChange('key: moved concurrently; retry')
    }
    return toKeyInfo(await ctx.keys.load(instance, r.id, true), ctx.life, ctx.clock.now())
  })
}

/** Creates a key ring (`default` is reserved); `created` false when it existed. */
export async function createKeyRing(
  ctx: EngineContext,
  instance: string,
  id: string,
  options: { createdBy?: string },
): Promise<{ created: boolean }> {
  validateInstance(instance)
  const ring = validateKeyRingId(id)
  if (ring === 'default') throw invalidField('keyRingID', '"default" is reserved')
  const createdBy = validateActor(optionsObject(options).createdBy, 'createdBy')
  const res = await storeCall(() =>
    ctx.store.createKeyRing(
      { instance, id: ring, createdAt: ctx.clock.now(), createdBy },
      ctx.life.maxKeyRingsPerInstance,
    ),
  )
  return { created: res === 'created' }
}

/** The instance's key rings, `default` first. */
export async function listKeyRings(ctx: EngineContext, instance: string): Promise<KeyRingInfo[]> {
  validateInstance(instance)
  const rings = await storeCall(() => ctx.store.listKeyRings(instance))
  return [
    { id: 'default', createdAt: undefined, createdBy: undefined },
    ...rings.map((r) => ({ id: r.id, createdAt: new Date(r.createdAt), createdBy: r.createdBy })),
  ]
}

/** Deletes an empty ring; with `force`, a ring whose keys are all deleted (they move to `default`). */
export async function deleteKeyRing(
  ctx: EngineContext,
  instance: string,
  id: string,
  options: { force?: boolean },
): Promise<void> {
  validateInstance(instance)
  const ring = validateKeyRingId(id)
  if (ring === 'default') throw invalidField('keyRingID', '"default" cannot be deleted')
  const force = optionsObject(options).force ?? false
  if (typeof force !== 'boolean') throw invalidField('force', 'must be a boolean')
  const ok = await storeCall(() => ctx.store.deleteKeyRing(instance, ring, force, ctx.clock.now()))
  if (!ok) throw new EngineError('KEY_RING_NOT_FOUND_ERR', `keyRingID: "${ring}" does not exist`)
  ctx.keys.clear() // deleted keys moved to `default`
}
