/**
 * The official AWS SDK (@aws-sdk/client-kms) against the AWS-KMS-compatible endpoint on 127.0.0.1: every
 * operation, its errors, SigV4 verification, tenant isolation and ciphertext interop with the engine API.
 * Real SoftHSM2 token, real SQLite catalog, real HTTP, real SigV4.
 */
import {
  CancelKeyDeletionCommand,
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DeleteAliasCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  EnableKeyRotationCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  GenerateRandomCommand,
  GetKeyRotationStatusCommand,
  KMSClient,
  ListAliasesCommand,
  ListKeysCommand,
  ListResourceTagsCommand,
  ReEncryptCommand,
  RotateKeyOnDemandCommand,
  ScheduleKeyDeletionCommand,
  TagResourceCommand,
  UntagResourceCommand,
} from '@aws-sdk/client-kms'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pinoAuditSink } from '../../../src/http/audit.js'
import { env, openTestEngine, type TestEngine } from '../../helpers/engine.js'
import { expectCode } from '../../helpers/expect-code.js'
import {
  sdkClient,
  signedFetch,
  startEndpoint,
  TENANT_A,
  TENANT_B,
  type RunningEndpoint,
} from '../../helpers/aws-kms.js'

let t: TestEngine
let ep: RunningEndpoint
let kms: KMSClient

beforeAll(async () => {
  t = await openTestEngine({ engine: { lifecycle: { enableCooldownMs: 0, minRotationIntervalMs: 0 } } })
  ep = await startEndpoint(t.engine)
  kms = sdkClient(ep)
})
afterAll(async () => {
  kms.destroy()
  await ep.close()
  await t.engine.close()
})

async function awsError(
  p: Promise<unknown>,
): Promise<{ name: string; status: number | undefined; message: string }> {
  try {
    await p
  } catch (err) {
    const e = err as { name: string; message: string; $metadata?: { httpStatusCode?: number } }
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message }
  }
  throw new Error('expected the call to fail')
}

