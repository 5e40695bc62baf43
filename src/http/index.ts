/**
 * envelope-kms/http: the HTTP adapter (Key Protect v2 compatible API) as a library: build the app over an
 * engine you own, then serve it.
 */
export { createHttpApp } from './app.js'
export type { HttpApp, HttpAppOptions } from './app.js'
export { startServer } from './server.js'
export type { ListenOptions, RunningServer } from './server.js'
export { createAuthenticator, allowed, AuthError } from './auth.js'
export type { Authenticator, AuthConfig, ApiKeyConfig, JwtConfig, Principal } from './auth.js'
export { pinoAuditSink, nullAuditSink } from './audit.js'
export type {
  AuditEvent,
  AuditSink,
  AuditSinkOptions,
  AuditPressure,
  AuditFullPolicy,
  PinoAuditSink,
} from './audit.js'
export { loadHttpConfig } from './config.js'
export type { HttpConfig } from './config.js'
export { FixedWindowLimiter } from './rate-limit.js'
export type { RateLimitConfig } from './rate-limit.js'
export { startRotationScheduler } from '../core/jobs/scheduler.js'
export type { RotationScheduler, RotationSchedulerOptions } from '../core/jobs/scheduler.js'
