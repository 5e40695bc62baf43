/**
 * Key synchronization (src/core/sync/) over a real SQLite file and the real job runner, with a SyncSource
 * written here: in-memory keys per connection, AES-256-GCM through node:crypto for wrap/unwrap. The real
 * sources (Azure Key Vault, AWS KMS, PKCS#11) are built and tested in providers/ and end to end by the
 * integration suites; this file proves the service's rules: discovery, idempotency, deleted-at-source
 * marking, cancel, resume from a checkpoint, the request rules and their codes, wrap/unwrap and their codes,
 * connections and their secrets.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createJobRunner, type JobRunner } from '../../../src/core/jobs/runner.js'
import type { JobHandler } from '../../../src/core/jobs/job-types.js'
import { EngineError } from '../../../src/core/errors.js'
import type {
  ConnectionCheck,
  ConnectionRecord,
  DiscoveredKey,
  SyncCloud,
  SyncSource,
  SyncSourceFactories,
} from '../../../src/core/ports-sync.js'
import { SecretBytes } from '../../../src/core/secret-bytes.js'
import { createSecretResolver } from '../../../src/core/sync/secrets.js'
import { createKeySync, lazySyncHandlers, type KeySyncService } from '../../../src/core/sync/service.js'
import { openSqliteStore, type SqliteStore } from '../../../src/store/sqlite/index.js'
import { expectCode } from '../../helpers/expect-code.js'
import { tempCatalogPath } from '../../helpers/engine.js'

const T = 'acme'
const PIN = 'pin-Zq8-very-secret'
const MODULE = '/usr/lib/softhsm/libsofthsm2.so'

/** One key at a source: what discovery reports, and the AES key of each version ref. */
interface SourceKey {
  report: DiscoveredKey
  material: Map<string, Buffer>
}

/** The "clouds" of this test: keys per connection name, and hooks to pause or fail discovery. */
class MemoryClouds {
  readonly keys = new Map<string, Map<string, SourceKey>>()
  /** Discovery of a connection pauses before its key number `at` until `release()` (or the signal). */
  gate: { connection: string; at: number; reached: () => void; opened: Promise<void> } | undefined
  #open: (() => void) | undefined
  failDiscovery: EngineError | undefined
  failOpen: EngineError | undefined
  probes: ConnectionCheck[] | undefined
  /** The source binds no AAD (as RSA-OAEP wrapping of Azure RSA keys). */
  ignoreAad = false
  opened = 0
  closed = 0

  add(connection: string, n: number, over: Partial<DiscoveredKey> = {}, versions = 1): SourceKey {
    const m = this.keys.get(connection) ?? new Map<string, SourceKey>()
    this.keys.set(connection, m)
    const id = over.sourceKeyId ?? `${connection}/key-${n}`
    const material = new Map<string, Buffer>()
    const vs = Array.from({ length: versions }, (_, v) => {
      const ref = `${id}#v${v + 1}`
      material.set(ref, randomBytes(32))
      return { version: `v${v + 1}`, ref, enabled: true, createdAt: 1000 + v }
    })
    const k: SourceKey = {
      report: {
        sourceKeyId: id,
        vault: 'vault-1',
        name: `key-${n}`,
        keyType: 'AES',
        usable: true,
        enabled: true,
        versions: vs,
        attributes: { n },
        ...over,
      },
      material,
    }
    m.set(id, k)
    return k
  }

  remove(connection: string, sourceKeyId: string): SourceKey {
    const m = this.keys.get(connection)
    const k = m?.get(sourceKeyId)
    if (m === undefined || k === undefined) throw new Error('no such key')
    m.delete(sourceKeyId)
    return k
  }

