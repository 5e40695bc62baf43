import { KeyState } from '../key-state.js'
import type { KeyRecord } from '../ports.js'

/** A new Active root key record at version 1; `fields` override the defaults. */
export function newKeyRecord(
  instance: string,
  id: string,
  name: string,
  now: number,
  fields: Partial<KeyRecord>,
): KeyRecord {
  return {
    instance,
    id,
    name,
    description: undefined,
    extractable: false,
    imported: false,
    state: KeyState.ACTIVE,
    keyRingId: 'default',
    tags: [],
    createdAt: now,
    createdBy: undefined,
    updatedAt: now,
    stateChangedAt: now,
    lastRotatedAt: undefined,
    expirationDate: undefined,
    deletedAt: undefined,
    deletedBy: undefined,
    currentVersion: 1,
    wrappedPayload: undefined,
    internal: false,
    ...fields,
  }
}
