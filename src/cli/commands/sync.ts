/**
 * `envelope-kms sync start|status|list|cancel`: key synchronization jobs of a tenant (the library's KeySync;
 * over HTTP: the CCKM synchronization-jobs API, docs/http-cckm.md). A job is durable: it runs in the job
 * system, and `--follow` only follows it (src/cli/follow-sync.ts).
 */
import { SYNC_CLOUDS, type SyncCloud } from '../../core/ports-sync.js'
import type { SyncJobView, SyncOverallStatus } from '../../core/sync/types.js'
import {
  intOption,
  stringList,
  stringOption,
  UsageError,
  type Command,
  type CommandGroup,
  type OptionValues,
} from '../args.js'
import { followSync, syncLine } from '../follow-sync.js'
import { out, outJson, table } from '../output.js'
import { TENANT_HELP, TENANT_OPTIONS, tenantOption, withServices } from '../services.js'

const STATUSES: readonly SyncOverallStatus[] = ['in_progress', 'completed', 'failed', 'cancelled']

/** `--cloud`, required or optional. @throws UsageError when it is not one of the clouds */
export function cloudOption(values: OptionValues, required: true): SyncCloud
export function cloudOption(values: OptionValues, required: false): SyncCloud | undefined
export function cloudOption(values: OptionValues, required: boolean): SyncCloud | undefined {
  const c = stringOption(values, 'cloud')
  if (c === undefined) {
    if (required) throw new UsageError(`--cloud is required (${SYNC_CLOUDS.join(', ')})`)
    return undefined
  }
  if (!(SYNC_CLOUDS as readonly string[]).includes(c))
    throw new UsageError(`--cloud must be one of ${SYNC_CLOUDS.join(', ')}`)
  return c as SyncCloud
}

function printJob(values: OptionValues, j: SyncJobView): void {
  if (values['json'] === true) outJson(j)
  else out(syncLine(j))
}

const start: Command = {
  help: `usage: envelope-kms sync start --cloud C (--vault V... | --all) [--region R...] --tenant T [options]

Starts a synchronization of the keys of the cloud's connections into the tenant's linked keys, as a durable
job (one per tenant and cloud at a time). With --follow, follows it (a progress bar on a terminal: vaults
done of all, keys discovered, ETA; one line a second otherwise; JSON lines with --json) until it is final.
Interrupting does not stop the job: it is kept in the catalog and goes on in 'envelope-kms serve', or
resumes with 'envelope-kms sync status <id> --follow'.

options:
  --cloud C      azure, aws or pkcs11
  --vault V      a connection to synchronize, by name or id (PKCS#11: also a token label); repeatable
  --all          every connection of the cloud (instead of --vault)
  --region R     aws only: synchronize only these of the connections' regions; repeatable
  --follow       follow the job until it is final
${TENANT_HELP}

Exit codes: 0 started (with --follow: completed), 1 failed, cancelled or interrupted, 2 usage, 3 unknown
connection.
`,
  options: {
    ...TENANT_OPTIONS,
    cloud: { type: 'string' },
    vault: { type: 'string', multiple: true },
    all: { type: 'boolean' },
    region: { type: 'string', multiple: true },
    follow: { type: 'boolean' },
  },
  run: async (values) => {
    const tenant = tenantOption(values)
    const cloud = cloudOption(values, true)
    const vaults = stringList(values, 'vault')
    const all = values['all'] === true
    if (all && vaults.length > 0) throw new UsageError('--vault and --all are mutually exclusive: give one')
    if (!all && vaults.length === 0) throw new UsageError('give --vault <name|id> (repeatable) or --all')
    const regions = stringList(values, 'region')
    if (regions.length > 0 && cloud !== 'aws') throw new UsageError('--region is for --cloud aws only')
    const json = values['json'] === true
    return withServices(async (s) => {
      const j = await s.sync.startSync(tenant, {
        cloud,
        ...(all ? { synchronizeAll: true } : { vaults }),
        ...(regions.length === 0 ? {} : { regions }),
        createdBy: 'cli',
      })
      if (values['follow'] === true) return followSync(s.sync, j, { json })
      printJob(values, j)
      return undefined
    })
  },
}

