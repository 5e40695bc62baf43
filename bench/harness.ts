/**
 * Shared benchmark harness: tinybench tasks interleaved run by run (as in ../shared/baseline/lab), medians,
 * paired per-run ratios, a printed table and a JSON file under bench/results/.
 *
 * A/B mode (BENCH_AB=<another build's dist directory>): `loadBuild` imports a build through its public
 * entry points only (the package.json subpath exports, which keep their paths across refactors), so that a
 * bench can run this build's engine and another build's in one process, on one token, in the same runs.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Bench } from 'tinybench'
import type * as CoreApi from '../dist/index.js'
import type * as Pkcs11Api from '../dist/providers/pkcs11/index.js'
import type * as SqliteApi from '../dist/store/sqlite/index.js'
import type * as CacheApi from '../dist/cache/index.js'

export const SMOKE = process.env['BENCH_SMOKE'] === '1'

/** BENCH_AB: the dist directory of the build to compare against ("base"); undefined outside A/B mode. */
export const AB_DIST: string | undefined =
  process.env['BENCH_AB'] === undefined || process.env['BENCH_AB'] === ''
    ? undefined
    : process.env['BENCH_AB']

/** This checkout's dist directory (the "current" build). */
export const CURRENT_DIST = fileURLToPath(new URL('../dist/', import.meta.url))

/** One build's public API, typed as this checkout's (the public surface both builds should share). */
export interface Build {
  label: 'current' | 'base'
  dist: string
  core: typeof CoreApi
  pkcs11: typeof Pkcs11Api
  sqlite: typeof SqliteApi
  cache: typeof CacheApi
}

/**
 * Imports a build from its dist directory: index.js, providers/pkcs11/index.js, store/sqlite/index.js and
 * cache/index.js, nothing else. The current build resolves to the same module instances as the benches' own
 * `../dist/...` imports; another directory gets its own instances (its own engine, provider registry and
 * caches), while pkcs11js and better-sqlite3 resolve to the one native binding in node_modules.
 */
export async function loadBuild(label: Build['label'], dist: string): Promise<Build> {
  const dir = resolve(dist)
  if (!existsSync(join(dir, 'index.js'))) {
    throw new Error(`${label} build: ${join(dir, 'index.js')} does not exist (run \`npm run build\` there)`)
  }
  if (label !== 'current' && realpathSync(dir) === realpathSync(CURRENT_DIST)) {
    throw new Error(`BENCH_AB=${dist} is this checkout's own dist: point it at another build's dist`)
  }
  const url = (rel: string): string => pathToFileURL(join(dir, rel)).href
  return {
    label,
    dist: realpathSync(dir),
    core: (await import(url('index.js'))) as typeof CoreApi,
    pkcs11: (await import(url('providers/pkcs11/index.js'))) as typeof Pkcs11Api,
    sqlite: (await import(url('store/sqlite/index.js'))) as typeof SqliteApi,
    cache: (await import(url('cache/index.js'))) as typeof CacheApi,
  }
}

