/**
 * The AWS KMS provider (@aws-sdk/client-kms underneath) against the AWS-KMS-compatible endpoint on
 * 127.0.0.1, which is backed by a real engine on a real SoftHSM2 token: the provider conformance suite, an
 * engine running on the provider, multi-region failover, throttling, timeouts. With EKMS_AWS_KMS_REGION
 * set (and AWS credentials in the standard chain) the conformance suite also runs against real AWS KMS.
 */
import { createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine, type EnvelopeEngine } from '../../../src/index.js'
import { createAwsKmsProvider, type AwsKmsProviderOptions } from '../../../src/providers/aws-kms/index.js'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'
import { runRootKeyProviderConformance } from '../../conformance/root-key-provider.js'
import { expectCode } from '../../helpers/expect-code.js'
import { openTestEngine, tempCatalogPath, type TestEngine } from '../../helpers/engine.js'
import { startEndpoint, TENANT_A, type RunningEndpoint } from '../../helpers/aws-kms.js'

let backend: TestEngine
let primary: RunningEndpoint
let replica: RunningEndpoint

beforeAll(async () => {
  backend = await openTestEngine({ engine: { lifecycle: { enableCooldownMs: 0, minRotationIntervalMs: 0 } } })
  primary = await startEndpoint(backend.engine, 'us-east-1')
  replica = await startEndpoint(backend.engine, 'eu-west-1')
})
afterAll(async () => {
  await primary.close()
  await replica.close()
  await backend.engine.close()
})

const credentials = { accessKeyId: TENANT_A.accessKeyId, secretAccessKey: TENANT_A.secretAccessKey }

function options(extra: Partial<AwsKmsProviderOptions> = {}): AwsKmsProviderOptions {
  return {
    regions: [{ region: 'us-east-1', endpoint: primary.url }],
    credentials,
    retry: { maxAttempts: 4, baseDelayMs: 5, maxDelayMs: 50 },
    ...extra,
  }
}

runRootKeyProviderConformance('aws-kms against the AWS-KMS-compatible endpoint', () =>
  createAwsKmsProvider(options()),
)

async function engineOnKms(extra: Partial<AwsKmsProviderOptions> = {}): Promise<EnvelopeEngine> {
  return createEngine({
    provider: await createAwsKmsProvider(options(extra)),
    store: await openSqliteStore({ path: tempCatalogPath() }),
    lifecycle: { minRotationIntervalMs: 0 },
  })
}

describe('an engine whose root keys are in (this endpoint speaking) AWS KMS', () => {
  it('wrap, unwrap, rotate, unwrap of the old version with rewrap, rewrap through ReEncrypt, AAD bound', async () => {
    const engine = await engineOnKms()
    const key = await engine.createKey('app', { name: 'on-kms' })
    const w = await engine.wrap('app', key.id, { aad: ['order-1'] })
    expect(w.plaintext).toHaveLength(32)
    const raw = Buffer.from(w.ciphertext, 'base64')
    expect(raw[1]).toBe(0x10) // mechanism: provider-opaque blob
    expect(
      (await engine.unwrap('app', key.id, w.ciphertext, { aad: ['order-1'] })).plaintext.equals(
        w.plaintext ?? Buffer.alloc(0),
      ),
    ).toBe(true)
    await expectCode(engine.unwrap('app', key.id, w.ciphertext, { aad: ['order-2'] }), 'UNWRAP_AAD_MISMATCH')
    const reencryptsBefore = primary.served.get('ReEncrypt') ?? 0
    await engine.rotate('app', key.id)
    const u = await engine.unwrap('app', key.id, w.ciphertext, { aad: ['order-1'] })
    expect(u.keyVersion.number).toBe(1)
    expect(u.rewrapped?.keyVersion.number).toBe(2)
    const r = await engine.rewrap('app', key.id, w.ciphertext, { aad: ['order-1'] })
    expect(r.rewrappedKeyVersion.number).toBe(2)
    expect(primary.served.get('ReEncrypt')).toBe(reencryptsBefore + 1) // the DEK did not come back here
    expect(
      (await engine.unwrap('app', key.id, r.ciphertext, { aad: ['order-1'] })).plaintext.equals(u.plaintext),
    ).toBe(true)
    const sealed = await engine.seal('app', key.id, Buffer.from('a record'), { context: { t: '1' } })
    expect((await engine.open('app', sealed, { context: { t: '1' } })).toString()).toBe('a record')
    const many = await engine.wrapMany('app', key.id, 5, { aad: ['b'] })
    const back = await engine.unwrapMany(
      'app',
      key.id,
      many.map((m) => (m.ok ? m.ciphertext : '')),
      { aad: ['b'] },
    )
    expect(back.every((b) => b.ok)).toBe(true)
    const other = await engine.createKey('app', { name: 'other' })
    const moved = await engine.reencrypt('app', w.ciphertext, {
      sourceAad: ['order-1'],
      destinationKeyId: other.id,
      destinationAad: ['x'],
    })
    expect(
      (await engine.unwrap('app', other.id, moved.ciphertext, { aad: ['x'] })).plaintext.equals(u.plaintext),
    ).toBe(true)
    expect((await engine.reconcile()).unknown).toEqual([])
    await engine.close()
  })

  it('a ciphertext of a GCM engine is refused by a KMS engine with CIPHERTEXT_INVALID, not sent to KMS', async () => {
    const engine = await engineOnKms()
    const key = await engine.createKey('app', { name: 'kk' })
    const w = Buffer.from((await engine.wrap('app', key.id)).ciphertext, 'base64')
    w[1] = 0x01
    await expectCode(engine.unwrap('app', key.id, w), 'CIPHERTEXT_INVALID')
    await engine.close()
  })
})

