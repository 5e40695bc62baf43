/**
 * Key Protect v2 key actions (`POST /keys/{id}/actions/<action>`): wrap, unwrap, rewrap, rotate, the
 * dual-authorization set/unset for deletion, enable and disable (spec digest §3).
 */
import type { z } from '@hono/zod-openapi'
import type { KeyInfo } from '../../../core/engine.js'
import type { KeyProtectOptions, RouteDef } from '../pipeline.js'
import { b64, HttpProblem, materialInput, type Req } from '../request.js'
import { empty, json, keyEnvelope } from '../response.js'
import * as S from '../schemas.js'

/** wrap: wrap the given DEK, or generate a 32-byte DEK and wrap it. Plaintext buffers are zeroed. */
export async function wrapKey(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const body = (r.body ?? {}) as z.infer<typeof S.WrapBody>
  const plaintext = body.plaintext === undefined ? undefined : b64(body.plaintext)
  try {
    const w = await engine.wrap(r.instance, r.param('id'), {
      keyRingId: r.keyRing,
      ...(plaintext === undefined ? {} : { plaintext }),
      ...(body.aad === undefined ? {} : { aad: body.aad }),
    })
    const out = {
      ciphertext: w.ciphertext,
      keyVersion: { id: w.keyVersion.id },
      ...(w.plaintext === undefined ? {} : { plaintext: w.plaintext.toString('base64') }),
    }
    w.plaintext?.fill(0)
    return json(r, 200, out)
  } finally {
    plaintext?.fill(0)
  }
}

/** unwrap: the DEK; a ciphertext under an older version also comes back rewrapped under the latest. */
export async function unwrapKey(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const body = r.body as z.infer<typeof S.UnwrapBody>
  const u = await engine.unwrap(r.instance, r.param('id'), body.ciphertext, {
    keyRingId: r.keyRing,
    ...(body.aad === undefined ? {} : { aad: body.aad }),
  })
  const out = {
    plaintext: u.plaintext.toString('base64'),
    keyVersion: { id: u.keyVersion.id },
    ...(u.rewrapped === undefined
      ? {}
      : { ciphertext: u.rewrapped.ciphertext, rewrappedKeyVersion: { id: u.rewrapped.keyVersion.id } }),
  }
  u.plaintext.fill(0)
  return json(r, 200, out)
}

/** rewrap: the ciphertext under the key's latest version. */
export async function rewrapKey(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const body = r.body as z.infer<typeof S.RewrapBody>
  if (!S.Base64.safeParse(body.ciphertext).success) {
    throw new HttpProblem(
      400,
      'INVALID_FIELD_ERR',
      "The field 'ciphertext' must be: the original base64 encoded ciphertext from the wrap operation.",
      { type: 'field', name: 'ciphertext' },
    )
  }
  const w = await engine.rewrap(r.instance, r.param('id'), body.ciphertext, {
    keyRingId: r.keyRing,
    ...(body.aad === undefined ? {} : { aad: body.aad }),
  })
  return json(r, 200, {
    ciphertext: w.ciphertext,
    keyVersion: { id: w.keyVersion.id },
    rewrappedKeyVersion: { id: w.rewrappedKeyVersion.id },
  })
}

/**
 * rotate: a new root key version (imported keys with new material, zeroed after). 204; with
 * `Prefer: return=representation`, 200 and the rotated key enveloped (spec digest §1.5, as DELETE).
 */
export async function rotateKey(r: Req, { engine, wire }: KeyProtectOptions): Promise<Response> {
  const body = (r.body ?? {}) as z.infer<typeof S.RotateBody>
  const material = materialInput(body)
  let k: KeyInfo
  try {
    k = await engine.rotate(r.instance, r.param('id'), { keyRingId: r.keyRing, ...material })
    r.keyId = k.id
  } finally {
    material.payload?.fill(0)
  }
  return r.prefer === 'return=representation' ? json(r, 200, keyEnvelope(wire, k)) : empty(r, 204)
}

/** setKeyForDeletion: the first authorisation of a dual-authorization delete. */
export async function setKeyForDeletion(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const k = await engine.setKeyForDeletion(r.instance, r.param('id'), {
    by: r.principal.subject,
    keyRingId: r.keyRing,
  })
  r.keyId = k.id
  return empty(r, 204)
}

