/**
 * The kill -9 loop of the crash tests (tenant-keys-crash, key-sync-crash): a child process that prints
 * `STARTED …`, `P …` on every durable progress step and `DONE …` at the end is run again and again and
 * SIGKILLed at random points — a random delay from spawn (start-up, or the first steps), right after
 * `STARTED`, or after a random number of progress lines — then let finish.
 */
import { spawn } from 'node:child_process'

export interface ChildRun {
  readonly killedAfterProgress: number
  readonly killed: boolean
  readonly out: string
}

/**
 * Runs `node --import tsx <script> ...args`; kills it with SIGKILL when `killWhen` says so or after
 * `killAfterMs` (neither: lets it finish). Rejects when it exits otherwise than 0 or by SIGKILL.
 */
export function runChild(
  script: string,
  args: readonly string[],
  killWhen: ((line: string, progressLines: number) => boolean) | undefined,
  killAfterMs?: number,
): Promise<ChildRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  let progress = 0
  let killed = false
  const kill = (): void => {
    if (!killed) {
      killed = true
      child.kill('SIGKILL')
    }
  }
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d
    for (const line of d.split('\n')) {
      if (line.startsWith('P ')) progress++
      if (killWhen !== undefined && line !== '' && killWhen(line, progress)) kill()
    }
  })
  const timer = killAfterMs === undefined ? undefined : setTimeout(kill, killAfterMs)
  return new Promise((resolve, reject) => {
    child.on('exit', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer)
      if (signal === 'SIGKILL' || code === 0) resolve({ killedAfterProgress: progress, killed, out })
      else reject(new Error(`child exited ${String(code)} ${String(signal)}: ${err.slice(-2000)}`))
    })
  })
}

/**
 * Kills `run()` `kills` times at the three kinds of point in turn (a random delay of 300-1200 ms from spawn;
 * right after `STARTED`; after 1-`maxProgress` progress lines), stopping early if a run printed `DONE`.
 * Returns what each run was (`kill@…` or `finished`).
 */
export async function killRepeatedly(
  kills: number,
  maxProgress: number,
  run: (killWhen: (line: string, n: number) => boolean, killAfterMs: number | undefined) => Promise<ChildRun>,
): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < kills; i++) {
    const kind = i % 3
    const target = 1 + Math.floor(Math.random() * maxProgress)
    const r = await run(
      (line, progress) => {
        if (line.startsWith('DONE')) return false
        if (kind === 1) return line.startsWith('STARTED')
        if (kind === 2) return progress >= target
        return false
      },
      kind === 0 ? 300 + Math.floor(Math.random() * 900) : undefined,
    )
    out.push(r.killed ? `kill@${kind === 1 ? 'started' : `progress${r.killedAfterProgress}`}` : 'finished')
    if (r.out.includes('DONE')) break
  }
  return out
}
