/**
 * Key Protect's key-list query language: `search`, `filter` and `sort` (spec digest §4.11), parsed into
 * plain predicates and comparators over {@link KeyQueryItem}. Core owns it so that the HTTP layer and
 * in-process callers list keys the same way.
 */
import { invalidField } from '../errors.js'
import { KEY_STATES, type KeyStateValue } from '../key-state.js'

/** The fields of a key the query language looks at. */
export interface KeyQueryItem {
  readonly id: string
  readonly name: string
  readonly aliases: readonly string[]
  readonly state: KeyStateValue
  readonly extractable: boolean
  readonly imported: boolean
  readonly createdAt: Date
  readonly updatedAt: Date
  readonly lastRotatedAt: Date | undefined
  readonly deletedAt: Date | undefined
  readonly expirationDate: Date | undefined
}

/** A parsed `search`. */
export interface KeySearch {
  readonly term: string
  readonly not: boolean
  readonly exact: boolean
  readonly scopes: readonly ('name' | 'alias')[]
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

/**
 * Parses `[not:][exact:][alias:|name:]…[escape:]term`. Tolerates one trailing comma (the Go client adds it).
 * @throws EngineError INVALID_FIELD_ERR (target `search`)
 */
export function parseSearch(raw: string): KeySearch {
  if (raw.length > 256) throw invalidField('search', 'must be at most 256 characters')
  let rest = raw.endsWith(',') ? raw.slice(0, -1) : raw
  let not = false
  let exact = false
  const scopes = new Set<'name' | 'alias'>()
  for (;;) {
    const m = /^(not|exact|escape|alias|name):/.exec(rest)
    if (m === null) break
    rest = rest.slice(m[0].length)
    const p = m[1]
    if (p === 'escape') break
    if (p === 'not') not = true
    else if (p === 'exact') exact = true
    else if (p === 'alias' || p === 'name') scopes.add(p)
  }
  if (rest.length === 0) throw invalidField('search', 'needs a search term after its prefixes')
  return { term: rest, not, exact, scopes: scopes.size === 0 ? ['name', 'alias'] : [...scopes] }
}

/** True when `k` matches `s` (case-insensitive; a full UUID term also matches the id). */
export function matchesSearch(k: KeyQueryItem, s: KeySearch): boolean {
  const term = s.term.toLowerCase()
  const test = (v: string): boolean => (s.exact ? v.toLowerCase() === term : v.toLowerCase().includes(term))
  let hit = UUID_RE.test(s.term) && k.id.toLowerCase() === term
  if (!hit && s.scopes.includes('name')) hit = test(k.name)
  if (!hit && s.scopes.includes('alias')) hit = k.aliases.some(test)
  return s.not ? !hit : hit
}

/**
 * The key a search identifies uniquely (a full key id, or an exact alias with the `alias:` scope):
 * Key Protect returns it first, and returns it alone when the search space is too large.
 */
export function lookupTarget(s: KeySearch): { kind: 'id' | 'alias'; value: string } | undefined {
  if (s.not) return undefined
  if (UUID_RE.test(s.term)) return { kind: 'id', value: s.term.toLowerCase() }
  if (s.scopes.length === 1 && s.scopes[0] === 'alias') return { kind: 'alias', value: s.term }
  return undefined
}

type DateField = 'createdAt' | 'updatedAt' | 'lastRotatedAt' | 'deletedAt' | 'expirationDate'

const DATE_PROPS: Readonly<Record<string, DateField>> = {
  creationDate: 'createdAt',
  lastUpdateDate: 'updatedAt',
  lastRotateDate: 'lastRotatedAt',
  deletionDate: 'deletedAt',
  expirationDate: 'expirationDate',
}

/** A parsed `filter`: every term must hold. */
export interface KeyFilter {
  readonly predicates: readonly ((k: KeyQueryItem) => boolean)[]
  /** The filter names `state` (then the standalone `state` parameter must be absent). */
  readonly hasState: boolean
  /** The filter names `extractable`. */
  readonly hasExtractable: boolean
}

const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/

/**
 * Parses space-separated `prop=value` terms (at most 3 per property; 512 characters in all).
 * @throws EngineError INVALID_FIELD_ERR (target `filter`)
 */
export function parseFilter(raw: string): KeyFilter {
  if (raw.length > 512) throw invalidField('filter', 'must be at most 512 characters')
  const terms = raw
    .trim()
    .split(/\s+/)
    .filter((t) => t.length > 0)
  if (terms.length === 0) throw invalidField('filter', 'needs at least one prop=value term')
  const perProp = new Map<string, number>()
  const predicates: ((k: KeyQueryItem) => boolean)[] = []
  for (const term of terms) {
    const eq = term.indexOf('=')
    if (eq <= 0) throw invalidField('filter', `"${term}" is not prop=value`)
    const prop = term.slice(0, eq)
    const value = term.slice(eq + 1)
    const n = (perProp.get(prop) ?? 0) + 1
    if (n > 3) throw invalidField('filter', `at most 3 terms per property (${prop})`)
    perProp.set(prop, n)
    const field = DATE_PROPS[prop]
    if (field !== undefined) {
      predicates.push(datePredicate(field, value, prop))
    } else if (prop === 'extractable') {
      const v = value.toLowerCase()
      if (v !== 'true' && v !== 'false') throw invalidField('filter', 'extractable must be true or false')
      const want = v === 'true'
      predicates.push((k) => k.extractable === want)
    } else if (prop === 'state') {
      const states = parseStateList(value, 'filter')
      predicates.push((k) => states.includes(k.state))
    } else {
      throw invalidField('filter', `unknown property "${prop}"`)
    }
  }
  return { predicates, hasState: perProp.has('state'), hasExtractable: perProp.has('extractable') }
}

function datePredicate(field: DateField, value: string, prop: string): (k: KeyQueryItem) => boolean {
  if (value.toLowerCase() === 'none') return (k) => k[field] === undefined
  const m = /^(?:(gt|gte|lt|lte):)?"([^"]*)"$/.exec(value)
  const iso = m?.[2]
  if (m === null || iso === undefined || !RFC3339_RE.test(iso) || Number.isNaN(Date.parse(iso))) {
    throw invalidField('filter', `${prop} takes none or [gt:|gte:|lt:|lte:]"<RFC 3339 date>"`)
  }
  const t = Date.parse(iso)
  const op = m[1] as 'gt' | 'gte' | 'lt' | 'lte' | undefined
  return (k) => {
    const d = k[field]
    if (d === undefined) return false
    const v = d.getTime()
    switch (op) {
      case 'gt':
        return v > t
      case 'gte':
        return v >= t
      case 'lt':
        return v < t
      case 'lte':
        return v <= t
      case undefined:
        return v === t
    }
  }
}

