/**
 * Provider objects of root-key versions, created crash-safely (DESIGN decision 7): a pending row is written
 * before the provider call, the catalog row after it, and reconcile() settles whatever a crash left between
 * the two. Also the checks on imported root-key material. Sits below lifecycle.ts and standard-keys.ts,
 * which both create root keys.
 */
import { createDecipheriv } from 'node:crypto'
import { storeCall, type EngineContext } from '../context.js'
import { EngineError, invalidField } from '../errors.js'
import type { KeyPolicyRecord, KeyRecord, KeyVersionRecord, SealedMaterial } from '../ports.js'
import { SecretBytes } from '../secret-bytes.js'
import { validateBytes } from '../validate.js'
import { currentVersion, type CachedKey } from './directory.js'

/** Imported root-key material lengths (AES-128/192/256). */
const ROOT_MATERIAL_LENGTHS = [16, 24, 32]

/**
 * Imported root-key material, checked and copied into SecretBytes (the caller zeroes it).
 * @throws EngineError INVALID_FIELD_ERR, PROVIDER_UNSUPPORTED
 */
export function rootMaterial(ctx: EngineContext, payload: unknown): SecretBytes {
  const bytes = validateBytes(payload, 'payload', 16, 32)
  if (!ROOT_MATERIAL_LENGTHS.includes(bytes.length))
    throw invalidField('payload', 'must be 16, 24 or 32 bytes (AES)')
  if (!ctx.provider.capabilities.importMaterial) {
    throw new EngineError(
      'PROVIDER_UNSUPPORTED',
      `payload: provider ${ctx.provider.name} cannot import key material`,
    )
  }
  return SecretBytes.copyOf(bytes)
}

/**
 * Writes the pending row, creates the provider object, and returns its ref. `sealed`: securely imported
 * material, unwrapped inside the provider (import-token.ts), instead of `material`.
 */
export async function createProviderObject(
  ctx: EngineContext,
  instance: string,
  keyId: string,
  version: number,
  material: SecretBytes | undefined,
  sealed?: SealedMaterial,
): Promise<string> {
  await storeCall(() => ctx.store.addPending({ instance, keyId, version, startedAt: ctx.clock.now() }))
  try {
    return await ctx.provider.createVersion({
      catalogId: ctx.store.catalogId,
      keyId,
      version,
      material,
      ...(sealed === undefined ? {} : { sealed }),
    })
  } catch (err) {
    await ctx.store.removePending(instance, keyId, version).catch(() => undefined)
    throw err
  }
}

/** Destroys an object whose catalog row was never written; best effort (reconcile() retries it). */
export async function discardProviderObject(
  ctx: EngineContext,
  instance: string,
  keyId: string,
  version: number,
  ref: string,
): Promise<void> {
  // If this fails, the pending row stays and reconcile() destroys the object later.
  try {
    await ctx.provider.destroyVersion(ref)
    await ctx.store.removePending(instance, keyId, version)
  } catch {
    /* left for reconciliation */
  }
}

/** Creates version 1 in the provider, then the key's catalog rows (discarding the object if that fails). */
export async function createRootKey(
  ctx: EngineContext,
  record: KeyRecord,
  material: SecretBytes | undefined,
  aliases: readonly string[],
  policies: readonly KeyPolicyRecord[] = [],
  sealed?: SealedMaterial,
): Promise<void> {
  const ref = await createProviderObject(ctx, record.instance, record.id, 1, material, sealed)
  const v: KeyVersionRecord = {
    instance: record.instance,
    keyId: record.id,
    version: 1,
    versionId: record.id,
    providerRef: ref,
    createdAt: record.createdAt,
  }
  try {
    await storeCall(() => ctx.store.insertKey(record, v, aliases, policies))
  } catch (err) {
    await discardProviderObject(ctx, record.instance, record.id, 1, ref)
    throw err
  }
}

/**
 * Checks that securely imported material is the key's current version's, inside the provider (restore).
 * @throws EngineError INVALID_FIELD_ERR (does not match), PROVIDER_UNSUPPORTED, KEY_USAGE_LIMIT_ERR
 */
export async function checkSealedMaterialMatches(
  ctx: EngineContext,
  k: CachedKey,
  sealed: SealedMaterial,
): Promise<void> {
  if (ctx.provider.matchesSealedMaterial === undefined) {
    throw new EngineError(
      'PROVIDER_UNSUPPORTED',
      `payload: provider ${ctx.provider.name} has no import tokens`,
    )
  }
  const v = currentVersion(k)
  await ctx.usage.take(k.record.instance, v, 1) // the probe's AES-GCM invocation under the version
  if (!(await ctx.provider.matchesSealedMaterial(v.providerRef, sealed))) {
    throw invalidField('payload', 'does not match the key material of this key')
  }
}

/**
 * Checks that `payload` is the material of the key's current version: the HSM encrypts a probe under its
 * copy, and the probe must authenticate under `payload` in process. No material leaves the HSM.
 * @throws EngineError INVALID_FIELD_ERR (does not match), KEY_USAGE_LIMIT_ERR
 */
export async function checkMaterialMatches(
  ctx: EngineContext,
  k: CachedKey,
  payload: Uint8Array,
): Promise<void> {
  const material = rootMaterial(ctx, payload)
  const probe = SecretBytes.adopt(Buffer.alloc(16))
  try {
    const aad = Buffer.from('envelope-kms/material-check/v1', 'ascii')
    const v = currentVersion(k)
    // One AES-GCM invocation under the version: metered like every other.
    await ctx.usage.take(k.record.instance, v, 1)
    const sealed = await ctx.provider.encrypt(v.providerRef, probe, aad)
    const alg = `aes-${material.length * 8}-gcm` as 'aes-256-gcm'
    const d = createDecipheriv(alg, material.bytes, sealed.iv, { authTagLength: 16 })
    d.setAAD(aad)
    d.setAuthTag(sealed.tag)
    d.update(sealed.encrypted)
    try {
      d.final()
    } catch {
      throw invalidField('payload', 'does not match the key material of this key')
    }
  } finally {
    material.zeroize()
    probe.zeroize()
  }
}
