/** AWS KMS alias operations (AWS alias names, `alias/...`): CreateAlias, DeleteAlias, ListAliases. */
import { invalidField } from '../../../core/errors.js'
import { keyIdOf, marker, markerOf, saw, type Json, type OpContext } from '../operation.js'
import { present } from '../regions.js'
import { aliasArn, awsKeyId, intOf, parseKeyRef, seconds, validateAliasName } from '../translate.js'

export async function createAlias(c: OpContext, b: Json): Promise<Json> {
  const name = validateAliasName(b['AliasName'])
  const target = parseKeyRef(c, b['TargetKeyId'], 'TargetKeyId')
  if (!('id' in target)) throw invalidField('TargetKeyId', 'must be a key id or key ARN, not an alias')
  await present(c, saw(c, target.id), 'kms:CreateAlias')
  await c.engine.createAliasName(c.instance, name, target.id)
  return {}
}

export async function deleteAlias(c: OpContext, b: Json): Promise<Json> {
  await c.engine.deleteAliasName(c.instance, validateAliasName(b['AliasName']))
  return {}
}

export async function listAliases(c: OpContext, b: Json): Promise<Json> {
  const limit = intOf(b['Limit'], 'Limit', 1, 100, 50)
  const keyId = b['KeyId'] === undefined ? undefined : await keyIdOf(c, b['KeyId'], 'KeyId', null)
  const after = markerOf(b['Marker'])
  const { aliases, more } = await c.engine.listAliasNames(c.instance, {
    limit,
    ...(keyId === undefined ? {} : { keyId }),
    ...(after === undefined ? {} : { after }),
  })
  const last = aliases.at(-1)
  for (const r of await c.keyRegions.listInstanceKeyRegions(c.instance))
    if (r.multiRegion) c.multiRegionKeys.add(r.keyId)
  return {
    Aliases: aliases.map((a) => ({
      AliasName: a.name,
      AliasArn: aliasArn(c, a.name),
      TargetKeyId: awsKeyId(c, a.keyId),
      CreationDate: seconds(a.createdAt),
      LastUpdatedDate: seconds(a.updatedAt),
    })),
    Truncated: more,
    ...(more && last !== undefined ? { NextMarker: marker(last.name) } : {}),
  }
}
