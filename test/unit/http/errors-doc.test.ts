/**
 * docs/errors.md against the code: every `ErrorCode` has exactly one row in the table of codes, with a
 * meaning, the retryable mark of `EngineError`, and the Key Protect (`ENGINE_TO_WIRE`) and AWS
 * (`AWS_KMS_ERRORS`) mappings of src/http/errors.ts — so that a new code, or a changed mapping, cannot go
 * undocumented.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { EngineError, ERROR_CODES, type ErrorCode } from '../../../src/core/errors.js'
import { AWS_KMS_ERRORS, ENGINE_TO_WIRE } from '../../../src/http/errors.js'

interface Row {
  readonly code: string
  readonly when: string
  readonly retryable: string
  readonly keyProtect: string
  readonly aws: string
}

/** The rows of the table under `## Codes, with their HTTP mapping`. */
function codeRows(markdown: string): Row[] {
  const start = markdown.indexOf('## Codes, with their HTTP mapping')
  if (start < 0) throw new Error('docs/errors.md: no "Codes, with their HTTP mapping" section')
  const end = markdown.indexOf('\n## ', start + 1)
  const section = markdown.slice(start, end < 0 ? undefined : end)
  const rows: Row[] = []
  for (const line of section.split('\n')) {
    const m = /^\| `([A-Z0-9_]+)` +\|(.*)\|$/.exec(line)
    if (m === null) continue
    const cells = (m[2] ?? '').split('|').map((c) => c.trim())
    expect(cells, line).toHaveLength(4)
    const [when = '', retryable = '', keyProtect = '', aws = ''] = cells
    rows.push({ code: m[1] ?? '', when, retryable, keyProtect, aws })
  }
  return rows
}

const keyProtectCell = (c: ErrorCode): string => {
  const w = ENGINE_TO_WIRE[c]
  return w.code === c ? String(w.status) : `${w.status} \`${w.code}\``
}
const awsCell = (c: ErrorCode): string => `${AWS_KMS_ERRORS[c].status} \`${AWS_KMS_ERRORS[c].type}\``

describe('docs/errors.md', () => {
  const rows = codeRows(readFileSync('docs/errors.md', 'utf8'))

  it('has exactly one row per ErrorCode, and none for a code that does not exist', () => {
    const documented = rows.map((r) => r.code)
    const missing = ERROR_CODES.filter((c) => !documented.includes(c))
    expect(missing, 'codes without a row in docs/errors.md').toEqual([])
    const unknown = documented.filter((c) => !(ERROR_CODES as readonly string[]).includes(c))
    expect(unknown, 'rows for codes ERROR_CODES does not have').toEqual([])
    const twice = documented.filter((c, i) => documented.indexOf(c) !== i)
    expect(twice, 'codes with two rows').toEqual([])
  })

  it('each row says when, and has the retryable mark and the Key Protect and AWS mappings of the code', () => {
    for (const r of rows) {
      const c = r.code as ErrorCode
      expect(r.when.length, `${c}: when`).toBeGreaterThan(10)
      expect(r.retryable, `${c}: retryable`).toBe(new EngineError(c, 'x').retryable ? 'yes' : '')
      expect(r.keyProtect, `${c}: Key Protect status (wire code)`).toBe(keyProtectCell(c))
      expect(r.aws, `${c}: AWS status and type`).toBe(awsCell(c))
    }
  })

  it('the parser sees a removed row (the check cannot pass vacuously)', () => {
    const doc = readFileSync('docs/errors.md', 'utf8')
    const without = doc
      .split('\n')
      .filter((l) => !l.startsWith('| `LINKED_KEY_NOT_FOUND`'))
      .join('\n')
    expect(codeRows(doc).map((r) => r.code)).toContain('LINKED_KEY_NOT_FOUND')
    expect(codeRows(without).map((r) => r.code)).not.toContain('LINKED_KEY_NOT_FOUND')
    expect(codeRows(without)).toHaveLength(ERROR_CODES.length - 1)
  })
})
