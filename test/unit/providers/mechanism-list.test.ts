import { describe, expect, it } from 'vitest'
import { mechanismList, parseMechanismList } from '../../../src/providers/pkcs11/objects.js'

describe('CKA_ALLOWED_MECHANISMS encoding (a CK_MECHANISM_TYPE array as raw bytes)', () => {
  it('round-trips, one CK_ULONG per mechanism, little-endian', () => {
    const b = mechanismList([0x1087, 0x80000171])
    expect(b.length).toBe(process.platform === 'win32' ? 8 : 16)
    expect(b.readUInt32LE(0)).toBe(0x1087)
    expect(parseMechanismList(b)).toEqual([0x1087, 0x80000171])
  })

  it('an absent or empty value is no restriction', () => {
    expect(parseMechanismList(undefined)).toEqual([])
    expect(parseMechanismList(Buffer.alloc(0))).toEqual([])
  })
})
