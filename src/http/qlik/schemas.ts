/**
 * Zod schemas of the Qlik Cloud encryption key providers API (spec digest Part A): the request bodies the
 * server validates and the response shapes `/openapi.json` documents. Field names are those of the wire
 * (`keyprovider` in lower case; `keyProvider` is accepted on input, see wire.ts `providerInput`).
 */
import { z } from '@hono/zod-openapi'

/** Longest `{arnFingerPrint}` path segment served; longer → 414 (the tenant id is the longest one, 128). */
export const MAX_FINGERPRINT_LENGTH = 128

/** The Qlik `keyprovider` values: `AWS-KMS` (the seed's), `envelope-kms` (this engine's own keys), `Qlik`. */
export const PROVIDER_TYPES = ['AWS-KMS', 'envelope-kms'] as const

/**
 * POST /keyproviders. Read-only fields the seed's example sends along (`current`, `drCompliant`,
 * `multiRegion`, `replicaKeys`, `complianceError`, …) are accepted and ignored (`loose`).
 */
export const KeyProviderCreate = z
  .object({
    arn: z.string().min(1).max(2048).openapi({
      example: 'arn:aws:kms:eu-west-1:111222334455:key/mrk-1237c011a37erft67ei987c7612q456',
    }),
    name: z.string().min(1).max(256).openapi({ example: 'CMK-01' }),
    description: z.string().max(1024).optional(),
    keyprovider: z.enum(PROVIDER_TYPES).optional().openapi({
      description:
        '`AWS-KMS` (default): an AWS KMS key by ARN. `envelope-kms` (extension): a root key of this engine in the same tenant, by key id.',
    }),
  })
  .loose()
  .openapi('KeyProviderCreate')

/** PATCH /keyproviders/{arnFingerPrint}: a JSON Patch (RFC 6902) of `/name` and `/description`. */
export const KeyProviderPatch = z
  .array(
    z
      .object({
        op: z.literal('replace'),
        path: z.enum(['/name', '/description']),
        value: z.string().max(1024),
      })
      .strict(),
  )
  .min(1)
  .max(2)
  .openapi('KeyProviderPatchSchema')

export const FingerprintParams = z.object({
  arnFingerPrint: z
    .string()
    .openapi({ description: 'The provider fingerprint (the default provider: the tenant id)' }),
})

const ComplianceError = z.object({ code: z.string(), region: z.string(), message: z.string() })

const KeyProviderFields = {
  arn: z.string(),
  name: z.string(),
  description: z.string().optional(),
  keyprovider: z.enum(['AWS-KMS', 'envelope-kms', 'Qlik']),
  arnFingerPrint: z.string(),
  tenantId: z.string(),
  current: z.boolean().optional(),
  createdAt: z.string().openapi({ description: 'RFC 3339; the default provider: `Qlik managed`' }),
  multiRegion: z.boolean().optional(),
  replicaKeys: z.array(z.object({ arn: z.string(), region: z.string() })).optional(),
  promotedToCurrentAt: z.string().openapi({ description: 'RFC 3339; `0001-01-01T00:00:00Z` = never' }),
  demotedFromCurrentAt: z.string().openapi({ description: 'RFC 3339; `0001-01-01T00:00:00Z` = never' }),
  drCompliant: z.boolean().optional(),
}

/** A provider in a collection (GET /keyproviders, /actions/list): `complianceError` is an object. */
export const KeyProviderListItem = z
  .object({ ...KeyProviderFields, complianceError: ComplianceError.optional() })
  .openapi('KeyProviderListItem')

/** One provider (POST, GET /{fp}, /actions/test): `complianceError` is a one-element array. */
export const KeyProvider = z
  .object({ ...KeyProviderFields, complianceError: z.array(ComplianceError).optional() })
  .openapi('KeyProvider')

export const KeyProviderList = z.array(KeyProviderListItem).openapi('KeyProviderList')

export const MigrationInformation = z
  .object({
    id: z.string(),
    migrationId: z.string().openapi({ description: 'The same as `id` (the tutorial spelling)' }),
    state: z.enum(['New', 'InProgress', 'Completed']),
    progress: z.number(),
    tenantId: z.string(),
    initiatedAt: z.string(),
    completedAt: z.string().openapi({ description: '`0001-01-01T00:00:00Z` while not complete' }),
    migratingFrom: z.string(),
    migratingTo: z.string(),
    migratingToFingerprint: z.string(),
    migratingToFingerPrint: z.string().openapi({ description: 'The same (the tutorial spelling)' }),
    migratingToPrefix: z.string(),
  })
  .openapi('MigrationInformation')

export const StandardError = z
  .object({
    errors: z
      .array(
        z.object({
          code: z.string(),
          title: z.string(),
          detail: z.string().optional(),
          meta: z.unknown().optional(),
        }),
      )
      .min(1),
  })
  .openapi('StandardError')

export const Headers = z.object({ 'correlation-id': z.string().optional() })
