/**
 * IBM Key Protect v2 over the engine: parse and validate, authorise, call core, map the result or the
 * typed error to the wire (spec digest shared/spec/key-protect-v2.md). No business rule lives here.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { createRoute, type OpenAPIHono, type z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import type { EnvelopeEngine, KeyInfo, KeyPoliciesInput } from '../../core/engine.js'
import { EngineError, isEngineError } from '../../core/errors.js'
import { parseStateList } from '../../core/keys/query-language.js'
import { allowed, AuthError, type Authenticator, type Principal } from '../auth.js'
import { header } from '../headers.js'
import type { AuditSink } from '../audit.js'
import type { FixedWindowLimiter } from '../rate-limit.js'
import * as S from './schemas.js'
import {
  ALIAS_TYPE,
  collection,
  errorBody,
  KEY_RING_TYPE,
  KEY_TYPE,
  keyResource,
  POLICY_TYPE,
  policyResource,
  rfc3339,
  wireOf,
  type WireCode,
  type WireOptions,
  type WireTarget,
} from './wire.js'

export interface KeyProtectOptions {
  readonly engine: EnvelopeEngine
  readonly auth: Authenticator
  /** Largest accepted request body in bytes; larger bodies get 413 BODY_TOO_LARGE_ERR. */
  readonly bodyLimitBytes: number
  /** Requests being served, for graceful draining (shared with the app). */
  readonly inFlight?: { n: number }
  readonly limiter: FixedWindowLimiter
  readonly audit: AuditSink
  /** Region and account printed in CRNs. */
  readonly wire: WireOptions
  /** Time source of the rate limiter (tests inject one). */
  readonly now?: () => number
  /** Where unexpected failures (5xx) are reported, with the correlation id; never request bodies. */
  readonly onServerError?: (err: unknown, correlationId: string) => void
}

/** An error the HTTP layer raises itself, already in wire terms. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: WireCode,
    message: string,
    readonly target?: WireTarget,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

interface Req {
  readonly c: Context
  readonly instance: string
  readonly principal: Principal
  readonly body: unknown
  readonly query: Record<string, string>
  readonly param: (name: string) => string
  readonly keyRing: string | undefined
  readonly prefer: 'return=representation' | 'return=minimal' | undefined
  /** Set by handlers for the audit event. */
  keyId: string | undefined
}

interface RouteDef {
  readonly method: 'get' | 'post' | 'put' | 'patch' | 'delete' | 'head'
  /** OpenAPI path under /api/v2, e.g. `/keys/{id}/actions/wrap`. */
  readonly path: string
  readonly iam: string
  /** Audit event name when it differs from the IAM action. */
  readonly event?: string
  /** What the request does, for `errorMsg` ("Wrap with key"). */
  readonly what: string
  readonly summary: string
  readonly params?: z.ZodObject
  readonly query: z.ZodObject
  readonly body?: { readonly schema: z.ZodType; readonly contentType: string; readonly required: boolean }
  readonly responses: Record<number, { description: string; schema?: z.ZodType }>
  readonly handler: (r: Req) => Promise<Response>
}

/** The request's correlation id (set by the app's first middleware). */
const cid = (c: Context): string => (c.get('correlationId' as never) as string | undefined) ?? ''
// Responses are built directly with plain header objects: @hono/node-server then writes them on its fast
// path, while `c.newResponse` with more than one header builds a WHATWG Headers object per response.
const json = (c: Context, status: number, body: unknown): Response =>
  new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'correlation-id': cid(c) },
  })
const empty = (c: Context, status: 201 | 204): Response =>
  new Response(null, { status, headers: { 'correlation-id': cid(c) } })

function b64(s: string): Buffer {
  return Buffer.from(s, 'base64')
}

function bool(v: string | undefined): boolean | undefined {
  return v === undefined ? undefined : v === 'true'
}

function int(v: string | undefined, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new HttpProblem(400, 'INVALID_PARAM_ERR', `${name}: must be an integer from ${min} to ${max}`, {
      type: 'param',
      name,
    })
  }
  return n
}

/** Rewrites object keys to the schema's spelling, case-insensitively (the Go client sends `KeyRingID`). */
const lowerNames = new WeakMap<object, Map<string, string>>()

function normalizeKeys(v: unknown, schema: z.ZodType): unknown {
  const shape = (schema as { shape?: Record<string, z.ZodType> }).shape
  if (shape === undefined || typeof v !== 'object' || v === null || Array.isArray(v)) return v
  let byLower = lowerNames.get(shape)
  if (byLower === undefined) {
    byLower = new Map(Object.keys(shape).map((k) => [k.toLowerCase(), k]))
    lowerNames.set(shape, byLower)
  }
  const out: Record<string, unknown> = {}
  for (const [k, val] of Object.entries(v)) {
    const name = byLower.get(k.toLowerCase()) ?? k
    const inner = shape[name]
    if (name === 'resources' && Array.isArray(val) && inner !== undefined) {
      const element = (inner as { element?: z.ZodType }).element
      out[name] = element === undefined ? val : val.map((x) => normalizeKeys(x, element))
    } else {
      out[name] = val
    }
  }
  return out
}

