/**
 * Key Protect key states (NIST SP 800-57) and which action each allows.
 * Key Protect v2, "Key states and transitions": the spec digest §4.1 (shared/spec/key-protect-v2.md).
 * Core is the only place that enforces these; the HTTP layer never re-implements them.
 */
import { EngineError } from './errors.js'

export const KeyState = {
  PRE_ACTIVATION: 0,
  ACTIVE: 1,
  SUSPENDED: 2,
  DEACTIVATED: 3,
  DESTROYED: 5,
} as const
export type KeyStateValue = (typeof KeyState)[keyof typeof KeyState]

export const KEY_STATES: readonly KeyStateValue[] = [0, 1, 2, 3, 5]

/** Actions whose permission depends on the key's state. */
export type KeyAction =
  | 'wrap'
  | 'unwrap'
  | 'rewrap'
  | 'rotate'
  | 'disable'
  | 'enable'
  | 'delete'
  | 'restore'
  | 'purge'
  | 'listVersions'
  | 'addAlias'

const ALLOWED: Readonly<Record<KeyAction, readonly KeyStateValue[]>> = {
  wrap: [1],
  unwrap: [1, 3],
  rewrap: [1, 3],
  rotate: [1, 3],
  disable: [1],
  enable: [2],
  delete: [0, 1, 2, 3],
  restore: [5],
  purge: [5],
  listVersions: [0, 1, 2, 3],
  addAlias: [0, 1, 2, 3],
}

/** Actions that only root keys (extractable=false) support: Key Protect answers KEY_ROOT_REQ_ERR otherwise. */
const ROOT_ONLY: ReadonlySet<KeyAction> = new Set(['wrap', 'unwrap', 'rewrap', 'rotate', 'disable', 'enable'])

/** The state a key is in at `now`: a key whose expiration date passed is Deactivated (3). */
export function effectiveState(
  stored: KeyStateValue,
  expirationDate: number | undefined,
  now: number,
): KeyStateValue {
  if (stored !== KeyState.DESTROYED && expirationDate !== undefined && expirationDate <= now) {
    return KeyState.DEACTIVATED
  }
  return stored
}

/**
 * Throws unless `action` is allowed on a key in `state`.
 * @throws EngineError KEY_DELETED_ERR (state 5), KEY_ACTION_INVALID_STATE_ERR, KEY_ROOT_REQ_ERR
 */
export function assertActionAllowed(action: KeyAction, state: KeyStateValue, extractable: boolean): void {
  if (ALLOWED[action].includes(state)) {
    if (extractable && ROOT_ONLY.has(action)) {
      throw new EngineError('KEY_ROOT_REQ_ERR', `key: ${action} needs a root key; this is a standard key`)
    }
    return
  }
  if (state === KeyState.DESTROYED) throw new EngineError('KEY_DELETED_ERR', `key: is deleted`)
  if (extractable && ROOT_ONLY.has(action)) {
    throw new EngineError('KEY_ROOT_REQ_ERR', `key: ${action} needs a root key; this is a standard key`)
  }
  throw new EngineError('KEY_ACTION_INVALID_STATE_ERR', `key: ${action} is not allowed in state ${state}`)
}
