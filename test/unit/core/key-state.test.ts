import { describe, expect, it } from 'vitest'
import {
  ACTION_RULES,
  assertActionAllowed,
  effectiveState,
  type KeyAction,
  type KeyStateValue,
} from '../../../src/core/key-state.js'
import type { ErrorCode } from '../../../src/core/errors.js'
import { expectCodeSync } from '../../helpers/expect-code.js'

// Key Protect v2 state table (spec digest §4.1): action → states in which it is allowed.
const TABLE: Record<KeyAction, KeyStateValue[]> = {
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
  setPolicies: [1],
  move: [0, 1, 2, 3],
  tag: [0, 1, 2, 3],
  untag: [0, 1, 2, 3],
  aliasName: [0, 1, 2, 3],
  setForDeletion: [0, 1, 2, 3],
  scheduleDeletion: [1, 2],
  getPayload: [0, 1, 2, 3],
  register: [1],
  sync: [0, 1, 2, 3, 5],
}
/** Actions whose refusal outside their states (other than 5) has a code of its own. */
const STATE_CODE: Partial<Record<KeyAction, ErrorCode>> = {
  setPolicies: 'KEY_INVALID_STATE_ERR',
  register: 'KEY_INVALID_STATE_ERR',
}
const STATES: KeyStateValue[] = [0, 1, 2, 3, 5]

describe('key states', () => {
  it('the table has exactly the actions listed here', () => {
    expect(Object.keys(ACTION_RULES).sort()).toEqual(Object.keys(TABLE).sort())
  })

  for (const [action, allowed] of Object.entries(TABLE) as [KeyAction, KeyStateValue[]][]) {
    const extractable = action === 'getPayload' // the one action only standard keys have
    const other: ErrorCode = STATE_CODE[action] ?? 'KEY_ACTION_INVALID_STATE_ERR'
    it(`${action} is allowed exactly in states ${allowed.join(',')}; otherwise KEY_DELETED_ERR in 5, ${other} elsewhere`, () => {
      for (const s of STATES) {
        if (allowed.includes(s)) expect(() => assertActionAllowed(action, s, extractable)).not.toThrow()
        else
          expectCodeSync(
            () => assertActionAllowed(action, s, extractable),
            s === 5 ? 'KEY_DELETED_ERR' : other,
          )
      }
    })
  }

  it('each kind refusal keeps its code: setPolicies on a standard key is KEY_INVALID_STATE_ERR, scheduleDeletion KEY_ROOT_REQ_ERR', () => {
    expectCodeSync(() => assertActionAllowed('setPolicies', 1, true), 'KEY_INVALID_STATE_ERR')
    expectCodeSync(() => assertActionAllowed('setPolicies', 5, true), 'KEY_DELETED_ERR')
    expectCodeSync(() => assertActionAllowed('scheduleDeletion', 1, true), 'KEY_ROOT_REQ_ERR')
    expectCodeSync(() => assertActionAllowed('scheduleDeletion', 0, true), 'KEY_ROOT_REQ_ERR')
    expectCodeSync(() => assertActionAllowed('scheduleDeletion', 5, true), 'KEY_DELETED_ERR')
  })

  it('getPayload on a root key is KEY_NOT_EXTRACTABLE_ERR, before the deleted check', () => {
    expectCodeSync(() => assertActionAllowed('getPayload', 1, false), 'KEY_NOT_EXTRACTABLE_ERR')
    expectCodeSync(() => assertActionAllowed('getPayload', 5, false), 'KEY_NOT_EXTRACTABLE_ERR')
    expectCodeSync(() => assertActionAllowed('getPayload', 5, true), 'KEY_DELETED_ERR')
  })

  it('root-key-only actions on a standard key fail with KEY_ROOT_REQ_ERR', () => {
    for (const a of ['wrap', 'unwrap', 'rewrap', 'rotate', 'disable', 'enable'] as KeyAction[]) {
      expectCodeSync(() => assertActionAllowed(a, a === 'enable' ? 2 : 1, true), 'KEY_ROOT_REQ_ERR')
    }
    expect(() => assertActionAllowed('delete', 1, true)).not.toThrow()
  })

  it('a key past its expiration date is Deactivated (3), unless deleted', () => {
    expect(effectiveState(1, 100, 99)).toBe(1)
    expect(effectiveState(1, 100, 100)).toBe(3)
    expect(effectiveState(2, 100, 200)).toBe(3)
    expect(effectiveState(5, 100, 200)).toBe(5)
    expect(effectiveState(1, undefined, 200)).toBe(1)
  })
})
