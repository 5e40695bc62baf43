/**
 * `envelope-kms migrate --to <fingerprint|default>` and `envelope-kms migration status [--follow]`: start a
 * key-provider migration of a tenant (a durable job) and follow it (src/cli/follow.ts).
 */
import { stringOption, UsageError, type Command, type CommandGroup } from '../args.js'
import { followMigration, migrationLine } from '../follow.js'
import { out, outJson } from '../output.js'
import { TENANT_HELP, TENANT_OPTIONS, tenantOption, withServices } from '../services.js'

export const MIGRATE: Command = {
  help: `usage: envelope-kms migrate --to <fingerprint|default> --tenant T [options]

Makes the provider current and migrates every data key of the tenant to it, as a durable job; then follows
it (a progress bar on a terminal, one line a second otherwise, JSON lines with --json) until it completes.
--to default migrates back to the built-in default provider (Qlik's reset-to-default-provider).
Interrupting the command does not stop the migration: it is kept in the catalog and goes on in
'envelope-kms serve', or resumes with 'envelope-kms migration status --follow'.

options:
  --to F         the target provider's fingerprint, or "default"
  --detach       start the migration and print it; do not follow
${TENANT_HELP}

Exit codes: 0 completed (or started, with --detach), 1 failed, cancelled or interrupted, 2 usage, 3 unknown
provider.
`,
  options: { ...TENANT_OPTIONS, to: { type: 'string' }, detach: { type: 'boolean' } },
  run: async (values) => {
    const tenant = tenantOption(values)
    const to = stringOption(values, 'to')
    if (to === undefined || to === '') throw new UsageError('--to is required (a fingerprint, or "default")')
    const json = values['json'] === true
    return withServices(async (s) => {
      const m =
        to === 'default'
          ? await s.tenantKeys.resetToDefault(tenant, { createdBy: 'cli' })
          : await s.tenantKeys.migrate(tenant, to, { createdBy: 'cli' })
      if (values['detach'] === true) {
        if (json) outJson(m)
        else out(migrationLine(m))
        return undefined
      }
      return followMigration(s.tenantKeys, m, { json })
    })
  },
}

const status: Command = {
  help: `usage: envelope-kms migration status --tenant T [--follow] [options]

Prints the tenant's ongoing migration, or the last one. With --follow, follows it until it is final (a
progress bar on a terminal, one line a second otherwise, JSON lines with --json); a migration left active
by an interrupted process resumes here.

options:
  --follow       follow until the migration is final
${TENANT_HELP}

Exit codes: 0 (with --follow: completed), 1 failed, cancelled or interrupted, 2 usage, 3 no migration.
`,
  options: { ...TENANT_OPTIONS, follow: { type: 'boolean' } },
  run: async (values) => {
    const tenant = tenantOption(values)
    const json = values['json'] === true
    return withServices(async (s) => {
      const m = await s.tenantKeys.migration(tenant)
      if (values['follow'] === true) return followMigration(s.tenantKeys, m, { json })
      if (json) outJson(m)
      else out(migrationLine(m))
      return undefined
    })
  },
}

export const MIGRATION: CommandGroup = {
  help: `usage: envelope-kms migration status --tenant T [--follow] [options]

The tenant's key-provider migration (docs/cli.md).

subcommands:
  status     the ongoing migration, or the last one; --follow follows it
`,
  subcommands: { status },
}
