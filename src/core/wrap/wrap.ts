/**
 * Wrap, unwrap, rewrap and re-encrypt of single DEKs, and random bytes. Each is a flat pipeline:
 * resolve → check the state → meter → wrap → encode, every step a call at the same level. The hot paths
 * (wrap, unwrap, rewrap) avoid nested async helpers: each costs a promise and a microtask per call.
 */
import {
  assertAllowed,
  checkAborted,
  checkOpen,
  usableKey,
  usableKeyNow,
  type EngineContext,
} from '../context.js'
import { EngineError, invalidField, toEngineError } from '../errors.js'
import {
  encodeOpaqueCiphertext,
  GENERATED_DEK_BYTES,
  MAX_DEK_BYTES,
  Mechanism,
  MIN_DEK_BYTES,
  parseCiphertext,
  validateAad,
  type ParsedCiphertext,
} from '../format/ciphertext.js'
import type { CallOptions } from '../ports.js'
import { SecretBytes } from '../secret-bytes.js'
import { optionsObject, validateBytes } from '../validate.js'
import { currentVersion, versionOf, type VersionEntry } from '../keys/directory.js'
import { versionInfo } from '../keys/views.js'
import { hsmAad } from './dek-wrapper.js'
import type {
  KeyScope,
  ReencryptResult,
  RewrapResult,
  UnwrapOptions,
  UnwrapResult,
  WrapOptions,
  WrapResult,
} from '../engine-types.js'

/**
 * Meter, then wrap: the one way a DEK is wrapped under a root-key version (single calls, seal, standard
 * keys). While the meter's reservation covers the wrap there is no await before the provider call.
 */
export function wrapDek(
  ctx: EngineContext,
  instance: string,
  v: VersionEntry,
  dek: SecretBytes,
  aad: readonly string[],
  o: CallOptions,
): Promise<Buffer> {
  checkAborted(o.signal)
  const wait = ctx.wrapper.metered ? ctx.usage.take(instance, v, 1) : undefined
  if (wait === undefined) return ctx.wrapper.wrap(instance, v, dek, aad, o)
  return wait.then(() => ctx.wrapper.wrap(instance, v, dek, aad, o))
}

/** Wraps a DEK (given, or 32 fresh bytes from the provider's RNG) under the key's latest version. */
export async function wrap(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  options: WrapOptions,
): Promise<WrapResult> {
  checkOpen(ctx, 'wrap')
  let dek: SecretBytes | undefined
  try {
    options = optionsObject(options)
    const now = ctx.clock.now()
    const aad = validateAad(options.aad)
    const generated = options.plaintext === undefined
    /* Precondition: a caller DEK is 1..4096 bytes. */
    if (!generated)
      dek = SecretBytes.copyOf(validateBytes(options.plaintext, 'plaintext', MIN_DEK_BYTES, MAX_DEK_BYTES))
    const ring = options.keyRingId
    const k =
      usableKeyNow(ctx, 'wrap', instance, idOrAlias, now, ring) ??
      (await usableKey(ctx, 'wrap', instance, idOrAlias, ring))
    checkAborted(options.signal)
    dek ??= await ctx.provider.generateRandom(GENERATED_DEK_BYTES, options)
    /* Postcondition: a generated DEK is 32 bytes. */
    if (generated && dek.length !== GENERATED_DEK_BYTES) {
      throw new EngineError('PROVIDER_ERROR', 'provider: random output has an unexpected length')
    }
    const v = currentVersion(k)
    const wrapped = await wrapDek(ctx, instance, v, dek, aad, options)
    return {
      ciphertext: wrapped.toString('base64'),
      keyVersion: versionInfo(v),
      plaintext: generated ? dek.release() : undefined,
    }
  } catch (err) {
    throw toEngineError(err, 'wrap')
  } finally {
    dek?.zeroize()
  }
}

/** Unwraps a DEK; one wrapped under an older version also comes back rewrapped under the latest. */
export async function unwrap(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  ciphertext: string | Uint8Array,
  options: UnwrapOptions,
): Promise<UnwrapResult> {
  checkOpen(ctx, 'unwrap')
  let dek: SecretBytes | undefined
  try {
    options = optionsObject(options)
    const opened =
      ctx.deks.openSync('unwrap', instance, idOrAlias, ciphertext, options) ??
      (await ctx.deks.open('unwrap', instance, idOrAlias, ciphertext, options))
    dek = opened.dek
    const latest = currentVersion(opened.k)
    const rewrapped =
      latest.version === opened.from.version
        ? undefined
        : {
            ciphertext: (await wrapDek(ctx, instance, latest, dek, opened.aad, options)).toString('base64'),
            keyVersion: versionInfo(latest),
          }
    return { plaintext: dek.release(), keyVersion: versionInfo(opened.from), rewrapped }
  } catch (err) {
    throw toEngineError(err, 'unwrap')
  } finally {
    dek?.zeroize()
  }
}

/** Re-wraps a ciphertext under the key's latest version; the DEK lives only inside this call. */
export async function rewrap(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  ciphertext: string | Uint8Array,
  options: UnwrapOptions,
): Promise<RewrapResult> {
  checkOpen(ctx, 'rewrap')
  let dek: SecretBytes | undefined
  try {
    options = optionsObject(options)
    if (ctx.provider.reencryptOpaque !== undefined && ctx.dekCache === undefined) {
      return await rewrapInProvider(ctx, instance, idOrAlias, idOrAlias, ciphertext, options, options.aad)
    }
    const opened =
      ctx.deks.openSync('rewrap', instance, idOrAlias, ciphertext, options) ??
      (await ctx.deks.open('rewrap', instance, idOrAlias, ciphertext, options))
    dek = opened.dek
    const latest = currentVersion(opened.k)
    return {
      ciphertext: (await wrapDek(ctx, instance, latest, dek, opened.aad, options)).toString('base64'),
      keyVersion: versionInfo(opened.from),
      rewrappedKeyVersion: versionInfo(latest),
    }
  } catch (err) {
    throw toEngineError(err, 'rewrap')
  } finally {
    dek?.zeroize()
  }
}

