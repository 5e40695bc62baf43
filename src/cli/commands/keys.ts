/**
 * `envelope-kms keys list|create|import|get|rotate|disable|enable|delete|restore`: root keys of one instance, over
 * the public engine API. `--json` prints the engine's KeyInfo (one JSON document); otherwise a table or one
 * line per key.
 */
import type { KeyInfo } from '../../core/engine.js'
import type { KeyStateValue } from '../../core/key-state.js'
import {
  INSTANCE_OPTIONS,
  instanceOption,
  intOption,
  stringList,
  stringOption,
  UsageError,
  type Command,
  type CommandGroup,
  type OptionValues,
} from '../args.js'
import { withEngine } from '../engine.js'
import { chooseImportAlgorithm, readMaterialFile, sealMaterial } from '../material.js'
import { out, outJson, table } from '../output.js'

const STATE_NAMES: Readonly<Record<number, string>> = {
  0: 'pre-active',
  1: 'active',
  2: 'suspended',
  3: 'deactivated',
  5: 'destroyed',
}

const stateName = (s: KeyStateValue): string => STATE_NAMES[s] ?? String(s)

const COMMON = `  --instance I   the instance (tenant) the keys belong to; default: EKMS_INSTANCE (there is no default instance)
  --json         print the result as JSON (the engine's KeyInfo)
  -h, --help     print this help and exit`

/** One line per key: id, state, version, name. */
function keyLine(k: KeyInfo): string {
  return `${k.id}  ${stateName(k.state)}  version ${k.keyVersion.number}  ${k.name}`
}

function printKey(values: OptionValues, k: KeyInfo): void {
  if (values['json'] === true) outJson(k)
  else out(keyLine(k))
}

/** A subcommand taking `<key>` that calls one engine method and prints the key it returns. */
function keyAction(
  name: string,
  summary: string,
  call: (
    engine: Parameters<Parameters<typeof withEngine>[0]>[0],
    instance: string,
    key: string,
    v: OptionValues,
  ) => Promise<KeyInfo>,
  extraOptions: Command['options'] = {},
  extraHelp = '',
): Command {
  return {
    help: `usage: envelope-kms keys ${name} <key> --instance I [options]

${summary} <key> is a key id or alias.

options:
${extraHelp}${COMMON}
`,
    options: { ...INSTANCE_OPTIONS, ...extraOptions },
    positionals: ['key'],
    run: async (values, [key]) => {
      const instance = instanceOption(values)
      const k = await withEngine((e) => call(e, instance, key ?? '', values))
      printKey(values, k)
      return undefined
    },
  }
}

const list: Command = {
  help: `usage: envelope-kms keys list --instance I [options]

Lists the instance's keys (deleted ones only with --all), in creation order.

options:
  --all          include deleted keys (state 5, destroyed)
  --limit N      at most N keys (default 200)
  --offset N     skip the first N keys
${COMMON}
`,
  options: {
    ...INSTANCE_OPTIONS,
    all: { type: 'boolean' },
    limit: { type: 'string' },
    offset: { type: 'string' },
  },
  run: async (values) => {
    const instance = instanceOption(values)
    const limit = intOption(values, 'limit') ?? 200
    const offset = intOption(values, 'offset') ?? 0
    const states: KeyStateValue[] | undefined = values['all'] === true ? [0, 1, 2, 3, 5] : undefined
    const r = await withEngine((e) =>
      e.listKeys(instance, { limit, offset, ...(states === undefined ? {} : { states }) }),
    )
    if (values['json'] === true) {
      outJson(r)
      return undefined
    }
    if (r.keys.length === 0) {
      out(`no keys in instance "${instance}"`)
      return undefined
    }
    out(
      table([
        ['ID', 'STATE', 'VERSION', 'CREATED', 'NAME'],
        ...r.keys.map((k) => [
          k.id,
          stateName(k.state),
          String(k.keyVersion.number),
          k.createdAt.toISOString(),
          k.name,
        ]),
      ]),
    )
    if (r.total > r.keys.length + offset) out(`(${r.keys.length} of ${r.total}; use --offset)`)
    return undefined
  },
}

const create: Command = {
  help: `usage: envelope-kms keys create <name> --instance I [options]

Creates a root key (generated in the HSM; its material never leaves it) and prints its id.

options:
  --description D  a description
  --alias A        an alias (up to 5 per key)
${COMMON}
`,
  options: {
    ...INSTANCE_OPTIONS,
    description: { type: 'string' },
    alias: { type: 'string', multiple: true },
  },
  positionals: ['name'],
  run: async (values, [name]) => {
    const instance = instanceOption(values)
    const description = stringOption(values, 'description')
    const aliases = Array.isArray(values['alias']) ? (values['alias'] as string[]) : []
    const k = await withEngine((e) =>
      e.createKey(instance, {
        name: name ?? '',
        ...(description === undefined ? {} : { description }),
        ...(aliases.length === 0 ? {} : { aliases }),
      }),
    )
    printKey(values, k)
    return undefined
  },
}

