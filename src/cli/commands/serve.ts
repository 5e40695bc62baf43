/**
 * `envelope-kms serve`: the Key Protect v2 API, the Qlik key providers API, the CCKM key synchronization API
 * and the job runner (and the
 * AWS-KMS-compatible API when configured) until SIGTERM or SIGINT; SIGHUP reopens the audit log.
 * Configuration: src/config.ts and src/http/config.ts.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { pino } from 'pino'
import { loadConfig } from '../../config.js'
import {
  createEngineServicesFromConfig,
  createVaultKeysFromConfig,
  type DefaultVaultKeys,
} from '../../default-engine.js'
import { EngineError, isEngineError } from '../../core/errors.js'
import { startRotationScheduler } from '../../core/jobs/scheduler.js'
import type { VaultKeyMaintenanceResult } from '../../core/jobs/vault-key-maintenance.js'
import { createHttpApp } from '../../http/app.js'
import type { AutoPurgeResult } from '../../core/engine.js'
import { pinoAuditSink, type AuditEvent } from '../../http/audit.js'
import { wireOf } from '../../http/errors.js'
import { createAuthenticator, type AuthConfig } from '../../http/auth.js'
import { loadHttpConfig } from '../../http/config.js'
import { startServer, type RunningServer } from '../../http/server.js'
import { servableAwsKms } from '../../http/awskms/servable.js'
import { servableAzureKv } from '../../http/azurekv/servable.js'
import type { Command } from '../args.js'

export const SERVE_HELP = `usage: envelope-kms serve [--help]

Serves the Key Protect v2 API, the Qlik key providers API and the CCKM key synchronization API
(/api/v1/cckm, /api/v1/connectionmgmt) (and the AWS-KMS-compatible API when
EKMS_AWSKMS_CREDENTIALS_FILE is set, the Azure-Key-Vault-compatible API over HTTPS when EKMS_AZUREKV_PORT is
set) until SIGTERM or SIGINT, and runs the job runner (key-provider migrations, key synchronizations); SIGHUP reopens the audit log.
Configuration: EKMS_HTTP_*, EKMS_AUTH_FILE, EKMS_AUDIT_LOG, EKMS_AUDIT_SYNC, EKMS_AUDIT_BUFFER_BYTES,
EKMS_AUDIT_WHEN_FULL (reject|drop), EKMS_AWSKMS_*, EKMS_AZUREKV_*, EKMS_PKCS11_*, EKMS_CATALOG,
EKMS_TENANT_*, EKMS_KEYPROVIDERS_AWS_* (docs/http-keyprotect.md, docs/http-qlik.md, docs/http-cckm.md, docs/azure-kv-api.md).
`

const log = pino({ base: { log: 'server' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2))

/**
 * Without an auth file, loopback only: the development API key in a 0600 file next to the catalog. An
 * existing file is used as it is, so a second `serve` (or one that fails to start) never changes the key a
 * running server accepts; a new key is written only after the servers started (`persist`), atomically, and
 * never over a file that appeared meanwhile.
 */
function devAuth(catalogPath: string, host: string): { auth: AuthConfig; persist: () => void } {
  if (host !== '127.0.0.1' && host !== '::1' && host !== 'localhost') {
    throw new EngineError(
      'CONFIG_INVALID',
      'EKMS_AUTH_FILE: is required when serving on a non-loopback address',
    )
  }
  const file = resolve(dirname(resolve(catalogPath)), 'dev-api-key')
  const auth = (key: string): AuthConfig => ({
    apiKeys: [{ key, subject: 'dev', instances: '*', actions: ['*'] }],
  })
  if (existsSync(file)) {
    const key = readFileSync(file, 'utf8').trim()
    if (key.length < 16) {
      throw new EngineError(
        'CONFIG_INVALID',
        `${file}: holds no development API key; delete it to get a new one`,
      )
    }
    log.warn(
      { file },
      'no EKMS_AUTH_FILE: using the development API key in this file (all instances, all actions)',
    )
    return { auth: auth(key), persist: () => undefined }
  }
  const key = randomBytes(32).toString('base64url')
  return {
    auth: auth(key),
    persist: () => {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
      const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
      writeFileSync(tmp, `${key}\n`, { mode: 0o600, flag: 'wx' })
      try {
        chmodSync(tmp, 0o600)
        linkSync(tmp, file) // atomic, and fails (EEXIST) rather than replace a file another server wrote
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        log.error({ file }, 'dev-api-key appeared while starting; this server accepts only its own key')
        return
      } finally {
        unlinkSync(tmp)
      }
      log.warn({ file }, 'no EKMS_AUTH_FILE: generated a development API key (all instances, all actions)')
    },
  }
}

