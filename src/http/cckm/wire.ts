/**
 * CCKM wire shapes of the library's sync views (spec digest Part B): the synchronization job resource, the
 * CipherTrust connection resource and its request fields, the linked key, the `{code, codeDesc, message}`
 * error body. Decisions on the seed's ambiguities: docs/http-cckm.md.
 */
import type { ConnectionParams, SecretSource, SyncCloud } from '../../core/ports-sync.js'
import type { ConnectionView, LinkedKeyView, SyncJobView } from '../../core/sync/types.js'
import type { CckmErrorShape } from '../errors.js'

/** The `application` and `devAccount` of every job resource: the seed's literals (clients may compare them). */
export const APPLICATION = 'ncryptify:gemalto:admin:apps:kylo'
export const DEV_ACCOUNT = 'ncryptify:gemalto:admin:accounts:gemalto'

/** The `cloud` of a job resource: `AzureCloud` as the seed; `aws` (the standard ARN partition) and `pkcs11`. */
export const CLOUD_NAMES: Readonly<Record<SyncCloud, string>> = {
  azure: 'AzureCloud',
  aws: 'aws',
  pkcs11: 'pkcs11',
}

/** The tenant's `account` URI. */
export const accountUri = (tenant: string): string => `kylo:kylo:admin:accounts:${tenant}`

/** RFC 3339 with nanoseconds (the seed's `2020-09-30T10:25:47.057312858Z`); JS times end in `000000`. */
export function nanoTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z')
}

/** The synchronization job resource. */
export function syncJobWire(j: SyncJobView): Record<string, unknown> {
  const vaults = j.vaults.map((v) => `${v.name}::${v.id}`)
  return {
    id: j.id,
    uri: `kylo:kylo:cckm:synchronize:${j.id}`,
    account: accountUri(j.tenant),
    application: APPLICATION,
    devAccount: DEV_ACCOUNT,
    createdAt: nanoTime(j.createdAt),
    updatedAt: nanoTime(j.updatedAt),
    overall_status: j.overallStatus,
    cloud: CLOUD_NAMES[j.cloud],
    key_vaults: vaults,
    abort: j.abort,
    synchronize_all: j.synchronizeAll,
    ...(j.regions === undefined ? {} : { regions: [...j.regions] }),
    state: j.state,
    progress: j.progress,
    done: j.done,
    total: j.total,
    counts: {
      discovered: j.counts.discovered,
      inserted: j.counts.inserted,
      updated: j.counts.updated,
      unchanged: j.counts.unchanged,
      marked_deleted: j.counts.markedDeleted,
    },
    ...(j.error === undefined ? {} : { error: { code: j.error.code, message: j.error.message } }),
    ...(j.startedAt === undefined ? {} : { startedAt: nanoTime(j.startedAt) }),
    ...(j.finishedAt === undefined ? {} : { finishedAt: nanoTime(j.finishedAt) }),
  }
}

// ---------------------------------------------------------------- connections

/** A {@link SecretSource} on the wire. */
export function refWire(s: SecretSource): { env: string } | { file: string } {
  return s.kind === 'env' ? { env: s.name } : { file: s.path }
}

/** A wire reference (already validated by the schema) as a {@link SecretSource}. */
export function refOf(r: unknown): SecretSource {
  const o = r as { env?: string; file?: string }
  return o.env !== undefined ? { kind: 'env', name: o.env } : { kind: 'file', path: o.file ?? '' }
}

/** The request fields of a connection's params (the inverse of {@link paramsOf}). */
export function paramsWire(p: ConnectionParams): Record<string, unknown> {
  switch (p.cloud) {
    case 'azure': {
      const c = p.credential
      const cred: Record<string, unknown> =
        c.kind === 'client-secret'
          ? {
              tenant_id: c.tenantId,
              client_id: c.clientId,
              client_secret: refWire(c.secret),
              ...(c.authorityHost === undefined ? {} : { authority_host: c.authorityHost }),
            }
          : c.kind === 'managed-identity'
            ? c.clientId === undefined
              ? {}
              : { client_id: c.clientId }
            : { token: refWire(c.token) }
      return {
        vault_url: p.vaultUrl,
        credential_type: c.kind,
        ...cred,
        ...(p.disableChallengeResourceVerification === undefined
          ? {}
          : { disable_challenge_resource_verification: p.disableChallengeResourceVerification }),
        ...(p.caFile === undefined ? {} : { ca_file: p.caFile }),
      }
    }
    case 'aws': {
      const c = p.credentials
      return {
        regions: [...p.regions],
        ...(p.endpoint === undefined ? {} : { endpoint: p.endpoint }),
        credential_type: c.kind,
        ...(c.kind === 'static'
          ? {
              access_key_id: refWire(c.accessKeyId),
              secret_access_key: refWire(c.secretAccessKey),
              ...(c.sessionToken === undefined ? {} : { session_token: refWire(c.sessionToken) }),
            }
          : {}),
      }
    }
    case 'pkcs11':
      return { module: p.module, token_label: p.tokenLabel, pin: refWire(p.pin) }
  }
}

