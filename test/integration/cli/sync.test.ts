/**
 * `envelope-kms connections` and `envelope-kms sync` as real processes (dist/cli/main.js) on the test token
 * and a fresh SQLite catalog, over the REAL key synchronization service and its default sources. The CLI adds
 * a pkcs11 connection to the second SoftHSM2 test token (AES keys made there through raw PKCS#11), tests it
 * and synchronizes it; the test process adds one to a token that does not exist (`hsm-lib`), whose test and
 * synchronization fail with typed codes. A job is durable: one left queued by the test process is resumed
 * and followed to its end by `sync status --follow` in another process.
 */
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import { EngineError } from '../../../src/core/errors.js'
import type { SyncSourceFactory } from '../../../src/core/ports-sync.js'
import { env, tempCatalogPath } from '../../helpers/engine.js'
import { openServices } from '../../helpers/tenant-keys.js'
import { openSqliteStore } from '../../../src/store/sqlite/index.js'
import { createAesKeys } from '../../helpers/sync.js'

const TENANT = 'acme-sync-cli'
const PIN_VAR = 'EKMS_TEST_SYNC_CLI_PIN'
const catalog = tempCatalogPath()
const ENV = {
  ...process.env,
  EKMS_PKCS11_TOKEN_LABEL: env('EKMS_TEST_TOKEN'),
  EKMS_PKCS11_PIN: env('EKMS_TEST_PIN'),
  EKMS_CATALOG: catalog,
  [PIN_VAR]: 'pin-of-the-synced-token',
}

function cli(args: string[], timeout = 60_000): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['dist/cli/main.js', ...args], {
    env: ENV,
    encoding: 'utf8',
    timeout,
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

/** The fields of the CLI's JSON output these tests read (the library's SyncJobView / ConnectionView). */
interface PrintedJob {
  id: string
  cloud: string
  overallStatus: string
  abort: boolean
  vaults: { name: string; id: string }[]
  error?: { code: string; message: string }
}

const jsonLines = <T>(out: string): T[] =>
  out
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as T)

const unreachable: SyncSourceFactory = async (connection) => {
  throw new EngineError('PROVIDER_UNAVAILABLE', `${connection.name}: the token is not reachable`)
}

let connectionId = ''

beforeAll(async () => {
  createAesKeys(env('EKMS_TEST_TOKEN_2'), env('EKMS_TEST_PIN'), [
    { label: 'cli-key-1', id: 'c11001' },
    { label: 'cli-key-2', id: 'c11002' },
  ])
  const s = await openServices(catalog, { syncSources: { pkcs11: unreachable } })
  try {
    const c = await s.sync.createConnection(TENANT, {
      name: 'hsm-lib',
      params: {
        cloud: 'pkcs11',
        module: '/usr/lib/softhsm/libsofthsm2.so',
        tokenLabel: 'synced-token',
        pin: { kind: 'env', name: PIN_VAR },
      },
    })
    connectionId = c.id
  } finally {
    await s.close()
  }
})

describe('help', () => {
  it('every connections and sync subcommand: --help prints its usage and exits 0', () => {
    const commands = [
      ['connections'],
      ...['add', 'list', 'get', 'test', 'delete'].map((x) => ['connections', x]),
      ['sync'],
      ...['start', 'status', 'list', 'cancel'].map((x) => ['sync', x]),
      ['sync', 'keys'],
      ...['list', 'purge'].map((x) => ['sync', 'keys', x]),
    ]
    for (const command of commands) {
      const r = cli([...command, '--help'])
      expect([command, r.code]).toEqual([command, 0])
      expect(r.out).toContain(`usage: envelope-kms ${command.join(' ')}`)
    }
    expect(cli(['--help']).out).toMatch(
      /connections\s+add\|list\|get\|test\|delete[\s\S]*sync\s+start\|status\|list\|cancel/,
    )
  })
})

