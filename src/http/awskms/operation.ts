/**
 * What every AWS KMS operation handler shares: its context, the error it raises in AWS terms, and the
 * helpers that read AWS-shaped inputs (key references, markers, tags, fixed values).
 */
import type { EnvelopeEngine } from '../../core/engine.js'
import { EngineError, invalidField, isEngineError } from '../../core/errors.js'
import { present, type RegionScope } from './regions.js'
import { keyArn, parseKeyRef } from './translate.js'

import { AwsError } from './aws-error.js'

export { AwsError }

export type Json = Record<string, unknown>
/** One operation (`TrentService.<name>`): the request body in, the response body out. */
export type Handler = (ctx: OpContext, body: Json) => Promise<Json>

export interface OpContext extends RegionScope {
  readonly engine: EnvelopeEngine
  /** The operation's name (`Encrypt`); its key-policy action is `kms:<name>` unless it says otherwise. */
  readonly op: string
  /** The first key id a reference was resolved to (for the audit event); set by {@link keyIdOf}. */
  readonly seen?: { keyId: string | undefined }
}

export const CONTENT_TYPE = 'application/x-amz-json-1.1'
export const MAX_PLAINTEXT = 4096
export const MAX_CIPHERTEXT = 6144

/**
 * The engine key id a key reference (id, `mrk-` id, ARN, alias, alias ARN) names, once the key is known to
 * be present in the request's region and its key policy there allows `action` (default `kms:<operation>`;
 * null: presence only).
 * @throws EngineError KEY_NOT_FOUND_ERR; AwsError AccessDeniedException
 */
export async function keyIdOf(
  c: OpContext,
  v: unknown,
  field = 'KeyId',
  action: string | null = `kms:${c.op}`,
): Promise<string> {
  const ref = parseKeyRef(c, v, field)
  let id: string
  if ('id' in ref) id = ref.id
  else {
    try {
      id = await c.engine.resolveAliasName(c.instance, ref.alias)
    } catch (err) {
      if (isEngineError(err, 'ALIAS_NOT_FOUND_ERR')) {
        throw new EngineError('KEY_NOT_FOUND_ERR', `Alias '${ref.alias}' is not found.`)
      }
      throw err
    }
  }
  saw(c, id)
  await present(c, id, action)
  return id
}

/** Notes `id` as the request's key for its audit event (the first one noted stays); returns it. */
export function saw(c: OpContext, id: string): string {
  if (c.seen !== undefined) c.seen.keyId ??= id
  return id
}

/** AWS tells a disabled key (DisabledException) from other states (KMSInvalidStateException). */
export async function stateError(c: OpContext, keyId: string, err: unknown): Promise<never> {
  if (isEngineError(err, 'KEY_ACTION_INVALID_STATE_ERR')) {
    const k = await c.engine.getKey(c.instance, keyId).catch(() => undefined)
    const pending = await c.engine.getKeyDeletionDate(c.instance, keyId).catch(() => undefined)
    if (k?.state === 2 && pending === undefined)
      throw new AwsError('DisabledException', `${keyArn(c, keyId)} is disabled.`)
    if (pending !== undefined)
      throw new AwsError('KMSInvalidStateException', `${keyArn(c, keyId)} is pending deletion.`)
  }
  throw err
}

export function onlyValue(v: unknown, allowed: readonly string[], field: string): void {
  if (v !== undefined && v !== null && !allowed.includes(v as string)) {
    throw new AwsError(
      'UnsupportedOperationException',
      `${field} ${JSON.stringify(v)} is not supported by this endpoint`,
    )
  }
}

export function tagPairsOf(tags: unknown): { key: string; value: string }[] {
  if (tags === undefined || tags === null) return []
  if (!Array.isArray(tags)) throw invalidField('Tags', 'must be a list of {TagKey, TagValue}')
  return tags.map((t: unknown) => {
    const o = t as { TagKey?: unknown; TagValue?: unknown } | null
    if (
      typeof o !== 'object' ||
      o === null ||
      typeof o.TagKey !== 'string' ||
      typeof o.TagValue !== 'string'
    ) {
      throw invalidField('Tags', 'each tag must be {TagKey: string, TagValue: string}')
    }
    return { key: o.TagKey, value: o.TagValue }
  })
}

export function markerOf(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string' || !/^[A-Za-z0-9_-]{1,1400}$/.test(v))
    throw invalidField('Marker', 'is not a marker this endpoint issued')
  return Buffer.from(v, 'base64url').toString('utf8')
}
export const marker = (s: string): string => Buffer.from(s, 'utf8').toString('base64url')
