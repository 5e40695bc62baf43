/**
 * Lease owner ids that say which process on which machine holds a job, so that a runner restarted after a
 * crash (kill -9, OOM, power cut of a single server) takes its jobs over at once instead of waiting for the
 * dead process's lease to expire (30 s by default).
 *
 * The id is `local:<boot id>:<pid namespace>:<pid>:<random>` on Linux: the kernel's boot id (the same
 * machine, the same boot), the PID namespace of the process (the same container, or none), and the pid. A
 * runner declares such an owner gone only when all three match its own and no process has that pid
 * (`kill(pid, 0)` answers ESRCH). Anything else — another machine, another container, a pid reused by some
 * other process, a platform without /proc — keeps the lease until it expires, as before. Taking over early
 * is safe even if the check were wrong: every job write is a compare-and-set on the record's revision, so the
 * old owner could write nothing more.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync, readlinkSync } from 'node:fs'

const PREFIX = 'local:'

/** This process's boot id and PID namespace, or undefined off Linux. */
function hostScope(): string | undefined {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
    const ns = /^pid:\[(\d+)\]$/.exec(readlinkSync('/proc/self/ns/pid'))?.[1]
    if (!/^[0-9a-f-]{36}$/.test(boot) || ns === undefined) return undefined
    return `${boot}:${ns}`
  } catch {
    return undefined
  }
}

const SCOPE = hostScope()

/** A lease owner id for this process: `local:<boot id>:<pid ns>:<pid>:<uuid>`, or a bare UUID off Linux. */
export function localOwnerId(): string {
  return SCOPE === undefined ? randomUUID() : `${PREFIX}${SCOPE}:${process.pid}:${randomUUID()}`
}

/**
 * True only when `owner` is a {@link localOwnerId} of this machine's current boot and this PID namespace
 * whose process no longer exists.
 */
export function localOwnerGone(owner: string): boolean {
  if (SCOPE === undefined || !owner.startsWith(`${PREFIX}${SCOPE}:`)) return false
  const pid = Number(owner.slice(PREFIX.length + SCOPE.length + 1).split(':')[0])
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return false
  try {
    process.kill(pid, 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}
