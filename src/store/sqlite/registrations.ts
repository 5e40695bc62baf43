/**
 * The registration and key-event roles of the SQLite catalog (RegistrationStore and KeyEventLog in
 * core/ports.ts), migration 7. Both tables cascade with their key's row, so a purge removes them.
 */
import type { Database as Db } from 'better-sqlite3'
import type {
  KeyEventLog,
  KeyEventRecord,
  KeyEventType,
  RegistrationRecord,
  RegistrationStore,
} from '../../core/ports.js'

interface RegistrationRow {
  instance: string
  key_id: string
  resource_crn: string
  description: string | null
  registration_metadata: string | null
  prevent_key_deletion: number
  key_version_id: string | null
  deactivated: number
  created_at: number
  created_by: string | null
  updated_at: number
  updated_by: string | null
}

interface EventRow {
  instance: string
  event_id: string
  key_id: string
  type: string
  key_version: number
  resource_crn: string | null
  created_at: number
  created_by: string | null
  acked_at: number | null
  ack_state: string | null
}

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v)

function toRegistration(r: RegistrationRow): RegistrationRecord {
  return {
    instance: r.instance,
    keyId: r.key_id,
    resourceCrn: r.resource_crn,
    description: opt(r.description),
    registrationMetadata: opt(r.registration_metadata),
    preventKeyDeletion: r.prevent_key_deletion === 1,
    keyVersionId: opt(r.key_version_id),
    deactivated: r.deactivated === 1,
    createdAt: r.created_at,
    createdBy: opt(r.created_by),
    updatedAt: r.updated_at,
    updatedBy: opt(r.updated_by),
  }
}

function toEvent(r: EventRow): KeyEventRecord {
  return {
    instance: r.instance,
    eventId: r.event_id,
    keyId: r.key_id,
    type: r.type as KeyEventType,
    keyVersion: r.key_version,
    resourceCrn: opt(r.resource_crn),
    createdAt: r.created_at,
    createdBy: opt(r.created_by),
    ackedAt: opt(r.acked_at),
    ackState: opt(r.ack_state),
  }
}

const regArgs = (r: RegistrationRecord): unknown[] => [
  r.description ?? null,
  r.registrationMetadata ?? null,
  r.preventKeyDeletion ? 1 : 0,
  r.keyVersionId ?? null,
  r.deactivated ? 1 : 0,
  r.createdAt,
  r.createdBy ?? null,
  r.updatedAt,
  r.updatedBy ?? null,
  r.instance,
  r.keyId,
  r.resourceCrn,
]

/** The {@link RegistrationStore} and {@link KeyEventLog} methods over `db` (SqliteStore delegates to them). */
export function registrationStore(db: Db): RegistrationStore & KeyEventLog {
  const get = db.prepare<[string, string, string], RegistrationRow>(
    'SELECT * FROM registrations WHERE instance = ? AND key_id = ? AND resource_crn = ?',
  )
  // One statement: the key's state check and the insert are atomic against another process's delete.
  const insert = db.prepare(
    `INSERT OR IGNORE INTO registrations (description, registration_metadata, prevent_key_deletion,
       key_version_id, deactivated, created_at, created_by, updated_at, updated_by, instance, key_id, resource_crn)
     SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
     WHERE EXISTS (SELECT 1 FROM keys k WHERE k.instance = ? AND k.id = ? AND k.state = 1 AND k.purging_since IS NULL)`,
  )
  const update = db.prepare(
    `UPDATE registrations SET description = ?, registration_metadata = ?, prevent_key_deletion = ?,
       key_version_id = ?, deactivated = ?, created_at = ?, created_by = ?, updated_at = ?, updated_by = ?
     WHERE instance = ? AND key_id = ? AND resource_crn = ?`,
  )
  const del = db.prepare('DELETE FROM registrations WHERE instance = ? AND key_id = ? AND resource_crn = ?')
  const delKey = db.prepare('DELETE FROM registrations WHERE instance = ? AND key_id = ?')
  const order = 'ORDER BY r.created_at, r.key_id, r.resource_crn'
  const listAll = db.prepare<[string], RegistrationRow>(
    `SELECT r.* FROM registrations r WHERE r.instance = ? ${order}`,
  )
  const listKey = db.prepare<[string, string], RegistrationRow>(
    `SELECT r.* FROM registrations r WHERE r.instance = ? AND r.key_id = ? ${order}`,
  )
  const listRing = db.prepare<[string, string], RegistrationRow>(
    `SELECT r.* FROM registrations r JOIN keys k ON k.instance = r.instance AND k.id = r.key_id
     WHERE r.instance = ? AND k.key_ring_id = ? ${order}`,
  )
  const insertEvent = db.prepare(
    `INSERT INTO key_events (instance, event_id, key_id, seq, type, key_version, resource_crn, created_at,
       created_by, acked_at, ack_state)
     VALUES (?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM key_events WHERE instance = ? AND key_id = ?),
       ?, ?, ?, ?, ?, ?, ?)`,
  )
  const listEvents = db.prepare<[string, string], EventRow>(
    'SELECT * FROM key_events WHERE instance = ? AND key_id = ? ORDER BY seq',
  )
  const getEvent = db.prepare<[string, string], EventRow>(
    'SELECT * FROM key_events WHERE instance = ? AND event_id = ?',
  )
  const ack = db.prepare(
    'UPDATE key_events SET acked_at = ?, ack_state = ? WHERE instance = ? AND event_id = ?',
  )
  const appendTx = db.transaction((events: readonly KeyEventRecord[]) => {
    for (const e of events) {
      insertEvent.run(
        e.instance,
        e.eventId,
        e.keyId,
        e.instance,
        e.keyId,
        e.type,
        e.keyVersion,
        e.resourceCrn ?? null,
        e.createdAt,
        e.createdBy ?? null,
        e.ackedAt ?? null,
        e.ackState ?? null,
      )
    }
  })
  return {
    getRegistration: async (instance, keyId, crn) => {
      const r = get.get(instance, keyId, crn)
      return r === undefined ? undefined : toRegistration(r)
    },
    insertRegistration: async (r) => insert.run(...regArgs(r), r.instance, r.keyId).changes === 1,
    updateRegistration: async (r) => update.run(...regArgs(r)).changes === 1,
    deleteRegistration: async (instance, keyId, crn) => del.run(instance, keyId, crn).changes === 1,
    deleteKeyRegistrations: async (instance, keyId) => delKey.run(instance, keyId).changes,
    listRegistrations: async (instance, q) =>
      (q.keyId !== undefined
        ? listKey.all(instance, q.keyId)
        : q.keyRingId !== undefined
          ? listRing.all(instance, q.keyRingId)
          : listAll.all(instance)
      ).map(toRegistration),
    appendKeyEvents: async (events) => {
      appendTx.immediate(events)
    },
    listKeyEvents: async (instance, keyId) => listEvents.all(instance, keyId).map(toEvent),
    getKeyEvent: async (instance, eventId) => {
      const r = getEvent.get(instance, eventId)
      return r === undefined ? undefined : toEvent(r)
    },
    ackKeyEvent: async (instance, eventId, at, state) => ack.run(at, state, instance, eventId).changes === 1,
  }
}
