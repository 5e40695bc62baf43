/**
 * Import tokens and secure import (Key Protect, spec digest §3.6 and §4.5). One token per instance: an RSA
 * key pair in the provider (the private key never leaves it), a 12-byte nonce from the provider's RNG, an
 * expiry and a retrieval counter in the catalog. A secure import hands the provider the RSA-OAEP-encrypted
 * material and the AES-GCM-encrypted nonce ({@link SealedMaterial}); the provider unwraps the material into
 * a root-key object and proves the nonce inside the device, so the material never exists in this process.
 *
 * Rules: a new token replaces the old one (whose key pair is destroyed); `getImportToken` takes one
 * retrieval (409 once none is left); an expired token answers IMPORT_TOKEN_EXPIRED_ERR to GET and to every
 * import, and its key pair is destroyed on that access and by {@link expireImportTokens} (scheduler).
 * A token may be used for imports while it has not expired, also after its last retrieval.
 */
import { EngineError, invalidField } from '../errors.js'
import { storeCall, type EngineContext } from '../context.js'
import type {
  ImportTokenInfo,
  ImportTokenOptions,
  ImportTokenRetrieval,
  SecureImportInput,
} from '../engine-types.js'
import type { ImportAlgorithm, ImportTokenRecord, RootKeyProvider, SealedMaterial } from '../ports.js'
import { optionsObject, validateBytes, validateInstance } from '../validate.js'

const ALGORITHMS: readonly ImportAlgorithm[] = ['RSAES_OAEP_SHA_256', 'RSAES_OAEP_SHA_1']

/** Limits and defaults (spec digest §4.12). */
export const IMPORT_TOKEN_LIMITS = {
  minExpirationSec: 300,
  maxExpirationSec: 86_400,
  defaultExpirationSec: 600,
  maxRetrievals: 500,
  defaultRetrievals: 1,
} as const

function int(v: unknown, field: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalidField(field, `must be an integer ${min}-${max}`)
  }
  return v
}

/** The provider's import-token support, or PROVIDER_UNSUPPORTED (AWS KMS has none). */
function providerSupport(ctx: EngineContext): {
  algorithms: readonly ImportAlgorithm[]
  createPair: NonNullable<RootKeyProvider['createImportKeyPair']>
} {
  const algorithms = ctx.provider.capabilities.importTokens ?? []
  const p = ctx.provider
  const create = p.createImportKeyPair?.bind(p)
  if (algorithms.length === 0 || create === undefined || p.destroyImportKeyPair === undefined) {
    throw new EngineError('PROVIDER_UNSUPPORTED', `import token: provider ${p.name} has none`)
  }
  return { algorithms, createPair: create }
}

function info(t: ImportTokenRecord): ImportTokenInfo {
  return {
    createdAt: new Date(t.createdAt),
    expiresAt: new Date(t.expiresAt),
    maxAllowedRetrievals: t.maxRetrievals,
    remainingRetrievals: t.remainingRetrievals,
  }
}

/** Destroys a token's key pair; best effort (an expired or replaced token is swept again later). */
async function destroyPair(ctx: EngineContext, ref: string): Promise<void> {
  try {
    await ctx.provider.destroyImportKeyPair?.(ref)
  } catch {
    /* left for expireImportTokens */
  }
}

/** Creates (or replaces) the instance's import token. */
export async function createImportToken(
  ctx: EngineContext,
  instance: string,
  options: ImportTokenOptions,
): Promise<ImportTokenInfo> {
  validateInstance(instance)
  const o = optionsObject(options)
  const L = IMPORT_TOKEN_LIMITS
  const expirationSec = int(
    o.expirationSec,
    'expiration',
    L.minExpirationSec,
    L.maxExpirationSec,
    L.defaultExpirationSec,
  )
  const max = int(o.maxAllowedRetrievals, 'maxAllowedRetrievals', 1, L.maxRetrievals, L.defaultRetrievals)
  const { createPair } = providerSupport(ctx)
  const rnd = await ctx.provider.generateRandom(12)
  const nonce = rnd.exportCopy() // not secret: it is handed to the client
  rnd.zeroize()
  const now = ctx.clock.now()
  const pair = await createPair({ catalogId: ctx.store.catalogId, createdAt: now })
  const record: ImportTokenRecord = {
    instance,
    providerRef: pair.ref,
    publicKeyPem: pair.publicKeyPem,
    nonce,
    createdAt: now,
    expiresAt: now + expirationSec * 1000,
    maxRetrievals: max,
    remainingRetrievals: max,
  }
  let old: ImportTokenRecord | undefined
  try {
    old = await storeCall(() => ctx.store.putImportToken(record))
  } catch (err) {
    await destroyPair(ctx, pair.ref)
    throw err
  }
  if (old !== undefined) await destroyPair(ctx, old.providerRef)
  return info(record)
}

/** The instance's token, refusing a missing or expired one (whose key pair is then destroyed). */
async function liveToken(ctx: EngineContext, instance: string): Promise<ImportTokenRecord> {
  const t = await storeCall(() => ctx.store.getImportToken(instance))
  if (t === undefined) {
    throw new EngineError(
      'IMPORT_TOKEN_NOT_FOUND_ERR',
      'import token: none exists in this instance; create one',
    )
  }
  if (t.expiresAt <= ctx.clock.now()) {
    await destroyPair(ctx, t.providerRef)
    throw new EngineError('IMPORT_TOKEN_EXPIRED_ERR', 'import token: has expired; create a new one')
  }
  return t
}

