/**
 * Deleting keys, both ways the APIs know: Key Protect's soft delete (state 5, restorable for 30 days,
 * purgeable after 4 h, with optional dual authorization) and AWS KMS's scheduled deletion (suspended now,
 * destroyed after 7–30 days). Destroying a key removes its provider objects first, then its catalog rows.
 */
import { assertAllowed, concurrentChange, storeCall, type EngineContext } from '../context.js'
import { EngineError, invalidField } from '../errors.js'
import { assertActionAllowed, KeyState } from '../key-state.js'
import type { KeyPatch, KeyRecord } from '../ports.js'
import { optionsObject, validateActor } from '../validate.js'
import { DAY, type KeyInfo, type KeyScope, type SecureImportInput } from '../engine-types.js'
import type { CachedKey } from './directory.js'
import { checkMaterialMatches, checkSealedMaterialMatches } from './provisioning.js'
import { secureImportOf } from './import-token.js'
import { checkKeyDeletable } from './registrations.js'
import { transition } from './transitions.js'
import { dualAuthInfo, toKeyInfo } from './views.js'

/**
 * Soft-deletes a key (state 5); with dual authorization, only a second user after a first authorised it.
 * A key with registrations is refused unless `force`, which removes them once the key is deleted; a
 * registration with preventKeyDeletion refuses it even forced (registrations.ts `checkKeyDeletable`).
 */
export async function deleteKey(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  options: { deletedBy?: string; force?: boolean } & KeyScope,
): Promise<KeyInfo> {
  options = optionsObject(options)
  const deletedBy = validateActor(options.deletedBy, 'deletedBy')
  if (options.force !== undefined && typeof options.force !== 'boolean') {
    throw invalidField('force', 'must be a boolean')
  }
  const force = options.force === true
  let dualAuth = false
  let removeRegistrations = false
  const info = await transition(
    ctx,
    instance,
    idOrAlias,
    'delete',
    (_r, now, k) => {
      const d = dualAuthInfo(k, now, ctx.life.dualAuthWindowMs)
      if (d.enabled) {
        dualAuth = true
        const by = k.policies.find((p) => p.type === 'dualAuthDelete')?.authBy
        if (d.keySetForDeletion !== true || by === undefined) {
          throw new EngineError(
            'AUTHORIZATIONS_NOT_MET',
            'key: has dual authorization for deletes; another user must set it for deletion first',
          )
        }
        if (deletedBy === undefined || deletedBy === by) {
          throw new EngineError(
            'AUTHORIZATIONS_NOT_MET',
            'key: the user who set it for deletion cannot also delete it (dual authorization)',
          )
        }
      }
      return { state: KeyState.DESTROYED, stateChangedAt: now, updatedAt: now, deletedAt: now, deletedBy }
    },
    options,
    // The registration rule again in the write itself: another process may register meanwhile.
    { unlessRegistered: force ? 'protected' : 'any' },
    {
      before: async (k) => {
        removeRegistrations = await checkKeyDeletable(ctx, instance, k.record.id, force)
      },
      by: deletedBy,
    },
  )
  if (removeRegistrations) {
    await storeCall(() => ctx.store.deleteKeyRegistrations(instance, info.id))
  }
  if (dualAuth) {
    // The authorisation is used up: a restored key needs a new one.
    await storeCall(() => ctx.store.setDeletionAuth(instance, info.id, undefined, undefined))
    ctx.keys.invalidate(instance, info.id)
    return toKeyInfo(await ctx.keys.resolve(instance, info.id, true), ctx.life, ctx.clock.now())
  }
  return info
}

