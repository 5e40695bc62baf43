/**
 * Engine error codes → HTTP, one exhaustive table per API family (STYLE §4): a new ErrorCode without an
 * entry in each table fails the build. Each family shapes its own error body (Key Protect: keyprotect/wire.ts
 * `errorBody`; AWS JSON 1.1: `{"__type", "message"}` in awskms/routes.ts); the status always comes from here.
 */
import type { ErrorCode } from '../core/errors.js'

// ---------------------------------------------------------------- Key Protect v2

/** Codes the Key Protect HTTP layer raises itself (not engine errors). */
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
export const ENGINE_TO_WIRE: Readonly<Record<ErrorCode, { status: number; code: WireCode }>> = {
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
  // A key being purged is in a state that only goes forward: Key Protect's state conflict.
  KEY_PURGE_IN_PROGRESS_ERR: { status: 409, code: 'KEY_ACTION_INVALID_STATE_ERR' },
  // The version's HSM object is gone for good: permanent, so 410 Gone, never a 5xx "try again later".
  KEY_VERSION_MATERIAL_MISSING: { status: 410, code: 'KEY_VERSION_MATERIAL_MISSING' },
  IMPORT_TOKEN_NOT_FOUND_ERR: { status: 404, code: 'IMPORT_TOKEN_NOT_FOUND_ERR' },
  IMPORT_TOKEN_EXPIRED_ERR: { status: 409, code: 'IMPORT_TOKEN_EXPIRED_ERR' },
  // Spec digest §3.6/§6: "retrievals exhausted or expired" share Key Protect's one 409 reason code.
  IMPORT_TOKEN_RETRIEVALS_EXHAUSTED: { status: 409, code: 'IMPORT_TOKEN_EXPIRED_ERR' },
  KEY_CREATE_IMPORT_ACCESS_ERR: { status: 409, code: 'KEY_CREATE_IMPORT_ACCESS_ERR' },
  // Spec digest §1.4: 403 is "a policy block"; the digest names no reason code for allowedIP, this is ours.
  IP_ADDRESS_NOT_ALLOWED_ERR: { status: 403, code: 'IP_ADDRESS_NOT_ALLOWED_ERR' },
  REGISTRATION_NOT_FOUND_ERR: { status: 404, code: 'REGISTRATION_NOT_FOUND_ERR' },
  REGISTRATION_DUP_ERR: { status: 409, code: 'REGISTRATION_DUP_ERR' },
  REG_INVALID_STATE_ERR: { status: 409, code: 'REG_INVALID_STATE_ERR' },
  PROTECTED_RESOURCE_ERR: { status: 409, code: 'PROTECTED_RESOURCE_ERR' },
  PREV_KEY_DEL_ERR: { status: 409, code: 'PREV_KEY_DEL_ERR' },
  EVENT_NOT_FOUND: { status: 404, code: 'EVENT_NOT_FOUND' },
  KEY_PROVIDER_NOT_FOUND: { status: 404, code: 'NOT_FOUND_ERR' },
  KEY_PROVIDER_EXISTS: { status: 409, code: 'BAD_BODY_ERR' },
  KEY_PROVIDER_ARN_INVALID: { status: 400, code: 'INVALID_FIELD_ERR' },
  KEY_PROVIDER_IN_USE: { status: 409, code: 'KEY_ACTION_INVALID_STATE_ERR' },
  KEY_PROVIDER_ALREADY_CURRENT: { status: 409, code: 'KEY_ACTION_INVALID_STATE_ERR' },
  MIGRATION_IN_PROGRESS: { status: 409, code: 'KEY_ACTION_INVALID_STATE_ERR' },
  MIGRATION_NOT_FOUND: { status: 404, code: 'NOT_FOUND_ERR' },
  JOB_NOT_FOUND: { status: 404, code: 'NOT_FOUND_ERR' },
  JOB_CONFLICT: { status: 409, code: 'KEY_ACTION_INVALID_STATE_ERR' },
  JOB_FINISHED: { status: 409, code: 'KEY_ACTION_INVALID_STATE_ERR' },
  DATA_KEY_NOT_FOUND: { status: 404, code: 'NOT_FOUND_ERR' },
  DATA_KEY_EXISTS: { status: 409, code: 'BAD_BODY_ERR' },
  CONNECTION_NOT_FOUND: { status: 404, code: 'NOT_FOUND_ERR' },
  CONNECTION_EXISTS: { status: 409, code: 'BAD_BODY_ERR' },
  CONNECTION_IN_USE: { status: 409, code: 'KEY_ACTION_INVALID_STATE_ERR' },
  LINKED_KEY_NOT_FOUND: { status: 404, code: 'NOT_FOUND_ERR' },
  LINKED_KEY_UNAVAILABLE: { status: 409, code: 'KEY_ACTION_INVALID_STATE_ERR' },
}

