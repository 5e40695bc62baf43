/**
 * Tenant key provider rules (src/core/tenant-keys/): the fingerprint derivation, the wrapped form and its
 * tamper checks, JSON Patch validation, register / migrate / reset / delete rules and their codes, and the
 * migration handler (one layer under the target, skipped entries, compare-and-set). Through the real
 * EnvelopeEngine over the fakes (test/fakes): no token, no file.
 */
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { EnvelopeEngine } from '../../../src/core/engine.js'
import { parseCiphertext } from '../../../src/core/format/ciphertext.js'
import { encodeWrappedDek, parseWrappedDek } from '../../../src/core/format/wrapped-dek.js'
import { providerFingerprint } from '../../../src/core/tenant-keys/fingerprint.js'
import { validatePatch, arnRegion } from '../../../src/core/tenant-keys/providers.js'
import { createJobRunner, type JobRunner } from '../../../src/core/jobs/runner.js'
import {
  createTenantKeyProviders,
  lazyMigrationHandler,
  type TenantKeyProvidersService,
} from '../../../src/core/tenant-keys/service.js'
import { DEFAULT_PROVIDER_ARN } from '../../../src/core/tenant-keys/types.js'
import { providerKeyCrn } from '../../../src/core/tenant-keys/core.js'
import type { MigrationHandlerOptions } from '../../../src/core/tenant-keys/migration.js'
import type { DataKeyStore } from '../../../src/core/ports-tenant-keys.js'
import { expectCode, expectCodeSync } from '../../helpers/expect-code.js'
import { FakeExternalKeys } from '../../fakes/fake-external-key.js'
import { createInsecureMemoryProvider } from '../../fakes/fake-provider.js'
import { createMemoryStore } from '../../fakes/memory-store.js'
import { MemoryJobStore } from '../../fakes/memory-jobs.js'
import { MemoryTenantKeysStore } from '../../fakes/memory-tenant-keys-store.js'

const T = 'acme'
const ARN = 'arn:aws:kms:eu-west-1:111122223333:key/mrk-0123456789abcdef0123456789abcdef'
const ARN2 = 'arn:aws:kms:eu-west-1:111122223333:key/0b7a3c1e-5a1d-4f7e-9c2b-1d2e3f4a5b6c'
const REPLICA = { arn: ARN.replace('eu-west-1', 'eu-west-3'), region: 'eu-west-3' }

interface World {
  engine: EnvelopeEngine
  store: MemoryTenantKeysStore
  jobs: JobRunner
  kms: FakeExternalKeys
  tk: TenantKeyProvidersService
}

