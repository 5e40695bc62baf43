/**
 * Key Protect v2 key events (spec digest §3.8, §4.8): `POST /keys/{id}/actions/sync` re-notifies the
 * services registered to a key (one sync event per registration in the key's event log), and
 * `POST /event_ack` records their acknowledgements.
 */
import type { z } from '@hono/zod-openapi'
import type { KeyProtectOptions, RouteDef } from '../pipeline.js'
import type { Req } from '../request.js'
import { empty } from '../response.js'
import * as S from '../schemas.js'

const EVENT_ACK_TYPE = 'application/vnd.ibm.kms.event_acknowledge+json'

/** POST /keys/{id}/actions/sync: 204. */
export async function syncAssociatedResources(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  await engine.syncKey(r.instance, r.param('id'), { by: r.principal.subject, keyRingId: r.keyRing })
  return empty(r, 204)
}

/** POST /event_ack: 204; every event must exist (404 EVENT_NOT_FOUND), else nothing is recorded. */
export async function eventAcknowledge(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const body = r.body as z.infer<typeof S.EventAckBody>
  await engine.acknowledgeEvents(
    r.instance,
    body.resources.map((e) => ({
      eventId: e.eventId,
      adopterKeyState: e.adopterKeyState,
      // An invalid date is refused by the engine: MISSING_FIELD_ERR "timestamp: must be a valid RFC3339 timestamp".
      timestamp: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(e.timestamp)
        ? new Date(e.timestamp)
        : new Date(Number.NaN),
    })),
  )
  return empty(r, 204)
}

export const eventRoutes: readonly RouteDef[] = [
  {
    method: 'post',
    path: '/keys/{id}/actions/sync',
    iam: 'kms.secrets.sync',
    what: 'Sync associated resources',
    summary: 'Re-notify the services registered to a key',
    params: S.IdParam,
    query: S.EmptyQuery,
    responses: { 204: { description: 'Notified' } },
    handler: syncAssociatedResources,
  },
  {
    method: 'post',
    path: '/event_ack',
    iam: 'kms.secrets.eventack',
    event: 'kms.secrets-event.ack',
    what: 'Acknowledge event',
    summary: 'Acknowledge key lifecycle events',
    query: S.EmptyQuery,
    body: { schema: S.EventAckBody, contentType: EVENT_ACK_TYPE, required: true },
    responses: { 204: { description: 'Acknowledged' } },
    handler: eventAcknowledge,
  },
]
