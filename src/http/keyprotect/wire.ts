/**
 * Key Protect v2 wire shapes: the collection envelope, the key resource and the error envelope
 * (spec digest §1.3, §1.4, §2.1), and the one table that maps engine error codes to HTTP statuses.
 */
import type { ErrorCode } from '../../core/errors.js'
import type { KeyInfo, KeyPolicyInfo } from '../../core/engine.js'

export const KEY_TYPE = 'application/vnd.ibm.kms.key+json'
export const POLICY_TYPE = 'application/vnd.ibm.kms.policy+json'
export const ERROR_TYPE = 'application/vnd.ibm.kms.error+json'
export const ALIAS_TYPE = 'application/vnd.ibm.kms.alias+json'
export const KEY_RING_TYPE = 'application/vnd.ibm.kms.key_ring+json'
export const MORE_INFO = 'https://cloud.ibm.com/apidocs/key-protect'

/** Codes the HTTP layer raises itself (not engine errors). */
export type HttpOnlyCode =
  | 'UNAUTHORIZED_ERR'
  | 'TOO_MANY_REQUESTS_ERR'
  | 'BODY_TOO_LARGE_ERR'
  | 'BAD_BODY_ERR'
  | 'INVALID_PATH_PARAM_ERR'
  | 'INVALID_PARAM_ERR'
  | 'UNPROCESSABLE_CIPHERTEXT_ERR'
  | 'NOT_FOUND_ERR'
  | 'METHOD_NOT_ALLOWED_ERR'
  | 'INTERNAL_SERVER_ERR'
  | 'SERVICE_UNAVAILABLE_ERR'
export type WireCode = ErrorCode | HttpOnlyCode

/** Engine code → HTTP status and the wire code Key Protect clients look for. */
const ENGINE_TO_WIRE: Readonly<Record<ErrorCode, { status: number; code: WireCode }>> = {
  KEY_NOT_FOUND_ERR: { status: 404, code: 'KEY_NOT_FOUND_ERR' },
  KEY_ACTION_INVALID_STATE_ERR: { status: 409, code: 'KEY_ACTION_INVALID_STATE_ERR' },
  KEY_DELETED_ERR: { status: 410, code: 'KEY_DELETED_ERR' },
  KEY_ROOT_REQ_ERR: { status: 400, code: 'KEY_ROOT_REQ_ERR' },
  KEY_NOT_EXTRACTABLE_ERR: { status: 400, code: 'KEY_ROOT_REQ_ERR' },
  REQ_TOO_EARLY_ERR: { status: 409, code: 'REQ_TOO_EARLY_ERR' },
  KEY_ROTATION_NOT_PERMITTED: { status: 409, code: 'KEY_ROTATION_NOT_PERMITTED' },
  KEY_ALIAS_NOT_UNIQUE_ERR: { status: 409, code: 'KEY_ALIAS_NOT_UNIQUE_ERR' },
  KEY_ALIAS_QUOTA_ERR: { status: 409, code: 'KEY_ALIAS_QUOTA_ERR' },
  ALIAS_NOT_FOUND_ERR: { status: 404, code: 'ALIAS_NOT_FOUND_ERR' },
  KEY_RING_NOT_FOUND_ERR: { status: 404, code: 'KEY_RING_NOT_FOUND_ERR' },
  KEY_RING_NOT_EMPTY_ERR: { status: 409, code: 'KEY_RING_NOT_EMPTY_ERR' },
  KEY_RING_KEYS_NOT_DELETED_ERR: { status: 409, code: 'KEY_RING_KEYS_NOT_DELETED_ERR' },
  KEY_RING_RESOURCE_QUOTA_ERR: { status: 409, code: 'KEY_RING_RESOURCE_QUOTA_ERR' },
  KEY_INVALID_STATE_ERR: { status: 422, code: 'KEY_INVALID_STATE_ERR' },
  KEY_SEARCH_TOO_BROAD: { status: 400, code: 'KEY_SEARCH_TOO_BROAD' },
  NOT_DUAL_AUTH_ERR: { status: 409, code: 'NOT_DUAL_AUTH_ERR' },
  AUTHORIZATIONS_NOT_MET: { status: 409, code: 'AUTHORIZATIONS_NOT_MET' },
  INVALID_FIELD_ERR: { status: 400, code: 'INVALID_FIELD_ERR' },
  MISSING_FIELD_ERR: { status: 400, code: 'MISSING_FIELD_ERR' },
  // A foreign, corrupt or wrong-AAD ciphertext: Key Protect's 422 (spec digest §4.4).
  CIPHERTEXT_INVALID: { status: 422, code: 'UNPROCESSABLE_CIPHERTEXT_ERR' },
  UNWRAP_AAD_MISMATCH: { status: 422, code: 'UNPROCESSABLE_CIPHERTEXT_ERR' },
  KEY_VERSION_NOT_FOUND: { status: 422, code: 'UNPROCESSABLE_CIPHERTEXT_ERR' },
  MESSAGE_INVALID: { status: 422, code: 'MESSAGE_INVALID' },
  MESSAGE_AUTH_FAILED: { status: 422, code: 'MESSAGE_AUTH_FAILED' },
  MESSAGE_TOO_LARGE: { status: 413, code: 'MESSAGE_TOO_LARGE' },
  CONTEXT_MISMATCH: { status: 422, code: 'CONTEXT_MISMATCH' },
  KEY_USAGE_LIMIT_ERR: { status: 409, code: 'KEY_USAGE_LIMIT_ERR' },
  PROVIDER_MODULE_LOAD_FAILED: { status: 503, code: 'PROVIDER_UNAVAILABLE' },
  PROVIDER_TOKEN_NOT_FOUND: { status: 503, code: 'PROVIDER_UNAVAILABLE' },
  PROVIDER_LOGIN_FAILED: { status: 503, code: 'PROVIDER_UNAVAILABLE' },
  PROVIDER_UNAVAILABLE: { status: 503, code: 'PROVIDER_UNAVAILABLE' },
  PROVIDER_ERROR: { status: 500, code: 'PROVIDER_ERROR' },
  PROVIDER_UNSUPPORTED: { status: 400, code: 'PROVIDER_UNSUPPORTED' },
  POOL_SATURATED: { status: 503, code: 'POOL_SATURATED' },
  POOL_WORKER_FAILED: { status: 503, code: 'POOL_WORKER_FAILED' },
  STORE_ERROR: { status: 500, code: 'STORE_ERROR' },
  CONFIG_INVALID: { status: 500, code: 'INTERNAL_SERVER_ERR' },
  ENGINE_CLOSED: { status: 503, code: 'SERVICE_UNAVAILABLE_ERR' },
  ABORTED: { status: 503, code: 'SERVICE_UNAVAILABLE_ERR' },
  INTERNAL_ERROR: { status: 500, code: 'INTERNAL_SERVER_ERR' },
  TAG_QUOTA_ERR: { status: 400, code: 'INVALID_FIELD_ERR' },
  // The engine's own provider (e.g. AWS KMS) refused or throttled the engine: a service-side problem.
  PROVIDER_ACCESS_DENIED: { status: 500, code: 'PROVIDER_ERROR' },
  PROVIDER_THROTTLED: { status: 503, code: 'PROVIDER_UNAVAILABLE' },
}

