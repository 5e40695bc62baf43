/**
 * Zod schemas of the Key Protect v2 requests and responses. The same objects validate requests and
 * generate `/openapi.json`, so the document cannot drift from what the server accepts.
 */
import { z } from '@hono/zod-openapi'

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

export const Base64 = z.string().min(1).regex(BASE64_RE, 'must be a base64 encoded value')
const BoolString = z.enum(['true', 'false'])
const IntString = z.string().regex(/^\d{1,9}$/, 'must be a non-negative integer')

const Aad = z.array(z.string().max(4096)).max(126).openapi({ description: 'Additional authenticated data' })

const Metadata = z
  .object({ collectionType: z.string().optional(), collectionTotal: z.number().optional() })
  .loose()
  .optional()

/** A collection envelope around `resource` (one or more items). */
function envelope<T extends z.ZodType>(resource: T, max: number) {
  return z.object({ metadata: Metadata, resources: z.array(resource).min(1).max(max) }).strict()
}

const SecureImport = {
  encryptedNonce: Base64.optional(),
  iv: Base64.optional(),
  encryptionAlgorithm: z.enum(['RSAES_OAEP_SHA_256', 'RSAES_OAEP_SHA_1']).optional(),
}

export const KeyCreateResource = z
  .object({
    type: z.string().optional(),
    name: z.string().openapi({ example: 'payments-root' }),
    description: z.string().optional(),
    extractable: z.boolean().optional(),
    payload: Base64.optional(),
    expirationDate: z.iso.datetime({ offset: true }).optional(),
    aliases: z.array(z.string()).optional(),
    tags: z.array(z.string()).optional(),
    ...SecureImport,
  })
  .strict()
  .openapi('KeyCreateResource')

export const RotationPolicyInput = z
  .object({ enabled: z.boolean(), interval_month: z.number().int().optional() })
  .strict()
export const DualAuthInput = z.object({ enabled: z.boolean() }).strict()

export const KeyCreateWithPoliciesResource = KeyCreateResource.extend({
  rotation: RotationPolicyInput.optional(),
  dualAuthDelete: DualAuthInput.optional(),
})
  .strict()
  .openapi('KeyCreateWithPoliciesResource')

export const CreateKeyBody = envelope(KeyCreateResource, 1).openapi('CreateKeyBody')
export const CreateKeyWithPoliciesBody = envelope(KeyCreateWithPoliciesResource, 1).openapi(
  'CreateKeyWithPoliciesBody',
)

export const WrapBody = z
  .object({ plaintext: Base64.optional(), aad: Aad.optional() })
  .strict()
  .openapi('WrapKeyRequestBody')
export const UnwrapBody = z
  .object({ ciphertext: z.string(), aad: Aad.optional() })
  .strict()
  .openapi('UnwrapKeyRequestBody')
export const RewrapBody = z
  .object({ ciphertext: z.string(), aad: Aad.optional() })
  .strict()
  .openapi('RewrapKeyRequestBody')
export const RotateBody = z
  .object({ payload: Base64.optional(), ...SecureImport })
  .strict()
  .openapi('RotateKeyRequestBody')

/** POST /import_token (`expiration` in seconds; the seed's curl example quotes it as a string). */
export const ImportTokenBody = z
  .object({
    expiration: z.union([z.number().int(), z.string().regex(/^\d{1,9}$/)]).optional(),
    maxAllowedRetrievals: z.number().int().optional(),
  })
  .strict()
  .openapi('ImportTokenCreateBody')

export const ImportTokenResponse = z
  .object({
    creationDate: z.string(),
    expirationDate: z.string(),
    maxAllowedRetrievals: z.number().int(),
    remainingRetrievals: z.number().int(),
  })
  .openapi('ImportToken')

export const ImportTokenRetrieval = ImportTokenResponse.extend({
  payload: z.string().openapi({ description: 'base64 of the PEM (SPKI) RSA public key' }),
  nonce: z.string().openapi({ description: 'base64 of the 12-byte nonce' }),
}).openapi('GetImportToken')

export const RestoreResource = z.object({ payload: Base64.optional(), ...SecureImport }).strict()
export const RestoreBody = envelope(RestoreResource, 1).openapi('RestoreKeyBody')

/** Registration input: `preventKeyDeletion` as a bool or the string the doc examples send. */
export const RegistrationInputResource = z
  .object({
    preventKeyDeletion: z.union([z.boolean(), BoolString]).optional(),
    description: z.string().optional(),
    registrationMetadata: z.string().optional(),
    keyVersionId: z.string().optional(),
  })
  .strict()
