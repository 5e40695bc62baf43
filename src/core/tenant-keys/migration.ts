/**
 * The key-provider migration job (type `key-provider-migration`): rewraps every catalog entry of a tenant
 * from whichever provider it is under to the target provider, in batches, checkpointing after each.
 *
 * Safety:
 * - every value is replaced by a one-layer wrap of the same DEK under the target, compare-and-set against
 *   the value read (an entry rewritten or deleted meanwhile is left alone): no entry is ever wrapped twice,
 *   and a repeated batch after a crash finds its entries already under the target (not listed again);
 * - the target is promoted before the first batch (idempotently: a crash between submit and promotion is
 *   repaired here), so new wraps go to the target while the job runs;
 * - when the scan reaches the end it sweeps again from the start, until a whole pass from the start finds
 *   nothing left to do (entries written under the old provider by a process that had not yet seen the
 *   promotion);
 * - transient failures (provider unavailable or throttled, pool saturated) are retried with backoff for as
 *   long as the job runs; permanent per-entry failures (a tampered value, a missing key) leave the entry as
 *   it is, still readable as before, and are listed in the job's result.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { EnvelopeEngine } from '../engine.js'
import type { BatchResult } from '../engine-types.js'
import { EngineError, type ErrorCode } from '../errors.js'
import { encodeWrappedDek } from '../format/wrapped-dek.js'
import type { JobControl, JobHandler } from '../jobs/job-types.js'
import type { DataKeyRecord } from '../ports-tenant-keys.js'
import type { ResolvedProvider, TenantKeysCore } from './core.js'
import { MIGRATION_JOB_TYPE, type MigrationParams, type MigrationResult } from './views.js'

/** Moves engine ciphertexts (base64 v1) of one source key to the latest version of another, item by item. */
export type ReencryptMany = (
  tenant: string,
  sourceKeyId: string,
  destinationKeyId: string,
  ciphertexts: readonly string[],
  options: { readonly signal?: AbortSignal },
) => Promise<BatchResult<{ ciphertext: string }>[]>

/** How a migration gives way to foreground calls: see {@link MigrationHandlerOptions.yieldToForeground}. */
export interface ForegroundYield {
  /** Entries per step while giving way (listed, re-encrypted and written at a time); default 16. */
  readonly sliceSize?: number
  /** How long after the last foreground call the job keeps giving way, ms; default 50. */
  readonly idleMs?: number
  /**
   * The job's share of wall-clock time while giving way, in (0, 1]; default 0.25. After each slice the job
   * pauses for `(1 - share) / share` times what the slice took (at most 100 ms), so on a 2-core machine the
   * foreground calls keep most of the CPU the pool worker would otherwise take. 1: no pause.
   */
  readonly share?: number
}

/** Options of {@link createMigrationHandler}. */
export interface MigrationHandlerOptions {
  /** Entries per batch when no foreground call is about; default 256. */
  readonly batchSize?: number
  /**
   * Least time between two durable checkpoints, ms; default 1000 (0: after every batch). The job also
   * checkpoints at the end of every pass and when it finishes. The entries' compare-and-set writes in
   * between are not flushed one by one: the next checkpoint flushes them (a crash repeats at most the
   * batches since the last checkpoint, which finds their entries already moved).
   */
  readonly checkpointIntervalMs?: number
  /**
   * Sharing the process with foreground calls (the service's data-key and DEK calls). Default on
   * (`{ sliceSize: 16, idleMs: 50 }`); `false`: always full batches. While a foreground call is in flight,
   * or ended less than `idleMs` ago, the job works `sliceSize` entries at a time and yields the event loop
   * between its steps (list, re-encrypt, write), so that no foreground call waits behind a whole batch's
   * catalog work; with no foreground call about it runs full batches at full speed.
   */
  readonly yieldToForeground?: false | ForegroundYield
  /** Concurrent unwrap/wrap calls for batches that involve an external key; default 16. */
  readonly concurrency?: number
  /** Engine-to-engine batch rewrap; default {@link engineReencryptMany} (the worker pool's batch). */
  readonly reencryptMany?: ReencryptMany
  /** Backoff of transient failures: first delay and cap in ms (default 100 and 5000). */
  readonly backoff?: { readonly baseMs?: number; readonly maxMs?: number }
}

const TRANSIENT: ReadonlySet<ErrorCode> = new Set([
  'PROVIDER_UNAVAILABLE',
  'PROVIDER_THROTTLED',
  'POOL_SATURATED',
  'STORE_ERROR',
])
/** Failures that stop the job (to be resumed or failed by the runner), not one entry. */
const FATAL: ReadonlySet<ErrorCode> = new Set(['ABORTED', 'ENGINE_CLOSED', 'INTERNAL_ERROR'])
const MAX_SKIPPED_LISTED = 1000

