/**
 * Key Protect key states (NIST SP 800-57) and which action each allows.
 * Key Protect v2, "Key states and transitions": the spec digest §4.1 (shared/spec/key-protect-v2.md).
 * Core is the only place that enforces these; the HTTP layer never re-implements them.
 */
import { EngineError, type ErrorCode } from './errors.js'

export const KeyState = {
  PRE_ACTIVATION: 0,
  ACTIVE: 1,
  SUSPENDED: 2,
  DEACTIVATED: 3,
  DESTROYED: 5,
} as const
export type KeyStateValue = (typeof KeyState)[keyof typeof KeyState]

export const KEY_STATES: readonly KeyStateValue[] = [0, 1, 2, 3, 5]

/** Actions whose permission depends on the key's state (and, for some, on its kind). */
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
  | 'setPolicies'
  | 'move'
  | 'tag'
  | 'untag'
  | 'aliasName'
  | 'setForDeletion'
  | 'scheduleDeletion'
  | 'getPayload'
  | 'register'
  | 'sync'

/** One row of the table: where an action is allowed, and the code (and words) of each refusal. */
export interface ActionRule {
  /** States in which the action is allowed. */
  readonly states: readonly KeyStateValue[]
  /** The kind of key the action needs: root keys only, standard keys only, or either. */
  readonly kind?: 'root' | 'standard'
  /** Refusal for the wrong kind (default KEY_ROOT_REQ_ERR "needs a root key"). */
  readonly kindError?: readonly [ErrorCode, string]
  /** The kind is checked before the state, even before "deleted" (default: after "deleted"). */
  readonly kindFirst?: boolean
  /** Refusal for a state outside `states` other than 5 (default KEY_ACTION_INVALID_STATE_ERR). */
  readonly stateError?: readonly [ErrorCode, string | ((state: KeyStateValue) => string)]
  /**
   * The action is allowed on a key being purged (`KeyRecord.purgingSince` set: its provider objects are
   * being destroyed, it only goes forward). Only purge is; every other action allowed in the key's state is
   * refused with KEY_PURGE_IN_PROGRESS_ERR.
   */
  readonly whilePurging?: boolean
}

const LIVE: readonly KeyStateValue[] = [0, 1, 2, 3]

/**
 * The key-state table: Key Protect v2 (spec digest §4.1) for the Key Protect actions, and the same rules for
 * what the AWS KMS API adds. Every refusal keeps the code the engine has always given for it.
 */
export const ACTION_RULES: Readonly<Record<KeyAction, ActionRule>> = {
  wrap: { states: [1], kind: 'root' },
  unwrap: { states: [1, 3], kind: 'root' },
  rewrap: { states: [1, 3], kind: 'root' },
  rotate: { states: [1, 3], kind: 'root' },
  disable: { states: [1], kind: 'root' },
  enable: { states: [2], kind: 'root' },
  delete: { states: LIVE },
  restore: {
    states: [5],
    stateError: ['KEY_ACTION_INVALID_STATE_ERR', 'key: only a deleted key can be restored'],
  },
  purge: {
    states: [5],
    stateError: ['KEY_ACTION_INVALID_STATE_ERR', 'key: only a deleted key can be purged'],
    whilePurging: true,
  },
  listVersions: { states: LIVE },
  addAlias: { states: LIVE },
  setPolicies: {
    states: [1],
    kind: 'root',
    kindError: [
      'KEY_INVALID_STATE_ERR',
      'key: policies need a root key (extractable=false) in the Active (1) state',
    ],
    stateError: [
      'KEY_INVALID_STATE_ERR',
      'key: policies need a root key (extractable=false) in the Active (1) state',
    ],
  },
  move: { states: LIVE },
  tag: { states: LIVE },
  untag: { states: LIVE },
  aliasName: { states: LIVE },
  setForDeletion: { states: LIVE },
  scheduleDeletion: {
    states: [1, 2],
    kind: 'root',
    kindError: ['KEY_ROOT_REQ_ERR', 'key: is a standard key'],
    stateError: ['KEY_ACTION_INVALID_STATE_ERR', (s) => `key: cannot schedule deletion in state ${s}`],
  },
  register: {
    states: [1],
    kind: 'root',
    kindError: [
      'KEY_INVALID_STATE_ERR',
      'key: registrations need a root key (extractable=false) in the Active (1) state',
    ],
    stateError: [
      'KEY_INVALID_STATE_ERR',
      'key: registrations need a root key (extractable=false) in the Active (1) state',
    ],
  },
  // Sync re-notifies the registered services of the key's state, whatever it is (deleted included).
  sync: { states: [0, 1, 2, 3, 5], kind: 'root', kindError: ['KEY_ROOT_REQ_ERR', 'key: is a standard key'] },
  getPayload: {
    states: LIVE,
    kind: 'standard',
    kindFirst: true,
    kindError: ['KEY_NOT_EXTRACTABLE_ERR', 'key: is a root key; its material never leaves the HSM'],
  },
}

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
 * Throws unless `action` is allowed on a key in `state` (see {@link ACTION_RULES}); `purging` when the key
 * is being purged.
 * @throws EngineError KEY_DELETED_ERR (state 5), KEY_ACTION_INVALID_STATE_ERR, KEY_ROOT_REQ_ERR, KEY_PURGE_IN_PROGRESS_ERR, or the action's own code
 */
export function assertActionAllowed(
  action: KeyAction,
  state: KeyStateValue,
  extractable: boolean,
  purging = false,
): void {
  const rule = ACTION_RULES[action]
  const kindOk = rule.kind === undefined || (rule.kind === 'root') !== extractable
  if (kindOk && rule.states.includes(state)) {
    if (purging && rule.whilePurging !== true) {
      throw new EngineError(
        'KEY_PURGE_IN_PROGRESS_ERR',
        `key: is being purged; ${action} is refused (run the purge again, or reconcile, to finish it)`,
      )
    }
    return
  }
  if (!kindOk && rule.kindFirst === true) throw kindError(action, rule)
  if (!rule.states.includes(state) && state === KeyState.DESTROYED) {
    throw new EngineError('KEY_DELETED_ERR', `key: is deleted`)
  }
  if (!kindOk) throw kindError(action, rule)
  const [code, message] = rule.stateError ?? [
    'KEY_ACTION_INVALID_STATE_ERR',
    `key: ${action} is not allowed in state ${state}`,
  ]
  throw new EngineError(code, typeof message === 'string' ? message : message(state))
}

function kindError(action: KeyAction, rule: ActionRule): EngineError {
  const [code, message] = rule.kindError ?? [
    'KEY_ROOT_REQ_ERR',
    `key: ${action} needs a root key; this is a standard key`,
  ]
  return new EngineError(code, message)
}
