/**
 * Test-run set-up: a temporary folder and the PINs. Each test file then gets SoftHSM2 tokens of its own
 * (test/per-file-token.ts), so tests never touch the developer's token, and test files running in parallel
 * processes never share a token directory (one of them deletes a token on purpose).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { randomBytes } from 'node:crypto'

export default function setup(): () => void {
  // Pool workers run the compiled worker (see src/pool/pool.ts): build dist/ from the current sources first.
  execFileSync(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], {
    stdio: 'inherit',
  })
  process.env['EKMS_POOL_WORKER_FILE'] = resolve('dist/pool/worker.js')
  const dir = mkdtempSync(join(tmpdir(), 'ekms-test-'))
  process.env['EKMS_TEST_DIR'] = dir
  process.env['EKMS_TEST_TOKEN'] = 'ekms-test'
  process.env['EKMS_TEST_TOKEN_2'] = 'ekms-test-2'
  process.env['EKMS_TEST_PIN'] = randomBytes(8).toString('hex')
  process.env['EKMS_TEST_SO_PIN'] = randomBytes(8).toString('hex')
  return () => rmSync(dir, { recursive: true, force: true })
}
