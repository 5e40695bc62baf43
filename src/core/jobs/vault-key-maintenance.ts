/**
 * The maintenance pass of vault keys (the Azure-Key-Vault-compatible API's keys), driven by scheduler.ts:
 *
 * - **Automatic purge**: a soft-deleted key whose `scheduledPurgeDate` (its `purgeAt`, deletion + the
 *   retention days) has come is purged as `DELETE /deletedkeys/{name}` would: its device objects destroyed,
 *   then its catalog rows removed (a pass stopped between the two is finished by the next: destroying is
 *   idempotent). A key recovered since the listing is left alone.
 * - **Orphan sweep**: a device object is made before its catalog row (vault-keys.ts `#addVersion`); a crash
 *   between the two leaves an object no row refers to. An object of this catalog without a row is destroyed
 *   when the previous pass of this maintenance also found it without one: a version being created right now
 *   (object made, row a few milliseconds away) is never taken, as passes are `intervalMs` (an hour) apart.
 *
 * Failures are reported per key or object, never thrown: the next pass retries them.
 */
import { toEngineError, type ErrorCode } from '../errors.js'
import type { VaultKeyBackend, VaultKeyStore } from '../ports-vault-keys.js'
import type { VaultKeys } from '../vault-keys/vault-keys.js'

/** What one pass did. */
export interface VaultKeyMaintenanceResult {
  /** Keys purged at their scheduled purge date. */
  readonly purged: readonly { readonly instance: string; readonly name: string; readonly purgeAt: Date }[]
  /** Orphaned device objects destroyed (their `ref`). */
  readonly swept: readonly string[]
  /** Orphans seen for the first time: destroyed by the next pass if still without a row. */
  readonly pending: number
  readonly failed: readonly {
    readonly what: 'purge' | 'sweep'
    readonly instance?: string
    readonly name?: string
    readonly ref?: string
    readonly code: ErrorCode
    readonly message: string
  }[]
}

/** Options of {@link createVaultKeyMaintenance}. */
export interface VaultKeyMaintenanceOptions {
  readonly vault: VaultKeys
  readonly store: VaultKeyStore
  readonly backend: VaultKeyBackend
  readonly clock?: { now(): number }
}

/** One pass at a time; the sweep remembers the orphans of the previous pass. */
export interface VaultKeyMaintenance {
  run(): Promise<VaultKeyMaintenanceResult>
}

/** Keys purged per listing; a pass lists again until nothing due is left (or only failures). */
const BATCH = 200

export function createVaultKeyMaintenance(options: VaultKeyMaintenanceOptions): VaultKeyMaintenance {
  const { vault, store, backend } = options
  const clock = options.clock ?? { now: () => Date.now() }
  let candidates = new Set<string>()
  let running: Promise<unknown> = Promise.resolve()

  async function pass(): Promise<VaultKeyMaintenanceResult> {
    const purged: { instance: string; name: string; purgeAt: Date }[] = []
    const swept: string[] = []
    const failed: VaultKeyMaintenanceResult['failed'][number][] = []
    const now = clock.now()
    const tried = new Set<string>()
    for (;;) {
      const due = (await store.listVaultKeysPurgeDue(now, BATCH + tried.size)).filter(
        (k) => !tried.has(`${k.instance}\u0000${k.name.toLowerCase()}`),
      )
      if (due.length === 0) break
      for (const k of due) {
        tried.add(`${k.instance}\u0000${k.name.toLowerCase()}`)
        try {
          // Re-read: recovered (or purged by a caller) since the listing.
          const current = await store.getVaultKey(k.instance, k.name)
          if (current?.deleted === undefined || current.deleted.purgeAt > now) continue
          await vault.purge(k.instance, k.name)
          purged.push({ instance: k.instance, name: k.name, purgeAt: new Date(current.deleted.purgeAt) })
        } catch (err) {
          const e = toEngineError(err, 'vault key purge')
          if (e.code === 'KEY_NOT_FOUND_ERR') continue // gone meanwhile
          failed.push({ what: 'purge', instance: k.instance, name: k.name, code: e.code, message: e.message })
        }
      }
    }
    const next = new Set<string>()
    try {
      for (const o of await backend.listVaultKeyObjects()) {
        if (o.catalogId !== store.catalogId || (await store.vaultKeyRefInUse(o.ref))) continue
        if (!candidates.has(o.ref)) {
          next.add(o.ref)
          continue
        }
        try {
          await backend.destroyVaultKey(o.ref)
          swept.push(o.ref)
        } catch (err) {
          const e = toEngineError(err, 'vault key sweep')
          next.add(o.ref)
          failed.push({ what: 'sweep', ref: o.ref, code: e.code, message: e.message })
        }
      }
    } catch (err) {
      const e = toEngineError(err, 'vault key sweep')
      failed.push({ what: 'sweep', code: e.code, message: e.message })
      for (const r of candidates) next.add(r) // nothing learnt: keep what was known
    }
    candidates = next
    return { purged, swept, pending: next.size, failed }
  }

  return {
    run() {
      const r = running.then(pass, pass)
      running = r.catch(() => undefined)
      return r
    },
  }
}
