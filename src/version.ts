/** The package's name and version, read once from the package.json this file ships with (src/ and dist/ alike). */
import { readFileSync } from 'node:fs'

function read(): { readonly name: string; readonly version: string } {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    name?: unknown
    version?: unknown
  }
  return {
    name: typeof pkg.name === 'string' ? pkg.name : 'envelope-kms',
    version: typeof pkg.version === 'string' ? pkg.version : '0.0.0',
  }
}

/** `envelope-kms`'s package name and version. */
export const PACKAGE = read()
