/**
 * Translation between AWS KMS wire shapes and the engine: key ids, ARNs and alias names, the encryption
 * context as engine AAD, key metadata. AWS terms (CMK, ARN, encryption context) stay in this folder.
 */
import { createHash } from 'node:crypto'
import { EngineError, invalidField } from '../../core/errors.js'
import type { KeyInfo } from '../../core/engine.js'

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
/** A multi-region key id: `mrk-` and the engine key's UUID without its dashes. */
const MRK_RE = /^mrk-([0-9a-fA-F]{32})$/
const ARN_RE = /^arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):(key\/.+|alias\/.+)$/

/** The tenant and place the request is served in. */
export interface Scope {
  readonly instance: string
  readonly accountId: string
  /** The request's region (its SigV4 credential scope). */
  readonly region: string
  /** Engine key ids of multi-region keys met in this request: their AWS key id is the `mrk-` form. */
  readonly multiRegionKeys?: ReadonlySet<string>
}

/** The `mrk-` key id of an engine key id (a UUID): `mrk-` and the UUID's 32 hex digits. */
export function mrkIdOf(engineKeyId: string): string {
  return `mrk-${engineKeyId.replaceAll('-', '').toLowerCase()}`
}

/** The engine key id (UUID) of a `mrk-` key id, or undefined when `id` is not one. */
export function engineIdOfMrk(id: string): string | undefined {
  const h = MRK_RE.exec(id)?.[1]?.toLowerCase()
  if (h === undefined) return undefined
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

/** The AWS key id of an engine key: the `mrk-` form for a multi-region key, the UUID otherwise. */
export function awsKeyId(s: Scope, engineKeyId: string): string {
  return s.multiRegionKeys?.has(engineKeyId) === true ? mrkIdOf(engineKeyId) : engineKeyId
}

/** A 12-digit account id derived from the instance when none is configured. */
export function accountIdOf(instance: string): string {
  const n = createHash('sha256').update(`envelope-kms/aws-account/${instance}`).digest().readBigUInt64BE(0)
  return (n % 10n ** 12n).toString().padStart(12, '0')
}

/** The ARN of an engine key in the request's region (`mrk-` id for a multi-region key). */
export function keyArn(s: Scope, keyId: string): string {
  return keyArnIn(s, keyId, s.region)
}

/** The ARN of an engine key in `region`. */
export function keyArnIn(s: Scope, keyId: string, region: string): string {
  return `arn:aws:kms:${region}:${s.accountId}:key/${awsKeyId(s, keyId)}`
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
  const mrk = engineIdOfMrk(ref)
  if (mrk !== undefined) return { id: mrk }
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

/** Where a multi-region key is: its primary's region and its replicas' regions (served ones). */
export interface MultiRegionPlace {
  readonly primaryRegion: string
  readonly replicaRegions: readonly string[]
}

/**
 * `KeyMetadata` of DescribeKey / CreateKey / ReplicateKey, in the scope's region. `mr`: the key is a
 * multi-region key (MultiRegion true and its MultiRegionConfiguration). `description`: the key's
 * description in this region when it has its own (a replica's).
 */
export function keyMetadata(
  s: Scope,
  k: KeyInfo,
  deletionDate: Date | undefined,
  mr?: MultiRegionPlace,
  description?: string,
): Record<string, unknown> {
  const state = keyStateOf(k, deletionDate)
  const deletion = deletionDate ?? k.purgeScheduledOn
  const scope: Scope = mr === undefined ? s : { ...s, multiRegionKeys: new Set([k.id]) }
  const arnIn = (region: string): { Arn: string; Region: string } => ({
    Arn: keyArnIn(scope, k.id, region),
    Region: region,
  })
  return {
    AWSAccountId: s.accountId,
    KeyId: awsKeyId(scope, k.id),
    Arn: keyArn(scope, k.id),
    CreationDate: seconds(k.createdAt),
    Enabled: state === 'Enabled',
    Description: description ?? k.description ?? '',
    KeyUsage: 'ENCRYPT_DECRYPT',
    KeyState: state,
    ...(state === 'PendingDeletion' && deletion !== undefined ? { DeletionDate: seconds(deletion) } : {}),
    Origin: 'AWS_KMS',
    KeyManager: 'CUSTOMER',
    CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
    KeySpec: 'SYMMETRIC_DEFAULT',
    EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
    MultiRegion: mr !== undefined,
    ...(mr === undefined
      ? {}
      : {
          MultiRegionConfiguration: {
            MultiRegionKeyType: mr.primaryRegion === s.region ? 'PRIMARY' : 'REPLICA',
            PrimaryKey: arnIn(mr.primaryRegion),
            ReplicaKeys: mr.replicaRegions.map(arnIn),
          },
        }),
  }
}

/** KMS `RotationPeriodInDays` ↔ Key Protect whole months (30 days each, 1–12). */
export function monthsOfDays(days: number): number {
  return Math.min(12, Math.max(1, Math.ceil(days / 30)))
}

export { seconds }