/** unsetKeyForDeletion: withdraw a dual-authorization delete authorisation. */
export async function unsetKeyForDeletion(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const k = await engine.unsetKeyForDeletion(r.instance, r.param('id'), {
    by: r.principal.subject,
    keyRingId: r.keyRing,
  })
  r.keyId = k.id
  return empty(r, 204)
}

/** enable: Suspended (2) → Active (1). */
export async function enableKey(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const k = await engine.enable(r.instance, r.param('id'), { keyRingId: r.keyRing })
  r.keyId = k.id
  return empty(r, 204)
}

/** disable: Active (1) → Suspended (2). */
export async function disableKey(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const k = await engine.disable(r.instance, r.param('id'), { keyRingId: r.keyRing })
  r.keyId = k.id
  return empty(r, 204)
}

const actionBody = (schema: z.ZodType, action: string, required: boolean): NonNullable<RouteDef['body']> => ({
  schema,
  contentType: `application/vnd.ibm.kms.key_action_${action}+json`,
  required,
})

export const keyActionRoutes: readonly RouteDef[] = [
  {
    method: 'post',
    path: '/keys/{id}/actions/wrap',
    iam: 'kms.secrets.wrap',
    what: 'Wrap with key',
    summary: 'Wrap a DEK, or generate a 32-byte DEK and wrap it',
    params: S.IdParam,
    query: S.EmptyQuery,
    body: actionBody(S.WrapBody, 'wrap', false),
    responses: { 200: { description: 'Wrapped', schema: S.WrapResponse } },
    handler: wrapKey,
  },
  {
    method: 'post',
    path: '/keys/{id}/actions/unwrap',
    iam: 'kms.secrets.unwrap',
    what: 'Unwrap with key',
    summary: 'Unwrap a DEK; an old-version ciphertext is also rewrapped',
    params: S.IdParam,
    query: S.EmptyQuery,
    body: actionBody(S.UnwrapBody, 'unwrap', true),
    responses: { 200: { description: 'Unwrapped', schema: S.UnwrapResponse } },
    handler: unwrapKey,
  },
  {
    method: 'post',
    path: '/keys/{id}/actions/rewrap',
    iam: 'kms.secrets.rewrap',
    what: 'Rewrap with key',
    summary: 'Rewrap a ciphertext under the latest key version',
    params: S.IdParam,
    query: S.EmptyQuery,
    body: actionBody(S.RewrapBody, 'rewrap', true),
    responses: { 200: { description: 'Rewrapped', schema: S.RewrapResponse } },
    handler: rewrapKey,
  },
  {
    method: 'post',
    path: '/keys/{id}/actions/rotate',
    iam: 'kms.secrets.rotate',
    what: 'Rotate key',
    summary: 'Create a new root key version',
    params: S.IdParam,
    query: S.EmptyQuery,
    body: actionBody(S.RotateBody, 'rotate', false),
    responses: {
      200: { description: 'The rotated key (Prefer: return=representation)', schema: S.KeyCollection },
      204: { description: 'Rotated' },
    },
    handler: rotateKey,
  },
  {
    method: 'post',
    path: '/keys/{id}/actions/setKeyForDeletion',
    iam: 'kms.secrets.setkeyfordeletion',
    what: 'Set key for deletion',
    summary: 'First authorisation of a dual-auth delete',
    params: S.IdParam,
    query: S.EmptyQuery,
    responses: { 204: { description: 'Done' } },
    handler: setKeyForDeletion,
  },
  {
    method: 'post',
    path: '/keys/{id}/actions/unsetKeyForDeletion',
    iam: 'kms.secrets.unsetkeyfordeletion',
    what: 'Unset key for deletion',
    summary: 'Withdraw a dual-auth delete authorisation',
    params: S.IdParam,
    query: S.EmptyQuery,
    responses: { 204: { description: 'Done' } },
    handler: unsetKeyForDeletion,
  },
  {
    method: 'post',
    path: '/keys/{id}/actions/enable',
    iam: 'kms.secrets.enable',
    what: 'Enable key',
    summary: 'Suspended (2) → Active (1)',
    params: S.IdParam,
    query: S.EmptyQuery,
    responses: { 204: { description: 'Done' } },
    handler: enableKey,
  },
  {
    method: 'post',
    path: '/keys/{id}/actions/disable',
    iam: 'kms.secrets.disable',
    what: 'Disable key',
    summary: 'Active (1) → Suspended (2)',
    params: S.IdParam,
    query: S.EmptyQuery,
    responses: { 204: { description: 'Done' } },
    handler: disableKey,
  },
]
