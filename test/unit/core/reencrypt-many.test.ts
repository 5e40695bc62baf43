/**
 * reencryptMany (src/core/wrap/batch.ts, execute-batch.ts): the rules of a batch re-encryption to another
 * key — which key is the source, the key-state checks of both keys, items of other keys, the metering of the
 * destination, opaque providers — over the fakes (test/fakes), inline (no pool). The real token, with and
 * without the worker pool, is in test/integration/softhsm2/reencrypt-many.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { createEngine, type EnvelopeEngine } from '../../../src/index.js'
import type { CallOptions, ProviderCapabilities, RootKeyProvider } from '../../../src/core/ports.js'
import type { SecretBytes } from '../../../src/core/secret-bytes.js'
import { expectCode } from '../../helpers/expect-code.js'
import { InsecureMemoryProvider } from '../../fakes/fake-provider.js'
import { ManualClock } from '../../fakes/manual-clock.js'
import { createMemoryStore } from '../../fakes/memory-store.js'

const I = 'reencrypt-many'
const DAY = 86_400_000

/** The fake as an opaque KMS (blob = IV | tag | ciphertext), with or without an in-backend ReEncrypt. */
class OpaqueMemoryProvider extends InsecureMemoryProvider {
  override readonly capabilities: ProviderCapabilities = {
    importMaterial: false,
    importLengths: [],
    ciphertext: 'opaque',
  }
  reencrypts = 0
  readonly reencryptOpaque?: RootKeyProvider['reencryptOpaque']

  constructor(inBackend: boolean) {
    super()
    if (inBackend) {
      this.reencryptOpaque = async (from, to, opts): Promise<Buffer> => {
        this.reencrypts++
        const dek = await this.decryptOpaque(from.ref, from.blob, from.aad, opts)
        try {
          return await this.encryptOpaque(to.ref, dek, to.aad, opts)
        } finally {
          dek.zeroize()
        }
      }
    }
  }

  async encryptOpaque(ref: string, plaintext: SecretBytes, aad: Buffer, opts?: CallOptions): Promise<Buffer> {
    const s = await this.encrypt(ref, plaintext, aad, opts)
    return Buffer.concat([s.iv, s.tag, s.encrypted])
  }

  async decryptOpaque(ref: string, blob: Buffer, aad: Buffer, opts?: CallOptions): Promise<SecretBytes> {
    const sealed = { iv: blob.subarray(0, 12), tag: blob.subarray(12, 28), encrypted: blob.subarray(28) }
    return this.decrypt(ref, sealed, aad, opts)
  }
}

interface World {
  engine: EnvelopeEngine
  provider: InsecureMemoryProvider
  clock: ManualClock
  key(name: string, options?: { expirationDate?: Date }): Promise<string>
  /** `n` generated DEKs wrapped under `keyId`: their ciphertexts and DEKs. */
  wrapped(keyId: string, n: number, aad?: string[]): Promise<{ cts: string[]; deks: Buffer[] }>
}

async function world(
  o: { provider?: InsecureMemoryProvider; usage?: { limit: number; block: number } } = {},
): Promise<World> {
  const provider = o.provider ?? new InsecureMemoryProvider()
  const clock = new ManualClock()
  const engine = await createEngine({
    provider,
    store: createMemoryStore(),
    clock,
    lifecycle: { minRotationIntervalMs: 0 },
    ...(o.usage === undefined ? {} : { usage: o.usage }),
  })
  return {
    engine,
    provider,
    clock,
    key: async (name, options = {}) => (await engine.createKey(I, { name, ...options })).id,
    wrapped: async (keyId, n, aad) => {
      const w = await engine.wrapMany(I, keyId, n, aad === undefined ? {} : { aad })
      const ok = w.map((r) => {
        if (!r.ok) throw r.error
        return { ciphertext: r.ciphertext, dek: r.plaintext ?? Buffer.alloc(0) }
      })
      return { cts: ok.map((r) => r.ciphertext), deks: ok.map((r) => r.dek) }
    },
  }
}

function codes(out: readonly { ok: boolean; error?: { code: string } }[]): string[] {
  return out.map((r) => (r.ok ? 'ok' : (r.error?.code ?? '?')))
}