const status: Command = {
  help: `usage: envelope-kms sync status <id> --tenant T [--follow] [options]

Prints a synchronization job. With --follow, follows it until it is final (a job left active by an
interrupted process resumes here).

options:
  --follow       follow until the job is final
${TENANT_HELP}

Exit codes: 0 (with --follow: completed), 1 failed, cancelled or interrupted, 2 usage, 3 no such job.
`,
  options: { ...TENANT_OPTIONS, follow: { type: 'boolean' } },
  positionals: ['id'],
  run: async (values, [id]) => {
    const tenant = tenantOption(values)
    const json = values['json'] === true
    return withServices(async (s) => {
      const j = await s.sync.getSyncJob(tenant, id ?? '')
      if (values['follow'] === true) return followSync(s.sync, j, { json })
      printJob(values, j)
      return undefined
    })
  },
}

const list: Command = {
  help: `usage: envelope-kms sync list --tenant T [--cloud C] [--status S] [--limit N] [options]

Lists the tenant's synchronization jobs, newest first.

options:
  --cloud C      only this cloud's (azure, aws, pkcs11)
  --status S     only in_progress, completed, failed or cancelled jobs
  --limit N      at most N jobs (default 50)
${TENANT_HELP}
`,
  options: {
    ...TENANT_OPTIONS,
    cloud: { type: 'string' },
    status: { type: 'string' },
    limit: { type: 'string' },
  },
  run: async (values) => {
    const tenant = tenantOption(values)
    const cloud = cloudOption(values, false)
    const st = stringOption(values, 'status')
    if (st !== undefined && !(STATUSES as readonly string[]).includes(st)) {
      throw new UsageError(`--status must be one of ${STATUSES.join(', ')}`)
    }
    const limit = intOption(values, 'limit') ?? 50
    const { jobs, total } = await withServices((s) =>
      s.sync.listSyncJobs(tenant, {
        ...(cloud === undefined ? {} : { cloud }),
        ...(st === undefined ? {} : { overallStatus: st as SyncOverallStatus }),
        limit,
      }),
    )
    if (values['json'] === true) {
      outJson({ total, jobs })
      return undefined
    }
    out(
      table([
        ['ID', 'CLOUD', 'STATUS', 'PROGRESS', 'KEYS', 'CREATED', 'VAULTS'],
        ...jobs.map((j) => [
          j.id,
          j.cloud,
          j.abort && j.overallStatus === 'in_progress' ? 'cancelling' : j.overallStatus,
          `${j.done}/${j.total}`,
          String(j.counts.discovered),
          j.createdAt.toISOString(),
          j.vaults.map((v) => v.name).join(','),
        ]),
      ]),
    )
    if (total > jobs.length) out(`(${jobs.length} of ${total}; --limit shows more)`)
    return undefined
  },
}

const cancel: Command = {
  help: `usage: envelope-kms sync cancel <id> --tenant T [options]

Requests the cancel of a synchronization job (CCKM's abort); it stops at its next checkpoint.

options:
${TENANT_HELP}

Exit codes: 0 requested, 1 the job is already finished, 2 usage, 3 no such job.
`,
  options: TENANT_OPTIONS,
  positionals: ['id'],
  run: async (values, [id]) => {
    const tenant = tenantOption(values)
    printJob(values, await withServices((s) => s.sync.cancelSync(tenant, id ?? '')))
    return undefined
  },
}

export const SYNC: CommandGroup = {
  help: `usage: envelope-kms sync <subcommand> --tenant T [options]

Key synchronization jobs: discover the keys of cloud connections (envelope-kms connections) as the
tenant's linked keys (docs/cli.md, docs/http-cckm.md).

subcommands:
  start      start a synchronization (--cloud, --vault... or --all); --follow follows it
  status     one job; --follow follows it
  list       the tenant's jobs, newest first
  cancel     request a job's cancel
`,
  subcommands: { start, status, list, cancel },
}
