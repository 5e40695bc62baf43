/**
 * What a Key Protect handler receives ({@link Req}) and the helpers that read and check a request: schema
 * validation with Key Protect's error shapes, key-name normalisation, the body reader, query-string
 * scalars, and the key-ring check of `X-Kms-Key-Ring`.
 */
import type { z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import type { KeyPoliciesInput, SecureImportInput } from '../../core/engine.js'
import type { ImportAlgorithm } from '../../core/ports.js'
import type { Principal } from '../auth.js'
import { BODY_REFUSED_HEADERS, BodyBudgetError, BodyTooLargeError, type BodyBudget } from '../body.js'
import { InvalidJsonError, readJsonBody } from '../request-frame.js'
import type { WireCode } from '../errors.js'
import type { WireTarget } from './wire.js'

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

/**
 * One authenticated, authorised and validated request, as a handler sees it. A class, not a literal with a
 * closure: one allocation per request and one shape for every route.
 */
export class Req {
  /** Set by handlers for the audit event. */
  keyId: string | undefined = undefined

  constructor(
    readonly c: Context,
    readonly correlationId: string,
    readonly instance: string,
    readonly principal: Principal,
    readonly body: unknown,
    readonly query: Record<string, string>,
    readonly keyRing: string | undefined,
    readonly prefer: 'return=representation' | 'return=minimal' | undefined,
    /** Path parameter name (`key-ring-id`) → Hono's name for it (`key_ring_id`). */
    private readonly paramNames: ReadonlyMap<string, string>,
  ) {}

  /** The path parameter `name` (as spelled in the OpenAPI path), or ''. */
  param(name: string): string {
    return this.c.req.param(this.paramNames.get(name) ?? name) ?? ''
  }
}

export function b64(s: string): Buffer {
  return Buffer.from(s, 'base64')
}

export function bool(v: string | undefined): boolean | undefined {
  return v === undefined ? undefined : v === 'true'
}

export function int(v: string | undefined, name: string, min: number, max: number, dflt: number): number {
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

export function normalizeKeys(v: unknown, schema: z.ZodType): unknown {
  const shape = (schema as { shape?: Record<string, z.ZodType> }).shape
  if (shape === undefined || typeof v !== 'object' || v === null || Array.isArray(v)) return v
  // Already in the schema's spelling (the common case): no copy. `__proto__` and `resources` take the slow
  // path (the copy drops an own `__proto__` key; resources are normalised element by element).
  let exact = true
  for (const k in v) {
    if (k === 'resources' || !Object.hasOwn(shape, k)) {
      exact = false
      break
    }
  }
  if (exact) return v
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

/**
 * `value` checked against `schema`, or the first issue as a Key Protect error: MISSING_FIELD_ERR for an
 * absent required field, INVALID_FIELD_ERR (body) or INVALID_PARAM_ERR (query) otherwise.
 */
export function validate<T extends z.ZodType>(
  schema: T,
  value: unknown,
  where: 'field' | 'param',
): z.infer<T> {
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

/**
 * The material fields of create, rotate and restore: a plaintext `payload`, or, when any of
 * `encryptedNonce`, `iv`, `encryptionAlgorithm` is present, a secure import with the instance's import token
 * (the engine checks that all of them are there). The caller zeroes the returned buffers.
 */
export function materialInput(r: {
  payload?: string | undefined
  encryptedNonce?: string | undefined
  iv?: string | undefined
  encryptionAlgorithm?: ImportAlgorithm | undefined
}): { payload?: Buffer; secureImport?: SecureImportInput } {
  if (r.encryptedNonce === undefined && r.iv === undefined && r.encryptionAlgorithm === undefined) {
    return r.payload === undefined ? {} : { payload: b64(r.payload) }
  }
  const secureImport = {
    ...(r.payload === undefined ? {} : { payload: b64(r.payload) }),
    ...(r.encryptedNonce === undefined ? {} : { encryptedNonce: b64(r.encryptedNonce) }),
    ...(r.iv === undefined ? {} : { iv: b64(r.iv) }),
    ...(r.encryptionAlgorithm === undefined ? {} : { encryptionAlgorithm: r.encryptionAlgorithm }),
  } as SecureImportInput
  return { secureImport }
}

/** Key Protect's policy resources → the engine's policy input. */
export function policiesInput(
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

/**
 * The request body parsed as JSON (`undefined` when empty), refused past `limit` bytes (by Content-Length up
 * front, or while reading: see `readCappedBody` in body.ts), and admitted against the listener's `budget` of body
 * bytes in flight; the failures in Key Protect's terms.
 */
export async function readBody(c: Context, limit: number, budget?: BodyBudget): Promise<unknown> {
  try {
    return await readJsonBody(c, limit, budget)
  } catch (err) {
    if (err instanceof InvalidJsonError) throw new HttpProblem(400, 'BAD_BODY_ERR', err.message)
    if (err instanceof BodyTooLargeError) {
      throw new HttpProblem(
        413,
        'BODY_TOO_LARGE_ERR',
        `The request body exceeds ${limit} bytes.`,
        undefined,
        BODY_REFUSED_HEADERS,
      )
    }
    if (err instanceof BodyBudgetError) {
      throw new HttpProblem(
        503,
        'SERVICE_UNAVAILABLE_ERR',
        'Too many request bodies in flight; retry later.',
        undefined,
        { 'Retry-After': '1', ...BODY_REFUSED_HEADERS },
      )
    }
    throw err
  }
}
