/**
 * `envelope-kms providers`, `migrate` and `migration status` as real processes (dist/cli/main.js) on the
 * test token and a fresh SQLite catalog: register/list/get/delete of key providers, a migration followed to
 * the end in JSON lines, and a follow interrupted mid-migration: the job stays in the catalog, active, and
 * `migration status --follow` resumes it to completion with every entry under the target.
 */
import { spawn, spawnSync } from 'node:child_process'
import Database from 'better-sqlite3'
import { beforeAll, describe, expect, it } from 'vitest'
import { env, tempCatalogPath } from '../../helpers/engine.js'
import { openServices } from '../../helpers/tenant-keys.js'

const TENANT = 'acme-cli'
const catalog = tempCatalogPath()
const ENV = {
  ...process.env,
  EKMS_PKCS11_TOKEN_LABEL: env('EKMS_TEST_TOKEN'),
  EKMS_PKCS11_PIN: env('EKMS_TEST_PIN'),
  EKMS_CATALOG: catalog,
}

function cli(args: string[], timeout = 60_000): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['dist/cli/main.js', ...args], {
    env: ENV,
    encoding: 'utf8',
    timeout,
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

/** The fields of the CLI's JSON output these tests read (the library's MigrationView / KeyProviderView). */
interface Printed {
  id: string
  fingerprint: string
  kind: string
  current: boolean
  done: number
  total: number
  jobState: string
  migratingToFingerprint: string
}

const jsonLines = (out: string): Printed[] =>
  out
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as Printed)

/** Adds `n` data keys to the tenant's catalog, in this process, through the library. */
async function addDataKeys(prefix: string, n: number): Promise<void> {
  const s = await openServices(catalog)
  try {
    for (let i = 0; i < n; i++)
      (await s.tenantKeys.createDataKey(TENANT, `${prefix}-${i}`)).plaintext.zeroize()
  } finally {
    await s.close()
  }
}

function rootKey(name: string): string {
  const r = cli(['keys', 'create', name, '--instance', TENANT, '--json'])
  expect(r.code, r.err).toBe(0)
  return JSON.parse(r.out).id as string
}

/** `providers register --kind engine-key --json` of root key `id` as provider `name`. */
function registerEngineKey(
  id: string,
  name: string,
  extra: string[] = [],
): { code: number | null; out: string; err: string } {
  return cli([
    'providers',
    'register',
    '--tenant',
    TENANT,
    '--arn',
    id,
    '--name',
    name,
    '--kind',
    'engine-key',
    ...extra,
    '--json',
  ])
}

let fp = ''

beforeAll(async () => {
  await addDataKeys('first', 200)
}, 120_000)

describe('envelope-kms providers', () => {
  it('register (engine-key), list, get; an unknown fingerprint exits 3; a missing tenant is a usage error', () => {
    const id = rootKey('cmk-in-hsm')
    const reg = registerEngineKey(id, 'in-hsm', ['--description', 'mine'])
    expect(reg.code, reg.err).toBe(0)
    const p = JSON.parse(reg.out)
    expect(p).toMatchObject({
      kind: 'engine-key',
      arn: id,
      name: 'in-hsm',
      description: 'mine',
      current: false,
    })
    fp = p.fingerprint
    expect(fp).toMatch(/^[0-9a-f]{32}$/)
    const list = cli(['providers', 'list', '--instance', TENANT, '--json'])
    expect(list.code, list.err).toBe(0)
    expect((JSON.parse(list.out) as Printed[]).map((x) => [x.fingerprint, x.kind, x.current])).toEqual([
      [TENANT, 'default', true],
      [fp, 'engine-key', false],
    ])
    const table = cli(['providers', 'list', '--tenant', TENANT])
    expect(table.out).toMatch(/FINGERPRINT\s+CURRENT\s+KIND/)
    expect(table.out).toContain(fp)
    const got = cli(['providers', 'get', fp, '--tenant', TENANT, '--json'])
    expect(JSON.parse(got.out).fingerprint).toBe(fp)
    const missing = cli(['providers', 'get', '0'.repeat(32), '--tenant', TENANT])
    expect(missing.code).toBe(3)
    expect(missing.err).toContain('KEY_PROVIDER_NOT_FOUND')
    const usage = cli(['providers', 'list'])
    expect(usage.code).toBe(2)
    expect(usage.err).toContain('--tenant is required')
    expect(cli(['providers', 'register', '--tenant', TENANT, '--name', 'x']).code).toBe(2)
  })

  it('delete: a registered, inactive provider goes; the default provider exits 1 (KEY_PROVIDER_IN_USE)', () => {
    const reg = JSON.parse(registerEngineKey(rootKey('short-lived'), 'tmp').out) as Printed
    const del = cli(['providers', 'delete', reg.fingerprint, '--tenant', TENANT])
    expect(del.code, del.err).toBe(0)
    expect(del.out).toContain(`deleted key provider ${reg.fingerprint}`)
    expect(cli(['providers', 'get', reg.fingerprint, '--tenant', TENANT]).code).toBe(3)
    const def = cli(['providers', 'delete', TENANT, '--tenant', TENANT])
    expect(def.code).toBe(1)
    expect(def.err).toContain('KEY_PROVIDER_IN_USE')
  })
})

