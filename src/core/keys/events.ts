/**
 * The per-key event log (Key Protect lifecycle events): rotate, disable, enable, delete, restore and policy
 * changes are appended by their operations after they committed; `sync` re-notifies every registration of a
 * key (one event each); `acknowledgeEvents` records what a registered service reports (`POST /event_ack`).
 * Lifecycle operations only: nothing here is on the wrap/unwrap path.
 */
import { randomUUID } from 'node:crypto'
import { assertAllowed, storeCall, type EngineContext } from '../context.js'
import { EngineError, invalidField } from '../errors.js'
import type { KeyEventRecord, KeyEventType } from '../ports.js'
import { optionsObject, validateActor, validateInstance } from '../validate.js'
import { HOUR, type EventAckInput, type KeyEventInfo, type KeyScope } from '../engine-types.js'
import type { CachedKey } from './directory.js'

/** Appends one event of `type` for key `k` (after the operation committed; the caller holds no secret). */
export async function appendKeyEvent(
  ctx: EngineContext,
  k: CachedKey,
  type: KeyEventType,
  by?: string,
): Promise<void> {
  const r = k.record
  const e: KeyEventRecord = {
    instance: r.instance,
    eventId: randomUUID(),
    keyId: r.id,
    type,
    keyVersion: r.currentVersion,
    resourceCrn: undefined,
    createdAt: ctx.clock.now(),
    createdBy: by,
    ackedAt: undefined,
    ackState: undefined,
  }
  await storeCall(() => ctx.store.appendKeyEvents([e]))
}

/** The public view of an event record. */
export function eventInfo(e: KeyEventRecord): KeyEventInfo {
  return {
    eventId: e.eventId,
    keyId: e.keyId,
    type: e.type,
    keyVersion: e.keyVersion,
    resourceCrn: e.resourceCrn,
    createdAt: new Date(e.createdAt),
    createdBy: e.createdBy,
    ackedAt: e.ackedAt === undefined ? undefined : new Date(e.ackedAt),
    ackState: e.ackState,
  }
}

/** A key's event log, oldest first (any state, deleted included). */
export async function listKeyEvents(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  scope: KeyScope,
): Promise<KeyEventInfo[]> {
  const k = await ctx.keys.resolve(instance, idOrAlias, true, optionsObject(scope).keyRingId)
  return (await storeCall(() => ctx.store.listKeyEvents(instance, k.record.id))).map(eventInfo)
}

/**
 * Re-notifies the services registered to a root key: one `sync` event per registration (in one append).
 * Returns the events recorded (none when the key has no registration).
 */
export async function syncKey(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  options: { by?: string } & KeyScope,
): Promise<KeyEventInfo[]> {
  options = optionsObject(options)
  const by = validateActor(options.by, 'by')
  const k0 = await ctx.keys.resolve(instance, idOrAlias, true, options.keyRingId)
  return ctx.locks.withKey(instance, k0.record.id, async () => {
    const k = await ctx.keys.load(instance, k0.record.id, true)
    const r = k.record
    assertAllowed(ctx, 'sync', r)
    const interval = ctx.life.minSyncIntervalMs ?? HOUR
    if (interval > 0) {
      const last = (await storeCall(() => ctx.store.listKeyEvents(instance, r.id)))
        .filter((e) => e.type === 'sync')
        .at(-1)
      if (last !== undefined && ctx.clock.now() - last.createdAt < interval) {
        throw new EngineError('REQ_TOO_EARLY_ERR', 'key: its registrations were synced less than 1 h ago', {
          retryable: true,
        })
      }
    }
    const regs = await storeCall(() => ctx.store.listRegistrations(instance, { keyId: r.id }))
    const now = ctx.clock.now()
    const events: KeyEventRecord[] = regs.map((g) => ({
      instance,
      eventId: randomUUID(),
      keyId: r.id,
      type: 'sync',
      keyVersion: r.currentVersion,
      resourceCrn: g.resourceCrn,
      createdAt: now,
      createdBy: by,
      ackedAt: undefined,
      ackState: undefined,
    }))
    if (events.length > 0) await storeCall(() => ctx.store.appendKeyEvents(events))
    return events.map(eventInfo)
  })
}

const ADOPTER_STATE_RE = /^[A-Za-z0-9_.-]{1,64}$/

/**
 * Records acknowledgements of events (Key Protect `POST /event_ack`), all or none: every event must exist in
 * the instance before any is recorded.
 * @throws EngineError EVENT_NOT_FOUND, MISSING_FIELD_ERR, INVALID_FIELD_ERR
 */
export async function acknowledgeEvents(
  ctx: EngineContext,
  instance: string,
  acks: readonly EventAckInput[],
): Promise<void> {
  instance = validateInstance(instance)
  const list: unknown = acks
  if (!Array.isArray(list) || list.length === 0 || list.length > 100) {
    throw invalidField('events', 'must be a list of 1-100 acknowledgements')
  }
  for (const a of acks) {
    const x: Partial<EventAckInput> = optionsObject(a)
    if (typeof x.eventId !== 'string' || x.eventId.length === 0 || x.eventId.length > 64) {
      throw new EngineError('MISSING_FIELD_ERR', 'eventId: must be an event id', {
        target: { type: 'field', name: 'eventId' },
      })
    }
    if (!(x.timestamp instanceof Date) || Number.isNaN(x.timestamp.getTime())) {
      throw new EngineError('MISSING_FIELD_ERR', 'timestamp: must be a valid RFC3339 timestamp', {
        target: { type: 'field', name: 'timestamp' },
      })
    }
    if (typeof x.adopterKeyState !== 'string' || !ADOPTER_STATE_RE.test(x.adopterKeyState)) {
      throw invalidField('adopterKeyState', 'must be 1-64 letters, digits, _ . or -')
    }
  }
  for (const a of acks) {
    if ((await storeCall(() => ctx.store.getKeyEvent(instance, a.eventId))) === undefined) {
      throw new EngineError('EVENT_NOT_FOUND', `eventId: no event ${a.eventId} in this instance`, {
        target: { type: 'field', name: 'eventId' },
      })
    }
  }
  for (const a of acks) {
    await storeCall(() =>
      ctx.store.ackKeyEvent(instance, a.eventId, a.timestamp.getTime(), a.adopterKeyState),
    )
  }
}
