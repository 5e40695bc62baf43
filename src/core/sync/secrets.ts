/**
 * The {@link SecretResolver} of key synchronization: reads a {@link SecretSource} when a connection is
 * opened. `env` reads a variable of the engine's process, `file` the first line of a file (its trailing
 * `\r\n` / `\n` removed). Errors name the reference (the variable's name, the file's path), never the value.
 */
import { readFile } from 'node:fs/promises'
import { EngineError } from '../errors.js'
import type { SecretResolver, SecretSource } from '../ports-sync.js'

/** Largest secret file read (a PIN, a token, a client secret; not a key file). */
const MAX_SECRET_FILE_BYTES = 64 * 1024

function unresolved(message: string, cause?: unknown): EngineError {
  return new EngineError('INVALID_FIELD_ERR', message, {
    target: { type: 'field', name: 'secret' },
    ...(cause === undefined ? {} : { cause }),
  })
}

/** Where a secret source points, for messages (never the secret). */
export function describeSecretSource(source: SecretSource): string {
  return source.kind === 'env' ? `environment variable ${source.name}` : `file ${source.path}`
}

/**
 * The resolver over `env` (default: `process.env`).
 * @throws EngineError INVALID_FIELD_ERR (unset or empty variable, unreadable or empty file)
 */
export function createSecretResolver(env: NodeJS.ProcessEnv = process.env): SecretResolver {
  return async (source) => {
    if (source.kind === 'env') {
      const v = env[source.name]
      if (v === undefined || v.length === 0) {
        throw unresolved(`secret: ${describeSecretSource(source)} is not set`)
      }
      return v
    }
    let text: string
    try {
      const buf = await readFile(source.path)
      if (buf.length > MAX_SECRET_FILE_BYTES) {
        throw unresolved(
          `secret: ${describeSecretSource(source)} is larger than ${MAX_SECRET_FILE_BYTES} bytes`,
        )
      }
      text = buf.toString('utf8')
      buf.fill(0)
    } catch (err) {
      if (err instanceof EngineError) throw err
      // The cause's message may name the path; it never holds the file's content.
      const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : 'error'
      throw unresolved(`secret: ${describeSecretSource(source)} cannot be read (${code})`, err)
    }
    const nl = text.indexOf('\n')
    const line = (nl === -1 ? text : text.slice(0, nl)).replace(/\r$/, '')
    if (line.length === 0)
      throw unresolved(`secret: the first line of ${describeSecretSource(source)} is empty`)
    return line
  }
}
