/**
 * Regions, multi-region keys and key policies of the AWS-KMS-compatible endpoint, driven by the official
 * AWS SDK (@aws-sdk/client-kms) against one listener on 127.0.0.1 serving eu-west-1 (default), eu-west-3
 * and us-east-2, in front of a real engine (real SoftHSM2 token, real SQLite catalog, real SigV4). The AWS
 * KMS provider of this project then uses the replica for decryption and failover.
 */
import {
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GetKeyPolicyCommand,
  KMSClient,
  ListKeyPoliciesCommand,
  ListKeysCommand,
  PutKeyPolicyCommand,
  ReEncryptCommand,
  ReplicateKeyCommand,
  ScheduleKeyDeletionCommand,
} from '@aws-sdk/client-kms'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAwsKmsProvider } from '../../../src/providers/aws-kms/index.js'
import { SecretBytes } from '../../../src/core/secret-bytes.js'
import { openTestEngine, type TestEngine } from '../../helpers/engine.js'
import { sdkClient, startEndpoint, TENANT_A, type RunningEndpoint } from '../../helpers/aws-kms.js'

const EU1 = 'eu-west-1'
const EU3 = 'eu-west-3'
const US2 = 'us-east-2'

let t: TestEngine
let ep: RunningEndpoint
let eu1: KMSClient
let eu3: KMSClient
let us2: KMSClient

