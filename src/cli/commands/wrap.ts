/**
 * `envelope-kms wrap` and `unwrap`: a DEK through a root key, stdin to stdout.
 *
 * - `wrap` reads the DEK as raw bytes from stdin (or generates one with `--generate`) and prints the
 *   ciphertext (format v1) in base64.
 * - `unwrap` reads a base64 ciphertext from stdin and writes the DEK as raw bytes (`--base64`: base64).
 * A plaintext DEK is never written to a terminal unless `--force` says so (it would stay in the scrollback),
 * and a DEK is never read from one (use a pipe or a file).
 */
import type { Readable } from 'node:stream'
import { EngineError } from '../../core/errors.js'
import {
  INSTANCE_OPTIONS,
  instanceOption,
  stringList,
  stringOption,
  UsageError,
  type Command,
  type OptionValues,
} from '../args.js'
import { withEngine } from '../engine.js'
import { out, outJson } from '../output.js'

/** Upper bound on what is read from stdin: a ciphertext of the largest DEK (4096 bytes) is well below it. */
const MAX_INPUT_BYTES = 64 * 1024

async function readStdin(stdin: Readable & { isTTY?: boolean }, what: string): Promise<Buffer> {
  if (stdin.isTTY === true) throw new UsageError(`${what} is read from stdin: pipe it in or redirect a file`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of stdin) {
    const b = chunk as Buffer
    size += b.length
    if (size > MAX_INPUT_BYTES)
      throw new EngineError(
        'INVALID_FIELD_ERR',
        `stdin: more than ${MAX_INPUT_BYTES} bytes; ${what} is smaller`,
      )
    chunks.push(b)
  }
  const all = Buffer.concat(chunks)
  for (const c of chunks) c.fill(0)
  return all
}

function keyOption(values: OptionValues): string {
  const key = stringOption(values, 'key')
  if (key === undefined || key === '') throw new UsageError('--key is required (a key id or alias)')
  return key
}

/** Refuses to put a plaintext DEK on a terminal unless --force. */
function checkSecretOutput(values: OptionValues): void {
  if (process.stdout.isTTY && values['force'] !== true)
    throw new UsageError(
      'refusing to write a plaintext DEK to a terminal; redirect stdout to a file or a pipe, or add --force',
    )
}

const KEY_OPTIONS = {
  ...INSTANCE_OPTIONS,
  key: { type: 'string' },
  aad: { type: 'string', multiple: true },
  force: { type: 'boolean' },
} as const

export const WRAP: Command = {
  help: `usage: envelope-kms wrap --instance I --key K [--aad A]... [--generate] [--json] < dek.bin

Wraps a DEK with the latest version of root key K and prints the ciphertext in base64 (one line).
The DEK is read from stdin as raw bytes (1-4096 bytes); with --generate the HSM generates a 32-byte DEK.

options:
  --instance I   the instance (tenant); default: EKMS_INSTANCE
  --key K        the root key (id or alias)
  --aad A        additional authenticated data; repeatable, and unwrap must be given the same list
  --generate     generate the DEK instead of reading it; prints JSON {ciphertext, plaintext, keyVersion}
                 with the DEK in base64, and so refuses a terminal unless --force
  --json         print {ciphertext, keyVersion} as JSON
  --force        allow writing a generated plaintext DEK to a terminal
  -h, --help     print this help and exit
`,
  options: { ...KEY_OPTIONS, generate: { type: 'boolean' } },
  run: async (values) => {
    const instance = instanceOption(values)
    const key = keyOption(values)
    const aad = stringList(values, 'aad')
    const generate = values['generate'] === true
    if (generate) checkSecretOutput(values)
    const plaintext = generate ? undefined : await readStdin(process.stdin, 'the DEK')
    if (plaintext?.length === 0)
      throw new UsageError('stdin is empty: give the DEK on stdin, or use --generate')
    try {
      const r = await withEngine((e) =>
        e.wrap(instance, key, {
          ...(plaintext === undefined ? {} : { plaintext }),
          ...(aad.length > 0 ? { aad } : {}),
        }),
      )
      if (r.plaintext !== undefined) {
        outJson({
          ciphertext: r.ciphertext,
          plaintext: r.plaintext.toString('base64'),
          keyVersion: r.keyVersion,
        })
        r.plaintext.fill(0)
      } else if (values['json'] === true) outJson({ ciphertext: r.ciphertext, keyVersion: r.keyVersion })
      else out(r.ciphertext)
    } finally {
      plaintext?.fill(0)
    }
    return undefined
  },
}

export const UNWRAP: Command = {
  help: `usage: envelope-kms unwrap --instance I --key K [--aad A]... [--base64 | --json] [--force] < ciphertext.b64

Unwraps a ciphertext (base64, as wrap prints it, read from stdin) with root key K and writes the DEK to
stdout as raw bytes. The DEK is a secret: unwrap refuses to write it to a terminal unless --force.

options:
  --instance I   the instance (tenant); default: EKMS_INSTANCE
  --key K        the root key (id or alias) that wrapped it
  --aad A        the additional authenticated data given to wrap; repeatable, same order
  --base64       write the DEK in base64 (one line) instead of raw bytes
  --json         print {plaintext (base64), keyVersion, rewrapped?} as JSON
  --force        allow writing the plaintext DEK to a terminal
  -h, --help     print this help and exit
`,
  options: { ...KEY_OPTIONS, base64: { type: 'boolean' } },
  run: async (values) => {
    const instance = instanceOption(values)
    const key = keyOption(values)
    const aad = stringList(values, 'aad')
    checkSecretOutput(values)
    const ciphertext = (await readStdin(process.stdin, 'the ciphertext')).toString('utf8').trim()
    if (ciphertext.length === 0) throw new UsageError('stdin is empty: give the base64 ciphertext on stdin')
    const r = await withEngine((e) => e.unwrap(instance, key, ciphertext, aad.length > 0 ? { aad } : {}))
    try {
      if (values['json'] === true)
        outJson({
          plaintext: r.plaintext.toString('base64'),
          keyVersion: r.keyVersion,
          rewrapped: r.rewrapped,
        })
      else if (values['base64'] === true) out(r.plaintext.toString('base64'))
      else
        await new Promise<void>((res, rej) => {
          process.stdout.write(r.plaintext, (err) => {
            if (err) rej(err)
            else res()
          })
        })
    } finally {
      r.plaintext.fill(0)
    }
    return undefined
  },
}