describe('envelope-kms connections', () => {
  it('add refuses a literal secret (exit 2, the value not echoed) and a missing module (exit 2); adds a real one', () => {
    const literal = cli([
      'connections',
      'add',
      'hsm-cli',
      '--cloud',
      'pkcs11',
      '--module',
      '/usr/lib/softhsm/libsofthsm2.so',
      '--token-label',
      'tok',
      '--pin',
      'L1teralP1nValue',
      '--tenant',
      TENANT,
    ])
    expect(literal.code, literal.err).toBe(2)
    expect(literal.err).toMatch(/--pin takes a reference, env:VARIABLE_NAME or file:\/absolute\/path/)
    expect(literal.err + literal.out).not.toContain('L1teralP1nValue')
    const missing = cli([
      'connections',
      'add',
      'hsm-cli',
      '--cloud',
      'pkcs11',
      '--pin',
      'env:X',
      '--tenant',
      TENANT,
    ])
    expect(missing.code).toBe(2)
    expect(missing.err).toMatch(/module: required for a pkcs11 connection/)
    const added = cli([
      'connections',
      'add',
      'hsm-cli',
      '--cloud',
      'pkcs11',
      '--module',
      '/usr/lib/softhsm/libsofthsm2.so',
      '--token-label',
      env('EKMS_TEST_TOKEN_2'),
      '--pin',
      'env:EKMS_TEST_PIN',
      '--tenant',
      TENANT,
    ])
    expect(added.code, added.err).toBe(0)
    expect(added.out + added.err).not.toContain(env('EKMS_TEST_PIN'))
  })

  it('list, get (the PIN only as its reference), get of an unknown one: exit 3', () => {
    const list = cli(['connections', 'list', '--tenant', TENANT, '--json'])
    expect(list.code, list.err).toBe(0)
    const all = JSON.parse(list.out) as { id: string; name: string }[]
    expect(all.map((c) => c.name)).toEqual(['hsm-cli', 'hsm-lib'])
    const get = cli(['connections', 'get', 'hsm-lib', '--tenant', TENANT, '--json'])
    expect(get.code, get.err).toBe(0)
    expect(JSON.parse(get.out)).toMatchObject({
      id: connectionId,
      cloud: 'pkcs11',
      params: { tokenLabel: 'synced-token', pin: { kind: 'env', name: PIN_VAR } },
    })
    expect(get.out).not.toContain('pin-of-the-synced-token')
    const plain = cli(['connections', 'get', connectionId, '--tenant', TENANT])
    expect(plain.out).toMatch(/pin\s+env:EKMS_TEST_SYNC_CLI_PIN/)
    expect(cli(['connections', 'get', 'nope', '--tenant', TENANT]).code).toBe(3)
  })

  it('test: the real token passes (exit 0); a token that does not exist records a failed connect check (exit 1)', () => {
    const ok = cli(['connections', 'test', 'hsm-cli', '--tenant', TENANT])
    expect(ok.code, ok.out + ok.err).toBe(0)
    expect(ok.out).toMatch(/last test\s+ok at /)
    const r = cli(['connections', 'test', 'hsm-lib', '--tenant', TENANT])
    expect(r.code, r.err).toBe(1)
    expect(r.out).toMatch(/last test\s+failed at /)
    expect(r.out).toMatch(/connect synced-token\s+failed: PROVIDER_[A-Z_]+/)
    expect(r.out).not.toContain('pin-of-the-synced-token')
  })
})