export function wireOf(code: ErrorCode): { status: number; code: WireCode } {
  return ENGINE_TO_WIRE[code]
}

const REASON_PHRASE: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  410: 'Gone',
  413: 'Payload Too Large',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

/** Standard reason messages (the doc's texts where it has one). */
const REASON_MESSAGE: Partial<Record<WireCode, string>> = {
  KEY_NOT_FOUND_ERR: 'Key does not exist',
  KEY_ACTION_INVALID_STATE_ERR: 'Key is not in a valid state',
  KEY_DELETED_ERR: 'Key has already been deleted. Please check the key ID and try again.',
  KEY_ROOT_REQ_ERR: 'Requested action can only be completed with a root key.',
  UNPROCESSABLE_CIPHERTEXT_ERR: 'The provided ciphertext is invalid or corrupted',
  UNAUTHORIZED_ERR: 'The user does not have access to the specified resource',
  TOO_MANY_REQUESTS_ERR: 'Wait a few minutes and try again.',
}

export interface WireTarget {
  readonly type: string
  readonly name: string
}

/** The Key Protect error envelope (always with `reasons[0]`). */
export function errorBody(
  status: number,
  code: WireCode,
  message: string,
  what: string,
  target?: WireTarget,
): unknown {
  const phrase = REASON_PHRASE[status] ?? 'Error'
  let errorMsg: string
  if (status === 401) errorMsg = 'Unauthorized: The user does not have access to the specified resource.'
  else if (status === 429) errorMsg = 'Too Many Requests: Wait a few minutes and try again.'
  else if (status >= 500)
    errorMsg = `${phrase}: The key management service is currently unavailable. Your request could not be processed. Try again later.`
  else errorMsg = `${phrase}: ${what} could not be performed. See 'reasons' for more details.`
  return {
    metadata: { collectionType: ERROR_TYPE, collectionTotal: 1 },
    resources: [
      {
        errorMsg,
        reasons: [
          {
            code,
            message: REASON_MESSAGE[code] ?? message,
            status,
            moreInfo: MORE_INFO,
            ...(target === undefined ? {} : { target: { type: target.type, name: target.name } }),
          },
        ],
      },
    ],
  }
}