/** The Key Protect status and wire code of an engine error code. */
export function wireOf(code: ErrorCode): { status: number; code: WireCode } {
  return ENGINE_TO_WIRE[code]
}

// ---------------------------------------------------------------- AWS KMS (JSON 1.1)

/**
 * An AWS KMS error type and status. Statuses are those AWS KMS answers with (client errors 400, service
 * errors 500/503), so that the AWS SDKs classify and retry them as they do against AWS.
 */
export interface AwsErrorShape {
  readonly type: string
  readonly status: 400 | 413 | 500 | 503
}

const e = (type: string, status: AwsErrorShape['status'] = 400): AwsErrorShape => ({ type, status })
const INTERNAL = e('KMSInternalException', 500)

/** Engine code → AWS KMS error type (`__type`) and HTTP status. */
export const AWS_KMS_ERRORS: Readonly<Record<ErrorCode, AwsErrorShape>> = {
  KEY_NOT_FOUND_ERR: e('NotFoundException'),
  KEY_ACTION_INVALID_STATE_ERR: e('KMSInvalidStateException'),
  KEY_DELETED_ERR: e('KMSInvalidStateException'),
  KEY_ROOT_REQ_ERR: e('InvalidKeyUsageException'),
  KEY_NOT_EXTRACTABLE_ERR: e('InvalidKeyUsageException'),
  REQ_TOO_EARLY_ERR: e('KMSInvalidStateException'),
  KEY_ROTATION_NOT_PERMITTED: e('LimitExceededException'),
  KEY_ALIAS_NOT_UNIQUE_ERR: e('AlreadyExistsException'),
  KEY_ALIAS_QUOTA_ERR: e('LimitExceededException'),
  ALIAS_NOT_FOUND_ERR: e('NotFoundException'),
  KEY_RING_NOT_FOUND_ERR: e('NotFoundException'),
  KEY_RING_NOT_EMPTY_ERR: e('ValidationException'),
  KEY_RING_KEYS_NOT_DELETED_ERR: e('ValidationException'),
  KEY_RING_RESOURCE_QUOTA_ERR: e('LimitExceededException'),
  KEY_INVALID_STATE_ERR: e('KMSInvalidStateException'),
  KEY_SEARCH_TOO_BROAD: e('ValidationException'),
  INVALID_FIELD_ERR: e('ValidationException'),
  MISSING_FIELD_ERR: e('ValidationException'),
  CIPHERTEXT_INVALID: e('InvalidCiphertextException'),
  UNWRAP_AAD_MISMATCH: e('InvalidCiphertextException'),
  KEY_VERSION_NOT_FOUND: e('InvalidCiphertextException'),
  MESSAGE_INVALID: e('ValidationException'),
  MESSAGE_AUTH_FAILED: e('InvalidCiphertextException'),
  MESSAGE_TOO_LARGE: e('ValidationException'),
  CONTEXT_MISMATCH: e('InvalidCiphertextException'),
  KEY_USAGE_LIMIT_ERR: e('LimitExceededException'),
  PROVIDER_MODULE_LOAD_FAILED: INTERNAL,
  PROVIDER_TOKEN_NOT_FOUND: INTERNAL,
  PROVIDER_LOGIN_FAILED: INTERNAL,
  PROVIDER_UNAVAILABLE: e('DependencyTimeoutException', 503),
  PROVIDER_ERROR: INTERNAL,
  PROVIDER_UNSUPPORTED: e('UnsupportedOperationException'),
  POOL_SATURATED: e('ThrottlingException'),
  POOL_WORKER_FAILED: INTERNAL,
  STORE_ERROR: INTERNAL,
  CONFIG_INVALID: INTERNAL,
  ENGINE_CLOSED: e('KMSInternalException', 503),
  ABORTED: INTERNAL,
  INTERNAL_ERROR: INTERNAL,
  TAG_QUOTA_ERR: e('TagException'),
  PROVIDER_ACCESS_DENIED: INTERNAL,
  PROVIDER_THROTTLED: e('ThrottlingException'),
  NOT_DUAL_AUTH_ERR: e('KMSInvalidStateException'),
  AUTHORIZATIONS_NOT_MET: e('KMSInvalidStateException'),
  KEY_PURGE_IN_PROGRESS_ERR: e('KMSInvalidStateException'),
  // AWS KMS answers KMSInvalidStateException for a key whose material is gone (deleted imported material).
  KEY_VERSION_MATERIAL_MISSING: e('KMSInvalidStateException'),
  IMPORT_TOKEN_NOT_FOUND_ERR: e('NotFoundException'),
  IMPORT_TOKEN_EXPIRED_ERR: e('ExpiredImportTokenException'),
  IMPORT_TOKEN_RETRIEVALS_EXHAUSTED: e('ExpiredImportTokenException'),
  KEY_CREATE_IMPORT_ACCESS_ERR: e('KMSInvalidStateException'),
  IP_ADDRESS_NOT_ALLOWED_ERR: e('AccessDeniedException'),
  REGISTRATION_NOT_FOUND_ERR: e('NotFoundException'),
  REGISTRATION_DUP_ERR: e('AlreadyExistsException'),
  REG_INVALID_STATE_ERR: e('KMSInvalidStateException'),
  // AWS KMS has no registrations; a key still in use elsewhere is refused as a state conflict.
  PROTECTED_RESOURCE_ERR: e('KMSInvalidStateException'),
  PREV_KEY_DEL_ERR: e('KMSInvalidStateException'),
  EVENT_NOT_FOUND: e('NotFoundException'),
  // Tenant key providers, jobs and the data-key catalog have no AWS KMS operation; a library error that
  // reaches this listener anyway is shaped as the nearest AWS exception.
  KEY_PROVIDER_NOT_FOUND: e('NotFoundException'),
  KEY_PROVIDER_EXISTS: e('AlreadyExistsException'),
  KEY_PROVIDER_ARN_INVALID: e('ValidationException'),
  KEY_PROVIDER_IN_USE: e('KMSInvalidStateException'),
  KEY_PROVIDER_ALREADY_CURRENT: e('KMSInvalidStateException'),
  MIGRATION_IN_PROGRESS: e('KMSInvalidStateException'),
  MIGRATION_NOT_FOUND: e('NotFoundException'),
  JOB_NOT_FOUND: e('NotFoundException'),
  JOB_CONFLICT: e('KMSInvalidStateException'),
  JOB_FINISHED: e('KMSInvalidStateException'),
  DATA_KEY_NOT_FOUND: e('NotFoundException'),
  DATA_KEY_EXISTS: e('AlreadyExistsException'),
  CONNECTION_NOT_FOUND: e('NotFoundException'),
  CONNECTION_EXISTS: e('AlreadyExistsException'),
  CONNECTION_IN_USE: e('KMSInvalidStateException'),
  LINKED_KEY_NOT_FOUND: e('NotFoundException'),
  LINKED_KEY_UNAVAILABLE: e('KMSInvalidStateException'),
}

