/**
 * Runs {@link EnvelopeEngine.rotateDueKeys} and {@link EnvelopeEngine.expireImportTokens} (and, when asked,
 * {@link EnvelopeEngine.runScheduledDeletions}, the automatic purge {@link EnvelopeEngine.runAutoPurge} and
 * the vault-key maintenance of vault-key-maintenance.ts)
 * at start, catching up on work missed while the process was down, and then every `intervalMs`. One pass at
 * a time; a failing pass is reported, never thrown.
 */
import type { AutoPurgeResult, EnvelopeEngine } from '../engine.js'
import { toEngineError, type EngineError } from '../errors.js'
import type { VaultKeyMaintenance, VaultKeyMaintenanceResult } from './vault-key-maintenance.js'

export interface RotationSchedulerOptions {
  /** Time between passes (default one hour). */
  readonly intervalMs?: number
  /** Called after each pass with what it did. */
  readonly onPass?: (r: Awaited<ReturnType<EnvelopeEngine['rotateDueKeys']>>) => void
  readonly onError?: (err: EngineError) => void
  /** Also destroy keys whose scheduled deletion date passed (AWS KMS `ScheduleKeyDeletion`). */
  readonly scheduledDeletions?: boolean
  readonly onDeletions?: (r: Awaited<ReturnType<EnvelopeEngine['runScheduledDeletions']>>) => void
  /**
   * Also purge keys deleted more than the lifecycle's `purgeScheduledAfterMs` (90 days) ago (Key Protect's
   * automatic purge, at their `purgeScheduledOn` date).
   */
  readonly autoPurge?: boolean
  /** Called after each automatic purge with what it purged and what failed (to log and audit). */
  readonly onAutoPurge?: (r: AutoPurgeResult) => void
  /**
   * Also maintain the vault keys of the Azure-Key-Vault-compatible API: purge soft-deleted ones at their
   * scheduled purge date, sweep orphaned device objects (vault-key-maintenance.ts).
   */
  readonly vaultKeys?: VaultKeyMaintenance
  readonly onVaultKeys?: (r: VaultKeyMaintenanceResult) => void
}

export interface RotationScheduler {
  /** Resolves when the current pass (if any) is done; no pass starts afterwards. */
  stop(): Promise<void>
  /** Runs one pass now (waits for a running one first). */
  runNow(): Promise<void>
}

export function startRotationScheduler(
  engine: EnvelopeEngine,
  options: RotationSchedulerOptions = {},
): RotationScheduler {
  const intervalMs = options.intervalMs ?? 3_600_000
  let stopped = false
  let running: Promise<void> = Promise.resolve()
  const pass = (): Promise<void> => {
    running = running.then(async () => {
      if (stopped) return
      try {
        options.onPass?.(await engine.rotateDueKeys())
      } catch (err) {
        options.onError?.(toEngineError(err, 'rotation scheduler'))
      }
      try {
        await engine.expireImportTokens() // expired import tokens' key pairs leave the HSM
      } catch (err) {
        options.onError?.(toEngineError(err, 'import token expiry'))
      }
      if (options.scheduledDeletions === true) {
        try {
          options.onDeletions?.(await engine.runScheduledDeletions())
        } catch (err) {
          options.onError?.(toEngineError(err, 'scheduled deletions'))
        }
      }
      if (options.autoPurge === true) {
        try {
          options.onAutoPurge?.(await engine.runAutoPurge())
        } catch (err) {
          options.onError?.(toEngineError(err, 'automatic purge'))
        }
      }
      if (options.vaultKeys !== undefined) {
        try {
          options.onVaultKeys?.(await options.vaultKeys.run())
        } catch (err) {
          options.onError?.(toEngineError(err, 'vault key maintenance'))
        }
      }
    })
    return running
  }
  void pass()
  const timer = setInterval(() => void pass(), intervalMs)
  timer.unref()
  return {
    async stop() {
      stopped = true
      clearInterval(timer)
      await running
    },
    runNow: pass,
  }
}
