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

/** Options of {@link createMigrationHandler}. */
export interface MigrationHandlerOptions {
  /** Entries per batch (and per checkpoint); default 256. */
  readonly batchSize?: number
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

  /** Computes the target value of each entry (or why not). */
  async function rewrapAll(
    tenant: string,
    target: ResolvedProvider,
    entries: readonly DataKeyRecord[],
    signal: AbortSignal,
  ): Promise<Outcome[]> {
    const out = new Array<Outcome>(entries.length)
    const engineMoves = new Map<string, { i: number; inner: string }[]>() // by source key
    const generic: { i: number; parsed: Awaited<ReturnType<TenantKeysCore['parse']>> }[] = []
    for (const [i, e] of entries.entries()) {
      try {
        const parsed = await core.parse(tenant, e.wrapped)
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
    const signal = ctl.signal
    await ensurePromoted(core, tenant, params.to)
    const target = await core.mustResolve(tenant, params.to)
    const cp = readCheckpoint(ctl.job.checkpoint)
    const skippedNames = new Set(cp.skipped.map((s) => s.name))
    for (;;) {
      if (signal.aborted) throw new EngineError('ABORTED', 'migration: stopped')
      const batch = await core.store.listDataKeysNotUnder(tenant, params.to, cp.cursor, batchSize)
      if (batch.length === 0) {
        if (cp.passFromStart && !cp.passWork) break
        cp.cursor = undefined
        cp.passFromStart = true
        cp.passWork = false
        continue
      }
      let todo = batch.filter((r) => !skippedNames.has(r.name))
      let delay = baseMs
      while (todo.length > 0) {
        cp.passWork = true
        const outcomes = await rewrapAll(tenant, target, todo, signal)
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
        if (updates.length > 0) cp.migrated += await core.store.replaceWrapped(tenant, updates)
        todo = again
        if (todo.length > 0) {
          try {
            await sleep(delay * (0.5 + Math.random() / 2), undefined, { signal })
          } catch (err) {
            throw new EngineError('ABORTED', 'migration: stopped', { cause: err })
          }
          delay = Math.min(maxMs, delay * 2)
        }
      }
      cp.cursor = batch[batch.length - 1]?.name
      const total = await core.store.countDataKeys(tenant)
      const under = await core.store.countDataKeys(tenant, params.to)
      await ctl.checkpoint(cp, { done: Math.min(total, under + cp.skippedCount), total })
    }
    const total = await core.store.countDataKeys(tenant)
    const under = await core.store.countDataKeys(tenant, params.to)
    await ctl.checkpoint(cp, { done: Math.min(total, under + cp.skippedCount), total })
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