beforeAll(async () => {
  t = await openTestEngine({ engine: { lifecycle: { enableCooldownMs: 0, minRotationIntervalMs: 0 } } })
  ep = await startEndpoint(t.engine, undefined, { regions: [EU1, EU3, US2] })
  eu1 = sdkClient(ep, TENANT_A, { region: EU1 })
  eu3 = sdkClient(ep, TENANT_A, { region: EU3 })
  us2 = sdkClient(ep, TENANT_A, { region: US2 })
})
afterAll(async () => {
  for (const c of [eu1, eu3, us2]) c.destroy()
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

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (u: Uint8Array | undefined): string => new TextDecoder().decode(u)

/** A multi-region key made in eu-west-1 and replicated to eu-west-3; returns its primary's metadata. */
async function mrkWithReplica(
  description = 'tenant key',
): Promise<{ keyId: string; primaryArn: string; replicaArn: string }> {
  const made = await eu1.send(new CreateKeyCommand({ MultiRegion: true, Description: description }))
  const keyId = made.KeyMetadata?.KeyId ?? ''
  const primaryArn = made.KeyMetadata?.Arn ?? ''
  const rep = await eu1.send(new ReplicateKeyCommand({ KeyId: keyId, ReplicaRegion: EU3 }))
  return { keyId, primaryArn, replicaArn: rep.ReplicaKeyMetadata?.Arn ?? '' }
}

describe('multi-region keys: CreateKey, ReplicateKey, DescribeKey', () => {
  it('CreateKey MultiRegion in eu-west-1 gives an mrk- key; ReplicateKey to eu-west-3; DescribeKey in both regions shows PRIMARY / REPLICA and the replica list', async () => {
    const made = await eu1.send(
      new CreateKeyCommand({
        MultiRegion: true,
        Description: 'orders',
        Tags: [{ TagKey: 'team', TagValue: 'pay' }],
      }),
    )
    const m = made.KeyMetadata
    expect(m?.KeyId).toMatch(/^mrk-[0-9a-f]{32}$/)
    const account = m?.AWSAccountId ?? ''
    const primaryArn = `arn:aws:kms:${EU1}:${account}:key/${m?.KeyId}`
    const replicaArn = `arn:aws:kms:${EU3}:${account}:key/${m?.KeyId}`
    expect(m).toMatchObject({
      Arn: primaryArn,
      MultiRegion: true,
      MultiRegionConfiguration: {
        MultiRegionKeyType: 'PRIMARY',
        PrimaryKey: { Arn: primaryArn, Region: EU1 },
        ReplicaKeys: [],
      },
    })
    const rep = await eu1.send(
      new ReplicateKeyCommand({
        KeyId: m?.KeyId,
        ReplicaRegion: EU3,
        Description: 'orders (DR)',
        Tags: [{ TagKey: 'site', TagValue: 'dr' }],
      }),
    )
    expect(rep.ReplicaKeyMetadata).toMatchObject({
      KeyId: m?.KeyId,
      Arn: replicaArn,
      Description: 'orders (DR)',
      KeyState: 'Enabled',
      MultiRegion: true,
      MultiRegionConfiguration: {
        MultiRegionKeyType: 'REPLICA',
        PrimaryKey: { Arn: primaryArn, Region: EU1 },
        ReplicaKeys: [{ Arn: replicaArn, Region: EU3 }],
      },
    })
    expect(JSON.parse(rep.ReplicaPolicy ?? '{}')).toMatchObject({
      Statement: [{ Effect: 'Allow', Action: 'kms:*' }],
    })
    expect(rep.ReplicaTags).toEqual([{ TagKey: 'site', TagValue: 'dr' }])

    const d1 = await eu1.send(new DescribeKeyCommand({ KeyId: m?.KeyId }))
    expect(d1.KeyMetadata).toMatchObject({
      Arn: primaryArn,
      Description: 'orders',
      MultiRegionConfiguration: {
        MultiRegionKeyType: 'PRIMARY',
        PrimaryKey: { Arn: primaryArn, Region: EU1 },
        ReplicaKeys: [{ Arn: replicaArn, Region: EU3 }],
      },
    })
    // The replica by its ARN, its mrk- id, and the engine key's UUID (the id forms are reversible).
    const uuid = (m?.KeyId ?? '').slice(4).replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5')
    for (const ref of [replicaArn, m?.KeyId, uuid]) {
      const d3 = await eu3.send(new DescribeKeyCommand({ KeyId: ref }))
      expect(d3.KeyMetadata).toMatchObject({
        KeyId: m?.KeyId,
        Arn: replicaArn,
        Description: 'orders (DR)',
        MultiRegionConfiguration: { MultiRegionKeyType: 'REPLICA', PrimaryKey: { Region: EU1 } },
      })
    }
  })

  it('a ciphertext of the primary decrypts in the replica region and the reverse; ReEncrypt across them; GenerateDataKey in the replica region', async () => {
    const { keyId, primaryArn, replicaArn } = await mrkWithReplica()
    const ctx = { tenant: 't1' }
    const c1 = await eu1.send(
      new EncryptCommand({ KeyId: primaryArn, Plaintext: bytes('from eu-west-1'), EncryptionContext: ctx }),
    )
    expect(c1.KeyId).toBe(primaryArn)
    const p3 = await eu3.send(
      new DecryptCommand({ CiphertextBlob: c1.CiphertextBlob, EncryptionContext: ctx }),
    )
    expect(text(p3.Plaintext)).toBe('from eu-west-1')
    expect(p3.KeyId).toBe(replicaArn)

    const c3 = await eu3.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes('from eu-west-3') }))
    expect(c3.KeyId).toBe(replicaArn)
    const p1 = await eu1.send(new DecryptCommand({ CiphertextBlob: c3.CiphertextBlob, KeyId: primaryArn }))
    expect(text(p1.Plaintext)).toBe('from eu-west-3')

    const g = await eu3.send(
      new GenerateDataKeyCommand({ KeyId: replicaArn, KeySpec: 'AES_256', EncryptionContext: ctx }),
    )
    expect(g.Plaintext).toHaveLength(32)
    expect(g.KeyId).toBe(replicaArn)
    const back = await eu1.send(
      new DecryptCommand({ CiphertextBlob: g.CiphertextBlob, EncryptionContext: ctx }),
    )
    expect(
      Buffer.from(back.Plaintext ?? new Uint8Array()).equals(Buffer.from(g.Plaintext ?? new Uint8Array())),
    ).toBe(true)

    const re = await eu3.send(
      new ReEncryptCommand({
        CiphertextBlob: c1.CiphertextBlob,
        SourceEncryptionContext: ctx,
        DestinationKeyId: replicaArn,
        DestinationEncryptionContext: { tenant: 't2' },
      }),
    )
    expect([re.SourceKeyId, re.KeyId]).toEqual([replicaArn, replicaArn])
    const p = await eu1.send(
      new DecryptCommand({ CiphertextBlob: re.CiphertextBlob, EncryptionContext: { tenant: 't2' } }),
    )
    expect(text(p.Plaintext)).toBe('from eu-west-1')
  })

  it('a key is invisible in a served region it is not in: NotFoundException for DescribeKey, Encrypt, Decrypt there, and ListKeys there leaves it out', async () => {
    const { keyId, primaryArn } = await mrkWithReplica()
    const single = (await eu3.send(new CreateKeyCommand({}))).KeyMetadata
    expect(single?.MultiRegion).toBe(false)
    expect(single?.Arn).toMatch(new RegExp(`^arn:aws:kms:${EU3}:`))
    expect((await awsError(us2.send(new DescribeKeyCommand({ KeyId: keyId })))).name).toBe(
      'NotFoundException',
    )
    expect((await awsError(us2.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes('x') })))).name).toBe(
      'NotFoundException',
    )
    const blob = (await eu1.send(new EncryptCommand({ KeyId: primaryArn, Plaintext: bytes('x') })))
      .CiphertextBlob
    expect((await awsError(us2.send(new DecryptCommand({ CiphertextBlob: blob })))).name).toBe(
      'NotFoundException',
    )
    // A single-region key of eu-west-3 is not in the default region either.
    expect((await awsError(eu1.send(new DescribeKeyCommand({ KeyId: single?.KeyId })))).name).toBe(
      'NotFoundException',
    )
    // An ARN naming another region names nothing here.
    expect((await awsError(eu1.send(new DescribeKeyCommand({ KeyId: single?.Arn })))).name).toBe(
      'NotFoundException',
    )

    const list = async (c: KMSClient): Promise<string[]> => {
      const ids: string[] = []
      let marker: string | undefined
      do {
        const page = await c.send(
          new ListKeysCommand({ Limit: 3, ...(marker === undefined ? {} : { Marker: marker }) }),
        )
        ids.push(...(page.Keys ?? []).map((k) => k.KeyId ?? ''))
        marker = page.Truncated === true ? page.NextMarker : undefined
      } while (marker !== undefined)
      return ids
    }
    const [in1, in3, in2] = [await list(eu1), await list(eu3), await list(us2)]
    expect(in1).toContain(keyId)
    expect(in3).toContain(keyId)
    expect(in3).toContain(single?.KeyId)
    expect(in1).not.toContain(single?.KeyId)
    expect(in2).not.toContain(keyId)
    expect(in2).not.toContain(single?.KeyId)
  })

  it('a request signed for a region the endpoint does not serve is refused (InvalidSignatureException), as before', async () => {
    const other = sdkClient(ep, TENANT_A, { region: 'ap-south-1' })
    const e = await awsError(other.send(new ListKeysCommand({})))
    expect(e.name).toBe('InvalidSignatureException')
    expect(e.message).toMatch(/scoped to a valid region/)
    other.destroy()
  })

  it('ReplicateKey errors: a single-region key (UnsupportedOperationException), a replica instead of the primary, a region not served, a replica already there (AlreadyExistsException)', async () => {
    const single = (await eu1.send(new CreateKeyCommand({}))).KeyMetadata?.KeyId
    const e1 = await awsError(eu1.send(new ReplicateKeyCommand({ KeyId: single, ReplicaRegion: EU3 })))
    expect(e1.name).toBe('UnsupportedOperationException')
    expect(e1.message).toMatch(/not a multi-Region key/)

    const { keyId } = await mrkWithReplica()
    const e2 = await awsError(eu3.send(new ReplicateKeyCommand({ KeyId: keyId, ReplicaRegion: US2 })))
    expect(e2.name).toBe('UnsupportedOperationException')
    expect(e2.message).toMatch(/not a multi-Region primary key/)

    const e3 = await awsError(
      eu1.send(new ReplicateKeyCommand({ KeyId: keyId, ReplicaRegion: 'ap-south-1' })),
    )
    expect(e3.name).toBe('UnsupportedOperationException')
    expect(e3.message).toMatch(/not a region this endpoint serves/)

    const e4 = await awsError(eu1.send(new ReplicateKeyCommand({ KeyId: keyId, ReplicaRegion: EU3 })))
    expect(e4.name).toBe('AlreadyExistsException')
    const e5 = await awsError(eu1.send(new ReplicateKeyCommand({ KeyId: keyId, ReplicaRegion: EU1 })))
    expect(e5.name).toBe('AlreadyExistsException')
  })

  it('key state is shared: DisableKey in the replica region disables the primary; ScheduleKeyDeletion of a key with replicas is refused', async () => {
    const { keyId } = await mrkWithReplica()
    await eu3.send(new DisableKeyCommand({ KeyId: keyId }))
    expect((await eu1.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata?.KeyState).toBe('Disabled')
    const e = await awsError(eu1.send(new EncryptCommand({ KeyId: keyId, Plaintext: bytes('x') })))
    expect(e.name).toBe('DisabledException')
    await eu1.send(new EnableKeyCommand({ KeyId: keyId }))
    expect((await eu3.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata?.KeyState).toBe('Enabled')
    const d = await awsError(
      eu1.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 })),
    )
    expect(d.name).toBe('UnsupportedOperationException')
  })
})