/** Sets (`set`) or withdraws the first authorisation of a two-person delete. */
export async function deletionAuth(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  options: { by?: string } & KeyScope,
  set: boolean,
): Promise<KeyInfo> {
  options = optionsObject(options)
  const by = validateActor(options.by, 'by')
  if (set && by === undefined) {
    throw new EngineError('MISSING_FIELD_ERR', 'by: the authorising user is required', {
      target: { type: 'field', name: 'by' },
    })
  }
  const k0 = await ctx.keys.resolve(instance, idOrAlias, true, options.keyRingId)
  return ctx.locks.withKey(instance, k0.record.id, async () => {
    const k = await ctx.keys.load(instance, k0.record.id, true)
    assertAllowed(ctx, 'setForDeletion', k.record)
    const now = ctx.clock.now()
    if (!dualAuthInfo(k, now, ctx.life.dualAuthWindowMs).enabled) {
      throw new EngineError(
        'NOT_DUAL_AUTH_ERR',
        'key: is not dual-auth enabled and cannot be set for deletion',
      )
    }
    await storeCall(() =>
      ctx.store.setDeletionAuth(
        instance,
        k.record.id,
        set ? by : undefined,
        set ? now + ctx.life.dualAuthWindowMs : undefined,
      ),
    )
    ctx.keys.invalidate(instance, k.record.id)
    return toKeyInfo(await ctx.keys.load(instance, k.record.id, true), ctx.life, ctx.clock.now())
  })
}

/** Restores a deleted key to Active within the restore window; imported root keys need their material. */
export async function restoreKey(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  options: { payload?: Uint8Array; secureImport?: SecureImportInput } & KeyScope,
): Promise<KeyInfo> {
  options = optionsObject(options)
  const k = await ctx.keys.resolve(instance, idOrAlias, true, options.keyRingId)
  const r = k.record
  // A key being purged is refused here (KEY_PURGE_IN_PROGRESS_ERR), and again by the catalog's
  // compare-and-set if another process marks it between this check and the write.
  assertAllowed(ctx, 'restore', r)
  const now = ctx.clock.now()
  const deletedAt = r.deletedAt ?? r.stateChangedAt
  if (now - deletedAt < ctx.life.restoreNotBeforeMs) {
    throw new EngineError('REQ_TOO_EARLY_ERR', 'key: was deleted less than 30 s ago; retry later', {
      retryable: true,
    })
  }
  if (now - deletedAt > ctx.life.restoreWindowMs) {
    throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'key: the restore window has passed')
  }
  const rootImported = r.imported && !r.extractable
  const secure = await secureImportOf(ctx, instance, options.secureImport, options.payload, !rootImported)
  if (secure !== undefined) {
    await checkSealedMaterialMatches(ctx, k, secure)
  } else if (rootImported) {
    if (options.payload === undefined) {
      throw new EngineError(
        'MISSING_FIELD_ERR',
        'payload: an imported key is restored with its original material',
        {
          target: { type: 'field', name: 'payload' },
        },
      )
    }
    await checkMaterialMatches(ctx, k, options.payload)
  } else if (options.payload !== undefined) {
    throw invalidField('payload', 'only imported root keys take material at restore')
  }
  return transition(ctx, instance, r.id, 'restore', (_r, t) => ({
    state: KeyState.ACTIVE,
    stateChangedAt: t,
    updatedAt: t,
    deletedAt: undefined,
    deletedBy: undefined,
  }))
}

/** Permanently destroys a deleted key, at least `purgeNotBeforeMs` after its deletion. */
export async function purgeKey(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  scope: KeyScope,
): Promise<void> {
  const k0 = await ctx.keys.resolve(instance, idOrAlias, true, optionsObject(scope).keyRingId)
  await ctx.locks.withKey(instance, k0.record.id, async () => {
    const k = await ctx.keys.load(instance, k0.record.id, true)
    const r = k.record
    assertAllowed(ctx, 'purge', r)
    // A purge that already started (marked) only goes forward: its time check passed when it started.
    const deletedAt = r.deletedAt ?? r.stateChangedAt
    if (r.purgingSince === undefined && ctx.clock.now() - deletedAt < ctx.life.purgeNotBeforeMs) {
      throw new EngineError('REQ_TOO_EARLY_ERR', 'key: can be purged 4 h after deletion')
    }
    await destroyKey(ctx, k)
  })
}

/**
 * Destroys a key for good (purge and scheduled deletion), crash-safely: first the durable "purging" mark
 * (state 5, `purgingSince`), then every provider object, then the catalog rows. A crash or a provider failure
 * anywhere after the mark leaves a key that can only go forward (restore refuses it); running this again —
 * a retried purge, the scheduled-deletion job, or reconcile() — finishes it, since destroying an object that
 * is already gone succeeds. The caller holds the key's lock.
 * @throws EngineError KEY_ACTION_INVALID_STATE_ERR (retryable) when the key changed concurrently, and the provider's errors
 */