function validate<T extends z.ZodType>(schema: T, value: unknown, where: 'field' | 'param'): z.infer<T> {
  const r = schema.safeParse(value)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  if (issue === undefined) throw new HttpProblem(400, 'INVALID_FIELD_ERR', 'request: invalid')
  const path = issue.path.filter((p): p is string => typeof p === 'string')
  if (issue.code === 'unrecognized_keys') {
    const name = issue.keys[0] ?? 'unknown'
    const code = where === 'param' ? 'INVALID_PARAM_ERR' : 'INVALID_FIELD_ERR'
    throw new HttpProblem(400, code, `${name}: is not a known ${where === 'param' ? 'parameter' : 'field'}`, {
      type: where,
      name,
    })
  }
  const name = path[path.length - 1] ?? (where === 'field' ? 'body' : 'query')
  let missing = false
  if (issue.code === 'invalid_type') {
    let cur: unknown = value
    for (const p of issue.path)
      cur = typeof cur === 'object' && cur !== null ? (cur as Record<PropertyKey, unknown>)[p] : undefined
    missing = cur === undefined
  }
  if (missing) {
    throw new HttpProblem(400, 'MISSING_FIELD_ERR', `The field '${name}' is required.`, { type: where, name })
  }
  const code = where === 'param' ? 'INVALID_PARAM_ERR' : 'INVALID_FIELD_ERR'
  const message =
    name === 'plaintext' || name === 'payload'
      ? `The field '${name}' must be: a base64 encoded key material.`
      : `The field '${name}' ${issue.message}`
  throw new HttpProblem(400, code, message, { type: where, name })
}

function noSecureImport(r: { encryptedNonce?: unknown; iv?: unknown; encryptionAlgorithm?: unknown }): void {
  for (const name of ['encryptedNonce', 'iv', 'encryptionAlgorithm'] as const) {
    if (r[name] !== undefined) {
      throw new HttpProblem(
        400,
        'INVALID_FIELD_ERR',
        `${name}: secure import with an import token is not available in this release; send payload alone`,
        { type: 'field', name },
      )
    }
  }
}

function policiesInput(
  rotation?: { enabled: boolean; interval_month?: number | undefined },
  dual?: { enabled: boolean },
): KeyPoliciesInput {
  return {
    ...(rotation === undefined
      ? {}
      : { rotation: { enabled: rotation.enabled, intervalMonth: rotation.interval_month } }),
    ...(dual === undefined ? {} : { dualAuthDelete: { enabled: dual.enabled } }),
  }
}

function toHono(path: string): string {
  return path.replace(/\{([^}]+)\}/g, (_m, name: string) => `:${name.replace(/[^A-Za-z0-9]/g, '_')}`)
}

