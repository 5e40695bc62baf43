/**
 * The catalog's row shapes, as better-sqlite3 returns them (snake_case columns, 0/1 for booleans, NULL for
 * absent values), and the mappers between rows and the records of `core/ports.ts`. The column names are
 * those of the migrations in `migrations.ts`; both change only together, with a new migration.
 */
import type { KeyStateValue } from '../../core/key-state.js'
import type {
  AliasNameRecord,
  KeyPatch,
  KeyPolicyRecord,
  KeyRecord,
  KeyRingRecord,
  KeyVersionRecord,
} from '../../core/ports.js'

/** A `key_rings` row. */
export interface RingRow {
  instance: string
  id: string
  created_at: number
  created_by: string | null
}

/** A key ring row as a record. */
export function toRing(r: RingRow): KeyRingRecord {
  return { instance: r.instance, id: r.id, createdAt: r.created_at, createdBy: r.created_by ?? undefined }
}

/** A `key_policies` row. */
export interface PolicyRow {
  instance: string
  key_id: string
  type: 'rotation' | 'dualAuthDelete'
  policy_id: string
  enabled: number
  interval_month: number | null
  created_at: number
  created_by: string | null
  updated_at: number
  updated_by: string | null
  auth_by: string | null
  auth_expires_at: number | null
}

/** A key policy row as a record. */
export function toPolicy(r: PolicyRow): KeyPolicyRecord {
  return {
    instance: r.instance,
    keyId: r.key_id,
    type: r.type,
    policyId: r.policy_id,
    enabled: r.enabled === 1,
    intervalMonth: r.interval_month ?? undefined,
    createdAt: r.created_at,
    createdBy: r.created_by ?? undefined,
    updatedAt: r.updated_at,
    updatedBy: r.updated_by ?? undefined,
    authBy: r.auth_by ?? undefined,
    authExpiresAt: r.auth_expires_at ?? undefined,
  }
}

/** A Key Protect `aliases` row (created_by: migration 9, NULL for aliases added before it). */
export interface AliasRow {
  key_id: string
  created_at: number
  created_by: string | null
}

/** An `alias_names` row (migration 4). */
export interface AliasNameRow {
  instance: string
  name: string
  key_id: string
  created_at: number
  updated_at: number
}

/** An alias name row as a record. */
export function toAliasName(r: AliasNameRow): AliasNameRecord {
  return {
    instance: r.instance,
    name: r.name,
    keyId: r.key_id,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }
}

/** A `keys` row. */
export interface KeyRow {
  instance: string
  id: string
  name: string
  description: string | null
  extractable: number
  imported: number
  state: number
  key_ring_id: string
  tags: string
  created_at: number
  created_by: string | null
  updated_at: number
  state_changed_at: number
  last_rotated_at: number | null
  expiration_date: number | null
  deleted_at: number | null
  deleted_by: string | null
  current_version: number
  wrapped_payload: Buffer | null
  internal: number
  purging_since: number | null
}

/** A `key_versions` row. */
export interface VersionRow {
  instance: string
  key_id: string
  version: number
  version_id: string
  provider_ref: string
  created_at: number
}

const undef = <T>(v: T | null): T | undefined => (v === null ? undefined : v)

/** A key row as a record. */
export function toRecord(r: KeyRow): KeyRecord {
  return {
    instance: r.instance,
    id: r.id,
    name: r.name,
    description: undef(r.description),
    extractable: r.extractable === 1,
    imported: r.imported === 1,
    state: r.state as KeyStateValue,
    keyRingId: r.key_ring_id,
    tags: JSON.parse(r.tags) as string[],
    createdAt: r.created_at,
    createdBy: undef(r.created_by),
    updatedAt: r.updated_at,
    stateChangedAt: r.state_changed_at,
    lastRotatedAt: undef(r.last_rotated_at),
    expirationDate: undef(r.expiration_date),
    deletedAt: undef(r.deleted_at),
    deletedBy: undef(r.deleted_by),
    currentVersion: r.current_version,
    wrappedPayload: undef(r.wrapped_payload),
    internal: r.internal === 1,
    purgingSince: undef(r.purging_since),
  }
}

/** A key version row as a record. */
export function toVersion(r: VersionRow): KeyVersionRecord {
  return {
    instance: r.instance,
    keyId: r.key_id,
    version: r.version,
    versionId: r.version_id,
    providerRef: r.provider_ref,
    createdAt: r.created_at,
  }
}

/** The `keys` column of each {@link KeyPatch} field, for the compare-and-set updates. */
export const PATCH_COLUMNS: Readonly<Record<keyof KeyPatch, string>> = {
  state: 'state',
  stateChangedAt: 'state_changed_at',
  updatedAt: 'updated_at',
  deletedAt: 'deleted_at',
  deletedBy: 'deleted_by',
  keyRingId: 'key_ring_id',
  lastRotatedAt: 'last_rotated_at',
}
