/**
 * Runs in each test file's process before the file: a private SoftHSM2 token directory with the two test
 * tokens, and SOFTHSM2_CONF pointing at it (SoftHSM2 reads it at C_Initialize; child processes and worker
 * threads started by the tests inherit it).
 */
import { mkdtempSync } from 'node:fs'
import { join } from 'node:path'
import { makeSoftHsmDir } from './helpers/softhsm-dir.js'

const base = process.env['EKMS_TEST_DIR']
if (base === undefined)
  throw new Error('EKMS_TEST_DIR is not set: run the tests through vitest (global-setup.ts)')
if (process.env['EKMS_TEST_FILE_DIR'] === undefined) {
  const dir = mkdtempSync(join(base, 'file-'))
  process.env['SOFTHSM2_CONF'] = makeSoftHsmDir(
    dir,
    [process.env['EKMS_TEST_TOKEN'] ?? 'ekms-test', process.env['EKMS_TEST_TOKEN_2'] ?? 'ekms-test-2'],
    process.env['EKMS_TEST_SO_PIN'] ?? '',
    process.env['EKMS_TEST_PIN'] ?? '',
  )
  process.env['EKMS_TEST_FILE_DIR'] = dir
}
