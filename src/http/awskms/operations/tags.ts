/** AWS KMS tag operations: TagResource, UntagResource, ListResourceTags. */
import { invalidField } from '../../../core/errors.js'
import { keyIdOf, marker, markerOf, tagPairsOf, type Json, type OpContext } from '../operation.js'
import { intOf } from '../translate.js'

export async function tagResource(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  await c.engine.tagKey(c.instance, id, tagPairsOf(b['Tags']))
  return {}
}

export async function untagResource(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  const keys = b['TagKeys']
  if (!Array.isArray(keys)) throw invalidField('TagKeys', 'must be a list of strings')
  await c.engine.untagKey(c.instance, id, keys as string[])
  return {}
}

export async function listResourceTags(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  const limit = intOf(b['Limit'], 'Limit', 1, 50, 50)
  const after = markerOf(b['Marker'])
  const all = await c.engine.listKeyTags(c.instance, id)
  const rest = after === undefined ? all : all.filter((t) => t.key > after)
  const page = rest.slice(0, limit)
  const more = rest.length > limit
  const last = page.at(-1)
  return {
    Tags: page.map((t) => ({ TagKey: t.key, TagValue: t.value })),
    Truncated: more,
    ...(more && last !== undefined ? { NextMarker: marker(last.key) } : {}),
  }
}