export const RegistrationBody = envelope(RegistrationInputResource, 1).openapi('RegistrationInputBody')
export const DeactivateBody = envelope(z.object({ resourceCrn: z.string() }).strict(), 1).openapi(
  'DeactivateRegistrationBody',
)
export const EventAckBody = envelope(
  z
    .object({
      eventId: z.string(),
      adopterKeyState: z.string(),
      timestamp: z.string(),
      keyStateData: z.object({ keyVersion: z.unknown().optional() }).loose().optional(),
    })
    .strict(),
  100,
).openapi('EventAcknowledgeBody')

export const PatchKeyBody = z.object({ keyRingID: z.string() }).strict().openapi('PatchKeyRequestBody')

export const PolicyResourceInput = z
  .object({
    type: z.string().optional(),
    rotation: RotationPolicyInput.optional(),
    dualAuthDelete: DualAuthInput.optional(),
  })
  .strict()
export const PutPoliciesBody = envelope(PolicyResourceInput, 2).openapi('SetKeyPoliciesBody')

const InstancePolicyTypeEnum = z.enum([
  'allowedNetwork',
  'dualAuthDelete',
  'allowedIP',
  'keyCreateImportAccess',
  'metrics',
  'rotation',
])
const InstancePolicyAttributes = z
  .object({
    interval_month: z.number().int().optional(),
    allowed_network: z.enum(['public-and-private', 'private-only']).optional(),
    allowed_ip: z.array(z.string().max(64)).max(1000).optional(),
    create_root_key: z.boolean().optional(),
    create_standard_key: z.boolean().optional(),
    import_root_key: z.boolean().optional(),
    import_standard_key: z.boolean().optional(),
    enforce_token: z.boolean().optional(),
  })
  .strict()
  .openapi('InstancePolicyAttributes')
const InstancePolicyData = z
  .object({ enabled: z.boolean(), attributes: InstancePolicyAttributes.optional() })
  .strict()
export const InstancePolicyResourceInput = z
  .object({ policy_type: InstancePolicyTypeEnum, policy_data: InstancePolicyData })
  .strict()
export const PutInstancePoliciesBody = envelope(InstancePolicyResourceInput, 6).openapi(
  'SetInstancePoliciesBody',
)
export const InstancePolicyQuery = z.object({ policy: InstancePolicyTypeEnum.optional() }).strict()

export const ListKeysQuery = z
  .object({
    limit: IntString.optional(),
    offset: IntString.optional(),
    state: z.string().max(64).optional(),
    extractable: BoolString.optional(),
    search: z.string().max(256).optional(),
    sort: z.string().max(256).optional(),
    filter: z.string().max(512).optional(),
    totalCount: BoolString.optional(),
  })
  .strict()
export const HeadKeysQuery = z
  .object({
    state: z.string().max(64).optional(),
    extractable: BoolString.optional(),
    filter: z.string().max(512).optional(),
  })
  .strict()
export const VersionsQuery = z
  .object({
    limit: IntString.optional(),
    offset: IntString.optional(),
    totalCount: BoolString.optional(),
    allKeyStates: BoolString.optional(),
  })
  .strict()
export const PolicyQuery = z.object({ policy: z.enum(['rotation', 'dualAuthDelete']).optional() }).strict()
export const DeleteQuery = z.object({ force: BoolString.optional() }).strict()
export const KeyRingsQuery = z
  .object({ limit: IntString.optional(), offset: IntString.optional(), totalCount: BoolString.optional() })
  .strict()
export const EmptyQuery = z.object({}).strict()

export const RegistrationsQuery = z
  .object({
    limit: IntString.optional(),
    offset: IntString.optional(),
    urlEncodedResourceCRNQuery: z.string().optional(),
    preventKeyDeletion: BoolString.optional(),
    totalCount: BoolString.optional(),
  })
  .strict()
export const DeactivateQuery = z.object({ action: z.enum(['deactivate']) }).strict()

export const IdParam = z.object({ id: z.string().openapi({ description: 'Key id (v4 UUID) or alias' }) })
export const AliasParams = z.object({ id: z.string(), alias: z.string() })
export const RegistrationParams = z.object({
  id: z.string(),
  urlEncodedResourceCRN: z.string().openapi({ description: 'The resource CRN, percent-encoded' }),
})
export const KeyRingParam = z.object({ 'key-ring-id': z.string() })

export const Headers = z.object({
  'bluemix-instance': z.string().openapi({ description: 'Instance (tenant) id' }),
  'correlation-id': z.string().optional(),
  'x-kms-key-ring': z.string().optional(),
  prefer: z.enum(['return=representation', 'return=minimal']).optional(),
})

// ---------------------------------------------------------------- responses (documentation)

const KeyVersion = z.object({ id: z.string(), creationDate: z.string().optional() })

