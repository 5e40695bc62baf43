/**
 * The worker → main-thread result format: every field survives a structured clone (as piscina sends it),
 * DEKs become views of one transferred buffer, and the worker's copies are wiped.
 */
import { describe, expect, it } from 'vitest'
import type { BatchItemResult } from '../../../src/core/ports.js'
import { pack, unpack } from '../../../src/pool/pack.js'

describe('pool result packing', () => {
  it('round-trips ok and failed items, with and without plaintext, ciphertext and from-version', () => {
    const dek = (b: number): Uint8Array => new Uint8Array(32).fill(b)
    const items: BatchItemResult[] = [
      { ok: true, plaintext: dek(1), fromVersion: 1 },
      { ok: false, code: 'UNWRAP_AAD_MISMATCH', message: 'item 1' },
      { ok: true, plaintext: dek(2), ciphertext: 'Y3Q=', fromVersion: 2 },
      { ok: true, ciphertext: 'Y3Qy' },
      { ok: true, plaintext: new Uint8Array(0) },
      { ok: false, code: 'CIPHERTEXT_INVALID', message: 'item 5' },
    ]
    const originals = items.map((r) => (r.ok ? r.plaintext : undefined))
    const packed = structuredClone(pack(items))
    for (const p of originals) if (p !== undefined) expect(p.every((x) => x === 0)).toBe(true)
    const out = unpack(packed)
    expect(out).toHaveLength(items.length)
    expect(out[0]).toEqual({ ok: true, plaintext: Buffer.alloc(32, 1), fromVersion: 1 })
    expect(out[1]).toEqual({ ok: false, code: 'UNWRAP_AAD_MISMATCH', message: 'item 1' })
    expect(out[2]).toEqual({ ok: true, plaintext: Buffer.alloc(32, 2), ciphertext: 'Y3Q=', fromVersion: 2 })
    expect(out[3]).toEqual({ ok: true, ciphertext: 'Y3Qy' })
    expect(Object.keys(out[3] as object)).toEqual(['ok', 'ciphertext'])
    expect(out[4]).toEqual({ ok: true, plaintext: Buffer.alloc(0) })
    expect(out[5]).toEqual({ ok: false, code: 'CIPHERTEXT_INVALID', message: 'item 5' })
    // the DEKs are views of one buffer
    const a = (out[0] as { plaintext?: Uint8Array }).plaintext as Buffer
    const b = (out[2] as { plaintext?: Uint8Array }).plaintext as Buffer
    expect(a.buffer).toBe(b.buffer)
    expect(unpack(pack([]))).toEqual([])
  })
})