/** Messages shown to AWS clients for service-side failures (details stay in the log). */
export function clientMessage(shape: AwsErrorShape, message: string): string {
  return shape.status >= 500 ? 'The service failed to process the request; retry later.' : message
}

// ---------------------------------------------------------------- Qlik Cloud encryption key providers

/**
 * A Qlik error: the HTTP status and the `code` and `title` of the `{errors:[{code,title,detail}]}` body.
 * Codes are `Encryption-<n>` (the seed's one example code is `Encryption-88`; the seed lists none), numbered
 * from 100 so as not to meet the compliance codes of `/actions/test` (docs/http-qlik.md lists them all).
 */
export interface QlikErrorShape {
  readonly status: number
  readonly code: string
  readonly title: string
}

const q = (status: number, n: number, title: string): QlikErrorShape => ({
  status,
  code: `Encryption-${n}`,
  title,
})

/** Errors the Qlik HTTP layer raises itself (authentication, framing, limits), by name. */
export const QLIK_HTTP_ERRORS = {
  badRequest: q(400, 100, 'Bad Request'),
  badJson: q(400, 101, 'Failed to decode request payload'),
  badPatch: q(400, 102, 'Failed to decode key provider patch request payload'),
  unauthorized: q(401, 110, 'Unauthorized, Invalid JWT'),
  forbiddenAction: q(403, 111, 'Forbidden: the token does not allow this action'),
  forbiddenTenant: q(403, 112, 'Forbidden: the token must name exactly one tenant'),
  noRoute: q(404, 122, 'No such endpoint'),
  bodyTooLarge: q(413, 132, 'Request body too large'),
  fingerprintTooLong: q(414, 133, 'Requested fingerprint length is too large'),
  tooManyRequests: q(429, 140, 'Too Many Requests'),
  internal: q(500, 150, 'Internal Server Error'),
  unavailable: q(503, 151, 'Service Unavailable'),
} as const satisfies Record<string, QlikErrorShape>

const BAD = QLIK_HTTP_ERRORS.badRequest
const QINTERNAL = QLIK_HTTP_ERRORS.internal
const QUNAVAILABLE = QLIK_HTTP_ERRORS.unavailable
// Engine errors of other API families' resources (root keys, aliases, key rings…): they do not arise from
// the key-provider endpoints; should one reach this listener it is a client error of the nearest class.
const QNOT_FOUND = q(404, 120, 'No entry match for the fingerprint was found')
const QCONFLICT = q(409, 141, 'The request conflicts with the state of the resource')
const QUNPROCESSABLE = q(422, 142, 'The request could not be processed')

