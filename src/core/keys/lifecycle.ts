/**
 * Creating keys and rotating them: a root key's version 1, and each later version, is a new provider object
 * made crash-safely (provisioning.ts); a standard key's material goes to the catalog wrapped
 * (standard-keys.ts).
 */
import { randomUUID } from 'node:crypto'
import { assertAllowed, concurrentChange, storeCall, type EngineContext } from '../context.js'
import { EngineError, invalidField } from '../errors.js'
import type { KeyVersionRecord } from '../ports.js'
import type { SecretBytes } from '../secret-bytes.js'
import {
  optionsObject,
  validateActor,
  validateAlias,
  validateDate,
  validateDescription,
  validateInstance,
  validateKeyRingId,
  validateName,
  validateTags,
} from '../validate.js'
import type { CreateKeyOptions, KeyInfo, KeyScope, SecureImportInput } from '../engine-types.js'
import { secureImportOf } from './import-token.js'
import { assertCreateImportAccess, instanceKeyPolicyDefaults } from './instance-policies.js'
import { newKeyRecord } from './key-record.js'
import { policyRecords } from './policies.js'
import { createProviderObject, createRootKey, discardProviderObject, rootMaterial } from './provisioning.js'
import { createStandardKey } from './standard-keys.js'
import { toKeyInfo } from './views.js'
import { appendKeyEvent } from './events.js'

/** Creates a root key (version 1 in the provider) or a standard key. */
export async function createKey(
  ctx: EngineContext,
  instance: string,
  options: CreateKeyOptions,
): Promise<KeyInfo> {
  validateInstance(instance)
  if (typeof options !== 'object' || options === null) throw invalidField('options', 'must be an object')
  const name = validateName(options.name)
  const description = validateDescription(options.description)
  const tags = validateTags(options.tags)
  const extractable = options.extractable ?? false
  if (typeof extractable !== 'boolean') throw invalidField('extractable', 'must be a boolean')
  const aliases = validateAliasList(ctx, options.aliases)
  const keyRingId = options.keyRingId === undefined ? 'default' : validateKeyRingId(options.keyRingId)
  const expirationDate = validateDate(options.expirationDate, 'expirationDate')
  const createdBy = validateActor(options.createdBy, 'createdBy')
  const now = ctx.clock.now()
  if (expirationDate !== undefined && expirationDate <= now) {
    throw invalidField('expirationDate', 'must be in the future')
  }
  for (const a of aliases) {
    if ((await ctx.store.getKeyIdByAlias(instance, a)) !== undefined) {
      throw new EngineError('KEY_ALIAS_NOT_UNIQUE_ERR', `aliases: "${a}" is already in use in this instance`)
    }
  }
  const id = randomUUID()
  const policies =
    options.policies === undefined
      ? []
      : policyRecords(instance, id, [], optionsObject(options.policies), createdBy, now)
  if (policies.length > 0 && extractable) {
    throw new EngineError('KEY_INVALID_STATE_ERR', 'policies: apply only to root keys (extractable=false)')
  }
  await assertCreateImportAccess(ctx, instance, {
    root: !extractable,
    imported: options.payload !== undefined || options.secureImport !== undefined,
    withToken: options.secureImport !== undefined,
    op: 'create',
  })
  // The instance's rotation and dualAuthDelete policies, for a root key that does not name its own.
  if (!extractable) {
    const defaults = await instanceKeyPolicyDefaults(ctx, instance, policies)
    policies.push(...policyRecords(instance, id, [], defaults, createdBy, now))
  }
  if (keyRingId !== 'default' && (await ctx.store.getKeyRing(instance, keyRingId)) === undefined) {
    throw new EngineError('KEY_RING_NOT_FOUND_ERR', `keyRingID: "${keyRingId}" does not exist`)
  }
  const base = newKeyRecord(instance, id, name, now, {
    description,
    tags,
    keyRingId,
    createdBy,
    expirationDate,
  })
  const secure = await secureImportOf(ctx, instance, options.secureImport, options.payload, extractable)
  if (extractable) {
    await createStandardKey(ctx, base, options.payload, aliases)
  } else {
    let material: SecretBytes | undefined
    if (options.payload !== undefined) material = rootMaterial(ctx, options.payload)
    try {
      const imported = material !== undefined || secure !== undefined
      await createRootKey(ctx, { ...base, imported }, material, aliases, policies, secure)
    } finally {
      material?.zeroize()
    }
  }
  return toKeyInfo(await ctx.keys.load(instance, id, true), ctx.life, ctx.clock.now())
}

