/**
 * Automatic rotation: every root key whose rotation policy is due (`intervalMonth` × 30 days after its last
 * rotation or creation) is rotated once, however overdue. Driven by scheduler.ts or an operator.
 */
import { storeCall, type EngineContext } from '../context.js'
import { toEngineError, type ErrorCode } from '../errors.js'
import { effectiveState, KeyState } from '../key-state.js'
import { DAY } from '../engine-types.js'
import { rotate } from '../keys/lifecycle.js'

export async function rotateDueKeys(
  ctx: EngineContext,
): Promise<{ rotated: string[]; skipped: string[]; failed: { id: string; code: ErrorCode }[] }> {
  const now = ctx.clock.now()
  const rotated: string[] = []
  const skipped: string[] = []
  const failed: { id: string; code: ErrorCode }[] = []
  for (const p of await storeCall(() => ctx.store.listEnabledRotationPolicies())) {
    if (p.intervalMonth === undefined) continue
    const r = await ctx.store.getKey(p.instance, p.keyId)
    if (r === undefined || r.extractable) continue
    const last = r.lastRotatedAt ?? r.createdAt
    if (now - last < p.intervalMonth * 30 * DAY) continue
    const state = effectiveState(r.state, r.expirationDate, now)
    // Imported keys need new material: reported, not rotated.
    if (r.imported || (state !== KeyState.ACTIVE && state !== KeyState.DEACTIVATED)) {
      skipped.push(r.id)
      continue
    }
    try {
      await rotate(ctx, p.instance, r.id, {})
      rotated.push(r.id)
    } catch (err) {
      failed.push({ id: r.id, code: toEngineError(err, 'rotateDueKeys').code })
    }
  }
  return { rotated, skipped, failed }
}