describe('multi-region failover', () => {
  it('when the primary endpoint stops, the replica region serves wrap and unwrap; health says which region answered', async () => {
    const localPrimary = await startEndpoint(backend.engine, 'us-east-1')
    const engine = await engineOnKms({
      regions: [
        { region: 'us-east-1', endpoint: localPrimary.url },
        { region: 'eu-west-1', endpoint: replica.url },
      ],
    })
    const key = await engine.createKey('app', { name: 'mr' })
    const w = await engine.wrap('app', key.id, { aad: ['x'] })
    const replicaBefore = replica.served.get('Decrypt') ?? 0
    await localPrimary.close()
    const u = await engine.unwrap('app', key.id, w.ciphertext, { aad: ['x'] })
    expect(u.plaintext.equals(w.plaintext ?? Buffer.alloc(0))).toBe(true)
    expect(replica.served.get('Decrypt')).toBe(replicaBefore + 1)
    const w2 = await engine.wrap('app', key.id, { aad: ['y'] })
    expect((await engine.unwrap('app', key.id, w2.ciphertext, { aad: ['y'] })).plaintext).toHaveLength(32)
    expect(await engine.health()).toMatchObject({ ok: true, detail: 'aws-kms: eu-west-1 answered' })
    await engine.close()
  })

  it('with every region down, calls fail with PROVIDER_UNAVAILABLE (retryable)', async () => {
    const gone = await startEndpoint(backend.engine, 'us-east-1')
    const url = gone.url
    await gone.close()
    const p = await createAwsKmsProvider(options({ regions: [{ region: 'us-east-1', endpoint: url }] }))
    const e = await expectCode(p.generateRandom(8), 'PROVIDER_UNAVAILABLE')
    expect(e.retryable).toBe(true)
    expect((await p.health()).ok).toBe(false)
    await p.close()
  })
})

describe('health', () => {
  it('probes with GenerateRandom, and reuses an answer for at most one second (single-flight)', async () => {
    const p = await createAwsKmsProvider(
      options({ regions: [{ region: 'eu-west-1', endpoint: replica.url }] }),
    )
    try {
      const before = replica.served.get('GenerateRandom') ?? 0
      const answers = await Promise.all([p.health(), p.health(), p.health()])
      expect(answers.every((h) => h.ok)).toBe(true)
      expect(await p.health()).toMatchObject({ ok: true })
      expect(replica.served.get('GenerateRandom')).toBe(before + 1)
      await new Promise((r) => setTimeout(r, 1050))
      expect((await p.health()).ok).toBe(true)
      expect(replica.served.get('GenerateRandom')).toBe(before + 2)
    } finally {
      await p.close()
    }
  })
})