/** Engine code → Qlik status, code and title (the seed's titles where it gives one). */
export const QLIK_ERRORS: Readonly<Record<ErrorCode, QlikErrorShape>> = {
  KEY_NOT_FOUND_ERR: QNOT_FOUND,
  KEY_ACTION_INVALID_STATE_ERR: QCONFLICT,
  KEY_DELETED_ERR: QNOT_FOUND,
  KEY_ROOT_REQ_ERR: BAD,
  KEY_NOT_EXTRACTABLE_ERR: BAD,
  REQ_TOO_EARLY_ERR: QCONFLICT,
  KEY_ROTATION_NOT_PERMITTED: QCONFLICT,
  KEY_ALIAS_NOT_UNIQUE_ERR: QCONFLICT,
  KEY_ALIAS_QUOTA_ERR: QCONFLICT,
  ALIAS_NOT_FOUND_ERR: QNOT_FOUND,
  KEY_RING_NOT_FOUND_ERR: QNOT_FOUND,
  KEY_RING_NOT_EMPTY_ERR: QCONFLICT,
  KEY_RING_KEYS_NOT_DELETED_ERR: QCONFLICT,
  KEY_RING_RESOURCE_QUOTA_ERR: QCONFLICT,
  KEY_INVALID_STATE_ERR: QUNPROCESSABLE,
  KEY_SEARCH_TOO_BROAD: BAD,
  INVALID_FIELD_ERR: BAD,
  MISSING_FIELD_ERR: BAD,
  CIPHERTEXT_INVALID: QUNPROCESSABLE,
  UNWRAP_AAD_MISMATCH: QUNPROCESSABLE,
  KEY_VERSION_NOT_FOUND: QUNPROCESSABLE,
  MESSAGE_INVALID: QUNPROCESSABLE,
  MESSAGE_AUTH_FAILED: QUNPROCESSABLE,
  MESSAGE_TOO_LARGE: QLIK_HTTP_ERRORS.bodyTooLarge,
  CONTEXT_MISMATCH: QUNPROCESSABLE,
  KEY_USAGE_LIMIT_ERR: QCONFLICT,
  PROVIDER_MODULE_LOAD_FAILED: QUNAVAILABLE,
  PROVIDER_TOKEN_NOT_FOUND: QUNAVAILABLE,
  PROVIDER_LOGIN_FAILED: QUNAVAILABLE,
  // The seed's 408: "The key provider (QlikVault, AWS-KMS) might be unavailable" — ours or the customer's.
  PROVIDER_UNAVAILABLE: q(
    408,
    130,
    'Failed to return a response within the timeout window. The key provider (QlikVault, AWS-KMS) might be unavailable.',
  ),
  PROVIDER_THROTTLED: q(
    408,
    130,
    'Failed to return a response within the timeout window. The key provider (QlikVault, AWS-KMS) might be unavailable.',
  ),
  PROVIDER_ERROR: QINTERNAL,
  PROVIDER_UNSUPPORTED: BAD,
  POOL_SATURATED: QUNAVAILABLE,
  POOL_WORKER_FAILED: QUNAVAILABLE,
  STORE_ERROR: QINTERNAL,
  CONFIG_INVALID: QINTERNAL,
  ENGINE_CLOSED: QUNAVAILABLE,
  ABORTED: QUNAVAILABLE,
  INTERNAL_ERROR: QINTERNAL,
  TAG_QUOTA_ERR: BAD,
  // The customer's key policy refuses this service (the seed's 403).
  PROVIDER_ACCESS_DENIED: q(
    403,
    113,
    'Provided AWS-KMS key access forbidden. Check if key policy allows access from Qlik Cloud.',
  ),
  NOT_DUAL_AUTH_ERR: QCONFLICT,
  AUTHORIZATIONS_NOT_MET: QCONFLICT,
  KEY_PURGE_IN_PROGRESS_ERR: QCONFLICT,
  KEY_VERSION_MATERIAL_MISSING: QUNPROCESSABLE,
  IMPORT_TOKEN_NOT_FOUND_ERR: QNOT_FOUND,
  IMPORT_TOKEN_EXPIRED_ERR: QCONFLICT,
  IMPORT_TOKEN_RETRIEVALS_EXHAUSTED: QCONFLICT,
  KEY_CREATE_IMPORT_ACCESS_ERR: QCONFLICT,
  IP_ADDRESS_NOT_ALLOWED_ERR: QLIK_HTTP_ERRORS.forbiddenAction,
  REGISTRATION_NOT_FOUND_ERR: QNOT_FOUND,
  REGISTRATION_DUP_ERR: QCONFLICT,
  REG_INVALID_STATE_ERR: QCONFLICT,
  PROTECTED_RESOURCE_ERR: QCONFLICT,
  PREV_KEY_DEL_ERR: QCONFLICT,
  EVENT_NOT_FOUND: QNOT_FOUND,
  KEY_PROVIDER_NOT_FOUND: QNOT_FOUND,
  KEY_PROVIDER_EXISTS: q(409, 131, 'The specified key is already registered'),
  KEY_PROVIDER_ARN_INVALID: q(417, 134, 'Failed to validate AWS-KMS ARN structure'),
  KEY_PROVIDER_IN_USE: q(424, 135, 'The requested key is being used and cannot be deleted'),
  KEY_PROVIDER_ALREADY_CURRENT: q(424, 136, 'The tenant already uses the requested key provider'),
  MIGRATION_IN_PROGRESS: q(428, 137, 'There is already an ongoing migration for the tenant'),
  MIGRATION_NOT_FOUND: q(404, 121, 'There is no ongoing migration for this tenant'),
  JOB_NOT_FOUND: QNOT_FOUND,
  JOB_CONFLICT: q(428, 137, 'There is already an ongoing migration for the tenant'),
  JOB_FINISHED: QCONFLICT,
  DATA_KEY_NOT_FOUND: QNOT_FOUND,
  DATA_KEY_EXISTS: QCONFLICT,
  CONNECTION_NOT_FOUND: QNOT_FOUND,
  CONNECTION_EXISTS: QCONFLICT,
  CONNECTION_IN_USE: QCONFLICT,
  LINKED_KEY_NOT_FOUND: QNOT_FOUND,
  LINKED_KEY_UNAVAILABLE: QCONFLICT,
}

