#!/usr/bin/env node
/**
 * `envelope-kms` command line: a thin shell over the public API (docs/cli.md). Each command is a file in
 * src/cli/commands; this file only dispatches.
 *
 *   envelope-kms --help | --version | <command> --help   print and exit; nothing else runs
 *   envelope-kms <command> [args] [options]              exit 0 done, 1 failed, 2 usage error, 3 not found
 * Options are parsed strictly (src/cli/args.ts): an unknown option or a stray argument is a usage error.
 */
import { readFileSync } from 'node:fs'
import { parseCommandArgs, UsageError, type Command, type CommandGroup } from './args.js'
import { EXIT, reportError } from './output.js'

const USAGE = `usage: envelope-kms <command> [options]

commands:
  init         provision a SoftHSM2 token, its PIN file and the catalog in the working directory
  doctor       check the module, token, PIN, mechanisms, catalog and clock; one verdict per line
  serve        serve the Key Protect v2 API (EKMS_HTTP_*, EKMS_AUTH_FILE, EKMS_PKCS11_*, EKMS_CATALOG)
  keys         list|create|import|get|rotate|disable|enable|delete|restore root keys
  import-token create|show the instance's import token (secure import of key material)
  wrap         wrap a DEK (stdin) with a root key; prints the ciphertext in base64
  unwrap       unwrap a ciphertext (base64 on stdin); writes the DEK
  rotate-due   run one automatic-rotation pass (keys whose rotation policy is due) and print it as JSON
  providers    list|register|get|test|delete the tenant's key providers
  migrate      migrate the tenant's data keys to a provider (--to <fingerprint|default>) and follow it
  migration    status [--follow] of the tenant's key-provider migration
  connections  add|list|get|test|delete the tenant's cloud connections (key synchronization)
  sync         start|status|list|cancel key synchronization jobs (--follow shows progress);
               keys list|purge the linked keys
  help         this text

options:
  -h, --help     print help and exit (with a command: that command's help; nothing else runs)
  -v, --version  print the version and exit

Configuration is read from the environment (docs/configuration.md, docs/cli.md).
Exit codes: 0 done, 1 the operation failed, 2 usage error, 3 not found.
`

/** Commands load on use: `--help` and `--version` never load pkcs11js, SQLite or the HTTP layer. */
const COMMANDS: Readonly<Record<string, () => Promise<Command | CommandGroup>>> = {
  init: async () => (await import('./commands/init.js')).INIT,
  doctor: async () => (await import('./commands/doctor.js')).DOCTOR,
  serve: async () => (await import('./commands/serve.js')).SERVE,
  keys: async () => (await import('./commands/keys.js')).KEYS,
  'import-token': async () => (await import('./commands/import-token.js')).IMPORT_TOKEN,
  wrap: async () => (await import('./commands/wrap.js')).WRAP,
  unwrap: async () => (await import('./commands/wrap.js')).UNWRAP,
  'rotate-due': async () => (await import('./commands/rotate-due.js')).ROTATE_DUE,
  providers: async () => (await import('./commands/providers.js')).PROVIDERS,
  migrate: async () => (await import('./commands/migrate.js')).MIGRATE,
  migration: async () => (await import('./commands/migrate.js')).MIGRATION,
  connections: async () => (await import('./commands/connections.js')).CONNECTIONS,
  sync: async () => (await import('./commands/sync.js')).SYNC,
}

/** The package version, from the package.json this file ships with. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version?: unknown
  }
  return typeof pkg.version === 'string' ? pkg.version : 'unknown'
}

function usageError(message: string, usage: string): number {
  process.stderr.write(`envelope-kms: ${message}\n${usage}`)
  return EXIT.usage
}

async function main(argv: readonly string[]): Promise<number> {
  // Global options come before the command; everything after it belongs to the command.
  let i = 0
  while (i < argv.length && (argv[i] ?? '').startsWith('-')) i++
  let globals
  try {
    globals = parseCommandArgs(argv.slice(0, i), { version: { type: 'boolean', short: 'v' } })
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message, USAGE)
    throw err
  }
  if (globals.values['version'] === true) {
    process.stdout.write(`${version()}\n`)
    return EXIT.ok
  }
  const name = argv[i]
  let rest = argv.slice(i + 1)
  if (name === undefined || name === 'help') {
    process.stdout.write(USAGE)
    return EXIT.ok
  }
  const load = COMMANDS[name]
  if (load === undefined) return usageError(`unknown command "${name}"`, USAGE)
  let loaded: Command | CommandGroup = await load()
  let path = name
  // A group's subcommand may itself be a group (`sync keys list`).
  while ('subcommands' in loaded) {
    const sub = rest[0]
    if (sub === undefined || sub.startsWith('-')) {
      if (rest.some((a) => a === '--help' || a === '-h') || globals.help) {
        process.stdout.write(loaded.help)
        return EXIT.ok
      }
      return usageError(
        sub === undefined
          ? `${path}: missing subcommand`
          : `${path}: the subcommand comes first (envelope-kms ${path} <subcommand> [options])`,
        loaded.help,
      )
    }
    const found: Command | CommandGroup | undefined = loaded.subcommands[sub]
    if (found === undefined) return usageError(`unknown ${path} subcommand "${sub}"`, loaded.help)
    loaded = found
    path = `${path} ${sub}`
    rest = rest.slice(1)
  }
  const command: Command = loaded
  if (globals.help) {
    process.stdout.write(command.help)
    return EXIT.ok
  }
  try {
    const parsed = parseCommandArgs(rest, command.options, command.positionals)
    if (parsed.help) {
      process.stdout.write(command.help)
      return EXIT.ok
    }
    return (await command.run(parsed.values, parsed.positionals)) ?? EXIT.ok
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message, command.help)
    throw err
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== EXIT.ok) process.exitCode = code
  },
  (err: unknown) => {
    process.exitCode = reportError(err)
  },
)
