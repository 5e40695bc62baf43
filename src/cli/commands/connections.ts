/**
 * `envelope-kms connections add|list|get|test|delete`: a tenant's cloud connections for key synchronization
 * (the library's KeySync; over HTTP: the CCKM connection-manager API, docs/http-cckm.md). Secrets are given
 * only as references (`env:NAME`, `file:/path`): the catalog keeps the reference, the engine reads the
 * secret when it opens the connection.
 */
import { readFileSync } from 'node:fs'
import type { ConnectionView } from '../../core/sync/types.js'
import { connectionInput } from '../../http/cckm/connection-input.js'
import { FieldProblem, paramsWire } from '../../http/cckm/wire.js'
import {
  stringList,
  stringOption,
  UsageError,
  type Command,
  type CommandGroup,
  type OptionValues,
} from '../args.js'
import { EXIT, out, outJson, table } from '../output.js'
import { TENANT_HELP, TENANT_OPTIONS, tenantOption, withServices } from '../services.js'
import { cloudOption } from './sync.js'

/** Flags holding a plain value, by the request field they set. */
const VALUE_FLAGS = {
  'vault-url': 'vault_url',
  'credential-type': 'credential_type',
  'tenant-id': 'tenant_id',
  'client-id': 'client_id',
  'authority-host': 'authority_host',
  'ca-file': 'ca_file',
  endpoint: 'endpoint',
  module: 'module',
  'token-label': 'token_label',
} as const

/** Flags holding a secret reference (`env:NAME` or `file:/path`), by the request field they set. */
const SECRET_FLAGS = {
  'client-secret': 'client_secret',
  token: 'token',
  'access-key-id': 'access_key_id',
  'secret-access-key': 'secret_access_key',
  'session-token': 'session_token',
  pin: 'pin',
} as const

/** `env:NAME` or `file:/path` → the request's reference. @throws UsageError (without echoing the value) */
function refFlag(flag: string, v: string): { env: string } | { file: string } {
  if (v.startsWith('env:') && v.length > 4) return { env: v.slice(4) }
  if (v.startsWith('file:') && v.length > 5) return { file: v.slice(5) }
  throw new UsageError(
    `--${flag} takes a reference, env:VARIABLE_NAME or file:/absolute/path (a literal secret is not accepted: it would be stored in the catalog)`,
  )
}

/** The request fields of `connections add`: the --params-file's, then the flags over them. */
function addFields(values: OptionValues, name: string): Record<string, unknown> {
  const fields: Record<string, unknown> = {}
  const file = stringOption(values, 'params-file')
  if (file !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown
    } catch (err) {
      throw new UsageError(
        `--params-file ${file}: not readable JSON (${(err as Error).message.split('\n')[0] ?? ''})`,
      )
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new UsageError(`--params-file ${file}: a JSON object of connection fields (docs/http-cckm.md)`)
    }
    Object.assign(fields, parsed)
  }
  for (const [flag, field] of Object.entries(VALUE_FLAGS)) {
    const v = stringOption(values, flag)
    if (v !== undefined) fields[field] = v
  }
  for (const [flag, field] of Object.entries(SECRET_FLAGS)) {
    const v = stringOption(values, flag)
    if (v !== undefined) fields[field] = refFlag(flag, v)
  }
  const regions = stringList(values, 'region')
  if (regions.length > 0) fields['regions'] = regions
  if (values['disable-challenge-resource-verification'] === true) {
    fields['disable_challenge_resource_verification'] = true
  }
  const description = stringOption(values, 'description')
  if (description !== undefined) fields['description'] = description
  fields['name'] = name
  return fields
}

function printOne(values: OptionValues, c: ConnectionView): void {
  if (values['json'] === true) {
    outJson(c)
    return
  }
  const params = Object.entries(paramsWire(c.params)).map(([k, v]) => [
    k,
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.entries(v)
          .map(([a, b]) => `${a}:${String(b)}`)
          .join(',')
      : Array.isArray(v)
        ? v.join(',')
        : String(v),
  ])
  const t = c.lastTest
  out(
    table([
      ['id', c.id],
      ['name', c.name],
      ['cloud', c.cloud],
      ...(c.description === undefined ? [] : [['description', c.description]]),
      ...params,
      ['created', c.createdAt.toISOString()],
      ['updated', c.updatedAt.toISOString()],
      ['last test', t === undefined ? 'never' : `${t.ok ? 'ok' : 'failed'} at ${t.testedAt.toISOString()}`],
      ...(t?.checks ?? []).map((x) => [
        `  ${x.check} ${x.where}`,
        x.ok ? 'ok' : `failed: ${x.error?.code ?? ''} ${x.error?.message ?? ''}`,
      ]),
    ]),
  )
}

