/**
 * Standard keys (Key Protect `extractable: true`): their material is kept in the catalog, wrapped under the
 * instance's hidden system root key, and returned to an authorised caller. The system key is created on
 * first use, once per instance even under concurrency.
 */
import { randomUUID } from 'node:crypto'
import { assertAllowed, checkAborted, storeCall, type EngineContext } from '../context.js'
import { EngineError } from '../errors.js'
import { GENERATED_DEK_BYTES, MAX_DEK_BYTES, MIN_DEK_BYTES, parseCiphertext } from '../format/ciphertext.js'
import type { CallOptions, KeyRecord, KeyVersionRecord } from '../ports.js'
import { SecretBytes } from '../secret-bytes.js'
import { optionsObject, validateBytes } from '../validate.js'
import type { KeyScope } from '../engine-types.js'
import { wrapDek } from '../wrap/wrap.js'
import { currentVersion, versionOf } from './directory.js'
import { newKeyRecord } from './key-record.js'
import { createRootKey } from './provisioning.js'

/** The AAD that binds a standard key's payload to its key id. */
function payloadAad(keyId: string): readonly string[] {
  return ['standard-key', keyId]
}

/** Creates a standard key: its material (given or random) wrapped under the system key, in one catalog row. */
export async function createStandardKey(
  ctx: EngineContext,
  base: KeyRecord,
  payload: Uint8Array | undefined,
  aliases: readonly string[],
): Promise<void> {
  const instance = base.instance
  const secret =
    payload === undefined
      ? await ctx.provider.generateRandom(GENERATED_DEK_BYTES)
      : SecretBytes.copyOf(validateBytes(payload, 'payload', MIN_DEK_BYTES, MAX_DEK_BYTES))
  try {
    const sys = await systemKey(ctx, instance)
    const sysCached = await ctx.keys.load(instance, sys.id, true)
    const wrapped = await wrapDek(ctx, instance, currentVersion(sysCached), secret, payloadAad(base.id), {})
    const record: KeyRecord = {
      ...base,
      extractable: true,
      imported: payload !== undefined,
      wrappedPayload: wrapped,
    }
    const v: KeyVersionRecord = {
      instance,
      keyId: base.id,
      version: 1,
      versionId: base.id,
      providerRef: '',
      createdAt: base.createdAt,
    }
    await storeCall(() => ctx.store.insertKey(record, v, aliases))
  } finally {
    secret.zeroize()
  }
}

/**
 * A standard key's material (a copy the caller owns).
 * @throws EngineError KEY_NOT_FOUND_ERR, KEY_NOT_EXTRACTABLE_ERR (root key), KEY_DELETED_ERR
 */
export async function getKeyPayload(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  opts: CallOptions & KeyScope,
): Promise<Buffer> {
  opts = optionsObject(opts)
  const k = await ctx.keys.resolve(instance, idOrAlias, false, opts.keyRingId)
  const r = k.record
  assertAllowed(ctx, 'getPayload', r)
  if (r.wrappedPayload === undefined)
    throw new EngineError('INTERNAL_ERROR', 'key: standard key without payload')
  const parsed = parseCiphertext(r.wrappedPayload)
  const sys = await ctx.keys.load(instance, parsed.keyId, true)
  checkAborted(opts.signal)
  const secret = await ctx.wrapper.unwrap(instance, versionOf(sys, parsed), parsed, payloadAad(r.id), opts)
  try {
    return secret.release()
  } finally {
    secret.zeroize()
  }
}

/** The instance's hidden root key that protects standard-key payloads; created on first use. */
async function systemKey(ctx: EngineContext, instance: string): Promise<KeyRecord> {
  const existing = await ctx.store.getSystemKey(instance)
  if (existing !== undefined) return existing
  const inflight = ctx.systemKeyInflight.get(instance)
  if (inflight !== undefined) return inflight
  const p = (async () => {
    const now = ctx.clock.now()
    const record = newKeyRecord(instance, randomUUID(), 'system:standard-key-protection', now, {
      description: 'Protects the payloads of standard keys in this instance',
      internal: true,
    })
    await createRootKey(ctx, record, undefined, [])
    return record
  })()
  ctx.systemKeyInflight.set(instance, p)
  try {
    return await p
  } finally {
    ctx.systemKeyInflight.delete(instance)
  }
}
