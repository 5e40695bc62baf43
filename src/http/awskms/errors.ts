/**
 * Engine error codes → AWS KMS error types and HTTP statuses (AWS JSON 1.1: `{"__type", "message"}`).
 * Exhaustive: a new ErrorCode without an entry fails the build. Statuses are those AWS KMS answers with
 * (client errors 400, service errors 500/503), so that the AWS SDKs classify and retry them as they do
 * against AWS.
 */
import type { ErrorCode } from '../../core/errors.js'

export interface AwsErrorShape {
  readonly type: string
  readonly status: 400 | 413 | 500 | 503
}

const e = (type: string, status: AwsErrorShape['status'] = 400): AwsErrorShape => ({ type, status })
const INTERNAL = e('KMSInternalException', 500)

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
}

/** Messages shown to clients for service-side failures (details stay in the log). */
export function clientMessage(shape: AwsErrorShape, message: string): string {
  return shape.status >= 500 ? 'The service failed to process the request; retry later.' : message
}
