/**
 * Registration and key-event rules (src/core/keys/registrations.ts, events.ts, and the registration rule of
 * deletion.ts): CRN validation and patterns, the state a registration derives from its key, the delete
 * refusals, the dual-authorization check before the registrations are removed, and all-or-none event
 * acknowledgements. Through the real EnvelopeEngine over the fakes (test/fakes): no token, no file.
 */
import { describe, expect, it } from 'vitest'
import { EnvelopeEngine } from '../../../src/core/engine.js'
import { crnMatcher, validateResourceCrn } from '../../../src/core/keys/registrations.js'
import { expectCode, expectCodeSync } from '../../helpers/expect-code.js'
import { createInsecureMemoryProvider } from '../../fakes/fake-provider.js'
import { ManualClock } from '../../fakes/manual-clock.js'
import { createMemoryStore, type MemoryStore } from '../../fakes/memory-store.js'

const I = 'registrations'
const CRN = 'crn:v1:bluemix:public:cloud-object-storage:global:a/acc:svc-1:bucket:b1'

function world(): { engine: EnvelopeEngine; store: MemoryStore; clock: ManualClock } {
  const store = createMemoryStore()
  const clock = new ManualClock()
  return {
    engine: new EnvelopeEngine({ provider: createInsecureMemoryProvider(), store, clock }),
    store,
    clock,
  }
}

describe('registration CRNs', () => {
  it('a resource CRN names at least the service instance, at most 10 segments, no wildcard', () => {
    expect(validateResourceCrn(CRN)).toBe(CRN)
    expect(validateResourceCrn('crn:v1:bluemix:public:kms:us-south:a/acc:inst')).toBe(
      'crn:v1:bluemix:public:kms:us-south:a/acc:inst',
    )
    for (const bad of [
      'crn:v1:bluemix:public:kms:us-south:a/acc', // 7 segments
      'crn:v1:bluemix:public:kms:us-south:a/acc:', // empty service instance
      'crn:v1:bluemix:public:kms:us-south:a/acc:i:t:r:extra', // 11 segments
      'arn:v1:bluemix:public:kms:us-south:a/acc:inst',
      'crn:v1:bluemix:public:kms:us-south:a/acc:*',
      'crn:v1:bluemix:public:kms:us-south:a/acc:in st',
    ]) {
      expectCodeSync(() => validateResourceCrn(bad), 'INVALID_FIELD_ERR')
    }
  })

  it('patterns: * matches one segment, a * in the last segment is a prefix; across keys the first 8 segments are fixed', () => {
    const m = crnMatcher('crn:v1:bluemix:public:*:global:a/acc:svc-1:bucket:b*', false)
    expect(m(CRN)).toBe(true)
    expect(m(CRN.replace('svc-1', 'svc-2'))).toBe(false)
    expect(m(CRN.replace(':b1', ':c1'))).toBe(false)
    expect(crnMatcher(CRN, true)(CRN)).toBe(true)
    expect(crnMatcher(CRN, true)(`${CRN}x`)).toBe(false)
    expect(crnMatcher('crn:v1:bluemix:public:cloud-object-storage:global:a/acc:svc-1', true)(CRN)).toBe(false)
    expect(crnMatcher('crn:v1:bluemix:public:cloud-object-storage:global:a/acc:svc-1:*', true)(CRN)).toBe(
      true,
    )
    expectCodeSync(
      () => crnMatcher('crn:v1:bluemix:public:*:global:a/acc:svc-1:*', true),
      'INVALID_FIELD_ERR',
    )
    expectCodeSync(() => crnMatcher('crn:v1:bluemix:public', true), 'INVALID_FIELD_ERR')
  })
})

