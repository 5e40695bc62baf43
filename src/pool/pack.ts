/**
 * Moves batch results between threads in one transferred buffer, so that no copy of a DEK stays behind in
 * the worker. On the receiving side each DEK is a view of that buffer (one allocation per chunk instead of
 * one per DEK, which keeps garbage-collection pauses short on large batches); the DEKs of a chunk share it,
 * and all of them belong to the caller of the batch.
 */
import type { BatchItemResult } from '../core/batch.js'

export interface PackedResults {
  readonly meta: readonly (
    { ok: true; p?: [number, number]; c?: string; v?: number } | { ok: false; code: string; message: string }
  )[]
  readonly data: Uint8Array
}

export function pack(results: readonly BatchItemResult[]): PackedResults {
  let size = 0
  for (const r of results) if (r.ok) size += r.plaintext?.length ?? 0
  const data = new Uint8Array(new ArrayBuffer(size))
  let o = 0
  const put = (b: Uint8Array | undefined): [number, number] | undefined => {
    if (b === undefined) return undefined
    data.set(b, o)
    const at: [number, number] = [o, b.length]
    o += b.length
    return at
  }
  const meta = results.map((r) => {
    if (!r.ok) return { ok: false as const, code: r.code, message: r.message }
    const p = put(r.plaintext)
    r.plaintext?.fill(0)
    const c = r.ciphertext
    return {
      ok: true as const,
      ...(p === undefined ? {} : { p }),
      ...(c === undefined ? {} : { c }),
      ...(r.fromVersion === undefined ? {} : { v: r.fromVersion }),
    }
  })
  return { meta, data }
}

export function unpack(packed: PackedResults): BatchItemResult[] {
  const d = packed.data
  // One Buffer per DEK, straight on the shared buffer (no intermediate view to collect).
  const view = (at: [number, number] | undefined): Buffer | undefined =>
    at === undefined ? undefined : Buffer.from(d.buffer, d.byteOffset + at[0], at[1])
  const out = packed.meta.map((m): BatchItemResult => {
    if (!m.ok) return { ok: false, code: m.code, message: m.message }
    const plaintext = view(m.p)
    const ciphertext = m.c
    return {
      ok: true,
      ...(plaintext === undefined ? {} : { plaintext }),
      ...(ciphertext === undefined ? {} : { ciphertext }),
      ...(m.v === undefined ? {} : { fromVersion: m.v }),
    }
  })
  return out
}
