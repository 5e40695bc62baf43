/**
 * The engine services the provider and migration commands use (the engine, the job runner, the tenant key
 * providers): the same default services, configured the same way, as `serve`.
 */
import { loadConfig } from '../config.js'
import { createEngineServicesFromConfig, type EngineServices } from '../default-engine.js'
import { UsageError, stringOption, type OptionSpec, type OptionValues } from './args.js'

/** Opens the default services (src/config.ts), runs `fn` and closes them (running jobs stay resumable). */
export async function withServices<T>(fn: (s: EngineServices) => Promise<T>): Promise<T> {
  const services = await createEngineServicesFromConfig(loadConfig())
  try {
    return await fn(services)
  } finally {
    await services.close()
  }
}

/** `--tenant` (or its synonym `--instance`, as the key commands) and `--json`. */
export const TENANT_OPTIONS = {
  tenant: { type: 'string' },
  instance: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies OptionSpec

export const TENANT_HELP = `  --tenant T     the tenant (= instance); also --instance T; default: EKMS_INSTANCE (there is no default tenant)
  --json         print the result as JSON
  -h, --help     print this help and exit`

/** The tenant: `--tenant`, `--instance` or EKMS_INSTANCE. @throws UsageError when none is set, or two differ */
export function tenantOption(values: OptionValues): string {
  const t = stringOption(values, 'tenant')
  const i = stringOption(values, 'instance')
  if (t !== undefined && i !== undefined && t !== i) {
    throw new UsageError('--tenant and --instance name the same thing; give one')
  }
  const v = t ?? i ?? process.env['EKMS_INSTANCE']
  if (v === undefined || v === '') {
    throw new UsageError(
      '--tenant is required (or --instance, or EKMS_INSTANCE): key providers belong to a tenant; there is no default',
    )
  }
  return v
}
