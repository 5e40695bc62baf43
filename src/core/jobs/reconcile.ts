/**
 * Reconciliation of provider objects with the catalog (the second half of DESIGN decision 7): interrupted
 * purges are finished, objects of creations that never committed are destroyed, objects of this catalog that
 * lost their row are adopted, objects it cannot place are reported for an operator, and so are catalog
 * versions whose object is missing.
 */
import { randomUUID } from 'node:crypto'
import type { EngineContext } from '../context.js'
import { isEngineError } from '../errors.js'
import type { ReconcileReport } from '../engine-types.js'
import { destroyKey } from '../keys/deletion.js'

export async function reconcile(ctx: EngineContext): Promise<ReconcileReport> {
  const { store, provider } = ctx
  const purged = await finishPurges(ctx)
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
  const missing = await missingVersions(ctx, new Set(objects.map((o) => o.ref)))
  return { destroyed, adopted, unknown, inProgress, purged, missing }
}

/** Finishes every purge that was marked and not completed (a crash, or a provider failure mid-way). */
async function finishPurges(ctx: EngineContext): Promise<ReconcileReport['purged']> {
  const purged: { instance: string; keyId: string }[] = []
  for (const p of await ctx.store.listPurging()) {
    await ctx.locks.withKey(p.instance, p.keyId, async () => {
      const k = await ctx.keys.load(p.instance, p.keyId, true).catch((err: unknown) => {
        if (isEngineError(err, 'KEY_NOT_FOUND_ERR')) return undefined
        throw err
      })
      // Finished meanwhile (by another process, or by a retried purge).
      if (k?.record.purgingSince === undefined) return
      await destroyKey(ctx, k)
      purged.push({ instance: p.instance, keyId: p.keyId })
    })
  }
  return purged
}

/**
 * Catalog versions whose provider object does not exist. `listed` (the refs listed at the start) sorts out
 * the versions that are fine; the others are checked against a second listing taken after the versions were
 * read — a committed version's object existed before its row, so one absent from that listing was destroyed
 * — and against their key: a key marked for purging, or gone, loses its objects on purpose.
 */
async function missingVersions(
  ctx: EngineContext,
  listed: ReadonlySet<string>,
): Promise<ReconcileReport['missing']> {
  const candidates = (await ctx.store.listAllVersions()).filter((v) => !listed.has(v.providerRef))
  if (candidates.length === 0) return []
  const present = new Set(
    (await ctx.provider.listObjects()).filter((o) => o.catalogId === ctx.store.catalogId).map((o) => o.ref),
  )
  const missing: { instance: string; keyId: string; version: number; ref: string }[] = []
  const keyLive = new Map<string, boolean>()
  for (const v of candidates) {
    if (present.has(v.providerRef)) continue
    const kk = `${v.instance}\u0000${v.keyId}`
    let live = keyLive.get(kk)
    if (live === undefined) {
      const r = await ctx.store.getKey(v.instance, v.keyId)
      live = r !== undefined && r.purgingSince === undefined
      keyLive.set(kk, live)
    }
    if (live) missing.push({ instance: v.instance, keyId: v.keyId, version: v.version, ref: v.providerRef })
  }
  return missing
}
