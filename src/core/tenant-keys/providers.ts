/**
 * The provider registry rules: register (ARN syntax, duplicate, description at the source), patch (JSON
 * Patch of name and description), delete (never the default, the current or a migrating provider, nor one
 * with entries under it) and test (probes and compliance).
 */
import { randomUUID } from 'node:crypto'
import { EngineError, invalidField } from '../errors.js'
import type {
  ComplianceRecord,
  KeyProviderKind,
  KeyProviderRecord,
  ProbeResult,
} from '../ports-tenant-keys.js'
import { SecretBytes } from '../secret-bytes.js'
import type { TenantKeysCore } from './core.js'
import { providerFingerprint } from './fingerprint.js'
import type { RegisterKeyProviderInput } from './types.js'
import { COMPLIANCE_CODES, complianceOf } from './views.js'

/** `arn:aws:kms:<region>:<12 digits>:key/<uuid or mrk-32hex>`. */
export const AWS_KMS_KEY_ARN_RE =
  /^arn:aws:kms:([a-z]{2}(?:-[a-z]+)+-\d{1,2}):(\d{12}):key\/((?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})|(?:mrk-[0-9a-f]{32}))$/

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const MAX_NAME = 256
const MAX_DESCRIPTION = 1024

/** The region of a valid AWS KMS key ARN. @throws EngineError KEY_PROVIDER_ARN_INVALID */
export function arnRegion(arn: string): string {
  const m = AWS_KMS_KEY_ARN_RE.exec(arn)
  if (m?.[1] === undefined) {
    throw new EngineError(
      'KEY_PROVIDER_ARN_INVALID',
      'arn: must be arn:aws:kms:<region>:<12-digit account>:key/<key id or mrk- id>',
      { target: { type: 'field', name: 'arn' } },
    )
  }
  return m[1]
}

function checkName(v: unknown, field: 'name' | 'description'): string {
  if (typeof v !== 'string') throw invalidField(field, 'must be a string')
  const max = field === 'name' ? MAX_NAME : MAX_DESCRIPTION
  if (field === 'name' && v.trim().length === 0) throw invalidField(field, 'must not be empty')
  if (v.length > max) throw invalidField(field, `must be at most ${max} characters`)
  if (/[\u0000-\u001f\u007f]/.test(v)) throw invalidField(field, 'must not contain control characters')
  return v
}

/**
 * Validates a JSON Patch of a provider: an array of `{op: "replace", path: "/name" | "/description",
 * value: string}`, at least one. Returns the resulting name and description changes.
 * @throws EngineError INVALID_FIELD_ERR (nothing is applied)
 */
export function validatePatch(ops: unknown): { name?: string; description?: string } {
  if (!Array.isArray(ops) || ops.length === 0) {
    throw invalidField('patch', 'must be a non-empty array of JSON Patch operations')
  }
  const out: { name?: string; description?: string } = {}
  for (const op of ops as unknown[]) {
    if (typeof op !== 'object' || op === null || Array.isArray(op)) {
      throw invalidField('patch', 'each operation must be an object {op, path, value}')
    }
    const o = op as Record<string, unknown>
    for (const k of Object.keys(o)) {
      if (k !== 'op' && k !== 'path' && k !== 'value' && k !== 'from') {
        throw invalidField('patch', `unknown member ${JSON.stringify(k).slice(0, 40)}`)
      }
    }
    if (o['op'] !== 'replace') throw invalidField('patch.op', 'only "replace" is supported')
    if (o['path'] === '/name') out.name = checkName(o['value'], 'name')
    else if (o['path'] === '/description') out.description = checkName(o['value'], 'description')
    else throw invalidField('patch.path', 'must be "/name" or "/description"')
  }
  return out
}

/** Registers a provider. */
export async function registerProvider(
  core: TenantKeysCore,
  tenant: string,
  input: RegisterKeyProviderInput,
): Promise<KeyProviderRecord> {
  if (typeof input !== 'object' || (input as unknown) === null)
    throw invalidField('body', 'must be an object')
  if (input.arn === undefined || input.arn === '') {
    throw new EngineError('MISSING_FIELD_ERR', 'arn: is required', { target: { type: 'field', name: 'arn' } })
  }
  if (input.name === undefined) {
    throw new EngineError('MISSING_FIELD_ERR', 'name: is required', {
      target: { type: 'field', name: 'name' },
    })
  }
  const name = checkName(input.name, 'name')
  const description =
    input.description === undefined ? undefined : checkName(input.description, 'description')
  const kind: KeyProviderKind = input.kind ?? 'aws-kms'
  if (kind !== 'aws-kms' && kind !== 'engine-key') throw invalidField('keyprovider', 'must be AWS-KMS')
  if (typeof input.arn !== 'string') throw invalidField('arn', 'must be a string')
  const arn = input.arn
  let multiRegion = false
  let replicaKeys: KeyProviderRecord['replicaKeys'] = []
  const fingerprint = providerFingerprint(tenant, arn)
  if (kind === 'aws-kms') {
    arnRegion(arn)
    if ((await core.store.getKeyProvider(tenant, fingerprint)) !== undefined) throw exists()
    if (core.awsKms === undefined) {
      throw new EngineError('PROVIDER_UNSUPPORTED', 'tenant key providers: no AWS KMS backend is configured')
    }
    const d = await core.awsKms.describe(arn)
    if (!d.symmetric) {
      throw new EngineError('KEY_PROVIDER_ARN_INVALID', 'arn: the key is not a symmetric encryption key', {
        target: { type: 'field', name: 'arn' },
      })
    }
    if (!d.enabled) {
      throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'arn: the key is disabled or pending deletion')
    }
    multiRegion = d.multiRegion
    replicaKeys = d.replicaKeys
  } else {
    if (!UUID_RE.test(arn)) {
      throw new EngineError(
        'KEY_PROVIDER_ARN_INVALID',
        'arn: an engine-key provider names a root key id (UUID)',
        {
          target: { type: 'field', name: 'arn' },
        },
      )
    }
    if ((await core.store.getKeyProvider(tenant, fingerprint)) !== undefined) throw exists()
    const state = await core.state(tenant)
    if (state.defaultKeyId === arn) {
      throw new EngineError('KEY_PROVIDER_EXISTS', 'arn: this key is the default provider of the tenant')
    }
    const key = await core.engine.getKey(tenant, arn).catch((err: unknown) => {
      if (
        err instanceof EngineError &&
        (err.code === 'KEY_NOT_FOUND_ERR' || err.code === 'KEY_DELETED_ERR')
      ) {
        throw new EngineError('KEY_PROVIDER_NOT_FOUND', 'arn: no such root key in this tenant', {
          cause: err,
        })
      }
      throw err
    })
    if (key.extractable) throw invalidField('arn', 'must be a root key (not a standard key)')
    if (key.state !== 1) {
      throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', 'arn: the root key is not active')
    }
  }
  const record: KeyProviderRecord = {
    tenant,
    fingerprint,
    id: randomUUID(),
    kind,
    arn,
    name,
    description,
    multiRegion,
    replicaKeys,
    createdAt: core.now(),
    createdBy: input.createdBy,
    promotedToCurrentAt: 0,
    demotedFromCurrentAt: 0,
    compliance: undefined,
  }
  // While it is a provider, the engine key cannot be deleted. Registered before the record is inserted, so a
  // provider never exists unprotected; a registration left by a failed insert names the same fingerprint
  // (the same CRN) and is removed by the provider's delete, or by an operator.
  if (kind === 'engine-key') await core.protectKey(tenant, arn, fingerprint)
  if (!(await core.store.insertKeyProvider(record))) throw exists()
  return record
}

