/**
 * Batch wrap / unwrap / rewrap of many DEKs under one key, and reencrypt from one key to another: the part
 * that needs only a provider, so that it runs the same on the event loop or in a worker thread (src/pool).
 * The engine resolves the keys, checks their states and counts AES-GCM usage before a batch; a batch never
 * touches the catalog.
 */
import { EngineError, isEngineError } from '../errors.js'
import {
  appendAad,
  encodeOpaqueCiphertext,
  hsmAadPrefix,
  Mechanism,
  parseCiphertext,
  sameKeyId,
  type ParsedCiphertext,
} from '../format/ciphertext.js'
import { notThisKey, unknownVersion } from '../keys/directory.js'
import { checkMechanism, createDekWrapper, type WrapTarget } from './dek-wrapper.js'
import type { BatchItemResult, BatchTask, RootKeyProvider } from '../ports.js'
import { SecretBytes, SecretSlab } from '../secret-bytes.js'

/**
 * Runs a batch against `provider`. An empty item in a wrap batch means "generate a 32-byte DEK".
 * Never throws for a per-item failure; throws (typed) only when the provider itself is unusable.
 */
export async function executeBatch(provider: RootKeyProvider, task: BatchTask): Promise<BatchItemResult[]> {
  const latestHeader = Buffer.from(task.latest.header)
  const byNumber = new Map(
    task.versions.map((v) => {
      const header = Buffer.from(v.header)
      return [v.number, { v, header, target: { providerRef: v.ref, header } }]
    }),
  )
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
  const wrapper = createDekWrapper(provider)
  const latest: WrapTarget = { providerRef: task.latest.ref, header: latestHeader }
  const seal = async (dek: SecretBytes): Promise<string> =>
    (await wrapper.wrapWithHsmAad(latest, dek, aadFor(latestHeader, LATEST, dek.length))).toString('base64')
  // The key the ciphertexts must name: the batch's own, or for reencrypt the source's (every version of a
  // key carries its id, so any listed version's header will do; none listed: no item is of the source).
  const reencrypt = task.op === 'reencrypt'
  const sourceHeader = reencrypt ? byNumber.values().next().value?.header : latestHeader
  // An opaque provider that re-encrypts inside its backend (AWS KMS ReEncrypt) keeps the DEK out of here.
  const inBackend =
    reencrypt && wrapper.mechanism === Mechanism.OPAQUE ? provider.reencryptOpaque?.bind(provider) : undefined
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
        if (sourceHeader === undefined || !sameKeyId(parsed, sourceHeader)) throw notThisKey()
        const entry = byNumber.get(parsed.keyVersion)
        if (entry === undefined) throw unknownVersion(parsed.keyVersion)
        const from = entry.v
        const aad = aadFor(entry.header, from.number, parsed.dekLength)
        if (inBackend !== undefined) {
          checkMechanism(parsed, wrapper.mechanism, provider.name)
          const blob = await inBackend(
            { ref: from.ref, blob: parsed.encrypted, aad },
            { ref: task.latest.ref, aad: aadFor(latestHeader, LATEST, parsed.dekLength) },
          )
          const ciphertext = encodeOpaqueCiphertext(latestHeader, parsed.dekLength, blob).toString('base64')
          out.push({ ok: true, fromVersion: from.number, ciphertext })
          continue
        }
        const room = parsed.dekLength + 16 // GCM output room (RESULTS gotcha 6)
        dek = await wrapper.unwrapWithHsmAad(entry.target, parsed, aad, {
          output: task.op === 'unwrap' ? slab.take(room) : slab.scratch(room),
        })
        const needsNew = task.op !== 'unwrap' || from.number !== task.latest.number
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