/** The fields each cloud's connection takes (besides name and description). */
export const CLOUD_FIELDS: Readonly<Record<SyncCloud, readonly string[]>> = {
  azure: [
    'vault_url',
    'credential_type',
    'tenant_id',
    'client_id',
    'client_secret',
    'authority_host',
    'token',
    'disable_challenge_resource_verification',
    'ca_file',
  ],
  aws: ['regions', 'endpoint', 'credential_type', 'access_key_id', 'secret_access_key', 'session_token'],
  pkcs11: ['module', 'token_label', 'pin'],
}

/** Fields that belong to the credential: a PATCH that changes `credential_type` drops the old ones. */
export const CREDENTIAL_FIELDS = [
  'tenant_id',
  'client_id',
  'client_secret',
  'authority_host',
  'token',
  'access_key_id',
  'secret_access_key',
  'session_token',
] as const

/** A field problem of a connection body, in wire terms (the caller makes it a 400). */
export class FieldProblem extends Error {}

/**
 * A connection's params from its (schema-validated) request fields.
 * @throws FieldProblem naming a missing field, a field of another cloud or of another credential type
 */
export function paramsOf(cloud: SyncCloud, f: Readonly<Record<string, unknown>>): ConnectionParams {
  const present = (k: string): boolean => f[k] !== undefined && f[k] !== null
  const str = (k: string): string | undefined => (present(k) ? (f[k] as string) : undefined)
  const need = (k: string, why: string): unknown => {
    if (!present(k)) throw new FieldProblem(`${k}: required ${why}`)
    return f[k]
  }
  const only = (allowed: readonly string[], why: string): void => {
    for (const k of CLOUD_FIELDS[cloud]) {
      if (present(k) && !allowed.includes(k)) throw new FieldProblem(`${k}: not a field ${why}`)
    }
  }
  for (const [k, v] of Object.entries(f)) {
    if (
      k !== 'name' &&
      k !== 'description' &&
      v !== undefined &&
      v !== null &&
      !CLOUD_FIELDS[cloud].includes(k)
    ) {
      throw new FieldProblem(`${k}: not a field of a ${cloud} connection`)
    }
  }
  switch (cloud) {
    case 'azure': {
      const vaultUrl = need('vault_url', 'for an azure connection') as string
      const kind = str('credential_type') ?? 'client-secret'
      const common = ['vault_url', 'credential_type', 'disable_challenge_resource_verification', 'ca_file']
      const base = {
        cloud: 'azure' as const,
        vaultUrl,
        ...(present('disable_challenge_resource_verification')
          ? { disableChallengeResourceVerification: f['disable_challenge_resource_verification'] as boolean }
          : {}),
        ...(present('ca_file') ? { caFile: f['ca_file'] as string } : {}),
      }
      if (kind === 'client-secret') {
        const why = 'with credential_type client-secret'
        only([...common, 'tenant_id', 'client_id', 'client_secret', 'authority_host'], why)
        return {
          ...base,
          credential: {
            kind,
            tenantId: need('tenant_id', why) as string,
            clientId: need('client_id', why) as string,
            secret: refOf(need('client_secret', why)),
            ...(present('authority_host') ? { authorityHost: f['authority_host'] as string } : {}),
          },
        }
      }
      if (kind === 'managed-identity') {
        only([...common, 'client_id'], 'with credential_type managed-identity')
        const clientId = str('client_id')
        return { ...base, credential: { kind, ...(clientId === undefined ? {} : { clientId }) } }
      }
      if (kind === 'static-token') {
        const why = 'with credential_type static-token'
        only([...common, 'token'], why)
        return { ...base, credential: { kind, token: refOf(need('token', why)) } }
      }
      throw new FieldProblem(
        `credential_type: an azure connection takes client-secret, managed-identity or static-token`,
      )
    }
    case 'aws': {
      const regions = need('regions', 'for an aws connection') as string[]
      const kind = str('credential_type') ?? (present('access_key_id') ? 'static' : 'default')
      const common = ['regions', 'endpoint', 'credential_type']
      const base = {
        cloud: 'aws' as const,
        regions,
        ...(present('endpoint') ? { endpoint: f['endpoint'] as string } : {}),
      }
      if (kind === 'default') {
        only(common, 'with credential_type default')
        return { ...base, credentials: { kind } }
      }
      if (kind === 'static') {
        const why = 'with credential_type static'
        only([...common, 'access_key_id', 'secret_access_key', 'session_token'], why)
        return {
          ...base,
          credentials: {
            kind,
            accessKeyId: refOf(need('access_key_id', why)),
            secretAccessKey: refOf(need('secret_access_key', why)),
            ...(present('session_token') ? { sessionToken: refOf(f['session_token']) } : {}),
          },
        }
      }
      throw new FieldProblem('credential_type: an aws connection takes default or static')
    }
    case 'pkcs11': {
      const why = 'for a pkcs11 connection'
      return {
        cloud: 'pkcs11',
        module: need('module', why) as string,
        tokenLabel: need('token_label', why) as string,
        pin: refOf(need('pin', why)),
      }
    }
  }
}