/** Returns the public key and nonce of the instance's token and takes one retrieval. */
export async function getImportToken(ctx: EngineContext, instance: string): Promise<ImportTokenRetrieval> {
  validateInstance(instance)
  const t = await liveToken(ctx, instance)
  const taken = await storeCall(() => ctx.store.takeImportTokenRetrieval(instance, t.providerRef))
  if (taken === undefined) {
    const now = await storeCall(() => ctx.store.getImportToken(instance))
    if (now?.providerRef === t.providerRef) {
      throw new EngineError(
        'IMPORT_TOKEN_RETRIEVALS_EXHAUSTED',
        "import token: has reached its 'maxAllowedRetrievals'; create a new one",
      )
    }
    throw new EngineError('IMPORT_TOKEN_NOT_FOUND_ERR', 'import token: was replaced concurrently; retry')
  }
  return { ...info(taken), publicKeyPem: taken.publicKeyPem, nonce: Buffer.from(taken.nonce) }
}

/**
 * Checks a secure import's fields and binds them to the instance's live token.
 * @throws EngineError INVALID_FIELD_ERR, MISSING_FIELD_ERR, IMPORT_TOKEN_NOT_FOUND_ERR, IMPORT_TOKEN_EXPIRED_ERR, PROVIDER_UNSUPPORTED
 */
export async function sealedMaterial(
  ctx: EngineContext,
  instance: string,
  input: SecureImportInput,
): Promise<SealedMaterial> {
  const i = optionsObject(input)
  for (const f of ['payload', 'encryptedNonce', 'iv'] as const) {
    if (i[f] === undefined) {
      throw new EngineError(
        'MISSING_FIELD_ERR',
        `${f}: a secure import needs payload, encryptedNonce and iv`,
        {
          target: { type: 'field', name: f },
        },
      )
    }
  }
  const algorithm = i.encryptionAlgorithm ?? 'RSAES_OAEP_SHA_256'
  if (!ALGORITHMS.includes(algorithm)) {
    throw invalidField('encryptionAlgorithm', 'must be RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1')
  }
  const encryptedMaterial = Buffer.from(validateBytes(i.payload, 'payload', 1, 1024))
  const encryptedNonce = Buffer.from(validateBytes(i.encryptedNonce, 'encryptedNonce', 17, 1024))
  const iv = Buffer.from(validateBytes(i.iv, 'iv', 12, 12))
  if (!providerSupport(ctx).algorithms.includes(algorithm)) {
    throw new EngineError(
      'PROVIDER_UNSUPPORTED',
      `encryptionAlgorithm: ${algorithm} is not supported by provider ${ctx.provider.name}`,
      { target: { type: 'field', name: 'encryptionAlgorithm' } },
    )
  }
  const t = await liveToken(ctx, instance)
  return { tokenRef: t.providerRef, algorithm, encryptedMaterial, encryptedNonce, iv, nonce: t.nonce }
}

/**
 * How old a key pair without a token row must be before {@link expireImportTokens} destroys it: longer than
 * any `createImportToken` takes between the pair and its row, so that one in flight is never swept.
 */
export const ORPHAN_KEY_PAIR_GRACE_MS = 15 * 60_000

/**
 * Removes every expired token and destroys its key pair, then destroys this catalog's key pairs that no
 * token refers to (a crash between a pair and its row) once older than {@link ORPHAN_KEY_PAIR_GRACE_MS}.
 * The scheduler runs it. Returns how many key pairs it removed.
 */
export async function expireImportTokens(ctx: EngineContext): Promise<number> {
  const p = ctx.provider
  const now = ctx.clock.now()
  const expired = await storeCall(() => ctx.store.listExpiredImportTokens(now))
  let n = 0
  for (const t of expired) {
    if (p.destroyImportKeyPair !== undefined) {
      try {
        await p.destroyImportKeyPair(t.providerRef)
      } catch {
        continue // the row stays: the next run tries again
      }
    }
    if (await ctx.store.deleteImportToken(t.instance, t.providerRef)) n++
  }
  if (p.listImportKeyPairs === undefined || p.destroyImportKeyPair === undefined) return n
  const pairs = (await p.listImportKeyPairs()).filter(
    (k) => k.catalogId === ctx.store.catalogId && k.createdAt < now - ORPHAN_KEY_PAIR_GRACE_MS,
  )
  if (pairs.length === 0) return n
  // Every token row (an expiry at or before the largest time is every row).
  const live = new Set(
    (await storeCall(() => ctx.store.listExpiredImportTokens(Number.MAX_SAFE_INTEGER))).map(
      (t) => t.providerRef,
    ),
  )
  for (const k of pairs) {
    if (live.has(k.ref)) continue
    await p.destroyImportKeyPair(k.ref)
    n++
  }
  return n
}

/**
 * The sealed material of a secure import, bound to the instance's import token; undefined without one.
 * Refused next to a plaintext `payload`, and where no material is taken (`refuse`: standard keys at
 * creation, generated keys at rotation).
 */
export async function secureImportOf(
  ctx: EngineContext,
  instance: string,
  input: SecureImportInput | undefined,
  payload: Uint8Array | undefined,
  refuse: boolean,
): Promise<SealedMaterial | undefined> {
  if (input === undefined) return undefined
  if (payload !== undefined) throw invalidField('payload', 'give it inside secureImport, not beside it')
  if (refuse) throw invalidField('payload', 'secure import applies to imported root keys only')
  return sealedMaterial(ctx, instance, input)
}
