import { expect } from 'vitest'
import { EngineError, type ErrorCode } from '../../src/index.js'

/** Awaits `p`, expects it to reject with an EngineError of one of `codes`, and returns the error. */
export async function expectCode(p: Promise<unknown>, ...codes: ErrorCode[]): Promise<EngineError> {
  let caught: unknown
  try {
    await p
  } catch (err) {
    caught = err
  }
  expect(caught, `expected an EngineError ${codes.join('|')}`).toBeInstanceOf(EngineError)
  const e = caught as EngineError
  expect(codes).toContain(e.code)
  return e
}

/** Same for a synchronous call. */
export function expectCodeSync(fn: () => unknown, ...codes: ErrorCode[]): EngineError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  expect(caught, `expected an EngineError ${codes.join('|')}`).toBeInstanceOf(EngineError)
  const e = caught as EngineError
  expect(codes).toContain(e.code)
  return e
}
