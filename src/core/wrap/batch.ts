/**
 * wrapMany / unwrapMany / rewrapMany / reencryptMany: the key (or the source and destination keys) is
 * resolved and checked once, the AES-GCM usage of the key wrapped under is metered per chunk, and the chunks
 * run on the worker pool (or inline, yielding between chunks) through execute-batch.ts, which wraps with the
 * same DekWrapper as single calls. Results come in input order; an item fails alone.
 */
import { assertAllowed, checkAborted, type EngineContext } from '../context.js'
import { EngineError, ERROR_CODES, invalidField, toEngineError, type ErrorCode } from '../errors.js'
import { MAX_DEK_BYTES, MIN_DEK_BYTES, parseCiphertext, validateAad } from '../format/ciphertext.js'
import type { BatchItemResult, BatchRunner, BatchTask, BatchVersion, KeyVersionRecord } from '../ports.js'
import { optionsObject } from '../validate.js'
import { currentVersion, type CachedKey, type VersionEntry } from '../keys/directory.js'
import { versionInfo } from '../keys/views.js'
import type {
  BatchOptions,
  BatchResult,
  KeyVersionInfo,
  ReencryptManyItem,
  ReencryptManyOptions,
} from '../engine-types.js'
import { executeBatch } from './execute-batch.js'

/** What {@link wrapMany} returns per item. */
export type WrapManyItem = { ciphertext: string; keyVersion: KeyVersionInfo; plaintext: Buffer | undefined }
/** What {@link unwrapMany} returns per item. */
export type UnwrapManyItem = {
  plaintext: Buffer
  keyVersion: KeyVersionInfo
  rewrapped: { ciphertext: string; keyVersion: KeyVersionInfo } | undefined
}
/** What {@link rewrapMany} returns per item. */
export type RewrapManyItem = {
  ciphertext: string
  keyVersion: KeyVersionInfo
  rewrappedKeyVersion: KeyVersionInfo
}

/** Wraps many DEKs (or generates `items` of them) under the key's latest version. */
export async function wrapMany(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  items: number | readonly Uint8Array[],
  options: BatchOptions,
): Promise<BatchResult<WrapManyItem>[]> {
  let inputs: readonly unknown[]
  if (typeof items === 'number') {
    if (!Number.isInteger(items) || items < 0 || items > 10_000_000)
      throw invalidField('items', 'must be a count 0-10,000,000')
    const generate = new Uint8Array(0)
    inputs = Array.from({ length: items }, () => generate)
  } else if (Array.isArray(items)) {
    inputs = items
  } else {
    throw invalidField('items', 'must be a count or an array of DEKs')
  }
  const check = (d: unknown): Uint8Array | EngineError =>
    (d instanceof Uint8Array && d.length >= MIN_DEK_BYTES && d.length <= MAX_DEK_BYTES) ||
    (typeof items === 'number' && d instanceof Uint8Array)
      ? d
      : invalidField('plaintext', `must be ${MIN_DEK_BYTES}-${MAX_DEK_BYTES} bytes`)
  return runBatch(ctx, 'wrap', instance, idOrAlias, inputs, check, options, (r, k, _dest, info) => ({
    ok: true as const,
    ciphertext: r.ciphertext ?? '',
    keyVersion: info(currentVersion(k)),
    plaintext: r.plaintext === undefined ? undefined : asBuffer(r.plaintext),
  }))
}

/** Unwraps many ciphertexts of one key; those under older versions also come back rewrapped. */
export async function unwrapMany(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  ciphertexts: readonly (string | Uint8Array)[],
  options: BatchOptions,
): Promise<BatchResult<UnwrapManyItem>[]> {
  return runBatch(
    ctx,
    'unwrap',
    instance,
    idOrAlias,
    arrayOf(ciphertexts),
    ciphertextItem,
    options,
    (r, k, _dest, info) => {
      const latest = currentVersion(k)
      return {
        ok: true as const,
        plaintext: asBuffer(r.plaintext),
        keyVersion: info(k.versions.get(r.fromVersion ?? 0) ?? latest),
        rewrapped:
          r.ciphertext === undefined ? undefined : { ciphertext: r.ciphertext, keyVersion: info(latest) },
      }
    },
  )
}

/** Re-wraps many ciphertexts of one key under its latest version. */
export async function rewrapMany(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  ciphertexts: readonly (string | Uint8Array)[],
  options: BatchOptions,
): Promise<BatchResult<RewrapManyItem>[]> {
  return runBatch(
    ctx,
    'rewrap',
    instance,
    idOrAlias,
    arrayOf(ciphertexts),
    ciphertextItem,
    options,
    (r, k, _dest, info) => {
      const latest = currentVersion(k)
      return {
        ok: true as const,
        ciphertext: r.ciphertext ?? '',
        keyVersion: info(k.versions.get(r.fromVersion ?? 0) ?? latest),
        rewrappedKeyVersion: info(latest),
      }
    },
  )
}