export async function destroyKey(ctx: EngineContext, k: CachedKey): Promise<void> {
  const r = k.record
  const { instance, id } = r
  if (r.purgingSince === undefined) {
    const now = ctx.clock.now()
    const patch: KeyPatch =
      r.state === KeyState.DESTROYED
        ? { updatedAt: now }
        : { state: KeyState.DESTROYED, stateChangedAt: now, updatedAt: now, deletedAt: now }
    const ok = await storeCall(() => ctx.store.markPurging(instance, id, r.state, patch, now))
    ctx.keys.invalidate(instance, id)
    if (!ok) throw concurrentChange('key: state changed concurrently; purge not started')
  }
  // The version rows as the catalog has them now (the mark stops any new one): standard keys have none.
  const versions = await storeCall(() => ctx.store.listVersions(instance, id))
  for (const v of versions) await ctx.provider.destroyVersion(v.providerRef)
  await storeCall(() => ctx.store.deleteKeyRows(instance, id))
  ctx.keys.invalidate(instance, id)
}

/** Schedules a root key's deletion `pendingWindowDays` (7–30) from now; suspends it at once. */
export async function scheduleKeyDeletion(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  options: { pendingWindowDays?: number },
): Promise<{ deletionDate: Date }> {
  options = optionsObject(options)
  const days = options.pendingWindowDays ?? 30
  if (typeof days !== 'number' || !Number.isInteger(days) || days < 7 || days > 30) {
    throw invalidField('pendingWindowDays', 'must be an integer 7-30')
  }
  const k0 = await ctx.keys.resolve(instance, idOrAlias, true)
  return ctx.locks.withKey(instance, k0.record.id, async () => {
    const r = (await ctx.keys.load(instance, k0.record.id, true)).record
    // The stored state, not the effective one: an expired Active key can still be scheduled for deletion.
    assertActionAllowed('scheduleDeletion', r.state, r.extractable)
    if ((await ctx.store.getDeletionSchedule(instance, r.id)) !== undefined) {
      throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'key: is already pending deletion')
    }
    const now = ctx.clock.now()
    const deletionDate = now + days * DAY
    const patch: KeyPatch =
      r.state === KeyState.SUSPENDED
        ? { updatedAt: now }
        : { state: KeyState.SUSPENDED, stateChangedAt: now, updatedAt: now }
    const ok = await storeCall(() => ctx.store.scheduleDeletion(instance, r.id, r.state, patch, deletionDate))
    ctx.keys.invalidate(instance, r.id)
    if (!ok) throw concurrentChange('key: state changed concurrently')
    return { deletionDate: new Date(deletionDate) }
  })
}

/** Cancels a scheduled deletion; the key stays suspended until enabled. */
export async function cancelKeyDeletion(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
): Promise<void> {
  const k0 = await ctx.keys.resolve(instance, idOrAlias, true)
  await ctx.locks.withKey(instance, k0.record.id, async () => {
    refuseIfPurging((await ctx.keys.load(instance, k0.record.id, true)).record, 'cancel deletion')
    const ok = await storeCall(() => ctx.store.cancelDeletion(instance, k0.record.id))
    ctx.keys.invalidate(instance, k0.record.id)
    if (!ok) throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'key: is not pending deletion')
  })
}

/** When a key is scheduled to be deleted; undefined when it is not. */
export async function getKeyDeletionDate(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
): Promise<Date | undefined> {
  const k = await ctx.keys.resolve(instance, idOrAlias, true)
  const s = await ctx.store.getDeletionSchedule(instance, k.record.id)
  return s === undefined ? undefined : new Date(s.deletionDate)
}

/** Refuses an action outside the key-state table on a key being purged. */
function refuseIfPurging(r: KeyRecord, action: string): void {
  if (r.purgingSince !== undefined) {
    throw new EngineError(
      'KEY_PURGE_IN_PROGRESS_ERR',
      `key: is being purged; ${action} is refused (run the purge again, or reconcile, to finish it)`,
    )
  }
}