async function newKey(client = kms, description?: string): Promise<string> {
  const out = await client.send(
    new CreateKeyCommand(description === undefined ? {} : { Description: description }),
  )
  return out.KeyMetadata?.KeyId ?? ''
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (u: Uint8Array | undefined): string => new TextDecoder().decode(u)

describe('keys: CreateKey, DescribeKey, ListKeys', () => {
  it('CreateKey returns AWS key metadata; DescribeKey by id, ARN, alias and alias ARN returns the same key', async () => {
    const out = await kms.send(
      new CreateKeyCommand({ Description: 'orders', Tags: [{ TagKey: 'team', TagValue: 'pay' }] }),
    )
    const m = out.KeyMetadata
    expect(m).toMatchObject({
      KeyState: 'Enabled',
      Enabled: true,
      Description: 'orders',
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeySpec: 'SYMMETRIC_DEFAULT',
      Origin: 'AWS_KMS',
      KeyManager: 'CUSTOMER',
      MultiRegion: false,
    })
    expect(m?.KeyId).toMatch(/^[0-9a-f-]{36}$/)
    expect(m?.Arn).toBe(`arn:aws:kms:us-east-1:${m?.AWSAccountId}:key/${m?.KeyId}`)
    expect(m?.CreationDate).toBeInstanceOf(Date)
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/orders', TargetKeyId: m?.KeyId }))
    for (const ref of [
      m?.KeyId,
      m?.Arn,
      'alias/orders',
      `arn:aws:kms:us-east-1:${m?.AWSAccountId}:alias/orders`,
    ]) {
      const d = await kms.send(new DescribeKeyCommand({ KeyId: ref }))
      expect(d.KeyMetadata?.KeyId).toBe(m?.KeyId)
    }
    const tags = await kms.send(new ListResourceTagsCommand({ KeyId: m?.KeyId }))
    expect(tags.Tags).toEqual([{ TagKey: 'team', TagValue: 'pay' }])
  })

  it('ListKeys pages with Limit and Marker through every key of the tenant exactly once', async () => {
    const made = new Set<string>()
    for (let i = 0; i < 5; i++) made.add(await newKey())
    const seen: string[] = []
    let marker: string | undefined
    let pages = 0
    do {
      const page = await kms.send(
        new ListKeysCommand({ Limit: 2, ...(marker === undefined ? {} : { Marker: marker }) }),
      )
      expect(page.Keys?.length).toBeLessThanOrEqual(2)
      for (const k of page.Keys ?? []) {
        seen.push(k.KeyId ?? '')
        expect(k.KeyArn).toMatch(new RegExp(`:key/${k.KeyId}$`))
      }
      marker = page.Truncated === true ? page.NextMarker : undefined
      pages++
    } while (marker !== undefined)
    expect(new Set(seen).size).toBe(seen.length)
    for (const id of made) expect(seen).toContain(id)
    expect(pages).toBeGreaterThanOrEqual(3)
  })

  it('unsupported key kinds are refused: asymmetric KeySpec (multi-region keys: aws-kms-multi-region.test.ts)', async () => {
    expect((await awsError(kms.send(new CreateKeyCommand({ KeySpec: 'RSA_2048' })))).name).toBe(
      'UnsupportedOperationException',
    )
  })

  it('an unknown key is NotFoundException for DescribeKey, Encrypt, and an unknown alias too', async () => {
    const missing = '00000000-0000-4000-8000-000000000000'
    const e1 = await awsError(kms.send(new DescribeKeyCommand({ KeyId: missing })))
    expect([e1.name, e1.status]).toEqual(['NotFoundException', 400])
    const e2 = await awsError(kms.send(new EncryptCommand({ KeyId: missing, Plaintext: bytes('x') })))
    expect(e2.name).toBe('NotFoundException')
    const e3 = await awsError(kms.send(new EncryptCommand({ KeyId: 'alias/none', Plaintext: bytes('x') })))
    expect(e3.name).toBe('NotFoundException')
  })
})

describe('Encrypt, Decrypt, ReEncrypt', () => {
  it('Decrypt with and without KeyId returns the plaintext; the context is matched exactly, in any pair order', async () => {
    const id = await newKey()
    const enc = await kms.send(
      new EncryptCommand({ KeyId: id, Plaintext: bytes('hello'), EncryptionContext: { b: '2', a: '1' } }),
    )
    expect(enc.KeyId).toMatch(new RegExp(`:key/${id}$`))
    expect(enc.EncryptionAlgorithm).toBe('SYMMETRIC_DEFAULT')
    const blob = enc.CiphertextBlob
    const d1 = await kms.send(
      new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: { a: '1', b: '2' } }),
    )
    expect(text(d1.Plaintext)).toBe('hello')
    expect(d1.KeyId).toBe(enc.KeyId)
    const d2 = await kms.send(
      new DecryptCommand({ KeyId: id, CiphertextBlob: blob, EncryptionContext: { a: '1', b: '2' } }),
    )
    expect(text(d2.Plaintext)).toBe('hello')
    for (const ctx of [{ a: '1' }, { a: '1', b: '3' }, { a: '1', b: '2', c: '' }, {}]) {
      const e = await awsError(kms.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: ctx })))
      expect(e.name).toBe('InvalidCiphertextException')
    }
  })

  it('a tampered ciphertext blob is InvalidCiphertextException at every byte position tried', async () => {
    const id = await newKey()
    const blob =
      (await kms.send(new EncryptCommand({ KeyId: id, Plaintext: bytes('secret') }))).CiphertextBlob ??
      new Uint8Array()
    for (const at of [0, 1, 30, blob.length >> 1, blob.length - 1]) {
      const bad = Uint8Array.from(blob)
      bad[at] = (bad[at] as number) ^ 0x01
      const e = await awsError(kms.send(new DecryptCommand({ CiphertextBlob: bad })))
      expect(['InvalidCiphertextException', 'NotFoundException']).toContain(e.name) // byte 2..17: another key id
      if (at === 0 || at === 1 || at === 30 || at === blob.length - 1)
        expect(e.name).toBe('InvalidCiphertextException')
    }
    const truncated = blob.subarray(0, blob.length - 1)
    expect((await awsError(kms.send(new DecryptCommand({ CiphertextBlob: truncated })))).name).toBe(
      'InvalidCiphertextException',
    )
  })

  it('Decrypt with the KeyId of another key is IncorrectKeyException', async () => {
    const a = await newKey()
    const b = await newKey()
    const blob = (await kms.send(new EncryptCommand({ KeyId: a, Plaintext: bytes('x') }))).CiphertextBlob
    expect((await awsError(kms.send(new DecryptCommand({ KeyId: b, CiphertextBlob: blob })))).name).toBe(
      'IncorrectKeyException',
    )
  })

  it('Encrypt takes at most 4096 bytes of plaintext', async () => {
    const id = await newKey()
    const ok = await kms.send(new EncryptCommand({ KeyId: id, Plaintext: new Uint8Array(4096).fill(7) }))
    expect(
      (await kms.send(new DecryptCommand({ CiphertextBlob: ok.CiphertextBlob }))).Plaintext?.length,
    ).toBe(4096)
    const e = await awsError(kms.send(new EncryptCommand({ KeyId: id, Plaintext: new Uint8Array(4097) })))
    expect([e.name, e.status]).toEqual(['ValidationException', 400])
  })

  it('ReEncrypt moves a ciphertext to another key and context; the old context no longer applies', async () => {
    const a = await newKey()
    const b = await newKey()
    const blob = (
      await kms.send(
        new EncryptCommand({ KeyId: a, Plaintext: bytes('move me'), EncryptionContext: { v: '1' } }),
      )
    ).CiphertextBlob
    const re = await kms.send(
      new ReEncryptCommand({
        CiphertextBlob: blob,
        SourceEncryptionContext: { v: '1' },
        DestinationKeyId: b,
        DestinationEncryptionContext: { v: '2' },
      }),
    )
    expect(re.SourceKeyId).toMatch(new RegExp(`:key/${a}$`))
    expect(re.KeyId).toMatch(new RegExp(`:key/${b}$`))
    const d = await kms.send(
      new DecryptCommand({ CiphertextBlob: re.CiphertextBlob, EncryptionContext: { v: '2' } }),
    )
    expect(text(d.Plaintext)).toBe('move me')
    expect(d.KeyId).toMatch(new RegExp(`:key/${b}$`))
    const wrong = await awsError(
      kms.send(
        new ReEncryptCommand({
          CiphertextBlob: blob,
          SourceEncryptionContext: { v: 'x' },
          DestinationKeyId: b,
        }),
      ),
    )
    expect(wrong.name).toBe('InvalidCiphertextException')
  })
})