/** The commit a dist directory's checkout is at (HEAD of the git worktree holding it), or 'unknown'. */
export function commitOf(dist: string): string {
  try {
    return execFileSync('git', ['-C', join(dist, '..'), 'rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim()
  } catch {
    return 'unknown'
  }
}

/** The current build, and the BENCH_AB build when set. */
export async function loadBuilds(): Promise<Build[]> {
  const current = await loadBuild('current', CURRENT_DIST)
  return AB_DIST === undefined ? [current] : [current, await loadBuild('base', AB_DIST)]
}

export interface Settings {
  runs: number
  timeMs: number
  warmupMs: number
}

/**
 * The run settings: `defaults`, overridden by BENCH_RUNS, BENCH_TIME_MS, BENCH_WARMUP_MS (or the smoke
 * settings). `evenRuns` (A/B mode, with `interleaved`'s `alternate`) rounds the run count up to an even
 * number so that as many runs go forward as in reverse.
 */
export function settings(defaults: Settings, opts: { evenRuns?: boolean } = {}): Settings {
  if (SMOKE) return { runs: 1, timeMs: 40, warmupMs: 10 }
  const runs = Number(process.env['BENCH_RUNS'] ?? defaults.runs)
  return {
    runs: opts.evenRuns === true && runs % 2 === 1 ? runs + 1 : runs,
    timeMs: Number(process.env['BENCH_TIME_MS'] ?? defaults.timeMs),
    warmupMs: Number(process.env['BENCH_WARMUP_MS'] ?? defaults.warmupMs),
  }
}

export type Task = [name: string, fn: () => unknown, async: boolean]

export interface Row {
  name: string
  opsPerSec: number
  runs: number[]
  p50_us: number
  p99_us: number
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  if (n === 0) return Number.NaN
  return n % 2 === 1 ? (s[(n - 1) / 2] ?? 0) : ((s[n / 2 - 1] ?? 0) + (s[n / 2] ?? 0)) / 2
}

/**
 * Runs `tasks` `s.runs` times, each run a fresh Bench per task, tasks interleaved within a run. With
 * `alternate`, odd runs go through the tasks in reverse order, so that no task always follows the same
 * neighbour (used in A/B mode, where a build's task would otherwise always run right after the other's).
 * Under `node --expose-gc` a full GC runs before each task's turn, so that no task pays for the garbage of
 * the one before it (recommended in A/B mode; without the flag nothing changes). With `itemsPerCall` (batch
 * benches: one call handles that many items) ops/s count items, not calls; latencies stay per call.
 */
export async function interleaved(
  tasks: readonly Task[],
  s: Settings,
  opts: { alternate?: boolean; itemsPerCall?: number } = {},
): Promise<Row[]> {
  const perCall = opts.itemsPerCall ?? 1
  const per = tasks.map((): number[] => [])
  const lat = tasks.map(() => ({ p50: 0, p99: 0 }))
  const forward = [...tasks.entries()]
  const backward = [...forward].reverse()
  for (let r = 0; r < s.runs; r++) {
    for (const [i, [name, fn, isAsync]] of opts.alternate === true && r % 2 === 1 ? backward : forward) {
      const bench = new Bench({
        time: s.timeMs,
        warmupTime: s.warmupMs,
        warmup: true,
        iterations: 16,
        throws: true,
      })
      bench.add(name, fn, { async: isAsync })
      globalThis.gc?.()
      if (isAsync) await bench.run()
      else bench.runSync()
      const res = bench.tasks[0]?.result
      if (res === undefined || res.state !== 'completed') throw new Error(`${name}: did not complete`)
      per[i]?.push((1000 / res.period) * perCall)
      lat[i] = { p50: res.latency.p50 * 1000, p99: res.latency.p99 * 1000 }
    }
  }
  return tasks.map(([name], i) => ({
    name,
    opsPerSec: Math.round(median(per[i] ?? [])),
    runs: (per[i] ?? []).map((x) => Math.round(x)),
    p50_us: Number(lat[i]?.p50.toFixed(1)),
    p99_us: Number(lat[i]?.p99.toFixed(1)),
  }))
}

export interface Ratio {
  median: number
  min: number
  max: number
  /** First and third quartiles (A/B figures): on a busy host min and max catch single stalled runs. */
  q1?: number
  q3?: number
}

/** The `p`-quantile (0..1) by linear interpolation between order statistics. */
export function quantile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return Number.NaN
  const h = (s.length - 1) * p
  const lo = Math.floor(h)
  return (s[lo] ?? 0) + (h - lo) * ((s[Math.ceil(h)] ?? 0) - (s[lo] ?? 0))
}

/** Median and range of per-run ratios (and the quartiles with `quartiles`). */
export function summarize(xs: readonly number[], opts: { quartiles?: boolean } = {}): Ratio {
  const round = (x: number): number => Number(x.toFixed(3))
  const r: Ratio = { median: round(median(xs)), min: round(Math.min(...xs)), max: round(Math.max(...xs)) }
  if (opts.quartiles === true) {
    r.q1 = round(quantile(xs, 0.25))
    r.q3 = round(quantile(xs, 0.75))
  }
  return r
}

/** Median (and range) over runs of `a`'s ops/s divided by `b`'s, measured in the same run. */
export function pairedRatio(a: Row, b: Row, opts: { quartiles?: boolean } = {}): Ratio {
  return summarize(
    a.runs.map((v, i) => v / (b.runs[i] ?? Number.NaN)),
    opts,
  )
}

/** One task of an A/B run: current/base, and each build against the bench's reference (`vs`), if any. */
export interface AbTask {
  task: string
  'current/base': Ratio
  /** What `current` and `base` are ratios of, e.g. "engine/raw". */
  vs?: string
  current?: Ratio
  base?: Ratio
}

/** The A/B section of a report: which builds, and per-task figures. */
export interface AbReport {
  currentDist: string
  baseDist: string
  /** HEAD of the checkout each dist sits in (the build itself may have been made from a dirty tree). */
  currentCommit: string
  baseCommit: string
  tasks: AbTask[]
  /** The bench's usual ratio set computed on the base build's rows (the `ratios` are the current build's). */
  ratiosBase: Record<string, unknown>
}

export function machine(): Record<string, unknown> {
  let softhsm = 'unknown'
  try {
    softhsm = execFileSync('softhsm2-util', ['--version'], { encoding: 'utf8' }).trim()
  } catch {
    /* not on PATH */
  }
  return {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    softhsm,
    // 1/5/15-minute load averages when the report is written: on a shared host, how much else was running.
    loadavg: loadavg().map((x) => Number(x.toFixed(2))),
  }
}

/** Prints the tables and writes bench/results/<name>.json (or .smoke.json; <name>.ab.json in A/B mode). */
export function report(
  name: string,
  title: string,
  data: {
    settings: unknown
    rows: Row[]
    ratios: Record<string, unknown>
    extra?: Record<string, unknown>
    ab?: AbReport
  },
): void {
  console.log(`\n${title}`)
  if (data.rows.length > 0) {
    console.table(
      data.rows.map((r) => ({
        task: r.name,
        'ops/s (median)': r.opsPerSec,
        'p50 µs': r.p50_us,
        'p99 µs': r.p99_us,
      })),
    )
  }
  console.table(
    Object.entries(data.ratios).map(([k, v]) =>
      typeof v === 'object' && v !== null
        ? { ratio: k, ...(v as Record<string, unknown>) }
        : { ratio: k, value: v },
    ),
  )
  if (data.ab !== undefined) {
    const { currentDist, currentCommit, baseDist, baseCommit } = data.ab
    console.log(`\nA/B: current = ${currentDist} (${currentCommit}), base = ${baseDist} (${baseCommit})`)
    console.table(
      data.ab.tasks.map((t) => ({
        task: t.task,
        'current/base': t['current/base'].median,
        q1: t['current/base'].q1 ?? '',
        q3: t['current/base'].q3 ?? '',
        min: t['current/base'].min,
        max: t['current/base'].max,
        vs: t.vs ?? '',
        'current (median)': t.current?.median ?? '',
        'base (median)': t.base?.median ?? '',
      })),
    )
  }
  mkdirSync('bench/results', { recursive: true })
  const stem = data.ab === undefined ? name : `${name}.ab`
  const file = join('bench/results', SMOKE ? `${stem}.smoke.json` : `${stem}.json`)
  writeFileSync(
    file,
    `${JSON.stringify({ benchmark: name, date: new Date().toISOString(), smoke: SMOKE, machine: machine(), ...data }, null, 2)}\n`,
  )
  console.log(`wrote ${file}`)
}
