/**
 * The audit sink on real files and descriptors: sync mode answers after the write, a destination that
 * refuses writes fills the bounded buffer and the full-buffer policy applies (no line is written twice or
 * silently lost), and log rotation sends lines queued before it to the renamed file (issue 12, point 8).
 */
import { mkdirSync, readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { pinoAuditSink, type AuditEvent, type AuditPressure } from '../../../src/http/audit.js'
import { env } from '../../helpers/engine.js'

const event = (correlationId: string): AuditEvent => ({
  event: 'kms.secrets.list',
  outcome: 'success',
  status: 200,
  subject: 'tester',
  instance: 'i',
  keyId: undefined,
  correlationId,
  reason: undefined,
  method: 'GET',
  route: '/api/v2/keys',
  api: 'keyprotect',
})
const ids = (file: string): string[] =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => (JSON.parse(l) as { correlationId: string }).correlationId)

function dir(name: string): string {
  const d = join(env('EKMS_TEST_FILE_DIR'), name)
  mkdirSync(d, { recursive: true })
  return d
}

describe('pinoAuditSink', () => {
  it('sync: record() settles once the line is in the file', async () => {
    const file = join(dir('sync'), 'audit.log')
    const sink = pinoAuditSink(file, { sync: true })
    for (let i = 0; i < 5; i++) {
      await sink.record(event(`s${i}`))
      expect(ids(file).at(-1)).toBe(`s${i}`)
    }
    expect(await sink.close()).toBe(true)
    expect(ids(file)).toEqual(['s0', 's1', 's2', 's3', 's4'])
  })

  it('a destination that refuses writes (/dev/full, ENOSPC): reported once, kept and retried, the buffer fills, reject refuses requests, close gives up after its grace and counts the loss', async () => {
    const reports: AuditPressure[] = []
    const sink = pinoAuditSink('/dev/full', {
      batchBytes: 1,
      maxPendingBytes: 4096,
      onPressure: (p) => reports.push(p),
    })
    let n = 0
    while (sink.accepting?.() === true && n < 1000) void sink.record(event(`f${n++}`))
    // Each line is ~230 bytes: the bound (4 KiB) is reached after a few dozen, not dropped on the way.
    expect(n).toBeGreaterThan(10)
    expect(n).toBeLessThan(40)
    for (let i = 0; i < 50 && !reports.some((r) => r.writeError === 'ENOSPC'); i++)
      await new Promise((r) => setTimeout(r, 10))
    expect(reports.filter((r) => r.writeError === 'ENOSPC')).toHaveLength(1)
    expect(reports.at(-1)?.full).toBe(true)
    expect(sink.accepting?.()).toBe(false)
    expect(sink.stats()).toMatchObject({ full: true, refused: 2, dropped: 0, writeError: 'ENOSPC' })
    expect(sink.stats().pendingBytes).toBeGreaterThanOrEqual(4096)
    expect(await sink.close(300)).toBe(false)
    expect(sink.stats().dropped).toBe(n)
  })

  it('drop: past the bound lines are dropped and counted, requests keep being admitted', async () => {
    const sink = pinoAuditSink('/dev/full', { batchBytes: 1, maxPendingBytes: 4096, whenFull: 'drop' })
    for (let i = 0; i < 100; i++) {
      expect(sink.accepting?.()).toBe(true)
      void sink.record(event(`d${i}`))
    }
    const s = sink.stats()
    expect(s.full).toBe(true)
    expect(s.refused).toBe(0)
    expect(s.dropped).toBeGreaterThan(50)
    expect(s.pendingBytes).toBeLessThanOrEqual(4096)
    await sink.close(100)
  })

  it('SIGHUP-style reopen: lines queued before it go to the renamed file, later ones to the new file', async () => {
    const file = join(dir('rotate'), 'audit.log')
    const sink = pinoAuditSink(file)
    void sink.record(event('before-1'))
    void sink.record(event('before-2'))
    renameSync(file, `${file}.1`)
    sink.reopen()
    void sink.record(event('after-1'))
    expect(await sink.close()).toBe(true)
    expect(ids(`${file}.1`)).toEqual(['before-1', 'before-2'])
    expect(ids(file)).toEqual(['after-1'])
  })
})
