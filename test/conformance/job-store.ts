/**
 * The conformance suite every JobStore must pass (core/ports-jobs.ts): the SQLite role against a real file
 * (test/integration/sqlite/jobs.test.ts) and the in-memory fake the runner's unit tests use
 * (test/unit/fakes/memory-jobs.test.ts), so that the rules unit-tested over the fake hold on the real store.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobRecord, JobStore } from '../../src/core/ports-jobs.js'

/** A queued job record as the runner inserts it. */
export function jobRecord(over: Partial<JobRecord> = {}): JobRecord {
  return {
    id: randomUUID(),
    type: 'toy',
    tenant: `t-${randomUUID()}`,
    state: 'queued',
    params: '{"n":1}',
    checkpoint: undefined,
    done: 0,
    total: 0,
    cancelRequested: false,
    error: undefined,
    result: undefined,
    createdBy: undefined,
    createdAt: 1000,
    updatedAt: 1000,
    startedAt: undefined,
    finishedAt: undefined,
    revision: 1,
    leaseOwner: undefined,
    leaseUntil: undefined,
    ...over,
  }
}

export function runJobStoreConformance(
  name: string,
  open: () => Promise<JobStore & { close?: () => Promise<void> }>,
): void {
  describe(`JobStore conformance: ${name}`, () => {
    let s: JobStore & { close?: () => Promise<void> }
    beforeAll(async () => {
      s = await open()
    })
    afterAll(async () => {
      await s.close?.()
    })

    it('inserts and reads back every field, optional ones undefined', async () => {
      const full = jobRecord({
        checkpoint: '{"at":3}',
        done: 3,
        total: 9,
        cancelRequested: true,
        error: { code: 'STORE_ERROR', message: 'm' },
        result: '{"ok":true}',
        createdBy: 'alice',
        startedAt: 1001,
        finishedAt: 1002,
        state: 'failed',
        revision: 4,
        leaseOwner: 'o',
        leaseUntil: 5000,
      })
      expect(await s.insertJob(full)).toBe(true)
      expect(await s.getJob(full.id)).toEqual(full)
      const bare = jobRecord()
      expect(await s.insertJob(bare)).toBe(true)
      expect(await s.getJob(bare.id)).toEqual(bare)
      expect(await s.getJob(randomUUID())).toBeUndefined()
    })

    it('refuses a second active job of a type for a tenant; other types, tenants and finished jobs do not count', async () => {
      const a = jobRecord()
      expect(await s.insertJob(a)).toBe(true)
      expect(await s.insertJob(jobRecord({ tenant: a.tenant }))).toBe(false)
      expect(await s.insertJob(jobRecord({ tenant: a.tenant, state: 'running' }))).toBe(false)
      expect(await s.insertJob(jobRecord({ tenant: a.tenant, type: 'other' }))).toBe(true)
      expect(await s.insertJob(jobRecord({ type: a.type }))).toBe(true)
      expect(await s.insertJob(jobRecord({ tenant: a.tenant, state: 'completed' }))).toBe(true)
      expect(await s.insertJob(jobRecord({ tenant: a.tenant, state: 'cancelled' }))).toBe(true)
      const done = await s.updateJob(a.id, 1, { state: 'completed', finishedAt: 2000 })
      expect(done?.state).toBe('completed')
      const b = jobRecord({ tenant: a.tenant })
      expect(await s.insertJob(b)).toBe(true)
      expect(await s.insertJob(jobRecord({ tenant: a.tenant }))).toBe(false)
    })

    it('updateJob is a compare-and-set on revision: applies the patch and bumps it, or changes nothing', async () => {
      const j = jobRecord()
      await s.insertJob(j)
      const u = await s.updateJob(j.id, 1, {
        state: 'running',
        checkpoint: '"c1"',
        done: 5,
        total: 10,
        leaseOwner: 'me',
        leaseUntil: 9999,
        startedAt: 1500,
        updatedAt: 1500,
      })
      expect(u).toEqual({
        ...j,
        state: 'running',
        checkpoint: '"c1"',
        done: 5,
        total: 10,
        leaseOwner: 'me',
        leaseUntil: 9999,
        startedAt: 1500,
        updatedAt: 1500,
        revision: 2,
      })
      expect(await s.updateJob(j.id, 1, { done: 6 })).toBeUndefined() // stale revision
      expect((await s.getJob(j.id))?.done).toBe(5)
      expect(await s.updateJob(randomUUID(), 1, { done: 6 })).toBeUndefined()
      // A field present with undefined clears it; absent fields stay.
      const cleared = await s.updateJob(j.id, 2, { leaseOwner: undefined, leaseUntil: undefined })
      expect(cleared).toEqual({ ...u, leaseOwner: undefined, leaseUntil: undefined, revision: 3 })
      const err = await s.updateJob(j.id, 3, { error: { code: 'ABORTED', message: 'x' }, result: '1' })
      expect([err?.error, err?.result, err?.revision]).toEqual([{ code: 'ABORTED', message: 'x' }, '1', 4])
      expect((await s.updateJob(j.id, 4, {}))?.revision).toBe(5) // an empty patch still bumps the revision
    })

    it('lists by tenant, type and states, newest first, paged, with the total; listActiveJobs spans tenants', async () => {
      const tenant = `t-${randomUUID()}`
      const ids: string[] = []
      for (let i = 0; i < 5; i++) {
        const j = jobRecord({
          tenant,
          type: `ty${i % 2}`,
          createdAt: 10_000 + i,
          state: i === 4 ? 'running' : 'completed',
        })
        ids.push(j.id)
        await s.insertJob(j)
      }
      const all = await s.listJobs({ tenant, limit: 10, offset: 0 })
      expect(all.total).toBe(5)
      expect(all.jobs.map((j) => j.id)).toEqual([...ids].reverse())
      const page = await s.listJobs({ tenant, limit: 2, offset: 1 })
      expect([page.total, page.jobs.map((j) => j.id)]).toEqual([5, [ids[3], ids[2]]])
      const ty0 = await s.listJobs({ tenant, type: 'ty0', limit: 10, offset: 0 })
      expect(ty0.jobs.map((j) => j.id)).toEqual([ids[4], ids[2], ids[0]])
      const running = await s.listJobs({ tenant, states: ['running', 'queued'], limit: 10, offset: 0 })
      expect([running.total, running.jobs.map((j) => j.id)]).toEqual([1, [ids[4]]])
      expect((await s.listJobs({ tenant, states: [], limit: 10, offset: 0 })).total).toBe(0)
      const active = await s.listActiveJobs()
      expect(active.map((j) => j.id)).toContain(ids[4])
      expect(active.every((j) => j.state === 'queued' || j.state === 'running')).toBe(true)
    })
  })
}