/** The audit subject of what the scheduler does on its own (no caller). */
export const SCHEDULER_SUBJECT = 'envelope-kms:scheduler'

/**
 * The audit events of one automatic purge pass: one `kms.secrets.purge` per key, `success` (status 204, as
 * `DELETE /keys/{id}/purge`) for a purged key, `failure` with the Key Protect status and reason code for a
 * key whose purge failed. The pass's events share one correlation id; method `SCHEDULER`, route
 * `auto-purge`, operation `autoPurge`.
 */
export function autoPurgeAuditEvents(r: AutoPurgeResult, correlationId: string = randomUUID()): AuditEvent[] {
  const base = {
    event: 'kms.secrets.purge',
    subject: SCHEDULER_SUBJECT,
    correlationId,
    method: 'SCHEDULER',
    route: 'auto-purge',
    api: 'keyprotect',
    operation: 'autoPurge',
  } as const
  return [
    ...r.purged.map((p): AuditEvent => ({
      ...base,
      outcome: 'success',
      status: 204,
      instance: p.instance,
      keyId: p.keyId,
      reason: undefined,
    })),
    ...r.failed.map((f): AuditEvent => {
      const w = wireOf(f.code)
      return {
        ...base,
        outcome: 'failure',
        status: w.status,
        instance: f.instance,
        keyId: f.keyId,
        reason: w.code,
      }
    }),
  ]
}