function exists(): EngineError {
  return new EngineError('KEY_PROVIDER_EXISTS', 'the specified key is already registered')
}

/** Probes a provider and computes its compliance record. */
export async function testProvider(
  core: TenantKeysCore,
  tenant: string,
  fingerprint: string,
  regions: { readonly home: string | undefined; readonly dr: string | undefined },
): Promise<ComplianceRecord> {
  const p = await core.mustResolve(tenant, fingerprint)
  const now = core.now()
  if (p.kind !== 'aws-kms') return complianceOf(await probeEngineKey(core, tenant, p.keyId), [], now)
  const record = p.record
  if (record === undefined) throw new EngineError('INTERNAL_ERROR', 'aws-kms provider without record')
  let probes: ProbeResult[]
  try {
    probes = await core.externalKey(record).probe()
  } catch (err) {
    const e = err instanceof EngineError ? err : new EngineError('PROVIDER_ERROR', 'probe failed')
    probes = [
      {
        region: arnRegion(record.arn),
        operation: 'GenerateDataKey',
        failure: { kind: 'other', message: e.message },
      },
    ]
  }
  const extra: { code: string; region: string; message: string }[] = []
  const primary = arnRegion(record.arn)
  if (regions.home !== undefined && primary !== regions.home) {
    extra.push({
      code: COMPLIANCE_CODES.notInHomeRegion,
      region: primary,
      message: `the key is in ${primary}, not in the tenant's home region ${regions.home}`,
    })
  }
  if (regions.dr !== undefined && !record.replicaKeys.some((r) => r.region === regions.dr)) {
    extra.push({
      code: COMPLIANCE_CODES.noDrReplica,
      region: regions.dr,
      message: `the key has no replica in the tenant's disaster-recovery region ${regions.dr}`,
    })
  }
  return complianceOf(probes, extra, now)
}

/** Wrap and unwrap of a random DEK under an engine root key (what the engine provider needs). */
async function probeEngineKey(core: TenantKeysCore, tenant: string, keyId: string): Promise<ProbeResult[]> {
  const region = 'engine'
  const out: ProbeResult[] = []
  let ciphertext: string | undefined
  try {
    const w = await core.engine.wrap(tenant, keyId)
    w.plaintext?.fill(0)
    ciphertext = w.ciphertext
    out.push({ region, operation: 'GenerateDataKey', failure: undefined })
    out.push({ region, operation: 'Encrypt', failure: undefined })
  } catch (err) {
    out.push({ region, operation: 'GenerateDataKey', failure: failureOf(err) })
    return out
  }
  try {
    const u = await core.engine.unwrap(tenant, keyId, ciphertext)
    SecretBytes.adopt(u.plaintext).zeroize()
    out.push({ region, operation: 'Decrypt', failure: undefined })
  } catch (err) {
    out.push({ region, operation: 'Decrypt', failure: failureOf(err) })
  }
  return out
}

function failureOf(err: unknown): NonNullable<ProbeResult['failure']> {
  const e = err instanceof EngineError ? err : new EngineError('INTERNAL_ERROR', 'unexpected failure')
  const kind: NonNullable<ProbeResult['failure']>['kind'] =
    e.code === 'PROVIDER_ACCESS_DENIED'
      ? 'access-denied'
      : e.code === 'PROVIDER_UNAVAILABLE' || e.code === 'PROVIDER_THROTTLED'
        ? 'timeout'
        : e.code === 'KEY_NOT_FOUND_ERR' || e.code === 'KEY_DELETED_ERR' || e.code === 'KEY_VERSION_NOT_FOUND'
          ? 'not-found'
          : e.code === 'KEY_ACTION_INVALID_STATE_ERR'
            ? 'disabled'
            : 'other'
  return { kind, message: e.message }
}
