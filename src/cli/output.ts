/** What the command line prints and the exit codes it returns (docs/cli.md). */
import { isEngineError, type ErrorCode } from '../core/errors.js'

/** Exit codes: 0 done, 1 the operation failed, 2 usage error, 3 not found. */
export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3 } as const

const NOT_FOUND: readonly ErrorCode[] = [
  'KEY_NOT_FOUND_ERR',
  'ALIAS_NOT_FOUND_ERR',
  'KEY_RING_NOT_FOUND_ERR',
  'KEY_VERSION_NOT_FOUND',
  'IMPORT_TOKEN_NOT_FOUND_ERR',
  'KEY_PROVIDER_NOT_FOUND',
  'MIGRATION_NOT_FOUND',
  'JOB_NOT_FOUND',
  'DATA_KEY_NOT_FOUND',
  'CONNECTION_NOT_FOUND',
  'LINKED_KEY_NOT_FOUND',
]

/** Writes one line to stdout. */
export function out(line: string): void {
  process.stdout.write(`${line}\n`)
}

/** Writes `value` as one line of JSON (Dates as ISO strings). */
export function outJson(value: unknown): void {
  out(JSON.stringify(value))
}

/**
 * Prints a failure on stderr as `envelope-kms: error CODE: message` (typed errors) and returns its exit code.
 */
export function reportError(err: unknown): number {
  if (isEngineError(err)) {
    process.stderr.write(`envelope-kms: error ${err.code}: ${err.message}\n`)
    return NOT_FOUND.includes(err.code) ? EXIT.notFound : EXIT.failed
  }
  process.stderr.write(
    `envelope-kms: error INTERNAL_ERROR: ${err instanceof Error ? err.message : String(err)}\n`,
  )
  return EXIT.failed
}

/** Aligned columns, for human-readable tables. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = []
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)))
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
    .join('\n')
}
