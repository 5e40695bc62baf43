/**
 * `envelope-kms providers list|register|get|test|delete`: the tenant's key providers (the library's
 * TenantKeyProviders; over HTTP: the Qlik key providers API). `--json` prints the library's view.
 */
import type { KeyProviderKind } from '../../core/ports-tenant-keys.js'
import type { KeyProviderView, TenantKeyProviders } from '../../core/tenant-keys/types.js'
import { stringOption, UsageError, type Command, type CommandGroup, type OptionValues } from '../args.js'
import { out, outJson, table } from '../output.js'
import { TENANT_HELP, TENANT_OPTIONS, tenantOption, withServices } from '../services.js'

const KINDS: Readonly<Record<string, KeyProviderKind>> = { 'aws-kms': 'aws-kms', 'engine-key': 'engine-key' }

const when = (d: Date | undefined): string => (d === undefined ? 'never' : d.toISOString())

function compliance(p: KeyProviderView): string {
  if (p.drCompliant === undefined) return 'untested'
  if (p.drCompliant) return 'compliant'
  const e = p.complianceError
  return e === undefined ? 'not compliant' : `not compliant: ${e.code} [${e.region}] ${e.message}`
}

function printOne(values: OptionValues, p: KeyProviderView): void {
  if (values['json'] === true) {
    outJson(p)
    return
  }
  out(
    table([
      ['fingerprint', p.fingerprint],
      ['name', p.name],
      ['kind', p.kind],
      ['arn', p.arn],
      ['current', String(p.current)],
      ...(p.description === undefined ? [] : [['description', p.description]]),
      ['created', when(p.createdAt)],
      ['promoted', when(p.promotedToCurrentAt)],
      ['demoted', when(p.demotedFromCurrentAt)],
      ['multi-region', String(p.multiRegion)],
      ...p.replicaKeys.map((r) => [`replica ${r.region}`, r.arn]),
      ['compliance', compliance(p)],
    ]),
  )
}

/** A subcommand taking `<fingerprint>`: its usage, options and tenant, then `run`. */
function fingerprintCommand(
  name: string,
  summary: string,
  run: (tk: TenantKeyProviders, tenant: string, fingerprint: string, values: OptionValues) => Promise<void>,
): Command {
  return {
    help: `usage: envelope-kms providers ${name} <fingerprint> --tenant T [options]

${summary} <fingerprint> is the provider's fingerprint (the tenant id: the default provider).

options:
${TENANT_HELP}
`,
    options: TENANT_OPTIONS,
    positionals: ['fingerprint'],
    run: async (values, [fingerprint]) => {
      const tenant = tenantOption(values)
      await withServices((s) => run(s.tenantKeys, tenant, fingerprint ?? '', values))
      return undefined
    },
  }
}

/** A subcommand taking `<fingerprint>` that calls one library method and prints the provider. */
function providerAction(
  name: string,
  summary: string,
  call: (tk: TenantKeyProviders, tenant: string, fingerprint: string) => Promise<KeyProviderView>,
): Command {
  return fingerprintCommand(name, summary, async (tk, tenant, fingerprint, values) => {
    printOne(values, await call(tk, tenant, fingerprint))
  })
}

const list: Command = {
  help: `usage: envelope-kms providers list --tenant T [options]

Lists the tenant's key providers: the default one first, then the registered ones (oldest first).

options:
  --registered   only the registered providers (not the default), as GET /keyproviders
${TENANT_HELP}
`,
  options: { ...TENANT_OPTIONS, registered: { type: 'boolean' } },
  run: async (values) => {
    const tenant = tenantOption(values)
    const all = await withServices((s) =>
      values['registered'] === true ? s.tenantKeys.list(tenant) : s.tenantKeys.listAll(tenant),
    )
    if (values['json'] === true) {
      outJson(all)
      return undefined
    }
    out(
      table([
        ['FINGERPRINT', 'CURRENT', 'KIND', 'COMPLIANCE', 'NAME'],
        ...all.map((p) => [p.fingerprint, p.current ? '*' : '', p.kind, compliance(p), p.name]),
      ]),
    )
    return undefined
  },
}

const register: Command = {
  help: `usage: envelope-kms providers register --arn ARN --name NAME --tenant T [options]

Registers a customer-managed key as a key provider of the tenant. It is not current: migrate to it
(envelope-kms migrate --to <fingerprint>) to use it. Prints the provider with its fingerprint.

options:
  --arn ARN          the key: an AWS KMS key ARN (kind aws-kms), or a root key id of this tenant (engine-key)
  --name NAME        the provider's name
  --description D    a description
  --kind K           aws-kms (default) or engine-key
${TENANT_HELP}
`,
  options: {
    ...TENANT_OPTIONS,
    arn: { type: 'string' },
    name: { type: 'string' },
    description: { type: 'string' },
    kind: { type: 'string' },
  },
  run: async (values) => {
    const tenant = tenantOption(values)
    const arn = stringOption(values, 'arn')
    const name = stringOption(values, 'name')
    if (arn === undefined) throw new UsageError('--arn is required')
    if (name === undefined) throw new UsageError('--name is required')
    const kindName = stringOption(values, 'kind') ?? 'aws-kms'
    const kind = KINDS[kindName]
    if (kind === undefined) throw new UsageError('--kind must be aws-kms or engine-key')
    const description = stringOption(values, 'description')
    const p = await withServices((s) =>
      s.tenantKeys.register(tenant, { arn, name, description, kind, createdBy: 'cli' }),
    )
    printOne(values, p)
    return undefined
  },
}

const remove = fingerprintCommand(
  'delete',
  'Deletes an inactive key provider (not current, not migrating, nothing wrapped under it; never the default).',
  async (tk, tenant, fingerprint, values) => {
    await tk.delete(tenant, fingerprint)
    if (values['json'] === true) outJson({ deleted: fingerprint })
    else out(`deleted key provider ${fingerprint}`)
  },
)

export const PROVIDERS: CommandGroup = {
  help: `usage: envelope-kms providers <subcommand> --tenant T [options]

The tenant's key providers (docs/cli.md, docs/http-qlik.md).

subcommands:
  list       the default provider and the registered ones
  register   register a customer-managed key (--arn, --name)
  get        one provider
  test       probe the key (GenerateDataKey, Encrypt, Decrypt in every region); records compliance
  delete     delete an inactive provider
`,
  subcommands: {
    list,
    register,
    get: providerAction('get', 'Prints one key provider.', (tk, t, f) => tk.get(t, f)),
    test: providerAction(
      'test',
      'Probes the key in its primary region and every replica and records the outcome (drCompliant).',
      (tk, t, f) => tk.test(t, f),
    ),
    delete: remove,
  },
}