describe('envelope-kms sync', () => {
  it('usage errors: exit 2 for neither or both of --vault/--all, --region off aws, an unknown cloud', () => {
    for (const args of [
      ['--cloud', 'pkcs11'],
      ['--cloud', 'pkcs11', '--vault', 'hsm-lib', '--all'],
      ['--cloud', 'pkcs11', '--all', '--region', 'eu-west-1'],
      ['--cloud', 'gcp', '--all'],
      ['--all'],
    ]) {
      const r = cli(['sync', 'start', ...args, '--tenant', TENANT])
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(2)
    }
    expect(cli(['sync', 'list', '--status', 'done', '--tenant', TENANT]).code).toBe(2)
  })

  it('start --follow --json runs the job in the engine to its end: the real token completes, exit 0', () => {
    const r = cli([
      'sync',
      'start',
      '--cloud',
      'pkcs11',
      '--vault',
      'hsm-cli',
      '--follow',
      '--json',
      '--tenant',
      TENANT,
    ])
    expect(r.code, r.err).toBe(0)
    const last = jsonLines<PrintedJob & { counts: { discovered: number } }>(r.out).at(-1)
    expect(last).toMatchObject({ overallStatus: 'completed', counts: { discovered: 2, inserted: 2 } })
    const keys = cli(['sync', 'keys', 'list', '--cloud', 'pkcs11', '--tenant', TENANT, '--json'])
    expect(keys.code, keys.err).toBe(0)
    const listed = JSON.parse(keys.out) as { keys: { name: string }[] }
    expect(listed.keys.map((k) => k.name).sort()).toEqual(['cli-key-1', 'cli-key-2'])
  })

  it('start --follow --json of a token that does not exist: the job fails with the typed code, exit 1', () => {
    const r = cli([
      'sync',
      'start',
      '--cloud',
      'pkcs11',
      '--vault',
      'hsm-lib',
      '--follow',
      '--json',
      '--tenant',
      TENANT,
    ])
    expect(r.code, r.err).toBe(1)
    const lines = jsonLines<PrintedJob>(r.out)
    expect(lines[0]).toMatchObject({ cloud: 'pkcs11', vaults: [{ name: 'hsm-lib', id: connectionId }] })
    expect(lines.at(-1)).toMatchObject({
      overallStatus: 'failed',
      error: { code: expect.stringMatching(/^PROVIDER_/) },
    })
    const id = lines[0]?.id ?? ''
    const status = cli(['sync', 'status', id, '--tenant', TENANT, '--json'])
    expect(status.code, status.err).toBe(0)
    expect(JSON.parse(status.out)).toMatchObject({ id, overallStatus: 'failed' })
    const plain = cli(['sync', 'status', id, '--tenant', TENANT])
    expect(plain.out).toMatch(new RegExp(`^sync ${id} pkcs11 failed 0% \\(0/\\d+ vaults; 0 keys discovered`))
    const cancel = cli(['sync', 'cancel', id, '--tenant', TENANT])
    expect(cancel.code).toBe(1)
    expect(cancel.err).toMatch(/error JOB_FINISHED: /)
    expect(cli(['sync', 'status', randomUUID(), '--tenant', TENANT]).code).toBe(3)
  })

  it('a job left queued by another process is resumed and followed to its end by sync status --follow in another process', async () => {
    const s = await openServices(catalog, { syncSources: { pkcs11: unreachable } })
    let queued = ''
    try {
      await s.jobs.close()
      queued = (await s.sync.startSync(TENANT, { cloud: 'pkcs11', synchronizeAll: true })).id
    } finally {
      await s.close()
    }
    const follow = cli(['sync', 'status', queued, '--follow', '--json', '--tenant', TENANT])
    expect(follow.code, follow.err).toBe(1)
    expect(jsonLines<PrintedJob>(follow.out).at(-1)).toMatchObject({ id: queued, overallStatus: 'failed' })

    const list = cli(['sync', 'list', '--cloud', 'pkcs11', '--tenant', TENANT, '--json'])
    expect(list.code, list.err).toBe(0)
    const listed = JSON.parse(list.out) as { total: number; jobs: PrintedJob[] }
    expect(listed.total).toBe(3)
    expect(listed.jobs[0]?.id).toBe(queued)
    const table = cli(['sync', 'list', '--tenant', TENANT])
    expect(table.out).toMatch(/^ID\s+CLOUD\s+STATUS\s+PROGRESS\s+KEYS\s+CREATED\s+VAULTS/)
  })
})