describe('data keys and random', () => {
  it('GenerateDataKey (AES_256, AES_128, NumberOfBytes) returns a plaintext that the blob decrypts to', async () => {
    const id = await newKey()
    for (const [input, n] of [
      [{ KeySpec: 'AES_256' as const }, 32],
      [{ KeySpec: 'AES_128' as const }, 16],
      [{ NumberOfBytes: 64 }, 64],
    ] as const) {
      const dk = await kms.send(
        new GenerateDataKeyCommand({ KeyId: id, EncryptionContext: { f: 'x' }, ...input }),
      )
      expect(dk.Plaintext?.length).toBe(n)
      const d = await kms.send(
        new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: { f: 'x' } }),
      )
      expect(Buffer.from(d.Plaintext ?? []).equals(Buffer.from(dk.Plaintext ?? []))).toBe(true)
    }
    const e = await awsError(kms.send(new GenerateDataKeyCommand({ KeyId: id })))
    expect(e.name).toBe('ValidationException')
  })

  it('GenerateDataKeyWithoutPlaintext returns only the blob, which decrypts to a fresh 32-byte key', async () => {
    const id = await newKey()
    const dk = await kms.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: id, KeySpec: 'AES_256' }))
    expect((dk as { Plaintext?: unknown }).Plaintext).toBeUndefined()
    expect(
      (await kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob }))).Plaintext?.length,
    ).toBe(32)
  })

  it('GenerateRandom returns distinct bytes of the asked length, 1-1024', async () => {
    const a = await kms.send(new GenerateRandomCommand({ NumberOfBytes: 1024 }))
    const b = await kms.send(new GenerateRandomCommand({ NumberOfBytes: 1024 }))
    expect(a.Plaintext?.length).toBe(1024)
    expect(Buffer.from(a.Plaintext ?? []).equals(Buffer.from(b.Plaintext ?? []))).toBe(false)
    expect((await awsError(kms.send(new GenerateRandomCommand({ NumberOfBytes: 1025 })))).name).toBe(
      'ValidationException',
    )
  })
})

