/**
 * The automatic purge (Key Protect): a key deleted (state 5) more than the lifecycle's
 * `purgeScheduledAfterMs` (90 days) ago — the `purgeScheduledOn` date its views advertise — is destroyed
 * for good, through the crash-safe purge protocol of {@link destroyKey}: the durable purging mark first,
 * then its provider objects, then its catalog rows. A pass that stops half-way (crash, provider outage)
 * leaves the mark; the next pass (the key is still in state 5, still overdue) or reconcile() finishes it.
 * Driven by scheduler.ts.
 */
import type { EngineContext } from '../context.js'
import type { AutoPurgeResult } from '../engine-types.js'
import { isEngineError, toEngineError } from '../errors.js'
import { KeyState } from '../key-state.js'
import { destroyKey } from '../keys/deletion.js'

/** Keys looked at per listing; a pass lists again until nothing overdue is left (or only failures). */
const BATCH = 500

export async function runAutoPurge(ctx: EngineContext): Promise<AutoPurgeResult> {
  const purged: { instance: string; keyId: string; deletedAt: Date }[] = []
  const failed: AutoPurgeResult['failed'][number][] = []
  const tried = new Set<string>()
  const cutoff = ctx.clock.now() - ctx.life.purgeScheduledAfterMs
  for (;;) {
    const due = (await ctx.store.listDeletedBefore(cutoff, BATCH + tried.size)).filter(
      (d) => !tried.has(`${d.instance}\u0000${d.keyId}`),
    )
    if (due.length === 0) break
    for (const d of due) {
      tried.add(`${d.instance}\u0000${d.keyId}`)
      try {
        await ctx.locks.withKey(d.instance, d.keyId, async () => {
          // Re-read under the lock: purged, restored or re-deleted since the listing.
          const k = await ctx.keys.load(d.instance, d.keyId, true).catch((err: unknown) => {
            if (isEngineError(err, 'KEY_NOT_FOUND_ERR')) return undefined
            throw err
          })
          if (k === undefined || k.record.state !== KeyState.DESTROYED) return
          const deletedAt = k.record.deletedAt ?? k.record.stateChangedAt
          if (deletedAt > cutoff) return
          await destroyKey(ctx, k)
          purged.push({ instance: d.instance, keyId: d.keyId, deletedAt: new Date(deletedAt) })
        })
      } catch (err) {
        const e = toEngineError(err, 'automatic purge')
        failed.push({ instance: d.instance, keyId: d.keyId, code: e.code, message: e.message })
      }
    }
  }
  return { purged, failed }
}