export const KeyResource = z
  .object({
    type: z.string(),
    id: z.string(),
    name: z.string(),
    aliases: z.array(z.string()),
    description: z.string().optional(),
    tags: z.array(z.string()),
    state: z.number().int(),
    expirationDate: z.string().optional(),
    extractable: z.boolean(),
    crn: z.string(),
    imported: z.boolean(),
    keyRingID: z.string(),
    creationDate: z.string(),
    createdBy: z.string(),
    lastUpdateDate: z.string(),
    lastRotateDate: z.string().optional(),
    keyVersion: KeyVersion,
    dualAuthDelete: z.object({ enabled: z.boolean() }),
    rotation: z.object({ enabled: z.boolean(), interval_month: z.number().optional() }).optional(),
    deleted: z.boolean(),
    deletionDate: z.string().optional(),
    deletedBy: z.string().optional(),
    restoreAllowed: z.boolean().optional(),
    restoreExpirationDate: z.string().optional(),
    purgeAllowed: z.boolean().optional(),
    purgeAllowedFrom: z.string().optional(),
    purgeScheduledOn: z.string().optional(),
    payload: z.string().optional(),
  })
  .openapi('Key')

function collectionOf<T extends z.ZodType>(item: T, name: string) {
  return z
    .object({
      metadata: z.object({
        collectionType: z.string(),
        collectionTotal: z.number(),
        totalCount: z.number().optional(),
      }),
      resources: z.array(item),
    })
    .openapi(name)
}

export const KeyCollection = collectionOf(KeyResource, 'KeyCollection')
export const VersionCollection = collectionOf(KeyVersion, 'KeyVersionCollection')
export const PolicyCollection = collectionOf(
  z.object({
    id: z.string(),
    crn: z.string(),
    rotation: z.object({ enabled: z.boolean(), interval_month: z.number().optional() }).optional(),
    dualAuthDelete: z.object({ enabled: z.boolean() }).optional(),
    createdBy: z.string(),
    creationDate: z.string(),
    updatedBy: z.string(),
    lastUpdateDate: z.string(),
  }),
  'PolicyCollection',
)
export const InstancePolicyCollection = collectionOf(
  z.object({
    policy_type: InstancePolicyTypeEnum,
    policy_data: InstancePolicyData,
    createdBy: z.string(),
    creationDate: z.string(),
    updatedBy: z.string(),
    lastUpdated: z.string(),
  }),
  'InstancePolicyCollection',
)
export const AllowedIpPortCollection = collectionOf(
  z.object({ private_endpoint_port: z.number().int() }),
  'AllowedIpPortCollection',
)
export const AliasCollection = collectionOf(
  z.object({
    keyId: z.string(),
    alias: z.string(),
    createdBy: z.string().optional(),
    creationDate: z.string(),
  }),
  'AliasCollection',
)
export const KeyRingCollection = collectionOf(
  z.object({ id: z.string(), creationDate: z.string().optional(), createdBy: z.string().optional() }),
  'KeyRingCollection',
)
export const RegistrationCollection = collectionOf(
  z.object({
    keyId: z.string(),
    keyName: z.string().optional(),
    resourceCrn: z.string(),
    createdBy: z.string(),
    creationDate: z.string(),
    updatedBy: z.string(),
    lastUpdated: z.string(),
    description: z.string().optional(),
    registrationMetadata: z.string().optional(),
    preventKeyDeletion: z.boolean(),
    keyVersion: KeyVersion,
  }),
  'RegistrationCollection',
)
export const ResourceCrnCollection = collectionOf(
  z.object({ resourceCrn: z.string() }),
  'ResourceCrnCollection',
)
export const WrapResponse = z
  .object({
    ciphertext: z.string(),
    keyVersion: z.object({ id: z.string() }),
    plaintext: z.string().optional(),
  })
  .openapi('WrapKeyResponseBody')
export const UnwrapResponse = z
  .object({
    plaintext: z.string(),
    keyVersion: z.object({ id: z.string() }),
    ciphertext: z.string().optional(),
    rewrappedKeyVersion: z.object({ id: z.string() }).optional(),
  })
  .openapi('UnwrapKeyResponseBody')
export const RewrapResponse = z
  .object({
    ciphertext: z.string(),
    keyVersion: z.object({ id: z.string() }),
    rewrappedKeyVersion: z.object({ id: z.string() }),
  })
  .openapi('RewrapKeyResponseBody')
export const ErrorCollection = collectionOf(
  z.object({
    errorMsg: z.string(),
    reasons: z.array(
      z.object({
        code: z.string(),
        message: z.string(),
        status: z.number(),
        moreInfo: z.string(),
        target: z.object({ type: z.string(), name: z.string() }).optional(),
      }),
    ),
  }),
  'ErrorCollection',
)