/** The engine over fakes, the real job runner over the in-memory job store; the runner started unless told. */
async function world(
  options: { batchSize?: number; started?: boolean; migration?: MigrationHandlerOptions } = {},
): Promise<World> {
  const engine = new EnvelopeEngine({ provider: createInsecureMemoryProvider(), store: createMemoryStore() })
  const store = new MemoryTenantKeysStore()
  const kms = new FakeExternalKeys()
  kms.add(ARN, { multiRegion: true, replicaKeys: [REPLICA] })
  kms.add(ARN2)
  const ref: { tk?: TenantKeyProvidersService } = {}
  const jobs = createJobRunner({
    store: new MemoryJobStore(),
    clock: { now: () => Date.now() },
    handlers: [lazyMigrationHandler(() => ref.tk)],
    pollIntervalMs: 10,
  })
  const tk = createTenantKeyProviders({
    engine,
    store,
    jobs,
    backends: { awsKms: kms },
    migration: {
      batchSize: options.batchSize ?? 7,
      backoff: { baseMs: 1, maxMs: 5 },
      ...options.migration,
    },
  })
  ref.tk = tk
  if (options.started ?? true) await jobs.start()
  return { engine, store, jobs, kms, tk }
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

describe('fingerprints', () => {
  it('are the first 32 hex chars of SHA-256(domain \\0 tenant \\0 arn): known vectors', () => {
    expect(providerFingerprint('acme', ARN)).toBe('143139df2df890e7a2d9202f3b09a405')
    expect(providerFingerprint('globex', ARN)).toBe('79c4182156598203c694b7b929c0107b')
    const manual = createHash('sha256').update(`envelope-kms/key-provider/v1\0acme\0${ARN2}`).digest('hex')
    expect(providerFingerprint('acme', ARN2)).toBe(manual.slice(0, 32))
  })

  it('the default provider is the tenant id; registered ones are tenant-bound', async () => {
    const { tk } = await world()
    const all = await tk.listAll(T)
    expect(all).toHaveLength(1)
    expect(all[0]).toMatchObject({
      fingerprint: T,
      arn: DEFAULT_PROVIDER_ARN,
      kind: 'default',
      current: true,
    })
    expect(all[0]!.createdAt).toBeUndefined()
    const a = await tk.register(T, { arn: ARN, name: 'cmk' })
    const b = await tk.register('globex', { arn: ARN, name: 'cmk' })
    expect(a.fingerprint).not.toBe(b.fingerprint)
    expect(a.fingerprint).toMatch(/^[0-9a-f]{32}$/)
    expect(a).toMatchObject({ multiRegion: true, replicaKeys: [REPLICA], current: false })
  })
})

describe('the wrapped form', () => {
  it('default: plain base64 of a ciphertext v1; others: #BYOKv1#:<fp>: then base64', async () => {
    const { tk } = await world()
    const d = await tk.wrapDek(T)
    expect(d.ciphertext.startsWith('#')).toBe(false)
    expect(parseCiphertext(d.ciphertext).mechanism).toBe(0x01)
    const p = await tk.register(T, { arn: ARN, name: 'cmk' })
    await tk.migrate(T, p.fingerprint)
    const a = await tk.wrapDek(T, Buffer.alloc(32, 7))
    expect(a.ciphertext.startsWith(`#BYOKv1#:${p.fingerprint}:`)).toBe(true)
    const parsed = parseWrappedDek(a.ciphertext)
    expect(parsed.fingerprint).toBe(p.fingerprint)
    expect(parsed.ciphertext.mechanism).toBe(0x10)
    expect(parsed.ciphertext.keyVersion).toBe(1)
    expect(parsed.ciphertext.dekLength).toBe(32)
    expect(encodeWrappedDek(p.fingerprint, parsed.inner)).toBe(a.ciphertext)
  })

  it('malformed prefixes are CIPHERTEXT_INVALID', () => {
    const inner = 'AQ' // not even a ciphertext: the prefix is checked first
    for (const bad of [
      `#BYOKv2#:${'a'.repeat(32)}:${inner}`,
      `#BYOKv1#:${'A'.repeat(32)}:${inner}`,
      `#BYOKv1#:${'a'.repeat(31)}:${inner}`,
      `#BYOKv1#:${'a'.repeat(32)}${inner}`,
      '#',
      '',
    ]) {
      expectCodeSync(() => parseWrappedDek(bad), 'CIPHERTEXT_INVALID')
    }
  })

  it('a value moved to another provider, another tenant or altered does not unwrap', async () => {
    const { tk } = await world()
    const p1 = await tk.register(T, { arn: ARN, name: 'one' })
    const p2 = await tk.register(T, { arn: ARN2, name: 'two' })
    const plainDefault = await tk.wrapDek(T)
    await tk.migrate(T, p1.fingerprint)
    const a = await tk.wrapDek(T)
    // The prefix swapped to another provider: the inner key id is not that provider's.
    await expectCode(
      tk.unwrapDek(T, a.ciphertext.replace(p1.fingerprint, p2.fingerprint)),
      'CIPHERTEXT_INVALID',
    )
    // A default-provider value claimed by a customer-managed provider.
    await expectCode(
      tk.unwrapDek(T, `#BYOKv1#:${p1.fingerprint}:${plainDefault.ciphertext}`),
      'CIPHERTEXT_INVALID',
    )
    // An unknown fingerprint.
    await expectCode(
      tk.unwrapDek(T, a.ciphertext.replace(p1.fingerprint, 'f'.repeat(32))),
      'KEY_PROVIDER_NOT_FOUND',
    )
    // Another tenant has no such provider.
    await expectCode(tk.unwrapDek('globex', a.ciphertext), 'KEY_PROVIDER_NOT_FOUND')
    // A flipped bit in the KMS blob.
    const parsed = parseWrappedDek(a.ciphertext)
    const raw = Buffer.from(parsed.inner, 'base64')
    raw[raw.length - 1]! ^= 1
    await expectCode(
      tk.unwrapDek(T, encodeWrappedDek(p1.fingerprint, raw.toString('base64'))),
      'UNWRAP_AAD_MISMATCH',
    )
    const ok = await tk.unwrapDek(T, a.ciphertext)
    expect(sha(ok.plaintext.bytes)).toBe(sha(a.plaintext.bytes))
    expect(ok.rewrapped).toBeUndefined()
  })
})

describe('JSON Patch of a provider', () => {
  it('accepts replace of /name and /description with string values', () => {
    expect(
      validatePatch([
        { op: 'replace', path: '/name', value: 'New' },
        { op: 'replace', path: '/description', value: '' },
      ]),
    ).toEqual({ name: 'New', description: '' })
  })

  it('refuses other ops, paths, values, shapes and an empty name', () => {
    for (const bad of [
      [],
      {},
      'x',
      [{ op: 'add', path: '/name', value: 'x' }],
      [{ op: 'replace', path: '/arn', value: 'x' }],
      [{ op: 'replace', path: '/name', value: 5 }],
      [{ op: 'replace', path: '/name', value: '  ' }],
      [{ op: 'replace', path: '/name' }],
      [{ op: 'replace', path: '/name', value: 'ok', extra: 1 }],
      [null],
    ]) {
      expectCodeSync(() => validatePatch(bad), 'INVALID_FIELD_ERR')
    }
  })

  it('all or none: a bad second operation leaves the name unchanged', async () => {
    const { tk } = await world()
    const p = await tk.register(T, { arn: ARN, name: 'before' })
    await expectCode(
      tk.patch(T, p.fingerprint, [
        { op: 'replace', path: '/name', value: 'after' },
        { op: 'replace', path: '/arn' as '/name', value: 'x' },
      ]),
      'INVALID_FIELD_ERR',
    )
    expect((await tk.get(T, p.fingerprint)).name).toBe('before')
    const v = await tk.patch(T, p.fingerprint, [{ op: 'replace', path: '/name', value: 'after' }])
    expect(v.name).toBe('after')
    await expectCode(
      tk.patch(T, 'f'.repeat(32), [{ op: 'replace', path: '/name', value: 'x' }]),
      'KEY_PROVIDER_NOT_FOUND',
    )
  })
})

describe('register', () => {
  it('checks the ARN syntax (417), duplicates (409), the key at its source', async () => {
    const { tk, kms } = await world()
    for (const bad of [
      'arn:aws:kms:eu-west-1:1111:key/mrk-0123456789abcdef0123456789abcdef',
      'arn:aws:kms:eu-west-1:111122223333:alias/x',
      'arn:aws:s3:::bucket',
      `${ARN}x`,
    ]) {
      await expectCode(tk.register(T, { arn: bad, name: 'x' }), 'KEY_PROVIDER_ARN_INVALID')
    }
    expect(arnRegion(ARN)).toBe('eu-west-1')
    await tk.register(T, { arn: ARN, name: 'x' })
    await expectCode(tk.register(T, { arn: ARN, name: 'again' }), 'KEY_PROVIDER_EXISTS')
    await expectCode(
      tk.register(T, { arn: ARN.replace('mrk-0', 'mrk-1'), name: 'x' }),
      'KEY_PROVIDER_NOT_FOUND',
    )
    const asym = ARN2.replace('0b7a', '1b7a')
    kms.add(asym, { symmetric: false })
    await expectCode(tk.register(T, { arn: asym, name: 'x' }), 'KEY_PROVIDER_ARN_INVALID')
    const disabled = ARN2.replace('0b7a', '2b7a')
    kms.add(disabled, { enabled: false })
    await expectCode(tk.register(T, { arn: disabled, name: 'x' }), 'KEY_ACTION_INVALID_STATE_ERR')
    kms.fail('eu-west-1', 'Describe', 'PROVIDER_ACCESS_DENIED')
    await expectCode(tk.register(T, { arn: ARN2, name: 'x' }), 'PROVIDER_ACCESS_DENIED')
    await expectCode(tk.register(T, { arn: ARN2, name: '' }), 'INVALID_FIELD_ERR')
  })

  it('engine-key: an active root key of the tenant, not the default one', async () => {
    const { tk, engine } = await world()
    const root = await engine.createKey(T, { name: 'cmk' })
    const std = await engine.createKey(T, { name: 'std', extractable: true })
    await expectCode(
      tk.register(T, { arn: 'not-a-uuid', name: 'x', kind: 'engine-key' }),
      'KEY_PROVIDER_ARN_INVALID',
    )
    await expectCode(tk.register(T, { arn: std.id, name: 'x', kind: 'engine-key' }), 'INVALID_FIELD_ERR')
    await expectCode(
      tk.register('globex', { arn: root.id, name: 'x', kind: 'engine-key' }),
      'KEY_PROVIDER_NOT_FOUND',
    )
    await tk.wrapDek(T) // creates the default key
    const def = (await engine.listKeys(T)).keys.find((k) => k.name === 'tenant-default-key-provider')!
    await expectCode(tk.register(T, { arn: def.id, name: 'x', kind: 'engine-key' }), 'KEY_PROVIDER_EXISTS')
    const v = await tk.register(T, { arn: root.id, name: 'x', kind: 'engine-key' })
    expect(v.kind).toBe('engine-key')
  })
})

describe('migrate and reset', () => {
  it('promotes at start, refuses the current provider (ALREADY_CURRENT) and a second migration', async () => {
    const { tk, jobs } = await world({ started: false })
    const p = await tk.register(T, { arn: ARN, name: 'cmk' })
    await expectCode(tk.migrate(T, T), 'KEY_PROVIDER_ALREADY_CURRENT')
    await expectCode(tk.resetToDefault(T), 'KEY_PROVIDER_ALREADY_CURRENT')
    await expectCode(tk.migrate(T, 'f'.repeat(32)), 'KEY_PROVIDER_NOT_FOUND')
    await expectCode(tk.migration(T), 'MIGRATION_NOT_FOUND')
    const m = await tk.migrate(T, p.fingerprint)
    expect(m).toMatchObject({
      state: 'New',
      migratingFrom: DEFAULT_PROVIDER_ARN,
      migratingTo: ARN,
      migratingToFingerprint: p.fingerprint,
      migratingToPrefix: `#BYOKv1#:${p.fingerprint}`,
    })
    const after = await tk.get(T, p.fingerprint)
    expect(after.current).toBe(true)
    expect(after.promotedToCurrentAt).toBeInstanceOf(Date)
    const def = await tk.get(T, T)
    expect(def.current).toBe(false)
    expect(def.demotedFromCurrentAt?.getTime()).toBe(after.promotedToCurrentAt?.getTime())
    await expectCode(tk.resetToDefault(T), 'MIGRATION_IN_PROGRESS')
    await expectCode(tk.migrate(T, T), 'MIGRATION_IN_PROGRESS')
    expect((await tk.migration(T)).id).toBe(m.id)
    await jobs.start()
    const done = await tk.waitForMigration(T, m.id)
    expect(done).toMatchObject({ state: 'Completed', jobState: 'completed', progress: 100 })
    await expectCode(tk.migrate(T, p.fingerprint), 'KEY_PROVIDER_ALREADY_CURRENT')
    const r = await tk.resetToDefault(T)
    expect(r).toMatchObject({
      migratingToFingerprint: T,
      migratingToPrefix: '',
      migratingTo: DEFAULT_PROVIDER_ARN,
    })
    await tk.waitForMigration(T, r.id)
    expect((await tk.get(T, T)).current).toBe(true)
    expect((await tk.migration(T)).id).toBe(r.id)
  })

  it('the handler promotes again after a crash between submit and promotion', async () => {
    const { tk, jobs, store } = await world()
    const p = await tk.register(T, { arn: ARN, name: 'cmk' })
    await tk.createDataKey(T, 'a')
    // Submit without promoting (as if the process died right after submit).
    const j = await jobs.submit(T, 'key-provider-migration', {
      from: T,
      to: p.fingerprint,
      fromArn: DEFAULT_PROVIDER_ARN,
      toArn: ARN,
    })
    const v = await jobs.waitFor(T, j.id)
    expect(v.state).toBe('completed')
    expect((await store.getTenantKeyState(T))!.currentFingerprint).toBe(p.fingerprint)
    expect((await store.getDataKey(T, 'a'))!.providerFingerprint).toBe(p.fingerprint)
  })
})

describe('delete', () => {
  it('never the default, the current, a migrating provider or one with entries under it', async () => {
    const { tk, jobs } = await world()
    const p1 = await tk.register(T, { arn: ARN, name: 'one' })
    const p2 = await tk.register(T, { arn: ARN2, name: 'two' })
    await expectCode(tk.delete(T, T), 'KEY_PROVIDER_IN_USE')
    await expectCode(tk.delete(T, 'f'.repeat(32)), 'KEY_PROVIDER_NOT_FOUND')
    await tk.migrate(T, p1.fingerprint).then((m) => tk.waitForMigration(T, m.id))
    await tk.createDataKey(T, 'k1')
    await expectCode(tk.delete(T, p1.fingerprint), 'KEY_PROVIDER_IN_USE') // current
    await jobs.close() // submitted jobs stay queued
    const m = await tk.migrate(T, p2.fingerprint)
    await expectCode(tk.delete(T, p1.fingerprint), 'KEY_PROVIDER_IN_USE') // source of a migration (and entries)
    await expectCode(tk.delete(T, p2.fingerprint), 'KEY_PROVIDER_IN_USE') // target and current
    await jobs.start()
    await tk.waitForMigration(T, m.id)
    await tk.delete(T, p1.fingerprint)
    await expectCode(tk.get(T, p1.fingerprint), 'KEY_PROVIDER_NOT_FOUND')
    expect((await tk.list(T)).map((p) => p.fingerprint)).toEqual([p2.fingerprint])
  })

  it('a provider with entries left under it (not current, no migration) is in use', async () => {
    const { tk, store } = await world()
    const p1 = await tk.register(T, { arn: ARN, name: 'one' })
    await tk.migrate(T, p1.fingerprint).then((m) => tk.waitForMigration(T, m.id))
    const k = await tk.createDataKey(T, 'stays')
    // Switch back without a migration (as after a cancelled one): the entry is still under p1.
    const s = (await store.getTenantKeyState(T))!
    await store.switchCurrent(T, s.revision, T, Date.now())
    await expectCode(tk.delete(T, p1.fingerprint), 'KEY_PROVIDER_IN_USE')
    // getDataKey rewrites the entry under the current provider; then the provider can go.
    const got = await tk.getDataKey(T, 'stays')
    expect(sha(got.plaintext.bytes)).toBe(sha(k.plaintext.bytes))
    expect(got.providerFingerprint).toBe(T)
    await tk.delete(T, p1.fingerprint)
  })
})

describe('provider keys are protected from deletion', () => {
  it('the default key and an engine-key provider key refuse delete, even forced, while they back a provider', async () => {
    const { tk, engine } = await world()
    await tk.wrapDek(T) // creates the default key
    const def = (await engine.listKeys(T)).keys.find((k) => k.name === 'tenant-default-key-provider')!
    await expectCode(engine.deleteKey(T, def.id), 'PREV_KEY_DEL_ERR')
    await expectCode(engine.deleteKey(T, def.id, { force: true }), 'PREV_KEY_DEL_ERR')
    const regs = await engine.listRegistrations(T, def.id)
    expect(regs.registrations.map((r) => r.resourceCrn)).toEqual([providerKeyCrn('default')])

    const root = await engine.createKey(T, { name: 'cmk' })
    const p = await tk.register(T, { arn: root.id, name: 'cmk', kind: 'engine-key' })
    await expectCode(engine.deleteKey(T, root.id, { force: true }), 'PREV_KEY_DEL_ERR')
    // A second register of the same key is refused and leaves the protection in place.
    await expectCode(
      tk.register(T, { arn: root.id, name: 'again', kind: 'engine-key' }),
      'KEY_PROVIDER_EXISTS',
    )
    await expectCode(engine.deleteKey(T, root.id), 'PREV_KEY_DEL_ERR')
    // Once the provider is deleted, the key is an ordinary key again.
    await tk.delete(T, p.fingerprint)
    expect((await engine.listRegistrations(T, root.id)).registrations).toEqual([])
    await engine.deleteKey(T, root.id)
  })

  it('a default key recorded without its registration (crash, older catalog) is protected on first use', async () => {
    const w = await world()
    await w.tk.wrapDek(T)
    const def = (await w.engine.listKeys(T)).keys.find((k) => k.name === 'tenant-default-key-provider')!
    await w.engine.deleteRegistration(T, def.id, providerKeyCrn('default'))
    expect((await w.engine.listRegistrations(T, def.id)).registrations).toEqual([])
    // A restart: a new service over the same engine and catalog registers it again on first use.
    const again = createTenantKeyProviders({ engine: w.engine, store: w.store, jobs: w.jobs })
    await again.wrapDek(T)
    expect(
      (await w.engine.listRegistrations(T, def.id)).registrations.map((r) => r.preventKeyDeletion),
    ).toEqual([true])
    await expectCode(w.engine.deleteKey(T, def.id, { force: true }), 'PREV_KEY_DEL_ERR')
  })
})

describe('the data-key catalog and application ciphertexts', () => {
  it('create / get / list / delete; names unique per tenant; tenants isolated', async () => {
    const { tk } = await world()
    const a = await tk.createDataKey(T, 'a')
    await expectCode(tk.createDataKey(T, 'a'), 'DATA_KEY_EXISTS')
    await expectCode(tk.createDataKey(T, ''), 'INVALID_FIELD_ERR')
    await expectCode(tk.getDataKey('globex', 'a'), 'DATA_KEY_NOT_FOUND')
    await tk.createDataKey('globex', 'a')
    const got = await tk.getDataKey(T, 'a')
    expect(sha(got.plaintext.bytes)).toBe(sha(a.plaintext.bytes))
    await tk.createDataKey(T, 'b')
    expect((await tk.listDataKeys(T)).map((d) => d.name)).toEqual(['a', 'b'])
    expect((await tk.listDataKeys(T, { after: 'a' })).map((d) => d.name)).toEqual(['b'])
    await tk.deleteDataKey(T, 'a')
    await expectCode(tk.deleteDataKey(T, 'a'), 'DATA_KEY_NOT_FOUND')
    expect((await tk.getDataKey('globex', 'a')).name).toBe('a')
  })

  it('unwrapDek of an old-provider ciphertext returns it rewrapped under the current provider', async () => {
    const { tk } = await world()
    const old = await tk.wrapDek(T)
    const p = await tk.register(T, { arn: ARN, name: 'cmk' })
    await tk.migrate(T, p.fingerprint).then((m) => tk.waitForMigration(T, m.id))
    const u = await tk.unwrapDek(T, old.ciphertext)
    expect(sha(u.plaintext.bytes)).toBe(sha(old.plaintext.bytes))
    expect(u.providerFingerprint).toBe(T)
    expect(u.rewrapped?.startsWith(`#BYOKv1#:${p.fingerprint}:`)).toBe(true)
    const again = await tk.unwrapDek(T, u.rewrapped!)
    expect(sha(again.plaintext.bytes)).toBe(sha(old.plaintext.bytes))
    expect(again.rewrapped).toBeUndefined()
  })
})

describe('the migration handler', () => {
  it('moves every entry one layer under the target, across providers and back', async () => {
    const { tk, store } = await world({ batchSize: 5 })
    const deks = new Map<string, string>()
    for (let i = 0; i < 23; i++) {
      const k = await tk.createDataKey(T, `k${String(i).padStart(2, '0')}`)
      deks.set(k.name, sha(k.plaintext.bytes))
    }
    const p1 = await tk.register(T, { arn: ARN, name: 'one' })
    const p2 = await tk.register(T, { arn: ARN2, name: 'two' })
    const progress: number[] = []
    for (const fp of [p1.fingerprint, p2.fingerprint, T]) {
      const m = fp === T ? await tk.resetToDefault(T) : await tk.migrate(T, fp)
      const off = tk.subscribeMigration(T, m.id, (v) => progress.push(v.done))
      const done = await tk.waitForMigration(T, m.id)
      off()
      expect(done).toMatchObject({ state: 'Completed', done: 23, total: 23 })
      expect(await store.countDataKeys(T, fp)).toBe(23)
      for (const r of await store.listDataKeys(T, { limit: 100 })) {
        const parsed = parseWrappedDek(r.wrapped)
        expect(parsed.fingerprint).toBe(fp === T ? undefined : fp)
        // One layer: the inner ciphertext is a v1 ciphertext of the target's key, not a wrapped value.
        expect(parsed.inner.startsWith('#')).toBe(false)
      }
      for (const [name, digest] of deks)
        expect(sha((await tk.getDataKey(T, name)).plaintext.bytes)).toBe(digest)
    }
    expect(progress.length).toBeGreaterThan(3)
  })

  it('leaves a tampered entry as it is, lists it as skipped, and the source stays in use', async () => {
    const { tk, store } = await world({ batchSize: 4 })
    for (let i = 0; i < 10; i++) await tk.createDataKey(T, `k${i}`)
    const r = (await store.getDataKey(T, 'k3'))!
    const raw = Buffer.from(r.wrapped, 'base64')
    raw[raw.length - 1]! ^= 1
    store.dataKeys.set(`${T}\0k3`, { ...r, wrapped: raw.toString('base64') })
    const p = await tk.register(T, { arn: ARN, name: 'one' })
    const m = await tk.migrate(T, p.fingerprint)
    const done = await tk.waitForMigration(T, m.id)
    expect(done.jobState).toBe('completed')
    expect(done).toMatchObject({ done: 10, total: 10 })
    expect(await store.countDataKeys(T, p.fingerprint)).toBe(9)
    expect((await store.getDataKey(T, 'k3'))!.wrapped).toBe(raw.toString('base64'))
  })

  it('an entry changed meanwhile is not overwritten (compare-and-set) and is picked up by the sweep', async () => {
    const { tk, store } = await world({ batchSize: 50 })
    for (let i = 0; i < 6; i++) await tk.createDataKey(T, `k${i}`)
    const replacement = await tk.wrapDek(T) // a new default-provider value for k2
    const p = await tk.register(T, { arn: ARN, name: 'one' })
    let raced = false
    store.beforeReplace = () => {
      if (raced) return
      raced = true
      // Before the first batch lands, another writer rewrites k2 and deletes k4.
      const r = store.dataKeys.get(`${T}\0k2`)!
      store.dataKeys.set(`${T}\0k2`, { ...r, wrapped: replacement.ciphertext })
      store.dataKeys.delete(`${T}\0k4`)
    }
    const m = await tk.migrate(T, p.fingerprint)
    const done = await tk.waitForMigration(T, m.id)
    expect(raced).toBe(true)
    expect(done).toMatchObject({ jobState: 'completed', done: 5, total: 5 })
    expect(await store.getDataKey(T, 'k4')).toBeUndefined() // deleted meanwhile: not resurrected
    expect(await store.countDataKeys(T, p.fingerprint)).toBe(5) // k2 migrated by the sweep
    const k2 = await tk.getDataKey(T, 'k2')
    expect(sha(k2.plaintext.bytes)).toBe(sha(replacement.plaintext.bytes)) // the writer's DEK, not the old one
    expect((done as { migrated?: number }).migrated).toBeUndefined()
  })

  it('retries transient provider failures until they pass', async () => {
    const { tk, store, kms } = await world({ batchSize: 4 })
    for (let i = 0; i < 8; i++) await tk.createDataKey(T, `k${i}`)
    const p = await tk.register(T, { arn: ARN2, name: 'single-region' })
    kms.fail('eu-west-1', 'Encrypt', 'PROVIDER_UNAVAILABLE')
    setTimeout(() => kms.fail('eu-west-1', 'Encrypt', undefined), 30)
    const m = await tk.migrate(T, p.fingerprint)
    const done = await tk.waitForMigration(T, m.id)
    expect(done).toMatchObject({ jobState: 'completed', done: 8, total: 8 })
    expect(await store.countDataKeys(T, p.fingerprint)).toBe(8)
  })
})

describe('the migration handler beside foreground calls (issue 14 benchmark)', () => {
  /** Records the limit of every listDataKeysNotUnder and the options of every replaceWrapped. */
  function spy(store: MemoryTenantKeysStore): {
    limits: number[]
    writes: { names: string[]; options: Parameters<DataKeyStore['replaceWrapped']>[2] }[]
    stateReads: () => number
  } {
    const limits: number[] = []
    const writes: { names: string[]; options: Parameters<DataKeyStore['replaceWrapped']>[2] }[] = []
    let stateReads = 0
    const list = store.listDataKeysNotUnder.bind(store)
    store.listDataKeysNotUnder = async (tenant, fp, after, limit) => {
      limits.push(limit)
      return list(tenant, fp, after, limit)
    }
    const replace = store.replaceWrapped.bind(store)
    store.replaceWrapped = async (
      tenant: string,
      updates: Parameters<DataKeyStore['replaceWrapped']>[1],
      options?: Parameters<DataKeyStore['replaceWrapped']>[2],
    ) => {
      writes.push({ names: updates.map((u) => u.name), options })
      return replace(tenant, updates)
    }
    const state = store.getTenantKeyState.bind(store)
    store.getTenantKeyState = async (tenant) => {
      stateReads++
      return state(tenant)
    }
    return { limits, writes, stateReads: () => stateReads }
  }

  it('works in slices while foreground calls run, in full batches when none is about', async () => {
    const { tk, store } = await world({
      batchSize: 8,
      migration: { yieldToForeground: { sliceSize: 2, idleMs: 200 } },
    })
    for (let i = 0; i < 40; i++) await tk.createDataKey(T, `k${String(i).padStart(2, '0')}`)
    const p = await tk.register(T, { arn: ARN, name: 'one' })
    const s = spy(store)
    await new Promise((r) => setTimeout(r, 300)) // the creations are more than idleMs ago
    const quiet = await tk.migrate(T, p.fingerprint).then((m) => tk.waitForMigration(T, m.id))
    expect(quiet).toMatchObject({ jobState: 'completed', done: 40 })
    expect(s.limits.length).toBeGreaterThan(0)
    expect(new Set(s.limits)).toEqual(new Set([8]))

    // Back to the default provider while callers keep getDataKey in flight.
    s.limits.length = 0
    let running = true
    const callers = [0, 1].map(async (w) => {
      for (let i = w; running; i += 2) {
        const k = await tk.getDataKey(T, `k${String(i % 40).padStart(2, '0')}`)
        k.plaintext.zeroize()
        await new Promise((r) => setImmediate(r))
      }
    })
    const busy = await tk.resetToDefault(T).then((m) => tk.waitForMigration(T, m.id))
    running = false
    await Promise.all(callers)
    expect(busy).toMatchObject({ jobState: 'completed', done: 40 })
    expect(await store.countDataKeys(T, T)).toBe(40)
    expect(s.limits.filter((l) => l === 2).length).toBeGreaterThan(s.limits.length / 2)
  })

  it('yieldToForeground.share must be in (0, 1]', async () => {
    const { engine, store, jobs } = await world()
    for (const share of [0, -0.5, 1.5, Number.NaN]) {
      expectCodeSync(
        () => createTenantKeyProviders({ engine, store, jobs, migration: { yieldToForeground: { share } } }),
        'CONFIG_INVALID',
      )
    }
    createTenantKeyProviders({ engine, store, jobs, migration: { yieldToForeground: { share: 1 } } })
  })

  it('yieldToForeground: false always lists full batches', async () => {
    const { tk, store } = await world({ batchSize: 8, migration: { yieldToForeground: false } })
    for (let i = 0; i < 24; i++) await tk.createDataKey(T, `k${String(i).padStart(2, '0')}`)
    const p = await tk.register(T, { arn: ARN, name: 'one' })
    const s = spy(store)
    let running = true
    const caller = (async () => {
      while (running) {
        ;(await tk.getDataKey(T, 'k01')).plaintext.zeroize()
        await new Promise((r) => setImmediate(r))
      }
    })()
    const done = await tk.migrate(T, p.fingerprint).then((m) => tk.waitForMigration(T, m.id))
    running = false
    await caller
    expect(done).toMatchObject({ jobState: 'completed', done: 24 })
    expect(new Set(s.limits)).toEqual(new Set([8]))
  })

  it('checkpoints at most every checkpointIntervalMs; the writes between are deferred-flush ones', async () => {
    for (const interval of [60_000, 0]) {
      const { tk, store } = await world({ batchSize: 5, migration: { checkpointIntervalMs: interval } })
      for (let i = 0; i < 30; i++) await tk.createDataKey(T, `k${String(i).padStart(2, '0')}`)
      const p = await tk.register(T, { arn: ARN, name: 'one' })
      const s = spy(store)
      const m = await tk.migrate(T, p.fingerprint)
      const progress: number[] = []
      const off = tk.subscribeMigration(T, m.id, (v) => progress.push(v.done))
      const done = await tk.waitForMigration(T, m.id)
      off()
      expect(done).toMatchObject({ jobState: 'completed', done: 30, total: 30 })
      expect(s.writes.flatMap((w) => w.names)).toHaveLength(30)
      if (interval === 0) {
        // After every batch, each write flushed on its own (the behaviour before the interval existed).
        expect(progress.length).toBeGreaterThanOrEqual(6)
        for (const w of s.writes) expect(w.options).toEqual({ durable: true })
      } else {
        // Only at the end of the pass and at the end of the job (and the runner's claim and completion).
        expect(progress.length).toBeLessThan(6)
        expect(s.writes.length).toBe(6)
        for (const w of s.writes) expect(w.options).toEqual({ durable: false })
      }
    }
  })

  it('resolves each provider once per batch, not once per entry', async () => {
    const { tk, store } = await world({ batchSize: 20, migration: { yieldToForeground: false } })
    for (let i = 0; i < 60; i++) await tk.createDataKey(T, `k${String(i).padStart(2, '0')}`)
    const p = await tk.register(T, { arn: ARN, name: 'one' })
    const s = spy(store)
    const done = await tk.migrate(T, p.fingerprint).then((m) => tk.waitForMigration(T, m.id))
    expect(done).toMatchObject({ jobState: 'completed', done: 60 })
    // Default-provider values: two state reads per batch (3 batches) plus the promotion's, not 2 per entry.
    expect(s.stateReads()).toBeLessThan(20)
  })

  it('getDataKey during a migration in this process leaves the entry to the job (a read stays a read)', async () => {
    const { tk, store } = await world({ batchSize: 4, migration: { yieldToForeground: false } })
    const digests = new Map<string, string>()
    for (let i = 0; i < 12; i++) {
      const k = await tk.createDataKey(T, `k${String(i).padStart(2, '0')}`)
      digests.set(k.name, sha(k.plaintext.bytes))
    }
    const p = await tk.register(T, { arn: ARN, name: 'one' })
    const s = spy(store)
    let read: Promise<Awaited<ReturnType<typeof tk.getDataKey>>> | undefined
    store.beforeReplace = () => {
      // The job's first write: k11 is not moved yet; read it meanwhile.
      read ??= tk.getDataKey(T, 'k11')
    }
    const done = await tk.migrate(T, p.fingerprint).then((m) => tk.waitForMigration(T, m.id))
    expect(done).toMatchObject({ jobState: 'completed', done: 12 })
    const got = await read!
    expect(sha(got.plaintext.bytes)).toBe(digests.get('k11'))
    expect(got.providerFingerprint).toBe(T) // as stored when read: still under the default provider
    // Every write was the job's (batches, deferred flush); none was a single-entry write-back by the read.
    for (const w of s.writes) expect(w.options).toEqual({ durable: false })
    expect(s.writes.flatMap((w) => w.names).filter((n) => n === 'k11')).toEqual(['k11'])
    expect(await store.countDataKeys(T, p.fingerprint)).toBe(12)
  })
})

describe('test action', () => {
  it('drCompliant with a DR replica; a denied operation in the DR region fills complianceError', async () => {
    const { tk, kms } = await world()
    const p = await tk.register(T, { arn: ARN, name: 'mr' })
    expect(await tk.test(T, p.fingerprint)).toMatchObject({ drCompliant: true, complianceError: undefined })
    kms.fail('eu-west-3', 'GenerateDataKey', 'PROVIDER_ACCESS_DENIED')
    const v = await tk.test(T, p.fingerprint)
    expect(v.drCompliant).toBe(false)
    expect(v.complianceError).toMatchObject({ code: 'Encryption-10', region: 'eu-west-3' })
    expect((await tk.get(T, p.fingerprint)).complianceError?.region).toBe('eu-west-3')
    const single = await tk.register(T, { arn: ARN2, name: 'single' })
    expect((await tk.test(T, single.fingerprint)).complianceError).toMatchObject({
      code: 'Encryption-20',
      region: 'eu-west-3',
    })
    expect(await tk.test(T, T)).toMatchObject({ drCompliant: true, kind: 'default' })
  })
})