/**
 * Route-specific statuses the seed gives for the same engine condition (reset answers a running migration
 * with 406, not 428; register answers a key that does not exist at its source with 406 "Failed to register
 * key").
 */
export const QLIK_ROUTE_ERRORS = {
  resetMigrationRunning: q(406, 138, 'There is already an ongoing migration in progress for the tenant'),
  resetAlreadyDefault: q(424, 136, 'Tenant is already using Qlik Managed provider'),
  registerFailed: q(406, 139, 'Failed to register key'),
} as const satisfies Record<string, QlikErrorShape>
// ---------------------------------------------------------------- Azure Key Vault

/** An Azure Key Vault error: HTTP status and the `error.code` of `{"error":{"code","message"}}`. */
export interface AzureErrorShape {
  readonly status: number
  readonly code: string
}

/**
 * Engine code → Azure Key Vault status and error code (KeyNotFound 404, BadParameter 400, Forbidden 403 for a
 * disabled, expired or key_ops-refused key, Conflict 409 for a soft-deleted name, ServiceUnavailable 503).
 * Codes no vault-key operation raises map to the nearest Key Vault code.
 */
export const AZURE_KV_ERRORS: Readonly<Record<ErrorCode, AzureErrorShape>> = {
  KEY_NOT_FOUND_ERR: { status: 404, code: 'KeyNotFound' },
  KEY_ACTION_INVALID_STATE_ERR: { status: 403, code: 'Forbidden' },
  KEY_DELETED_ERR: { status: 409, code: 'Conflict' },
  KEY_ROOT_REQ_ERR: { status: 400, code: 'BadParameter' },
  KEY_NOT_EXTRACTABLE_ERR: { status: 400, code: 'BadParameter' },
  REQ_TOO_EARLY_ERR: { status: 409, code: 'Conflict' },
  KEY_ROTATION_NOT_PERMITTED: { status: 409, code: 'Conflict' },
  KEY_ALIAS_NOT_UNIQUE_ERR: { status: 409, code: 'Conflict' },
  KEY_ALIAS_QUOTA_ERR: { status: 409, code: 'Conflict' },
  ALIAS_NOT_FOUND_ERR: { status: 404, code: 'NotFound' },
  KEY_RING_NOT_FOUND_ERR: { status: 404, code: 'NotFound' },
  KEY_RING_NOT_EMPTY_ERR: { status: 409, code: 'Conflict' },
  KEY_RING_KEYS_NOT_DELETED_ERR: { status: 409, code: 'Conflict' },
  KEY_RING_RESOURCE_QUOTA_ERR: { status: 409, code: 'Conflict' },
  KEY_INVALID_STATE_ERR: { status: 409, code: 'Conflict' },
  KEY_SEARCH_TOO_BROAD: { status: 400, code: 'BadParameter' },
  NOT_DUAL_AUTH_ERR: { status: 409, code: 'Conflict' },
  AUTHORIZATIONS_NOT_MET: { status: 409, code: 'Conflict' },
  INVALID_FIELD_ERR: { status: 400, code: 'BadParameter' },
  MISSING_FIELD_ERR: { status: 400, code: 'BadParameter' },
  CIPHERTEXT_INVALID: { status: 400, code: 'BadParameter' },
  UNWRAP_AAD_MISMATCH: { status: 400, code: 'BadParameter' },
  KEY_VERSION_NOT_FOUND: { status: 400, code: 'BadParameter' },
  MESSAGE_INVALID: { status: 400, code: 'BadParameter' },
  MESSAGE_AUTH_FAILED: { status: 400, code: 'BadParameter' },
  MESSAGE_TOO_LARGE: { status: 413, code: 'RequestEntityTooLarge' },
  CONTEXT_MISMATCH: { status: 400, code: 'BadParameter' },
  KEY_USAGE_LIMIT_ERR: { status: 403, code: 'Forbidden' },
  PROVIDER_MODULE_LOAD_FAILED: { status: 503, code: 'ServiceUnavailable' },
  PROVIDER_TOKEN_NOT_FOUND: { status: 503, code: 'ServiceUnavailable' },
  PROVIDER_LOGIN_FAILED: { status: 503, code: 'ServiceUnavailable' },
  PROVIDER_UNAVAILABLE: { status: 503, code: 'ServiceUnavailable' },
  PROVIDER_ERROR: { status: 500, code: 'InternalServerError' },
  PROVIDER_UNSUPPORTED: { status: 400, code: 'BadParameter' },
  POOL_SATURATED: { status: 503, code: 'ServiceUnavailable' },
  POOL_WORKER_FAILED: { status: 503, code: 'ServiceUnavailable' },
  STORE_ERROR: { status: 503, code: 'ServiceUnavailable' },
  CONFIG_INVALID: { status: 500, code: 'InternalServerError' },
  ENGINE_CLOSED: { status: 503, code: 'ServiceUnavailable' },
  ABORTED: { status: 400, code: 'BadParameter' },
  INTERNAL_ERROR: { status: 500, code: 'InternalServerError' },
  TAG_QUOTA_ERR: { status: 409, code: 'Conflict' },
  PROVIDER_ACCESS_DENIED: { status: 403, code: 'Forbidden' },
  PROVIDER_THROTTLED: { status: 429, code: 'Throttled' },
  KEY_PURGE_IN_PROGRESS_ERR: { status: 409, code: 'Conflict' },
  KEY_VERSION_MATERIAL_MISSING: { status: 500, code: 'InternalServerError' },
  IMPORT_TOKEN_NOT_FOUND_ERR: { status: 404, code: 'NotFound' },
  IMPORT_TOKEN_EXPIRED_ERR: { status: 400, code: 'BadParameter' },
  IMPORT_TOKEN_RETRIEVALS_EXHAUSTED: { status: 400, code: 'BadParameter' },
  KEY_CREATE_IMPORT_ACCESS_ERR: { status: 403, code: 'Forbidden' },
  IP_ADDRESS_NOT_ALLOWED_ERR: { status: 403, code: 'Forbidden' },
  REGISTRATION_NOT_FOUND_ERR: { status: 404, code: 'NotFound' },
  REGISTRATION_DUP_ERR: { status: 409, code: 'Conflict' },
  REG_INVALID_STATE_ERR: { status: 409, code: 'Conflict' },
  PROTECTED_RESOURCE_ERR: { status: 409, code: 'Conflict' },
  PREV_KEY_DEL_ERR: { status: 409, code: 'Conflict' },
  EVENT_NOT_FOUND: { status: 404, code: 'NotFound' },
  KEY_PROVIDER_NOT_FOUND: { status: 404, code: 'NotFound' },
  KEY_PROVIDER_EXISTS: { status: 409, code: 'Conflict' },
  KEY_PROVIDER_ARN_INVALID: { status: 400, code: 'BadParameter' },
  KEY_PROVIDER_IN_USE: { status: 409, code: 'Conflict' },
  KEY_PROVIDER_ALREADY_CURRENT: { status: 409, code: 'Conflict' },
  MIGRATION_IN_PROGRESS: { status: 409, code: 'Conflict' },
  MIGRATION_NOT_FOUND: { status: 404, code: 'NotFound' },
  JOB_NOT_FOUND: { status: 404, code: 'NotFound' },
  JOB_CONFLICT: { status: 409, code: 'Conflict' },
  JOB_FINISHED: { status: 409, code: 'Conflict' },
  DATA_KEY_NOT_FOUND: { status: 404, code: 'NotFound' },
  DATA_KEY_EXISTS: { status: 409, code: 'Conflict' },
  CONNECTION_NOT_FOUND: { status: 404, code: 'NotFound' },
  CONNECTION_EXISTS: { status: 409, code: 'Conflict' },
  CONNECTION_IN_USE: { status: 409, code: 'Conflict' },
  LINKED_KEY_NOT_FOUND: { status: 404, code: 'NotFound' },
  LINKED_KEY_UNAVAILABLE: { status: 409, code: 'Conflict' },
}