describe('key states', () => {
  it('DisableKey makes Encrypt and Decrypt fail with DisabledException; EnableKey restores; both are idempotent', async () => {
    const id = await newKey()
    const blob = (await kms.send(new EncryptCommand({ KeyId: id, Plaintext: bytes('x') }))).CiphertextBlob
    await kms.send(new DisableKeyCommand({ KeyId: id }))
    await kms.send(new DisableKeyCommand({ KeyId: id }))
    expect((await kms.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata).toMatchObject({
      KeyState: 'Disabled',
      Enabled: false,
    })
    expect((await awsError(kms.send(new EncryptCommand({ KeyId: id, Plaintext: bytes('x') })))).name).toBe(
      'DisabledException',
    )
    expect((await awsError(kms.send(new DecryptCommand({ CiphertextBlob: blob })))).name).toBe(
      'DisabledException',
    )
    await kms.send(new EnableKeyCommand({ KeyId: id }))
    await kms.send(new EnableKeyCommand({ KeyId: id }))
    expect(text((await kms.send(new DecryptCommand({ CiphertextBlob: blob }))).Plaintext)).toBe('x')
  })

  it('EnableKey right after DisableKey succeeds with the default lifecycle (AWS has no cool-down); the Key Protect API keeps its 30 s', async () => {
    // An engine with the default lifecycle (this suite's shared one turns the cool-down off).
    const d = await openTestEngine()
    const e = await startEndpoint(d.engine)
    const client = sdkClient(e)
    try {
      const id =
        (await client.send(new CreateKeyCommand({ Description: 'cool-down' }))).KeyMetadata?.KeyId ?? ''
      await client.send(new DisableKeyCommand({ KeyId: id }))
      await client.send(new EnableKeyCommand({ KeyId: id }))
      expect((await client.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata?.KeyState).toBe('Enabled')
      // The same key through the engine's Key Protect rules: disable, then enable within 30 s is refused.
      await d.engine.disable(TENANT_A.instance, id)
      await expectCode(d.engine.enable(TENANT_A.instance, id), 'KEY_ACTION_INVALID_STATE_ERR')
      d.clock.advance(30_000)
      expect((await d.engine.enable(TENANT_A.instance, id)).state).toBe(1)
    } finally {
      client.destroy()
      await e.close()
      await d.engine.close()
    }
  })

  it('ScheduleKeyDeletion: PendingDeletion with a date 7-30 days out, unusable, not enableable; CancelKeyDeletion leaves it Disabled; after the date it is destroyed', async () => {
    const id = await newKey()
    const blob = (await kms.send(new EncryptCommand({ KeyId: id, Plaintext: bytes('x') }))).CiphertextBlob
    expect(
      (await awsError(kms.send(new ScheduleKeyDeletionCommand({ KeyId: id, PendingWindowInDays: 6 })))).name,
    ).toBe('ValidationException')
    const s = await kms.send(new ScheduleKeyDeletionCommand({ KeyId: id, PendingWindowInDays: 7 }))
    expect(s.KeyState).toBe('PendingDeletion')
    expect(s.PendingWindowInDays).toBe(7)
    expect(s.DeletionDate?.getTime()).toBe(t.clock.now() + 7 * 86_400_000)
    const d = await kms.send(new DescribeKeyCommand({ KeyId: id }))
    expect(d.KeyMetadata).toMatchObject({ KeyState: 'PendingDeletion', Enabled: false })
    expect(d.KeyMetadata?.DeletionDate?.getTime()).toBe(s.DeletionDate?.getTime())
    expect((await awsError(kms.send(new EncryptCommand({ KeyId: id, Plaintext: bytes('x') })))).name).toBe(
      'KMSInvalidStateException',
    )
    expect((await awsError(kms.send(new DecryptCommand({ CiphertextBlob: blob })))).name).toBe(
      'KMSInvalidStateException',
    )
    expect((await awsError(kms.send(new EnableKeyCommand({ KeyId: id })))).name).toBe(
      'KMSInvalidStateException',
    )
    await kms.send(new CancelKeyDeletionCommand({ KeyId: id }))
    expect((await kms.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata?.KeyState).toBe('Disabled')
    expect((await awsError(kms.send(new CancelKeyDeletionCommand({ KeyId: id })))).name).toBe(
      'KMSInvalidStateException',
    )
    await kms.send(new EnableKeyCommand({ KeyId: id }))
    expect(text((await kms.send(new DecryptCommand({ CiphertextBlob: blob }))).Plaintext)).toBe('x')

    await kms.send(new ScheduleKeyDeletionCommand({ KeyId: id, PendingWindowInDays: 7 }))
    t.clock.advance(7 * 86_400_000 - 1)
    expect((await t.engine.runScheduledDeletions()).destroyed).toEqual([])
    t.clock.advance(1)
    expect((await t.engine.runScheduledDeletions()).destroyed).toEqual([{ instance: 'tenant-a', keyId: id }])
    expect((await awsError(kms.send(new DescribeKeyCommand({ KeyId: id })))).name).toBe('NotFoundException')
  })

  it('rotation: EnableKeyRotation and GetKeyRotationStatus; RotateKeyOnDemand keeps old ciphertexts decryptable', async () => {
    const id = await newKey()
    expect((await kms.send(new GetKeyRotationStatusCommand({ KeyId: id }))).KeyRotationEnabled).toBe(false)
    await kms.send(new EnableKeyRotationCommand({ KeyId: id, RotationPeriodInDays: 90 }))
    const st = await kms.send(new GetKeyRotationStatusCommand({ KeyId: id }))
    expect(st.KeyRotationEnabled).toBe(true)
    expect(st.RotationPeriodInDays).toBe(90)
    expect(st.NextRotationDate).toBeInstanceOf(Date)
    const old = (await kms.send(new EncryptCommand({ KeyId: id, Plaintext: bytes('v1') }))).CiphertextBlob
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: id }))
    expect((await t.engine.getKey('tenant-a', id)).keyVersion.number).toBe(2)
    const fresh = (await kms.send(new EncryptCommand({ KeyId: id, Plaintext: bytes('v2') }))).CiphertextBlob
    expect(text((await kms.send(new DecryptCommand({ CiphertextBlob: old }))).Plaintext)).toBe('v1')
    expect(text((await kms.send(new DecryptCommand({ CiphertextBlob: fresh }))).Plaintext)).toBe('v2')
    expect(
      (await awsError(kms.send(new EnableKeyRotationCommand({ KeyId: id, RotationPeriodInDays: 10 })))).name,
    ).toBe('ValidationException')
  })
})