/** RFC 3339 UTC without milliseconds, as Key Protect prints dates. */
export function rfc3339(d: Date | undefined): string | undefined {
  return d === undefined ? undefined : d.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

export interface WireOptions {
  readonly region: string
  readonly account: string
}

/** `crn:v1:bluemix:public:kms:<region>:a/<account>:<instance>:key:<id>`. */
export function keyCrn(o: WireOptions, instance: string, id: string): string {
  return `crn:v1:bluemix:public:kms:${o.region}:a/${o.account}:${instance}:key:${id}`
}

/** A key resource (§2.1); `payload` only when given (GET of a standard key). */
export function keyResource(o: WireOptions, k: KeyInfo, payload?: Buffer): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: KEY_TYPE,
    id: k.id,
    name: k.name,
    aliases: [...k.aliases],
    ...(k.description === undefined ? {} : { description: k.description }),
    tags: [...k.tags],
    state: k.state,
    ...(k.expirationDate === undefined ? {} : { expirationDate: rfc3339(k.expirationDate) }),
    extractable: k.extractable,
    crn: keyCrn(o, k.instance, k.id),
    imported: k.imported,
    keyRingID: k.keyRingId,
    creationDate: rfc3339(k.createdAt),
    createdBy: k.createdBy ?? 'unknown',
    lastUpdateDate: rfc3339(k.updatedAt),
    ...(k.lastRotatedAt === undefined ? {} : { lastRotateDate: rfc3339(k.lastRotatedAt) }),
    keyVersion: k.deleted
      ? { id: k.keyVersion.id }
      : { id: k.keyVersion.id, creationDate: rfc3339(k.keyVersion.createdAt) },
    dualAuthDelete: {
      enabled: k.dualAuthDelete.enabled,
      ...(k.dualAuthDelete.enabled ? { keySetForDeletion: k.dualAuthDelete.keySetForDeletion === true } : {}),
      ...(k.dualAuthDelete.authExpiration === undefined
        ? {}
        : { authExpiration: rfc3339(k.dualAuthDelete.authExpiration) }),
    },
    ...(k.rotation === undefined
      ? {}
      : {
          rotation: {
            enabled: k.rotation.enabled,
            ...(k.rotation.intervalMonth === undefined ? {} : { interval_month: k.rotation.intervalMonth }),
          },
        }),
    deleted: k.deleted,
    algorithmType: 'Deprecated',
    algorithmMode: 'Deprecated',
    algorithmBitSize: 256,
    algorithmMetadata: { bitLength: '256', mode: 'Deprecated' },
  }
  if (k.deleted) {
    out['deletionDate'] = rfc3339(k.deletedAt)
    out['deletedBy'] = k.deletedBy ?? 'unknown'
    out['restoreAllowed'] = k.restoreAllowed
    out['restoreExpirationDate'] = rfc3339(k.restoreExpirationDate)
    out['purgeAllowed'] = k.purgeAllowed
    out['purgeAllowedFrom'] = rfc3339(k.purgeAllowedFrom)
    out['purgeScheduledOn'] = rfc3339(k.purgeScheduledOn)
  }
  if (payload !== undefined) out['payload'] = payload.toString('base64')
  return out
}

/** The collection envelope. */
export function collection(
  collectionType: string,
  resources: readonly unknown[],
  extra: Record<string, unknown> = {},
): unknown {
  return { metadata: { collectionType, collectionTotal: resources.length, ...extra }, resources }
}

/** A key policy resource (§3.4). */
export function policyResource(o: WireOptions, instance: string, p: KeyPolicyInfo): Record<string, unknown> {
  return {
    id: p.id,
    crn: `crn:v1:bluemix:public:kms:${o.region}:a/${o.account}:${instance}:policy:${p.id}`,
    ...(p.type === 'rotation'
      ? {
          rotation: {
            enabled: p.enabled,
            ...(p.intervalMonth === undefined ? {} : { interval_month: p.intervalMonth }),
          },
        }
      : { dualAuthDelete: { enabled: p.enabled } }),
    createdBy: p.createdBy ?? 'unknown',
    creationDate: rfc3339(p.createdAt),
    updatedBy: p.updatedBy ?? 'unknown',
    lastUpdateDate: rfc3339(p.updatedAt),
  }
}
