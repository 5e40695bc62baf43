/**
 * AWS KMS key-policy operations: PutKeyPolicy, GetKeyPolicy, ListKeyPolicies. One policy (`default`) per
 * key and region, kept in the key's region record; the subset evaluated is in policy.ts.
 */
import { invalidField } from '../../../core/errors.js'
import { keyIdOf, type Json, type OpContext } from '../operation.js'
import { defaultKeyPolicy, policyOf } from '../policy.js'
import { placementOf } from '../regions.js'

/** The one policy name AWS KMS knows. */
const POLICY_NAME = 'default'

function policyName(v: unknown): void {
  if (v !== undefined && v !== null && v !== POLICY_NAME)
    throw invalidField('PolicyName', "must be 'default'")
}

export async function putKeyPolicy(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  policyName(b['PolicyName'])
  const policy = policyOf(b, c.region)
  if (policy === undefined) throw invalidField('Policy', 'is required')
  const p = await placementOf(c, id)
  const now = Date.now()
  if (await c.keyRegions.setKeyRegionPolicy(c.instance, id, c.region, policy, now)) return {}
  // A key without a record here (created before regions, or through Key Protect): give it one.
  const inserted = await c.keyRegions.insertKeyRegion({
    instance: c.instance,
    keyId: id,
    region: c.region,
    primaryRegion: p.primaryRegion,
    multiRegion: p.multiRegion,
    description: undefined,
    policy,
    createdAt: now,
    updatedAt: now,
  })
  if (!inserted) await c.keyRegions.setKeyRegionPolicy(c.instance, id, c.region, policy, now)
  return {}
}

export async function getKeyPolicy(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  policyName(b['PolicyName'])
  const p = await placementOf(c, id)
  return { Policy: p.record?.policy ?? defaultKeyPolicy(c.accountId), PolicyName: POLICY_NAME }
}

export async function listKeyPolicies(c: OpContext, b: Json): Promise<Json> {
  await keyIdOf(c, b['KeyId'])
  return { PolicyNames: [POLICY_NAME], Truncated: false }
}
