/** AWS KMS key operations: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey, ScheduleKeyDeletion, CancelKeyDeletion (per region: regions.ts). */
import { EngineError, invalidField } from '../../../core/errors.js'
import {
  AwsError,
  keyIdOf,
  marker,
  markerOf,
  onlyValue,
  tagPairsOf,
  type Json,
  type OpContext,
} from '../operation.js'
import { policyOf } from '../policy.js'
import { defaultRegionOf, placementOf } from '../regions.js'
import { awsKeyId, intOf, keyArn, keyMetadata, seconds } from '../translate.js'

export async function createKey(c: OpContext, b: Json): Promise<Json> {
  onlyValue(b['KeyUsage'], ['ENCRYPT_DECRYPT'], 'KeyUsage')
  onlyValue(b['KeySpec'], ['SYMMETRIC_DEFAULT'], 'KeySpec')
  onlyValue(b['CustomerMasterKeySpec'], ['SYMMETRIC_DEFAULT'], 'CustomerMasterKeySpec')
  onlyValue(b['Origin'], ['AWS_KMS'], 'Origin')
  const multi = b['MultiRegion']
  if (multi !== undefined && multi !== null && typeof multi !== 'boolean')
    throw invalidField('MultiRegion', 'must be a boolean')
  const multiRegion = multi === true
  const policy = policyOf(b, c.region)
  const tags = tagPairsOf(b['Tags'])
  const description = b['Description']
  if (description !== undefined && typeof description !== 'string')
    throw invalidField('Description', 'must be a string')
  const k = await c.engine.createKey(c.instance, {
    name: 'aws-kms-key',
    ...(description === undefined || description === '' ? {} : { description }),
  })
  if (tags.length > 0) await c.engine.tagKey(c.instance, k.id, tags)
  const now = Date.now()
  await c.keyRegions.insertKeyRegion({
    instance: c.instance,
    keyId: k.id,
    region: c.region,
    primaryRegion: c.region,
    multiRegion,
    description: undefined,
    policy,
    createdAt: now,
    updatedAt: now,
  })
  return {
    KeyMetadata: keyMetadata(
      c,
      k,
      undefined,
      multiRegion ? { primaryRegion: c.region, replicaRegions: [] } : undefined,
    ),
  }
}

export async function describeKey(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  const k = await c.engine.getKey(c.instance, id)
  if (k.extractable) throw new EngineError('KEY_NOT_FOUND_ERR', 'Key does not exist')
  const p = await placementOf(c, id)
  return {
    KeyMetadata: keyMetadata(
      c,
      k,
      await c.engine.getKeyDeletionDate(c.instance, id),
      p.multiRegion ? p : undefined,
      p.record?.description,
    ),
  }
}

/** ListKeys in the request's region: the keys present there (see regions.ts). */
export async function listKeys(c: OpContext, b: Json): Promise<Json> {
  const limit = intOf(b['Limit'], 'Limit', 1, 1000, 100)
  const offset = Number(markerOf(b['Marker']) ?? '0')
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw invalidField('Marker', 'is not a marker this endpoint issued')
  // Where the placed keys are (an instance has few: those created or placed through this endpoint).
  const where = new Map<string, Set<string>>()
  for (const r of await c.keyRegions.listInstanceKeyRegions(c.instance)) {
    if (r.multiRegion) c.multiRegionKeys.add(r.keyId)
    if (!c.regions.includes(r.region)) continue
    const set = where.get(r.keyId) ?? new Set<string>()
    set.add(r.region)
    where.set(r.keyId, set)
  }
  let ids: string[]
  let next: number
  let total: number
  if (c.region === defaultRegionOf(c)) {
    // Every key of the tenant, less those placed only in other regions (a page may come out short).
    const page = await c.engine.listKeys(c.instance, {
      limit,
      offset,
      extractable: false,
      states: [0, 1, 2, 3],
    })
    ids = page.keys.map((k) => k.id).filter((id) => where.get(id)?.has(c.region) ?? true)
    next = offset + page.keys.length
    total = page.total
  } else {
    const here = [...where].filter(([, regions]) => regions.has(c.region)).map(([id]) => id)
    const live: string[] = []
    for (const id of here.slice(offset, offset + limit)) {
      const k = await c.engine.getKey(c.instance, id).catch(() => undefined)
      if (k !== undefined && !k.extractable && k.state !== 5) live.push(id)
    }
    ids = live
    next = Math.min(here.length, offset + limit)
    total = here.length
  }
  return {
    Keys: ids.map((id) => ({ KeyId: awsKeyId(c, id), KeyArn: keyArn(c, id) })),
    Truncated: next < total,
    ...(next < total ? { NextMarker: marker(String(next)) } : {}),
  }
}

export async function enableKey(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  // AWS KMS EnableKey has no cool-down after DisableKey (Key Protect's 30 s rule is for its own API).
  if ((await c.engine.getKey(c.instance, id)).state !== 1)
    await c.engine.enable(c.instance, id, { cooldown: false })
  return {}
}

export async function disableKey(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  if ((await c.engine.getKey(c.instance, id)).state !== 2) await c.engine.disable(c.instance, id)
  return {}
}

export async function scheduleKeyDeletion(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  const p = await placementOf(c, id)
  if (p.multiRegion && p.regions.length > 1)
    throw new AwsError(
      'UnsupportedOperationException',
      `${keyArn(c, id)} is a multi-Region key with ${p.regions.length} regions: its primary and replicas share one key in this endpoint, which deletes it only when one region is left`,
    )
  const days = intOf(b['PendingWindowInDays'], 'PendingWindowInDays', 7, 30, 30)
  const { deletionDate } = await c.engine.scheduleKeyDeletion(c.instance, id, { pendingWindowDays: days })
  return {
    KeyId: keyArn(c, id),
    DeletionDate: seconds(deletionDate),
    KeyState: 'PendingDeletion',
    PendingWindowInDays: days,
  }
}

export async function cancelKeyDeletion(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  await c.engine.cancelKeyDeletion(c.instance, id)
  return { KeyId: keyArn(c, id) }
}
