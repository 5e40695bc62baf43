/**
 * Audit events as JSON lines (pino): who, instance, key, action, outcome, correlation id. Never key
 * material, tokens, PINs or request bodies.
 */
import { pino, type DestinationStream, type Logger } from 'pino'

export interface AuditEvent {
  /** Event name from the seed, e.g. `kms.secrets.wrap`. */
  readonly event: string
  readonly outcome: 'success' | 'failure'
  readonly status: number
  readonly subject: string | undefined
  readonly instance: string | undefined
  readonly keyId: string | undefined
  readonly correlationId: string
  /** The error code on failure. */
  readonly reason: string | undefined
  readonly method: string
  readonly route: string
}

export interface AuditSink {
  record(e: AuditEvent): void
}

/** An audit sink writing JSON lines to `destination` (default stdout). */
export function pinoAuditSink(destination?: DestinationStream | string): AuditSink & { logger: Logger } {
  const dest =
    typeof destination === 'string'
      ? pino.destination({ dest: destination, sync: false, mkdir: true })
      : destination
  const logger = pino(
    { base: { log: 'audit' }, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' },
    dest ?? pino.destination({ dest: 1, sync: false }),
  )
  return {
    logger,
    record(e) {
      logger.info(e)
    },
  }
}

/** An audit sink that drops events (tests that do not look at them). */
export const nullAuditSink: AuditSink = { record() {} }