describe('registration rules', () => {
  it('the state follows the key: 1 Active, 2 when disabled or deleted, 3 once deactivated', async () => {
    const w = world()
    const id = (await w.engine.createKey(I, { name: 'key-1' })).id
    await w.engine.createRegistration(I, id, CRN)
    const state = async () => (await w.engine.listRegistrations(I, id)).registrations[0]?.state
    expect(await state()).toBe(1)
    await w.engine.disable(I, id)
    expect(await state()).toBe(2)
    w.clock.advance(31_000)
    await w.engine.enable(I, id)
    expect(await state()).toBe(1)
    await expectCode(w.engine.deactivateRegistration(I, id, CRN), 'REG_INVALID_STATE_ERR')
    await w.engine.deleteKey(I, id, { force: true })
    // A forced delete removed the registration; a new one on a deleted key is refused.
    expect((await w.engine.listRegistrations(I, id)).registrations).toEqual([])
    await expectCode(w.engine.createRegistration(I, id, CRN), 'KEY_DELETED_ERR')
  })

  it('a registration another process creates between the delete check and its write still refuses the delete (the write checks it too)', async () => {
    let armed = false
    const store = createMemoryStore({
      gate: async (op, args) => {
        if (op !== 'updateKey' || !armed) return
        armed = false
        const [instance, keyId] = args as [string, string]
        // Another engine process registers a protected resource now, after this one checked.
        await store.insertRegistration({
          instance,
          keyId,
          resourceCrn: CRN,
          description: undefined,
          registrationMetadata: undefined,
          preventKeyDeletion: true,
          keyVersionId: undefined,
          deactivated: false,
          createdAt: 1,
          createdBy: undefined,
          updatedAt: 1,
          updatedBy: undefined,
        })
      },
    })
    const engine = new EnvelopeEngine({
      provider: createInsecureMemoryProvider(),
      store,
      clock: new ManualClock(),
    })
    const id = (await engine.createKey(I, { name: 'key-1' })).id
    armed = true
    await expectCode(engine.deleteKey(I, id, { force: true }), 'PREV_KEY_DEL_ERR')
    expect((await engine.getKey(I, id)).state).toBe(1)
    expect(await store.listRegistrations(I, { keyId: id })).toHaveLength(1)
  })

  it('a registration is not created on a key another process deleted meanwhile (the insert checks the state)', async () => {
    const w = world()
    const id = (await w.engine.createKey(I, { name: 'key-1' })).id
    const second = new EnvelopeEngine({
      provider: createInsecureMemoryProvider(),
      store: w.store,
      clock: w.clock,
    })
    await second.getKey(I, id) // cached as Active in the second process
    await w.engine.deleteKey(I, id)
    const err = await expectCode(
      second.createRegistration(I, id, CRN),
      'KEY_ACTION_INVALID_STATE_ERR',
      'KEY_DELETED_ERR',
    )
    expect(err).toBeDefined()
    expect(await w.store.listRegistrations(I, { keyId: id })).toEqual([])
  })

  it('a dual-auth refusal of a forced delete leaves the registrations (checked before anything is removed)', async () => {
    const w = world()
    const id = (
      await w.engine.createKey(I, { name: 'key-1', policies: { dualAuthDelete: { enabled: true } } })
    ).id
    await w.engine.createRegistration(I, id, CRN)
    await expectCode(w.engine.deleteKey(I, id, { force: true, deletedBy: 'bob' }), 'AUTHORIZATIONS_NOT_MET')
    expect(await w.store.listRegistrations(I, { keyId: id })).toHaveLength(1)
    expect((await w.engine.getKey(I, id)).state).toBe(1)
    expect(await w.store.listKeyEvents(I, id)).toEqual([])
  })

  it('PATCH keeps the fields not given, PUT resets them; keyVersionId must be a version of the key', async () => {
    const w = world()
    const id = (await w.engine.createKey(I, { name: 'key-1' })).id
    await w.engine.createRegistration(I, id, CRN, { description: 'd', registrationMetadata: 'm' })
    const merged = await w.engine.updateRegistration(I, id, CRN, { preventKeyDeletion: true })
    expect(merged).toMatchObject({ description: 'd', registrationMetadata: 'm', preventKeyDeletion: true })
    const replaced = await w.engine.replaceRegistration(I, id, CRN, { description: 'e' })
    expect(replaced).toMatchObject({
      description: 'e',
      registrationMetadata: undefined,
      preventKeyDeletion: false,
    })
    await expectCode(w.engine.replaceRegistration(I, id, CRN, { keyVersionId: 'nope' }), 'INVALID_FIELD_ERR')
    const rotated = await w.engine.rotate(I, id)
    const pinned = await w.engine.replaceRegistration(I, id, CRN, { keyVersionId: id })
    expect(pinned.keyVersion.id).toBe(id)
    expect(rotated.keyVersion.id).not.toBe(id)
  })
})

describe('key events', () => {
  it('sync at most once an hour per key: REQ_TOO_EARLY_ERR (retryable) sooner, nothing recorded', async () => {
    const w = world()
    const id = (await w.engine.createKey(I, { name: 'key-1' })).id
    await w.engine.createRegistration(I, id, CRN)
    expect(await w.engine.syncKey(I, id)).toHaveLength(1)
    w.clock.advance(59 * 60_000)
    const err = await expectCode(w.engine.syncKey(I, id), 'REQ_TOO_EARLY_ERR')
    expect(err.retryable).toBe(true)
    expect(await w.engine.listKeyEvents(I, id)).toHaveLength(1)
    w.clock.advance(60_000)
    expect(await w.engine.syncKey(I, id)).toHaveLength(1)
    expect((await w.engine.listKeyEvents(I, id)).map((e) => e.type)).toEqual(['sync', 'sync'])
  })

  it('acknowledgements are all or none: one unknown event records none', async () => {
    const w = world()
    const id = (await w.engine.createKey(I, { name: 'key-1' })).id
    await w.engine.createRegistration(I, id, CRN)
    const [ev] = await w.engine.syncKey(I, id)
    const at = new Date('2026-01-01T00:00:00Z')
    await expectCode(
      w.engine.acknowledgeEvents(I, [
        { eventId: ev!.eventId, adopterKeyState: 'DEK_ENABLED', timestamp: at },
        { eventId: 'missing', adopterKeyState: 'DEK_ENABLED', timestamp: at },
      ]),
      'EVENT_NOT_FOUND',
    )
    expect((await w.engine.listKeyEvents(I, id))[0]?.ackedAt).toBeUndefined()
    await expectCode(
      w.engine.acknowledgeEvents(I, [
        { eventId: ev!.eventId, adopterKeyState: 'X', timestamp: new Date(NaN) },
      ]),
      'MISSING_FIELD_ERR',
    )
    await w.engine.acknowledgeEvents(I, [
      { eventId: ev!.eventId, adopterKeyState: 'DEK_ENABLED', timestamp: at },
    ])
    expect((await w.engine.listKeyEvents(I, id))[0]).toMatchObject({ ackedAt: at, ackState: 'DEK_ENABLED' })
  })
})
