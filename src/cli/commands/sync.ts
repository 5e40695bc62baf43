/**
 * `envelope-kms sync start|status|list|cancel`, `sync keys list|purge`: key synchronization jobs of a tenant,
 * and the linked keys they discovered (the library's KeySync;
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

const STATES = ['present', 'deleted'] as const

const keysList: Command = {
  help: `usage: envelope-kms sync keys list --tenant T [--cloud C] [--state S] [--connection X] [--limit N] [--after ID] [options]

Lists the tenant's linked keys (the keys synchronization jobs discovered), by id.

options:
  --cloud C        only this cloud's (azure, aws, pkcs11)
  --state S        present, or deleted (at the source: the links 'sync keys purge' can remove)
  --connection X   only this connection's (name or id)
  --limit N        at most N keys (1-1000, default 100)
  --after ID       the keys after this id (the next page)
${TENANT_HELP}

Exit codes: 0 done, 2 usage, 3 unknown connection.
`,
  options: {
    ...TENANT_OPTIONS,
    cloud: { type: 'string' },
    state: { type: 'string' },
    connection: { type: 'string' },
    limit: { type: 'string' },
    after: { type: 'string' },
  },
  run: async (values) => {
    const tenant = tenantOption(values)
    const cloud = cloudOption(values, false)
    const state = stringOption(values, 'state')
    if (state !== undefined && !(STATES as readonly string[]).includes(state)) {
      throw new UsageError(`--state must be one of ${STATES.join(', ')}`)
    }
    const limit = intOption(values, 'limit') ?? 100
    if (limit < 1 || limit > 1000) throw new UsageError('--limit must be 1-1000')
    const connection = stringOption(values, 'connection')
    const after = stringOption(values, 'after')
    const { keys, total } = await withServices((s) =>
      s.sync.listLinkedKeys(tenant, {
        ...(cloud === undefined ? {} : { cloud }),
        ...(state === undefined ? {} : { sourceState: state as (typeof STATES)[number] }),
        ...(connection === undefined ? {} : { connection }),
        ...(after === undefined ? {} : { after }),
        limit,
      }),
    )
    if (values['json'] === true) {
      outJson({ total, keys })
      return undefined
    }
    out(
      table([
        ['ID', 'CLOUD', 'STATE', 'NAME', 'VAULT', 'TYPE', 'LAST SYNCED'],
        ...keys.map((k) => [
          k.id,
          k.cloud,
          k.sourceState,
          k.name,
          k.vault,
          k.keyType,
          k.lastSyncedAt.toISOString(),
        ]),
      ]),
    )
    const last = keys.at(-1)
    if (last !== undefined && keys.length === limit) out(`(more may follow: --after ${last.id})`)
    return undefined
  },
}

const keysPurge: Command = {
  help: `usage: envelope-kms sync keys purge <id> --tenant T [options]

Removes the link of a key deleted at its source (its state is 'deleted') from the catalog. Ciphertexts made
under it can no longer be unwrapped through the engine; should the key reappear at the source, the next
synchronization links it under a new id. A key still present at its source is refused: delete it at the
source and synchronize first. Once a connection's links are purged, the connection can be deleted.

options:
${TENANT_HELP}

Exit codes: 0 purged, 1 still present at its source, 2 usage, 3 no such linked key.
`,
  options: TENANT_OPTIONS,
  positionals: ['id'],
  run: async (values, [id]) => {
    const tenant = tenantOption(values)
    await withServices((s) => s.sync.purgeLinkedKey(tenant, id ?? ''))
    if (values['json'] === true) outJson({ purged: id })
    else out(`purged linked key ${id ?? ''}`)
    return undefined
  },
}

const KEYS: CommandGroup = {
  help: `usage: envelope-kms sync keys <subcommand> --tenant T [options]

The tenant's linked keys: the keys synchronization jobs discovered (docs/key-sync.md).

subcommands:
  list       the linked keys (--cloud, --state present|deleted, --connection)
  purge      remove the link of a key deleted at its source
`,
  subcommands: { list: keysList, purge: keysPurge },
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
  keys       list|purge the linked keys (purge: the links of keys deleted at their source)
`,
  subcommands: { start, status, list, cancel, keys: KEYS },
}