/** Creates a new version of a root key; imported keys must be given new material. */
export async function rotate(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  options: { payload?: Uint8Array; secureImport?: SecureImportInput } & KeyScope,
): Promise<KeyInfo> {
  options = optionsObject(options)
  const k0 = await ctx.keys.resolve(instance, idOrAlias, false, options.keyRingId)
  return ctx.locks.withKey(instance, k0.record.id, async () => {
    const k = await ctx.keys.load(instance, k0.record.id, true)
    const r = k.record
    assertAllowed(ctx, 'rotate', r)
    const now = ctx.clock.now()
    const minInterval = ctx.life.minRotationIntervalMs
    if (minInterval > 0 && r.lastRotatedAt !== undefined && now - r.lastRotatedAt < minInterval) {
      throw new EngineError(
        'KEY_ROTATION_NOT_PERMITTED',
        'key: was rotated less than the minimum interval ago',
      )
    }
    await assertCreateImportAccess(ctx, instance, {
      root: true,
      imported: r.imported,
      withToken: options.secureImport !== undefined,
      op: 'rotate',
    })
    let material: SecretBytes | undefined
    const secure = await secureImportOf(ctx, instance, options.secureImport, options.payload, !r.imported)
    if (r.imported && secure === undefined) {
      if (options.payload === undefined) {
        throw new EngineError('MISSING_FIELD_ERR', 'payload: an imported key needs new material to rotate', {
          target: { type: 'field', name: 'payload' },
        })
      }
      material = rootMaterial(ctx, options.payload)
    } else if (!r.imported && options.payload !== undefined) {
      throw invalidField('payload', 'only imported keys take material at rotation')
    }
    try {
      const version = r.currentVersion + 1
      const ref = await createProviderObject(ctx, instance, r.id, version, material, secure)
      const v: KeyVersionRecord = {
        instance,
        keyId: r.id,
        version,
        versionId: randomUUID(),
        providerRef: ref,
        createdAt: now,
      }
      const ok = await storeCall(() => ctx.store.insertVersion(v, { lastRotatedAt: now, updatedAt: now }))
      if (!ok) {
        await discardProviderObject(ctx, instance, r.id, version, ref)
        throw concurrentChange('key: was changed concurrently; retry the rotation')
      }
    } finally {
      material?.zeroize()
    }
    ctx.keys.invalidate(instance, r.id)
    const fresh = await ctx.keys.load(instance, r.id, true)
    await appendKeyEvent(ctx, fresh, 'rotate')
    return toKeyInfo(fresh, ctx.life, ctx.clock.now())
  })
}

/** Key Protect aliases given at creation: at most `maxAliasesPerKey`, each valid, none repeated. */
function validateAliasList(ctx: EngineContext, aliases: unknown): string[] {
  if (aliases === undefined) return []
  if (!Array.isArray(aliases)) throw invalidField('aliases', 'must be an array of strings')
  if (aliases.length > ctx.life.maxAliasesPerKey) {
    throw new EngineError('KEY_ALIAS_QUOTA_ERR', `aliases: at most ${ctx.life.maxAliasesPerKey} per key`)
  }
  const out = aliases.map((a) => validateAlias(a, 'aliases'))
  if (new Set(out).size !== out.length) throw invalidField('aliases', 'must not repeat')
  return out
}