  pause(connection: string, at: number): Promise<void> {
    let reached!: () => void
    const hit = new Promise<void>((r) => (reached = r))
    const opened = new Promise<void>((r) => (this.#open = r))
    this.gate = { connection, at, reached, opened }
    return hit
  }

  release(): void {
    this.gate = undefined
    this.#open?.()
  }

  /** The factory of every cloud: the PIN / token / keys are read through the resolver. */
  factories(): SyncSourceFactories {
    const f = async (c: ConnectionRecord, secrets: (s: never) => Promise<string>): Promise<SyncSource> => {
      if (this.failOpen !== undefined) throw this.failOpen
      if (c.params.cloud === 'pkcs11') {
        const pin = await secrets(c.params.pin as never)
        if (pin !== PIN) throw new EngineError('PROVIDER_LOGIN_FAILED', `token refused the PIN ${pin}`)
      }
      this.opened++
      return this.#source(c, this)
    }
    return { aws: f, azure: f, pkcs11: f }
  }

  #source(c: ConnectionRecord, clouds: MemoryClouds): SyncSource {
    const all = (): SourceKey[] => [...(this.keys.get(c.name)?.values() ?? [])]
    const materialOf = (ref: string): Buffer => {
      for (const k of all()) {
        const m = k.material.get(ref)
        if (m !== undefined) return m
      }
      for (const m of this.keys.values())
        for (const k of m.values()) if (k.material.has(ref)) return k.material.get(ref)!
      throw new EngineError('KEY_VERSION_MATERIAL_MISSING', 'no such key version')
    }
    return {
      cloud: c.cloud,
      async *discover(options = {}) {
        if (clouds.failDiscovery !== undefined) throw clouds.failDiscovery
        const keys = all().filter(
          (k) => options.regions === undefined || options.regions.includes(k.report.vault),
        )
        for (const [i, k] of keys.entries()) {
          const g = clouds.gate
          if (g !== undefined && g.connection === c.name && g.at === i) {
            g.reached()
            await new Promise<void>((resolve, reject) => {
              void g.opened.then(resolve)
              options.signal?.addEventListener('abort', () => reject(new EngineError('ABORTED', 'stopped')))
            })
          }
          yield k.report
        }
      },
      async wrap(ref, plaintext, aad) {
        const iv = randomBytes(12)
        const cipher = createCipheriv('aes-256-gcm', materialOf(ref), iv).setAAD(
          clouds.ignoreAad ? Buffer.alloc(0) : aad,
        )
        const ct = Buffer.concat([cipher.update(plaintext.bytes), cipher.final()])
        return Buffer.concat([iv, cipher.getAuthTag(), ct])
      },
      async unwrap(ref, blob, aad) {
        try {
          const d = createDecipheriv('aes-256-gcm', materialOf(ref), blob.subarray(0, 12)).setAAD(
            clouds.ignoreAad ? Buffer.alloc(0) : aad,
          )
          d.setAuthTag(blob.subarray(12, 28))
          return SecretBytes.adopt(Buffer.concat([d.update(blob.subarray(28)), d.final()]))
        } catch (err) {
          if (err instanceof EngineError) throw err
          throw new EngineError('UNWRAP_AAD_MISMATCH', 'does not authenticate')
        }
      },
      async test() {
        return clouds.probes ?? [{ check: 'list', where: c.name, ok: true }]
      },
      async close() {
        clouds.closed++
      },
    }
  }
}

interface World {
  path: string
  store: SqliteStore
  jobs: JobRunner
  sync: KeySyncService
  clouds: MemoryClouds
  env: NodeJS.ProcessEnv
}

const open: World[] = []

async function world(
  options: { path?: string; clouds?: MemoryClouds; sources?: SyncSourceFactories; extra?: JobHandler[] } = {},
): Promise<World> {
  const path = options.path ?? tempCatalogPath()
  const store = await openSqliteStore({ path })
  const clouds = options.clouds ?? new MemoryClouds()
  const env: NodeJS.ProcessEnv = { HSM_PIN: PIN, AWS_AK: 'AKIA-secret-ak', AWS_SK: 'secret-sk-value' }
  const ref: { sync?: KeySyncService } = {}
  const clock = { now: () => Date.now() }
  const jobs = createJobRunner({
    store,
    clock,
    handlers: [...lazySyncHandlers(() => ref.sync), ...(options.extra ?? [])],
    pollIntervalMs: 10,
    sweepIntervalMs: 50,
  })
  const sync = createKeySync({
    store,
    jobs,
    sources: options.sources ?? clouds.factories(),
    clock,
    secrets: createSecretResolver(env),
    job: { batchSize: 3 },
  })
  ref.sync = sync
  await jobs.start()
  const w = { path, store, jobs, sync, clouds, env }
  open.push(w)
  return w
}

async function shut(w: World): Promise<void> {
  const i = open.indexOf(w)
  if (i >= 0) open.splice(i, 1)
  await w.jobs.close()
  await w.sync.close()
  await w.store.close()
}

afterEach(async () => {
  for (const w of [...open]) await shut(w)
})

const pkcs11 = (tokenLabel = 'tok-a') =>
  ({ cloud: 'pkcs11', module: MODULE, tokenLabel, pin: { kind: 'env', name: 'HSM_PIN' } }) as const
const aws = (regions: string[] = ['eu-west-1', 'us-east-1']) =>
  ({
    cloud: 'aws',
    regions,
    endpoint: 'https://127.0.0.1:4443',
    credentials: {
      kind: 'static',
      accessKeyId: { kind: 'env', name: 'AWS_AK' },
      secretAccessKey: { kind: 'env', name: 'AWS_SK' },
    },
  }) as const
const azure = () =>
  ({
    cloud: 'azure',
    vaultUrl: 'https://vault.example.net',
    credential: { kind: 'static-token', token: { kind: 'env', name: 'AZ_TOKEN' } },
  }) as const

async function syncNow(w: World, cloud: SyncCloud, vaults?: string[], extra: object = {}) {
  const job = await w.sync.startSync(T, {
    cloud,
    ...(vaults === undefined ? { synchronizeAll: true } : { vaults }),
    ...extra,
  })
  return w.sync.waitForSync(T, job.id)
}

async function allKeys(w: World, tenant = T) {
  return (await w.sync.listLinkedKeys(tenant, { limit: 1000 })).keys
}

describe('synchronization jobs', () => {
  it('discover and link every key; a re-sync is idempotent (all unchanged, the same ids)', async () => {
    const w = await world()
    await w.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    for (let i = 0; i < 8; i++) w.clouds.add('hsm-a', i)
    const first = await syncNow(w, 'pkcs11', ['hsm-a'])
    expect(first.overallStatus).toBe('completed')
    expect(first.counts).toEqual({ discovered: 8, inserted: 8, updated: 0, unchanged: 0, markedDeleted: 0 })
    expect(first.progress).toBe(100)
    expect(first.vaults).toEqual([{ name: 'hsm-a', id: expect.any(String) }])
    const keys = await allKeys(w)
    expect(keys).toHaveLength(8)
    expect(keys.every((k) => k.sourceState === 'present' && k.lastSyncJobId === first.id)).toBe(true)

    const second = await syncNow(w, 'pkcs11', undefined)
    expect(second.synchronizeAll).toBe(true)
    expect(second.counts).toEqual({ discovered: 8, inserted: 0, updated: 0, unchanged: 8, markedDeleted: 0 })
    const again = await allKeys(w)
    expect(again.map((k) => k.id)).toEqual(keys.map((k) => k.id))
    expect(again.every((k) => k.lastSyncJobId === second.id)).toBe(true)

    // A metadata change at the source is an update of the same linked key.
    const k3 = w.clouds.keys.get('hsm-a')!.get('hsm-a/key-3')!
    k3.report = { ...k3.report, name: 'renamed', attributes: { n: 3, tag: 'x' } }
    const third = await syncNow(w, 'pkcs11', ['tok-a']) // by token label
    expect(third.counts).toMatchObject({ updated: 1, unchanged: 7, inserted: 0 })
    const renamed = (await allKeys(w)).find((k) => k.sourceKeyId === 'hsm-a/key-3')
    expect(renamed?.name).toBe('renamed')
    expect(renamed?.id).toBe(keys.find((k) => k.sourceKeyId === 'hsm-a/key-3')?.id)
  })

  it('a key removed at the source is marked deleted (never dropped); when it reappears it is present again, same id', async () => {
    const w = await world()
    await w.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    for (let i = 0; i < 4; i++) w.clouds.add('hsm-a', i)
    await syncNow(w, 'pkcs11', ['hsm-a'])
    const before = (await allKeys(w)).find((k) => k.sourceKeyId === 'hsm-a/key-2')!
    const gone = w.clouds.remove('hsm-a', 'hsm-a/key-2')
    const job = await syncNow(w, 'pkcs11', ['hsm-a'])
    expect(job.counts).toMatchObject({ discovered: 3, unchanged: 3, markedDeleted: 1 })
    const marked = await w.sync.getLinkedKey(T, before.id)
    expect(marked.sourceState).toBe('deleted')
    expect(marked.deletedAtSourceAt).toBeInstanceOf(Date)
    expect((await w.sync.listLinkedKeys(T, { sourceState: 'deleted' })).total).toBe(1)
    // Marked once: the next sync does not count it again.
    expect((await syncNow(w, 'pkcs11', ['hsm-a'])).counts.markedDeleted).toBe(0)

    w.clouds.keys.get('hsm-a')!.set(gone.report.sourceKeyId, gone)
    const back = await syncNow(w, 'pkcs11', ['hsm-a'])
    expect(back.counts).toMatchObject({ updated: 1, unchanged: 3, inserted: 0 })
    const restored = await w.sync.getLinkedKey(T, before.id)
    expect(restored.sourceState).toBe('present')
    expect(restored.deletedAtSourceAt).toBeUndefined()
  })

  it('AWS: one unit per region; a region subset marks missing keys only in those regions', async () => {
    const w = await world()
    const c = await w.sync.createConnection(T, { name: 'aws-main', params: aws() })
    for (let i = 0; i < 3; i++) w.clouds.add('aws-main', i, { vault: 'eu-west-1' })
    for (let i = 3; i < 5; i++) w.clouds.add('aws-main', i, { vault: 'us-east-1' })
    const full = await syncNow(w, 'aws', [c.id])
    expect(full.total).toBe(2)
    expect(full.counts.inserted).toBe(5)
    // Both regions lose a key; only eu-west-1 is synchronized.
    w.clouds.remove('aws-main', 'aws-main/key-0')
    w.clouds.remove('aws-main', 'aws-main/key-3')
    const sub = await syncNow(w, 'aws', ['aws-main'], { regions: ['eu-west-1'] })
    expect(sub.regions).toEqual(['eu-west-1'])
    expect(sub.total).toBe(1)
    expect(sub.counts).toMatchObject({ discovered: 2, markedDeleted: 1 })
    const state = Object.fromEntries((await allKeys(w)).map((k) => [k.sourceKeyId, k.sourceState]))
    expect(state['aws-main/key-0']).toBe('deleted')
    expect(state['aws-main/key-3']).toBe('present')
    expect((await syncNow(w, 'aws', ['aws-main'])).counts.markedDeleted).toBe(1)
  })

  it('cancel mid-job stops it cleanly: cancelled, abort set, counters equal what was linked', async () => {
    const w = await world()
    await w.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    for (let i = 0; i < 10; i++) w.clouds.add('hsm-a', i)
    const reached = w.clouds.pause('hsm-a', 7)
    const job = await w.sync.startSync(T, { cloud: 'pkcs11', vaults: ['hsm-a'] })
    await reached
    const c = await w.sync.cancelSync(T, job.id)
    expect(c.abort).toBe(true)
    w.clouds.release()
    const done = await w.sync.waitForSync(T, job.id)
    expect(done.overallStatus).toBe('cancelled')
    expect(done.abort).toBe(true)
    const linked = await allKeys(w)
    expect(done.counts.inserted).toBe(6)
    expect(done.counts.discovered).toBe(6)
    expect(linked).toHaveLength(done.counts.inserted)
    expect(linked.every((k) => k.sourceState === 'present')).toBe(true) // no marking after a cancel
    await expectCode(w.sync.cancelSync(T, job.id), 'JOB_FINISHED')
  })

  it('a job interrupted mid-unit (runner closed) resumes in a new runner over the same file: no duplicates, exact counters', async () => {
    const clouds = new MemoryClouds()
    const w1 = await world({ clouds })
    await w1.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    await w1.sync.createConnection(T, { name: 'hsm-b', params: pkcs11('tok-b') })
    for (let i = 0; i < 10; i++) clouds.add('hsm-a', i)
    for (let i = 0; i < 2; i++) clouds.add('hsm-b', i)
    const reached = clouds.pause('hsm-a', 7)
    const job = await w1.sync.startSync(T, { cloud: 'pkcs11', synchronizeAll: true })
    await reached
    const firstIds = new Map((await allKeys(w1)).map((k) => [k.sourceKeyId, k.id]))
    expect(firstIds.size).toBe(6)
    await shut(w1) // the runner closes: the job stays running with its checkpoint
    clouds.release()

    const w2 = await world({ path: w1.path, clouds })
    const done = await w2.sync.waitForSync(T, job.id)
    expect(done.overallStatus).toBe('completed')
    expect(done.counts).toEqual({ discovered: 12, inserted: 12, updated: 0, unchanged: 0, markedDeleted: 0 })
    const keys = await allKeys(w2)
    expect(keys).toHaveLength(12)
    expect(new Set(keys.map((k) => `${k.connectionId}/${k.sourceKeyId}`)).size).toBe(12)
    for (const [sourceKeyId, id] of firstIds)
      expect(keys.find((k) => k.sourceKeyId === sourceKeyId)?.id).toBe(id)
  })

  it('a source failure fails the job with the source code; the failed source is reopened next time', async () => {
    const w = await world()
    await w.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    w.clouds.add('hsm-a', 1)
    w.clouds.failDiscovery = new EngineError('PROVIDER_UNAVAILABLE', 'token unreachable')
    const failed = await syncNow(w, 'pkcs11', ['hsm-a'])
    expect(failed.overallStatus).toBe('failed')
    expect(failed.error?.code).toBe('PROVIDER_UNAVAILABLE')
    w.clouds.failDiscovery = undefined
    const opened = w.clouds.opened
    expect((await syncNow(w, 'pkcs11', ['hsm-a'])).overallStatus).toBe('completed')
    expect(w.clouds.opened).toBe(opened + 1)
  })
})

describe('synchronization requests', () => {
  it("vaults and synchronizeAll: exactly one; unknown vaults; regions only for AWS and among the connection's", async () => {
    const w = await world()
    await w.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    await w.sync.createConnection(T, { name: 'aws-main', params: aws(['eu-west-1']) })
    await expectCode(w.sync.startSync(T, { cloud: 'pkcs11' }), 'INVALID_FIELD_ERR')
    await expectCode(
      w.sync.startSync(T, { cloud: 'pkcs11', vaults: ['hsm-a'], synchronizeAll: true }),
      'INVALID_FIELD_ERR',
    )
    await expectCode(w.sync.startSync(T, { cloud: 'pkcs11', vaults: [] }), 'INVALID_FIELD_ERR')
    await expectCode(
      w.sync.startSync(T, { cloud: 'gcp' as SyncCloud, synchronizeAll: true }),
      'INVALID_FIELD_ERR',
    )
    await expectCode(w.sync.startSync(T, { cloud: 'azure', synchronizeAll: true }), 'INVALID_FIELD_ERR')
    await expectCode(w.sync.startSync(T, { cloud: 'pkcs11', vaults: ['nope'] }), 'CONNECTION_NOT_FOUND')
    // A connection of another cloud is not a vault of this one.
    await expectCode(w.sync.startSync(T, { cloud: 'pkcs11', vaults: ['aws-main'] }), 'CONNECTION_NOT_FOUND')
    // Another tenant's connection neither.
    await expectCode(
      w.sync.startSync('globex', { cloud: 'pkcs11', vaults: ['hsm-a'] }),
      'CONNECTION_NOT_FOUND',
    )
    await expectCode(
      w.sync.startSync(T, { cloud: 'pkcs11', vaults: ['hsm-a'], regions: ['eu-west-1'] }),
      'INVALID_FIELD_ERR',
    )
    await expectCode(
      w.sync.startSync(T, { cloud: 'aws', vaults: ['aws-main'], regions: ['us-east-1'] }),
      'INVALID_FIELD_ERR',
    )
    await expectCode(
      w.sync.startSync(T, { cloud: 'aws', vaults: ['aws-main'], regions: ['EU'] }),
      'INVALID_FIELD_ERR',
    )
    expect(await w.jobs.list(T)).toMatchObject({ total: 0 })
  })

  it('a second job of the same cloud is JOB_CONFLICT while a job of another cloud runs', async () => {
    const w = await world()
    await w.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    await w.sync.createConnection(T, { name: 'aws-main', params: aws() })
    w.clouds.add('hsm-a', 1)
    for (let i = 0; i < 5; i++) w.clouds.add('aws-main', i, { vault: 'eu-west-1' })
    const reached = w.clouds.pause('aws-main', 2)
    const a = await w.sync.startSync(T, { cloud: 'aws', synchronizeAll: true })
    await reached
    await expectCode(w.sync.startSync(T, { cloud: 'aws', vaults: ['aws-main'] }), 'JOB_CONFLICT')
    const p = await syncNow(w, 'pkcs11', ['hsm-a'])
    expect(p.overallStatus).toBe('completed')
    expect((await w.sync.getSyncJob(T, a.id)).overallStatus).toBe('in_progress')
    w.clouds.release()
    expect((await w.sync.waitForSync(T, a.id)).overallStatus).toBe('completed')
  })

  it("job views: only sync jobs, only the tenant's; list filters by cloud and status, newest first, paged", async () => {
    const toy: JobHandler = { type: 'toy', run: async () => undefined }
    const w = await world({ extra: [toy] })
    await w.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    await w.sync.createConnection(T, { name: 'aws-main', params: aws(['eu-west-1']) })
    const other = await w.jobs.submit(T, 'toy', {})
    await expectCode(w.sync.getSyncJob(T, other.id), 'JOB_NOT_FOUND')
    await expectCode(w.sync.cancelSync(T, other.id), 'JOB_NOT_FOUND')
    const j1 = await syncNow(w, 'pkcs11', ['hsm-a'])
    const j2 = await syncNow(w, 'aws', ['aws-main'])
    const j3 = await syncNow(w, 'pkcs11', ['hsm-a'])
    await expectCode(w.sync.getSyncJob('globex', j1.id), 'JOB_NOT_FOUND')
    const all = await w.sync.listSyncJobs(T)
    expect(all.total).toBe(3)
    expect(all.jobs.map((j) => j.id)).toEqual([j3.id, j2.id, j1.id])
    expect((await w.sync.listSyncJobs(T, { cloud: 'pkcs11' })).jobs.map((j) => j.id)).toEqual([j3.id, j1.id])
    expect((await w.sync.listSyncJobs(T, { skip: 1, limit: 1 })).jobs.map((j) => j.id)).toEqual([j2.id])
    expect((await w.sync.listSyncJobs(T, { overallStatus: 'in_progress' })).total).toBe(0)
    expect(
      (await w.sync.listSyncJobs(T, { overallStatus: 'completed', cloud: 'aws' })).jobs.map((j) => j.id),
    ).toEqual([j2.id])
    await expectCode(w.sync.listSyncJobs(T, { limit: 0 }), 'INVALID_FIELD_ERR')
  })
})

describe('wrap and unwrap under linked keys', () => {
  async function linked(w: World, tenant = T, connection = 'hsm-a') {
    await w.sync.createConnection(tenant, { name: connection, params: pkcs11() })
    const job = await w.sync.startSync(tenant, { cloud: 'pkcs11', vaults: [connection] })
    await w.sync.waitForSync(tenant, job.id)
    return (await w.sync.listLinkedKeys(tenant, { connection })).keys
  }

  it('round trip: a generated 32-byte DEK and a given one, with AAD; the newest enabled version wraps', async () => {
    const w = await world()
    w.clouds.add('hsm-a', 1, {}, 3)
    const [k] = await linked(w)
    const g = await w.sync.wrap(T, k!.id, { aad: ['ctx'] })
    expect(g.plaintext?.length).toBe(32)
    expect(g.keyId).toBe(k!.id)
    expect(g.keyVersion).toBe(3)
    const u = await w.sync.unwrap(T, { ciphertext: g.ciphertext, aad: ['ctx'] })
    expect(u.plaintext.bytes.equals(g.plaintext!.bytes)).toBe(true)
    expect(u.keyVersion).toBe(3)
    const mine = Buffer.from('0123456789abcdef')
    const w2 = await w.sync.wrap(T, k!.id, { plaintext: mine })
    expect(w2.plaintext).toBeUndefined()
    expect(mine.toString()).toBe('0123456789abcdef') // the caller's buffer is left alone
    expect((await w.sync.unwrap(T, { ciphertext: w2.ciphertext })).plaintext.bytes.toString()).toBe(
      '0123456789abcdef',
    )

    // Version 3 disabled at the source: version 2 wraps; version-3 ciphertexts still unwrap.
    const sk = w.clouds.keys.get('hsm-a')!.get('hsm-a/key-1')!
    sk.report = {
      ...sk.report,
      versions: sk.report.versions.map((v, i) => (i === 2 ? { ...v, enabled: false } : v)),
    }
    await syncNow(w, 'pkcs11', ['hsm-a'])
    const v2 = await w.sync.wrap(T, k!.id)
    expect(v2.keyVersion).toBe(2)
    expect((await w.sync.unwrap(T, { ciphertext: g.ciphertext, aad: ['ctx'] })).keyVersion).toBe(3)
  })

  it('wrong AAD, a tampered blob, an unknown version, garbage, another tenant: the typed codes', async () => {
    const w = await world()
    w.clouds.add('hsm-a', 1)
    const [k] = await linked(w)
    const { ciphertext } = await w.sync.wrap(T, k!.id, { aad: ['a'] })
    await expectCode(w.sync.unwrap(T, { ciphertext, aad: ['b'] }), 'UNWRAP_AAD_MISMATCH')
    await expectCode(w.sync.unwrap(T, { ciphertext }), 'UNWRAP_AAD_MISMATCH')
    const b = Buffer.from(ciphertext, 'base64')
    const tampered = Buffer.from(b)
    tampered[tampered.length - 1]! ^= 1
    await expectCode(
      w.sync.unwrap(T, { ciphertext: tampered.toString('base64'), aad: ['a'] }),
      'UNWRAP_AAD_MISMATCH',
    )
    const v9 = Buffer.from(b)
    v9.writeUInt32BE(9, 18)
    await expectCode(
      w.sync.unwrap(T, { ciphertext: v9.toString('base64'), aad: ['a'] }),
      'KEY_VERSION_NOT_FOUND',
    )
    await expectCode(w.sync.unwrap(T, { ciphertext: 'bm90IGEgY2lwaGVydGV4dA==' }), 'CIPHERTEXT_INVALID')
    const unknownKey = Buffer.from(b)
    Buffer.from(randomUUID().replaceAll('-', ''), 'hex').copy(unknownKey, 2)
    await expectCode(
      w.sync.unwrap(T, { ciphertext: unknownKey.toString('base64'), aad: ['a'] }),
      'LINKED_KEY_NOT_FOUND',
    )
    await expectCode(w.sync.unwrap('globex', { ciphertext, aad: ['a'] }), 'LINKED_KEY_NOT_FOUND')
    await expectCode(w.sync.wrap('globex', k!.id), 'LINKED_KEY_NOT_FOUND')
    await expectCode(w.sync.getLinkedKey('globex', k!.id), 'LINKED_KEY_NOT_FOUND')
    await expectCode(w.sync.wrap(T, 'not-an-id'), 'LINKED_KEY_NOT_FOUND')
  })

  it("the AAD binds tenant and linked key: the same source key linked by two tenants does not accept the other's ciphertext", async () => {
    const w = await world()
    w.clouds.add('hsm-a', 1)
    const [a] = await linked(w, T, 'hsm-a')
    const [g] = await linked(w, 'globex', 'hsm-a') // globex links the very same source key (same material)
    expect(g!.id).not.toBe(a!.id)
    const { ciphertext } = await w.sync.wrap(T, a!.id)
    const moved = Buffer.from(ciphertext, 'base64')
    Buffer.from(g!.id.replaceAll('-', ''), 'hex').copy(moved, 2)
    await expectCode(w.sync.unwrap('globex', { ciphertext: moved.toString('base64') }), 'UNWRAP_AAD_MISMATCH')
    // Even a linked key of the same id in another tenant (ids are unique per tenant only in the catalog's
    // key) over the same source key does not accept it: the tenant is bound too.
    const gc = await w.sync.getConnection('globex', 'hsm-a')
    const src = await w.sync.getLinkedKey(T, a!.id)
    await w.store.upsertLinkedKeys(
      'globex',
      gc.id,
      'pkcs11',
      [{ ...src, id: a!.id, sourceKeyId: 'same-id' }],
      {
        at: 1,
        jobId: 'manual',
      },
    )
    expect((await w.sync.getLinkedKey('globex', a!.id)).versions).toEqual(src.versions)
    await expectCode(w.sync.unwrap('globex', { ciphertext }), 'UNWRAP_AAD_MISMATCH')
    // The untouched ciphertext unwraps for its own tenant.
    expect((await w.sync.unwrap(T, { ciphertext })).keyId).toBe(a!.id)
  })

  it('a source that binds no AAD (RSA-OAEP-like): caller AAD, tenant and key are still bound by the engine', async () => {
    const w = await world()
    w.clouds.ignoreAad = true
    w.clouds.add('hsm-a', 1)
    const [a] = await linked(w, T, 'hsm-a')
    await linked(w, 'globex', 'hsm-a')
    const { ciphertext, plaintext } = await w.sync.wrap(T, a!.id, { aad: ['x'] })
    expect(
      (await w.sync.unwrap(T, { ciphertext, aad: ['x'] })).plaintext.bytes.equals(plaintext!.bytes),
    ).toBe(true)
    await expectCode(w.sync.unwrap(T, { ciphertext, aad: ['y'] }), 'UNWRAP_AAD_MISMATCH')
    const gc = await w.sync.getConnection('globex', 'hsm-a')
    const src = await w.sync.getLinkedKey(T, a!.id)
    await w.store.upsertLinkedKeys(
      'globex',
      gc.id,
      'pkcs11',
      [{ ...src, id: a!.id, sourceKeyId: 'same-id' }],
      {
        at: 1,
        jobId: 'manual',
      },
    )
    await expectCode(w.sync.unwrap('globex', { ciphertext, aad: ['x'] }), 'UNWRAP_AAD_MISMATCH')
  })

  it('LINKED_KEY_UNAVAILABLE when deleted at the source, disabled, or not usable; unwrap of a deleted one still asks the source', async () => {
    const w = await world()
    w.clouds.add('hsm-a', 1)
    w.clouds.add('hsm-a', 2, { enabled: false })
    w.clouds.add('hsm-a', 3, { usable: false, keyType: 'RSA' })
    const keys = await linked(w)
    const by = (n: number) => keys.find((k) => k.sourceKeyId === `hsm-a/key-${n}`)!
    const { ciphertext } = await w.sync.wrap(T, by(1).id)
    await expectCode(w.sync.wrap(T, by(2).id), 'LINKED_KEY_UNAVAILABLE')
    await expectCode(w.sync.wrap(T, by(3).id), 'LINKED_KEY_UNAVAILABLE')
    // Removed from the listing (soft-deleted at the source), but the source still answers for its material.
    const removed = w.clouds.remove('hsm-a', 'hsm-a/key-1')
    w.clouds.keys.set('graveyard', new Map([['x', removed]]))
    await syncNow(w, 'pkcs11', ['hsm-a'])
    expect((await w.sync.getLinkedKey(T, by(1).id)).sourceState).toBe('deleted')
    await expectCode(w.sync.wrap(T, by(1).id), 'LINKED_KEY_UNAVAILABLE')
    expect((await w.sync.unwrap(T, { ciphertext })).keyId).toBe(by(1).id)
    // A source without the material any more: its own code.
    w.clouds.keys.delete('graveyard')
    await expectCode(w.sync.unwrap(T, { ciphertext }), 'KEY_VERSION_MATERIAL_MISSING')
  })
})

describe('purging linked keys', () => {
  it('refused while present at the source; allowed once marked deleted; the connection can then be deleted', async () => {
    const w = await world()
    await w.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    w.clouds.add('hsm-a', 1)
    w.clouds.add('hsm-a', 2)
    await syncNow(w, 'pkcs11', ['hsm-a'])
    const keys = await allKeys(w)
    const key1 = keys.find((k) => k.sourceKeyId === 'hsm-a/key-1')!
    const key2 = keys.find((k) => k.sourceKeyId === 'hsm-a/key-2')!
    const { ciphertext } = await w.sync.wrap(T, key1.id)

    const refused = await expectCode(w.sync.purgeLinkedKey(T, key1.id), 'KEY_ACTION_INVALID_STATE_ERR')
    expect(refused.message).toContain('delete it at the source and synchronize first')
    expect((await w.sync.getLinkedKey(T, key1.id)).sourceState).toBe('present')
    const inUse = await expectCode(w.sync.deleteConnection(T, 'hsm-a'), 'CONNECTION_IN_USE')
    expect(inUse.message).toContain('2 linked keys of keys still present at the source')

    // Key 1 is deleted at the source: marked, then purgeable; key 2 still blocks the connection's delete.
    const gone = w.clouds.remove('hsm-a', 'hsm-a/key-1')
    await syncNow(w, 'pkcs11', ['hsm-a'])
    const both = await expectCode(w.sync.deleteConnection(T, 'hsm-a'), 'CONNECTION_IN_USE')
    expect(both.message).toContain('1 linked key of keys deleted at the source')
    expect(both.message).toContain('purge them')
    expect(both.message).toContain('1 linked key of keys still present at the source')
    // With purgeDeleted, still refused while key 2 is present, and nothing is purged.
    const stillPresent = await expectCode(
      w.sync.deleteConnection(T, 'hsm-a', { purgeDeleted: true }),
      'CONNECTION_IN_USE',
    )
    expect(stillPresent.message).not.toContain('purge them')
    expect((await w.sync.getLinkedKey(T, key1.id)).sourceState).toBe('deleted')

    await w.sync.purgeLinkedKey(T, key1.id)
    await expectCode(w.sync.getLinkedKey(T, key1.id), 'LINKED_KEY_NOT_FOUND')
    await expectCode(w.sync.purgeLinkedKey(T, key1.id), 'LINKED_KEY_NOT_FOUND')
    // A ciphertext under the purged link no longer unwraps through the engine.
    await expectCode(w.sync.unwrap(T, { ciphertext }), 'LINKED_KEY_NOT_FOUND')
    expect((await allKeys(w)).map((k) => k.id)).toEqual([key2.id])

    // The key reappears at the source: linked again under a new id.
    w.clouds.keys.get('hsm-a')!.set(gone.report.sourceKeyId, gone)
    expect((await syncNow(w, 'pkcs11', ['hsm-a'])).counts).toMatchObject({ inserted: 1, unchanged: 1 })
    const relinked = (await allKeys(w)).find((k) => k.sourceKeyId === 'hsm-a/key-1')!
    expect(relinked.id).not.toBe(key1.id)

    // Everything deleted at the source and purged: the connection delete succeeds.
    w.clouds.keys.get('hsm-a')!.clear()
    await syncNow(w, 'pkcs11', ['hsm-a'])
    for (const k of await allKeys(w)) await w.sync.purgeLinkedKey(T, k.id)
    expect(await allKeys(w)).toEqual([])
    await w.sync.deleteConnection(T, 'hsm-a')
    await expectCode(w.sync.getConnection(T, 'hsm-a'), 'CONNECTION_NOT_FOUND')
  })

  it('deleteConnection with purgeDeleted purges the links of keys deleted at the source with it', async () => {
    const w = await world()
    await w.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    await w.sync.createConnection(T, { name: 'hsm-b', params: pkcs11('tok-b') })
    for (let i = 0; i < 3; i++) w.clouds.add('hsm-a', i)
    w.clouds.add('hsm-b', 9)
    await syncNow(w, 'pkcs11')
    w.clouds.keys.get('hsm-a')!.clear()
    w.clouds.keys.get('hsm-b')!.clear()
    await syncNow(w, 'pkcs11')
    expect((await w.sync.listLinkedKeys(T, { sourceState: 'deleted' })).total).toBe(4)
    const e = await expectCode(w.sync.deleteConnection(T, 'hsm-a'), 'CONNECTION_IN_USE')
    expect(e.message).toContain('3 linked keys of keys deleted at the source')
    expect(e.message).not.toContain('still present')
    await w.sync.deleteConnection(T, 'hsm-a', { purgeDeleted: true })
    await expectCode(w.sync.getConnection(T, 'hsm-a'), 'CONNECTION_NOT_FOUND')
    // Only that connection's links went.
    const left = await allKeys(w)
    expect(left.map((k) => k.sourceKeyId)).toEqual(['hsm-b/key-9'])
  })

  it("tenants are isolated: another tenant's id is LINKED_KEY_NOT_FOUND and stays in place", async () => {
    const w = await world()
    await w.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    w.clouds.add('hsm-a', 1)
    await syncNow(w, 'pkcs11', ['hsm-a'])
    w.clouds.keys.get('hsm-a')!.clear()
    await syncNow(w, 'pkcs11', ['hsm-a'])
    const [k] = await allKeys(w)
    expect(k?.sourceState).toBe('deleted')
    await expectCode(w.sync.purgeLinkedKey('globex', k!.id), 'LINKED_KEY_NOT_FOUND')
    await expectCode(w.sync.purgeLinkedKey(T, 'not-a-uuid'), 'LINKED_KEY_NOT_FOUND')
    await expectCode(w.sync.purgeLinkedKey(T, randomUUID()), 'LINKED_KEY_NOT_FOUND')
    expect((await w.sync.getLinkedKey(T, k!.id)).sourceState).toBe('deleted')
    // Upper-case spelling of the id is the same key.
    await w.sync.purgeLinkedKey(T, k!.id.toUpperCase())
    await expectCode(w.sync.getLinkedKey(T, k!.id), 'LINKED_KEY_NOT_FOUND')
  })
})

describe('connections', () => {
  it('CRUD by id or name; names unique case-insensitively; delete in use while linked keys refer to it', async () => {
    const w = await world()
    const c = await w.sync.createConnection(T, { name: 'Hsm-A', description: 'first', params: pkcs11() })
    expect(c).toMatchObject({ name: 'Hsm-A', cloud: 'pkcs11', description: 'first', lastTest: undefined })
    expect((await w.sync.getConnection(T, 'hsm-a')).id).toBe(c.id)
    expect((await w.sync.getConnection(T, c.id)).name).toBe('Hsm-A')
    await expectCode(w.sync.createConnection(T, { name: 'HSM-a', params: pkcs11() }), 'CONNECTION_EXISTS')
    await expectCode(w.sync.getConnection('globex', c.id), 'CONNECTION_NOT_FOUND')
    await w.sync.createConnection(T, { name: 'aws-main', params: aws() })
    expect((await w.sync.listConnections(T)).map((x) => x.name)).toEqual(['aws-main', 'Hsm-A'])
    expect((await w.sync.listConnections(T, { cloud: 'aws' })).map((x) => x.name)).toEqual(['aws-main'])
    const u = await w.sync.updateConnection(T, 'hsm-a', { description: 'second', params: pkcs11('tok-z') })
    expect(u.description).toBe('second')
    expect(u.params).toEqual(pkcs11('tok-z'))
    expect(u.updatedAt.getTime()).toBeGreaterThan(c.updatedAt.getTime())
    await expectCode(w.sync.updateConnection(T, 'hsm-a', { params: aws() }), 'INVALID_FIELD_ERR')
    await expectCode(w.sync.updateConnection(T, 'nope', { description: 'x' }), 'CONNECTION_NOT_FOUND')

    w.clouds.add('Hsm-A', 1)
    await syncNow(w, 'pkcs11', ['Hsm-A'])
    await expectCode(w.sync.deleteConnection(T, 'hsm-a'), 'CONNECTION_IN_USE')
    await w.sync.deleteConnection(T, 'aws-main')
    await expectCode(w.sync.getConnection(T, 'aws-main'), 'CONNECTION_NOT_FOUND')
    await expectCode(w.sync.deleteConnection(T, 'aws-main'), 'CONNECTION_NOT_FOUND')
  })

  it('an update or delete closes the open source of the connection', async () => {
    const w = await world()
    await w.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    w.clouds.add('hsm-a', 1)
    await syncNow(w, 'pkcs11', ['hsm-a'])
    const [k] = await allKeys(w)
    await w.sync.wrap(T, k!.id)
    expect(w.clouds.opened).toBe(1) // the job's source is reused by wrap
    await w.sync.updateConnection(T, 'hsm-a', { description: 'changed' })
    expect(w.clouds.closed).toBe(1)
    await w.sync.wrap(T, k!.id)
    expect(w.clouds.opened).toBe(2)
  })

  it('validation: names, URLs, regions, paths, labels, secret references, unknown fields; a cloud without a source', async () => {
    const w = await world()
    const bad: [string, unknown][] = [
      ['name', { name: 'has space', params: pkcs11() }],
      ['name', { name: 'x'.repeat(65), params: pkcs11() }],
      ['name', { name: '', params: pkcs11() }],
      ['cloud', { name: 'a', params: { ...pkcs11(), cloud: 'gcp' } }],
      ['module', { name: 'a', params: { ...pkcs11(), module: 'relative/lib.so' } }],
      ['label', { name: 'a', params: { ...pkcs11(), tokenLabel: 'x'.repeat(33) } }],
      ['pin value', { name: 'a', params: { ...pkcs11(), pin: '1234' } }],
      ['pin env', { name: 'a', params: { ...pkcs11(), pin: { kind: 'env', name: 'lower-case' } } }],
      ['pin file', { name: 'a', params: { ...pkcs11(), pin: { kind: 'file', path: 'pin.txt' } } }],
      ['pin extra', { name: 'a', params: { ...pkcs11(), pin: { kind: 'env', name: 'P', value: '1234' } } }],
      ['unknown', { name: 'a', params: { ...pkcs11(), password: '1234' } }],
      ['azure http', { name: 'a', params: { ...azure(), vaultUrl: 'http://vault.example.net' } }],
      ['azure url', { name: 'a', params: { ...azure(), vaultUrl: 'not a url' } }],
      ['azure cred', { name: 'a', params: { ...azure(), credential: { kind: 'password' } } }],
      ['aws none', { name: 'a', params: aws([]) }],
      ['aws bad', { name: 'a', params: aws(['Europe']) }],
      ['aws dup', { name: 'a', params: aws(['eu-west-1', 'eu-west-1']) }],
      ['aws endpoint', { name: 'a', params: { ...aws(), endpoint: 'ftp://x' } }],
      [
        'aws key',
        {
          name: 'a',
          params: {
            ...aws(),
            credentials: { kind: 'static', accessKeyId: 'AKIA', secretAccessKey: { kind: 'env', name: 'S' } },
          },
        },
      ],
    ]
    for (const [what, input] of bad) {
      const e = await expectCode(w.sync.createConnection(T, input as never), 'INVALID_FIELD_ERR')
      expect(e.message, what).not.toContain('1234')
      expect(e.message, what).not.toContain('AKIA')
    }
    // http on a loopback host is allowed (a local Key Vault compatible listener).
    const local = await w.sync.createConnection(T, {
      name: 'az-local',
      params: { ...azure(), vaultUrl: 'http://127.0.0.1:8443' },
    })
    expect(local.params).toMatchObject({ vaultUrl: 'http://127.0.0.1:8443' })
    expect(await w.sync.listConnections(T)).toHaveLength(1)
    const w2 = await world({ sources: {} })
    await expectCode(w2.sync.createConnection(T, { name: 'a', params: pkcs11() }), 'PROVIDER_UNSUPPORTED')
  })

  it('secrets never appear in views, the catalog or messages; testConnection records failures, never throws for them', async () => {
    const w = await world()
    const c = await w.sync.createConnection(T, { name: 'hsm-a', params: pkcs11() })
    const a = await w.sync.createConnection(T, { name: 'aws-main', params: aws() })
    const shown = JSON.stringify([c, a, await w.sync.listConnections(T)])
    expect(shown).toContain('HSM_PIN')
    for (const secret of [PIN, 'AKIA-secret-ak', 'secret-sk-value']) expect(shown).not.toContain(secret)

    const ok = await w.sync.testConnection(T, 'hsm-a')
    expect(ok.lastTest).toMatchObject({ ok: true, checks: [{ check: 'list', ok: true }] })

    // A wrong PIN: the source's message would carry it; the recorded check does not.
    w.env['HSM_PIN'] = 'wrong-pin-Qx7'
    const bad = await w.sync.testConnection(T, 'hsm-a')
    expect(bad.lastTest?.ok).toBe(false)
    expect(bad.lastTest?.checks).toEqual([
      {
        check: 'connect',
        where: 'tok-a',
        ok: false,
        error: { code: 'PROVIDER_LOGIN_FAILED', message: expect.any(String) },
      },
    ])
    expect(JSON.stringify(bad)).not.toContain('wrong-pin-Qx7')
    expect((await w.sync.getConnection(T, 'hsm-a')).lastTest?.ok).toBe(false)

    // An unset variable: INVALID_FIELD_ERR naming the variable, recorded as a failed connect.
    delete w.env['HSM_PIN']
    const unset = await w.sync.testConnection(T, 'hsm-a')
    expect(unset.lastTest?.checks[0]?.error?.code).toBe('INVALID_FIELD_ERR')
    expect(unset.lastTest?.checks[0]?.error?.message).toContain('HSM_PIN')

    // A probe that fails is recorded as the source reports it.
    w.env['HSM_PIN'] = PIN
    w.clouds.probes = [
      { check: 'connect', where: 'tok-a', ok: true },
      {
        check: 'list',
        where: 'tok-a',
        ok: false,
        error: { code: 'PROVIDER_ACCESS_DENIED', message: 'denied' },
      },
    ]
    const probed = await w.sync.testConnection(T, c.id)
    expect(probed.lastTest).toMatchObject({ ok: false, checks: w.clouds.probes })

    // Nothing of a secret reached the catalog file.
    const rows = JSON.stringify(await w.store.listConnections(T))
    for (const secret of [PIN, 'AKIA-secret-ak', 'secret-sk-value', 'wrong-pin-Qx7'])
      expect(rows).not.toContain(secret)
  })

  it('the secret resolver: env variable, first line of a file; unset or unreadable is INVALID_FIELD_ERR without the value', async () => {
    const dir = dirname(tempCatalogPath())
    const file = join(dir, 'pin.txt')
    writeFileSync(file, 'line-one-secret\r\nsecond line\n')
    const r = createSecretResolver({ A: 'value-a', EMPTY: '' })
    expect(await r({ kind: 'env', name: 'A' })).toBe('value-a')
    expect(await r({ kind: 'file', path: file })).toBe('line-one-secret')
    const unset = await expectCode(r({ kind: 'env', name: 'B' }), 'INVALID_FIELD_ERR')
    expect(unset.message).toContain('B')
    await expectCode(r({ kind: 'env', name: 'EMPTY' }), 'INVALID_FIELD_ERR')
    const missing = await expectCode(r({ kind: 'file', path: join(dir, 'missing') }), 'INVALID_FIELD_ERR')
    expect(missing.message).toContain('missing')
    writeFileSync(file, '\nsecret-on-line-two\n')
    const empty = await expectCode(r({ kind: 'file', path: file }), 'INVALID_FIELD_ERR')
    expect(empty.message).not.toContain('secret-on-line-two')
  })
})
