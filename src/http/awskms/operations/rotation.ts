/** AWS KMS rotation operations: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand. */
import { keyIdOf, stateError, type Json, type OpContext } from '../operation.js'
import { intOf, keyArn, monthsOfDays } from '../translate.js'

export async function enableKeyRotation(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  const days = intOf(b['RotationPeriodInDays'], 'RotationPeriodInDays', 90, 2560, 365)
  await c.engine.setKeyPolicies(c.instance, id, {
    rotation: { enabled: true, intervalMonth: monthsOfDays(days) },
  })
  return {}
}

export async function disableKeyRotation(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  await c.engine.setKeyPolicies(c.instance, id, { rotation: { enabled: false } })
  return {}
}

export async function getKeyRotationStatus(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  const k = await c.engine.getKey(c.instance, id)
  const r = k.rotation
  const enabled = r?.enabled === true
  const months = r?.intervalMonth
  const from = (k.lastRotatedAt ?? k.createdAt).getTime()
  return {
    KeyId: keyArn(c, id),
    KeyRotationEnabled: enabled,
    ...(enabled && months !== undefined
      ? { RotationPeriodInDays: months * 30, NextRotationDate: (from + months * 30 * 86_400_000) / 1000 }
      : {}),
  }
}

export async function rotateKeyOnDemand(c: OpContext, b: Json): Promise<Json> {
  const id = await keyIdOf(c, b['KeyId'])
  try {
    await c.engine.rotate(c.instance, id)
  } catch (err) {
    return await stateError(c, id, err)
  }
  return { KeyId: keyArn(c, id) }
}
