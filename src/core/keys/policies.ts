/**
 * Key-level policies of root keys (Key Protect `rotation` and `dualAuthDelete`). The rotation policy is
 * acted on by jobs/rotation.ts; dualAuthDelete by deletion.ts.
 */
import { randomUUID } from 'node:crypto'
import { assertAllowed, storeCall, type EngineContext } from '../context.js'
import { EngineError, invalidField } from '../errors.js'
import type { KeyPolicyRecord, KeyPolicyType } from '../ports.js'
import { optionsObject, validateActor } from '../validate.js'
import type { KeyPoliciesInput, KeyPolicyInfo, KeyScope } from '../engine-types.js'
import { appendKeyEvent } from './events.js'
import { policyInfo } from './views.js'

/** A root key's policies, optionally of one type. */
export async function getKeyPolicies(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  type: KeyPolicyType | undefined,
  scope: KeyScope,
): Promise<KeyPolicyInfo[]> {
  if (type !== undefined && type !== 'rotation' && type !== 'dualAuthDelete') {
    throw invalidField('policy', 'must be rotation or dualAuthDelete')
  }
  const k = await ctx.keys.resolve(instance, idOrAlias, true, optionsObject(scope).keyRingId)
  return k.policies.filter((p) => type === undefined || p.type === type).map(policyInfo)
}

/** Sets key-level policies of a root key in state 1; an enabled dualAuthDelete policy stays enabled. */
export async function setKeyPolicies(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  policies: KeyPoliciesInput,
  options: { updatedBy?: string } & KeyScope,
): Promise<KeyPolicyInfo[]> {
  const input = optionsObject(policies)
  options = optionsObject(options)
  const actor = validateActor(options.updatedBy, 'updatedBy')
  const k0 = await ctx.keys.resolve(instance, idOrAlias, true, options.keyRingId)
  return ctx.locks.withKey(instance, k0.record.id, async () => {
    const k = await ctx.keys.load(instance, k0.record.id, true)
    assertAllowed(ctx, 'setPolicies', k.record)
    const now = ctx.clock.now()
    const records = policyRecords(instance, k.record.id, k.policies, input, actor, now)
    if (records.length === 0) throw invalidField('policies', 'give rotation and/or dualAuthDelete')
    for (const p of records) await storeCall(() => ctx.store.putKeyPolicy(p))
    ctx.keys.invalidate(instance, k.record.id)
    const fresh = await ctx.keys.load(instance, k.record.id, true)
    await appendKeyEvent(ctx, fresh, 'policy', actor)
    const types = new Set(records.map((p) => p.type))
    return fresh.policies.filter((p) => types.has(p.type)).map(policyInfo)
  })
}

/**
 * The policy records that `input` asks for, keeping the first id, creation date and creator of an existing
 * policy of the same type.
 * @throws EngineError INVALID_FIELD_ERR, MISSING_FIELD_ERR (rotation enabled without an interval)
 */
export function policyRecords(
  instance: string,
  keyId: string,
  existing: readonly KeyPolicyRecord[],
  input: KeyPoliciesInput,
  actor: string | undefined,
  now: number,
): KeyPolicyRecord[] {
  const out: KeyPolicyRecord[] = []
  const base = (type: KeyPolicyType): Omit<KeyPolicyRecord, 'enabled' | 'intervalMonth'> => {
    const prev = existing.find((p) => p.type === type)
    return {
      instance,
      keyId,
      type,
      policyId: prev?.policyId ?? randomUUID(),
      createdAt: prev?.createdAt ?? now,
      createdBy: prev === undefined ? actor : prev.createdBy,
      updatedAt: now,
      updatedBy: actor,
    }
  }
  if (input.rotation !== undefined) {
    const r = optionsObject(input.rotation)
    if (typeof r.enabled !== 'boolean') throw invalidField('rotation.enabled', 'must be a boolean')
    const prev = existing.find((p) => p.type === 'rotation')
    let interval = r.intervalMonth ?? prev?.intervalMonth
    if (r.intervalMonth !== undefined) {
      if (!Number.isInteger(r.intervalMonth) || r.intervalMonth < 1 || r.intervalMonth > 12) {
        throw invalidField('rotation.interval_month', 'must be an integer from 1 to 12')
      }
      interval = r.intervalMonth
    }
    if (r.enabled && interval === undefined) {
      throw new EngineError('MISSING_FIELD_ERR', 'rotation.interval_month: is required to enable rotation', {
        target: { type: 'field', name: 'interval_month' },
      })
    }
    out.push({ ...base('rotation'), enabled: r.enabled, intervalMonth: interval })
  }
  if (input.dualAuthDelete !== undefined) {
    const d = optionsObject(input.dualAuthDelete)
    if (typeof d.enabled !== 'boolean') throw invalidField('dualAuthDelete.enabled', 'must be a boolean')
    const prev = existing.find((p) => p.type === 'dualAuthDelete')
    if (prev?.enabled === true && !d.enabled) {
      throw invalidField('dualAuthDelete.enabled', 'cannot be turned off once enabled')
    }
    out.push({ ...base('dualAuthDelete'), enabled: d.enabled, intervalMonth: undefined })
  }
  return out
}