/**
 * Parses a comma list of key states with no spaces or trailing comma.
 * @throws EngineError INVALID_FIELD_ERR naming `field`
 */
export function parseStateList(raw: string, field: string): KeyStateValue[] {
  const parts = raw.split(',')
  const out: KeyStateValue[] = []
  for (const p of parts) {
    const n = /^\d$/.test(p) ? Number(p) : Number.NaN
    const s = KEY_STATES.find((x) => x === n)
    if (s === undefined) throw invalidField(field, 'must be a comma list of 0, 1, 2, 3, 5')
    if (!out.includes(s)) out.push(s)
  }
  return out
}

const SORT_FIELDS: Readonly<Record<string, keyof KeyQueryItem>> = {
  id: 'id',
  state: 'state',
  extractable: 'extractable',
  imported: 'imported',
  creationDate: 'createdAt',
  lastUpdateDate: 'updatedAt',
  lastRotateDate: 'lastRotatedAt',
  deletionDate: 'deletedAt',
  expirationDate: 'expirationDate',
}

/**
 * Parses `sort` (comma list, `-` for descending) into a comparator; ties fall back to id.
 * @throws EngineError INVALID_FIELD_ERR (target `sort`)
 */
export function parseSort(raw: string): (a: KeyQueryItem, b: KeyQueryItem) => number {
  if (raw.length > 256) throw invalidField('sort', 'must be at most 256 characters')
  const keys = raw.split(',').map((part) => {
    const desc = part.startsWith('-')
    const name = desc ? part.slice(1) : part
    const field = SORT_FIELDS[name]
    if (field === undefined) throw invalidField('sort', `cannot sort by "${name}"`)
    return { field, dir: desc ? -1 : 1 }
  })
  return (a, b) => {
    for (const { field, dir } of keys) {
      const c = compareValues(a[field], b[field])
      if (c !== 0) return c * dir
    }
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
  }
}

function compareValues(a: unknown, b: unknown): number {
  const norm = (v: unknown): number | string => {
    if (v === undefined) return Number.NEGATIVE_INFINITY
    if (v instanceof Date) return v.getTime()
    if (typeof v === 'boolean') return v ? 1 : 0
    if (typeof v === 'number' || typeof v === 'string') return v
    return Number.NaN
  }
  const x = norm(a)
  const y = norm(b)
  return x < y ? -1 : x > y ? 1 : 0
}
