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
}

/** Messages shown to AWS clients for service-side failures (details stay in the log). */
export function clientMessage(shape: AwsErrorShape, message: string): string {
  return shape.status >= 500 ? 'The service failed to process the request; retry later.' : message
}

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
}