/** Mounts the Key Protect routes on `app` under `/api/v2` and describes them in its OpenAPI registry. */
export function mountKeyProtect(app: OpenAPIHono, o: KeyProtectOptions): void {
  const { engine } = o
  const now = o.now ?? Date.now
  const keyEnvelope = (k: KeyInfo, payload?: Buffer): unknown =>
    collection(KEY_TYPE, [keyResource(o.wire, k, payload)])

  /** The key envelope with a standard key's payload (when asked and the key is not deleted); zeroed after. */
  const keyWithPayload = async (
    r: Req,
    status: number,
    k: KeyInfo,
    withPayload: boolean,
  ): Promise<Response> => {
    const payload =
      withPayload && k.extractable && !k.deleted ? await engine.getKeyPayload(r.instance, k.id) : undefined
    try {
      return json(r.c, status, keyEnvelope(k, payload))
    } finally {
      payload?.fill(0)
    }
  }

  /** Throws KEY_NOT_FOUND_ERR when the caller named a key ring and the key is elsewhere. */
  const checkRing = async (r: Req, id: string): Promise<KeyInfo | undefined> => {
    if (r.keyRing === undefined) return undefined
    const k = await engine.getKey(r.instance, id)
    if (k.keyRingId !== r.keyRing)
      throw new EngineError('KEY_NOT_FOUND_ERR', 'key: not found in the given key ring')
    return k
  }

  const routes: RouteDef[] = [
    {
      method: 'head',
      path: '/keys',
      iam: 'kms.secrets.head',
      what: 'Key count',
      summary: 'Number of keys (Key-Total header)',
      query: S.HeadKeysQuery,
      responses: { 200: { description: 'Key-Total header, no body' } },
      handler: async (r) => {
        const q = r.query
        const res = await engine.listKeys(r.instance, {
          limit: 1,
          ...(q['state'] === undefined ? {} : { states: parseStateList(q['state'], 'state') }),
          ...(q['extractable'] === undefined ? {} : { extractable: q['extractable'] === 'true' }),
          ...(q['filter'] === undefined ? {} : { filter: q['filter'] }),
          ...(r.keyRing === undefined ? {} : { keyRingId: r.keyRing }),
        })
        return new Response(null, {
          status: 200,
          headers: { 'key-total': String(res.total), 'correlation-id': cid(r.c) },
        })
      },
    },
    {
      method: 'get',
      path: '/keys',
      iam: 'kms.secrets.list',
      what: 'List keys',
      summary: 'List keys',
      query: S.ListKeysQuery,
      responses: { 200: { description: 'Keys', schema: S.KeyCollection } },
      handler: async (r) => {
        const q = r.query
        const res = await engine.listKeys(r.instance, {
          limit: int(q['limit'], 'limit', 1, 5000, 200),
          offset: int(q['offset'], 'offset', 0, Number.MAX_SAFE_INTEGER, 0),
          ...(q['state'] === undefined ? {} : { states: parseStateList(q['state'], 'state') }),
          ...(q['extractable'] === undefined ? {} : { extractable: q['extractable'] === 'true' }),
          ...(q['search'] === undefined ? {} : { search: q['search'] }),
          ...(q['filter'] === undefined ? {} : { filter: q['filter'] }),
          ...(q['sort'] === undefined ? {} : { sort: q['sort'] }),
          ...(r.keyRing === undefined ? {} : { keyRingId: r.keyRing }),
        })
        return json(
          r.c,
          200,
          collection(
            KEY_TYPE,
            res.keys.map((k) => keyResource(o.wire, k)),
            {
              ...(q['totalCount'] === 'true' ? { totalCount: res.total } : {}),
              ...(res.incompleteSearch === true ? { incompleteSearch: true } : {}),
            },
          ),
        )
      },
    },
    ...(['/keys', '/keys_with_policy_overrides'] as const).map((path): RouteDef => ({
      method: 'post',
      path,
      iam: path === '/keys' ? 'kms.secrets.create' : 'kms.secrets-with-policy-overrides.create',
      what: 'Create key',
      summary: path === '/keys' ? 'Create or import a key' : 'Create a key with key-level policies',
      query: S.EmptyQuery,
      body: {
        schema: path === '/keys' ? S.CreateKeyBody : S.CreateKeyWithPoliciesBody,
        contentType: KEY_TYPE,
        required: true,
      },
      responses: { 201: { description: 'Created', schema: S.KeyCollection } },
      handler: async (r) => {
        const body = r.body as z.infer<typeof S.CreateKeyWithPoliciesBody>
        const res = body.resources[0]
        if (res === undefined) throw new HttpProblem(400, 'MISSING_FIELD_ERR', 'resources: is empty')
        noSecureImport(res)
        const policies = policiesInput(res.rotation, res.dualAuthDelete)
        const k = await engine.createKey(r.instance, {
          name: res.name,
          ...(res.description === undefined ? {} : { description: res.description }),
          extractable: res.extractable ?? false,
          ...(res.payload === undefined ? {} : { payload: b64(res.payload) }),
          ...(res.expirationDate === undefined ? {} : { expirationDate: new Date(res.expirationDate) }),
          ...(res.aliases === undefined ? {} : { aliases: res.aliases }),
          ...(res.tags === undefined ? {} : { tags: res.tags }),
          createdBy: r.principal.subject,
          ...(r.keyRing === undefined ? {} : { keyRingId: r.keyRing }),
          ...(Object.keys(policies).length === 0 ? {} : { policies }),
        })
        r.keyId = k.id
        if (r.prefer === 'return=minimal') {
          return json(r.c, 201, collection(KEY_TYPE, [{ id: k.id }]))
        }
        return keyWithPayload(r, 201, k, r.prefer === 'return=representation')
      },
    })),
    {
      method: 'get',
      path: '/keys/{id}',
      iam: 'kms.secrets.read',
      what: 'Get key',
      summary: 'Get a key (standard keys include payload)',
      params: S.IdParam,
      query: S.EmptyQuery,
      responses: { 200: { description: 'The key', schema: S.KeyCollection } },
      handler: async (r) => {
        const k = (await checkRing(r, r.param('id'))) ?? (await engine.getKey(r.instance, r.param('id')))
        r.keyId = k.id
        return keyWithPayload(r, 200, k, true)
      },
    },
    {
      method: 'get',
      path: '/keys/{id}/metadata',
      iam: 'kms.secrets.readmetadata',
      event: 'kms.secrets-metadata.read',
      what: 'Get key metadata',
      summary: 'Get key metadata (never payload)',
      params: S.IdParam,
      query: S.EmptyQuery,
      responses: { 200: { description: 'The key', schema: S.KeyCollection } },
      handler: async (r) => {
        const k = (await checkRing(r, r.param('id'))) ?? (await engine.getKey(r.instance, r.param('id')))
        r.keyId = k.id
        return json(r.c, 200, keyEnvelope(k))
      },
    },
    {
      method: 'patch',
      path: '/keys/{id}',
      iam: 'kms.secrets.patch',
      what: 'Update key',
      summary: 'Move a key to another key ring',
      params: S.IdParam,
      query: S.EmptyQuery,
      body: { schema: S.PatchKeyBody, contentType: KEY_TYPE, required: true },
      responses: { 200: { description: 'The key', schema: S.KeyCollection } },
      handler: async (r) => {
        const body = r.body as z.infer<typeof S.PatchKeyBody>
        const k = await engine.moveKey(r.instance, r.param('id'), body.keyRingID, {
          ...(r.keyRing === undefined ? {} : { expectedRing: r.keyRing }),
        })
        r.keyId = k.id
        return json(r.c, 200, keyEnvelope(k))
      },
    },
    {
      method: 'delete',
      path: '/keys/{id}',
      iam: 'kms.secrets.delete',
      what: 'Delete key',
      summary: 'Delete a key (soft: restorable for 30 days)',
      params: S.IdParam,
      query: S.DeleteQuery,
      responses: {
        200: { description: 'The deleted key', schema: S.KeyCollection },
        204: { description: 'Deleted' },
      },
      handler: async (r) => {
        await checkRing(r, r.param('id'))
        const k = await engine.deleteKey(r.instance, r.param('id'), { deletedBy: r.principal.subject })
        r.keyId = k.id
        return r.prefer === 'return=representation' ? json(r.c, 200, keyEnvelope(k)) : empty(r.c, 204)
      },
    },
    {
      method: 'delete',
      path: '/keys/{id}/purge',
      iam: 'kms.secrets.purge',
      what: 'Purge key',
      summary: 'Purge a deleted key (4 h after deletion)',
      params: S.IdParam,
      query: S.EmptyQuery,
      responses: {
        200: { description: 'The purged key', schema: S.KeyCollection },
        204: { description: 'Purged' },
      },
      handler: async (r) => {
        const k = (await checkRing(r, r.param('id'))) ?? (await engine.getKey(r.instance, r.param('id')))
        r.keyId = k.id
        await engine.purgeKey(r.instance, k.id)
        return r.prefer === 'return=representation' ? json(r.c, 200, keyEnvelope(k)) : empty(r.c, 204)
      },
    },
    {
      method: 'post',
      path: '/keys/{id}/restore',
      iam: 'kms.secrets.restore',
      what: 'Restore key',
      summary: 'Restore a deleted key',
      params: S.IdParam,
      query: S.EmptyQuery,
      body: {
        schema: S.RestoreBody,
        contentType: 'application/vnd.ibm.kms.key_action_restore+json',
        required: false,
      },
      responses: { 201: { description: 'Restored', schema: S.KeyCollection } },
      handler: async (r) => {
        await checkRing(r, r.param('id'))
        const res = (r.body as z.infer<typeof S.RestoreBody> | undefined)?.resources[0]
        if (res !== undefined) noSecureImport(res)
        const k = await engine.restoreKey(r.instance, r.param('id'), {
          ...(res?.payload === undefined ? {} : { payload: b64(res.payload) }),
        })
        r.keyId = k.id
        return json(r.c, 201, keyEnvelope(k))
      },
    },
    {
      method: 'get',
      path: '/keys/{id}/versions',
      iam: 'kms.secrets.listkeyversions',
      event: 'kms.secrets-key-versions.list',
      what: 'List key versions',
      summary: 'List root key versions',
      params: S.IdParam,
      query: S.VersionsQuery,
      responses: { 200: { description: 'Versions', schema: S.VersionCollection } },
      handler: async (r) => {
        await checkRing(r, r.param('id'))
        const q = r.query
        const res = await engine.listKeyVersions(r.instance, r.param('id'), {
          limit: int(q['limit'], 'limit', 1, 5000, 200),
          offset: int(q['offset'], 'offset', 0, Number.MAX_SAFE_INTEGER, 0),
          allKeyStates: q['allKeyStates'] === 'true',
        })
        return json(
          r.c,
          200,
          collection(
            KEY_TYPE,
            res.versions.map((v) => ({ id: v.id, creationDate: rfc3339(v.createdAt) })),
            q['totalCount'] === 'true' ? { totalCount: res.total } : {},
          ),
        )
      },
    },
    {
      method: 'post',
      path: '/keys/{id}/actions/wrap',
      iam: 'kms.secrets.wrap',
      what: 'Wrap with key',
      summary: 'Wrap a DEK, or generate a 32-byte DEK and wrap it',
      params: S.IdParam,
      query: S.EmptyQuery,
      body: {
        schema: S.WrapBody,
        contentType: 'application/vnd.ibm.kms.key_action_wrap+json',
        required: false,
      },
      responses: { 200: { description: 'Wrapped', schema: S.WrapResponse } },
      handler: async (r) => {
        await checkRing(r, r.param('id'))
        const body = (r.body ?? {}) as z.infer<typeof S.WrapBody>
        const plaintext = body.plaintext === undefined ? undefined : b64(body.plaintext)
        try {
          const w = await engine.wrap(r.instance, r.param('id'), {
            ...(plaintext === undefined ? {} : { plaintext }),
            ...(body.aad === undefined ? {} : { aad: body.aad }),
          })
          const out = {
            ciphertext: w.ciphertext,
            keyVersion: { id: w.keyVersion.id },
            ...(w.plaintext === undefined ? {} : { plaintext: w.plaintext.toString('base64') }),
          }
          w.plaintext?.fill(0)
          return json(r.c, 200, out)
        } finally {
          plaintext?.fill(0)
        }
      },
    },
    {
      method: 'post',
      path: '/keys/{id}/actions/unwrap',
      iam: 'kms.secrets.unwrap',
      what: 'Unwrap with key',
      summary: 'Unwrap a DEK; an old-version ciphertext is also rewrapped',
      params: S.IdParam,
      query: S.EmptyQuery,
      body: {
        schema: S.UnwrapBody,
        contentType: 'application/vnd.ibm.kms.key_action_unwrap+json',
        required: true,
      },
      responses: { 200: { description: 'Unwrapped', schema: S.UnwrapResponse } },
      handler: async (r) => {
        await checkRing(r, r.param('id'))
        const body = r.body as z.infer<typeof S.UnwrapBody>
        const u = await engine.unwrap(r.instance, r.param('id'), body.ciphertext, {
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
        return json(r.c, 200, out)
      },
    },
    {
      method: 'post',
      path: '/keys/{id}/actions/rewrap',
      iam: 'kms.secrets.rewrap',
      what: 'Rewrap with key',
      summary: 'Rewrap a ciphertext under the latest key version',
      params: S.IdParam,
      query: S.EmptyQuery,
      body: {
        schema: S.RewrapBody,
        contentType: 'application/vnd.ibm.kms.key_action_rewrap+json',
        required: true,
      },
      responses: { 200: { description: 'Rewrapped', schema: S.RewrapResponse } },
      handler: async (r) => {
        await checkRing(r, r.param('id'))
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
          ...(body.aad === undefined ? {} : { aad: body.aad }),
        })
        return json(r.c, 200, {
          ciphertext: w.ciphertext,
          keyVersion: { id: w.keyVersion.id },
          rewrappedKeyVersion: { id: w.rewrappedKeyVersion.id },
        })
      },
    },
    {
      method: 'post',
      path: '/keys/{id}/actions/rotate',
      iam: 'kms.secrets.rotate',
      what: 'Rotate key',
      summary: 'Create a new root key version',
      params: S.IdParam,
      query: S.EmptyQuery,
      body: {
        schema: S.RotateBody,
        contentType: 'application/vnd.ibm.kms.key_action_rotate+json',
        required: false,
      },
      responses: { 204: { description: 'Rotated' } },
      handler: async (r) => {
        await checkRing(r, r.param('id'))
        const body = (r.body ?? {}) as z.infer<typeof S.RotateBody>
        noSecureImport(body)
        const payload = body.payload === undefined ? undefined : b64(body.payload)
        try {
          const k = await engine.rotate(r.instance, r.param('id'), payload === undefined ? {} : { payload })
          r.keyId = k.id
        } finally {
          payload?.fill(0)
        }
        return empty(r.c, 204)
      },
    },
    ...(['setKeyForDeletion', 'unsetKeyForDeletion'] as const).map((action): RouteDef => ({
      method: 'post',
      path: `/keys/{id}/actions/${action}`,
      iam: `kms.secrets.${action.toLowerCase()}`,
      what: action === 'setKeyForDeletion' ? 'Set key for deletion' : 'Unset key for deletion',
      summary:
        action === 'setKeyForDeletion'
          ? 'First authorisation of a dual-auth delete'
          : 'Withdraw a dual-auth delete authorisation',
      params: S.IdParam,
      query: S.EmptyQuery,
      responses: { 204: { description: 'Done' } },
      handler: async (r) => {
        await checkRing(r, r.param('id'))
        const k =
          action === 'setKeyForDeletion'
            ? await engine.setKeyForDeletion(r.instance, r.param('id'), { by: r.principal.subject })
            : await engine.unsetKeyForDeletion(r.instance, r.param('id'), { by: r.principal.subject })
        r.keyId = k.id
        return empty(r.c, 204)
      },
    })),
    ...(['enable', 'disable'] as const).map((action): RouteDef => ({
      method: 'post',
      path: `/keys/{id}/actions/${action}`,
      iam: `kms.secrets.${action}`,
      what: action === 'enable' ? 'Enable key' : 'Disable key',
      summary: action === 'enable' ? 'Suspended (2) → Active (1)' : 'Active (1) → Suspended (2)',
      params: S.IdParam,
      query: S.EmptyQuery,
      responses: { 204: { description: 'Done' } },
      handler: async (r) => {
        await checkRing(r, r.param('id'))
        const k =
          action === 'enable'
            ? await engine.enable(r.instance, r.param('id'))
            : await engine.disable(r.instance, r.param('id'))
        r.keyId = k.id
        return empty(r.c, 204)
      },
    })),
    {
      method: 'put',
      path: '/keys/{id}/policies',
      iam: 'kms.policies.write',
      what: 'Set key policies',
      summary: 'Set key policies (rotation, dualAuthDelete)',
      params: S.IdParam,
      query: S.PolicyQuery,
      body: { schema: S.PutPoliciesBody, contentType: POLICY_TYPE, required: true },
      responses: { 200: { description: 'Policies', schema: S.PolicyCollection } },
      handler: async (r) => {
        await checkRing(r, r.param('id'))
        const body = r.body as z.infer<typeof S.PutPoliciesBody>
        const only = r.query['policy']
        let rotation: { enabled: boolean; interval_month?: number | undefined } | undefined
        let dual: { enabled: boolean } | undefined
        for (const p of body.resources) {
          if (p.rotation !== undefined) rotation = p.rotation
          if (p.dualAuthDelete !== undefined) dual = p.dualAuthDelete
        }
        if (
          (only === 'rotation' && dual !== undefined) ||
          (only === 'dualAuthDelete' && rotation !== undefined)
        ) {
          throw new HttpProblem(
            400,
            'INVALID_FIELD_ERR',
            `resources: only the ${only} policy may be sent with policy=${only}`,
            {
              type: 'field',
              name: only === 'rotation' ? 'dualAuthDelete' : 'rotation',
            },
          )
        }
        const set = await engine.setKeyPolicies(r.instance, r.param('id'), policiesInput(rotation, dual), {
          updatedBy: r.principal.subject,
        })
        return json(
          r.c,
          200,
          collection(
            POLICY_TYPE,
            set.map((p) => policyResource(o.wire, r.instance, p)),
          ),
        )
      },
    },
    {
      method: 'get',
      path: '/keys/{id}/policies',
      iam: 'kms.policies.read',
      what: 'Get key policies',
      summary: 'Get key policies',
      params: S.IdParam,
      query: S.PolicyQuery,
      responses: { 200: { description: 'Policies', schema: S.PolicyCollection } },
      handler: async (r) => {
        await checkRing(r, r.param('id'))
        const only = r.query['policy'] as 'rotation' | 'dualAuthDelete' | undefined
        const list = await engine.getKeyPolicies(r.instance, r.param('id'), only)
        return json(
          r.c,
          200,
          collection(
            POLICY_TYPE,
            list.map((p) => policyResource(o.wire, r.instance, p)),
          ),
        )
      },
    },
    {
      method: 'post',
      path: '/keys/{id}/aliases/{alias}',
      iam: 'kms.secrets.createalias',
      event: 'kms.secrets-alias.create',
      what: 'Create alias',
      summary: 'Add an alias to a key',
      params: S.AliasParams,
      query: S.EmptyQuery,
      responses: {
        200: { description: 'Exists', schema: S.AliasCollection },
        201: { description: 'Created', schema: S.AliasCollection },
      },
      handler: async (r) => {
        const alias = r.param('alias')
        await checkRing(r, r.param('id'))
        let res: { created: boolean }
        try {
          res = await engine.addAlias(r.instance, r.param('id'), alias)
        } catch (err) {
          if (isEngineError(err, 'INVALID_FIELD_ERR')) {
            throw new HttpProblem(400, 'INVALID_PATH_PARAM_ERR', `aliases: ${err.message}`, {
              type: 'path_param',
              name: 'aliases',
            })
          }
          throw err
        }
        const k = await engine.getKey(r.instance, r.param('id'))
        r.keyId = k.id
        return json(
          r.c,
          res.created ? 201 : 200,
          collection(ALIAS_TYPE, [
            { keyId: k.id, alias, createdBy: r.principal.subject, creationDate: rfc3339(new Date()) },
          ]),
        )
      },
    },
    {
      method: 'delete',
      path: '/keys/{id}/aliases/{alias}',
      iam: 'kms.secrets.deletealias',
      event: 'kms.secrets-alias.delete',
      what: 'Delete alias',
      summary: 'Remove an alias',
      params: S.AliasParams,
      query: S.EmptyQuery,
      responses: { 204: { description: 'Removed' } },
      handler: async (r) => {
        await checkRing(r, r.param('id'))
        try {
          await engine.removeAlias(r.instance, r.param('id'), r.param('alias'))
        } catch (err) {
          if (isEngineError(err, 'INVALID_FIELD_ERR')) {
            throw new HttpProblem(400, 'INVALID_PATH_PARAM_ERR', `aliases: ${err.message}`, {
              type: 'path_param',
              name: 'aliases',
            })
          }
          throw err
        }
        return empty(r.c, 204)
      },
    },
    {
      method: 'get',
      path: '/key_rings',
      iam: 'kms.keyrings.list',
      event: 'kms.key-rings.list',
      what: 'List key rings',
      summary: 'List key rings',
      query: S.KeyRingsQuery,
      responses: { 200: { description: 'Key rings', schema: S.KeyRingCollection } },
      handler: async (r) => {
        const limit = int(r.query['limit'], 'limit', 0, 5000, 100)
        const offset = int(r.query['offset'], 'offset', 0, Number.MAX_SAFE_INTEGER, 0)
        const rings = await engine.listKeyRings(r.instance)
        return json(
          r.c,
          200,
          collection(
            KEY_RING_TYPE,
            rings.slice(offset, offset + limit).map((k) => ({
              id: k.id,
              ...(k.createdAt === undefined
                ? {}
                : { creationDate: rfc3339(k.createdAt), createdBy: k.createdBy ?? 'unknown' }),
            })),
            r.query['totalCount'] === 'true' ? { totalCount: rings.length } : {},
          ),
        )
      },
    },
    {
      method: 'post',
      path: '/key_rings/{key-ring-id}',
      iam: 'kms.keyrings.create',
      event: 'kms.key-rings.create',
      what: 'Create key ring',
      summary: 'Create a key ring (201, empty body; 204 if it exists)',
      params: S.KeyRingParam,
      query: S.EmptyQuery,
      responses: { 201: { description: 'Created (empty body)' }, 204: { description: 'Already exists' } },
      handler: async (r) => {
        const id = r.param('key-ring-id')
        const res = await ringCall(() =>
          engine.createKeyRing(r.instance, id, { createdBy: r.principal.subject }),
        )
        return empty(r.c, res.created ? 201 : 204)
      },
    },
    {
      method: 'delete',
      path: '/key_rings/{key-ring-id}',
      iam: 'kms.keyrings.delete',
      event: 'kms.key-rings.delete',
      what: 'Delete key ring',
      summary: 'Delete a key ring (force moves deleted keys to default)',
      params: S.KeyRingParam,
      query: S.DeleteQuery,
      responses: { 204: { description: 'Deleted' } },
      handler: async (r) => {
        const force = bool(r.query['force']) ?? false
        if (force && !allowed(r.principal, r.instance, 'kms.secrets.patch')) {
          throw new HttpProblem(401, 'UNAUTHORIZED_ERR', 'force also needs kms.secrets.patch')
        }
        await ringCall(() => engine.deleteKeyRing(r.instance, r.param('key-ring-id'), { force }))
        return empty(r.c, 204)
      },
    },
  ]

  // Hono dispatches HEAD to the GET route of the same path: the GET handler hands it to the HEAD one.
  const heads = new Map<string, RequestHandler>()
  for (const def of routes) {
    const handler = register(app, def, o, now)
    if (def.method === 'head') heads.set(def.path, handler)
  }
  for (const def of routes) {
    if (def.method === 'head') continue
    const handler = register(app, def, o, now)
    const head = def.method === 'get' ? heads.get(def.path) : undefined
    app.on(def.method.toUpperCase(), `/api/v2${toHono(def.path)}`, (c) =>
      head !== undefined && c.req.method === 'HEAD' ? head(c) : handler(c),
    )
  }
}