describe('aliases and tags', () => {
  it('CreateAlias, ListAliases (paged, per key), DeleteAlias; names are unique; alias/aws/ is reserved', async () => {
    const a = await newKey()
    const b = await newKey()
    for (const n of ['alias/p-1', 'alias/p-2', 'alias/p-3'])
      await kms.send(new CreateAliasCommand({ AliasName: n, TargetKeyId: a }))
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/q', TargetKeyId: b }))
    expect(
      (await awsError(kms.send(new CreateAliasCommand({ AliasName: 'alias/p-1', TargetKeyId: b })))).name,
    ).toBe('AlreadyExistsException')
    expect(
      (await awsError(kms.send(new CreateAliasCommand({ AliasName: 'alias/aws/x', TargetKeyId: b })))).name,
    ).toBe('ValidationException')
    expect(
      (await awsError(kms.send(new CreateAliasCommand({ AliasName: 'nope', TargetKeyId: b })))).name,
    ).toBe('ValidationException')
    const names: string[] = []
    let marker: string | undefined
    do {
      const page = await kms.send(
        new ListAliasesCommand({ KeyId: a, Limit: 2, ...(marker === undefined ? {} : { Marker: marker }) }),
      )
      for (const al of page.Aliases ?? []) {
        names.push(al.AliasName ?? '')
        expect(al.TargetKeyId).toBe(a)
        expect(al.AliasArn).toMatch(new RegExp(`:${al.AliasName}$`))
      }
      marker = page.Truncated === true ? page.NextMarker : undefined
    } while (marker !== undefined)
    expect(names).toEqual(['alias/p-1', 'alias/p-2', 'alias/p-3'])
    const enc = await kms.send(new EncryptCommand({ KeyId: 'alias/q', Plaintext: bytes('via alias') }))
    expect(enc.KeyId).toMatch(new RegExp(`:key/${b}$`))
    await kms.send(new DeleteAliasCommand({ AliasName: 'alias/q' }))
    expect((await awsError(kms.send(new DeleteAliasCommand({ AliasName: 'alias/q' })))).name).toBe(
      'NotFoundException',
    )
    expect(
      (await awsError(kms.send(new EncryptCommand({ KeyId: 'alias/q', Plaintext: bytes('x') })))).name,
    ).toBe('NotFoundException')
  })

  it('TagResource adds and replaces, UntagResource removes, ListResourceTags pages; more than 50 tags is TagException', async () => {
    const id = await newKey()
    await kms.send(
      new TagResourceCommand({
        KeyId: id,
        Tags: [
          { TagKey: 'a', TagValue: '1' },
          { TagKey: 'b', TagValue: '2' },
          { TagKey: 'c', TagValue: '3' },
        ],
      }),
    )
    await kms.send(new TagResourceCommand({ KeyId: id, Tags: [{ TagKey: 'a', TagValue: 'one' }] }))
    const p1 = await kms.send(new ListResourceTagsCommand({ KeyId: id, Limit: 2 }))
    expect(p1.Tags).toEqual([
      { TagKey: 'a', TagValue: 'one' },
      { TagKey: 'b', TagValue: '2' },
    ])
    expect(p1.Truncated).toBe(true)
    const p2 = await kms.send(new ListResourceTagsCommand({ KeyId: id, Limit: 2, Marker: p1.NextMarker }))
    expect(p2.Tags).toEqual([{ TagKey: 'c', TagValue: '3' }])
    expect(p2.Truncated).toBe(false)
    await kms.send(new UntagResourceCommand({ KeyId: id, TagKeys: ['b'] }))
    expect((await kms.send(new ListResourceTagsCommand({ KeyId: id }))).Tags?.map((x) => x.TagKey)).toEqual([
      'a',
      'c',
    ])
    const many = Array.from({ length: 49 }, (_, i) => ({ TagKey: `k${i}`, TagValue: 'v' }))
    expect((await awsError(kms.send(new TagResourceCommand({ KeyId: id, Tags: many })))).name).toBe(
      'TagException',
    )
    expect((await kms.send(new ListResourceTagsCommand({ KeyId: id }))).Tags).toHaveLength(2)
  })
})

