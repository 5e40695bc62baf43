/**
 * "No untyped exception escapes the public API for any input": every public engine method is called with
 * arbitrary values in every argument position, and must either succeed or throw an EngineError.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EngineError } from '../../../src/index.js'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'

let t: TestEngine
let keyId: string
let ciphertext: string
beforeAll(async () => {
  t = await openTestEngine()
  keyId = (await t.engine.createKey('fuzz', { name: 'fuzz-key', aliases: ['fuzz-alias'] })).id
  ciphertext = (await t.engine.wrap('fuzz', keyId)).ciphertext
})
afterAll(async () => {
  await t.engine.close()
})

const anything = (): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.anything(),
    fc.constantFrom('fuzz', 'fuzz-alias', '', 'x', null, undefined, 0, -1, 1e9, NaN, true, [], {}),
    fc.uint8Array({ maxLength: 64 }),
    fc.record(
      {
        name: fc.anything(),
        payload: fc.anything(),
        aad: fc.anything(),
        plaintext: fc.anything(),
        extractable: fc.anything(),
        limit: fc.anything(),
        states: fc.anything(),
        aliases: fc.anything(),
      },
      { requiredKeys: [] },
    ),
  )

describe('public API under arbitrary input', () => {
  it('every method succeeds or throws an EngineError', async () => {
    type Call = (a: unknown, b: unknown, c: unknown, d: unknown) => Promise<unknown>
    const e = t.engine as unknown as Record<string, Call>
    const methods = [
      'createKey',
      'getKey',
      'getKeyPayload',
      'listKeys',
      'listKeyVersions',
      'rotate',
      'disable',
      'enable',
      'deleteKey',
      'restoreKey',
      'addAlias',
      'removeAlias',
      'wrap',
      'unwrap',
      'rewrap',
      'wrapMany',
      'unwrapMany',
      'rewrapMany',
      'reencryptMany',
      'seal',
      'open',
      'usage',
    ]
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...methods),
        fc.oneof(fc.constant('fuzz'), anything()),
        fc.oneof(fc.constant(keyId), fc.constant('fuzz-alias'), anything()),
        fc.oneof(fc.constant(ciphertext), anything()),
        anything(),
        async (m, a, b, c, d) => {
          const fn = e[m]
          if (fn === undefined) throw new Error(`no method ${m}`)
          try {
            await fn.call(t.engine, a, b, c, d)
          } catch (err) {
            if (!(err instanceof EngineError)) throw err
            expect(err.code).not.toBe('INTERNAL_ERROR')
          }
        },
      ),
      { numRuns: 3000 },
    )
  })
})
