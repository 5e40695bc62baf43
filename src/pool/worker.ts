/**
 * The only file a worker thread loads. Each worker owns its PKCS#11 provider (its own sessions; it joins
 * the process's Cryptoki initialisation and login and never calls C_Finalize: RESULTS gotcha 2).
 */
import { readlinkSync } from 'node:fs'
import { setPriority } from 'node:os'
import { workerData } from 'node:worker_threads'
import { move, transferableSymbol, valueSymbol } from 'piscina'
import type { BatchTask } from '../core/ports.js'
import { executeBatch } from '../core/wrap/execute-batch.js'
import { isEngineError } from '../core/errors.js'
import { createPkcs11Provider, type Pkcs11ProviderOptions } from '../providers/pkcs11/provider.js'
import { pack, type PackedResults } from './pack.js'

const data = workerData as { pkcs11: Pkcs11ProviderOptions; nice?: number }
const options = data.pkcs11

// On Linux a thread's nice value is its own: lowering this worker's priority keeps the event loop's thread
// first in line when workers and the main thread compete for the cores (a pool as large as the machine).
if (data.nice !== undefined && data.nice > 0) {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, data.nice)
  } catch {
    /* not Linux, or not permitted: the pool works the same, only less deferential */
  }
}
const provider = createPkcs11Provider(options)
// A failed start is reported per task (typed), not as an unhandled rejection of the worker.
provider.catch(() => undefined)

/** A reply that transfers its buffer instead of copying it. */
class Reply {
  constructor(readonly value: PackedResults | { fatal: { code: string; message: string } }) {}
  get [transferableSymbol](): ArrayBufferLike | undefined {
    return 'data' in this.value ? this.value.data.buffer : undefined
  }
  get [valueSymbol](): PackedResults | { fatal: { code: string; message: string } } {
    return this.value
  }
}

export default async function run(task: BatchTask): Promise<unknown> {
  try {
    const results = await executeBatch(await provider, task)
    // The task's byte items are this thread's copies (caller DEKs for wrap): wipe them.
    for (const item of task.items) if (typeof item !== 'string') item.fill(0)
    return move(new Reply(pack(results)) as unknown as ArrayBuffer)
  } catch (err) {
    // Errors cross the thread boundary without their code: send it as data.
    if (isEngineError(err)) return { fatal: { code: err.code, message: err.message } }
    return { fatal: { code: 'INTERNAL_ERROR', message: 'pool: worker task failed' } }
  }
}
