/**
 * Public views of catalog records: what the API shows of a key, a version and a policy. Never key material.
 */
import { KeyState } from '../key-state.js'
import type { KeyInfo, KeyPolicyInfo, KeyVersionInfo, LifecyclePolicy } from '../engine-types.js'
import type { KeyPolicyRecord, KeyVersionRecord } from '../ports.js'
import { effectiveState } from '../key-state.js'
import { currentVersion, type CachedKey } from './directory.js'

/** A key as {@link KeyInfo}, with its dates and windows computed at `now`. */
export function toKeyInfo(k: CachedKey, life: LifecyclePolicy, now: number): KeyInfo {
  const r = k.record
  const rotation = k.policies.find((p) => p.type === 'rotation')
  const v = currentVersion(k)
  const deleted = r.state === KeyState.DESTROYED
  const deletedAt = deleted ? (r.deletedAt ?? r.stateChangedAt) : undefined
  const date = (t: number | undefined): Date | undefined => (t === undefined ? undefined : new Date(t))
  return {
    id: r.id,
    instance: r.instance,
    name: r.name,
    description: r.description,
    extractable: r.extractable,
    imported: r.imported,
    state: effectiveState(r.state, r.expirationDate, now),
    keyRingId: r.keyRingId,
    aliases: k.aliases,
    tags: r.tags,
    createdAt: new Date(r.createdAt),
    createdBy: r.createdBy,
    updatedAt: new Date(r.updatedAt),
    lastRotatedAt: date(r.lastRotatedAt),
    expirationDate: date(r.expirationDate),
    keyVersion: versionInfo(v),
    deleted,
    deletedAt: date(deletedAt),
    deletedBy: r.deletedBy,
    restoreAllowed:
      deletedAt !== undefined &&
      now - deletedAt >= life.restoreNotBeforeMs &&
      now - deletedAt <= life.restoreWindowMs,
    restoreExpirationDate: date(deletedAt === undefined ? undefined : deletedAt + life.restoreWindowMs),
    purgeAllowed: deletedAt !== undefined && now - deletedAt >= life.purgeNotBeforeMs,
    purgeAllowedFrom: date(deletedAt === undefined ? undefined : deletedAt + life.purgeNotBeforeMs),
    purgeScheduledOn: date(deletedAt === undefined ? undefined : deletedAt + life.purgeScheduledAfterMs),
    rotation:
      rotation === undefined
        ? undefined
        : { enabled: rotation.enabled, intervalMonth: rotation.intervalMonth },
    dualAuthDelete: dualAuthInfo(k, now, life.dualAuthWindowMs),
  }
}

/** A version as {@link KeyVersionInfo}. */
export function versionInfo(v: KeyVersionRecord): KeyVersionInfo {
  return { id: v.versionId, number: v.version, createdAt: new Date(v.createdAt) }
}

/** A policy as {@link KeyPolicyInfo}. */
export function policyInfo(p: KeyPolicyRecord): KeyPolicyInfo {
  return {
    type: p.type,
    id: p.policyId,
    enabled: p.enabled,
    intervalMonth: p.intervalMonth,
    createdAt: new Date(p.createdAt),
    createdBy: p.createdBy,
    updatedAt: new Date(p.updatedAt),
    updatedBy: p.updatedBy,
  }
}

/**
 * The dual-authorization state of a key. An authorisation counts only until it expires and only if it was
 * given after the key's last state change: one given before a delete (or a disable) never carries over to
 * the restored (or re-enabled) key, even if clearing it after the delete did not happen.
 */
export function dualAuthInfo(k: CachedKey, now: number, windowMs: number): KeyInfo['dualAuthDelete'] {
  const p = k.policies.find((x) => x.type === 'dualAuthDelete')
  if (p?.enabled !== true) return { enabled: false, keySetForDeletion: undefined, authExpiration: undefined }
  const valid =
    p.authBy !== undefined &&
    p.authExpiresAt !== undefined &&
    p.authExpiresAt > now &&
    p.authExpiresAt - windowMs >= k.record.stateChangedAt
  return {
    enabled: true,
    keySetForDeletion: valid,
    authExpiration: valid && p.authExpiresAt !== undefined ? new Date(p.authExpiresAt) : undefined,
  }
}