type RequestHandler = (c: Context) => Promise<Response>

/** Key-ring id errors are path-parameter errors on the wire. */
async function ringCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (isEngineError(err, 'INVALID_FIELD_ERR')) {
      throw new HttpProblem(400, 'INVALID_PATH_PARAM_ERR', `key-ring-id: ${err.message}`, {
        type: 'path_param',
        name: 'key-ring-id',
      })
    }
    throw err
  }
}

/** Describes `def` in the OpenAPI registry and returns its request handler. */
function register(app: OpenAPIHono, def: RouteDef, o: KeyProtectOptions, now: () => number): RequestHandler {
  const responses: Record<string, unknown> = {}
  for (const [status, r] of Object.entries(def.responses)) {
    responses[status] =
      r.schema === undefined
        ? { description: r.description }
        : { description: r.description, content: { 'application/json': { schema: r.schema } } }
  }
  responses['default'] = {
    description: 'Error',
    content: { 'application/json': { schema: S.ErrorCollection } },
  }
  const route = createRoute({
    method: def.method,
    path: `/api/v2${def.path}`,
    summary: def.summary,
    tags: ['Key Protect'],
    request: {
      headers: S.Headers,
      query: def.query,
      ...(def.params === undefined ? {} : { params: def.params }),
      ...(def.body === undefined
        ? {}
        : {
            body: {
              required: def.body.required,
              content: {
                [def.body.contentType]: { schema: def.body.schema },
                'application/json': { schema: def.body.schema },
              },
            },
          }),
    },
    responses: responses as Parameters<typeof createRoute>[0]['responses'],
  })
  app.openAPIRegistry.registerPath(route)
  const event = def.event ?? def.iam
  const paramNames = new Map(
    [...def.path.matchAll(/\{([^}]+)\}/g)].map((m) => [
      m[1] ?? '',
      (m[1] ?? '').replace(/[^A-Za-z0-9]/g, '_'),
    ]),
  )
  const limiterRoute = `${def.method.toUpperCase()} ${def.path}`

  return async (c) => {
    const correlationId = correlationIdOf(header(c, 'correlation-id'))
    c.set('correlationId' as never, correlationId as never)
    const counter = o.inFlight
    if (counter !== undefined) counter.n++
    let principal: Principal | undefined
    let instance: string | undefined
    let req: Req | undefined
    let status = 500
    let reason: string | undefined
    try {
      try {
        principal = await o.auth.authenticate(header(c, 'authorization'))
      } catch (err) {
        if (err instanceof AuthError) throw new HttpProblem(401, 'UNAUTHORIZED_ERR', err.message)
        throw err
      }
      instance = header(c, 'bluemix-instance')
      if (instance === undefined || instance.length === 0) {
        throw new HttpProblem(400, 'MISSING_FIELD_ERR', "The header 'bluemix-instance' is required.", {
          type: 'header',
          name: 'bluemix-instance',
        })
      }
      if (!allowed(principal, instance, def.iam)) {
        throw new HttpProblem(401, 'UNAUTHORIZED_ERR', `not allowed: ${def.iam}`)
      }
      const rlKey = `${instance}\u0000${limiterRoute}`
      const t = now()
      if (!o.limiter.take(rlKey, t)) {
        throw new HttpProblem(429, 'TOO_MANY_REQUESTS_ERR', 'rate limit', undefined, {
          'Retry-After': String(o.limiter.retryAfterSec(rlKey, t)),
        })
      }
      // Most calls have no query string: skip parsing it.
      const query = (c.req.url.includes('?') ? validate(def.query, c.req.query(), 'param') : {}) as Record<
        string,
        string
      >
      let body: unknown
      if (def.body !== undefined) {
        const text = await readBody(c, o.bodyLimitBytes)
        if (text.trim().length > 0) {
          let parsed: unknown
          try {
            parsed = JSON.parse(text)
          } catch {
            throw new HttpProblem(400, 'BAD_BODY_ERR', 'The request body is not valid JSON.')
          }
          body = validate(def.body.schema, normalizeKeys(parsed, def.body.schema), 'field')
        } else if (def.body.required) {
          throw new HttpProblem(400, 'MISSING_FIELD_ERR', 'The request body is required.', {
            type: 'field',
            name: 'body',
          })
        }
      }
      const preferRaw = header(c, 'prefer')?.trim().toLowerCase()
      const keyRing = header(c, 'x-kms-key-ring')
      req = {
        c,
        instance,
        principal,
        body,
        query,
        param: (name) => c.req.param(paramNames.get(name) ?? name) ?? '',
        keyRing: keyRing === undefined || keyRing.length === 0 ? undefined : keyRing,
        prefer:
          preferRaw === 'return=representation' || preferRaw === 'return=minimal' ? preferRaw : undefined,
        keyId: undefined,
      }
      if (def.params !== undefined && 'id' in def.params.shape) req.keyId = req.param('id')
      const res = await def.handler(req)
      status = res.status
      return res
    } catch (err) {
      const p = toProblem(err)
      if (p.status >= 500) o.onServerError?.(err, correlationId)
      status = p.status
      reason = p.code
      return new Response(JSON.stringify(errorBody(p.status, p.code, p.message, def.what, p.target)), {
        status: p.status,
        headers: { 'content-type': 'application/json', 'correlation-id': correlationId, ...p.headers },
      })
    } finally {
      if (counter !== undefined) counter.n--
      o.audit.record({
        event,
        outcome: status < 400 ? 'success' : 'failure',
        status,
        subject: principal?.subject,
        instance,
        keyId: req?.keyId,
        correlationId,
        reason,
        method: def.method.toUpperCase(),
        route: `/api/v2${def.path}`,
      })
    }
  }
}