describe('key policies', () => {
  const denyGdkIn = (region: string): string =>
    JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Sid: 'all', Effect: 'Allow', Principal: { AWS: '*' }, Action: 'kms:*', Resource: '*' },
        {
          Sid: 'no-gdk-in-dr',
          Effect: 'Deny',
          Principal: '*',
          Action: ['kms:GenerateDataKey*'],
          Resource: '*',
          Condition: { StringEquals: { 'aws:RequestedRegion': region } },
        },
      ],
    })

  it('a Deny of kms:GenerateDataKey with aws:RequestedRegion=eu-west-3 is AccessDeniedException in eu-west-3 only; Encrypt and Decrypt still work there', async () => {
    const { keyId, primaryArn, replicaArn } = await mrkWithReplica()
    const policy = denyGdkIn(EU3)
    // The same policy on both keys of the pair: the condition makes it bite in eu-west-3 only.
    await eu1.send(new PutKeyPolicyCommand({ KeyId: primaryArn, PolicyName: 'default', Policy: policy }))
    await eu3.send(new PutKeyPolicyCommand({ KeyId: replicaArn, PolicyName: 'default', Policy: policy }))
    expect((await eu3.send(new GetKeyPolicyCommand({ KeyId: keyId, PolicyName: 'default' }))).Policy).toBe(
      policy,
    )
    expect((await eu1.send(new ListKeyPoliciesCommand({ KeyId: keyId }))).PolicyNames).toEqual(['default'])

    const denied = await awsError(
      eu3.send(new GenerateDataKeyCommand({ KeyId: replicaArn, KeySpec: 'AES_256' })),
    )
    expect([denied.name, denied.status]).toEqual(['AccessDeniedException', 400])
    expect(denied.message).toMatch(
      /is not authorized to perform: kms:GenerateDataKey on resource: arn:aws:kms:eu-west-3:\d{12}:key\/mrk-[0-9a-f]{32} with an explicit deny/,
    )
    const ok = await eu1.send(new GenerateDataKeyCommand({ KeyId: primaryArn, KeySpec: 'AES_256' }))
    expect(ok.Plaintext).toHaveLength(32)
    const c3 = await eu3.send(new EncryptCommand({ KeyId: replicaArn, Plaintext: bytes('still') }))
    expect(text((await eu3.send(new DecryptCommand({ CiphertextBlob: c3.CiphertextBlob }))).Plaintext)).toBe(
      'still',
    )
    const again = await eu3.send(new DecryptCommand({ CiphertextBlob: ok.CiphertextBlob }))
    expect(
      Buffer.from(again.Plaintext ?? new Uint8Array()).equals(Buffer.from(ok.Plaintext ?? new Uint8Array())),
    ).toBe(true)
  })

  it('a policy given at CreateKey / ReplicateKey applies in its region; Allow statements without the action deny it (implicit deny); no policy allows everything', async () => {
    const onlyEncrypt = JSON.stringify({
      Statement: [
        {
          Effect: 'Allow',
          Principal: { AWS: 'arn:aws:iam::111122223333:root' },
          Action: ['kms:Encrypt', 'kms:PutKeyPolicy', 'kms:Describe*'],
        },
      ],
    })
    const k = (await eu1.send(new CreateKeyCommand({ MultiRegion: true, Policy: onlyEncrypt }))).KeyMetadata
      ?.KeyId
    const blob = (await eu1.send(new EncryptCommand({ KeyId: k, Plaintext: bytes('p') }))).CiphertextBlob
    const e = await awsError(eu1.send(new DecryptCommand({ CiphertextBlob: blob })))
    expect(e.name).toBe('AccessDeniedException')
    expect(e.message).toMatch(/because no resource-based policy allows the kms:Decrypt action/)
    // Replicate is not in the primary's Allow list either.
    expect((await awsError(eu1.send(new ReplicateKeyCommand({ KeyId: k, ReplicaRegion: EU3 })))).name).toBe(
      'AccessDeniedException',
    )
    await eu1.send(
      new PutKeyPolicyCommand({
        KeyId: k,
        Policy: JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 'kms:*' }] }),
      }),
    )
    const rep = await eu1.send(new ReplicateKeyCommand({ KeyId: k, ReplicaRegion: EU3, Policy: onlyEncrypt }))
    expect(rep.ReplicaPolicy).toBe(onlyEncrypt)
    expect((await awsError(eu3.send(new DecryptCommand({ CiphertextBlob: blob })))).name).toBe(
      'AccessDeniedException',
    )
    expect(text((await eu1.send(new DecryptCommand({ CiphertextBlob: blob }))).Plaintext)).toBe('p')
    // A key never given a policy: GetKeyPolicy answers AWS's default policy (the account may do everything).
    const plain = (await eu1.send(new CreateKeyCommand({}))).KeyMetadata?.KeyId
    const dflt = JSON.parse(
      (await eu1.send(new GetKeyPolicyCommand({ KeyId: plain, PolicyName: 'default' }))).Policy ?? '{}',
    )
    expect(dflt).toMatchObject({ Statement: [{ Effect: 'Allow', Action: 'kms:*', Resource: '*' }] })
  })

  it('malformed policies are MalformedPolicyDocumentException: not JSON, no Statement, a bad Effect, an unsupported condition, one that locks out PutKeyPolicy', async () => {
    const k = (await eu1.send(new CreateKeyCommand({}))).KeyMetadata?.KeyId
    const bad = [
      '{not json',
      JSON.stringify({ Version: '2012-10-17' }),
      JSON.stringify({ Statement: [{ Effect: 'Maybe', Principal: '*', Action: 'kms:*' }] }),
      JSON.stringify({
        Statement: [
          {
            Effect: 'Allow',
            Principal: '*',
            Action: 'kms:*',
            Condition: { IpAddress: { 'aws:SourceIp': '10.0.0.0/8' } },
          },
        ],
      }),
      JSON.stringify({ Statement: [{ Effect: 'Deny', Principal: '*', Action: 'kms:*' }] }),
    ]
    for (const Policy of bad) {
      const e = await awsError(eu1.send(new PutKeyPolicyCommand({ KeyId: k, PolicyName: 'default', Policy })))
      expect(e.name, Policy).toBe('MalformedPolicyDocumentException')
    }
    expect((await awsError(eu1.send(new CreateKeyCommand({ Policy: '[]' })))).name).toBe(
      'MalformedPolicyDocumentException',
    )
    // The lockout check can be bypassed, as in AWS; the key is then unusable in that region.
    await eu1.send(
      new PutKeyPolicyCommand({ KeyId: k, Policy: bad[4], BypassPolicyLockoutSafetyCheck: true }),
    )
    expect((await awsError(eu1.send(new DescribeKeyCommand({ KeyId: k })))).name).toBe(
      'AccessDeniedException',
    )
  })
})

