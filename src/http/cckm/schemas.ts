/**
 * Zod schemas of the CCKM key-synchronization API (spec digest Part B, docs/http-cckm.md): the request bodies
 * the server validates and the response shapes `/openapi.json` documents. Request bodies are strict: an
 * unknown field is a 400 naming it (a typo such as `synchronise_all` must not start a job with defaults).
 */
import { z } from '@hono/zod-openapi'
import { SYNC_CLOUDS } from '../../core/ports-sync.js'

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const Base64 = z.string().min(1).max(65_536).regex(BASE64_RE, 'must be a base64 encoded value')

/** Most entries of a list field (vaults, regions, AAD strings). */
const MAX_LIST = 1000
const VaultRefs = z.array(z.string().min(1).max(256)).max(MAX_LIST)

/** POST /api/v1/cckm/{cloud}/synchronization-jobs. Which list field a cloud takes: docs/http-cckm.md. */
export const SyncJobCreate = z
  .object({
    key_vaults: VaultRefs.optional().openapi({
      description: 'Connections (name or id) to synchronize; every cloud. PKCS#11: also token labels.',
    }),
    kms: VaultRefs.optional().openapi({ description: 'AWS: the connections (name or id) to synchronize' }),
    tokens: VaultRefs.optional().openapi({
      description: 'PKCS#11: the connections (name, id or token label) to synchronize',
    }),
    synchronize_all: z.boolean().optional().openapi({ description: 'Every connection of the cloud' }),
    regions: z
      .array(z.string().min(1).max(64))
      .max(64)
      .optional()
      .openapi({ description: "AWS only: restrict discovery to these of the connections' regions" }),
    take_cloud_key_backup: z
      .boolean()
      .optional()
      .openapi({ description: 'Accepted for CCKM clients; only `false` (no cloud key backups are taken)' }),
  })
  .strict()
  .openapi('SyncJobCreate')

/** A secret reference: the engine reads it when it opens the connection; the catalog keeps only this. */
export const SecretRef = z
  .union([
    z
      .object({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'an environment variable name') })
      .strict(),
    z.object({ file: z.string().min(2).max(4096).startsWith('/', 'an absolute path') }).strict(),
  ])
  .openapi('SecretRef', { description: '`{"env":"NAME"}` or `{"file":"/absolute/path"}`' })

/** The fields of a connection that hold a secret: only a {@link SecretRef} is accepted there. */
export const SECRET_FIELDS = [
  'client_secret',
  'token',
  'access_key_id',
  'secret_access_key',
  'session_token',
  'pin',
] as const

export const CREDENTIAL_TYPES = [
  'client-secret',
  'managed-identity',
  'static-token',
  'default',
  'static',
] as const

/** The connection fields besides `name`, every cloud's; which belong to which cloud: wire.ts. */
const ConnectionFields = {
  description: z.string().max(1024).optional(),
  // Azure Key Vault
  vault_url: z.string().min(1).max(2048).optional(),
  credential_type: z.enum(CREDENTIAL_TYPES).optional(),
  tenant_id: z.string().min(1).max(256).optional(),
  client_id: z.string().min(1).max(256).optional(),
  client_secret: SecretRef.optional(),
  authority_host: z.string().min(1).max(2048).optional(),
  token: SecretRef.optional(),
  disable_challenge_resource_verification: z.boolean().optional(),
  ca_file: z.string().min(2).max(4096).startsWith('/', 'an absolute path').optional(),
  // AWS KMS
  regions: z.array(z.string().min(1).max(64)).min(1).max(64).optional(),
  endpoint: z.string().min(1).max(2048).optional(),
  access_key_id: SecretRef.optional(),
  secret_access_key: SecretRef.optional(),
  session_token: SecretRef.optional(),
  // PKCS#11
  module: z.string().min(2).max(4096).startsWith('/', 'an absolute path').optional(),
  token_label: z.string().min(1).max(32).optional(),
  pin: SecretRef.optional(),
}

/** POST /api/v1/connectionmgmt/services/{cloud}/connections. */
export const ConnectionCreate = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, '1-64 characters of A-Z a-z 0-9 . _ -')
      .openapi({ example: 'keyvault-softkeys' }),
    ...ConnectionFields,
  })
  .strict()
  .openapi('ConnectionCreate')

/** PATCH …/connections/{id}: the fields to change (the name cannot change); `null` removes an optional one. */
export const ConnectionPatch = z
  .object(
    Object.fromEntries(
      Object.entries(ConnectionFields).map(([key, schema]) => [key, schema.unwrap().nullable().optional()]),
    ) as unknown as { [K in keyof typeof ConnectionFields]: z.ZodOptional<z.ZodNullable<z.ZodType>> },
  )
  .strict()
  .openapi('ConnectionPatch')

