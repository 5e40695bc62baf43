/**
 * Every failure the engine reports is an {@link EngineError} with a stable {@link ErrorCode}.
 * Codes are part of the public API: they never change meaning, and new ones are only added.
 */
export const ERROR_CODES = [
  /** The key does not exist in this instance (or belongs to another instance: the two are indistinguishable). */
  'KEY_NOT_FOUND_ERR',
  /** The key's state does not allow the action (Key Protect state table). */
  'KEY_ACTION_INVALID_STATE_ERR',
  /** The key is deleted (state 5). */
  'KEY_DELETED_ERR',
  /** The action needs a root key, and the key is a standard key. */
  'KEY_ROOT_REQ_ERR',
  /** The key material was asked for, and the key is a root key (root key material never leaves the HSM). */
  'KEY_NOT_EXTRACTABLE_ERR',
  /** The action is not allowed yet (restore within 30 s of deletion, purge within 4 h, ...). */
  'REQ_TOO_EARLY_ERR',
  /** Rotation was refused because the key was rotated too recently. */
  'KEY_ROTATION_NOT_PERMITTED',
  /** An alias is already in use in this instance. */
  'KEY_ALIAS_NOT_UNIQUE_ERR',
  /** A key would have more aliases than allowed. */
  'KEY_ALIAS_QUOTA_ERR',
  /** An alias does not exist. */
  'ALIAS_NOT_FOUND_ERR',
  /** The key ring does not exist. */
  'KEY_RING_NOT_FOUND_ERR',
  /** The key ring still holds keys (in any state); delete them first, or force when all are deleted. */
  'KEY_RING_NOT_EMPTY_ERR',
  /** A forced key-ring delete found keys that are not deleted (state 5). */
  'KEY_RING_KEYS_NOT_DELETED_ERR',
  /** The instance has reached its key-ring quota. */
  'KEY_RING_RESOURCE_QUOTA_ERR',
  /** Policies and registrations need a root key in the Active (1) state. */
  'KEY_INVALID_STATE_ERR',
  /** A key search would cover more keys than the search limit; narrow it by state, type or key ring. */
  'KEY_SEARCH_TOO_BROAD',
  /** The key has no enabled dualAuthDelete policy, so it cannot be set (or unset) for deletion. */
  'NOT_DUAL_AUTH_ERR',
  /** Dual authorization: the delete needs a valid setKeyForDeletion by another user first. */
  'AUTHORIZATIONS_NOT_MET',
  /** A caller-supplied field or argument is invalid; `target` names it. */
  'INVALID_FIELD_ERR',
  /** A required field or argument is missing; `target` names it. */
  'MISSING_FIELD_ERR',
  /** The ciphertext is malformed, of an unknown format version or mechanism, or not made by this key. */
  'CIPHERTEXT_INVALID',
  /**
   * Authenticated decryption failed: the AAD differs from the one given at wrap, or the ciphertext body was
   * altered. AES-GCM cannot tell the two apart, and neither can the HSM.
   */
  'UNWRAP_AAD_MISMATCH',
  /** The ciphertext names a key version that this key does not have. */
  'KEY_VERSION_NOT_FOUND',
  /** A sealed message is malformed, truncated, reordered or has trailing bytes. */
  'MESSAGE_INVALID',
  /** A sealed message failed authentication (header or frame tag, or key commitment). */
  'MESSAGE_AUTH_FAILED',
  /** A sealed message's header, frame or body exceeds the configured bounds. */
  'MESSAGE_TOO_LARGE',
  /** The encryption context given to open differs from the one the message was sealed with. */
  'CONTEXT_MISMATCH',
  /** The root key version reached its AES-GCM invocation limit (NIST SP 800-38D): rotate the key. */
  'KEY_USAGE_LIMIT_ERR',
  /** The PKCS#11 module could not be loaded (missing file, not a PKCS#11 library). */
  'PROVIDER_MODULE_LOAD_FAILED',
  /** No token with the configured label is present. */
  'PROVIDER_TOKEN_NOT_FOUND',
  /** The HSM refused the PIN or credentials. */
  'PROVIDER_LOGIN_FAILED',
  /** The HSM or KMS is unreachable or failed repeatedly; safe to retry later. */
  'PROVIDER_UNAVAILABLE',
  /** The provider returned an unexpected error that is not a transient availability problem. */
  'PROVIDER_ERROR',
  /** The provider cannot do what was asked (mechanism or feature not supported by the device/profile). */
  'PROVIDER_UNSUPPORTED',
  /** The worker pool's queue is full; retry later or lower the load. */
  'POOL_SATURATED',
  /** A worker thread failed while running a task (it is replaced); retryable. */
  'POOL_WORKER_FAILED',
  /** The metadata store (catalog) failed. */
  'STORE_ERROR',
  /** The configuration is invalid. */
  'CONFIG_INVALID',
  /** The engine was closed. */
  'ENGINE_CLOSED',
  /** The operation was aborted by the caller's AbortSignal or deadline. */
  'ABORTED',
  /** A bug: an invariant of the engine did not hold. Report it. */
  'INTERNAL_ERROR',
  /** A key would have more key/value tags than allowed (50). */
  'TAG_QUOTA_ERR',
  /** The provider (a KMS) refused the call for lack of permission (AWS `AccessDeniedException`). */
  'PROVIDER_ACCESS_DENIED',
  /** The provider throttled the call and retries did not get through; retry later. */
  'PROVIDER_THROTTLED',
  /**
   * The key is being purged (a purge or a scheduled deletion started destroying its provider objects): it
   * can only go forward. Restore is refused; run the purge again, or `reconcile()`, to finish it.
   */
  'KEY_PURGE_IN_PROGRESS_ERR',
  /**
   * The provider answered that the root-key version object a ciphertext (or a wrap) needs does not exist:
   * it was destroyed, and no retry brings it back. Not retryable; `reconcile()` reports such versions.
   */
  'KEY_VERSION_MATERIAL_MISSING',
  /** The instance has no import token (Key Protect secure import): create one first. */
  'IMPORT_TOKEN_NOT_FOUND_ERR',
  /** The instance's import token has expired: create a new one. */
  'IMPORT_TOKEN_EXPIRED_ERR',
  /** The import token was retrieved `maxAllowedRetrievals` times already: create a new one. */
  'IMPORT_TOKEN_RETRIEVALS_EXHAUSTED',
  /**
   * The instance's keyCreateImportAccess policy forbids this kind of create, import or rotation (root or
   * standard, generated or imported), or requires an import token for imported material.
   */
  'KEY_CREATE_IMPORT_ACCESS_ERR',
  /** The client address is outside the instance's allowedIP policy (or unknown while one is active). */
  'IP_ADDRESS_NOT_ALLOWED_ERR',
  /** The key has no registration for that resource CRN. */
  'REGISTRATION_NOT_FOUND_ERR',
  /** A registration for that key and resource CRN exists with different properties. */
  'REGISTRATION_DUP_ERR',
  /** Deactivating a registration needs it Suspended (2): its key disabled or deleted. */
  'REG_INVALID_STATE_ERR',
  /** The key has registrations (cloud resources protected by it): delete with `force` to remove them. */
  'PROTECTED_RESOURCE_ERR',
  /** A registration with `preventKeyDeletion` blocks the key's deletion, even a forced one. */
  'PREV_KEY_DEL_ERR',
  /** The acknowledged event does not exist in this instance. */
  'EVENT_NOT_FOUND',
  /** The tenant has no key provider with that fingerprint (tenant key providers, Qlik `arnFingerPrint`). */
  'KEY_PROVIDER_NOT_FOUND',
  /** The key (ARN) is already registered as a key provider of this tenant. */
  'KEY_PROVIDER_EXISTS',
  /** The key provider's ARN (or key reference) is malformed. */
  'KEY_PROVIDER_ARN_INVALID',
  /**
   * The key provider is in use: it is current, a migration reads from or writes to it, or catalog entries are
   * still wrapped under it. Migrate away (or reset to the default) first.
   */
  'KEY_PROVIDER_IN_USE',
  /** The tenant already uses this key provider (reset when already on the default, migrate to the current one). */
  'KEY_PROVIDER_ALREADY_CURRENT',
  /** A key-provider migration is already running for this tenant; wait for it (one at a time). */
  'MIGRATION_IN_PROGRESS',
  /** The tenant has no ongoing or completed key-provider migration. */
  'MIGRATION_NOT_FOUND',
  /** The job does not exist (or belongs to another tenant: the two are indistinguishable). */
  'JOB_NOT_FOUND',
  /** A job of this type is already queued or running for this tenant (one at a time). */
  'JOB_CONFLICT',
  /** The job is finished (completed, failed or cancelled) and cannot be changed. */
  'JOB_FINISHED',
  /** The tenant's data-key catalog has no entry of that name. */
  'DATA_KEY_NOT_FOUND',
  /** The tenant's data-key catalog already has an entry of that name. */
  'DATA_KEY_EXISTS',
  /** The tenant has no cloud connection of that id or name (key synchronization). */
  'CONNECTION_NOT_FOUND',
  /** The tenant already has a connection of that name. */
  'CONNECTION_EXISTS',
  /** Linked keys still refer to the connection; it cannot be deleted. */
  'CONNECTION_IN_USE',
  /** The tenant has no linked (synchronized) key of that id. */
  'LINKED_KEY_NOT_FOUND',
  /** The linked key cannot wrap now: deleted at its source, disabled there, or not a key the engine can wrap with. */
  'LINKED_KEY_UNAVAILABLE',
] as const