/** Runs `fn` over `items` with at most `n` in flight; results in input order. */
async function mapLimit<T, R>(items: readonly T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i] as T)
  }
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker))
  return out
}

/** {@link ReencryptMany} through `engine.reencryptMany`: on the worker pool, the DEKs never leave it. */
export function engineReencryptMany(engine: EnvelopeEngine): ReencryptMany {
  return (tenant, sourceKeyId, destinationKeyId, ciphertexts, options) =>
    engine.reencryptMany(tenant, destinationKeyId, ciphertexts, {
      sourceKeyId,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    })
}

/** Makes `to` the tenant's current provider unless it is already (compare-and-set, retried). */
export async function ensurePromoted(core: TenantKeysCore, tenant: string, to: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const s = await core.state(tenant)
    if (s.currentFingerprint === to) return
    if ((await core.switchCurrentTo(tenant, s.revision, to)) !== undefined) return
  }
  throw new EngineError('STORE_ERROR', 'tenant key state: could not promote the provider (contention)')
}

interface Checkpoint {
  cursor: string | undefined
  migrated: number
  skipped: { name: string; code: string }[]
  skippedCount: number
  /** The pass in progress started at the first entry. */
  passFromStart: boolean
  /** The pass in progress found (and did) work. */
  passWork: boolean
}

function readCheckpoint(json: string | undefined): Checkpoint {
  const fresh: Checkpoint = {
    cursor: undefined,
    migrated: 0,
    skipped: [],
    skippedCount: 0,
    passFromStart: true,
    passWork: false,
  }
  if (json === undefined) return fresh
  try {
    const c = JSON.parse(json) as Partial<Checkpoint>
    return {
      cursor: typeof c.cursor === 'string' ? c.cursor : undefined,
      migrated: typeof c.migrated === 'number' ? c.migrated : 0,
      skipped: Array.isArray(c.skipped) ? c.skipped : [],
      skippedCount: typeof c.skippedCount === 'number' ? c.skippedCount : 0,
      // After a restart mid-pass, the pass is treated as partial: one more pass from the start follows.
      passFromStart: false,
      passWork: true,
    }
  } catch {
    return fresh
  }
}

/** Validates a migration job's params. @throws EngineError INVALID_FIELD_ERR */
export function readParams(params: unknown): MigrationParams {
  const p = (typeof params === 'string' ? JSON.parse(params) : params) as Partial<MigrationParams> | null
  if (p === null || typeof p !== 'object' || typeof p.to !== 'string' || typeof p.from !== 'string') {
    throw new EngineError('INVALID_FIELD_ERR', 'params: {from, to} fingerprints are required')
  }
  return {
    from: p.from,
    to: p.to,
    fromArn: typeof p.fromArn === 'string' ? p.fromArn : '',
    toArn: typeof p.toArn === 'string' ? p.toArn : '',
  }
}

type Outcome =
  | { readonly kind: 'done'; readonly wrapped: string }
  | { readonly kind: 'skip'; readonly code: ErrorCode }
  | { readonly kind: 'retry'; readonly error: EngineError }

function classify(err: unknown): Outcome {
  const e = err instanceof EngineError ? err : new EngineError('INTERNAL_ERROR', 'unexpected failure')
  if (FATAL.has(e.code)) throw e
  if (TRANSIENT.has(e.code)) return { kind: 'retry', error: e }
  return { kind: 'skip', code: e.code }
}

const isEngine = (p: ResolvedProvider): boolean => p.kind !== 'aws-kms'

