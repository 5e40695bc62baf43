/**
 * Batch wrap / unwrap / rewrap of many DEKs under one key: the part that needs only a provider, so that it
 * runs the same on the event loop or in a worker thread (src/pool). The engine resolves the key, checks its
 * state and counts AES-GCM usage before a batch; a batch never touches the catalog.
 */
import { EngineError, isEngineError } from './errors.js'
import {
  appendAad,
  encodeGcmCiphertext,
  encodeOpaqueCiphertext,
  hsmAadPrefix,
  parseCiphertext,
  sameKeyId,
  type ParsedCiphertext,
} from './ciphertext.js'
import type { RootKeyProvider } from './ports.js'
import { SecretBytes, SecretSlab } from './secret-bytes.js'

/** A root-key version as a batch needs it (plain data: it crosses thread boundaries). */
export interface BatchVersion {
  readonly number: number
  readonly ref: string
  /** The 22 ciphertext header bytes of this version. */
  readonly header: Uint8Array
}

/** One batch. `items` are ciphertexts (unwrap, rewrap) or DEKs to wrap, as bytes. */
export interface BatchTask {
  readonly op: 'wrap' | 'unwrap' | 'rewrap'
  readonly instance: string
  readonly aad: readonly string[]
  /** Versions the ciphertexts may name (unwrap, rewrap). */
  readonly versions: readonly BatchVersion[]
  /** The version new ciphertexts are made under (wrap, rewrap, and unwrap of older versions). */
  readonly latest: BatchVersion
  /** DEKs to wrap (empty = generate one), or ciphertexts as bytes or base64 (decoded strictly here). */
  readonly items: readonly (Uint8Array | string)[]
}

/** Per-item outcome. Errors are per item: one bad ciphertext does not fail its batch. */
export type BatchItemResult =
  | {
      readonly ok: true
      /** unwrap: the DEK; wrap: the DEK when generated (item was empty). */
      readonly plaintext?: Uint8Array
      /** wrap, rewrap, and unwrap of an older version: ciphertext v1 under `latest`, base64. */
      readonly ciphertext?: string
      /** The version that wrapped the input (unwrap, rewrap). */
      readonly fromVersion?: number
    }
  | { readonly ok: false; readonly code: string; readonly message: string }

/**
 * Runs a batch against `provider`. An empty item in a wrap batch means "generate a 32-byte DEK".
 * Never throws for a per-item failure; throws (typed) only when the provider itself is unusable.
 */
export async function executeBatch(provider: RootKeyProvider, task: BatchTask): Promise<BatchItemResult[]> {
  const latestHeader = Buffer.from(task.latest.header)
  const byNumber = new Map(task.versions.map((v) => [v.number, { v, header: Buffer.from(v.header) }]))
  // The whole HSM AAD depends only on (header, DEK length) within a batch (instance and caller AAD are the
  // batch's): built once per pair, keyed by number (no per-item string or buffer). Providers only read it.
  const aads = new Map<number, Buffer>()
  const aadFor = (header: Buffer, versionKey: number, dekLength: number): Buffer => {
    const k = versionKey * 8192 + dekLength // DEK lengths are at most 4,096
    let a = aads.get(k)
    if (a === undefined) {
      a = appendAad(hsmAadPrefix(header, dekLength, task.instance), task.aad)
      aads.set(k, a)
    }
    return a
  }
  const LATEST = -1 // the latest version's header may differ from a listed version's (mechanism)
  const opaque = provider.capabilities.ciphertext === 'opaque'
  const seal = async (dek: SecretBytes): Promise<string> => {
    if (opaque && provider.encryptOpaque !== undefined) {
      const aad = aadFor(latestHeader, LATEST, dek.length)
      return encodeOpaqueCiphertext(
        latestHeader,
        dek.length,
        await provider.encryptOpaque(task.latest.ref, dek, aad),
      ).toString('base64')
    }
    const sealed = await provider.encrypt(task.latest.ref, dek, aadFor(latestHeader, LATEST, dek.length))
    if (sealed.encrypted.length !== dek.length || sealed.tag.length !== 16 || sealed.iv.length !== 12) {
      throw new EngineError('PROVIDER_ERROR', 'provider: AES-GCM output has an unexpected shape')
    }
    return encodeGcmCiphertext(latestHeader, sealed.iv, sealed.encrypted, sealed.tag).toString('base64')
  }
  // DEKs that leave with the results (unwrap, generated wraps) are carved from slabs; a DEK that dies with
  // its item (rewrap, a caller's DEK to wrap) lives in one scratch region, zeroed after each item. Either
  // way a batch makes a handful of allocations for its DEKs instead of one per item (see SecretSlab).
  const slab = new SecretSlab()
  const out: BatchItemResult[] = []
  try {
    for (const item of task.items) {
      let dek: SecretBytes | undefined
      try {
        if (task.op === 'wrap') {
          if (typeof item === 'string') throw new EngineError('INVALID_FIELD_ERR', 'plaintext: must be bytes')
          const generated = item.length === 0
          if (generated) dek = await provider.generateRandom(32, { output: slab.take(32) })
          else {
            const b = slab.scratch(item.length)
            b.set(item)
            dek = SecretBytes.adopt(b)
          }
          const ciphertext = await seal(dek)
          out.push(generated ? { ok: true, ciphertext, plaintext: dek.release() } : { ok: true, ciphertext })
          continue
        }
        const parsed: ParsedCiphertext = parseCiphertext(item)
        if (!sameKeyId(parsed, latestHeader)) {
          throw new EngineError('CIPHERTEXT_INVALID', 'ciphertext: was not wrapped by this key')
        }
        const entry = byNumber.get(parsed.keyVersion)
        if (entry === undefined) {
          throw new EngineError(
            'KEY_VERSION_NOT_FOUND',
            `ciphertext: names key version ${parsed.keyVersion}, which this key does not have`,
          )
        }
        if (parsed.mechanism !== latestHeader[1]) {
          throw new EngineError('CIPHERTEXT_INVALID', 'ciphertext: mechanism is not the one of this provider')
        }
        const from = entry.v
        const aad = aadFor(entry.header, from.number, parsed.dekLength)
        const room = parsed.dekLength + 16 // GCM output room (RESULTS gotcha 6)
        dek =
          opaque && provider.decryptOpaque !== undefined
            ? await provider.decryptOpaque(from.ref, parsed.encrypted, aad)
            : await provider.decrypt(from.ref, parsed, aad, {
                output: task.op === 'unwrap' ? slab.take(room) : slab.scratch(room),
              })
        if (dek.length !== parsed.dekLength)
          throw new EngineError('PROVIDER_ERROR', 'provider: unexpected DEK length')
        const needsNew = task.op === 'rewrap' || from.number !== task.latest.number
        const ciphertext = needsNew ? await seal(dek) : undefined
        const r: { ok: true; fromVersion: number; ciphertext?: string; plaintext?: Uint8Array } = {
          ok: true,
          fromVersion: from.number,
        }
        if (ciphertext !== undefined) r.ciphertext = ciphertext
        if (task.op === 'unwrap') r.plaintext = dek.release()
        out.push(r)
      } catch (err) {
        if (!isEngineError(err) || err.code === 'PROVIDER_UNAVAILABLE' || err.code === 'ABORTED') throw err
        out.push({ ok: false, code: err.code, message: err.message })
      } finally {
        dek?.zeroize()
      }
    }
  } finally {
    slab.close()
  }
  return out
}