const add: Command = {
  help: `usage: envelope-kms connections add <name> --cloud C [params] --tenant T [options]

Adds a connection of the tenant to a cloud source of keys. The params come as flags or as a JSON file of the
HTTP API's fields (--params-file; flags override it). Secrets are references only: env:NAME (an environment
variable of the engine's process) or file:/absolute/path (its first line), read when the connection is
opened; in a params file, {"env":"NAME"} or {"file":"/path"}.

options:
  --cloud C                  azure, aws or pkcs11
  --description D            a description
  --params-file F            a JSON object of connection fields (docs/http-cckm.md)
 azure:
  --vault-url URL            the vault (https://<vault>.vault.azure.net)
  --credential-type K        client-secret (default), managed-identity or static-token
  --tenant-id ID --client-id ID --client-secret REF [--authority-host URL]
  --token REF                static-token's bearer token
  --ca-file F                a PEM CA to trust for the vault's TLS
  --disable-challenge-resource-verification
 aws:
  --region R                 a region of the account; repeatable, the first is the default
  --endpoint URL             a KMS-compatible endpoint
  --credential-type K        default (the SDK's chain) or static (default when --access-key-id is given)
  --access-key-id REF --secret-access-key REF [--session-token REF]
 pkcs11:
  --module PATH --token-label L --pin REF
${TENANT_HELP}

Exit codes: 0 added, 1 failed (a taken name, a cloud this engine cannot connect to), 2 usage or an invalid
field.
`,
  options: {
    ...TENANT_OPTIONS,
    cloud: { type: 'string' },
    description: { type: 'string' },
    'params-file': { type: 'string' },
    region: { type: 'string', multiple: true },
    'disable-challenge-resource-verification': { type: 'boolean' },
    ...Object.fromEntries(
      [...Object.keys(VALUE_FLAGS), ...Object.keys(SECRET_FLAGS)].map((f) => [
        f,
        { type: 'string' as const },
      ]),
    ),
  },
  positionals: ['name'],
  run: async (values, [name]) => {
    const tenant = tenantOption(values)
    const cloud = cloudOption(values, true)
    let input
    try {
      input = connectionInput(cloud, addFields(values, name ?? ''))
    } catch (err) {
      if (err instanceof FieldProblem) throw new UsageError(err.message)
      throw err
    }
    printOne(values, await withServices((s) => s.sync.createConnection(tenant, input)))
    return undefined
  },
}

const list: Command = {
  help: `usage: envelope-kms connections list --tenant T [--cloud C] [options]

Lists the tenant's connections, by name.

options:
  --cloud C      only this cloud's (azure, aws, pkcs11)
${TENANT_HELP}
`,
  options: { ...TENANT_OPTIONS, cloud: { type: 'string' } },
  run: async (values) => {
    const tenant = tenantOption(values)
    const cloud = cloudOption(values, false)
    const all = await withServices((s) =>
      s.sync.listConnections(tenant, cloud === undefined ? {} : { cloud }),
    )
    if (values['json'] === true) {
      outJson(all)
      return undefined
    }
    out(
      table([
        ['ID', 'CLOUD', 'LAST TEST', 'NAME'],
        ...all.map((c) => [
          c.id,
          c.cloud,
          c.lastTest === undefined ? 'never' : c.lastTest.ok ? 'ok' : 'failed',
          c.name,
        ]),
      ]),
    )
    return undefined
  },
}

/** A subcommand taking `<id|name>` that calls one library method. */
function oneConnection(
  name: string,
  summary: string,
  run: (values: OptionValues, tenant: string, idOrName: string) => Promise<number | undefined>,
): Command {
  return {
    help: `usage: envelope-kms connections ${name} <id|name> --tenant T [options]

${summary}

options:
${TENANT_HELP}

Exit codes: 0 done, 1 failed, 2 usage, 3 no such connection.
`,
    options: TENANT_OPTIONS,
    positionals: ['id|name'],
    run: async (values, [idOrName]) => run(values, tenantOption(values), idOrName ?? ''),
  }
}

export const CONNECTIONS: CommandGroup = {
  help: `usage: envelope-kms connections <subcommand> --tenant T [options]

The tenant's cloud connections for key synchronization (docs/cli.md, docs/http-cckm.md).

subcommands:
  add        add a connection (--cloud, params as flags or --params-file; secrets as env:/file: references)
  list       the tenant's connections
  get        one connection
  test       probe a connection (connect, list, …); records and prints the outcome
  delete     delete a connection no linked key refers to (--purge-deleted: with its deleted-at-source links)
`,
  subcommands: {
    add,
    list,
    get: oneConnection(
      'get',
      'Prints one connection (secrets only as their references).',
      async (values, t, id) => {
        printOne(values, await withServices((s) => s.sync.getConnection(t, id)))
        return undefined
      },
    ),
    test: oneConnection(
      'test',
      'Opens the connection and probes it; records the outcome. Exit 1 when a check failed.',
      async (values, t, id) => {
        const c = await withServices((s) => s.sync.testConnection(t, id))
        printOne(values, c)
        return c.lastTest?.ok === false ? EXIT.failed : undefined
      },
    ),
    delete: {
      help: `usage: envelope-kms connections delete <id|name> --tenant T [--purge-deleted] [options]

Deletes a connection no linked key refers to. Links of keys deleted at the source can be purged first
('envelope-kms sync keys purge <id>'), or with the connection by --purge-deleted, in one step; keys still
present at the source block the delete (delete them there and synchronize first).

options:
  --purge-deleted  purge the connection's links of keys deleted at the source with it
${TENANT_HELP}

Exit codes: 0 done, 1 failed (linked keys refer to it), 2 usage, 3 no such connection.
`,
      options: { ...TENANT_OPTIONS, 'purge-deleted': { type: 'boolean' } },
      positionals: ['id|name'],
      run: async (values, [idOrName]) => {
        const t = tenantOption(values)
        const id = idOrName ?? ''
        const purgeDeleted = values['purge-deleted'] === true
        await withServices((s) => s.sync.deleteConnection(t, id, { purgeDeleted }))
        if (values['json'] === true) outJson({ deleted: id })
        else out(`deleted connection ${id}`)
        return undefined
      },
    },
  },
}