describe('SigV4 and request handling', () => {
  it('a wrong secret is InvalidSignatureException; an unknown access key is UnrecognizedClientException', async () => {
    const bad = sdkClient(ep, TENANT_A, { secret: 'not-the-secret' })
    const e = await awsError(bad.send(new GenerateRandomCommand({ NumberOfBytes: 8 })))
    expect([e.name, e.status]).toEqual(['InvalidSignatureException', 400])
    bad.destroy()
    const unknown = sdkClient(ep, { ...TENANT_A, accessKeyId: 'AKIAUNKNOWN000000000' })
    expect((await awsError(unknown.send(new GenerateRandomCommand({ NumberOfBytes: 8 })))).name).toBe(
      'UnrecognizedClientException',
    )
    unknown.destroy()
  })

  it('a signature scoped to another region is InvalidSignatureException', async () => {
    const other = sdkClient(ep, TENANT_A, { region: 'eu-west-1' })
    expect((await awsError(other.send(new GenerateRandomCommand({ NumberOfBytes: 8 })))).name).toBe(
      'InvalidSignatureException',
    )
    other.destroy()
  })

  it('a signature more than 5 minutes old is refused as expired; the SDK corrects its clock from the Date header and gets through on retry', async () => {
    const skewed = sdkClient(ep, TENANT_A, { systemClockOffset: -6 * 60_000 })
    const e = await awsError(skewed.send(new GenerateRandomCommand({ NumberOfBytes: 8 })))
    expect(e.name).toBe('InvalidSignatureException')
    expect(e.message).toMatch(/Signature expired/)
    skewed.destroy()
    const ahead = sdkClient(ep, TENANT_A, { systemClockOffset: 6 * 60_000 })
    expect((await awsError(ahead.send(new GenerateRandomCommand({ NumberOfBytes: 8 })))).name).toBe(
      'InvalidSignatureException',
    )
    ahead.destroy()
    const withinSkew = sdkClient(ep, TENANT_A, { systemClockOffset: -4 * 60_000 })
    expect((await withinSkew.send(new GenerateRandomCommand({ NumberOfBytes: 8 }))).Plaintext?.length).toBe(8)
    withinSkew.destroy()
    const corrects = sdkClient(ep, TENANT_A, { systemClockOffset: -6 * 60_000, maxAttempts: 2 })
    expect((await corrects.send(new GenerateRandomCommand({ NumberOfBytes: 8 }))).Plaintext?.length).toBe(8)
    corrects.destroy()
  })

  it('malformed JSON, a wrong content type, an unknown operation and an oversized body get AWS error shapes', async () => {
    const bad = await signedFetch(ep, 'TrentService.GenerateRandom', '{"NumberOfBytes": ')
    expect(bad).toEqual({
      status: 400,
      json: { __type: 'SerializationException', message: expect.any(String) as string },
    })
    const ct = await signedFetch(ep, 'TrentService.GenerateRandom', '{}', { contentType: 'application/json' })
    expect(ct.json['__type']).toBe('SerializationException')
    const op = await signedFetch(ep, 'TrentService.ExplodeKey', '{}')
    expect([op.status, op.json['__type']]).toEqual([400, 'UnknownOperationException'])
    const big = await signedFetch(
      ep,
      'TrentService.GenerateRandom',
      JSON.stringify({ x: 'a'.repeat(70 * 1024) }),
    )
    expect([big.status, big.json['__type']]).toEqual([413, 'RequestEntityTooLargeException'])
    const unsigned = await fetch(ep.url, {
      method: 'POST',
      headers: { 'x-amz-target': 'TrentService.ListKeys' },
      body: '{}',
    })
    expect(unsigned.status).toBe(400)
    expect(((await unsigned.json()) as { __type: string }).__type).toBe('MissingAuthenticationTokenException')
  })

  it('a burst of ThrottlingException is retried by the SDK and the key is created exactly once', async () => {
    const retrying = sdkClient(ep, TENANT_B, { maxAttempts: 4 })
    const before = (await retrying.send(new ListKeysCommand({ Limit: 1000 }))).Keys?.length ?? 0
    const createsBefore = ep.served.get('CreateKey') ?? 0
    ep.throttleNext(2)
    await retrying.send(new CreateKeyCommand({}))
    expect(ep.served.get('CreateKey')).toBe(createsBefore + 1)
    expect((await retrying.send(new ListKeysCommand({ Limit: 1000 }))).Keys?.length).toBe(before + 1)
    ep.throttleNext(1)
    const e = await awsError(kms.send(new GenerateRandomCommand({ NumberOfBytes: 8 })))
    expect([e.name, e.status]).toEqual(['ThrottlingException', 400])
    retrying.destroy()
  })
})