/**
 * The request body as text, refused past `limit` bytes (by Content-Length up front, or while reading).
 * Reads Node's IncomingMessage directly when served by @hono/node-server (no web-stream conversion).
 */
async function readBody(c: Context, limit: number): Promise<string> {
  const tooLarge = (): HttpProblem =>
    new HttpProblem(413, 'BODY_TOO_LARGE_ERR', `The request body exceeds ${limit} bytes.`)
  const declared = Number(header(c, 'content-length') ?? Number.NaN)
  if (declared > limit) throw tooLarge()
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
  if (incoming === undefined) {
    const buf = Buffer.from(await c.req.arrayBuffer())
    if (buf.length > limit) throw tooLarge()
    return buf.toString('utf8')
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of incoming as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw tooLarge()
    chunks.push(chunk)
  }
  return chunks.length === 1
    ? (chunks[0] ?? Buffer.alloc(0)).toString('utf8')
    : Buffer.concat(chunks).toString('utf8')
}

/** Any error → its wire form. Unknown errors are internal (their detail stays in the server log). */
export function toProblem(err: unknown): HttpProblem {
  if (err instanceof HttpProblem) return err
  if (err instanceof EngineError) {
    const w = wireOf(err.code)
    return new HttpProblem(w.status, w.code, w.status >= 500 ? 'service error' : err.message, err.target)
  }
  return new HttpProblem(500, 'INTERNAL_SERVER_ERR', 'internal error')
}

/** A correlation id for the request: the caller's, or a fresh v4 UUID. */
export function correlationIdOf(header: string | undefined): string {
  return header !== undefined && /^[A-Za-z0-9-]{1,128}$/.test(header) ? header : randomUUID()
}
