/**
 * One Key Vault SDK call with the caller's signal and a request timeout, its failure mapped to an
 * EngineError (errors.ts); and the items of a paged listing, each page fetched as one such call. Shared by
 * the root-key provider and the synchronization source.
 */
import { EngineError } from '../../core/errors.js'
import type { CallOptions } from '../../core/ports.js'
import type { AzureCallOptions } from './blobs.js'
import { toAzureEngineError, type AzureOp } from './errors.js'

/**
 * Runs `fn` with the SDK options of `opts` (signal, `timeoutMs`).
 * @throws EngineError ABORTED (the caller's signal), the mapping of toAzureEngineError
 */
export async function callAzure<T>(
  op: AzureOp,
  ref: string | undefined,
  opts: CallOptions,
  timeoutMs: number,
  fn: (o: AzureCallOptions) => Promise<T>,
): Promise<T> {
  if (opts.signal?.aborted === true) throw new EngineError('ABORTED', `azure-kv ${op}: aborted by the caller`)
  try {
    return await fn({
      ...(opts.signal === undefined ? {} : { abortSignal: opts.signal }),
      requestOptions: { timeout: timeoutMs },
    })
  } catch (err) {
    throw toAzureEngineError(err, op, ref, aborted(opts.signal))
  }
}

function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

/** A listing of the SDK (`listPropertiesOfKeys`, ...), paged. */
export type AzureListing<T> = (o: AzureCallOptions) => { byPage(): AsyncIterator<T[]> }

/** The items of a listing, each page fetched through `call` (which maps failures and checks the signal). */
export async function* azurePages<T>(
  call: (fn: (o: AzureCallOptions) => Promise<IteratorResult<T[]>>) => Promise<IteratorResult<T[]>>,
  list: AzureListing<T>,
): AsyncGenerator<T> {
  let pages: AsyncIterator<T[]> | undefined
  for (;;) {
    const page = await call(async (o) => {
      pages ??= list(o).byPage()
      return pages.next()
    })
    if (page.done === true) return
    yield* page.value
  }
}

/** Most entries a provider or a sync source keeps per cache (cryptography clients, wrap kinds: one per key version used). */
export const MAX_CRYPTO_CLIENTS = 1024

/** Sets `k` in a map bounded to {@link MAX_CRYPTO_CLIENTS} entries (the oldest goes). */
export function rememberBounded<V>(m: Map<string, V>, k: string, v: V): void {
  if (!m.has(k) && m.size >= MAX_CRYPTO_CLIENTS) {
    const oldest = m.keys().next().value
    if (oldest !== undefined) m.delete(oldest)
  }
  m.set(k, v)
}