/** POST /api/v1/cckm/{cloud}/keys/{id}/wrap. */
export const WrapRequest = z
  .object({
    plaintext: Base64.optional().openapi({
      description: 'The DEK (base64); absent: a 32-byte DEK is generated',
    }),
    aad: z.array(z.string().max(4096)).max(MAX_LIST).optional(),
  })
  .strict()
  .openapi('LinkedKeyWrapRequest')

/** POST /api/v1/cckm/{cloud}/keys/{id}/unwrap. */
export const UnwrapRequest = z
  .object({
    ciphertext: Base64.openapi({ description: 'A ciphertext of /wrap (base64)' }),
    aad: z.array(z.string().max(4096)).max(MAX_LIST).optional(),
  })
  .strict()
  .openapi('LinkedKeyUnwrapRequest')

// ---------------------------------------------------------------- responses (documentation)

export const CloudParam = z.object({ cloud: z.enum(SYNC_CLOUDS) })
export const CloudIdParams = z.object({ cloud: z.enum(SYNC_CLOUDS), id: z.string() })

const Time = z
  .string()
  .openapi({ description: 'RFC 3339 with nanoseconds', example: '2020-09-30T10:25:47.057000000Z' })

export const SyncJob = z
  .object({
    id: z.string(),
    uri: z.string().openapi({ example: 'kylo:kylo:cckm:synchronize:2321c6fb-acde-4b94-a00b-949c85968af3' }),
    account: z.string(),
    application: z.string(),
    devAccount: z.string(),
    createdAt: Time,
    updatedAt: Time,
    overall_status: z.enum(['in_progress', 'completed', 'failed', 'cancelled']),
    cloud: z.enum(['AzureCloud', 'aws', 'pkcs11']),
    key_vaults: z.array(z.string()).openapi({ description: '`<name>::<id>` of each connection' }),
    abort: z.boolean(),
    synchronize_all: z.boolean(),
    regions: z.array(z.string()).optional(),
    state: z.string(),
    progress: z.number(),
    done: z.number(),
    total: z.number(),
    counts: z.object({
      discovered: z.number(),
      inserted: z.number(),
      updated: z.number(),
      unchanged: z.number(),
      marked_deleted: z.number(),
    }),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
    startedAt: Time.optional(),
    finishedAt: Time.optional(),
  })
  .openapi('SyncJob')

const page = <T extends z.ZodType>(item: T, name: string) =>
  z.object({ skip: z.number(), limit: z.number(), total: z.number(), resources: z.array(item) }).openapi(name)

export const SyncJobList = page(SyncJob, 'SyncJobList')

export const Connection = z
  .object({
    id: z.string(),
    uri: z.string(),
    account: z.string(),
    name: z.string(),
    service: z.enum(SYNC_CLOUDS),
    description: z.string().optional(),
    createdAt: Time,
    updatedAt: Time,
    last_connection_ok: z.boolean().nullable(),
    last_connection_at: Time.optional(),
    last_connection_error: z.string().optional(),
    checks: z
      .array(
        z.object({ check: z.string(), where: z.string(), ok: z.boolean(), error: z.unknown().optional() }),
      )
      .optional(),
  })
  .loose()
  .openapi('Connection')

export const ConnectionList = page(Connection, 'ConnectionList')

export const LinkedKey = z
  .object({
    id: z.string(),
    uri: z.string(),
    account: z.string(),
    cloud: z.enum(SYNC_CLOUDS),
    connection_id: z.string(),
    key_vault: z.string(),
    source_key_id: z.string(),
    name: z.string(),
    key_type: z.string(),
    usable: z.boolean(),
    enabled: z.boolean(),
    source_state: z.enum(['present', 'deleted']),
    versions: z.array(
      z.object({ version: z.string(), ref: z.string(), enabled: z.boolean(), createdAt: Time.optional() }),
    ),
    attributes: z.record(z.string(), z.unknown()),
    deletedAtSourceAt: Time.optional(),
    createdAt: Time,
    updatedAt: Time,
    last_sync_job_id: z.string(),
  })
  .openapi('LinkedKey')

export const LinkedKeyList = page(LinkedKey, 'LinkedKeyList')

export const WrapResult = z
  .object({
    ciphertext: z.string(),
    keyId: z.string(),
    keyVersion: z.number(),
    plaintext: z
      .string()
      .optional()
      .openapi({ description: 'The generated DEK (base64), when none was given' }),
  })
  .openapi('LinkedKeyWrapResult')

export const UnwrapResult = z
  .object({ plaintext: z.string(), keyId: z.string(), keyVersion: z.number() })
  .openapi('LinkedKeyUnwrapResult')

export const CckmError = z
  .object({
    code: z.number().int(),
    codeDesc: z.string().openapi({ example: 'NCERRResourceNotFound: Resource not found' }),
    message: z.string(),
  })
  .openapi('CckmError')

export const Headers = z.object({ 'correlation-id': z.string().optional() })
