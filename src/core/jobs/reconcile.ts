/**
 * Reconciliation of provider objects with the catalog (the second half of DESIGN decision 7): objects of
 * creations that never committed are destroyed, objects of this catalog that lost their row are adopted, and
 * objects it cannot place are reported for an operator.
 */
import { randomUUID } from 'node:crypto'
import type { EngineContext } from '../context.js'
import type { ReconcileReport } from '../engine-types.js'

export async function reconcile(ctx: EngineContext): Promise<ReconcileReport> {
  const { store, provider } = ctx
  const now = ctx.clock.now()
  const destroyed: string[] = []
  const adopted: string[] = []
  const unknown: string[] = []
  let inProgress = 0
  const pending = await store.listPending()
  const pendingKey = (i: string, k: string, v: number): string => `${i}\u0000${k}\u0000${v}`
  const pendingMap = new Map(pending.map((p) => [pendingKey(p.instance, p.keyId, p.version), p]))
  const objects = (await provider.listObjects()).filter((o) => o.catalogId === store.catalogId)
  // Objects name catalog, key and version but not the instance; find the key's instance through the pending
  // rows or the catalog.
  const instanceOfKey = new Map<string, string>()
  for (const p of pending) instanceOfKey.set(p.keyId, p.instance)
  for (const o of objects) {
    const inst = instanceOfKey.get(o.keyId) ?? (await store.findInstanceOfKey(o.keyId))
    if (inst === undefined) {
      unknown.push(o.ref)
      continue
    }
    const versions = await store.listVersions(inst, o.keyId)
    const row = versions.find((v) => v.version === o.version)
    if (row?.providerRef === o.ref) continue
    const p = pendingMap.get(pendingKey(inst, o.keyId, o.version))
    if (p !== undefined && now - p.startedAt < ctx.reconcileGraceMs) {
      inProgress++
      continue
    }
    if (row !== undefined || p !== undefined) {
      // Either another writer committed this version with its own object, or the creation never committed:
      // in both cases no ciphertext can name this object.
      await provider.destroyVersion(o.ref)
      destroyed.push(o.ref)
      continue
    }
    const key = await store.getKey(inst, o.keyId)
    if (key === undefined) {
      unknown.push(o.ref)
      continue
    }
    await store.adoptVersion({
      instance: inst,
      keyId: o.keyId,
      version: o.version,
      versionId: o.version === 1 ? o.keyId : randomUUID(),
      providerRef: o.ref,
      createdAt: now,
    })
    adopted.push(o.ref)
    ctx.keys.invalidate(inst, o.keyId)
  }
  for (const p of pending) {
    if (now - p.startedAt >= ctx.reconcileGraceMs) await store.removePending(p.instance, p.keyId, p.version)
  }
  return { destroyed, adopted, unknown, inProgress }
}
