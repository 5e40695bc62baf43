#!/usr/bin/env node
/**
 * `envelope-kms` command line.
 *
 *   envelope-kms serve        serve the HTTP APIs (configuration: src/config.ts and src/http/config.ts)
 *   envelope-kms rotate-due   run one automatic-rotation pass and print what it did
 *   envelope-kms --help | --version | <command> --help   print and exit; nothing else runs
 * Options are parsed strictly: an unknown option or a stray argument is a usage error (exit 2).
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { loadConfig } from '../config.js'
import { createEngineFromConfig } from '../default-engine.js'
import { EngineError } from '../core/errors.js'
import { SERVE_HELP, serveCommand } from './commands/serve.js'

const USAGE = `usage: envelope-kms <command> [options]

commands:
  serve        serve the Key Protect v2 API (EKMS_HTTP_*, EKMS_AUTH_FILE, EKMS_PKCS11_*, EKMS_CATALOG)
  rotate-due   run one automatic-rotation pass (keys whose rotation policy is due) and print it as JSON
  help         this text

options:
  -h, --help     print help and exit (with a command: that command's help; nothing else runs)
  -v, --version  print the version and exit

Configuration is read from the environment (docs/configuration.md, docs/http-keyprotect.md).
`

const COMMAND_HELP: Readonly<Record<string, string>> = {
  serve: SERVE_HELP,
  'rotate-due': `usage: envelope-kms rotate-due [--help]

Runs one automatic-rotation pass now: rotates every root key whose rotation policy is due and prints
{"rotated":[…],"skipped":[…],"failed":[…]} as JSON. It changes keys: there is no dry run.
`,
}

/** The package version, from the package.json this file ships with. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version?: unknown
  }
  return typeof pkg.version === 'string' ? pkg.version : 'unknown'
}

/** A usage error: printed with the usage, exit code 2. */
class UsageError extends Error {}

/**
 * Parses the command line strictly (node:util parseArgs): unknown options and stray arguments are errors, so
 * that a mistyped flag never runs a command with its defaults.
 */
function parseCommandLine(argv: readonly string[]): {
  command: string | undefined
  help: boolean
  version: boolean
} {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } },
      allowPositionals: true,
      strict: true,
    })
  } catch (err) {
    // node:util's message goes on about positionals after '--'; its first sentence names the fault.
    throw new UsageError(((err as Error).message.split('. ')[0] ?? '').replace(/\.$/, ''))
  }
  const [command, ...rest] = parsed.positionals
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0] ?? ''}"`)
  return { command, help: parsed.values.help === true, version: parsed.values.version === true }
}

async function rotateDueCommand(): Promise<void> {
  const engine = await createEngineFromConfig(loadConfig())
  try {
    process.stdout.write(`${JSON.stringify(await engine.rotateDueKeys())}\n`)
  } finally {
    await engine.close()
  }
}

async function main(argv: readonly string[]): Promise<void> {
  let cl
  try {
    cl = parseCommandLine(argv)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`envelope-kms: ${err.message}\n${USAGE}`)
    process.exitCode = 2
    return
  }
  const { command, help } = cl
  if (cl.version) {
    process.stdout.write(`${version()}\n`)
    return
  }
  if (command === undefined || command === 'help') {
    process.stdout.write(USAGE)
    return
  }
  const commandHelp = COMMAND_HELP[command]
  if (commandHelp === undefined) {
    process.stderr.write(`envelope-kms: unknown command "${command}"\n${USAGE}`)
    process.exitCode = 2
    return
  }
  if (help) {
    process.stdout.write(commandHelp)
    return
  }
  if (command === 'serve') return serveCommand()
  return rotateDueCommand()
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const e = err instanceof EngineError ? err : undefined
  process.stderr.write(`envelope-kms: ${e === undefined ? String(err) : `${e.code}: ${e.message}`}\n`)
  process.exitCode = 1
})
