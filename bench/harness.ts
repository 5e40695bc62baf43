/**
 * Shared benchmark harness: tinybench tasks interleaved run by run (as in ../shared/baseline/lab), medians,
 * paired per-run ratios, a printed table and a JSON file under bench/results/.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { Bench } from 'tinybench'

export const SMOKE = process.env['BENCH_SMOKE'] === '1'

export interface Settings {
  runs: number
  timeMs: number
  warmupMs: number
}

export function settings(defaults: Settings): Settings {
  if (SMOKE) return { runs: 1, timeMs: 40, warmupMs: 10 }
  return {
    runs: Number(process.env['BENCH_RUNS'] ?? defaults.runs),
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

/** Runs `tasks` `s.runs` times, each run a fresh Bench per task, tasks interleaved within a run. */
export async function interleaved(tasks: readonly Task[], s: Settings): Promise<Row[]> {
  const per = tasks.map((): number[] => [])
  const lat = tasks.map(() => ({ p50: 0, p99: 0 }))
  for (let r = 0; r < s.runs; r++) {
    for (const [i, [name, fn, isAsync]] of tasks.entries()) {
      const bench = new Bench({
        time: s.timeMs,
        warmupTime: s.warmupMs,
        warmup: true,
        iterations: 16,
        throws: true,
      })
      bench.add(name, fn, { async: isAsync })
      if (isAsync) await bench.run()
      else bench.runSync()
      const res = bench.tasks[0]?.result
      if (res === undefined || res.state !== 'completed') throw new Error(`${name}: did not complete`)
      per[i]?.push(1000 / res.period)
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
}

/** Median (and range) over runs of `a`'s ops/s divided by `b`'s, measured in the same run. */
export function pairedRatio(a: Row, b: Row): Ratio {
  const xs = a.runs.map((v, i) => v / (b.runs[i] ?? Number.NaN))
  const round = (x: number): number => Number(x.toFixed(3))
  return { median: round(median(xs)), min: round(Math.min(...xs)), max: round(Math.max(...xs)) }
}

export function machine(): Record<string, unknown> {
  let softhsm = 'unknown'
  try {
    softhsm = execFileSync('softhsm2-util', ['--version'], { encoding: 'utf8' }).trim()
  } catch {
    /* not on PATH */
  }
  return { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', softhsm }
}

/** Prints the tables and writes bench/results/<name>.json (or .smoke.json). */
export function report(
  name: string,
  title: string,
  data: { settings: unknown; rows: Row[]; ratios: Record<string, unknown>; extra?: Record<string, unknown> },
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
  mkdirSync('bench/results', { recursive: true })
  const file = join('bench/results', SMOKE ? `${name}.smoke.json` : `${name}.json`)
  writeFileSync(
    file,
    `${JSON.stringify({ benchmark: name, date: new Date().toISOString(), smoke: SMOKE, machine: machine(), ...data }, null, 2)}\n`,
  )
  console.log(`wrote ${file}`)
}