/** The connection resource (CipherTrust connection manager style); secrets only as their references. */
export function connectionWire(c: ConnectionView, tenant: string): Record<string, unknown> {
  const t = c.lastTest
  const failed = t?.checks.find((x) => !x.ok)
  return {
    id: c.id,
    uri: `kylo:kylo:connectionmgmt:connections:${c.name}-${c.id}`,
    account: accountUri(tenant),
    application: APPLICATION,
    devAccount: DEV_ACCOUNT,
    name: c.name,
    service: c.cloud,
    ...(c.description === undefined ? {} : { description: c.description }),
    createdAt: nanoTime(c.createdAt),
    updatedAt: nanoTime(c.updatedAt),
    ...paramsWire(c.params),
    last_connection_ok: t === undefined ? null : t.ok,
    ...(t === undefined ? {} : { last_connection_at: nanoTime(t.testedAt) }),
    ...(failed?.error === undefined
      ? {}
      : { last_connection_error: `${failed.error.code}: ${failed.error.message}` }),
    ...(t === undefined
      ? {}
      : {
          checks: t.checks.map((x) => ({
            check: x.check,
            where: x.where,
            ok: x.ok,
            ...(x.error === undefined ? {} : { error: { code: x.error.code, message: x.error.message } }),
          })),
        }),
  }
}

// ---------------------------------------------------------------- linked keys

/** A linked key resource. */
export function linkedKeyWire(k: LinkedKeyView, tenant: string): Record<string, unknown> {
  return {
    id: k.id,
    uri: `kylo:kylo:cckm:${k.cloud}-key:${k.id}`,
    account: accountUri(tenant),
    cloud: k.cloud,
    connection_id: k.connectionId,
    key_vault: k.vault,
    source_key_id: k.sourceKeyId,
    name: k.name,
    key_type: k.keyType,
    usable: k.usable,
    enabled: k.enabled,
    source_state: k.sourceState,
    versions: k.versions.map((v) => ({
      version: v.version,
      ref: v.ref,
      enabled: v.enabled,
      ...(v.createdAt === undefined ? {} : { createdAt: nanoTime(new Date(v.createdAt)) }),
    })),
    attributes: k.attributes,
    ...(k.deletedAtSourceAt === undefined ? {} : { deletedAtSourceAt: nanoTime(k.deletedAtSourceAt) }),
    createdAt: nanoTime(k.firstSyncedAt),
    updatedAt: nanoTime(k.lastSyncedAt),
    last_sync_job_id: k.lastSyncJobId,
  }
}

/** The `{code, codeDesc, message}` body of every non-2xx answer. */
export function cckmErrorBody(e: CckmErrorShape, message: string): Record<string, unknown> {
  return { code: e.code, codeDesc: e.codeDesc, message }
}
