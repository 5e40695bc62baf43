/**
 * Input validation for the public API. Every check throws INVALID_FIELD_ERR / MISSING_FIELD_ERR naming the
 * field at fault, so that no malformed input reaches a provider or the store.
 */
import { EngineError, invalidField } from './errors.js'
import { KEY_STATES, type KeyStateValue } from './key-state.js'

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const INSTANCE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/
const ALIAS_RE = /^[A-Za-z0-9_-]{2,90}$/
const KEY_RING_RE = /^[A-Za-z0-9-]{2,100}$/
const TAG_FORBIDDEN = /[<>,:&|]/
// Control characters (C0, DEL, C1) are refused in names and descriptions.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/

/** Key Protect reserves these alias names (spec digest §4.10). */
export const RESERVED_ALIASES: ReadonlySet<string> = new Set([
  'allowed_ip',
  'key',
  'keys',
  'metadata',
  'policy',
  'policies',
  'registration',
  'registrations',
  'ring',
  'rings',
  'rotate',
  'wrap',
  'unwrap',
  'rewrap',
  'version',
  'versions',
])

export function isUuid(s: string): boolean {
  return UUID_RE.test(s)
}

/** An instance (tenant) id: 1-128 characters `[A-Za-z0-9._:-]`, starting with a letter or digit. */
export function validateInstance(instance: unknown): string {
  if (typeof instance !== 'string' || !INSTANCE_RE.test(instance)) {
    throw new EngineError('INVALID_FIELD_ERR', 'instance: must be 1-128 characters [A-Za-z0-9._:-]', {
      target: { type: 'header', name: 'bluemix-instance' },
    })
  }
  return instance
}

/** A key reference: a UUID or an alias. */
export function validateKeyRef(ref: unknown): string {
  if (typeof ref !== 'string' || !(UUID_RE.test(ref) || ALIAS_RE.test(ref))) {
    throw new EngineError('INVALID_FIELD_ERR', 'id: must be a key UUID or an alias', {
      target: { type: 'path_param', name: 'id' },
    })
  }
  return ref
}

/** Alias rules (spec digest §4.10): 2-90 of `[A-Za-z0-9_-]`, not a UUID, not reserved. */
export function validateAlias(alias: unknown, field = 'alias'): string {
  if (typeof alias !== 'string' || !ALIAS_RE.test(alias)) {
    throw invalidField(field, 'must be 2-90 characters [A-Za-z0-9_-]')
  }
  if (UUID_RE.test(alias)) throw invalidField(field, 'must not be a UUID')
  if (RESERVED_ALIASES.has(alias.toLowerCase())) throw invalidField(field, `"${alias}" is a reserved name`)
  return alias
}

/** Key ring ids (spec digest §4.9): 2-100 of `[A-Za-z0-9-]`; `default` always exists. */
export function validateKeyRingId(id: unknown): string {
  if (typeof id !== 'string' || !KEY_RING_RE.test(id)) {
    throw invalidField('keyRingID', 'must be 2-100 characters [A-Za-z0-9-]')
  }
  return id
}

/** Key names: 2-90 printable characters (the spec leaves the rule open; see README). */
export function validateName(name: unknown): string {
  if (name === undefined)
    throw new EngineError('MISSING_FIELD_ERR', 'name: is required', {
      target: { type: 'field', name: 'name' },
    })
  if (
    typeof name !== 'string' ||
    name.length < 2 ||
    name.length > 90 ||
    CONTROL_RE.test(name) ||
    name.trim() !== name
  ) {
    throw invalidField('name', 'must be 2-90 printable characters without leading or trailing spaces')
  }
  return name
}

export function validateDescription(d: unknown): string | undefined {
  if (d === undefined) return undefined
  if (typeof d !== 'string' || d.length > 240 || CONTROL_RE.test(d)) {
    throw invalidField('description', 'must be at most 240 printable characters')
  }
  return d
}

export function validateTags(tags: unknown): string[] {
  if (tags === undefined) return []
  if (!Array.isArray(tags) || tags.length > 30)
    throw invalidField('tags', 'must be an array of at most 30 strings')
  for (const t of tags) {
    if (typeof t !== 'string' || t.length > 30 || TAG_FORBIDDEN.test(t) || CONTROL_RE.test(t)) {
      throw invalidField('tags', 'each tag must be 0-30 characters without < > , : & |')
    }
  }
  return tags as string[]
}

export function validateBytes(value: unknown, field: string, min: number, max: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalidField(field, 'must be bytes (Uint8Array or Buffer)')
  if (value.length < min || value.length > max) throw invalidField(field, `must be ${min}-${max} bytes`)
  return value
}

export function validatePaging(
  limit: unknown,
  offset: unknown,
  maxLimit = 5000,
): { limit: number; offset: number } {
  const l = limit ?? 200
  const o = offset ?? 0
  if (typeof l !== 'number' || !Number.isInteger(l) || l < 1 || l > maxLimit) {
    throw invalidField('limit', `must be an integer 1-${maxLimit}`)
  }
  if (typeof o !== 'number' || !Number.isInteger(o) || o < 0)
    throw invalidField('offset', 'must be an integer >= 0')
  return { limit: l, offset: o }
}

export function validateStates(states: unknown): KeyStateValue[] {
  if (states === undefined) return [0, 1, 2, 3]
  if (!Array.isArray(states) || states.length === 0)
    throw invalidField('state', 'must be a non-empty list of 0,1,2,3,5')
  for (const s of states) {
    if (!KEY_STATES.includes(s as KeyStateValue)) throw invalidField('state', 'must be a list of 0,1,2,3,5')
  }
  return [...new Set(states as KeyStateValue[])]
}

export function validateDate(value: unknown, field: string): number | undefined {
  if (value === undefined) return undefined
  if (!(value instanceof Date) || Number.isNaN(value.getTime()))
    throw invalidField(field, 'must be a valid Date')
  return value.getTime()
}

export function validateActor(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value.length === 0 || value.length > 256 || CONTROL_RE.test(value)) {
    throw invalidField(field, 'must be 1-256 printable characters')
  }
  return value
}

/**
 * The options argument of a public method: undefined and null mean "no options"; anything else that is not
 * an object is refused.
 */
export function optionsObject<T extends object>(o: T | undefined | null): T {
  if (o === undefined || o === null) return {} as T
  if (typeof o !== 'object') throw invalidField('options', 'must be an object')
  return o
}
