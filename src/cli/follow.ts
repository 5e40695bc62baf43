/**
 * Following a key-provider migration from the command line: a live progress bar (cli-progress: percentage,
 * entries/s, ETA) on a terminal, one plain line per second otherwise, JSON lines with `--json`. The
 * migration runs in the job system; following it changes nothing, and an interrupted follow leaves it
 * running (or, when this process was the one running it, resumable by the next start).
 */
import cliProgress from 'cli-progress'
import type { MigrationView, TenantKeyProviders } from '../core/tenant-keys/types.js'
import { EXIT, out, outJson } from './output.js'

/** One line describing a migration (plain output). */
export function migrationLine(m: MigrationView, rate?: number): string {
  const r = rate === undefined ? '' : `, ${rate.toFixed(0)} entries/s`
  const err = m.error === undefined ? '' : ` — ${m.error.code}: ${m.error.message}`
  return `migration ${m.id} ${m.jobState} (${m.state}) ${m.progress.toFixed(0)}% (${m.done}/${m.total} entries${r}) → ${m.migratingToFingerprint || m.migratingTo}${err}`
}

/** Entries per second since following began. */
class Rate {
  readonly #t0 = Date.now()
  #done0: number | undefined
  of(m: MigrationView): number {
    this.#done0 ??= m.done
    const s = (Date.now() - this.#t0) / 1000
    return s <= 0 ? 0 : Math.max(0, m.done - this.#done0) / s
  }
}

const isFinal = (m: MigrationView): boolean =>
  m.jobState === 'completed' || m.jobState === 'failed' || m.jobState === 'cancelled'

/**
 * Follows migration `first` until it is final or the user interrupts (SIGINT, SIGTERM). Returns the exit
 * code: 0 completed, 1 failed, cancelled or interrupted.
 */
export async function followMigration(
  tk: TenantKeyProviders,
  first: MigrationView,
  o: { readonly json: boolean },
): Promise<number> {
  const rate = new Rate()
  const tty = !o.json && process.stdout.isTTY
  const bar = tty
    ? new cliProgress.SingleBar(
        {
          format:
            'migration |{bar}| {percentage}% | {value}/{total} entries | {speed} entries/s | ETA {eta_formatted}',
          stream: process.stdout,
          hideCursor: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined
  let lastLine = 0
  let shown = ''
  const show = (m: MigrationView): void => {
    // One line per change: the subscription and the final read may report the same state twice.
    const key = `${m.jobState}/${m.state}/${m.done}/${m.total}`
    if (key === shown) return
    shown = key
    const speed = rate.of(m)
    if (o.json) outJson(m)
    else if (bar !== undefined) {
      bar.setTotal(Math.max(m.total, 1))
      bar.update(m.done, { speed: speed.toFixed(0) })
    } else if (Date.now() - lastLine >= 1000 || isFinal(m)) {
      lastLine = Date.now()
      out(migrationLine(m, speed))
    }
  }
  // Listen for an interrupt before the first line: a script may stop following as soon as it sees it.
  const ac = new AbortController()
  const interrupt = (): void => {
    ac.abort()
  }
  process.once('SIGINT', interrupt)
  process.once('SIGTERM', interrupt)
  const unsubscribe = tk.subscribeMigration(first.tenant, first.id, show)
  try {
    bar?.start(Math.max(first.total, 1), first.done, { speed: '0' })
    show(first)
    const final = isFinal(first)
      ? first
      : await tk.waitForMigration(first.tenant, first.id, { signal: ac.signal })
    show(final)
    bar?.stop()
    if (!o.json && bar !== undefined) out(migrationLine(final))
    return final.jobState === 'completed' ? EXIT.ok : EXIT.failed
  } catch (err) {
    bar?.stop()
    if (!ac.signal.aborted) throw err
    process.stderr.write(
      `envelope-kms: interrupted; migration ${first.id} is kept in the job system and goes on in 'envelope-kms serve' (or resumes with 'envelope-kms migration status --follow')\n`,
    )
    return EXIT.failed
  } finally {
    unsubscribe()
    process.off('SIGINT', interrupt)
    process.off('SIGTERM', interrupt)
  }
}
