/**
 * The engine against a real SoftHSM2 token and a real SQLite file: wrap / unwrap / rewrap, rotation,
 * states, isolation and tampering.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KeyState, parseCiphertext } from '../../../src/index.js'
import { expectCode } from '../../helpers/expect-code.js'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'

const HOUR = 3_600_000
const A = 'instance-a'
const B = 'instance-b'

let t: TestEngine
beforeAll(async () => {
  t = await openTestEngine()
})
afterAll(async () => {
  await t.engine.close()
})

describe('wrap and unwrap', () => {
  it('unwrap returns the DEK that wrap generated, and the generated DEK is 32 random bytes', async () => {
    const key = await t.engine.createKey(A, { name: 'roundtrip' })
    const w1 = await t.engine.wrap(A, key.id, { aad: ['order-42'] })
    const w2 = await t.engine.wrap(A, key.id, { aad: ['order-42'] })
    expect(w1.plaintext).toHaveLength(32)
    expect(w1.plaintext?.equals(w2.plaintext ?? Buffer.alloc(0))).toBe(false)
    expect(w1.plaintext?.equals(Buffer.alloc(32))).toBe(false)
    expect(w1.ciphertext).not.toBe(w2.ciphertext)
    expect(w1.keyVersion).toMatchObject({ id: key.id, number: 1 })
    const u = await t.engine.unwrap(A, key.id, w1.ciphertext, { aad: ['order-42'] })
    expect(u.plaintext.equals(w1.plaintext ?? Buffer.alloc(0))).toBe(true)
    expect(u.rewrapped).toBeUndefined()
    expect(u.keyVersion.number).toBe(1)
  })

  it('wraps caller DEKs of 1 and 4096 bytes and refuses 0 and 4097 with INVALID_FIELD_ERR', async () => {
    const key = await t.engine.createKey(A, { name: 'caller-dek' })
    for (const n of [1, 4096]) {
      const dek = Buffer.alloc(n, 7)
      const w = await t.engine.wrap(A, key.id, { plaintext: dek })
      expect(w.plaintext).toBeUndefined()
      const u = await t.engine.unwrap(A, key.id, w.ciphertext)
      expect(u.plaintext.equals(dek)).toBe(true)
    }
    for (const n of [0, 4097]) {
      const e = await expectCode(
        t.engine.wrap(A, key.id, { plaintext: Buffer.alloc(n) }),
        'INVALID_FIELD_ERR',
      )
      expect(e.target?.name).toBe('plaintext')
    }
  })

  it('unwrap fails with UNWRAP_AAD_MISMATCH when the AAD differs', async () => {
    const key = await t.engine.createKey(A, { name: 'aad' })
    const w = await t.engine.wrap(A, key.id, { aad: ['a', 'b'] })
    for (const aad of [undefined, ['a'], ['b', 'a'], ['ab'], ['a', 'b', ''], ['a', 'B']]) {
      await expectCode(
        t.engine.unwrap(A, key.id, w.ciphertext, aad === undefined ? {} : { aad }),
        'UNWRAP_AAD_MISMATCH',
      )
    }
    await expectCode(t.engine.rewrap(A, key.id, w.ciphertext, { aad: ['a'] }), 'UNWRAP_AAD_MISMATCH')
    // a bad call changes nothing: the right AAD still works
    expect((await t.engine.unwrap(A, key.id, w.ciphertext, { aad: ['a', 'b'] })).plaintext).toHaveLength(32)
  })

  it('every bit flip of a ciphertext fails with a typed error, never a crash', async () => {
    const key = await t.engine.createKey(A, { name: 'bitflip' })
    const w = await t.engine.wrap(A, key.id, { aad: ['x'] })
    const bytes = Buffer.from(w.ciphertext, 'base64')
    let failures = 0
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const c = Buffer.from(bytes)
        c[i] = (c[i] as number) ^ (1 << bit)
        await expectCode(
          t.engine.unwrap(A, key.id, c, { aad: ['x'] }),
          'CIPHERTEXT_INVALID',
          'UNWRAP_AAD_MISMATCH',
          'KEY_VERSION_NOT_FOUND',
        )
        failures++
      }
    }
    expect(failures).toBe(bytes.length * 8)
    expect((await t.engine.unwrap(A, key.id, bytes, { aad: ['x'] })).plaintext).toHaveLength(32)
  })

  it('every truncation and extension of a ciphertext fails with CIPHERTEXT_INVALID', async () => {
    const key = await t.engine.createKey(A, { name: 'truncate' })
    const w = await t.engine.wrap(A, key.id)
    const bytes = Buffer.from(w.ciphertext, 'base64')
    for (let n = 0; n < bytes.length; n++) {
      await expectCode(t.engine.unwrap(A, key.id, bytes.subarray(0, n)), 'CIPHERTEXT_INVALID')
    }
    await expectCode(
      t.engine.unwrap(A, key.id, Buffer.concat([bytes, Buffer.from([0])])),
      'CIPHERTEXT_INVALID',
    )
    await expectCode(t.engine.unwrap(A, key.id, `${w.ciphertext}AA==`), 'CIPHERTEXT_INVALID')
    await expectCode(t.engine.unwrap(A, key.id, 'not base64!'), 'CIPHERTEXT_INVALID')
    await expectCode(t.engine.unwrap(A, key.id, ''), 'CIPHERTEXT_INVALID')
  })

  it('a ciphertext of another key fails with CIPHERTEXT_INVALID', async () => {
    const k1 = await t.engine.createKey(A, { name: 'other-1' })
    const k2 = await t.engine.createKey(A, { name: 'other-2' })
    const w = await t.engine.wrap(A, k1.id)
    await expectCode(t.engine.unwrap(A, k2.id, w.ciphertext), 'CIPHERTEXT_INVALID')
    await expectCode(t.engine.rewrap(A, k2.id, w.ciphertext), 'CIPHERTEXT_INVALID')
  })

  it('a ciphertext naming a version the key does not have fails with KEY_VERSION_NOT_FOUND', async () => {
    const key = await t.engine.createKey(A, { name: 'unknown-version' })
    const w = Buffer.from((await t.engine.wrap(A, key.id)).ciphertext, 'base64')
    w.writeUInt32BE(7, 18)
    await expectCode(t.engine.unwrap(A, key.id, w), 'KEY_VERSION_NOT_FOUND')
  })

  it('1,000 concurrent wrap and unwrap promises all succeed', async () => {
    const key = await t.engine.createKey(A, { name: 'concurrent' })
    const wraps = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => t.engine.wrap(A, key.id, { aad: [`n${i}`] })),
    )
    const unwraps = await Promise.all(
      wraps.map((w, i) => t.engine.unwrap(A, key.id, w.ciphertext, { aad: [`n${i}`] })),
    )
    unwraps.forEach((u, i) => expect(u.plaintext.equals(wraps[i]?.plaintext ?? Buffer.alloc(0))).toBe(true))
  })
})

describe('rotation and versions', () => {
  it('unwrap of a v1 ciphertext after two rotations returns the plaintext and a v3 ciphertext', async () => {
    const key = await t.engine.createKey(A, { name: 'rotate-twice' })
    const w = await t.engine.wrap(A, key.id, { aad: ['r'] })
    const r1 = await t.engine.rotate(A, key.id)
    t.clock.advance(HOUR)
    const r2 = await t.engine.rotate(A, key.id)
    expect(r1.keyVersion.number).toBe(2)
    expect(r2.keyVersion.number).toBe(3)
    expect(r2.keyVersion.id).not.toBe(key.id)
    expect(r2.lastRotatedAt).toBeInstanceOf(Date)
    const u = await t.engine.unwrap(A, key.id, w.ciphertext, { aad: ['r'] })
    expect(u.plaintext.equals(w.plaintext ?? Buffer.alloc(0))).toBe(true)
    expect(u.keyVersion.number).toBe(1)
    expect(u.rewrapped?.keyVersion).toMatchObject({ number: 3, id: r2.keyVersion.id })
    expect(parseCiphertext(u.rewrapped?.ciphertext ?? '').keyVersion).toBe(3)
    const u3 = await t.engine.unwrap(A, key.id, u.rewrapped?.ciphertext ?? '', { aad: ['r'] })
    expect(u3.plaintext.equals(u.plaintext)).toBe(true)
    expect(u3.rewrapped).toBeUndefined()
    // new wraps use the latest version
    expect((await t.engine.wrap(A, key.id)).keyVersion.number).toBe(3)
    const versions = await t.engine.listKeyVersions(A, key.id)
    expect(versions.total).toBe(3)
    expect(versions.versions.map((v) => v.number)).toEqual([1, 2, 3])
    expect(versions.versions[0]?.id).toBe(key.id)
  })

  it('rewrap moves a ciphertext to the latest version without changing the DEK', async () => {
    const key = await t.engine.createKey(A, { name: 'rewrap' })
    const w = await t.engine.wrap(A, key.id, { aad: ['q'] })
    await t.engine.rotate(A, key.id)
    const rw = await t.engine.rewrap(A, key.id, w.ciphertext, { aad: ['q'] })
    expect(rw.keyVersion.number).toBe(1)
    expect(rw.rewrappedKeyVersion.number).toBe(2)
    expect(parseCiphertext(rw.ciphertext).keyVersion).toBe(2)
    const u = await t.engine.unwrap(A, key.id, rw.ciphertext, { aad: ['q'] })
    expect(u.plaintext.equals(w.plaintext ?? Buffer.alloc(0))).toBe(true)
  })

  it('rotation more than once an hour fails with KEY_ROTATION_NOT_PERMITTED', async () => {
    const key = await t.engine.createKey(A, { name: 'rate' })
    await t.engine.rotate(A, key.id)
    await expectCode(t.engine.rotate(A, key.id), 'KEY_ROTATION_NOT_PERMITTED')
    t.clock.advance(HOUR)
    expect((await t.engine.rotate(A, key.id)).keyVersion.number).toBe(3)
  })

  it('every root key version on the token reads back CKA_SENSITIVE=true and CKA_EXTRACTABLE=false', async () => {
    const key = await t.engine.createKey(A, { name: 'attrs' })
    await t.engine.rotate(A, key.id)
    const versions = await t.store.listVersions(A, key.id)
    expect(versions).toHaveLength(2)
    for (const v of versions) {
      const a = await t.provider.inspectVersion(v.providerRef)
      expect(a).toMatchObject({
        token: true,
        sensitive: true,
        extractable: false,
        alwaysSensitive: true,
        neverExtractable: true,
        local: true,
        encrypt: true,
        decrypt: true,
        wrap: false,
        unwrap: false,
        valueLen: 32,
      })
      expect(a.label).toBe(`ekms/v1/${t.store.catalogId}/${key.id}/${v.version}`)
    }
  })
})

describe('states', () => {
  it('a disabled key refuses wrap and unwrap with KEY_ACTION_INVALID_STATE_ERR until enabled', async () => {
    const key = await t.engine.createKey(A, { name: 'disable' })
    const w = await t.engine.wrap(A, key.id)
    expect((await t.engine.disable(A, key.id)).state).toBe(KeyState.SUSPENDED)
    await expectCode(t.engine.wrap(A, key.id), 'KEY_ACTION_INVALID_STATE_ERR')
    await expectCode(t.engine.unwrap(A, key.id, w.ciphertext), 'KEY_ACTION_INVALID_STATE_ERR')
    await expectCode(t.engine.rewrap(A, key.id, w.ciphertext), 'KEY_ACTION_INVALID_STATE_ERR')
    await expectCode(t.engine.rotate(A, key.id), 'KEY_ACTION_INVALID_STATE_ERR')
    await expectCode(t.engine.disable(A, key.id), 'KEY_ACTION_INVALID_STATE_ERR')
    // Key Protect: enable is refused within 30 s of a state change
    await expectCode(t.engine.enable(A, key.id), 'KEY_ACTION_INVALID_STATE_ERR')
    t.clock.advance(30_000)
    expect((await t.engine.enable(A, key.id)).state).toBe(KeyState.ACTIVE)
    expect((await t.engine.unwrap(A, key.id, w.ciphertext)).plaintext).toHaveLength(32)
    await expectCode(t.engine.enable(A, key.id), 'KEY_ACTION_INVALID_STATE_ERR')
  })

  it('a deleted key fails with KEY_DELETED_ERR; restore brings it back; purge removes it for good', async () => {
    const key = await t.engine.createKey(A, { name: 'delete', aliases: ['to-delete'] })
    const w = await t.engine.wrap(A, key.id, { aad: ['d'] })
    const d = await t.engine.deleteKey(A, 'to-delete', { deletedBy: 'alice' })
    expect(d).toMatchObject({
      state: 5,
      deleted: true,
      deletedBy: 'alice',
      restoreAllowed: false,
      purgeAllowed: false,
    })
    await expectCode(t.engine.wrap(A, key.id), 'KEY_DELETED_ERR')
    await expectCode(t.engine.unwrap(A, key.id, w.ciphertext, { aad: ['d'] }), 'KEY_DELETED_ERR')
    await expectCode(t.engine.rotate(A, key.id), 'KEY_DELETED_ERR')
    await expectCode(t.engine.deleteKey(A, key.id), 'KEY_DELETED_ERR')
    await expectCode(t.engine.listKeyVersions(A, key.id), 'KEY_DELETED_ERR')
    expect((await t.engine.listKeyVersions(A, key.id, { allKeyStates: true })).total).toBe(1)
    expect((await t.engine.getKey(A, key.id)).state).toBe(5)
    // restore: not within 30 s, then yes
    await expectCode(t.engine.restoreKey(A, key.id), 'REQ_TOO_EARLY_ERR')
    t.clock.advance(30_000)
    const r = await t.engine.restoreKey(A, key.id)
    expect(r).toMatchObject({ state: 1, deleted: false, deletedAt: undefined })
    const u = await t.engine.unwrap(A, key.id, w.ciphertext, { aad: ['d'] })
    expect(u.plaintext.equals(w.plaintext ?? Buffer.alloc(0))).toBe(true)
    await expectCode(t.engine.restoreKey(A, key.id), 'KEY_ACTION_INVALID_STATE_ERR')
    await expectCode(t.engine.purgeKey(A, key.id), 'KEY_ACTION_INVALID_STATE_ERR')
    // purge: only 4 h after deletion
    await t.engine.deleteKey(A, key.id)
    await expectCode(t.engine.purgeKey(A, key.id), 'REQ_TOO_EARLY_ERR')
    t.clock.advance(4 * HOUR)
    expect((await t.engine.getKey(A, key.id)).purgeAllowed).toBe(true)
    const refs = (await t.store.listVersions(A, key.id)).map((v) => v.providerRef)
    await t.engine.purgeKey(A, key.id)
    await expectCode(t.engine.getKey(A, key.id), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.unwrap(A, key.id, w.ciphertext, { aad: ['d'] }), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.getKey(A, 'to-delete'), 'KEY_NOT_FOUND_ERR')
    for (const ref of refs) await expectCode(t.provider.inspectVersion(ref), 'PROVIDER_ERROR')
  })

  it('a key past its restore window cannot be restored', async () => {
    const key = await t.engine.createKey(A, { name: 'restore-window' })
    await t.engine.deleteKey(A, key.id)
    t.clock.advance(31 * 24 * HOUR)
    expect((await t.engine.getKey(A, key.id)).restoreAllowed).toBe(false)
    await expectCode(t.engine.restoreKey(A, key.id), 'KEY_ACTION_INVALID_STATE_ERR')
  })

  it('a key past its expiration date is Deactivated (3): unwrap works, wrap is refused', async () => {
    const key = await t.engine.createKey(A, {
      name: 'expiring',
      expirationDate: new Date(t.clock.now() + 1000),
    })
    const w = await t.engine.wrap(A, key.id)
    t.clock.advance(1000)
    expect((await t.engine.getKey(A, key.id)).state).toBe(KeyState.DEACTIVATED)
    await expectCode(t.engine.wrap(A, key.id), 'KEY_ACTION_INVALID_STATE_ERR')
    expect((await t.engine.unwrap(A, key.id, w.ciphertext)).plaintext).toHaveLength(32)
  })
})

describe('instances', () => {
  it("instance B can neither see nor use instance A's key: KEY_NOT_FOUND_ERR, as for a key that does not exist", async () => {
    const key = await t.engine.createKey(A, { name: 'isolated', aliases: ['shared-name'] })
    const w = await t.engine.wrap(A, key.id)
    const missing = await expectCode(
      t.engine.getKey(B, '00000000-0000-4000-8000-000000000000'),
      'KEY_NOT_FOUND_ERR',
    )
    const foreign = await expectCode(t.engine.getKey(B, key.id), 'KEY_NOT_FOUND_ERR')
    expect(foreign.message).toBe(missing.message)
    await expectCode(t.engine.wrap(B, key.id), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.unwrap(B, key.id, w.ciphertext), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.rotate(B, key.id), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.disable(B, key.id), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.deleteKey(B, key.id), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.getKey(B, 'shared-name'), 'KEY_NOT_FOUND_ERR')
    expect((await t.engine.listKeys(B)).keys.map((k) => k.id)).not.toContain(key.id)
    // B may use the same alias for its own key
    const kb = await t.engine.createKey(B, { name: 'b-key', aliases: ['shared-name'] })
    expect((await t.engine.getKey(B, 'shared-name')).id).toBe(kb.id)
    expect((await t.engine.getKey(A, 'shared-name')).id).toBe(key.id)
    // a ciphertext of A's key given to B's key is not B's
    await expectCode(t.engine.unwrap(B, kb.id, w.ciphertext), 'CIPHERTEXT_INVALID')
  })

  it('the instance is bound into the ciphertext: the same key id under another instance does not authenticate', async () => {
    // Catalog-level move of a key row to another instance (as a tampered catalog would do) must not
    // let that instance unwrap: the instance is part of the AAD.
    const key = await t.engine.createKey(A, { name: 'bound' })
    const w = await t.engine.wrap(A, key.id)
    const parsed = parseCiphertext(w.ciphertext)
    const ref = (await t.store.listVersions(A, key.id))[0]?.providerRef ?? ''
    const { buildHsmAad } = await import('../../../src/core/format/ciphertext.js')
    await expectCode(
      t.provider.decrypt(ref, parsed, buildHsmAad(parsed.header, parsed.encrypted.length, B, [])),
      'UNWRAP_AAD_MISMATCH',
    )
    expect(
      (await t.provider.decrypt(ref, parsed, buildHsmAad(parsed.header, parsed.encrypted.length, A, [])))
        .length,
    ).toBe(32)
  })

  it('rejects malformed instance ids with INVALID_FIELD_ERR', async () => {
    for (const bad of ['', ' a', 'a b', 'x'.repeat(129), '../etc']) {
      await expectCode(t.engine.createKey(bad, { name: 'nope' }), 'INVALID_FIELD_ERR')
      await expectCode(t.engine.wrap(bad, '00000000-0000-4000-8000-000000000000'), 'INVALID_FIELD_ERR')
    }
  })
})

describe('key kinds and metadata', () => {
  it('imported root keys: material becomes a sensitive, non-extractable token object flagged imported', async () => {
    const material = Buffer.alloc(32, 0x11)
    const key = await t.engine.createKey(A, { name: 'imported', payload: material })
    expect(key.imported).toBe(true)
    expect(key.extractable).toBe(false)
    const ref = (await t.store.listVersions(A, key.id))[0]?.providerRef ?? ''
    expect(await t.provider.inspectVersion(ref)).toMatchObject({
      sensitive: true,
      extractable: false,
      local: false,
    })
    const w = await t.engine.wrap(A, key.id, { aad: ['i'] })
    expect((await t.engine.unwrap(A, key.id, w.ciphertext, { aad: ['i'] })).plaintext).toHaveLength(32)
    // an imported key rotates only with new material
    await expectCode(t.engine.rotate(A, key.id), 'MISSING_FIELD_ERR')
    await t.engine.rotate(A, key.id, { payload: Buffer.alloc(16, 0x22) })
    // restore needs the original (current) material, checked against the HSM copy
    await t.engine.deleteKey(A, key.id)
    t.clock.advance(30_000)
    await expectCode(t.engine.restoreKey(A, key.id), 'MISSING_FIELD_ERR')
    await expectCode(t.engine.restoreKey(A, key.id, { payload: Buffer.alloc(16, 0x23) }), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.restoreKey(A, key.id, { payload: material }), 'INVALID_FIELD_ERR')
    expect((await t.engine.restoreKey(A, key.id, { payload: Buffer.alloc(16, 0x22) })).state).toBe(1)
    expect(
      (await t.engine.unwrap(A, key.id, w.ciphertext, { aad: ['i'] })).rewrapped?.keyVersion.number,
    ).toBe(2)
  })

  it('refuses imported root key material that is not an AES key length', async () => {
    for (const n of [0, 15, 17, 31, 33]) {
      await expectCode(
        t.engine.createKey(A, { name: 'bad-import', payload: Buffer.alloc(n) }),
        'INVALID_FIELD_ERR',
      )
    }
  })

  it('standard keys return their payload and store it only wrapped under an HSM root key', async () => {
    const generated = await t.engine.createKey(A, { name: 'std-gen', extractable: true })
    expect(generated).toMatchObject({ extractable: true, imported: false })
    const p1 = await t.engine.getKeyPayload(A, generated.id)
    expect(p1).toHaveLength(32)
    const supplied = Buffer.from('standard-key-material')
    const imported = await t.engine.createKey(A, { name: 'std-imp', extractable: true, payload: supplied })
    expect((await t.engine.getKeyPayload(A, imported.id)).equals(supplied)).toBe(true)
    const rec = await t.store.getKey(A, imported.id)
    expect(rec?.wrappedPayload).toBeDefined()
    expect(rec?.wrappedPayload?.includes(supplied)).toBe(false)
    // the system key that wraps it is hidden from the instance
    const listed = (await t.engine.listKeys(A, { limit: 5000 })).keys
    expect(listed.some((k) => k.name.startsWith('system:'))).toBe(false)
    const sys = parseCiphertext(rec?.wrappedPayload ?? Buffer.alloc(0)).keyId
    await expectCode(t.engine.getKey(A, sys), 'KEY_NOT_FOUND_ERR')
    await expectCode(t.engine.wrap(A, sys), 'KEY_NOT_FOUND_ERR')
    // root-key-only actions
    await expectCode(t.engine.wrap(A, imported.id), 'KEY_ROOT_REQ_ERR')
    await expectCode(t.engine.rotate(A, imported.id), 'KEY_ROOT_REQ_ERR')
    await expectCode(t.engine.disable(A, imported.id), 'KEY_ROOT_REQ_ERR')
    const root = await t.engine.createKey(A, { name: 'not-extractable' })
    await expectCode(t.engine.getKeyPayload(A, root.id), 'KEY_NOT_EXTRACTABLE_ERR')
    // deleted standard keys do not release their payload
    await t.engine.deleteKey(A, imported.id)
    await expectCode(t.engine.getKeyPayload(A, imported.id), 'KEY_DELETED_ERR')
  })

  it('lists keys with paging, state and kind filters, and resolves aliases anywhere an id is accepted', async () => {
    const inst = 'listing'
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      t.clock.advance(1)
      ids.push((await t.engine.createKey(inst, { name: `k-${i}`, aliases: [`alias-${i}`] })).id)
    }
    await t.engine.createKey(inst, { name: 'std', extractable: true })
    await t.engine.deleteKey(inst, ids[4] ?? '')
    const page1 = await t.engine.listKeys(inst, { limit: 2, offset: 0, extractable: false })
    const page2 = await t.engine.listKeys(inst, { limit: 2, offset: 2, extractable: false })
    expect(page1.total).toBe(4)
    expect([...page1.keys, ...page2.keys].map((k) => k.id)).toEqual(ids.slice(0, 4))
    expect((await t.engine.listKeys(inst, { states: [5] })).keys.map((k) => k.id)).toEqual([ids[4]])
    expect((await t.engine.listKeys(inst, { extractable: true })).total).toBe(1)
    expect((await t.engine.listKeys(inst)).total).toBe(5)
    await expectCode(t.engine.listKeys(inst, { limit: 0 }), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.listKeys(inst, { limit: 5001 }), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.listKeys(inst, { states: [4 as 1] }), 'INVALID_FIELD_ERR')
    const w = await t.engine.wrap(inst, 'alias-1')
    expect((await t.engine.unwrap(inst, ids[1] ?? '', w.ciphertext)).plaintext).toHaveLength(32)
    expect((await t.engine.getKey(inst, 'alias-1')).aliases).toEqual(['alias-1'])
  })

  it('enforces alias rules: unique per instance, at most 5 per key, not a UUID, not reserved', async () => {
    const inst = 'aliases'
    const k = await t.engine.createKey(inst, { name: 'a1', aliases: ['one'] })
    const k2 = await t.engine.createKey(inst, { name: 'a2' })
    await expectCode(t.engine.createKey(inst, { name: 'dup', aliases: ['one'] }), 'KEY_ALIAS_NOT_UNIQUE_ERR')
    await expectCode(t.engine.addAlias(inst, k2.id, 'one'), 'KEY_ALIAS_NOT_UNIQUE_ERR')
    expect(await t.engine.addAlias(inst, k.id, 'one', { createdBy: 'late' })).toEqual({
      created: false,
      keyId: k.id,
      alias: 'one',
      createdAt: k.createdAt,
      createdBy: undefined,
    })
    for (const a of ['two', 'three', 'four', 'five']) {
      expect(await t.engine.addAlias(inst, k.id, a, { createdBy: 'op' })).toEqual({
        created: true,
        keyId: k.id,
        alias: a,
        createdAt: new Date(t.clock.now()),
        createdBy: 'op',
      })
    }
    await expectCode(t.engine.addAlias(inst, k.id, 'six'), 'KEY_ALIAS_QUOTA_ERR')
    for (const bad of [
      'x',
      'has space',
      'wrap',
      'Versions',
      '5b9e5b2c-6a55-4e3c-8b86-1a2b3c4d5e6f',
      'a'.repeat(91),
    ]) {
      await expectCode(t.engine.addAlias(inst, k2.id, bad), 'INVALID_FIELD_ERR')
    }
    await t.engine.removeAlias(inst, k.id, 'two')
    await expectCode(t.engine.removeAlias(inst, k.id, 'two'), 'ALIAS_NOT_FOUND_ERR')
    // a failed create leaves no key behind (and no HSM object: see reconcile tests)
    expect((await t.engine.listKeys(inst)).total).toBe(2)
  })

  it('validates names, descriptions and tags', async () => {
    await expectCode(t.engine.createKey(A, {} as { name: string }), 'MISSING_FIELD_ERR')
    for (const name of ['a', ' padded', 'x'.repeat(91), 'line\nbreak']) {
      await expectCode(t.engine.createKey(A, { name }), 'INVALID_FIELD_ERR')
    }
    await expectCode(t.engine.createKey(A, { name: 'ok', description: 'd'.repeat(241) }), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.createKey(A, { name: 'ok', tags: ['a:b'] }), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.createKey(A, { name: 'ok', expirationDate: new Date(0) }), 'INVALID_FIELD_ERR')
    await expectCode(t.engine.wrap(A, 'no such alias'), 'INVALID_FIELD_ERR')
    await expectCode(
      t.engine.wrap(A, '00000000-0000-4000-8000-000000000000', { aad: [1 as unknown as string] }),
      'INVALID_FIELD_ERR',
    )
    await expectCode(
      t.engine.wrap(A, '00000000-0000-4000-8000-000000000000', { aad: Array(127).fill('a') as string[] }),
      'INVALID_FIELD_ERR',
    )
  })
})
