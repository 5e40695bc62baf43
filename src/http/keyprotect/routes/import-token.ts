/**
 * Key Protect v2 import tokens (spec digest §3.6, §4.5): `POST /import_token` and `GET /import_token`, both
 * answered un-enveloped with 200. The secure import itself travels in create, rotate and restore
 * (`materialInput` in request.ts); the rules are in core/keys/import-token.ts.
 */
import type { z } from '@hono/zod-openapi'
import type { ImportTokenInfo } from '../../../core/engine.js'
import type { KeyProtectOptions, RouteDef } from '../pipeline.js'
import type { Req } from '../request.js'
import { json } from '../response.js'
import * as S from '../schemas.js'
import { rfc3339 } from '../wire.js'

function tokenBody(t: ImportTokenInfo): z.infer<typeof S.ImportTokenResponse> {
  return {
    creationDate: rfc3339(t.createdAt) ?? '',
    expirationDate: rfc3339(t.expiresAt) ?? '',
    maxAllowedRetrievals: t.maxAllowedRetrievals,
    remainingRetrievals: t.remainingRetrievals,
  }
}

/** POST /import_token: creates (or replaces) the instance's import token. */
export async function createImportToken(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const body = (r.body ?? {}) as z.infer<typeof S.ImportTokenBody>
  const t = await engine.createImportToken(r.instance, {
    ...(body.expiration === undefined ? {} : { expirationSec: Number(body.expiration) }),
    ...(body.maxAllowedRetrievals === undefined ? {} : { maxAllowedRetrievals: body.maxAllowedRetrievals }),
  })
  return json(r, 200, tokenBody(t))
}

/** GET /import_token: the public key (base64 of its PEM) and the nonce; takes one retrieval. */
export async function getImportToken(r: Req, { engine }: KeyProtectOptions): Promise<Response> {
  const t = await engine.getImportToken(r.instance)
  return json(r, 200, {
    ...tokenBody(t),
    payload: Buffer.from(t.publicKeyPem, 'utf8').toString('base64'),
    nonce: t.nonce.toString('base64'),
  })
}

export const importTokenRoutes: readonly RouteDef[] = [
  {
    method: 'post',
    path: '/import_token',
    iam: 'kms.importtoken.create',
    event: 'kms.import-token.create',
    what: 'Create import token',
    summary: 'Create (or replace) the import token: an RSA key pair in the HSM',
    query: S.EmptyQuery,
    body: { schema: S.ImportTokenBody, contentType: 'application/json', required: false },
    responses: { 200: { description: 'Created (un-enveloped)', schema: S.ImportTokenResponse } },
    operationId: 'postImportToken',
    handler: createImportToken,
  },
  {
    method: 'get',
    path: '/import_token',
    iam: 'kms.importtoken.read',
    event: 'kms.import-token.read',
    what: 'Retrieve import token',
    summary: 'Retrieve the import token (public key and nonce); takes one retrieval',
    query: S.EmptyQuery,
    responses: { 200: { description: 'The import token (un-enveloped)', schema: S.ImportTokenRetrieval } },
    handler: getImportToken,
  },
]