describe('envelope-kms migrate and migration status', () => {
  it('migrate --to <fingerprint> --json follows to the end in JSON lines; migration status --json prints one object', () => {
    expect(cli(['migration', 'status', '--tenant', TENANT]).code).toBe(3)
    const r = cli(['migrate', '--to', fp, '--tenant', TENANT, '--json'])
    expect(r.code, r.err).toBe(0)
    const lines = jsonLines(r.out)
    expect(lines.length).toBeGreaterThanOrEqual(1)
    const done = lines.map((l) => l.done)
    expect(done).toEqual([...done].sort((a, b) => a - b))
    const last = lines[lines.length - 1]!
    expect(last).toMatchObject({
      jobState: 'completed',
      state: 'Completed',
      progress: 100,
      migratingToFingerprint: fp,
    })
    expect(last.done).toBe(200)
    const status = cli(['migration', 'status', '--tenant', TENANT, '--json'])
    expect(status.code).toBe(0)
    expect(JSON.parse(status.out)).toMatchObject({ id: last.id, jobState: 'completed' })
    const line = cli(['migration', 'status', '--tenant', TENANT])
    expect(line.out).toMatch(
      new RegExp(`^migration ${last.id} completed \\(Completed\\) 100% \\(200/200 entries`),
    )
  })

  it('an interrupted follow leaves the job active in the catalog; migration status --follow resumes it to completion', async () => {
    await addDataKeys('more', 3000)
    const child = spawn(
      process.execPath,
      ['dist/cli/main.js', 'migrate', '--to', 'default', '--tenant', TENANT, '--json'],
      {
        env: ENV,
      },
    )
    let out = ''
    let err = ''
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        // Stop following as soon as the migration is under way.
        if (out.includes('\n') && child.exitCode === null && !child.killed) child.kill('SIGTERM')
      })
      child.on('exit', (c) => resolve(c))
    })
    expect(code, err).toBe(1)
    expect(err).toContain('interrupted')
    const first = jsonLines(out)[0]!
    expect(first.migratingToFingerprint).toBe(TENANT)
    const db = new Database(catalog, { readonly: true })
    try {
      const job = db.prepare('SELECT state, done, total FROM jobs WHERE id = ?').get(first.id) as {
        state: string
        done: number
        total: number
      }
      expect(['queued', 'running']).toContain(job.state)
      expect(job.done).toBeLessThan(3200)
    } finally {
      db.close()
    }
    const resumed = cli(['migration', 'status', '--follow', '--tenant', TENANT, '--json'])
    expect(resumed.code, resumed.err).toBe(0)
    const lines = jsonLines(resumed.out)
    expect(lines[0]?.id).toBe(first.id)
    expect(lines[lines.length - 1]).toMatchObject({
      id: first.id,
      jobState: 'completed',
      done: 3200,
      total: 3200,
    })
    const check = new Database(catalog, { readonly: true })
    try {
      const left = check
        .prepare('SELECT count(*) AS n FROM data_keys WHERE tenant = ? AND provider_fingerprint <> ?')
        .get(TENANT, TENANT) as { n: number }
      expect(left.n).toBe(0)
    } finally {
      check.close()
    }
  }, 120_000)

  it('kill -9 of the following CLI mid-migration: the job stays in the catalog and the next follow takes it over and completes it', async () => {
    const child = spawn(
      process.execPath,
      ['dist/cli/main.js', 'migrate', '--to', fp, '--tenant', TENANT, '--json'],
      { env: ENV },
    )
    let out = ''
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        if (out.includes('\n') && child.exitCode === null && !child.killed) child.kill('SIGKILL')
      })
      child.on('exit', () => resolve())
    })
    expect(child.signalCode).toBe('SIGKILL')
    const first = jsonLines(out)[0]!
    const db = new Database(catalog, { readonly: true })
    try {
      const job = db.prepare('SELECT state FROM jobs WHERE id = ?').get(first.id) as { state: string }
      expect(['queued', 'running']).toContain(job.state)
    } finally {
      db.close()
    }
    // The dead process's lease (30 s by default) runs out, then this runner takes the job over.
    const resumed = cli(['migration', 'status', '--follow', '--tenant', TENANT, '--json'], 90_000)
    expect(resumed.code, resumed.err).toBe(0)
    const last = jsonLines(resumed.out).at(-1)
    expect(last).toMatchObject({ id: first.id, jobState: 'completed', done: 3200, total: 3200 })
    const check = new Database(catalog, { readonly: true })
    try {
      const left = check
        .prepare('SELECT count(*) AS n FROM data_keys WHERE tenant = ? AND provider_fingerprint <> ?')
        .get(TENANT, fp) as { n: number }
      expect(left.n).toBe(0)
    } finally {
      check.close()
    }
  }, 150_000)
})