// ---------------------------------------------------------------- Thales CCKM key synchronization

/**
 * A CCKM error (CipherTrust Manager's body `{"code": <int>, "codeDesc": "NCERR…: …", "message": "…"}`): the
 * HTTP status, the integer `code` and the `codeDesc`. The names follow CipherTrust's `NCERR` spelling; the
 * numbers are this engine's (CipherTrust documents none): docs/http-cckm.md lists them all.
 */
export interface CckmErrorShape {
  readonly status: number
  readonly code: number
  readonly codeDesc: string
}

const k = (status: number, code: number, name: string, text: string): CckmErrorShape => ({
  status,
  code,
  codeDesc: `NCERR${name}: ${text}`,
})

/** Errors the CCKM HTTP layer raises itself (authentication, framing, paths), by name. */
export const CCKM_HTTP_ERRORS = {
  internal: k(500, 1, 'Internal', 'Internal server error'),
  badRequest: k(400, 3, 'BadRequest', 'The request could not be parsed'),
  invalidParam: k(400, 4, 'InvalidParamValue', 'Invalid value for parameter'),
  notFound: k(404, 5, 'ResourceNotFound', 'Resource not found'),
  noRoute: k(404, 6, 'NoRoute', 'No such endpoint'),
  unauthorized: k(401, 8, 'Unauthorized', 'Authentication required'),
  forbidden: k(403, 9, 'Forbidden', 'Not allowed'),
  bodyTooLarge: k(413, 10, 'RequestTooLarge', 'Request body too large'),
  unavailable: k(503, 12, 'ServiceUnavailable', 'Service unavailable; retry later'),
} as const satisfies Record<string, CckmErrorShape>