const importKey: Command = {
  help: `usage: envelope-kms keys import <name> --material-file F --instance I [options]

Imports key material as a root key through the instance's import token (secure import), as IBM's
\`kp key create --import-token\` does: retrieves the token's public key and nonce (one retrieval),
RSA-OAEP-encrypts the material under the public key and AES-GCM-encrypts the nonce under the material,
then creates the key; the HSM unwraps the material into a non-extractable object and proves the nonce.
Create the token first: envelope-kms import-token create.

The material file holds 16, 24 or 32 raw bytes (convert base64 with \`base64 -d\`) and must not be
accessible by group or others (chmod 600); it is read once and the copy in memory is zeroed.

options:
  --material-file F  the key material (required)
  --algorithm A      RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1 (default: the first the HSM supports;
                     SoftHSM2 supports RSAES_OAEP_SHA_1 only)
  --description D    a description
  --alias A          an alias (up to 5 per key)
${COMMON}
`,
  options: {
    ...INSTANCE_OPTIONS,
    'material-file': { type: 'string' },
    algorithm: { type: 'string' },
    description: { type: 'string' },
    alias: { type: 'string', multiple: true },
  },
  positionals: ['name'],
  run: async (values, [name]) => {
    const instance = instanceOption(values)
    const file = stringOption(values, 'material-file')
    if (file === undefined || file === '') throw new UsageError('--material-file is required')
    const description = stringOption(values, 'description')
    const aliases = stringList(values, 'alias')
    const requested = stringOption(values, 'algorithm')
    const k = await withEngine(async (e) => {
      const algorithm = chooseImportAlgorithm(e.importAlgorithms, requested)
      const material = readMaterialFile(file)
      let secureImport
      try {
        secureImport = sealMaterial(await e.getImportToken(instance), material, algorithm)
      } finally {
        material.fill(0)
      }
      return e.createKey(instance, {
        name: name ?? '',
        ...(description === undefined ? {} : { description }),
        ...(aliases.length === 0 ? {} : { aliases }),
        secureImport,
        createdBy: 'cli',
      })
    })
    printKey(values, k)
    return undefined
  },
}

const get: Command = {
  help: `usage: envelope-kms keys get <key> --instance I [--json]

Prints one key's metadata. <key> is a key id or alias.

options:
${COMMON}
`,
  options: INSTANCE_OPTIONS,
  positionals: ['key'],
  run: async (values, [key]) => {
    const instance = instanceOption(values)
    const k = await withEngine((e) => e.getKey(instance, key ?? ''))
    if (values['json'] === true) {
      outJson(k)
      return undefined
    }
    const date = (d: Date | undefined): string => (d === undefined ? '-' : d.toISOString())
    out(
      table([
        ['id', k.id],
        ['name', k.name],
        ['instance', k.instance],
        ['state', `${k.state} (${stateName(k.state)})`],
        ['version', `${k.keyVersion.number}`],
        ['key ring', k.keyRingId],
        ['aliases', k.aliases.join(', ') || '-'],
        ['created', date(k.createdAt)],
        ['last rotated', date(k.lastRotatedAt)],
        ['deleted', k.deleted ? date(k.deletedAt) : 'no'],
        ['description', k.description ?? '-'],
      ]),
    )
    return undefined
  },
}

export const KEYS: CommandGroup = {
  help: `usage: envelope-kms keys <subcommand> <args> --instance I [options]

Manages root keys through the engine (the same catalog and token as serve).

subcommands:
  list                     list the instance's keys
  create <name>            create a root key
  import <name>            import key material (--material-file) through the instance's import token
  get <key>                show one key
  rotate <key>             add a new version (new wraps use it; old ciphertexts still unwrap)
  disable <key>            suspend a key (state 2): wrap and unwrap are refused
  enable <key>             re-enable a suspended key
  delete <key>             delete a key (state 5); restorable for 30 days
  restore <key>            restore a deleted key

Each subcommand has --help. Exit codes: 0 done, 1 failed (error CODE: message on stderr), 2 usage error,
3 key not found.
`,
  subcommands: {
    list,
    create,
    import: importKey,
    get,
    rotate: keyAction(
      'rotate',
      'Rotates a root key: a new version wraps from now on; older ciphertexts still unwrap.',
      (e, i, k) => e.rotate(i, k),
    ),
    disable: keyAction(
      'disable',
      'Disables (suspends) a key: wrap and unwrap are refused until it is enabled.',
      (e, i, k) => e.disable(i, k),
    ),
    enable: keyAction(
      'enable',
      'Enables a disabled key. Key Protect allows this 30 s after the key was disabled, at the earliest.',
      (e, i, k, v) => e.enable(i, k, v['ignore-cooldown'] === true ? { cooldown: false } : {}),
      { 'ignore-cooldown': { type: 'boolean' } },
      '  --ignore-cooldown  enable even within 30 s of the last state change (AWS KMS behaviour)\n',
    ),
    delete: keyAction(
      'delete',
      'Deletes a key (state 5, destroyed). It can be restored for 30 days, from 30 s after the delete.',
      (e, i, k) => e.deleteKey(i, k, { deletedBy: 'cli' }),
    ),
    restore: keyAction(
      'restore',
      'Restores a deleted key (from 30 s to 30 days after its deletion).',
      (e, i, k) => e.restoreKey(i, k),
    ),
  },
}
