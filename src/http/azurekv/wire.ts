/**
 * Key Vault's JSON shapes (keys REST API, api-version 7.4 to 2025-07-01): key bundles, deleted key bundles,
 * list items, key operation results, the error body; and the readers of request fields (base64url values,
 * attributes, tags, key_ops), which raise {@link AzureError} `BadParameter` on malformed input.
 */
import type { VaultKeyOp, VaultKeyVersionRecord } from '../../core/ports-vault-keys.js'
import type { VaultKeyView } from '../../core/vault-keys/vault-keys.js'

export type Json = Record<string, unknown>

/** An error raised in Key Vault terms: `{"error":{"code","message"}}` with `status`. */
export class AzureError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/** A `BadParameter` (400). */
export function badParameter(message: string): AzureError {
  return new AzureError(400, 'BadParameter', message)
}

/** What a response is built from: where the client reached us, and the retention of soft deletion. */
export interface WireContext {
  /** `https://host:port` as the client used it (kids are built on it: crypto clients call the kid's origin). */
  readonly origin: string
  readonly retentionDays: number
}

const seconds = (ms: number): number => Math.floor(ms / 1000)

function kidOf(w: WireContext, v: VaultKeyVersionRecord, withVersion = true): string {
  const base = `${w.origin}/keys/${encodeURIComponent(v.name)}`
  return withVersion ? `${base}/${v.version}` : base
}

function attributesOf(w: WireContext, v: VaultKeyVersionRecord): Json {
  return {
    enabled: v.enabled,
    ...(v.notBefore === undefined ? {} : { nbf: seconds(v.notBefore) }),
    ...(v.expires === undefined ? {} : { exp: seconds(v.expires) }),
    created: seconds(v.createdAt),
    updated: seconds(v.updatedAt),
    recoveryLevel: w.retentionDays === 90 ? 'Recoverable+Purgeable' : 'CustomizedRecoverable+Purgeable',
    recoverableDays: w.retentionDays,
    exportable: false,
  }
}

function deletedPart(w: WireContext, view: VaultKeyView): Json {
  const d = view.key.deleted
  if (d === undefined) return {}
  return {
    recoveryId: `${w.origin}/deletedkeys/${encodeURIComponent(view.key.name)}`,
    deletedDate: seconds(d.deletedAt),
    scheduledPurgeDate: seconds(d.purgeAt),
  }
}

/** A key bundle (create, import, get, update, rotate; delete and deleted keys add the deletion fields). */
export function keyBundle(w: WireContext, view: VaultKeyView): Json {
  const v = view.version
  const key: Json = { kid: kidOf(w, v), kty: v.kty, key_ops: [...v.keyOps] }
  if (v.publicKey !== undefined) {
    key['n'] = v.publicKey.n.toString('base64url')
    key['e'] = v.publicKey.e.toString('base64url')
  }
  return { key, attributes: attributesOf(w, v), tags: { ...v.tags }, ...deletedPart(w, view) }
}

/** A list item: `kid` without version for keys, with it for versions. */
export function keyItem(w: WireContext, view: VaultKeyView, withVersion: boolean): Json {
  return {
    kid: kidOf(w, view.version, withVersion),
    attributes: attributesOf(w, view.version),
    tags: { ...view.version.tags },
    ...deletedPart(w, view),
  }
}

/** A key operation result (`kid` of the version used, the output value, AES-GCM's iv/tag/aad). */
export function operationResult(
  w: WireContext,
  v: VaultKeyVersionRecord,
  value: Buffer,
  extra: { iv?: Buffer | undefined; tag?: Buffer | undefined; aad?: Buffer | undefined } = {},
): Json {
  return {
    kid: kidOf(w, v),
    value: value.toString('base64url'),
    ...(extra.iv === undefined ? {} : { iv: extra.iv.toString('base64url') }),
    ...(extra.tag === undefined ? {} : { tag: extra.tag.toString('base64url') }),
    ...(extra.aad === undefined || extra.aad.length === 0 ? {} : { aad: extra.aad.toString('base64url') }),
  }
}

const B64URL = /^[A-Za-z0-9_-]*={0,2}$/

/** A base64url field (padded or not); undefined when absent or null. */
export function bytesField(body: Json, name: string, required: true): Buffer
export function bytesField(body: Json, name: string, required?: false): Buffer | undefined
export function bytesField(body: Json, name: string, required = false): Buffer | undefined {
  const v = body[name]
  if (v === undefined || v === null) {
    if (required) throw badParameter(`${name}: is required`)
    return undefined
  }
  if (typeof v !== 'string' || !B64URL.test(v)) throw badParameter(`${name}: must be base64url`)
  const b = Buffer.from(v, 'base64url')
  if (b.toString('base64url') !== v.replace(/=+$/, '')) throw badParameter(`${name}: must be base64url`)
  return b
}

/** A required string field. */
export function stringField(body: Json, name: string): string {
  const v = body[name]
  if (typeof v !== 'string' || v.length === 0) throw badParameter(`${name}: is required (a string)`)
  return v
}

const OPS: readonly string[] = ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey']

/** `key_ops`: a list of operation names; unknown names and operations this engine lacks are refused. */
export function keyOpsField(v: unknown): VaultKeyOp[] | undefined {
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw badParameter('key_ops: must be a list of operation names')
  for (const op of v) {
    if (!OPS.includes(op))
      throw badParameter(
        `key_ops: ${op.slice(0, 40)} is not supported (encrypt, decrypt, wrapKey, unwrapKey)`,
      )
  }
  return v as VaultKeyOp[]
}

/** `tags`: an object of string values. */
export function tagsField(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'object' || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string'))
    throw badParameter('tags: must be an object of string values')
  return v as Record<string, string>
}

/** `attributes`: enabled, nbf and exp (seconds since the epoch; null clears, on update). */
export function attributesField(v: unknown): {
  enabled: boolean | undefined
  notBefore: number | null | undefined
  expires: number | null | undefined
} {
  if (v === undefined || v === null) return { enabled: undefined, notBefore: undefined, expires: undefined }
  if (typeof v !== 'object' || Array.isArray(v)) throw badParameter('attributes: must be an object')
  const a = v as Json
  const enabled = a['enabled']
  if (enabled !== undefined && enabled !== null && typeof enabled !== 'boolean')
    throw badParameter('attributes.enabled: must be a boolean')
  const time = (name: string): number | null | undefined => {
    const t = a[name]
    if (t === undefined) return undefined
    if (t === null) return null
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0)
      throw badParameter(`attributes.${name}: must be seconds since the epoch`)
    return t * 1000
  }
  return { enabled: enabled ?? undefined, notBefore: time('nbf'), expires: time('exp') }
}