/** Stable error codes. */
export type ErrorCode = (typeof ERROR_CODES)[number]

/** What part of the input an error is about (a Key Protect `reasons[].target`). */
export interface ErrorTarget {
  readonly type: 'field' | 'param' | 'path_param' | 'header'
  readonly name: string
}

/** Options for {@link EngineError}. */
export interface EngineErrorOptions {
  readonly retryable?: boolean
  readonly cause?: unknown
  readonly target?: ErrorTarget
}

const RETRYABLE_BY_DEFAULT: ReadonlySet<ErrorCode> = new Set([
  'PROVIDER_UNAVAILABLE',
  'STORE_ERROR',
  'POOL_SATURATED',
  'POOL_WORKER_FAILED',
  'PROVIDER_THROTTLED',
])

/**
 * The one error class the engine throws. Messages start with the thing at fault and never carry key
 * material, PINs or provider stack traces; the native error is kept as `cause` for operators.
 */
export class EngineError extends Error {
  override readonly name = 'EngineError'
  readonly code: ErrorCode
  readonly retryable: boolean
  readonly target: ErrorTarget | undefined

  constructor(code: ErrorCode, message: string, options: EngineErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.retryable = options.retryable ?? RETRYABLE_BY_DEFAULT.has(code)
    this.target = options.target
  }
}

/** True when `err` is an {@link EngineError}, optionally with the given code. */
export function isEngineError(err: unknown, code?: ErrorCode): err is EngineError {
  return err instanceof EngineError && (code === undefined || err.code === code)
}

/** Shorthand for an `INVALID_FIELD_ERR` about a named field. */
export function invalidField(name: string, message: string): EngineError {
  return new EngineError('INVALID_FIELD_ERR', `${name}: ${message}`, { target: { type: 'field', name } })
}

/**
 * Wraps anything that is not already an {@link EngineError} as `INTERNAL_ERROR`, so that no untyped
 * exception escapes the public API.
 */
export function toEngineError(err: unknown, context: string): EngineError {
  if (err instanceof EngineError) return err
  return new EngineError('INTERNAL_ERROR', `${context}: unexpected failure`, { cause: err })
}