export async function serveCommand(): Promise<void> {
  const config = loadConfig()
  const http = loadHttpConfig()
  let authConfig = http.auth
  let persistDevKey = (): void => undefined
  if (authConfig === undefined) {
    const dev = devAuth(config.catalog.path, http.listen.host ?? '127.0.0.1')
    authConfig = dev.auth
    persistDevKey = dev.persist
  }
  const auth = createAuthenticator(authConfig)
  // The engine, the job runner (interrupted key-provider migrations resume now) and tenant key providers.
  const services = await createEngineServicesFromConfig(config, {
    jobs: {
      log: (e) => {
        log[e.level]({ jobId: e.jobId, type: e.type, tenant: e.tenant, code: e.code }, e.msg)
      },
    },
  })
  const { engine, tenantKeys, sync } = services
  const audit = pinoAuditSink(http.auditLog === '-' ? undefined : http.auditLog, {
    sync: http.auditSync,
    maxPendingBytes: http.auditBufferBytes,
    whenFull: http.auditWhenFull,
    onPressure: (p) => {
      log.warn(p, p.full ? 'audit output stalled: buffer full' : 'audit output resumed')
    },
  })
  const app = createHttpApp({
    engine,
    tenantKeys,
    sync,
    auth,
    audit,
    bodyLimitBytes: http.bodyLimitBytes,
    rateLimit: { requests: http.rateLimitPerSecond, windowMs: 1000 },
    wire: { region: http.region, account: http.account },
    trustedProxies: http.trustedProxies,
    onServerError: (err, correlationId) => {
      log.error(
        {
          correlationId,
          code: isEngineError(err) ? err.code : 'INTERNAL_ERROR',
          message: (err as Error).message,
        },
        'request failed',
      )
    },
  })
  const servers: RunningServer[] = []
  let vaultKeys: DefaultVaultKeys | undefined
  let awsServer: RunningServer | undefined
  let azureServer: RunningServer | undefined
  try {
    servers.push(await startServer(app, http.listen))
    if (http.awsKms !== undefined) {
      const aws = servableAwsKms({
        engine,
        credentials: http.awsKms.credentials,
        regions: http.awsKms.regions,
        maxBodyBytes: http.bodyLimitBytes,
        logger: log,
        audit,
      })
      awsServer = await startServer(aws, { ...http.listen, port: http.awsKms.port })
      servers.push(awsServer)
    }
    if (http.azureKv !== undefined) {
      const az = http.azureKv
      vaultKeys = await createVaultKeysFromConfig(config, { retentionDays: az.retentionDays })
      const azure = servableAzureKv({
        vault: vaultKeys.vault,
        auth,
        challenge: { authorization: az.authority, resource: az.resource },
        maxBodyBytes: http.bodyLimitBytes,
        logger: log,
        audit,
      })
      azureServer = await startServer(azure, {
        host: http.listen.host ?? '127.0.0.1',
        port: az.port,
        tls: az.tls,
      })
      servers.push(azureServer)
    }
  } catch (err) {
    for (const s of servers) await s.close()
    await services.close()
    await vaultKeys?.close()
    throw err
  }
  const [server] = servers
  if (server === undefined) throw new EngineError('INTERNAL_ERROR', 'serve: no server started')
  persistDevKey() // only now: a serve that failed to start leaves every file as it was
  const scheduler = startRotationScheduler(engine, {
    intervalMs: http.rotationIntervalMs,
    scheduledDeletions: true,
    onPass: (r) => {
      if (r.rotated.length + r.failed.length > 0) log.info(r, 'automatic rotation pass')
    },
    onDeletions: (r) => {
      if (r.destroyed.length > 0) log.info({ destroyed: r.destroyed.length }, 'scheduled deletions done')
    },
    autoPurge: true,
    onAutoPurge: (r) => {
      if (r.purged.length > 0) log.info({ purged: r.purged.length }, 'automatic purge done')
      for (const f of r.failed) {
        log.error(
          { instance: f.instance, keyId: f.keyId, code: f.code, message: f.message },
          'automatic purge of a key failed; the next pass retries it',
        )
      }
      for (const e of autoPurgeAuditEvents(r)) {
        void Promise.resolve(audit.record(e)).catch((err: unknown) => {
          log.error({ message: (err as Error).message }, 'automatic purge: audit event not written')
        })
      }
    },
    ...(vaultKeys === undefined
      ? {}
      : {
          vaultKeys: vaultKeys.maintenance,
          onVaultKeys: (r: VaultKeyMaintenanceResult) => {
            if (r.purged.length + r.swept.length > 0)
              log.info(
                { purged: r.purged.length, swept: r.swept.length },
                'vault keys: purged at their scheduled purge date, orphaned objects swept',
              )
            for (const f of r.failed)
              log.error(
                { what: f.what, instance: f.instance, key: f.name, code: f.code, message: f.message },
                'vault key maintenance failed; the next pass retries it',
              )
          },
        }),
    onError: (err) => {
      log.error({ code: err.code, message: err.message }, 'automatic rotation pass failed')
    },
  })
  log.info(
    {
      url: server.url,
      ...(awsServer === undefined ? {} : { awsKmsUrl: awsServer.url }),
      ...(azureServer === undefined ? {} : { azureKvUrl: azureServer.url }),
      provider: engine.providerName,
    },
    'listening',
  )
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down: draining in-flight requests')
    void (async () => {
      await Promise.all(servers.map((s) => s.close()))
      await scheduler.stop()
      // Running jobs stop at a checkpoint and stay active; the next start resumes them.
      await services.close()
      await vaultKeys?.close()
      if (!(await audit.close())) {
        // A write stuck in a stalled destination would keep the process alive.
        log.error(audit.stats(), 'audit output still stalled at shutdown; the lines left are lost')
        process.exit(1)
      }
      log.info('stopped')
      process.exitCode = 0
    })()
  }
  process.once('SIGTERM', () => {
    stop('SIGTERM')
  })
  process.once('SIGINT', () => {
    stop('SIGINT')
  })
  // Log rotation (logrotate's postrotate, `systemctl reload`): the audit file is opened again by its path.
  process.on('SIGHUP', () => {
    try {
      audit.reopen()
      log.info('audit log reopened')
    } catch (err) {
      log.error(
        { message: (err as Error).message },
        'audit log could not be reopened; still writing the old file',
      )
    }
  })
}

/** The `serve` command for the dispatcher (src/cli/main.ts). */
export const SERVE: Command = {
  help: SERVE_HELP,
  options: {},
  run: async () => {
    await serveCommand()
    return undefined
  },
}
