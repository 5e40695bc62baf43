/**
 * Key/value tags (AWS KMS `TagKey`/`TagValue`): at most 50 per key, separate from Key Protect's string
 * `tags`, which are part of the key record.
 */
import { assertAllowed, storeCall, type EngineContext } from '../context.js'
import { invalidField } from '../errors.js'
import type { TagPair } from '../ports.js'

/** Key/value tags per key (AWS KMS: 50). */
const MAX_TAG_PAIRS = 50
const TAG_CONTROL_RE = /[\u0000-\u001f\u007f]/

/** Adds or replaces tags of a key (any state but deleted). */
export async function tagKey(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  tags: readonly TagPair[],
): Promise<void> {
  const pairs = validateTagPairs(tags)
  const k = await ctx.keys.resolve(instance, idOrAlias, true)
  assertAllowed(ctx, 'tag', k.record)
  await storeCall(() => ctx.store.putTagPairs(instance, k.record.id, pairs, MAX_TAG_PAIRS))
}

/** Removes tags by key (absent ones are ignored). */
export async function untagKey(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  keys: readonly string[],
): Promise<void> {
  if (!Array.isArray(keys) || keys.some((t) => typeof t !== 'string' || t.length < 1 || t.length > 128)) {
    throw invalidField('tagKeys', 'must be an array of 1-128 character strings')
  }
  const k = await ctx.keys.resolve(instance, idOrAlias, true)
  assertAllowed(ctx, 'untag', k.record)
  await storeCall(() => ctx.store.removeTagPairs(instance, k.record.id, keys))
}

/** A key's tags in key order. */
export async function listKeyTags(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
): Promise<TagPair[]> {
  const k = await ctx.keys.resolve(instance, idOrAlias, true)
  return ctx.store.listTagPairs(instance, k.record.id)
}

/** Key/value tags: keys 1–128, values 0–256 printable characters, keys unique, at most 50. */
function validateTagPairs(tags: unknown): TagPair[] {
  if (!Array.isArray(tags) || tags.length > MAX_TAG_PAIRS) {
    throw invalidField('tags', `must be an array of at most ${MAX_TAG_PAIRS} {key, value}`)
  }
  const seen = new Set<string>()
  return tags.map((t: unknown) => {
    const o = t as { key?: unknown; value?: unknown } | null
    if (typeof o !== 'object' || o === null || typeof o.key !== 'string' || typeof o.value !== 'string') {
      throw invalidField('tags', 'each tag must be {key: string, value: string}')
    }
    if (o.key.length < 1 || o.key.length > 128 || TAG_CONTROL_RE.test(o.key)) {
      throw invalidField('tags', 'a tag key must be 1-128 printable characters')
    }
    if (o.value.length > 256 || TAG_CONTROL_RE.test(o.value)) {
      throw invalidField('tags', 'a tag value must be at most 256 printable characters')
    }
    if (seen.has(o.key)) throw invalidField('tags', `key "${o.key}" repeats`)
    seen.add(o.key)
    return { key: o.key, value: o.value }
  })
}
