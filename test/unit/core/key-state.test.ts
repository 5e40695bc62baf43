import { describe, expect, it } from 'vitest'
import {
  assertActionAllowed,
  effectiveState,
  type KeyAction,
  type KeyStateValue,
} from '../../../src/core/key-state.js'
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
}
const STATES: KeyStateValue[] = [0, 1, 2, 3, 5]

describe('key states', () => {
  for (const [action, allowed] of Object.entries(TABLE) as [KeyAction, KeyStateValue[]][]) {
    it(`${action} is allowed exactly in states ${allowed.join(',')}; otherwise KEY_DELETED_ERR in 5, KEY_ACTION_INVALID_STATE_ERR elsewhere`, () => {
      for (const s of STATES) {
        if (allowed.includes(s)) expect(() => assertActionAllowed(action, s, false)).not.toThrow()
        else
          expectCodeSync(
            () => assertActionAllowed(action, s, false),
            s === 5 ? 'KEY_DELETED_ERR' : 'KEY_ACTION_INVALID_STATE_ERR',
          )
      }
    })
  }

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
