/**
 * `envelope-kms import-token create|show`: the instance's import token (Key Protect secure import), over the
 * public engine API. `keys import --material-file` uses it to import key material encrypted for the HSM.
 */
import type { ImportTokenInfo } from '../../core/engine.js'
import { INSTANCE_OPTIONS, instanceOption, intOption, type Command, type CommandGroup } from '../args.js'
import { withEngine } from '../engine.js'
import { out, outJson, table } from '../output.js'

const COMMON = `  --instance I   the instance (tenant); default: EKMS_INSTANCE (there is no default instance)
  --json         print the result as one JSON document
  -h, --help     print this help and exit`

function counters(t: ImportTokenInfo): string[][] {
  return [
    ['created', t.createdAt.toISOString()],
    ['expires', t.expiresAt.toISOString()],
    ['retrievals', `${t.remainingRetrievals} of ${t.maxAllowedRetrievals} left`],
  ]
}

const create: Command = {
  help: `usage: envelope-kms import-token create --instance I [options]

Creates the instance's import token: an RSA-2048 key pair generated in the HSM (the private key never
leaves it) and a 12-byte nonce. It replaces the instance's previous token, whose key pair is destroyed.

options:
  --expiration SEC      seconds until the token expires: 300-86400 (default 600)
  --max-retrievals N    how many times it may be retrieved (show, keys import): 1-500 (default 1)
${COMMON}
`,
  options: {
    ...INSTANCE_OPTIONS,
    expiration: { type: 'string' },
    'max-retrievals': { type: 'string' },
  },
  run: async (values) => {
    const instance = instanceOption(values)
    const expirationSec = intOption(values, 'expiration')
    const maxAllowedRetrievals = intOption(values, 'max-retrievals')
    const t = await withEngine((e) =>
      e.createImportToken(instance, {
        ...(expirationSec === undefined ? {} : { expirationSec }),
        ...(maxAllowedRetrievals === undefined ? {} : { maxAllowedRetrievals }),
      }),
    )
    if (values['json'] === true) outJson(t)
    else out(table(counters(t)))
    return undefined
  },
}

const show: Command = {
  help: `usage: envelope-kms import-token show --instance I [--json]

Retrieves the instance's import token: its public key (SPKI PEM) and nonce (base64), to encrypt key
material for a secure import yourself (or let \`keys import --material-file\` do it). Each show takes one
of the token's retrievals.

options:
${COMMON}
`,
  options: INSTANCE_OPTIONS,
  run: async (values) => {
    const instance = instanceOption(values)
    const t = await withEngine((e) => e.getImportToken(instance))
    if (values['json'] === true) {
      outJson({ ...t, nonce: t.nonce.toString('base64') })
      return undefined
    }
    out(table([...counters(t), ['nonce', t.nonce.toString('base64')]]))
    out(t.publicKeyPem.trimEnd())
    return undefined
  },
}

export const IMPORT_TOKEN: CommandGroup = {
  help: `usage: envelope-kms import-token <subcommand> --instance I [options]

The instance's import token (Key Protect secure import: key material encrypted under an HSM-held RSA key).

subcommands:
  create   create (or replace) the instance's import token
  show     retrieve its public key and nonce (takes one retrieval)

Each subcommand has --help. Exit codes: 0 done, 1 failed (error CODE: message on stderr), 2 usage error,
3 not found.
`,
  subcommands: { create, show },
}
