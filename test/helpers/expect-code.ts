import { expect } from 'vitest'
import { EngineError, type ErrorCode } from '../../src/index.js'

function check(caught: unknown, codes: ErrorCode[]): EngineError {
  expect(caught, `expected an EngineError ${codes.join('|')}`).toBeInstanceOf(EngineError)
  const e = caught as EngineError
  expect(codes).toContain(e.code)
  return e
}

/** Awaits `p`, expects it to reject with an EngineError of one of `codes`, and returns the error. */
export async function expectCode(p: Promise<unknown>, ...codes: ErrorCode[]): Promise<EngineError> {
  try {
    await p
  } catch (err) {
    return check(err, codes)
  }
  return check(undefined, codes)
}

/** Same for a synchronous call. */
export function expectCodeSync(fn: () => unknown, ...codes: ErrorCode[]): EngineError {
  try {
    fn()
  } catch (err) {
    return check(err, codes)
  }
  return check(undefined, codes)
}
