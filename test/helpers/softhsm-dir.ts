/** A SoftHSM2 configuration with its own token directory, and the test tokens initialised in it. */
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export function makeSoftHsmDir(dir: string, labels: readonly string[], soPin: string, pin: string): string {
  const tokens = join(dir, 'tokens')
  mkdirSync(tokens, { recursive: true, mode: 0o700 })
  const conf = join(dir, 'softhsm2.conf')
  writeFileSync(
    conf,
    `directories.tokendir = ${tokens}/\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\nslots.mechanisms = ALL\nlibrary.reset_on_fork = false\n`,
  )
  for (const label of labels) {
    execFileSync(
      'softhsm2-util',
      ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin],
      {
        env: { ...process.env, SOFTHSM2_CONF: conf },
        stdio: 'ignore',
      },
    )
  }
  return conf
}
