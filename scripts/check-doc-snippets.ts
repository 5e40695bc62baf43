/**
 * Typechecks every ```ts / ```typescript block of README.md and docs/*.md.
 *
 *   npm run check:docs            (tsx scripts/check-doc-snippets.ts [--keep] [files...])
 *
 * Each block is written to its own module in a temporary folder and the whole set is compiled with the
 * project's compiler options (tsconfig.json: strict, noUncheckedIndexedAccess, exactOptionalPropertyTypes,
 * verbatimModuleSyntax, ...). `envelope-kms` and its subpath exports resolve to this repository's sources
 * through `paths`, so a snippet checks against the API as it is in this commit, without a build. Blocks are
 * ES modules: top-level await works, and names a block uses without defining them must be declared in it
 * (`declare const engine: EnvelopeEngine`). A block that is not meant to compile takes another fence
 * language (`bash`, `text`, `js`). Errors are reported against the Markdown file and line. `--keep` leaves
 * the temporary folder in place and prints its path.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** `envelope-kms` subpath → source entry point (package.json `exports`, mapped to src/ instead of dist/). */
const SUBPATHS: Readonly<Record<string, string>> = {
  'envelope-kms': 'src/index.ts',
  'envelope-kms/providers/pkcs11': 'src/providers/pkcs11/index.ts',
  'envelope-kms/store/sqlite': 'src/store/sqlite/index.ts',
  'envelope-kms/cache': 'src/cache/index.ts',
  'envelope-kms/pool': 'src/pool/index.ts',
  'envelope-kms/http': 'src/http/index.ts',
  'envelope-kms/providers/aws-kms': 'src/providers/aws-kms/index.ts',
  'envelope-kms/http/awskms': 'src/http/awskms/index.ts',
  'envelope-kms/providers/azure-kv': 'src/providers/azure-kv/index.ts',
}

interface Snippet {
  /** Markdown file, relative to the repository. */
  readonly source: string
  /** 1-based line of the block's first code line in the Markdown file. */
  readonly line: number
  readonly code: string
  /** Module file written for it. */
  file: string
}

/** The ```ts / ```typescript blocks of one Markdown file. */
function extractSnippets(source: string, text: string): Snippet[] {
  const lines = text.split('\n')
  const out: Snippet[] = []
  let open: { lang: string; start: number; body: string[]; fence: string } | undefined
  for (const [i, line] of lines.entries()) {
    if (open === undefined) {
      const m = /^(\s*)(`{3,}|~{3,})\s*([A-Za-z0-9_+-]*)/.exec(line)
      if (m !== null)
        open = { lang: (m[3] ?? '').toLowerCase(), start: i + 2, body: [], fence: m[2] ?? '```' }
      continue
    }
    if (line.trim().startsWith(open.fence) && line.trim().replaceAll(open.fence[0] ?? '`', '') === '') {
      if (open.lang === 'ts' || open.lang === 'typescript') {
        out.push({ source, line: open.start, code: open.body.join('\n'), file: '' })
      }
      open = undefined
      continue
    }
    open.body.push(line)
  }
  if (open !== undefined) throw new Error(`${source}:${open.start - 1}: code fence never closed`)
  return out
}

function markdownFiles(args: readonly string[]): string[] {
  if (args.length > 0) return args.map((a) => relative(root, resolve(a)))
  const docs = readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`)
  return ['README.md', ...docs]
}

function compilerOptions(): ts.CompilerOptions {
  const configPath = join(root, 'tsconfig.json')
  const read = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p))
  if (read.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'))
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, root)
  const paths: Record<string, string[]> = {}
  for (const [name, file] of Object.entries(SUBPATHS)) paths[name] = [join(root, file)]
  // No output: drop the emit-only settings (rootDir would also refuse files outside src/).
  const options = { ...parsed.options }
  delete options.rootDir
  delete options.outDir
  return {
    ...options,
    noEmit: true,
    declaration: false,
    declarationMap: false,
    sourceMap: false,
    typeRoots: [join(root, 'node_modules/@types')],
    paths,
  }
}

function main(argv: readonly string[]): number {
  const keep = argv.includes('--keep')
  const files = markdownFiles(argv.filter((a) => a !== '--keep'))
  const snippets = files.flatMap((f) => extractSnippets(f, readFileSync(join(root, f), 'utf8')))
  if (snippets.length === 0) {
    console.log('check:docs: no TypeScript blocks found')
    return 0
  }

  const dir = mkdtempSync(join(tmpdir(), 'ekms-doc-snippets-'))
  try {
    // Bare imports (node:*, @hono/node-server, ...) resolve through the project's own node_modules, and the
    // folder is an ES module package like the project, so top-level await is allowed.
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir')
    writeFileSync(join(dir, 'package.json'), '{ "type": "module", "private": true }\n')
    for (const [i, s] of snippets.entries()) {
      const name = `${s.source.replace(/[^A-Za-z0-9]+/g, '_')}_L${s.line}_${i}.ts`
      s.file = join(dir, name)
      // `export {}` keeps a block without imports a module (its own scope, top-level await).
      writeFileSync(s.file, `${s.code}\nexport {}\n`)
    }

    const program = ts.createProgram(
      snippets.map((s) => s.file),
      compilerOptions(),
    )
    const diagnostics = ts.getPreEmitDiagnostics(program)
    const byFile = new Map(snippets.map((s) => [s.file, s]))
    let errors = 0
    for (const d of diagnostics) {
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n  ')
      if (d.file === undefined) {
        console.error(`error TS${d.code}: ${text}`)
      } else {
        const { line, character } = d.file.getLineAndCharacterOfPosition(d.start ?? 0)
        const s = byFile.get(resolve(d.file.fileName))
        const where =
          s === undefined
            ? `${relative(root, d.file.fileName)}:${line + 1}:${character + 1}`
            : `${s.source}:${s.line + line}:${character + 1}`
        console.error(`${where} error TS${d.code}: ${text}`)
      }
      if (d.category === ts.DiagnosticCategory.Error) errors++
    }
    const summary = `${snippets.length} TypeScript blocks in ${files.length} files`
    if (errors > 0) {
      console.error(`check:docs: ${errors} error(s) in ${summary}`)
      return 1
    }
    console.log(`check:docs: ${summary} compile`)
    return 0
  } finally {
    if (keep) console.log(`check:docs: blocks kept in ${dir}`)
    else rmSync(dir, { recursive: true, force: true })
  }
}

process.exitCode = main(process.argv.slice(2))