/**
 * Re-encrypts many ciphertexts of one source key under the latest version of `destIdOrAlias`: each DEK is
 * unwrapped under the version its ciphertext names and wrapped again where the batch runs (a worker, or
 * inline), never returned. The source is `options.sourceKeyId`, or the key named by the first readable
 * ciphertext; items of any other key fail alone with CIPHERTEXT_INVALID. The source needs 'rewrap', the
 * destination 'wrap' (the key-state table, as the single reencrypt); `options.keyRingId` scopes both.
 */
export async function reencryptMany(
  ctx: EngineContext,
  instance: string,
  destIdOrAlias: string,
  ciphertexts: readonly (string | Uint8Array)[],
  options: ReencryptManyOptions,
): Promise<BatchResult<ReencryptManyItem>[]> {
  const o = optionsObject(options)
  const inputs = arrayOf(ciphertexts)
  const { sourceKeyId } = o
  if (sourceKeyId !== undefined && typeof sourceKeyId !== 'string')
    throw invalidField('sourceKeyId', 'must be a key id or alias')
  const settings = batchSettings(o)
  const sourceName = sourceKeyId ?? firstKeyId(inputs)
  const now = ctx.clock.now()
  // Source first, then destination, as the single reencrypt checks them.
  const named =
    sourceName === undefined ? undefined : await ctx.keys.resolve(instance, sourceName, true, o.keyRingId)
  if (named !== undefined) assertAllowed(ctx, 'rewrap', named.record, now)
  const dest = await ctx.keys.resolve(instance, destIdOrAlias, true, o.keyRingId)
  assertAllowed(ctx, 'wrap', dest.record, now)
  // With no readable ciphertext and no sourceKeyId there is no source: every item fails alone where the
  // batch runs (it parses each item before anything else), the destination standing in for the source.
  const source = named ?? dest
  const sourceKeyIdOut = source.record.id
  return runResolved(
    ctx,
    'reencrypt',
    instance,
    source,
    dest,
    inputs,
    ciphertextItem,
    o,
    settings,
    (r, s, d, info) => ({
      ok: true as const,
      ciphertext: r.ciphertext ?? '',
      sourceKeyId: sourceKeyIdOut,
      sourceKeyVersion: info(s.versions.get(r.fromVersion ?? 0) ?? currentVersion(s)),
      keyVersion: info(currentVersion(d)),
    }),
  )
}

/** The key id named by the first ciphertext that parses; undefined when none does. */
function firstKeyId(inputs: readonly unknown[]): string | undefined {
  for (const c of inputs) {
    if (!(c instanceof Uint8Array) && typeof c !== 'string') continue
    try {
      return parseCiphertext(c).keyId
    } catch {
      /* unreadable: it fails alone in the batch; look at the next one */
    }
  }
  return undefined
}

/** The validated options every batch shares. */
interface BatchSettings {
  readonly aad: readonly string[]
  readonly chunkSize: number
}

function batchSettings(options: BatchOptions): BatchSettings {
  const aad = validateAad(options.aad)
  const chunkSize = options.chunkSize ?? 256
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > 100_000)
    throw invalidField('chunkSize', 'must be an integer 1-100,000')
  return { aad, chunkSize }
}

/** How a batch maps a worker's successful item: the source key (read under), the destination (wrapped under). */
type MapItem<T> = (
  r: Extract<BatchItemResult, { ok: true }>,
  source: CachedKey,
  dest: CachedKey,
  info: (v: KeyVersionRecord) => KeyVersionInfo,
) => T

/** A batch over one key, resolved and checked once for `op`. */
async function runBatch<T>(
  ctx: EngineContext,
  op: Exclude<BatchTask['op'], 'reencrypt'>,
  instance: string,
  idOrAlias: string,
  inputs: readonly unknown[],
  check: (input: unknown) => Uint8Array | string | EngineError,
  options: BatchOptions,
  map: MapItem<T>,
): Promise<(T | { ok: false; error: EngineError })[]> {
  options = optionsObject(options)
  const settings = batchSettings(options)
  const k = await ctx.keys.resolve(instance, idOrAlias, true, options.keyRingId)
  assertAllowed(ctx, op, k.record)
  return runResolved(ctx, op, instance, k, k, inputs, check, options, settings, map)
}

/**
 * Splits a batch into chunks, meters their AES-GCM usage, runs them on the pool (or inline), and maps each
 * chunk's results as it completes: no step touches more than one chunk at a time, so the event loop stays
 * responsive however large the batch. Ciphertexts are read under `source`'s versions and new ones made
 * under `dest`'s latest (the same key but for reencrypt).
 */
