/**
 * The conformance suite every RootKeyProvider must pass against the real backend. A provider is done
 * when this passes for it; capabilities it lacks are skipped out loud.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SecretBytes, type RootKeyProvider } from '../../src/index.js'
import { expectCode } from '../helpers/expect-code.js'

export function runRootKeyProviderConformance(name: string, open: () => Promise<RootKeyProvider>): void {
  describe(`RootKeyProvider conformance: ${name}`, () => {
    let p: RootKeyProvider
    const catalogId = randomUUID()
    const aad = Buffer.from('conformance-aad')
    const created: string[] = []
    beforeAll(async () => {
      p = await open()
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

    it('encrypt then decrypt returns the plaintext, with a 12-byte IV and a 16-byte tag', async () => {
      const ref = await version()
      for (const n of [1, 32, 4096]) {
        const pt = Buffer.alloc(n, 0x5a)
        const sealed = await p.encrypt(ref, SecretBytes.copyOf(pt), aad)
        expect(sealed.iv).toHaveLength(12)
        expect(sealed.tag).toHaveLength(16)
        expect(sealed.encrypted).toHaveLength(n)
        if (n >= 16) expect(sealed.encrypted.equals(pt)).toBe(false) // shorter ones may match by chance
        const out = await p.decrypt(ref, sealed, aad)
        expect(out.bytes.equals(pt)).toBe(true)
        out.zeroize()
      }
    })

    it('IVs do not repeat across encryptions', async () => {
      const ref = await version()
      const ivs = new Set<string>()
      for (let i = 0; i < 200; i++)
        ivs.add((await p.encrypt(ref, SecretBytes.copyOf(Buffer.alloc(32)), aad)).iv.toString('hex'))
      expect(ivs.size).toBe(200)
    })

    it('decrypt fails with UNWRAP_AAD_MISMATCH for another AAD, an altered tag, IV or body, or another key version', async () => {
      const ref = await version()
      const other = await version()
      const sealed = await p.encrypt(ref, SecretBytes.copyOf(Buffer.alloc(32, 1)), aad)
      const flip = (b: Buffer): Buffer => {
        const c = Buffer.from(b)
        c[0] = (c[0] as number) ^ 1
        return c
      }
      await expectCode(p.decrypt(ref, sealed, Buffer.from('other-aad')), 'UNWRAP_AAD_MISMATCH')
      await expectCode(p.decrypt(ref, { ...sealed, tag: flip(sealed.tag) }, aad), 'UNWRAP_AAD_MISMATCH')
      await expectCode(p.decrypt(ref, { ...sealed, iv: flip(sealed.iv) }, aad), 'UNWRAP_AAD_MISMATCH')
      await expectCode(
        p.decrypt(ref, { ...sealed, encrypted: flip(sealed.encrypted) }, aad),
        'UNWRAP_AAD_MISMATCH',
      )
      await expectCode(p.decrypt(other, sealed, aad), 'UNWRAP_AAD_MISMATCH')
      // the provider keeps working after failures
      expect((await p.decrypt(ref, sealed, aad)).length).toBe(32)
    })

    it('imported material encrypts exactly as AES-GCM with that key (checked with node:crypto)', async (ctx) => {
      if (!p.capabilities.importMaterial) return ctx.skip(`${name} cannot import key material`)
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

    it('destroyVersion removes the version; using it afterwards fails; destroying again succeeds', async () => {
      const ref = await version()
      await p.destroyVersion(ref)
      await p.destroyVersion(ref)
      expect((await p.listObjects()).some((o) => o.ref === ref)).toBe(false)
      await expectCode(p.encrypt(ref, SecretBytes.copyOf(Buffer.alloc(32)), aad), 'PROVIDER_ERROR')
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
      await expectCode(
        p.encrypt(ref, SecretBytes.copyOf(Buffer.alloc(32)), aad, { signal: ac.signal }),
        'ABORTED',
      )
    })
  })
}
