/**
 * Reading keys: one key, a page of keys (with Key Protect's search, filter and sort — the query language is
 * in query-language.ts), and a root key's versions.
 */
import { assertAllowed, type EngineContext } from '../context.js'
import { EngineError, invalidField } from '../errors.js'
import type { KeyStateValue } from '../key-state.js'
import {
  optionsObject,
  validateInstance,
  validateKeyRingId,
  validatePaging,
  validateStates,
} from '../validate.js'
import type {
  KeyInfo,
  KeyScope,
  KeyVersionInfo,
  ListKeysOptions,
  ListVersionsOptions,
} from '../engine-types.js'
import {
  lookupTarget,
  matchesSearch,
  parseFilter,
  parseSearch,
  parseSort,
  type KeyFilter,
  type KeySearch,
} from './query-language.js'
import { toKeyInfo, versionInfo } from './views.js'

const KEY_STATES_ALL: readonly KeyStateValue[] = [0, 1, 2, 3, 5]

/** A key's metadata in any state, including deleted. */
export async function getKey(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  scope: KeyScope,
): Promise<KeyInfo> {
  const k = await ctx.keys.resolve(instance, idOrAlias, true, optionsObject(scope).keyRingId)
  return toKeyInfo(k, ctx.life, ctx.clock.now())
}

/** A page of an instance's keys, in creation order unless `sort` says otherwise. */
export async function listKeys(
  ctx: EngineContext,
  instance: string,
  options: ListKeysOptions,
): Promise<{ keys: KeyInfo[]; total: number; incompleteSearch?: boolean }> {
  validateInstance(instance)
  options = optionsObject(options)
  const { limit, offset } = validatePaging(options.limit, options.offset)
  const search = optionalString(options.search, 'search', parseSearch)
  const filter = optionalString(options.filter, 'filter', parseFilter)
  const sort = optionalString(options.sort, 'sort', parseSort)
  if (filter?.hasState === true && options.states !== undefined) {
    throw invalidField('state', 'give state either as a parameter or inside filter, not both')
  }
  if (filter?.hasExtractable === true && options.extractable !== undefined) {
    throw invalidField('extractable', 'give extractable either as a parameter or inside filter, not both')
  }
  const states = filter?.hasState === true ? [...KEY_STATES_ALL] : validateStates(options.states)
  if (options.extractable !== undefined && typeof options.extractable !== 'boolean') {
    throw invalidField('extractable', 'must be a boolean')
  }
  const keyRingId = options.keyRingId === undefined ? undefined : validateKeyRingId(options.keyRingId)
  const base = { states, extractable: options.extractable, keyRingId }
  if (search === undefined && filter === undefined && sort === undefined) {
    const { keys, total } = await ctx.store.listKeys(instance, { ...base, limit, offset })
    const out: KeyInfo[] = []
    for (const r of keys)
      out.push(toKeyInfo(await ctx.keys.load(instance, r.id, true), ctx.life, ctx.clock.now()))
    return { keys: out, total }
  }
  return queryKeys(ctx, instance, base, { search, filter, sort }, limit, offset)
}

async function queryKeys(
  ctx: EngineContext,
  instance: string,
  base: { states: KeyStateValue[]; extractable: boolean | undefined; keyRingId: string | undefined },
  q: {
    search: KeySearch | undefined
    filter: KeyFilter | undefined
    sort: ((a: KeyInfo, b: KeyInfo) => number) | undefined
  },
  limit: number,
  offset: number,
): Promise<{ keys: KeyInfo[]; total: number; incompleteSearch?: boolean }> {
  const max = ctx.life.maxSearchSpace
  const info = async (id: string): Promise<KeyInfo> =>
    toKeyInfo(await ctx.keys.load(instance, id, true), ctx.life, ctx.clock.now())
  const { keys: rows } = await ctx.store.listKeys(instance, { ...base, limit: max + 1, offset: 0 })
  const target = q.search === undefined ? undefined : lookupTarget(q.search)
  let first: KeyInfo | undefined
  if (target !== undefined) {
    const id = target.kind === 'id' ? target.value : await ctx.store.getKeyIdByAlias(instance, target.value)
    const r = id === undefined ? undefined : await ctx.store.getKey(instance, id)
    if (r !== undefined && !r.internal) {
      const k = await info(r.id)
      const inScope =
        base.states.includes(k.state) &&
        (base.extractable === undefined || base.extractable === k.extractable) &&
        (base.keyRingId === undefined || base.keyRingId === k.keyRingId) &&
        (q.filter === undefined || q.filter.predicates.every((f) => f(k)))
      if (inScope) first = k
    }
  }
  if (rows.length > max) {
    if (first !== undefined) return { keys: [first], total: 1, incompleteSearch: true }
    throw new EngineError(
      'KEY_SEARCH_TOO_BROAD',
      `search: more than ${max} keys to look at; narrow it with state, extractable or a key ring`,
      { target: { type: 'param', name: q.search !== undefined ? 'search' : 'filter' } },
    )
  }
  let infos: KeyInfo[] = []
  for (const r of rows) infos.push(await info(r.id))
  if (q.filter !== undefined) {
    const preds = q.filter.predicates
    infos = infos.filter((k) => base.states.includes(k.state) && preds.every((f) => f(k)))
  }
  if (q.search !== undefined) {
    const s = q.search
    infos = infos.filter((k) => matchesSearch(k, s))
  }
  if (q.sort !== undefined) infos.sort(q.sort)
  if (first !== undefined) {
    const id = first.id
    infos = [first, ...infos.filter((k) => k.id !== id)]
  }
  return { keys: infos.slice(offset, offset + limit), total: infos.length }
}

/** A root key's versions, oldest first. */
export async function listKeyVersions(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  options: ListVersionsOptions,
): Promise<{ versions: KeyVersionInfo[]; total: number }> {
  options = optionsObject(options)
  const { limit, offset } = validatePaging(options.limit, options.offset)
  const k = await ctx.keys.resolve(instance, idOrAlias, true, options.keyRingId)
  if (k.record.extractable)
    throw new EngineError('KEY_ROOT_REQ_ERR', 'key: versions exist only for root keys')
  if (options.allKeyStates !== true) assertAllowed(ctx, 'listVersions', k.record)
  const all = [...k.versions.values()].sort((a, b) => a.version - b.version)
  return { versions: all.slice(offset, offset + limit).map(versionInfo), total: all.length }
}

function optionalString<T>(v: unknown, field: string, parse: (s: string) => T): T | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw invalidField(field, 'must be a string')
  return parse(v)
}
