/**
 * State transitions of a key: one compare-and-set write under the key's lock, checked against the key-state
 * table first. disable/enable live here; deletion.ts uses the same transition for delete and restore.
 * (The transition and the pending-deletion check share this file: lifecycle and deletion both need them.)
 */
import { assertAllowed, concurrentChange, storeCall, type EngineContext } from '../context.js'
import { EngineError, invalidField } from '../errors.js'
import { KeyState, type KeyAction } from '../key-state.js'
import type { KeyEventType, KeyPatch, KeyRecord, UpdateCondition } from '../ports.js'
import type { EnableOptions, KeyInfo, KeyScope } from '../engine-types.js'
import type { CachedKey } from './directory.js'
import { appendKeyEvent } from './events.js'
import { toKeyInfo } from './views.js'

/** The event a committed transition appends to the key's event log. */
const EVENT_OF: Partial<Record<KeyAction, KeyEventType>> = {
  disable: 'disable',
  enable: 'enable',
  delete: 'delete',
  restore: 'restore',
}

/** Extras of {@link transition}. */
export interface TransitionHooks {
  /**
   * Runs under the key's lock after the state check and before the write; throwing refuses the action. When
   * the compare-and-set fails it runs again, so that its refusal (not "changed concurrently") is reported.
   */
  readonly before?: (k: CachedKey) => Promise<void>
  /** Who acts, recorded with the event. */
  readonly by?: string | undefined
}

/**
 * Applies `patchFor`'s patch if the key is still in the state it was read in, after checking `action`
 * against the key-state table.
 * @throws EngineError the table's codes, KEY_ACTION_INVALID_STATE_ERR (changed concurrently, retryable)
 */
export async function transition(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  action: KeyAction,
  patchFor: (r: KeyRecord, now: number, k: CachedKey) => KeyPatch,
  scope: KeyScope = {},
  condition: UpdateCondition = {},
  hooks: TransitionHooks = {},
): Promise<KeyInfo> {
  const k0 = await ctx.keys.resolve(instance, idOrAlias, true, scope.keyRingId)
  return ctx.locks.withKey(instance, k0.record.id, async () => {
    const k = await ctx.keys.load(instance, k0.record.id, true)
    const r = k.record
    if (condition.unlessPendingDeletion === true) await refuseIfPendingDeletion(ctx, instance, r.id)
    assertAllowed(ctx, action, r)
    if (hooks.before !== undefined) await hooks.before(k)
    const now = ctx.clock.now()
    const patch = patchFor(r, now, k)
    const ok = await storeCall(() => ctx.store.updateKey(instance, r.id, r.state, patch, condition))
    ctx.keys.invalidate(instance, r.id)
    if (!ok) {
      // Another process may have scheduled the deletion since the check above: say so, not "retry".
      if (condition.unlessPendingDeletion === true) await refuseIfPendingDeletion(ctx, instance, r.id)
      // ...or created a registration that the hook refuses: its code, not "retry".
      if (hooks.before !== undefined) await hooks.before(k)
      throw concurrentChange(`key: state changed concurrently; ${action} not applied`)
    }
    const fresh = await ctx.keys.load(instance, r.id, true)
    const event = EVENT_OF[action]
    if (event !== undefined) await appendKeyEvent(ctx, fresh, event, hooks.by)
    return toKeyInfo(fresh, ctx.life, ctx.clock.now())
  })
}

/** Suspends a root key (state 1 → 2). */
export function disable(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  scope: KeyScope,
): Promise<KeyInfo> {
  return transition(
    ctx,
    instance,
    idOrAlias,
    'disable',
    (_r, now) => ({ state: KeyState.SUSPENDED, stateChangedAt: now, updatedAt: now }),
    scope,
  )
}

/**
 * Re-activates a suspended root key (state 2 → 1), not within the cooldown and not while pending deletion.
 * The pending-deletion check is part of the compare-and-set, so a ScheduleKeyDeletion by another process
 * cannot slip in between the check and the write.
 */
export async function enable(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  options: EnableOptions,
): Promise<KeyInfo> {
  if (options.cooldown !== undefined && typeof options.cooldown !== 'boolean') {
    throw invalidField('cooldown', 'must be a boolean')
  }
  const cooldown = options.cooldown !== false
  return transition(
    ctx,
    instance,
    idOrAlias,
    'enable',
    (r, now) => {
      if (cooldown && now - r.stateChangedAt < ctx.life.enableCooldownMs) {
        throw new EngineError(
          'KEY_ACTION_INVALID_STATE_ERR',
          'key: its state changed too recently; retry in 30 s',
          {
            retryable: true,
          },
        )
      }
      return { state: KeyState.ACTIVE, stateChangedAt: now, updatedAt: now }
    },
    options,
    { unlessPendingDeletion: true },
  )
}

/** Throws when the key is pending deletion (AWS KMS ScheduleKeyDeletion): enable is refused then. */
async function refuseIfPendingDeletion(ctx: EngineContext, instance: string, keyId: string): Promise<void> {
  if ((await ctx.store.getDeletionSchedule(instance, keyId)) !== undefined) {
    throw new EngineError(
      'KEY_ACTION_INVALID_STATE_ERR',
      'key: is pending deletion; cancel the deletion first',
    )
  }
}
