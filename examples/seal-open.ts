/**
 * Envelope encryption of data: seal and open a record with an encryption context, stream a larger payload
 * through sealStream/openStream, and let the DEK cache skip the HSM for repeated work.
 *
 *   npx tsx examples/seal-open.ts
 */
import { randomBytes, createHash } from 'node:crypto'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createDekCache } from '../src/cache/index.js'
import { createEngineFromConfig, isEngineError } from '../src/index.js'
import { printer, runIfMain } from './support.js'

export async function main(): Promise<string[]> {
  const { out, log } = printer()
  const dekCache = createDekCache({ dataKeys: { maxAgeMs: 60_000, maxMessages: 1000 } })
  const engine = await createEngineFromConfig(undefined, { dekCache })
  try {
    const instance = 'seal-example'
    const key = await engine.createKey(instance, { name: 'orders-data' })
    const context = { tenant: 't-42', table: 'orders' }

    const record = Buffer.from(JSON.stringify({ order: 42, card: '4111 1111 1111 1111' }))
    const sealed = await engine.seal(instance, key.id, record, { context })
    log(`sealed a ${record.length}-byte record into ${sealed.length} bytes`)
    log(
      `open with the same context returns it: ${(await engine.open(instance, sealed, { context })).equals(record)}`,
    )
    try {
      await engine.open(instance, sealed, { context: { ...context, table: 'users' } })
    } catch (err) {
      if (isEngineError(err)) log(`open with another context fails with ${err.code}`)
    }

    // 8 MiB through the streams, never held in memory whole
    const input = createHash('sha256')
    const output = createHash('sha256')
    let left = 8
    await pipeline(
      new Readable({
        read() {
          if (left-- === 0) return void this.push(null)
          const chunk = randomBytes(1024 * 1024)
          input.update(chunk)
          this.push(chunk)
        },
      }),
      engine.sealStream(instance, key.id, { context }),
      engine.openStream(instance, { context }),
      new Writable({
        write(chunk: Buffer, _e, cb) {
          output.update(chunk)
          cb()
        },
      }),
    )
    log(
      `8 MiB streamed through sealStream and openStream intact: ${input.digest('hex') === output.digest('hex')}`,
    )

    for (let i = 0; i < 10; i++) await engine.seal(instance, key.id, record, { context })
    const stats = dekCache.stats()
    log(`10 more seals reused the cached data key: ${stats.dataKeyHits >= 10}`)
  } finally {
    await engine.close()
  }
  return out
}

runIfMain(import.meta.url, main)