/** Options of {@link reencrypt}. */
export type ReencryptOptions = {
  sourceKeyId?: string
  sourceAad?: readonly string[]
  destinationKeyId: string
  destinationAad?: readonly string[]
} & CallOptions

/**
 * Moves a ciphertext to the latest version of another key (AWS KMS `ReEncrypt`). Inside the provider when
 * it can (the DEK never enters this process); otherwise the DEK is held only inside this call.
 */
export async function reencrypt(
  ctx: EngineContext,
  instance: string,
  ciphertext: string | Uint8Array,
  options: ReencryptOptions,
): Promise<ReencryptResult> {
  options = optionsObject(options)
  const parsed = parseCiphertext(ciphertext)
  const source = options.sourceKeyId ?? parsed.keyId
  if (ctx.provider.reencryptOpaque !== undefined && ctx.dekCache === undefined) {
    const r = await rewrapInProvider(
      ctx,
      instance,
      source,
      options.destinationKeyId,
      parsed,
      options,
      options.sourceAad,
      options.destinationAad,
    )
    const dest = await ctx.keys.resolve(instance, options.destinationKeyId)
    return {
      ciphertext: r.ciphertext,
      sourceKeyId: parsed.keyId,
      sourceKeyVersion: r.keyVersion,
      keyId: dest.record.id,
      keyVersion: r.rewrappedKeyVersion,
    }
  }
  let dek: SecretBytes | undefined
  try {
    const opened = await ctx.deks.open(
      'rewrap',
      instance,
      source,
      ciphertext,
      { signal: options.signal, ...(options.sourceAad === undefined ? {} : { aad: options.sourceAad }) },
      parsed,
    )
    dek = opened.dek
    const now = ctx.clock.now()
    const dest = await ctx.keys.resolve(instance, options.destinationKeyId)
    assertAllowed(ctx, 'wrap', dest.record, now)
    const aad = validateAad(options.destinationAad)
    const latest = currentVersion(dest)
    return {
      ciphertext: (await wrapDek(ctx, instance, latest, dek, aad, options)).toString('base64'),
      sourceKeyId: opened.k.record.id,
      sourceKeyVersion: versionInfo(opened.from),
      keyId: dest.record.id,
      keyVersion: versionInfo(latest),
    }
  } finally {
    dek?.zeroize()
  }
}

/** Rewrap inside an opaque provider (KMS `ReEncrypt`): from `sourceId`'s version to `destId`'s latest. */
async function rewrapInProvider(
  ctx: EngineContext,
  instance: string,
  sourceId: string,
  destId: string,
  ciphertext: string | Uint8Array | ParsedCiphertext,
  opts: CallOptions & KeyScope,
  sourceAad: unknown,
  destAad: unknown = sourceAad,
): Promise<RewrapResult> {
  const reencryptOpaque = ctx.provider.reencryptOpaque?.bind(ctx.provider)
  if (reencryptOpaque === undefined) throw new EngineError('INTERNAL_ERROR', 'provider: cannot re-encrypt')
  const now = ctx.clock.now()
  const fromAad = validateAad(sourceAad)
  const toAad = validateAad(destAad)
  const ring = opts.keyRingId
  const k =
    usableKeyNow(ctx, 'rewrap', instance, sourceId, now, ring) ??
    (await usableKey(ctx, 'rewrap', instance, sourceId, ring))
  const parsed =
    typeof ciphertext === 'string' || ciphertext instanceof Uint8Array
      ? parseCiphertext(ciphertext)
      : ciphertext
  const from = versionOf(k, parsed)
  if (parsed.mechanism !== Mechanism.OPAQUE) {
    throw new EngineError('CIPHERTEXT_INVALID', 'ciphertext: was not made by this provider', {
      target: { type: 'field', name: 'ciphertext' },
    })
  }
  const dest =
    destId === sourceId
      ? k
      : (ctx.keys.peek(instance, destId, now) ?? (await ctx.keys.resolve(instance, destId)))
  assertAllowed(ctx, 'wrap', dest.record, now)
  const latest = currentVersion(dest)
  checkAborted(opts.signal)
  const blob = await reencryptOpaque(
    {
      ref: from.providerRef,
      blob: parsed.encrypted,
      aad: hsmAad(from, parsed.dekLength, instance, fromAad),
    },
    { ref: latest.providerRef, aad: hsmAad(latest, parsed.dekLength, instance, toAad) },
    opts,
  )
  return {
    ciphertext: encodeOpaqueCiphertext(latest.header, parsed.dekLength, blob).toString('base64'),
    keyVersion: versionInfo(from),
    rewrappedKeyVersion: versionInfo(latest),
  }
}

/** `length` (1–1024) random bytes from the provider's RNG. */
export async function generateRandom(ctx: EngineContext, length: number, opts: CallOptions): Promise<Buffer> {
  opts = optionsObject(opts)
  /* Precondition: 1..1024 bytes. */
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 1 || length > 1024) {
    throw invalidField('length', 'must be an integer 1-1024')
  }
  checkAborted(opts.signal)
  const r = await ctx.provider.generateRandom(length, opts)
  /* Postcondition: the provider returned exactly `length` bytes. */
  if (r.length !== length) {
    r.zeroize()
    throw new EngineError('PROVIDER_ERROR', 'provider: random output has an unexpected length')
  }
  return r.release()
}
