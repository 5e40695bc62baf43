/**
 * Translation between AWS KMS wire shapes and the engine: key ids, ARNs and alias names, the encryption
 * context as engine AAD, key metadata. AWS terms (CMK, ARN, encryption context) stay in this folder.
 */
import { createHash } from 'node:crypto'
import { EngineError, invalidField } from '../../core/errors.js'
import type { KeyInfo } from '../../core/engine.js'

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const ARN_RE = /^arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):(key\/.+|alias\/.+)$/

/** The tenant and place the request is served in. */
export interface Scope {
  readonly instance: string
  readonly accountId: string
  readonly region: string
}

/** A 12-digit account id derived from the instance when none is configured. */
export function accountIdOf(instance: string): string {
  const n = createHash('sha256').update(`envelope-kms/aws-account/${instance}`).digest().readBigUInt64BE(0)
  return (n % 10n ** 12n).toString().padStart(12, '0')
}

export function keyArn(s: Scope, keyId: string): string {
  return `arn:aws:kms:${s.region}:${s.accountId}:key/${keyId}`
}

export function aliasArn(s: Scope, aliasName: string): string {
  return `arn:aws:kms:${s.region}:${s.accountId}:${aliasName}`
}

const notFound = (what: string): EngineError =>
  new EngineError('KEY_NOT_FOUND_ERR', `Key '${what}' does not exist`)

/**
 * What a `KeyId` names: a key id, or an alias name to resolve. ARNs of another account or region name
 * nothing here (NotFoundException, exactly as for a key that does not exist).
 */
export function parseKeyRef(s: Scope, keyId: unknown, field = 'KeyId'): { id: string } | { alias: string } {
  if (typeof keyId !== 'string' || keyId.length === 0 || keyId.length > 2048) {
    throw invalidField(field, 'must be a key id, key ARN, alias name or alias ARN')
  }
  let ref = keyId
  const arn = ARN_RE.exec(keyId)
  if (arn !== null) {
    if (arn[2] !== s.region || arn[3] !== s.accountId) throw notFound(keyId)
    ref = arn[4] ?? ''
    if (ref.startsWith('key/')) ref = ref.slice(4)
  }
  if (ref.startsWith('alias/')) return { alias: ref }
  if (!UUID_RE.test(ref)) throw notFound(keyId)
  return { id: ref.toLowerCase() }
}

/** Alias names: `alias/` then 1–250 characters `[A-Za-z0-9/_-]`; `alias/aws/` is reserved for AWS. */
export function validateAliasName(name: unknown, field = 'AliasName'): string {
  if (typeof name !== 'string' || !/^alias\/[A-Za-z0-9/_-]{1,250}$/.test(name)) {
    throw invalidField(field, "must be 'alias/' followed by 1-250 characters [A-Za-z0-9/_-]")
  }
  if (name.startsWith('alias/aws/'))
    throw invalidField(field, "names starting with 'alias/aws/' are reserved")
  return name
}

/**
 * The engine AAD of an encryption context: its pairs sorted by key (UTF-16 code units), flattened to
 * `[k1, v1, k2, v2, ...]`. The engine binds the list length-prefixed, so two contexts never encode alike,
 * the order the caller wrote the pairs in does not matter, and no context is the empty list.
 */
export function contextToAad(ctx: unknown, field = 'EncryptionContext'): string[] {
  if (ctx === undefined || ctx === null) return []
  if (typeof ctx !== 'object' || Array.isArray(ctx)) throw invalidField(field, 'must be a map of strings')
  const entries = Object.entries(ctx as Record<string, unknown>)
  const out: string[] = []
  for (const [k, v] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (k.length === 0 || typeof v !== 'string')
      throw invalidField(field, 'keys must be non-empty, values strings')
    out.push(k, v)
  }
  return out
}

/** Decodes a base64 blob field strictly. */
export function blobOf(v: unknown, field: string, min: number, max: number): Buffer {
  if (typeof v !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(v)) {
    throw invalidField(field, 'must be base64')
  }
  const b = Buffer.from(v, 'base64')
  if (b.length < min || b.length > max) throw invalidField(field, `must be ${min}-${max} bytes`)
  return b
}

/** An optional integer field within bounds. */
export function intOf(v: unknown, field: string, min: number, max: number, dflt: number): number {
  if (v === undefined || v === null) return dflt
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalidField(field, `must be an integer ${min}-${max}`)
  }
  return v
}

/** AWS KeyState of an engine key. */
export function keyStateOf(k: KeyInfo, deletionDate: Date | undefined): string {
  if (deletionDate !== undefined || k.state === 5) return 'PendingDeletion'
  if (k.state === 1) return 'Enabled'
  if (k.state === 0) return 'PendingImport'
  if (k.state === 2) return 'Disabled'
  return 'Unavailable'
}

const seconds = (d: Date): number => d.getTime() / 1000

/** `KeyMetadata` of DescribeKey / CreateKey. */
export function keyMetadata(s: Scope, k: KeyInfo, deletionDate: Date | undefined): Record<string, unknown> {
  const state = keyStateOf(k, deletionDate)
  const deletion = deletionDate ?? k.purgeScheduledOn
  return {
    AWSAccountId: s.accountId,
    KeyId: k.id,
    Arn: keyArn(s, k.id),
    CreationDate: seconds(k.createdAt),
    Enabled: state === 'Enabled',
    Description: k.description ?? '',
    KeyUsage: 'ENCRYPT_DECRYPT',
    KeyState: state,
    ...(state === 'PendingDeletion' && deletion !== undefined ? { DeletionDate: seconds(deletion) } : {}),
    Origin: 'AWS_KMS',
    KeyManager: 'CUSTOMER',
    CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
    KeySpec: 'SYMMETRIC_DEFAULT',
    EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
    MultiRegion: false,
  }
}

/** KMS `RotationPeriodInDays` ↔ Key Protect whole months (30 days each, 1–12). */
export function monthsOfDays(days: number): number {
  return Math.min(12, Math.max(1, Math.ceil(days / 30)))
}

export { seconds }
