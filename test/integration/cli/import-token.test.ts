/**
 * `envelope-kms import-token create|show` and `keys import --material-file` (issue 13 item 7) as a real
 * process (dist/cli/main.js) on this file's SoftHSM2 token and a real SQLite catalog: the CLI does the
 * client side of the secure import (RSA-OAEP of the material, AES-GCM of the nonce) and the HSM unwraps the
 * material. The material is then proven in-process: restoring the deleted key succeeds with that material
 * only.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { env, openTestEngine, tempCatalogPath } from '../../helpers/engine.js'
import { expectCode } from '../../helpers/expect-code.js'

function cli(catalog: string, args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['dist/cli/main.js', ...args], {
    env: {
      ...process.env,
      EKMS_PKCS11_TOKEN_LABEL: env('EKMS_TEST_TOKEN'),
      EKMS_PKCS11_PIN: env('EKMS_TEST_PIN'),
      EKMS_CATALOG: catalog,
    },
    encoding: 'utf8',
    timeout: 20_000,
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

/** A material file with `mode` (default 0600). */
function materialFile(material: Buffer, mode = 0o600): string {
  const path = join(mkdtempSync(join(env('EKMS_TEST_DIR'), 'material-')), 'key.bin')
  writeFileSync(path, material, { mode })
  chmodSync(path, mode)
  return path
}

const I = 'cli-import'