async function runResolved<T>(
  ctx: EngineContext,
  op: BatchTask['op'],
  instance: string,
  source: CachedKey,
  dest: CachedKey,
  inputs: readonly unknown[],
  check: (input: unknown) => Uint8Array | string | EngineError,
  options: BatchOptions,
  { aad, chunkSize }: BatchSettings,
  map: MapItem<T>,
): Promise<(T | { ok: false; error: EngineError })[]> {
  const latest = currentVersion(dest)
  const toBatch = (v: VersionEntry): BatchVersion => ({
    number: v.version,
    ref: v.providerRef,
    header: v.header,
  })
  const versions = [...source.versions.values()].map(toBatch)
  const latestBatch = toBatch(latest)
  // One frozen KeyVersionInfo per version for the whole batch: a result object fewer (and a Date fewer) per
  // item for the garbage collector to copy, which keeps its pauses short on large batches.
  // Keyed by the version entry itself: a reencrypt batch has two keys, each with its own version 1.
  const infos = new Map<KeyVersionRecord, KeyVersionInfo>()
  const info = (v: KeyVersionRecord): KeyVersionInfo => {
    let i = infos.get(v)
    if (i === undefined) {
      i = Object.freeze(versionInfo(v))
      infos.set(v, i)
    }
    return i
  }
  const results = new Array<T | { ok: false; error: EngineError }>(inputs.length)
  const metered = ctx.wrapper.metered
  if (op !== 'unwrap' && metered) await ctx.usage.reserveAhead(instance, latest, inputs.length)
  const provider = ctx.provider
  const runner: BatchRunner = ctx.pool ?? {
    threads: 1,
    run: async (task) => {
      await new Promise((r) => setImmediate(r)) // yield to the event loop between inline chunks
      return executeBatch(provider, task)
    },
    close: async () => undefined,
  }
  let done = 0
  const total = inputs.length
  const runChunk = async (start: number): Promise<void> => {
    const end = Math.min(start + chunkSize, total)
    const items: (Uint8Array | string)[] = []
    const at: number[] = []
    for (let i = start; i < end; i++) {
      const x = check(inputs[i])
      if (x instanceof EngineError) results[i] = { ok: false, error: x }
      else {
        items.push(x)
        at.push(i)
      }
    }
    try {
      if (items.length > 0) {
        checkAborted(options.signal)
        if (metered) await ctx.usage.take(instance, latest, encryptionsNeeded(op, items, latest.version))
        const task: BatchTask = { op, instance, aad, versions, latest: latestBatch, items }
        let out: BatchItemResult[]
        try {
          out = await runner.run(task, options.signal)
        } catch (err) {
          if (!(err instanceof EngineError) || err.code !== 'POOL_WORKER_FAILED') throw err
          out = await runner.run(task, options.signal) // once more: the pool replaced the worker
        }
        out.forEach((r, j) => {
          results[at[j] as number] = r.ok ? map(r, source, dest, info) : { ok: false, error: batchError(r) }
        })
      }
    } catch (err) {
      const e = toEngineError(err, `${op}Many`)
      if (e.code === 'ABORTED' || e.code === 'ENGINE_CLOSED') throw e
      for (const i of at) results[i] = { ok: false, error: e }
    }
    done += end - start
    try {
      options.onProgress?.(done, total)
    } catch {
      /* a failing progress callback does not fail the batch */
    }
  }
  const starts: number[] = []
  for (let i = 0; i < total; i += chunkSize) starts.push(i)
  const lanes = Math.max(1, runner.threads * 2)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(lanes, starts.length) }, async () => {
      while (next < starts.length) await runChunk(starts[next++] as number)
    }),
  )
  return results
}

function arrayOf<T>(items: readonly T[]): readonly T[] {
  const value: unknown = items
  if (!Array.isArray(value)) throw invalidField('ciphertexts', 'must be an array')
  return items
}

/** A batch ciphertext as the task takes it: base64 strings are decoded (strictly) where the batch runs. */
function ciphertextItem(c: unknown): Uint8Array | string | EngineError {
  if (c instanceof Uint8Array || typeof c === 'string') return c
  return new EngineError('CIPHERTEXT_INVALID', 'ciphertext: must be a base64 string or bytes', {
    target: { type: 'field', name: 'ciphertext' },
  })
}

/** The key version a ciphertext names (bytes 18..21), read without parsing the rest; NaN if unreadable. */
function versionNamed(item: Uint8Array | string): number {
  if (typeof item === 'string') {
    const head = Buffer.from(item.slice(24, 32), 'base64') // base64 chars 24..31 are bytes 18..23
    return head.length >= 4 ? head.readUInt32BE(0) : Number.NaN
  }
  return item.byteLength >= 22
    ? Buffer.from(item.buffer, item.byteOffset, item.byteLength).readUInt32BE(18)
    : Number.NaN
}

/** AES-GCM encryptions a batch chunk will make: every item, except unwraps already at the latest version. */
function encryptionsNeeded(
  op: BatchTask['op'],
  items: readonly (Uint8Array | string)[],
  latest: number,
): number {
  if (op !== 'unwrap') return items.length
  let n = 0
  for (const item of items) if (versionNamed(item) !== latest) n++
  return n
}

function batchError(r: { code: string; message: string }): EngineError {
  const code = (ERROR_CODES as readonly string[]).includes(r.code) ? (r.code as ErrorCode) : 'INTERNAL_ERROR'
  return new EngineError(code, r.message)
}

/** A DEK from a batch result as a Buffer (it usually is one already: no second view). */
function asBuffer(p: Uint8Array | undefined): Buffer {
  if (p === undefined) return Buffer.alloc(0)
  return Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength)
}
