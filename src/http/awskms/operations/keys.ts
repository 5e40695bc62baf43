/** AWS KMS key operations: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey, ScheduleKeyDeletion, CancelKeyDeletion. */
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
import { intOf, keyArn, keyMetadata, seconds } from '../translate.js'

export async function createKey(c: OpContext, b: Json): Promise<Json> {
  onlyValue(b['KeyUsage'], ['ENCRYPT_DECRYPT'], 'KeyUsage')
  onlyValue(b['KeySpec'], ['SYMMETRIC_DEFAULT'], 'KeySpec')
  onlyValue(b['CustomerMasterKeySpec'], ['SYMMETRIC_DEFAULT'], 'CustomerMasterKeySpec')
  onlyValue(b['Origin'], ['AWS_KMS'], 'Origin')
  if (b['MultiRegion'] === true)
    throw new AwsError(
      'UnsupportedOperationException',
      'MultiRegion keys are not supported; endpoints sharing one engine serve every key in their regions',
    )
  if (b['Policy'] !== undefined)
    throw new AwsError(
      'UnsupportedOperationException',
      'key policies are not supported; access is per access key and tenant',
    )
  const tags = tagPairsOf(b['Tags'])
  const description = b['Description']
  if (description !== undefined && typeof description !== 'string')
    throw invalidField('Description', 'must be a string')
  const k = await c.engine.createKey(c.instance, {
    name: 'aws-kms-key',
    ...(description === undefined || description === '' ? {} : { description }),
  })
  if (tags.length > 0) await c.engine.tagKey(c.instance, k.id, tags)
  return { KeyMetadata: keyMetadata(c, k, undefined) }
}

export async function describeKey(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  const k = await c.engine.getKey(c.instance, id)
  if (k.extractable) throw new EngineError('KEY_NOT_FOUND_ERR', 'Key does not exist')
  return { KeyMetadata: keyMetadata(c, k, await c.engine.getKeyDeletionDate(c.instance, id)) }
}

export async function listKeys(c: OpContext, b: Json): Promise<Json> {
  const limit = intOf(b['Limit'], 'Limit', 1, 1000, 100)
  const offset = Number(markerOf(b['Marker']) ?? '0')
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw invalidField('Marker', 'is not a marker this endpoint issued')
  const { keys, total } = await c.engine.listKeys(c.instance, {
    limit,
    offset,
    extractable: false,
    states: [0, 1, 2, 3],
  })
  const next = offset + keys.length
  return {
    Keys: keys.map((k) => ({ KeyId: k.id, KeyArn: keyArn(c, k.id) })),
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
