/**
 * Record → view mappings of tenant key providers: provider records and the default provider to
 * {@link KeyProviderView}, migration jobs to {@link MigrationView}, and the compliance code table.
 */
import type { JobView } from '../jobs/job-types.js'
import type {
  ComplianceRecord,
  KeyProviderRecord,
  ProbeResult,
  TenantKeyState,
} from '../ports-tenant-keys.js'
import {
  BYOK_PREFIX,
  DEFAULT_PROVIDER_ARN,
  DEFAULT_PROVIDER_DESCRIPTION,
  DEFAULT_PROVIDER_NAME,
  type KeyProviderView,
  type MigrationView,
} from './types.js'

/** The job type of key-provider migrations. */
export const MIGRATION_JOB_TYPE = 'key-provider-migration'

/** The params of a migration job. */
export interface MigrationParams {
  /** Fingerprint of the provider current when the migration was asked for. */
  readonly from: string
  /** Fingerprint of the target provider. */
  readonly to: string
  /** The ARNs of both (for the view; the default provider: `#QLIK_MANAGED_KEY_PROVIDER#`). */
  readonly fromArn: string
  readonly toArn: string
}

/** What a migration job returns when it completes. */
export interface MigrationResult {
  readonly migrated: number
  /** Entries left as they were (tampered, their key missing): name and error code; at most 1000 listed. */
  readonly skipped: readonly { readonly name: string; readonly code: string }[]
  readonly skippedCount: number
}

const date = (ms: number): Date | undefined => (ms === 0 ? undefined : new Date(ms))

/**
 * The compliance codes of the test action (`complianceError.code`), stable and documented in
 * docs/tenant-key-providers.md.
 */
export const COMPLIANCE_CODES = {
  /** The key policy or IAM forbids a required operation in a region. */
  accessDenied: 'Encryption-10',
  /** The key did not answer in time in a region (unreachable, throttled). */
  timeout: 'Encryption-11',
  /** The key (or its replica) does not exist in a region. */
  notFound: 'Encryption-12',
  /** The key is disabled (or pending deletion) in a region. */
  disabled: 'Encryption-13',
  /** Any other failure of a required operation. */
  other: 'Encryption-14',
  /** The key has no replica in the tenant's disaster-recovery region. */
  noDrReplica: 'Encryption-20',
  /** The key's primary region is not the tenant's home region. */
  notInHomeRegion: 'Encryption-21',
} as const

/** The compliance record of a probe: the first failure, and DR compliance. */
export function complianceOf(
  probes: readonly ProbeResult[],
  extra: readonly { code: string; region: string; message: string }[],
  testedAt: number,
): ComplianceRecord {
  const failed = probes.find((p) => p.failure !== undefined)
  let error: ComplianceRecord['error']
  if (failed?.failure !== undefined) {
    const code =
      failed.failure.kind === 'access-denied'
        ? COMPLIANCE_CODES.accessDenied
        : failed.failure.kind === 'timeout'
          ? COMPLIANCE_CODES.timeout
          : failed.failure.kind === 'not-found'
            ? COMPLIANCE_CODES.notFound
            : failed.failure.kind === 'disabled'
              ? COMPLIANCE_CODES.disabled
              : COMPLIANCE_CODES.other
    error = {
      code,
      region: failed.region,
      message: `${failed.operation} failed in ${failed.region}: ${failed.failure.message}`,
    }
  } else {
    error = extra[0]
  }
  return { testedAt, drCompliant: error === undefined, error }
}

/** The view of a registered provider. */
export function recordView(r: KeyProviderRecord, state: TenantKeyState): KeyProviderView {
  return {
    fingerprint: r.fingerprint,
    tenant: r.tenant,
    kind: r.kind,
    arn: r.arn,
    name: r.name,
    description: r.description,
    current: state.currentFingerprint === r.fingerprint,
    createdAt: new Date(r.createdAt),
    multiRegion: r.multiRegion,
    replicaKeys: r.replicaKeys,
    promotedToCurrentAt: date(r.promotedToCurrentAt),
    demotedFromCurrentAt: date(r.demotedFromCurrentAt),
    drCompliant: r.compliance?.drCompliant,
    complianceError: r.compliance?.error,
  }
}

/** The view of the built-in default provider. */
export function defaultView(state: TenantKeyState, compliance?: ComplianceRecord): KeyProviderView {
  return {
    fingerprint: state.tenant,
    tenant: state.tenant,
    kind: 'default',
    arn: DEFAULT_PROVIDER_ARN,
    name: DEFAULT_PROVIDER_NAME,
    description: DEFAULT_PROVIDER_DESCRIPTION,
    current: state.currentFingerprint === state.tenant,
    createdAt: undefined,
    multiRegion: false,
    replicaKeys: [],
    promotedToCurrentAt: date(state.defaultPromotedAt),
    demotedFromCurrentAt: date(state.defaultDemotedAt),
    drCompliant: compliance?.drCompliant,
    complianceError: compliance?.error,
  }
}

/** Reads a migration job's params (written by this module). */
export function migrationParams(job: JobView): MigrationParams {
  const p = job.params as Partial<MigrationParams> | undefined
  return {
    from: typeof p?.from === 'string' ? p.from : '',
    to: typeof p?.to === 'string' ? p.to : '',
    fromArn: typeof p?.fromArn === 'string' ? p.fromArn : '',
    toArn: typeof p?.toArn === 'string' ? p.toArn : '',
  }
}

/** The Qlik MigrationInformation of a migration job. */
export function migrationView(job: JobView): MigrationView {
  const p = migrationParams(job)
  const toDefault = p.to === job.tenant
  return {
    id: job.id,
    tenant: job.tenant,
    state: job.state === 'queued' ? 'New' : job.state === 'running' ? 'InProgress' : 'Completed',
    progress: job.progress,
    done: job.done,
    total: job.total,
    initiatedAt: job.createdAt,
    completedAt: job.finishedAt,
    migratingFrom: p.fromArn,
    migratingTo: p.toArn,
    migratingToFingerprint: p.to,
    migratingToPrefix: toDefault ? '' : `${BYOK_PREFIX}${p.to}`,
    jobState: job.state,
    error: job.error,
  }
}
