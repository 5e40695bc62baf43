/**
 * Scheduled deletion (AWS KMS `ScheduleKeyDeletion`): destroys every key whose deletion date has passed —
 * provider objects first, then catalog rows, as a purge does. Driven by scheduler.ts or an operator.
 */
import type { EngineContext } from '../context.js'
import { destroyKey } from '../keys/deletion.js'

export async function runScheduledDeletions(
  ctx: EngineContext,
): Promise<{ destroyed: { instance: string; keyId: string }[] }> {
  const destroyed: { instance: string; keyId: string }[] = []
  for (const due of await ctx.store.listDueDeletions(ctx.clock.now())) {
    await ctx.locks.withKey(due.instance, due.keyId, async () => {
      // Re-read under the lock: the deletion may have been cancelled since the listing.
      const still = await ctx.store.getDeletionSchedule(due.instance, due.keyId)
      if (still === undefined || still.deletionDate > ctx.clock.now()) return
      await destroyKey(ctx, await ctx.keys.load(due.instance, due.keyId, true))
      destroyed.push({ instance: due.instance, keyId: due.keyId })
    })
  }
  return { destroyed }
}
