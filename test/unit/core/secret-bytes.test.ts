import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { SecretBytes } from '../../../src/index.js'
import { SecretSlab } from '../../../src/core/secret-bytes.js'
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

describe('SecretSlab', () => {
  it('take hands out disjoint zero-filled regions of 16 KiB slabs, never the same bytes twice', () => {
    const slab = new SecretSlab()
    const a = slab.take(48)
    const b = slab.take(48)
    expect(a.buffer).toBe(b.buffer)
    expect(a.buffer.byteLength).toBe(16 * 1024)
    expect(b.byteOffset).toBe(a.byteOffset + 48)
    a.fill(1)
    expect(b.every((x) => x === 0)).toBe(true)
    // a slab that cannot fit the next region is left to its takers; a new one starts
    for (let i = 2; i < Math.floor((16 * 1024) / 48); i++) slab.take(48)
    const c = slab.take(48)
    expect(c.buffer).not.toBe(a.buffer)
    expect(c.byteOffset).toBe(0)
    // larger than a slab: a region of its own size
    expect(slab.take(20_000).buffer.byteLength).toBe(20_000)
  })

  it('scratch returns one region again and again; close zeroes it', () => {
    const slab = new SecretSlab()
    const s1 = slab.scratch(48)
    s1.fill(7)
    const s2 = slab.scratch(32)
    expect(s2.buffer).toBe(s1.buffer)
    expect(s2.byteOffset).toBe(s1.byteOffset)
    const big = slab.scratch(10_000) // grows: the old region is zeroed before it is dropped
    expect(s1.every((x) => x === 0)).toBe(true)
    big.fill(9)
    slab.close()
    expect(big.every((x) => x === 0)).toBe(true)
  })
})
