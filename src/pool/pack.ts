/**
 * Moves batch results between threads in one transferred buffer, so that no copy of a DEK stays behind in
 * the worker. On the receiving side each DEK is a view of that buffer (one allocation per chunk instead of
 * one per DEK, which keeps garbage-collection pauses short on large batches); the DEKs of a chunk share it,
 * and all of them belong to the caller of the batch.
 *
 * The per-item metadata is flat too: one Int32Array (plaintext offset and length, from-version) instead of
 * an object and an array per item, and the ciphertexts as one array of strings. Structured clone then makes
 * a handful of objects per chunk on the main thread instead of two per item, and {@link unpack} makes only
 * the result objects the engine hands on: fewer short-lived objects on the event loop's heap while a large
 * batch runs.
 */
import type { BatchItemResult } from '../core/ports.js'

/** Int32 slots per item in {@link PackedResults.ints}. */
const SLOTS = 3
/** Slot values: no plaintext (offset -1), no from-version (-1). */
const NONE = -1

export interface PackedResults {
  /** DEK bytes of every successful item that has one, back to back. */
  readonly data: Uint8Array
  /** Per item: plaintext offset in `data` (or -1), plaintext length, from-version (or -1). */
  readonly ints: Int32Array
  /** Per item: ciphertext (base64) or null. Null for failed items too. */
  readonly ciphertexts: readonly (string | null)[]
  /** Failed items by index: [index, code, message]. */
  readonly errors: readonly (readonly [number, string, string])[]
}

export function pack(results: readonly BatchItemResult[]): PackedResults {
  let size = 0
  for (const r of results) if (r.ok) size += r.plaintext?.length ?? 0
  const data = new Uint8Array(new ArrayBuffer(size))
  const ints = new Int32Array(results.length * SLOTS)
  const ciphertexts: (string | null)[] = new Array<string | null>(results.length).fill(null)
  const errors: [number, string, string][] = []
  let o = 0
  results.forEach((r, i) => {
    const s = i * SLOTS
    if (!r.ok) {
      ints[s] = NONE
      ints[s + 2] = NONE
      errors.push([i, r.code, r.message])
      return
    }
    const p = r.plaintext
    if (p === undefined) ints[s] = NONE
    else {
      data.set(p, o)
      p.fill(0)
      ints[s] = o
      ints[s + 1] = p.length
      o += p.length
    }
    ints[s + 2] = r.fromVersion ?? NONE
    if (r.ciphertext !== undefined) ciphertexts[i] = r.ciphertext
  })
  return { data, ints, ciphertexts, errors }
}

export function unpack(packed: PackedResults): BatchItemResult[] {
  const { data: d, ints, ciphertexts } = packed
  const n = ciphertexts.length
  const out = new Array<BatchItemResult>(n)
  const failed = new Map<number, readonly [number, string, string]>()
  for (const e of packed.errors) failed.set(e[0], e)
  for (let i = 0; i < n; i++) {
    const e = failed.get(i)
    if (e !== undefined) {
      out[i] = { ok: false, code: e[1], message: e[2] }
      continue
    }
    const s = i * SLOTS
    const off = ints[s] as number
    const v = ints[s + 2] as number
    const c = ciphertexts[i]
    // One Buffer per DEK, straight on the shared buffer; absent fields stay absent.
    const r: { ok: true; plaintext?: Buffer; ciphertext?: string; fromVersion?: number } = { ok: true }
    if (off !== NONE) r.plaintext = Buffer.from(d.buffer, d.byteOffset + off, ints[s + 1] as number)
    if (c !== null && c !== undefined) r.ciphertext = c
    if (v !== NONE) r.fromVersion = v
    out[i] = r
  }
  return out
}