describe('throttling', () => {
  it('a burst of ThrottlingException is retried with backoff; CreateKey runs once (no duplicate KMS key)', async () => {
    const p = await createAwsKmsProvider(options())
    const before = primary.served.get('CreateKey') ?? 0
    primary.throttleNext(3)
    const ref = await p.createVersion({
      catalogId: '00000000-0000-4000-8000-000000000001',
      keyId: '00000000-0000-4000-8000-000000000002',
      version: 1,
    })
    expect(primary.served.get('CreateKey')).toBe(before + 1)
    const listed = (await p.listObjects()).filter((o) => o.keyId === '00000000-0000-4000-8000-000000000002')
    expect(listed).toEqual([
      {
        ref,
        catalogId: '00000000-0000-4000-8000-000000000001',
        keyId: '00000000-0000-4000-8000-000000000002',
        version: 1,
      },
    ])
    primary.throttleNext(2)
    expect((await p.generateRandom(16)).length).toBe(16)
    await p.destroyVersion(ref)
    await p.close()
  })

  it('throttling that outlasts the retries fails with PROVIDER_THROTTLED (retryable)', async () => {
    const p = await createAwsKmsProvider(
      options({ retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 } }),
    )
    primary.throttleNext(2)
    const e = await expectCode(p.generateRandom(16), 'PROVIDER_THROTTLED')
    expect(e.retryable).toBe(true)
    expect((await p.generateRandom(16)).length).toBe(16)
    await p.close()
  })
})

describe('timeouts', () => {
  let hung: Server
  let hungUrl: string
  const sockets: Socket[] = []
  beforeAll(async () => {
    hung = createServer((s) => sockets.push(s)) // accepts, reads nothing, never answers
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r))
    hungUrl = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((r) => hung.close(() => r()))
  })

  it('a region that never answers times out per request and ends in PROVIDER_UNAVAILABLE', async () => {
    const p = await createAwsKmsProvider(
      options({
        regions: [{ region: 'us-east-1', endpoint: hungUrl }],
        requestTimeoutMs: 150,
        retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
      }),
    )
    const e = await expectCode(p.generateRandom(8), 'PROVIDER_UNAVAILABLE')
    expect(e.message).toMatch(/TimeoutError|unreachable/)
    await p.close()
  })

  it('a hung primary fails over to the replica within the timeout budget', async () => {
    const p = await createAwsKmsProvider(
      options({
        regions: [
          { region: 'us-east-1', endpoint: hungUrl },
          { region: 'eu-west-1', endpoint: replica.url },
        ],
        requestTimeoutMs: 150,
        retry: { maxAttempts: 1 },
      }),
    )
    expect((await p.generateRandom(8)).length).toBe(8)
    await p.close()
  })

  it('an aborted call stops waiting on a hung region with ABORTED', async () => {
    const p = await createAwsKmsProvider(
      options({ regions: [{ region: 'us-east-1', endpoint: hungUrl }], requestTimeoutMs: 10_000 }),
    )
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 100)
    await expectCode(p.generateRandom(8, { signal: ac.signal }), 'ABORTED')
    await p.close()
  })
})

const realRegion = process.env['EKMS_AWS_KMS_REGION']
if (realRegion === undefined) {
  describe('real AWS KMS', () => {
    it.skip('skipped: set EKMS_AWS_KMS_REGION (and AWS credentials in the standard chain; optionally EKMS_AWS_KMS_REPLICA_REGION) to run the conformance suite against real AWS KMS', () =>
      undefined)
  })
} else {
  const replicaRegion = process.env['EKMS_AWS_KMS_REPLICA_REGION']
  runRootKeyProviderConformance(`aws-kms against real AWS KMS in ${realRegion}`, () =>
    createAwsKmsProvider({
      regions: [{ region: realRegion }, ...(replicaRegion === undefined ? [] : [{ region: replicaRegion }])],
    }),
  )
}
