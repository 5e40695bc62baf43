/**
 * AWS KMS multi-region operations: ReplicateKey. A replica is a record of the primary's engine key in
 * another served region (regions.ts): the same key material in the HSM, so that a ciphertext of one region
 * decrypts in the other. Its description and key policy are its own; tags, key state and rotation are the
 * engine key's, shared with the primary (docs/aws-kms.md).
 */
import { invalidField } from '../../../core/errors.js'
import { AwsError, keyIdOf, tagPairsOf, type Json, type OpContext } from '../operation.js'
import { defaultKeyPolicy, policyOf } from '../policy.js'
import { placementOf } from '../regions.js'
import { keyArn, keyMetadata } from '../translate.js'

export async function replicateKey(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  const p = await placementOf(c, id)
  if (!p.multiRegion)
    throw new AwsError('UnsupportedOperationException', `${keyArn(c, id)} is not a multi-Region key.`)
  if (p.primaryRegion !== c.region)
    throw new AwsError(
      'UnsupportedOperationException',
      `${keyArn(c, id)} is not a multi-Region primary key; replicate the primary in ${p.primaryRegion}.`,
    )
  const region = b['ReplicaRegion']
  if (typeof region !== 'string' || !/^[a-z0-9-]{1,32}$/.test(region))
    throw invalidField('ReplicaRegion', 'must be a region name')
  if (!c.regions.includes(region))
    throw new AwsError(
      'UnsupportedOperationException',
      `ReplicaRegion ${region} is not a region this endpoint serves (${c.regions.join(', ')}).`,
    )
  if (p.regions.includes(region))
    throw new AwsError('AlreadyExistsException', `${keyArn(c, id)} already has a key in ${region}.`)
  const policy = policyOf(b, region)
  const description = b['Description']
  if (description !== undefined && description !== null && typeof description !== 'string')
    throw invalidField('Description', 'must be a string')
  const tags = tagPairsOf(b['Tags'])
  const now = Date.now()
  const inserted = await c.keyRegions.insertKeyRegion({
    instance: c.instance,
    keyId: id,
    region,
    primaryRegion: p.primaryRegion,
    multiRegion: true,
    description: typeof description === 'string' ? description : '',
    policy,
    createdAt: now,
    updatedAt: now,
  })
  if (!inserted)
    throw new AwsError('AlreadyExistsException', `${keyArn(c, id)} already has a key in ${region}.`)
  if (tags.length > 0) await c.engine.tagKey(c.instance, id, tags)
  const there = { ...c, region }
  const replica = await placementOf(there, id)
  const k = await c.engine.getKey(c.instance, id)
  return {
    ReplicaKeyMetadata: keyMetadata(
      there,
      k,
      await c.engine.getKeyDeletionDate(c.instance, id),
      replica,
      replica.record?.description,
    ),
    ReplicaPolicy: policy ?? defaultKeyPolicy(c.accountId),
    ReplicaTags: tags.map((t) => ({ TagKey: t.key, TagValue: t.value })),
  }
}
