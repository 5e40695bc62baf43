/**
 * The conformance suite every RootKeyProvider must pass against the real backend. A provider is done
 * when this passes for it. Providers come in two ciphertext shapes (`capabilities.ciphertext`): AES-GCM
 * parts (PKCS#11) or an opaque blob (AWS KMS); every property is checked through the provider's own shape,
 * and what a provider lacks is asserted to be refused with a typed error, not skipped.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SecretBytes, type GcmSealed, type RootKeyProvider } from '../../src/index.js'
import { expectCode } from '../helpers/expect-code.js'

type Sealed = { readonly gcm: GcmSealed } | { readonly blob: Buffer }

export function runRootKeyProviderConformance(name: string, open: () => Promise<RootKeyProvider>): void {
  describe(`RootKeyProvider conformance: ${name}`, () => {
    let p: RootKeyProvider
    let opaque = false
    const catalogId = randomUUID()
    const aad = Buffer.from('conformance-aad')
    const created: string[] = []
    beforeAll(async () => {
      p = await open()
      opaque = p.capabilities.ciphertext === 'opaque'
    })
    afterAll(async () => {
      for (const ref of created) await p.destroyVersion(ref)
      await p.close()
      await p.close() // idempotent
    })

    async function version(material?: Buffer): Promise<string> {
      const ref = await p.createVersion({
        catalogId,
        keyId: randomUUID(),
        version: 1,
        material: material === undefined ? undefined : SecretBytes.copyOf(material),
      })
      created.push(ref)
      return ref
    }

    async function enc(
      ref: string,
      pt: Buffer,
      a: Buffer = aad,
      opts?: { signal: AbortSignal },
    ): Promise<Sealed> {
      if (!opaque) return { gcm: await p.encrypt(ref, SecretBytes.copyOf(pt), a, opts) }
      if (p.encryptOpaque === undefined) throw new Error(`${name}: opaque without encryptOpaque`)
      return { blob: await p.encryptOpaque(ref, SecretBytes.copyOf(pt), a, opts) }
    }

    async function dec(ref: string, s: Sealed, a: Buffer = aad): Promise<SecretBytes> {
      if ('gcm' in s) return p.decrypt(ref, s.gcm, a)
      if (p.decryptOpaque === undefined) throw new Error(`${name}: opaque without decryptOpaque`)
      return p.decryptOpaque(ref, s.blob, a)
    }

    const flip = (b: Buffer, at = 0): Buffer => {
      const c = Buffer.from(b)
      c[at] = (c[at] as number) ^ 1
      return c
    }

    /** Every part of a ciphertext altered, one at a time. */
    function tampered(s: Sealed): [string, Sealed][] {
      if ('gcm' in s) {
        const g = s.gcm
        return [
          ['tag', { gcm: { ...g, tag: flip(g.tag) } }],
          ['IV', { gcm: { ...g, iv: flip(g.iv) } }],
          ['body', { gcm: { ...g, encrypted: flip(g.encrypted) } }],
        ]
      }
      const b = s.blob
      return [
        ['first byte', { blob: flip(b, 0) }],
        ['middle byte', { blob: flip(b, b.length >> 1) }],
        ['last byte', { blob: flip(b, b.length - 1) }],
        ['truncated', { blob: b.subarray(0, b.length - 1) }],
      ]
    }

    it('encrypt then decrypt returns the plaintext, in the provider’s declared shape', async () => {
      const ref = await version()
      for (const n of [1, 32, 4096]) {
        const pt = Buffer.alloc(n, 0x5a)
        const sealed = await enc(ref, pt)
        if ('gcm' in sealed) {
          expect(sealed.gcm.iv).toHaveLength(12)
          expect(sealed.gcm.tag).toHaveLength(16)
          expect(sealed.gcm.encrypted).toHaveLength(n)
          if (n >= 16) expect(sealed.gcm.encrypted.equals(pt)).toBe(false) // shorter ones may match by chance
        } else {
          expect(sealed.blob.length).toBeGreaterThan(n)
          if (n >= 16) expect(sealed.blob.includes(pt)).toBe(false)
        }
        const out = await dec(ref, sealed)
        expect(out.bytes.equals(pt)).toBe(true)
        out.zeroize()
      }
    })

    it('ciphertexts do not repeat across encryptions of the same plaintext (fresh IVs)', async () => {
      const ref = await version()
      const seen = new Set<string>()
      for (let i = 0; i < 200; i++) {
        const s = await enc(ref, Buffer.alloc(32))
        seen.add('gcm' in s ? s.gcm.iv.toString('hex') : s.blob.toString('hex'))
      }
      expect(seen.size).toBe(200)
    })

    it('decrypt fails with UNWRAP_AAD_MISMATCH for another AAD, any altered part, or another key version', async () => {
      const ref = await version()
      const other = await version()
      const sealed = await enc(ref, Buffer.alloc(32, 1))
      await expectCode(dec(ref, sealed, Buffer.from('other-aad')), 'UNWRAP_AAD_MISMATCH')
      for (const [what, t] of tampered(sealed)) {
        const e = await expectCode(dec(ref, t), 'UNWRAP_AAD_MISMATCH')
        expect(e.message, what).not.toMatch(/[0-9a-f]{64}/) // no key bytes or blobs in messages
      }
      await expectCode(dec(other, sealed), 'UNWRAP_AAD_MISMATCH')
      // the provider keeps working after failures
      expect((await dec(ref, sealed)).length).toBe(32)
    })

    it('the methods of the other ciphertext shape refuse with PROVIDER_UNSUPPORTED', async () => {
      const ref = await version()
      if (opaque) {
        await expectCode(p.encrypt(ref, SecretBytes.copyOf(Buffer.alloc(32)), aad), 'PROVIDER_UNSUPPORTED')
        const g = { iv: Buffer.alloc(12), encrypted: Buffer.alloc(32), tag: Buffer.alloc(16) }
        await expectCode(p.decrypt(ref, g, aad), 'PROVIDER_UNSUPPORTED')
      } else {
        const methods = p as unknown as Record<string, unknown>
        expect(
          ['encryptOpaque', 'decryptOpaque', 'reencryptOpaque'].filter((m) => methods[m] !== undefined),
        ).toEqual([])
      }
    })

    it('imported material encrypts exactly as AES-GCM with that key (node:crypto), or is refused with PROVIDER_UNSUPPORTED', async () => {
      if (!p.capabilities.importMaterial) {
        expect(p.capabilities.importLengths).toEqual([])
        await expectCode(version(Buffer.alloc(32, 0x42)), 'PROVIDER_UNSUPPORTED')
        return
      }
      const { createDecipheriv } = await import('node:crypto')
      for (const len of p.capabilities.importLengths) {
        const material = Buffer.alloc(len, 0x42)
        const ref = await version(material)
        const pt = Buffer.from('known plaintext for conformance')
        const sealed = await p.encrypt(ref, SecretBytes.copyOf(pt), aad)
        const d = createDecipheriv(`aes-${len * 8}-gcm` as 'aes-256-gcm', material, sealed.iv)
        d.setAAD(aad)
        d.setAuthTag(sealed.tag)
        expect(Buffer.concat([d.update(sealed.encrypted), d.final()]).equals(pt)).toBe(true)
      }
      await expectCode(version(Buffer.alloc(20)), 'INVALID_FIELD_ERR')
    })

    it('listObjects finds created versions with their catalog, key and version', async () => {
      const keyId = randomUUID()
      const ref = await p.createVersion({ catalogId, keyId, version: 7 })
      created.push(ref)
      const found = (await p.listObjects()).find((o) => o.ref === ref)
      expect(found).toEqual({ ref, catalogId, keyId, version: 7 })
    })

    it('destroyVersion removes the version; using it afterwards fails with a typed error; destroying again succeeds', async () => {
      const ref = await version()
      const sealed = await enc(ref, Buffer.alloc(32, 7))
      await p.destroyVersion(ref)
      await p.destroyVersion(ref)
      expect((await p.listObjects()).some((o) => o.ref === ref)).toBe(false)
      // PKCS#11: the object is gone for good (KEY_VERSION_MATERIAL_MISSING). KMS: the key is pending
      // deletion (a state error). Neither is retryable: no retry brings the material back.
      for (const e of [
        await expectCode(
          enc(ref, Buffer.alloc(32)),
          'KEY_VERSION_MATERIAL_MISSING',
          'KEY_ACTION_INVALID_STATE_ERR',
        ),
        await expectCode(dec(ref, sealed), 'KEY_VERSION_MATERIAL_MISSING', 'KEY_ACTION_INVALID_STATE_ERR'),
      ]) {
        expect(e.retryable).toBe(false)
      }
    })

    it('generateRandom returns distinct buffers of the asked length', async () => {
      const a = await p.generateRandom(32)
      const b = await p.generateRandom(32)
      expect(a.length).toBe(32)
      expect(a.bytes.equals(b.bytes)).toBe(false)
      expect((await p.generateRandom(1)).length).toBe(1)
    })

    it('health reports ok', async () => {
      expect((await p.health()).ok).toBe(true)
    })

    it('an aborted signal stops the call with ABORTED', async () => {
      const ref = await version()
      const ac = new AbortController()
      ac.abort()
      await expectCode(enc(ref, Buffer.alloc(32), aad, { signal: ac.signal }), 'ABORTED')
    })
  })
}
