/**
 * Qlik wire shapes of the library's views (spec digest §A.1, §A.2, §A.5): KeyProvider, MigrationInformation
 * and the `{errors:[…]}` error body. Decisions on the seed's ambiguities are in docs/http-qlik.md.
 */
import type { KeyProviderView, MigrationView } from '../../core/tenant-keys/types.js'
import type { KeyProviderKind } from '../../core/ports-tenant-keys.js'
import type { QlikErrorShape } from '../errors.js'

/** Qlik's "never": the Go zero time. */
export const ZERO_TIME = '0001-01-01T00:00:00Z'
/** `createdAt` of the default provider (the seed's literal). */
export const DEFAULT_CREATED_AT = 'Qlik managed'

/** RFC 3339 to the second (`2023-06-21T18:43:49Z`), or the zero time for "never". */
export function qlikTime(d: Date | undefined): string {
  return d === undefined ? ZERO_TIME : d.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** Library kind → the wire's `keyprovider`. `envelope-kms` is this engine's extension value. */
export function providerType(kind: KeyProviderView['kind']): 'AWS-KMS' | 'envelope-kms' | 'Qlik' {
  if (kind === 'default') return 'Qlik'
  return kind === 'aws-kms' ? 'AWS-KMS' : 'envelope-kms'
}

/** The wire's `keyprovider` (or `keyProvider`) → the library kind; absent = `aws-kms`. */
export function providerKind(type: 'AWS-KMS' | 'envelope-kms' | undefined): KeyProviderKind {
  return type === 'envelope-kms' ? 'engine-key' : 'aws-kms'
}

/**
 * Accepts the `[api]` schema's `keyProvider` spelling for `keyprovider` (the examples', tutorial's and
 * @qlik/api's): the request body with the field renamed, when only the other spelling is there.
 */
export function acceptProviderSpelling(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return body
  const b = body as Record<string, unknown>
  if (!('keyProvider' in b) || 'keyprovider' in b) return body
  const { keyProvider, ...rest } = b
  return { ...rest, keyprovider: keyProvider }
}

/**
 * A KeyProvider object. `complianceError` as the seed's examples show it: an object inside collections
 * (`list`), a one-element array on single-provider responses (`single`); absent before the first test.
 * `current` only when true (as the tutorial); the default provider exactly as §A.5 (no compliance fields).
 */
export function keyProviderWire(p: KeyProviderView, shape: 'list' | 'single'): Record<string, unknown> {
  const isDefault = p.kind === 'default'
  return {
    arn: p.arn,
    name: p.name,
    ...(p.description === undefined ? {} : { description: p.description }),
    keyprovider: providerType(p.kind),
    arnFingerPrint: p.fingerprint,
    tenantId: p.tenant,
    ...(p.current ? { current: true } : {}),
    createdAt: isDefault ? DEFAULT_CREATED_AT : qlikTime(p.createdAt),
    ...(isDefault
      ? {}
      : {
          multiRegion: p.multiRegion,
          replicaKeys: p.replicaKeys.map((r) => ({ arn: r.arn, region: r.region })),
        }),
    promotedToCurrentAt: qlikTime(p.promotedToCurrentAt),
    demotedFromCurrentAt: qlikTime(p.demotedFromCurrentAt),
    ...(isDefault || p.drCompliant === undefined
      ? {}
      : { drCompliant: p.drCompliant, complianceError: complianceWire(p.complianceError, shape) }),
  }
}

function complianceWire(
  e: KeyProviderView['complianceError'],
  shape: 'list' | 'single',
): Record<string, string> | Record<string, string>[] {
  const o = { code: e?.code ?? '', region: e?.region ?? '', message: e?.message ?? '' }
  return shape === 'list' ? o : [o]
}

/**
 * MigrationInformation. Both spellings of two fields are sent: `id` (@qlik/api) and `migrationId` (the
 * tutorial), `migratingToFingerprint` (@qlik/api) and `migratingToFingerPrint` (the tutorial).
 */
export function migrationWire(m: MigrationView): Record<string, unknown> {
  return {
    id: m.id,
    migrationId: m.id,
    state: m.state,
    progress: m.progress,
    tenantId: m.tenant,
    initiatedAt: m.initiatedAt.toISOString(),
    completedAt: qlikTime(m.completedAt),
    migratingFrom: m.migratingFrom,
    migratingTo: m.migratingTo,
    migratingToFingerprint: m.migratingToFingerprint,
    migratingToFingerPrint: m.migratingToFingerprint,
    migratingToPrefix: m.migratingToPrefix,
  }
}

/** The `{errors:[{code,title,detail}]}` body of every non-2xx answer. */
export function qlikErrorBody(e: QlikErrorShape, detail: string): { errors: Record<string, string>[] } {
  return { errors: [{ code: e.code, title: e.title, detail }] }
}