describe('the AWS KMS provider on multi-region keys of this endpoint', () => {
  const credentials = { accessKeyId: TENANT_A.accessKeyId, secretAccessKey: TENANT_A.secretAccessKey }
  const aad = Buffer.from('catalog-entry-1')

  it('a provider of the replica region only decrypts what a provider of [eu-west-1, eu-west-3] encrypted under the primary ARN', async () => {
    const { primaryArn } = await mrkWithReplica()
    const both = await createAwsKmsProvider({
      regions: [
        { region: EU1, endpoint: ep.url },
        { region: EU3, endpoint: ep.url },
      ],
      credentials,
    })
    const replicaOnly = await createAwsKmsProvider({
      regions: [{ region: EU3, endpoint: ep.url }],
      credentials,
    })
    try {
      const dek = SecretBytes.copyOf(Buffer.alloc(32, 7))
      const before3 = ep.served.get('Decrypt') ?? 0
      const blob = await both.encryptOpaque(primaryArn, dek, aad)
      const out = await replicaOnly.decryptOpaque(primaryArn, blob, aad)
      expect(out.bytes.equals(dek.bytes)).toBe(true)
      expect(ep.served.get('Decrypt')).toBe(before3 + 1)
    } finally {
      await both.close()
      await replicaOnly.close()
    }
  })

  it('with the primary region endpoint down, the provider fails over to the replica region for Encrypt and Decrypt', async () => {
    const { primaryArn } = await mrkWithReplica()
    // A loopback port that refuses connections: the primary region's endpoint is down.
    const dead = createServer()
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve))
    const deadUrl = `http://127.0.0.1:${(dead.address() as AddressInfo).port}`
    await new Promise<void>((resolve) => dead.close(() => resolve()))
    const p = await createAwsKmsProvider({
      regions: [
        { region: EU1, endpoint: deadUrl },
        { region: EU3, endpoint: ep.url },
      ],
      credentials,
      retry: { maxAttempts: 1 },
    })
    try {
      const dek = SecretBytes.copyOf(Buffer.alloc(32, 9))
      const blob = await p.encryptOpaque(primaryArn, dek, aad)
      expect((await p.decryptOpaque(primaryArn, blob, aad)).bytes.equals(dek.bytes)).toBe(true)
      expect((await p.health()).detail).toBe(`aws-kms: ${EU3} answered`)
    } finally {
      await p.close()
    }
  })
})
