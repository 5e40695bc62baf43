/**
 * Strict command-line parsing (node:util parseArgs) shared by every command: unknown options and stray
 * arguments are usage errors (exit 2), so that a mistyped flag never runs a command with its defaults.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'

/** A usage error: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>
export type OptionValues = Record<string, string | boolean | string[] | boolean[] | undefined>

/** A command (or a subcommand of a group such as `keys`). */
export interface Command {
  /** The usage text `--help` prints. */
  readonly help: string
  /** Its options; `-h/--help` is added to every command. */
  readonly options: OptionSpec
  /** Names of its positional arguments, all required, in order. */
  readonly positionals?: readonly string[]
  /** Runs the command; the exit code it returns (0 when it returns nothing). */
  run(values: OptionValues, positionals: readonly string[]): Promise<number | undefined>
}

/** A group of subcommands (`keys list|create|...`); a subcommand may be a group (`sync keys list`). */
export interface CommandGroup {
  readonly help: string
  readonly subcommands: Readonly<Record<string, Command | CommandGroup>>
}

/**
 * Parses `args` against `options` (plus `-h/--help`), strictly.
 * @throws UsageError naming the unknown option, the missing value or the stray argument
 */
export function parseCommandArgs(
  args: readonly string[],
  options: OptionSpec,
  positionalNames: readonly string[] = [],
): { values: OptionValues; positionals: string[]; help: boolean } {
  let parsed
  try {
    parsed = parseArgs({
      args: [...args],
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    })
  } catch (err) {
    // node:util's message goes on about positionals after '--'; its first sentence names the fault.
    throw new UsageError(((err as Error).message.split('. ')[0] ?? '').replace(/\.$/, ''))
  }
  const values = parsed.values as OptionValues
  const help = values['help'] === true
  if (help) return { values, positionals: parsed.positionals, help }
  if (parsed.positionals.length > positionalNames.length)
    throw new UsageError(`unexpected argument "${parsed.positionals[positionalNames.length] ?? ''}"`)
  const missing = positionalNames[parsed.positionals.length]
  if (missing !== undefined) throw new UsageError(`missing argument <${missing}>`)
  return { values, positionals: parsed.positionals, help }
}

/** A string option's value, or undefined. */
export function stringOption(values: OptionValues, name: string): string | undefined {
  const v = values[name]
  return typeof v === 'string' ? v : undefined
}

/** A repeatable string option's values (empty when absent). */
export function stringList(values: OptionValues, name: string): string[] {
  const v = values[name]
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
}

/** A non-negative integer option, or undefined. @throws UsageError when it is not one */
export function intOption(values: OptionValues, name: string): number | undefined {
  const v = stringOption(values, name)
  if (v === undefined) return undefined
  if (!/^\d{1,9}$/.test(v)) throw new UsageError(`--${name} must be a non-negative integer`)
  return Number(v)
}

/** The `--instance` every key command needs, or `EKMS_INSTANCE`. @throws UsageError when neither is set */
export function instanceOption(values: OptionValues): string {
  const v = stringOption(values, 'instance') ?? process.env['EKMS_INSTANCE']
  if (v === undefined || v === '')
    throw new UsageError(
      "--instance is required (or EKMS_INSTANCE): keys live in an instance, as Key Protect's Bluemix-Instance header names it; there is no default",
    )
  return v
}

/** `--instance` and `--json`, which every key command takes. */
export const INSTANCE_OPTIONS = {
  instance: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies OptionSpec