describe('reencryptMany', () => {
  it('re-encrypts every ciphertext of the source under the destination latest version; the DEKs unwrap unchanged and are never returned', async () => {
    const w = await world()
    const a = await w.key('source')
    const b = await w.key('destination')
    const v1 = await w.wrapped(a, 5, ['ctx'])
    await w.engine.rotate(I, a)
    const v2 = await w.wrapped(a, 5, ['ctx'])
    const aVersions = (await w.engine.listKeyVersions(I, a)).versions.map((v) => v.id)
    await w.engine.rotate(I, b)
    const out = await w.engine.reencryptMany(I, b, [...v1.cts, ...v2.cts], { aad: ['ctx'], chunkSize: 3 })
    const bLatest = (await w.engine.getKey(I, b)).keyVersion
    const moved = out.map((r, i) => {
      if (!r.ok) throw r.error
      expect(r.sourceKeyId).toBe(a)
      expect(r.sourceKeyVersion.number).toBe(i < 5 ? 1 : 2)
      expect(aVersions).toContain(r.sourceKeyVersion.id)
      expect(r.keyVersion.number).toBe(bLatest.number)
      expect(r.keyVersion.id).toBe(bLatest.id)
      expect('plaintext' in r).toBe(false)
      return r.ciphertext
    })
    // one frozen KeyVersionInfo per version of each key: the source's v1 and the destination's v1 differ
    expect(new Set(out.map((r) => (r.ok ? r.sourceKeyVersion : undefined))).size).toBe(2)
    expect(out[0]?.ok === true && out[0].sourceKeyVersion.id).not.toBe(
      out[0]?.ok === true && out[0].keyVersion.id,
    )
    const u = await w.engine.unwrapMany(I, b, moved, { aad: ['ctx'] })
    expect(u.map((r) => r.ok && r.plaintext.toString('hex'))).toEqual(
      [...v1.deks, ...v2.deks].map((d) => d.toString('hex')),
    )
    // and they are no longer the source's
    expect(codes(await w.engine.unwrapMany(I, a, moved.slice(0, 1), { aad: ['ctx'] }))).toEqual([
      'CIPHERTEXT_INVALID',
    ])
  })

  it('fails items of another key, tampered, unreadable or under another AAD alone, and keeps the rest', async () => {
    const w = await world()
    const a = await w.key('key-a')
    const b = await w.key('key-b')
    const c = await w.key('key-c')
    const ofA = await w.wrapped(a, 3)
    const ofC = await w.wrapped(c, 1)
    const withAad = await w.wrapped(a, 1, ['other'])
    const tampered = Buffer.from(ofA.cts[1] ?? '', 'base64')
    tampered[40] = (tampered[40] as number) ^ 1
    const inputs = [
      ofA.cts[0] ?? '',
      ofC.cts[0] ?? '',
      tampered,
      'not base64!',
      Buffer.alloc(3),
      withAad.cts[0] ?? '',
      ofA.cts[2] ?? '',
    ]
    const out = await w.engine.reencryptMany(I, b, inputs)
    expect(codes(out)).toEqual([
      'ok',
      'CIPHERTEXT_INVALID',
      'UNWRAP_AAD_MISMATCH',
      'CIPHERTEXT_INVALID',
      'CIPHERTEXT_INVALID',
      'UNWRAP_AAD_MISMATCH',
      'ok',
    ])
  })

  it('takes the source from sourceKeyId, else from the first readable ciphertext', async () => {
    const w = await world()
    const a = await w.key('key-a')
    const b = await w.key('key-b')
    const c = await w.key('key-c')
    const ofA = await w.wrapped(a, 2)
    const first = await w.engine.reencryptMany(I, b, ['garbage', ...ofA.cts])
    expect(codes(first)).toEqual(['CIPHERTEXT_INVALID', 'ok', 'ok'])
    expect(first[1]?.ok === true && first[1].sourceKeyId).toBe(a)
    // named by alias too
    await w.engine.addAlias(I, a, 'the-source')
    const named = await w.engine.reencryptMany(I, b, ofA.cts, { sourceKeyId: 'the-source' })
    expect(codes(named)).toEqual(['ok', 'ok'])
    // another source than the ciphertexts': every item is foreign
    expect(codes(await w.engine.reencryptMany(I, b, ofA.cts, { sourceKeyId: c }))).toEqual([
      'CIPHERTEXT_INVALID',
      'CIPHERTEXT_INVALID',
    ])
    // nothing readable and no sourceKeyId: every item fails alone, nothing is decrypted
    const decrypts = w.provider.calls.decrypt
    expect(codes(await w.engine.reencryptMany(I, b, ['x', Buffer.alloc(2)]))).toEqual([
      'CIPHERTEXT_INVALID',
      'CIPHERTEXT_INVALID',
    ])
    expect(w.provider.calls.decrypt).toBe(decrypts)
    expect(await w.engine.reencryptMany(I, b, [])).toEqual([])
    await expectCode(
      w.engine.reencryptMany(I, b, ofA.cts, { sourceKeyId: 42 as unknown as string }),
      'INVALID_FIELD_ERR',
    )
  })

  it('checks both keys once against the key-state table: the destination needs wrap, the source rewrap', async () => {
    const w = await world()
    const a = await w.key('key-a')
    const b = await w.key('key-b')
    const ofA = await w.wrapped(a, 2)
    const decrypts = w.provider.calls.decrypt
    // a disabled (Suspended) destination refuses the whole batch, before any decryption
    await w.engine.disable(I, b)
    await expectCode(w.engine.reencryptMany(I, b, ofA.cts), 'KEY_ACTION_INVALID_STATE_ERR')
    await expectCode(w.engine.reencryptMany(I, b, []), 'KEY_ACTION_INVALID_STATE_ERR')
    w.clock.advance(60_000) // enable waits out the minimum interval between state changes
    await w.engine.enable(I, b)
    // a Suspended source too
    await w.engine.disable(I, a)
    await expectCode(w.engine.reencryptMany(I, b, ofA.cts), 'KEY_ACTION_INVALID_STATE_ERR')
    expect(w.provider.calls.decrypt).toBe(decrypts)
    w.clock.advance(60_000)
    await w.engine.enable(I, a)
    // a Deactivated (expired) source may still be read, as for rewrap; a Deactivated destination may not
    // be wrapped under
    const expiring = await w.key('expiring', { expirationDate: new Date(w.clock.now() + DAY) })
    const ofE = await w.wrapped(expiring, 2)
    w.clock.advance(2 * DAY)
    expect(codes(await w.engine.reencryptMany(I, b, ofE.cts))).toEqual(['ok', 'ok'])
    await expectCode(w.engine.reencryptMany(I, expiring, ofA.cts), 'KEY_ACTION_INVALID_STATE_ERR')
    // a standard key is no destination; unknown keys are not found
    const std = (await w.engine.createKey(I, { name: 'std', extractable: true })).id
    await expectCode(w.engine.reencryptMany(I, std, ofA.cts), 'KEY_ROOT_REQ_ERR')
    await expectCode(
      w.engine.reencryptMany(I, '00000000-0000-4000-8000-000000000000', ofA.cts),
      'KEY_NOT_FOUND_ERR',
    )
    // a deleted source
    await w.engine.deleteKey(I, a)
    await expectCode(w.engine.reencryptMany(I, b, ofA.cts), 'KEY_DELETED_ERR')
  })

  it("meters the destination's AES-GCM usage, not the source's: items past its limit fail alone", async () => {
    const w = await world({ usage: { limit: 10, block: 4 } })
    const a = await w.key('key-a')
    const b = await w.key('key-b')
    const ofA = await w.wrapped(a, 8)
    const more = await w.wrapped(a, 2)
    const out = await w.engine.reencryptMany(I, b, [...ofA.cts, ...more.cts], { chunkSize: 3 })
    expect(codes(out).filter((c) => c === 'ok')).toHaveLength(10)
    const usedB = (await w.engine.usage(I, b)).versions[0]?.usedByThisProcess
    const usedA = (await w.engine.usage(I, a)).versions[0]?.usedByThisProcess
    expect(usedB).toBe(10)
    expect(usedA).toBe(10) // the wraps above only: reading does not count
    const past = await w.engine.reencryptMany(I, b, ofA.cts.slice(0, 3))
    expect(codes(past)).toEqual(['KEY_USAGE_LIMIT_ERR', 'KEY_USAGE_LIMIT_ERR', 'KEY_USAGE_LIMIT_ERR'])
  })

  it('keeps instances apart: a ciphertext of another instance is not found or foreign', async () => {
    const w = await world()
    const a = await w.key('key-a')
    const other = (await w.engine.createKey('other-instance', { name: 'key-b' })).id
    const mine = (await w.engine.createKey('other-instance', { name: 'mine' })).id
    const ofA = await w.wrapped(a, 2)
    const ofMine = (await w.engine.wrapMany('other-instance', mine, 1)).map((r) => (r.ok ? r.ciphertext : ''))
    // the source the first ciphertext names is not a key of this instance
    await expectCode(w.engine.reencryptMany('other-instance', other, ofA.cts), 'KEY_NOT_FOUND_ERR')
    // with a source of this instance, the foreign ciphertext fails alone
    const out = await w.engine.reencryptMany('other-instance', other, [...ofMine, ofA.cts[0] ?? ''], {
      sourceKeyId: mine,
    })
    expect(codes(out)).toEqual(['ok', 'CIPHERTEXT_INVALID'])
  })

  for (const inBackend of [true, false]) {
    it(`opaque provider ${inBackend ? 'with' : 'without'} an in-backend re-encrypt: ${inBackend ? 'reencryptOpaque per item (the backend re-encrypts)' : 'decrypt and encrypt per item'}`, async () => {
      const provider = new OpaqueMemoryProvider(inBackend)
      const w = await world({ provider })
      const a = await w.key('key-a')
      const b = await w.key('key-b')
      const ofA = await w.wrapped(a, 4, ['x'])
      const tampered = Buffer.from(ofA.cts[3] ?? '', 'base64')
      tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1
      const out = await w.engine.reencryptMany(I, b, [...ofA.cts.slice(0, 3), tampered], { aad: ['x'] })
      expect(codes(out)).toEqual(['ok', 'ok', 'ok', 'UNWRAP_AAD_MISMATCH'])
      expect(provider.reencrypts).toBe(inBackend ? 4 : 0)
      const u = await w.engine.unwrapMany(
        I,
        b,
        out.flatMap((r) => (r.ok ? [r.ciphertext] : [])),
        { aad: ['x'] },
      )
      expect(u.map((r) => r.ok && r.plaintext.toString('hex'))).toEqual(
        ofA.deks.slice(0, 3).map((d) => d.toString('hex')),
      )
    })
  }
})
