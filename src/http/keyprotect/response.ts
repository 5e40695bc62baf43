/**
 * Building Key Protect responses. Responses are built directly with plain header objects: @hono/node-server
 * then writes them on its fast path, while `c.newResponse` with more than one header builds a WHATWG
 * Headers object per response.
 */
import type { EnvelopeEngine, KeyInfo } from '../../core/engine.js'
import type { Req } from './request.js'
import { collection, KEY_TYPE, keyResource, type WireOptions } from './wire.js'

export const json = (r: Req, status: number, body: unknown): Response =>
  new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'correlation-id': r.correlationId },
  })

export const empty = (r: Req, status: 201 | 204): Response =>
  new Response(null, { status, headers: { 'correlation-id': r.correlationId } })

/** The key collection around one key. */
export const keyEnvelope = (wire: WireOptions, k: KeyInfo, payload?: Buffer): unknown =>
  collection(KEY_TYPE, [keyResource(wire, k, payload)])

/** The key envelope with a standard key's payload (when asked and the key is not deleted); zeroed after. */
export async function keyWithPayload(
  x: { readonly engine: EnvelopeEngine; readonly wire: WireOptions },
  r: Req,
  status: number,
  k: KeyInfo,
  withPayload: boolean,
): Promise<Response> {
  const payload =
    withPayload && k.extractable && !k.deleted ? await x.engine.getKeyPayload(r.instance, k.id) : undefined
  try {
    return json(r, status, keyEnvelope(x.wire, k, payload))
  } finally {
    payload?.fill(0)
  }
}
