/** The engine the key commands use: the same default engine, configured the same way, as `serve`. */
import { loadConfig } from '../config.js'
import { createEngineFromConfig } from '../default-engine.js'
import type { EnvelopeEngine } from '../core/engine.js'

/** Opens the default engine (src/config.ts), runs `fn` and closes the engine. */
export async function withEngine<T>(fn: (engine: EnvelopeEngine) => Promise<T>): Promise<T> {
  const engine = await createEngineFromConfig(loadConfig())
  try {
    return await fn(engine)
  } finally {
    await engine.close()
  }
}
