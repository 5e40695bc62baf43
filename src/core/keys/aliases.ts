/**
 * Two alias namespaces, kept apart on purpose:
 * - Key Protect aliases: up to `maxAliasesPerKey` per key, fixed to their key, usable wherever a key id is
 *   (resolved by directory.ts). Added and removed here.
 * - Alias names (AWS KMS `alias/...`): path-like names, one key each, re-pointable to another key, resolved
 *   only through {@link resolveAliasName}. A name in one namespace never shadows the other.
 */
import { assertAllowed, storeCall, type EngineContext } from '../context.js'
import { EngineError, invalidField } from '../errors.js'
import { optionsObject, validateAlias, validateInstance } from '../validate.js'
import type { AddAliasOptions, AliasNameInfo, KeyAliasInfo, KeyScope } from '../engine-types.js'

// ---------------------------------------------------------------- Key Protect aliases

/** Adds a Key Protect alias to a key; `created` false when the key already had it (its stored record). */
export async function addAlias(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  alias: string,
  options: AddAliasOptions,
): Promise<KeyAliasInfo> {
  validateAlias(alias)
  const o = optionsObject(options)
  if (o.createdBy !== undefined && typeof o.createdBy !== 'string') {
    throw invalidField('createdBy', 'must be a string')
  }
  const k = await ctx.keys.resolve(instance, idOrAlias, true, o.keyRingId)
  assertAllowed(ctx, 'addAlias', k.record)
  const res = await storeCall(() =>
    ctx.store.addAlias(instance, k.record.id, alias, ctx.clock.now(), ctx.life.maxAliasesPerKey, o.createdBy),
  )
  ctx.keys.invalidate(instance, k.record.id)
  return {
    created: res.result === 'created',
    keyId: k.record.id,
    alias,
    createdAt: new Date(res.createdAt),
    createdBy: res.createdBy,
  }
}

/** Removes a Key Protect alias (the key stays). */
export async function removeAlias(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  alias: string,
  scope: KeyScope,
): Promise<void> {
  validateAlias(alias)
  const k = await ctx.keys.resolve(instance, idOrAlias, true, optionsObject(scope).keyRingId)
  const removed = await storeCall(() => ctx.store.removeAlias(instance, k.record.id, alias))
  ctx.keys.invalidate(instance, k.record.id)
  if (!removed) throw new EngineError('ALIAS_NOT_FOUND_ERR', `alias: "${alias}" does not exist on this key`)
}

// ---------------------------------------------------------------- alias names (AWS KMS)

const ALIAS_NAME_RE = /^[A-Za-z0-9/_-]{1,256}$/

/** An alias name: 1–256 characters `[A-Za-z0-9/_-]`. */
function validateAliasName(name: unknown, field = 'aliasName'): string {
  if (typeof name !== 'string' || !ALIAS_NAME_RE.test(name)) {
    throw invalidField(field, 'must be 1-256 characters [A-Za-z0-9/_-]')
  }
  return name
}

/** Creates an alias name for a key (any state but deleted). */
export async function createAliasName(
  ctx: EngineContext,
  instance: string,
  name: string,
  idOrAlias: string,
): Promise<void> {
  validateAliasName(name)
  const k = await ctx.keys.resolve(instance, idOrAlias, true)
  assertAllowed(ctx, 'aliasName', k.record)
  const ok = await storeCall(() => ctx.store.createAliasName(instance, name, k.record.id, ctx.clock.now()))
  if (!ok) throw new EngineError('KEY_ALIAS_NOT_UNIQUE_ERR', `alias: "${name}" already exists`)
}

/** Points an existing alias name at another key. */
export async function updateAliasName(
  ctx: EngineContext,
  instance: string,
  name: string,
  idOrAlias: string,
): Promise<void> {
  validateAliasName(name)
  const k = await ctx.keys.resolve(instance, idOrAlias, true)
  assertAllowed(ctx, 'aliasName', k.record)
  const ok = await storeCall(() => ctx.store.updateAliasName(instance, name, k.record.id, ctx.clock.now()))
  if (!ok) throw new EngineError('ALIAS_NOT_FOUND_ERR', `alias: "${name}" does not exist`)
}

export async function deleteAliasName(ctx: EngineContext, instance: string, name: string): Promise<void> {
  validateInstance(instance)
  validateAliasName(name)
  const ok = await storeCall(() => ctx.store.deleteAliasName(instance, name))
  if (!ok) throw new EngineError('ALIAS_NOT_FOUND_ERR', `alias: "${name}" does not exist`)
}

/** The key id an alias name points at. */
export async function resolveAliasName(ctx: EngineContext, instance: string, name: string): Promise<string> {
  validateInstance(instance)
  validateAliasName(name)
  const a = await ctx.store.getAliasName(instance, name)
  if (a === undefined) throw new EngineError('ALIAS_NOT_FOUND_ERR', `alias: "${name}" does not exist`)
  return a.keyId
}

/** Alias names of the instance (or of one key) in name order, `limit` (1–1000) after the name `after`. */
export async function listAliasNames(
  ctx: EngineContext,
  instance: string,
  options: { keyId?: string; after?: string; limit?: number },
): Promise<{ aliases: AliasNameInfo[]; more: boolean }> {
  validateInstance(instance)
  options = optionsObject(options)
  const limit = options.limit ?? 100
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw invalidField('limit', 'must be an integer 1-1000')
  }
  if (options.after !== undefined) validateAliasName(options.after, 'after')
  const keyId =
    options.keyId === undefined
      ? undefined
      : (await ctx.keys.resolve(instance, options.keyId, true)).record.id
  const rows = await ctx.store.listAliasNames(instance, { keyId, after: options.after, limit: limit + 1 })
  return {
    aliases: rows.slice(0, limit).map((r) => ({
      name: r.name,
      keyId: r.keyId,
      createdAt: new Date(r.createdAt),
      updatedAt: new Date(r.updatedAt),
    })),
    more: rows.length > limit,
  }
}