describe('envelope-kms import-token and keys import --material-file', () => {
  it('create, show, then import: the HSM holds exactly the file material', async () => {
    const catalog = tempCatalogPath()
    const run = (...args: string[]) => cli(catalog, [...args, '--instance', I])

    const created = run('import-token', 'create', '--max-retrievals', '2', '--expiration', '900', '--json')
    expect(created.err).toBe('')
    expect(created.code).toBe(0)
    const info = JSON.parse(created.out) as Record<string, unknown>
    expect(info).toMatchObject({ maxAllowedRetrievals: 2, remainingRetrievals: 2 })
    expect(Date.parse(info['expiresAt'] as string) - Date.parse(info['createdAt'] as string)).toBe(900_000)

    const shown = run('import-token', 'show', '--json')
    expect(shown.code).toBe(0)
    const token = JSON.parse(shown.out) as {
      publicKeyPem: string
      nonce: string
      remainingRetrievals: number
    }
    expect(token.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----/)
    expect(Buffer.from(token.nonce, 'base64')).toHaveLength(12)
    expect(token.remainingRetrievals).toBe(1)
    const text = run('import-token', 'show')
    expect(text.out).toContain('-----BEGIN PUBLIC KEY-----')
    expect(text.out).toMatch(/retrievals +0 of 2 left/)

    // Retrievals exhausted: the import is refused and creates nothing.
    const material = randomBytes(32)
    const file = materialFile(material)
    const exhausted = run('keys', 'import', 'no-retrieval-left', '--material-file', file)
    expect([exhausted.code, exhausted.err]).toEqual([
      1,
      expect.stringMatching(/^envelope-kms: error IMPORT_TOKEN_RETRIEVALS_EXHAUSTED: /),
    ])

    expect(run('import-token', 'create').code).toBe(0)
    const imported = run(
      'keys',
      'import',
      'imported-by-cli',
      '--material-file',
      file,
      '--alias',
      'cli-imp',
      '--json',
    )
    expect(imported.err).toBe('')
    expect(imported.code).toBe(0)
    const key = JSON.parse(imported.out) as {
      id: string
      state: number
      imported: boolean
      extractable: boolean
    }
    expect(key).toMatchObject({ state: 1, extractable: false, imported: true })
    const listed = JSON.parse(run('keys', 'list', '--json').out) as { keys: { id: string; name: string }[] }
    expect(listed.keys.map((k) => k.name)).toEqual(['imported-by-cli'])

    // The HSM object is the file's material: a restore proves it (and refuses other material).
    const t = await openTestEngine({ catalogPath: catalog })
    try {
      t.clock.t = Date.now()
      const wrapped = await t.engine.wrap(I, 'cli-imp')
      await t.engine.deleteKey(I, key.id)
      t.clock.advance(31_000)
      await expectCode(t.engine.restoreKey(I, key.id, { payload: randomBytes(32) }), 'INVALID_FIELD_ERR')
      expect((await t.engine.restoreKey(I, key.id, { payload: material })).state).toBe(1)
      expect((await t.engine.unwrap(I, key.id, wrapped.ciphertext)).plaintext).toEqual(wrapped.plaintext)
    } finally {
      await t.engine.close()
    }
  })

  it('refuses a material file accessible by group or others, of the wrong size, or missing, before using the token', () => {
    const catalog = tempCatalogPath()
    const run = (...args: string[]) => cli(catalog, [...args, '--instance', I])
    expect(run('import-token', 'create', '--max-retrievals', '5').code).toBe(0)
    const material = randomBytes(16)
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      const r = run('keys', 'import', 'too-open', '--material-file', materialFile(material, mode))
      expect([mode, r.code]).toEqual([mode, 1])
      expect(r.err).toMatch(
        /^envelope-kms: error INVALID_FIELD_ERR: material-file: .* accessible by group or others/,
      )
    }
    const short = run('keys', 'import', 'short', '--material-file', materialFile(randomBytes(20)))
    expect([short.code, short.err]).toEqual([
      1,
      expect.stringMatching(/has 20 bytes; key material is 16, 24 or 32/),
    ])
    const b64 = run(
      'keys',
      'import',
      'b64',
      '--material-file',
      materialFile(Buffer.from(randomBytes(32).toString('base64'))),
    )
    expect(b64.code).toBe(1)
    const missing = run('keys', 'import', 'missing', '--material-file', '/nonexistent/key.bin')
    expect([missing.code, missing.err]).toEqual([1, expect.stringMatching(/cannot open .*ENOENT/)])
    const none = run('keys', 'import', 'no-file')
    expect([none.code, none.err]).toEqual([2, expect.stringContaining('--material-file is required')])
    // None of them took a retrieval or created a key.
    expect(JSON.parse(run('import-token', 'show', '--json').out)).toMatchObject({ remainingRetrievals: 4 })
    expect(JSON.parse(run('keys', 'list', '--all', '--json').out)).toMatchObject({ keys: [], total: 0 })
    // A 0400 file is fine.
    const ok = run(
      'keys',
      'import',
      'read-only-file',
      '--material-file',
      materialFile(material, 0o400),
      '--json',
    )
    expect(ok.code).toBe(0)
  })

  it('without a token: IMPORT_TOKEN_NOT_FOUND_ERR (exit 3); an algorithm the HSM lacks: INVALID_FIELD_ERR', () => {
    const catalog = tempCatalogPath()
    const run = (...args: string[]) => cli(catalog, [...args, '--instance', I])
    const file = materialFile(randomBytes(32))
    const noToken = run('keys', 'import', 'no-token', '--material-file', file)
    expect([noToken.code, noToken.err]).toEqual([
      3,
      expect.stringMatching(/^envelope-kms: error IMPORT_TOKEN_NOT_FOUND_ERR: /),
    ])
    expect(run('import-token', 'show').code).toBe(3)
    expect(run('import-token', 'create').code).toBe(0)
    // SoftHSM2 2.6.1 unwraps RSA-OAEP with SHA-1 only (native-config/softhsm2.json oaepHashes).
    const sha256 = run(
      'keys',
      'import',
      'sha256',
      '--material-file',
      file,
      '--algorithm',
      'RSAES_OAEP_SHA_256',
    )
    expect([sha256.code, sha256.err]).toEqual([
      1,
      expect.stringMatching(
        /^envelope-kms: error INVALID_FIELD_ERR: algorithm: RSAES_OAEP_SHA_256 is not supported/,
      ),
    ])
    const sha1 = run('keys', 'import', 'sha1', '--material-file', file, '--algorithm', 'RSAES_OAEP_SHA_1')
    expect(sha1.code).toBe(0)
    expect(run('import-token', 'create', '--expiration', '10').code).toBe(1)
  })
})