describe('tenant isolation', () => {
  it("another tenant's key is NotFoundException by id, ARN and ciphertext, and is never listed", async () => {
    const a = await kms.send(new CreateKeyCommand({}))
    const id = a.KeyMetadata?.KeyId ?? ''
    const blob = (await kms.send(new EncryptCommand({ KeyId: id, Plaintext: bytes('a only') })))
      .CiphertextBlob
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/tenant-a-only', TargetKeyId: id }))
    const b = sdkClient(ep, TENANT_B)
    for (const ref of [id, a.KeyMetadata?.Arn, 'alias/tenant-a-only']) {
      expect((await awsError(b.send(new DescribeKeyCommand({ KeyId: ref })))).name).toBe('NotFoundException')
      expect((await awsError(b.send(new EncryptCommand({ KeyId: ref, Plaintext: bytes('x') })))).name).toBe(
        'NotFoundException',
      )
    }
    expect((await awsError(b.send(new DecryptCommand({ CiphertextBlob: blob })))).name).toBe(
      'NotFoundException',
    )
    const missing = await awsError(
      b.send(new DecryptCommand({ CiphertextBlob: Buffer.from(blob ?? []).fill(0x11, 2, 18) })),
    )
    expect(missing.name).toBe('NotFoundException') // the same answer as for a key that exists nowhere
    expect((await b.send(new ListKeysCommand({}))).Keys?.some((k) => k.KeyId === id)).toBe(false)
    expect(
      (await b.send(new ListAliasesCommand({}))).Aliases?.some((x) => x.AliasName === 'alias/tenant-a-only'),
    ).toBe(false)
    const bArn = `arn:aws:kms:us-east-1:${TENANT_B.accountId}:key/${id}`
    expect((await awsError(b.send(new DescribeKeyCommand({ KeyId: bArn })))).name).toBe('NotFoundException')
    b.destroy()
  })
})

describe('ciphertext interop between the AWS API and the engine API', () => {
  it('a CiphertextBlob from Encrypt unwraps through engine.unwrap with the context as sorted [key, value] AAD', async () => {
    const id = await newKey()
    const enc = await kms.send(
      new EncryptCommand({
        KeyId: id,
        Plaintext: bytes('from aws'),
        EncryptionContext: { purpose: 'x', app: 'y' },
      }),
    )
    const u = await t.engine.unwrap('tenant-a', id, Buffer.from(enc.CiphertextBlob ?? []), {
      aad: ['app', 'y', 'purpose', 'x'],
    })
    expect(u.plaintext.toString()).toBe('from aws')
    await expect(
      t.engine.unwrap('tenant-a', id, Buffer.from(enc.CiphertextBlob ?? []), {
        aad: ['purpose', 'x', 'app', 'y'],
      }),
    ).rejects.toMatchObject({ code: 'UNWRAP_AAD_MISMATCH' })
  })

  it('a ciphertext from engine.wrap decrypts through the AWS API with the matching context', async () => {
    const id = await newKey()
    const w = await t.engine.wrap('tenant-a', id, {
      plaintext: Buffer.from('from engine'),
      aad: ['app', 'y', 'purpose', 'x'],
    })
    const d = await kms.send(
      new DecryptCommand({
        CiphertextBlob: Buffer.from(w.ciphertext, 'base64'),
        EncryptionContext: { purpose: 'x', app: 'y' },
      }),
    )
    expect(text(d.Plaintext)).toBe('from engine')
    const none = await t.engine.wrap('tenant-a', id, { plaintext: Buffer.from('no aad') })
    expect(
      text(
        (await kms.send(new DecryptCommand({ CiphertextBlob: Buffer.from(none.ciphertext, 'base64') })))
          .Plaintext,
      ),
    ).toBe('no aad')
  })
})