describe('envelope-kms sync keys', () => {
  const T2 = 'acme-sync-cli-purge'
  const discovered = (n: number) => ({
    id: randomUUID(),
    sourceKeyId: `id:0${n}`,
    vault: 'purge-token',
    name: `key-${n}`,
    keyType: 'AES',
    usable: true,
    enabled: true,
    versions: [{ version: '1', ref: `id:0${n}`, enabled: true, createdAt: undefined }],
    attributes: {},
  })

  it('list (filters, JSON, table); purge refused while present, allowed once deleted at the source; connections delete --purge-deleted', async () => {
    const s = await openServices(catalog, { syncSources: { pkcs11: unreachable } })
    let conn = ''
    try {
      conn = (
        await s.sync.createConnection(T2, {
          name: 'hsm-purge',
          params: {
            cloud: 'pkcs11',
            module: '/usr/lib/softhsm/libsofthsm2.so',
            tokenLabel: 'purge-token',
            pin: { kind: 'env', name: PIN_VAR },
          },
        })
      ).id
    } finally {
      await s.close()
    }
    // The catalog as two synchronizations leave it: key 1 gone at the source, key 2 present.
    const [k1, k2] = [discovered(1), discovered(2)]
    const store = await openSqliteStore({ path: catalog })
    try {
      await store.upsertLinkedKeys(T2, conn, 'pkcs11', [k1, k2], { at: 1, jobId: 'j1' })
      await store.upsertLinkedKeys(T2, conn, 'pkcs11', [discovered(2)], { at: 2, jobId: 'j2' })
      expect(await store.markMissingDeleted(T2, conn, 'j2', 3)).toBe(1)
    } finally {
      await store.close()
    }

    const all = cli(['sync', 'keys', 'list', '--tenant', T2, '--json'])
    expect(all.code, all.err).toBe(0)
    expect(JSON.parse(all.out)).toMatchObject({ total: 2 })
    const deleted = cli([
      'sync',
      'keys',
      'list',
      '--state',
      'deleted',
      '--cloud',
      'pkcs11',
      '--tenant',
      T2,
      '--json',
    ])
    const listed = JSON.parse(deleted.out) as { total: number; keys: { id: string; sourceState: string }[] }
    expect(listed.total).toBe(1)
    expect(listed.keys.map((k) => [k.id, k.sourceState])).toEqual([[k1.id, 'deleted']])
    expect(
      JSON.parse(cli(['sync', 'keys', 'list', '--cloud', 'aws', '--tenant', T2, '--json']).out),
    ).toMatchObject({
      total: 0,
    })
    const table = cli(['sync', 'keys', 'list', '--connection', 'hsm-purge', '--tenant', T2])
    expect(table.out).toMatch(/^ID\s+CLOUD\s+STATE\s+NAME\s+VAULT\s+TYPE\s+LAST SYNCED/)
    expect(table.out).toMatch(new RegExp(`${k1.id}\\s+pkcs11\\s+deleted\\s+key-1\\s+purge-token`))
    expect(cli(['sync', 'keys', 'list', '--state', 'gone', '--tenant', T2]).code).toBe(2)
    expect(cli(['sync', 'keys', 'list', '--connection', 'nope', '--tenant', T2]).code).toBe(3)
    expect(cli(['sync', 'keys', 'nothing', '--tenant', T2]).code).toBe(2)

    const refused = cli(['sync', 'keys', 'purge', k2.id, '--tenant', T2])
    expect(refused.code).toBe(1)
    expect(refused.err).toMatch(
      /error KEY_ACTION_INVALID_STATE_ERR: .*delete it at the source and synchronize first/,
    )
    const inUse = cli(['connections', 'delete', 'hsm-purge', '--tenant', T2])
    expect(inUse.code).toBe(1)
    expect(inUse.err).toMatch(/error CONNECTION_IN_USE: .*purge them/)

    const purged = cli(['sync', 'keys', 'purge', k1.id, '--tenant', T2])
    expect(purged.code, purged.err).toBe(0)
    expect(purged.out).toBe(`purged linked key ${k1.id}\n`)
    expect(cli(['sync', 'keys', 'purge', k1.id, '--tenant', T2]).code).toBe(3)
    expect(cli(['sync', 'keys', 'purge', k2.id, '--tenant', 'acme-other']).code).toBe(3)

    // Key 2 is gone at the source too: the connection goes with its deleted links in one step.
    const again = await openSqliteStore({ path: catalog })
    try {
      expect(await again.markMissingDeleted(T2, conn, 'j3', 4)).toBe(1)
    } finally {
      await again.close()
    }
    const del = cli(['connections', 'delete', 'hsm-purge', '--purge-deleted', '--tenant', T2, '--json'])
    expect(del.code, del.err).toBe(0)
    expect(JSON.parse(del.out)).toEqual({ deleted: 'hsm-purge' })
    expect(JSON.parse(cli(['sync', 'keys', 'list', '--tenant', T2, '--json']).out)).toMatchObject({
      total: 0,
    })
    expect(cli(['connections', 'get', 'hsm-purge', '--tenant', T2]).code).toBe(3)
  })
})
