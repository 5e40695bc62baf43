/**
 * Wraps a real provider and counts its calls; keeps the DEK buffers it hands out so that tests can check
 * they were zeroed. Not a fake: every call goes to the real token.
 */
import type { RootKeyProvider, SecretBytes } from '../../src/index.js'

export interface Counted {
  provider: RootKeyProvider
  calls: Record<'encrypt' | 'decrypt' | 'generateRandom', number>
  /** Buffers of DEKs returned by decrypt and generateRandom, newest last. */
  buffers: Buffer[]
}

export function counting(real: RootKeyProvider): Counted {
  const calls = { encrypt: 0, decrypt: 0, generateRandom: 0 }
  const buffers: Buffer[] = []
  const keep = (s: SecretBytes): SecretBytes => {
    buffers.push(s.bytes)
    return s
  }
  const provider = new Proxy(real, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown
      if (typeof v !== 'function') return v
      const fn = v as (...a: unknown[]) => unknown
      if (prop === 'encrypt' || prop === 'decrypt' || prop === 'generateRandom') {
        return async (...args: unknown[]) => {
          calls[prop]++
          const r = await (fn.apply(target, args) as Promise<unknown>)
          return prop === 'encrypt' ? r : keep(r as SecretBytes)
        }
      }
      return fn.bind(target)
    },
  })
  return { provider, calls, buffers }
}