describe('configuration', () => {
  it('tenant B’s configured account id appears in its ARNs; the derived one is 12 digits', async () => {
    const b = sdkClient(ep, TENANT_B)
    const m = (await b.send(new CreateKeyCommand({}))).KeyMetadata
    expect(m?.AWSAccountId).toBe('222222222222')
    expect(m?.Arn).toMatch(/^arn:aws:kms:us-east-1:222222222222:key\//)
    b.destroy()
    expect((await kms.send(new CreateKeyCommand({}))).KeyMetadata?.AWSAccountId).toMatch(/^\d{12}$/)
  })
})

describe('audit (issue 12, point 6)', () => {
  it('every request is one audit event with caller, tenant, operation, key as given and resolved, outcome and the x-amzn-RequestId of its response; refused requests too', async () => {
    const file = join(env('EKMS_TEST_FILE_DIR'), 'aws-kms-audit.log')
    // sync: each line is written before its response, so the file is complete when the call returns.
    const audit = pinoAuditSink(file, { sync: true })
    const aep = await startEndpoint(t.engine, 'us-east-1', { audit })
    const client = sdkClient(aep)
    const wrongSecret = sdkClient(aep, TENANT_A, { secret: 'not-the-secret-not-the-secret' })
    const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
    const failedId = async (p: Promise<unknown>): Promise<string | undefined> => {
      try {
        await p
      } catch (err) {
        return (err as { $metadata?: { requestId?: string } }).$metadata?.requestId
      }
      throw new Error('expected the call to fail')
    }
    const expected: Record<string, unknown>[] = []
    const ok = { outcome: 'success', status: 200, subject: TENANT_A.accessKeyId, instance: 'tenant-a' }
    const plaintext = 'audit-plaintext-never-logged'
    try {
      const created = await client.send(new CreateKeyCommand({}))
      const id = created.KeyMetadata?.KeyId ?? ''
      const arn = created.KeyMetadata?.Arn ?? ''
      expected.push({ ...ok, operation: 'CreateKey', keyId: id, id: created.$metadata.requestId })
      const alias = await client.send(new CreateAliasCommand({ AliasName: 'alias/audited', TargetKeyId: id }))
      expected.push({ ...ok, operation: 'CreateAlias', keyId: id, id: alias.$metadata.requestId })
      const enc = await client.send(
        new EncryptCommand({ KeyId: 'alias/audited', Plaintext: bytes(plaintext) }),
      )
      expected.push({
        ...ok,
        operation: 'Encrypt',
        keyRef: 'alias/audited',
        keyId: id,
        id: enc.$metadata.requestId,
      })
      const dec = await client.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }))
      expect(text(dec.Plaintext)).toBe(plaintext)
      expected.push({ ...ok, operation: 'Decrypt', keyId: id, id: dec.$metadata.requestId })
      const dk = await client.send(new GenerateDataKeyCommand({ KeyId: arn, KeySpec: 'AES_256' }))
      expected.push({
        ...ok,
        operation: 'GenerateDataKey',
        keyRef: arn,
        keyId: id,
        id: dk.$metadata.requestId,
      })
      const notFound = await failedId(client.send(new DescribeKeyCommand({ KeyId: 'alias/nothing-here' })))
      expected.push({
        ...ok,
        outcome: 'failure',
        status: 400,
        reason: 'NotFoundException',
        operation: 'DescribeKey',
        keyRef: 'alias/nothing-here',
        keyId: undefined,
        id: notFound,
      })
      // Refused before any operation runs: the caller is unknown.
      const badSig = await failedId(wrongSecret.send(new GenerateRandomCommand({ NumberOfBytes: 8 })))
      const refused = { outcome: 'failure', status: 400, subject: undefined, instance: undefined }
      expected.push({
        ...refused,
        reason: 'InvalidSignatureException',
        operation: 'GenerateRandom',
        id: badSig,
      })
      const unsigned = await fetch(aep.url, {
        method: 'POST',
        headers: { 'x-amz-target': 'TrentService.Decrypt', 'content-type': 'application/x-amz-json-1.1' },
        body: '{}',
      })
      expect(unsigned.status).toBe(400)
      expected.push({
        ...refused,
        reason: 'MissingAuthenticationTokenException',
        operation: 'Decrypt',
        id: unsigned.headers.get('x-amzn-requestid'),
      })
      const notPost = await fetch(`${aep.url}/somewhere`)
      expect(notPost.status).toBe(404)
      expected.push({
        ...refused,
        status: 404,
        reason: 'UnknownOperationException',
        event: 'aws-kms.unknown',
        method: 'GET',
        route: '/somewhere',
        id: notPost.headers.get('x-amzn-requestid'),
      })

      const raw = readFileSync(file, 'utf8')
      const events = raw
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(events).toHaveLength(expected.length)
      const ids = new Set<unknown>()
      expected.forEach(({ id, ...want }, i) => {
        expect(id).toMatch(UUID)
        ids.add(id)
        const e = events[i] ?? {}
        expect(e).toMatchObject({
          log: 'audit',
          api: 'aws-kms',
          correlationId: id,
          ...(want['operation'] === undefined
            ? {}
            : { event: `aws-kms.${want['operation'] as string}`, method: 'POST', route: '/' }),
          ...Object.fromEntries(Object.entries(want).filter(([, v]) => v !== undefined)),
        })
        for (const k of ['subject', 'instance', 'keyId', 'keyRef', 'reason'])
          if (!(k in want) || want[k] === undefined) expect(e[k], `${i} ${k}`).toBeUndefined()
      })
      expect(ids.size).toBe(expected.length)
      // Never secrets, plaintext, ciphertext or data-key material.
      for (const secret of [
        TENANT_A.secretAccessKey,
        'not-the-secret',
        plaintext,
        Buffer.from(plaintext).toString('base64'),
        Buffer.from(enc.CiphertextBlob ?? new Uint8Array()).toString('base64'),
        Buffer.from(dk.Plaintext ?? new Uint8Array()).toString('base64'),
        Buffer.from(dk.CiphertextBlob ?? new Uint8Array()).toString('base64'),
      ])
        expect(raw).not.toContain(secret)
    } finally {
      client.destroy()
      wrongSecret.destroy()
      await aep.close()
      await audit.close()
    }
  })
})
