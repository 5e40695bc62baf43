import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { SecretBytes } from '../../../src/index.js'
import { expectCodeSync } from '../../helpers/expect-code.js'

describe('SecretBytes', () => {
  it('zeroize overwrites the buffer it adopted and refuses later use', () => {
    const buf = Buffer.alloc(32, 0xab)
    const s = SecretBytes.adopt(buf)
    s.zeroize()
    expect(buf.equals(Buffer.alloc(32))).toBe(true)
    expect(s.zeroized).toBe(true)
    expect(s.length).toBe(0)
    expectCodeSync(() => s.bytes, 'INTERNAL_ERROR')
    s.zeroize() // idempotent
  })

  it('copyOf does not alias the source; exportCopy does not alias the secret', () => {
    const src = Buffer.alloc(8, 1)
    const s = SecretBytes.copyOf(src)
    src.fill(9)
    expect(s.bytes.equals(Buffer.alloc(8, 1))).toBe(true)
    const out = s.exportCopy()
    s.zeroize()
    expect(out.equals(Buffer.alloc(8, 1))).toBe(true)
  })

  it('never prints its bytes', () => {
    const s = SecretBytes.copyOf(Buffer.from('super secret key material'))
    expect(inspect(s)).toBe('[SecretBytes 25]')
    expect(JSON.stringify({ s })).toBe('{"s":"[SecretBytes 25]"}')
    expect(inspect({ nested: s })).not.toContain('super')
  })
})
