/**
 * Following a synchronization job from the command line: a live progress bar (cli-progress: vaults done of
 * all, keys discovered, ETA) on a terminal, one plain line per second otherwise, JSON lines with `--json`.
 * The job runs in the job system; following changes nothing, and an interrupted follow leaves it running
 * (in `envelope-kms serve`, or resumed by the next process that opens the services).
 */
import cliProgress from 'cli-progress'
import type { KeySync, SyncJobView } from '../core/sync/types.js'
import { EXIT, out, outJson } from './output.js'

/** One line describing a synchronization job (plain output). */
export function syncLine(j: SyncJobView): string {
  const c = j.counts
  const vaults = j.vaults.map((v) => v.name).join(',')
  const abort = j.abort && j.overallStatus === 'in_progress' ? ' (cancel requested)' : ''
  const err = j.error === undefined ? '' : ` — ${j.error.code}: ${j.error.message}`
  return `sync ${j.id} ${j.cloud} ${j.overallStatus}${abort} ${j.progress.toFixed(0)}% (${j.done}/${j.total} vaults; ${c.discovered} keys discovered: ${c.inserted} new, ${c.updated} updated, ${c.unchanged} unchanged, ${c.markedDeleted} marked deleted) [${vaults}]${err}`
}

const isFinal = (j: SyncJobView): boolean => j.overallStatus !== 'in_progress'

/**
 * Follows job `first` until it is final or the user interrupts (SIGINT, SIGTERM). Returns the exit code: 0
 * completed, 1 failed, cancelled or interrupted.
 */
export async function followSync(
  sync: KeySync,
  first: SyncJobView,
  o: { readonly json: boolean },
): Promise<number> {
  const tty = !o.json && process.stdout.isTTY
  const bar = tty
    ? new cliProgress.SingleBar(
        {
          format:
            'sync |{bar}| {percentage}% | {value}/{total} vaults | {discovered} keys discovered | ETA {eta_formatted}',
          stream: process.stdout,
          hideCursor: true,
          etaBuffer: 20,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined
  let lastLine = 0
  let shown = ''
  const show = (j: SyncJobView): void => {
    // One line per change: the subscription and the final read may report the same state twice.
    const key = `${j.overallStatus}/${j.state}/${j.abort}/${j.done}/${j.total}/${j.counts.discovered}`
    if (key === shown) return
    shown = key
    if (o.json) outJson(j)
    else if (bar !== undefined) {
      bar.setTotal(Math.max(j.total, 1))
      bar.update(j.done, { discovered: j.counts.discovered })
    } else if (Date.now() - lastLine >= 1000 || isFinal(j)) {
      lastLine = Date.now()
      out(syncLine(j))
    }
  }
  const ac = new AbortController()
  const interrupt = (): void => {
    ac.abort()
  }
  process.once('SIGINT', interrupt)
  process.once('SIGTERM', interrupt)
  const unsubscribe = sync.subscribeSync(first.tenant, first.id, show)
  try {
    bar?.start(Math.max(first.total, 1), first.done, { discovered: first.counts.discovered })
    show(first)
    const final = isFinal(first)
      ? first
      : await sync.waitForSync(first.tenant, first.id, { signal: ac.signal })
    show(final)
    bar?.stop()
    if (!o.json && bar !== undefined) out(syncLine(final))
    return final.overallStatus === 'completed' ? EXIT.ok : EXIT.failed
  } catch (err) {
    bar?.stop()
    if (!ac.signal.aborted) throw err
    process.stderr.write(
      `envelope-kms: interrupted; synchronization ${first.id} is kept in the job system and goes on in 'envelope-kms serve' (or resumes with 'envelope-kms sync status ${first.id} --follow')\n`,
    )
    return EXIT.failed
  } finally {
    unsubscribe()
    process.off('SIGINT', interrupt)
    process.off('SIGTERM', interrupt)
  }
}