/** Lets the event loop run what is waiting (I/O, timers, immediates) before the job goes on. */
const yieldLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** The migration job handler over `core`. */
export function createMigrationHandler(
  core: TenantKeysCore,
  options: MigrationHandlerOptions = {},
): JobHandler {
  const batchSize = options.batchSize ?? 256
  const concurrency = options.concurrency ?? 16
  const reencryptMany = options.reencryptMany ?? engineReencryptMany(core.engine)
  const baseMs = options.backoff?.baseMs ?? 100
  const maxMs = options.backoff?.maxMs ?? 5000
  const checkpointMs = options.checkpointIntervalMs ?? 1000
  const give = options.yieldToForeground
  const sliceSize = give === false ? batchSize : Math.min(batchSize, give?.sliceSize ?? 16)
  const idleMs = give === false ? 0 : (give?.idleMs ?? 50)
  const share = give === false ? 1 : (give?.share ?? 0.25)
  if (!(typeof share === 'number' && share > 0 && share <= 1)) {
    throw new EngineError('CONFIG_INVALID', 'migration.yieldToForeground.share: must be a number in (0, 1]')
  }
  for (const [name, v, min] of [
    ['batchSize', batchSize, 1],
    ['concurrency', concurrency, 1],
    ['checkpointIntervalMs', checkpointMs, 0],
    ['yieldToForeground.sliceSize', sliceSize, 1],
    ['yieldToForeground.idleMs', idleMs, 0],
  ] as const) {
    if (!Number.isInteger(v) || v < min) {
      throw new EngineError('CONFIG_INVALID', `migration.${name}: must be an integer >= ${min}`)
    }
  }
  /** Whether to give way to foreground calls now. */
  const busy = (): boolean => give !== false && core.foregroundRecent(idleMs)

  /** Computes the target value of each entry (or why not). */
  async function rewrapAll(
    tenant: string,
    target: ResolvedProvider,
    entries: readonly DataKeyRecord[],
    signal: AbortSignal,
  ): Promise<Outcome[]> {
    const out = new Array<Outcome>(entries.length)
    const resolved = new Map<string, Promise<ResolvedProvider>>() // providers by fingerprint, per batch
    const engineMoves = new Map<string, { i: number; inner: string }[]>() // by source key
    const generic: { i: number; parsed: Awaited<ReturnType<TenantKeysCore['parse']>> }[] = []
    for (const [i, e] of entries.entries()) {
      try {
        const parsed = await core.parse(tenant, e.wrapped, resolved)
        if (isEngine(parsed.provider) && isEngine(target)) {
          const group = engineMoves.get(parsed.provider.keyId) ?? []
          group.push({ i, inner: parsed.parsed.inner })
          engineMoves.set(parsed.provider.keyId, group)
        } else {
          generic.push({ i, parsed })
        }
      } catch (err) {
        out[i] = classify(err)
      }
    }
    const prefix = target.kind === 'default' ? undefined : target.fingerprint
    for (const [sourceKeyId, moves] of engineMoves) {
      let results: BatchResult<{ ciphertext: string }>[]
      try {
        results = await reencryptMany(
          tenant,
          sourceKeyId,
          target.keyId,
          moves.map((m) => m.inner),
          { signal },
        )
      } catch (err) {
        const o = classify(err)
        results = []
        for (const m of moves) out[m.i] = o
      }
      for (const [k, r] of results.entries()) {
        const m = moves[k]
        if (m === undefined) continue
        out[m.i] = r.ok
          ? { kind: 'done', wrapped: encodeWrappedDek(prefix, r.ciphertext) }
          : classify(r.error)
      }
    }
    await mapLimit(generic, concurrency, async ({ i, parsed }) => {
      try {
        const dek = await core.unwrapParsed(tenant, parsed.parsed, parsed.provider)
        try {
          const w = await core.wrapUnder(tenant, target, dek.bytes)
          w.plaintext.zeroize()
          out[i] = { kind: 'done', wrapped: w.wrapped }
        } finally {
          dek.zeroize()
        }
      } catch (err) {
        out[i] = classify(err)
      }
    })
    return out
  }

  async function run(ctl: JobControl): Promise<MigrationResult> {
    const tenant = ctl.job.tenant
    const params = readParams(ctl.job.params)
    await ensurePromoted(core, tenant, params.to)
    const target = await core.mustResolve(tenant, params.to)
    const done = core.migrationRunning(tenant)
    try {
      return await migrate(ctl, tenant, params, target)
    } finally {
      done()
    }
  }

  /** A batch listed and on its way through {@link rewrapAll}. */
  interface Staged {
    readonly batch: readonly DataKeyRecord[]
    readonly todo: readonly DataKeyRecord[]
    readonly outcomes: Promise<Outcome[]>
  }

  /**
   * The scan, two batches deep: batch k+1 is listed and re-encrypting on the pool while batch k's values are
   * written, so the pool does not idle through the catalog work. The checkpoint's cursor only passes a
   * batch once its writes are done.
   */
  async function migrate(
    ctl: JobControl,
    tenant: string,
    params: MigrationParams,
    target: ResolvedProvider,
  ): Promise<MigrationResult> {
    const signal = ctl.signal
    const cp = readCheckpoint(ctl.job.checkpoint)
    const skippedNames = new Set(cp.skipped.map((s) => s.name))
    // Progress: counted at the start and at the end of each pass, followed by the job's own writes between.
    let total = await core.store.countDataKeys(tenant)
    let under = await core.store.countDataKeys(tenant, params.to)
    let lastDurable = performance.now()
    const checkpoint = async (recount: boolean): Promise<void> => {
      if (recount) {
        total = await core.store.countDataKeys(tenant)
        under = await core.store.countDataKeys(tenant, params.to)
      }
      await ctl.checkpoint(cp, { done: Math.min(total, under + cp.skippedCount), total })
      lastDurable = performance.now()
    }
    const stage = (batch: readonly DataKeyRecord[]): Staged => {
      const todo = batch.filter((r) => !skippedNames.has(r.name))
      if (todo.length > 0) cp.passWork = true
      const outcomes = todo.length === 0 ? Promise.resolve([]) : rewrapAll(tenant, target, todo, signal)
      outcomes.catch(() => undefined) // awaited by settle(); a failure meanwhile is not unhandled
      return { batch, todo, outcomes }
    }
    /** Writes a staged batch's new values, retrying its transient failures with backoff until none is left. */
    const settle = async (s: Staged): Promise<void> => {
      let todo = s.todo
      let outcomes = await s.outcomes
      let delay = baseMs
      while (todo.length > 0) {
        const now = core.now()
        const updates: Parameters<TenantKeysCore['store']['replaceWrapped']>[1][number][] = []
        const again: DataKeyRecord[] = []
        for (const [i, o] of outcomes.entries()) {
          const e = todo[i]
          if (e === undefined) continue
          if (o.kind === 'done') {
            updates.push({
              name: e.name,
              expectedWrapped: e.wrapped,
              wrapped: o.wrapped,
              providerFingerprint: target.fingerprint,
              updatedAt: now,
            })
          } else if (o.kind === 'skip') {
            skippedNames.add(e.name)
            cp.skippedCount++
            if (cp.skipped.length < MAX_SKIPPED_LISTED) cp.skipped.push({ name: e.name, code: o.code })
          } else {
            again.push(e)
          }
        }
        if (updates.length > 0) {
          // Not flushed on its own: the next checkpoint (a durable write after it) flushes it.
          const n = await core.store.replaceWrapped(tenant, updates, { durable: checkpointMs === 0 })
          cp.migrated += n
          under += n
        }
        todo = again
        if (todo.length === 0) break
        try {
          await sleep(delay * (0.5 + Math.random() / 2), undefined, { signal })
        } catch (err) {
          throw new EngineError('ABORTED', 'migration: stopped', { cause: err })
        }
        delay = Math.min(maxMs, delay * 2)
        outcomes = await rewrapAll(tenant, target, todo, signal)
      }
    }
    let listAfter = cp.cursor
    let inflight: Staged | undefined
    /** Writes the batch in flight and moves the checkpoint's cursor past it. */
    const land = async (): Promise<void> => {
      if (inflight === undefined) return
      await settle(inflight)
      cp.cursor = inflight.batch[inflight.batch.length - 1]?.name
      inflight = undefined
      if (performance.now() - lastDurable >= checkpointMs) await checkpoint(false)
    }
    for (;;) {
      if (signal.aborted) throw new EngineError('ABORTED', 'migration: stopped')
      const began = performance.now()
      const giving = busy()
      const batch = await core.store.listDataKeysNotUnder(
        tenant,
        params.to,
        listAfter,
        giving ? sliceSize : batchSize,
      )
      if (giving) {
        // One slice at a time while giving way: at most one pool worker busy with the job.
        await yieldLoop()
        await land()
      }
      const next = batch.length === 0 ? undefined : stage(batch)
      if (next !== undefined) listAfter = next.batch[next.batch.length - 1]?.name
      if (inflight !== undefined) await land()
      inflight = next
      if (next === undefined) {
        // The end of a pass: everything listed in it is written.
        if (cp.passFromStart && !cp.passWork) break
        cp.cursor = undefined
        listAfter = undefined
        cp.passFromStart = true
        cp.passWork = false
        await checkpoint(true)
      } else if (giving) {
        await yieldLoop()
        // The duty cycle while giving way: pause in proportion to what the slice took.
        const pause = share >= 1 ? 0 : Math.min(100, ((performance.now() - began) * (1 - share)) / share)
        if (pause >= 1) {
          try {
            await sleep(pause, undefined, { signal })
          } catch (err) {
            throw new EngineError('ABORTED', 'migration: stopped', { cause: err })
          }
        }
      }
    }
    await checkpoint(true)
    return { migrated: cp.migrated, skipped: cp.skipped, skippedCount: cp.skippedCount }
  }

  return {
    type: MIGRATION_JOB_TYPE,
    validate: (_tenant, params) => {
      readParams(params)
    },
    run,
  }
}