const KBAD = CCKM_HTTP_ERRORS.invalidParam
const KNOT_FOUND = CCKM_HTTP_ERRORS.notFound
const KINTERNAL = CCKM_HTTP_ERRORS.internal
const KUNAVAILABLE = CCKM_HTTP_ERRORS.unavailable
const KEXISTS = k(409, 7, 'ResourceAlreadyExists', 'Resource already exists')
const KCONFLICT = k(409, 11, 'Conflict', 'The request conflicts with the state of the resource')
const KUNPROCESSABLE = k(422, 13, 'Unprocessable', 'The request could not be processed')
const KCLOUD_DENIED = k(502, 14, 'CloudAccessDenied', 'The cloud source refused the request')
const KCLOUD_UNAVAILABLE = k(503, 15, 'CloudUnavailable', 'The cloud source is unavailable; retry later')

/** Engine code → CCKM status, code and codeDesc. Codes of other resources map to the nearest class. */
export const CCKM_ERRORS: Readonly<Record<ErrorCode, CckmErrorShape>> = {
  KEY_NOT_FOUND_ERR: KNOT_FOUND,
  KEY_ACTION_INVALID_STATE_ERR: KCONFLICT,
  KEY_DELETED_ERR: KNOT_FOUND,
  KEY_ROOT_REQ_ERR: KBAD,
  KEY_NOT_EXTRACTABLE_ERR: KBAD,
  REQ_TOO_EARLY_ERR: KCONFLICT,
  KEY_ROTATION_NOT_PERMITTED: KCONFLICT,
  KEY_ALIAS_NOT_UNIQUE_ERR: KEXISTS,
  KEY_ALIAS_QUOTA_ERR: KCONFLICT,
  ALIAS_NOT_FOUND_ERR: KNOT_FOUND,
  KEY_RING_NOT_FOUND_ERR: KNOT_FOUND,
  KEY_RING_NOT_EMPTY_ERR: KCONFLICT,
  KEY_RING_KEYS_NOT_DELETED_ERR: KCONFLICT,
  KEY_RING_RESOURCE_QUOTA_ERR: KCONFLICT,
  KEY_INVALID_STATE_ERR: KCONFLICT,
  KEY_SEARCH_TOO_BROAD: KBAD,
  INVALID_FIELD_ERR: KBAD,
  MISSING_FIELD_ERR: KBAD,
  CIPHERTEXT_INVALID: k(422, 16, 'InvalidCiphertext', 'The ciphertext is not valid for this key'),
  UNWRAP_AAD_MISMATCH: k(422, 16, 'InvalidCiphertext', 'The ciphertext is not valid for this key'),
  KEY_VERSION_NOT_FOUND: k(422, 16, 'InvalidCiphertext', 'The ciphertext is not valid for this key'),
  MESSAGE_INVALID: KUNPROCESSABLE,
  MESSAGE_AUTH_FAILED: KUNPROCESSABLE,
  MESSAGE_TOO_LARGE: CCKM_HTTP_ERRORS.bodyTooLarge,
  CONTEXT_MISMATCH: KUNPROCESSABLE,
  KEY_USAGE_LIMIT_ERR: KCONFLICT,
  PROVIDER_MODULE_LOAD_FAILED: KCLOUD_UNAVAILABLE,
  PROVIDER_TOKEN_NOT_FOUND: KCLOUD_UNAVAILABLE,
  PROVIDER_LOGIN_FAILED: KCLOUD_DENIED,
  PROVIDER_UNAVAILABLE: KCLOUD_UNAVAILABLE,
  PROVIDER_THROTTLED: KCLOUD_UNAVAILABLE,
  PROVIDER_ERROR: KINTERNAL,
  // The cloud's SDK is not installed: this engine cannot connect to that cloud.
  PROVIDER_UNSUPPORTED: k(400, 17, 'CloudNotSupported', 'This engine cannot connect to that cloud'),
  POOL_SATURATED: KUNAVAILABLE,
  POOL_WORKER_FAILED: KUNAVAILABLE,
  STORE_ERROR: KINTERNAL,
  CONFIG_INVALID: KINTERNAL,
  ENGINE_CLOSED: KUNAVAILABLE,
  ABORTED: KUNAVAILABLE,
  INTERNAL_ERROR: KINTERNAL,
  TAG_QUOTA_ERR: KCONFLICT,
  PROVIDER_ACCESS_DENIED: KCLOUD_DENIED,
  NOT_DUAL_AUTH_ERR: KCONFLICT,
  AUTHORIZATIONS_NOT_MET: KCONFLICT,
  KEY_PURGE_IN_PROGRESS_ERR: KCONFLICT,
  KEY_VERSION_MATERIAL_MISSING: k(
    422,
    18,
    'KeyMaterialMissing',
    'The key version no longer exists at the source',
  ),
  IMPORT_TOKEN_NOT_FOUND_ERR: KNOT_FOUND,
  IMPORT_TOKEN_EXPIRED_ERR: KCONFLICT,
  IMPORT_TOKEN_RETRIEVALS_EXHAUSTED: KCONFLICT,
  KEY_CREATE_IMPORT_ACCESS_ERR: CCKM_HTTP_ERRORS.forbidden,
  IP_ADDRESS_NOT_ALLOWED_ERR: CCKM_HTTP_ERRORS.forbidden,
  REGISTRATION_NOT_FOUND_ERR: KNOT_FOUND,
  REGISTRATION_DUP_ERR: KEXISTS,
  REG_INVALID_STATE_ERR: KCONFLICT,
  PROTECTED_RESOURCE_ERR: KCONFLICT,
  PREV_KEY_DEL_ERR: KCONFLICT,
  EVENT_NOT_FOUND: KNOT_FOUND,
  KEY_PROVIDER_NOT_FOUND: KNOT_FOUND,
  KEY_PROVIDER_EXISTS: KEXISTS,
  KEY_PROVIDER_ARN_INVALID: KBAD,
  KEY_PROVIDER_IN_USE: KCONFLICT,
  KEY_PROVIDER_ALREADY_CURRENT: KCONFLICT,
  MIGRATION_IN_PROGRESS: KCONFLICT,
  MIGRATION_NOT_FOUND: KNOT_FOUND,
  JOB_NOT_FOUND: KNOT_FOUND,
  // One synchronization per tenant and cloud at a time.
  JOB_CONFLICT: k(409, 19, 'SyncInProgress', 'A synchronization job of this cloud is already in progress'),
  JOB_FINISHED: k(409, 20, 'JobFinished', 'The job is finished and cannot be cancelled'),
  DATA_KEY_NOT_FOUND: KNOT_FOUND,
  DATA_KEY_EXISTS: KEXISTS,
  CONNECTION_NOT_FOUND: KNOT_FOUND,
  CONNECTION_EXISTS: KEXISTS,
  CONNECTION_IN_USE: k(409, 21, 'ConnectionInUse', 'Linked keys refer to the connection'),
  LINKED_KEY_NOT_FOUND: KNOT_FOUND,
  LINKED_KEY_UNAVAILABLE: k(409, 22, 'KeyUnavailable', 'The key cannot be used now'),
}
