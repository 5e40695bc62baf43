/**
 * Creates a throwaway SoftHSM2 token for the test run (its own config and token directory under the OS
 * temp dir), so tests never touch the developer's token. Every test process inherits the environment.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'ekms-test-'))
  const tokens = join(dir, 'tokens')
  execFileSync('mkdir', ['-p', tokens])
  const conf = join(dir, 'softhsm2.conf')
  writeFileSync(
    conf,
    `directories.tokendir = ${tokens}/\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\nslots.mechanisms = ALL\nlibrary.reset_on_fork = false\n`,
  )
  const pin = randomBytes(8).toString('hex')
  const soPin = randomBytes(8).toString('hex')
  const env = { ...process.env, SOFTHSM2_CONF: conf }
  for (const label of ['ekms-test', 'ekms-test-2']) {
    execFileSync(
      'softhsm2-util',
      ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin],
      {
        env,
        stdio: 'ignore',
      },
    )
  }
  process.env['SOFTHSM2_CONF'] = conf
  process.env['EKMS_TEST_DIR'] = dir
  process.env['EKMS_TEST_TOKEN'] = 'ekms-test'
  process.env['EKMS_TEST_TOKEN_2'] = 'ekms-test-2'
  process.env['EKMS_TEST_PIN'] = pin
  process.env['EKMS_TEST_SO_PIN'] = soPin
  return () => rmSync(dir, { recursive: true, force: true })
}
