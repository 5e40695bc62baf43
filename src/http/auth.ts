/**
 * Bearer-token authentication for the HTTP APIs: JWTs (HS256 shared secret, RS256/ES256 public keys or a
 * JWKS file; `exp`/`nbf`/`iss`/`aud` checked by jose; canonical base64url segments, integer NumericDates and
 * a maximum lifetime checked here) and static API keys for development. A token maps to
 * a subject, the instances it may use and the IAM actions it may perform (`kms.secrets.wrap`, ...).
 * Tokens are never logged; API keys are kept only as SHA-256 digests.
 */
import {
  createHash,
  createPublicKey,
  createSecretKey,
  hash,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose'
import { LRUCache } from 'lru-cache'
import { EngineError } from '../core/errors.js'

/** Who is calling and what they may do. */
export interface Principal {
  readonly subject: string
  /** Instances the caller may use; `*` = any. */
  readonly instances: '*' | ReadonlySet<string>
  /** IAM action patterns: exact (`kms.secrets.wrap`), prefix (`kms.secrets.*`) or `*`. */
  readonly actions: readonly string[]
  /** Seconds since the epoch after which the credential is no longer valid (JWT `exp`). */
  readonly expiresAt: number | undefined
}

/** A static API key (development). Give `key` (plain) or `keySha256` (hex digest of the key). */
export interface ApiKeyConfig {
  readonly key?: string
  readonly keySha256?: string
  readonly subject: string
  readonly instances: '*' | readonly string[]
  readonly actions: readonly string[]
}

export interface JwtConfig {
  /** HS256 shared secret (at least 32 bytes). */
  readonly hs256Secret?: string
  readonly hs256SecretFile?: string
  /** PEM public keys (RS256 / ES256). */
  readonly publicKeyFiles?: readonly string[]
  /** A JWKS document on disk (RS256 / ES256 keys selected by `kid`). */
  readonly jwksFile?: string
  readonly issuer?: string
  readonly audience?: string
  /** Claim holding the allowed instances (array of strings, or `*`); default `instances`. */
  readonly instancesClaim?: string
  /** Claim holding the allowed IAM actions (array, or a space-separated string); default `actions`. */
  readonly actionsClaim?: string
  /** Allowed clock skew for exp/nbf, seconds (default 30). */
  readonly clockToleranceSec?: number
  /**
   * Longest accepted token lifetime, seconds (default 86,400 = 24 h; 1 to {@link MAX_JWT_LIFETIME_LIMIT_S}):
   * `exp - iat` may not exceed it, and `exp - now` may not exceed it plus the clock tolerance.
   */
  readonly maxLifetimeSec?: number
}

/** Default of {@link JwtConfig.maxLifetimeSec}: 24 hours. */
export const DEFAULT_JWT_MAX_LIFETIME_S = 86_400
/** Largest value {@link JwtConfig.maxLifetimeSec} may be set to: 366 days. */
export const MAX_JWT_LIFETIME_LIMIT_S = 366 * 86_400

export interface AuthConfig {
  readonly apiKeys?: readonly ApiKeyConfig[]
  readonly jwt?: JwtConfig
}

/** Why authentication failed; all of them answer 401 on the wire. */
export class AuthError extends Error {
  override readonly name = 'AuthError'
}

function sha256(s: string): Buffer {
  // crypto.hash (one shot, Node ≥ 20.12) costs half of createHash().update().digest() per request.
  return typeof hash === 'function'
    ? hash('sha256', s, 'buffer')
    : createHash('sha256').update(s, 'utf8').digest()
}

/** The SHA-256 of `s` in hex: crypto.hash's hex output costs a quarter of its Buffer output. */
function sha256Hex(s: string): string {
  return typeof hash === 'function'
    ? hash('sha256', s, 'hex')
    : createHash('sha256').update(s, 'utf8').digest('hex')
}

/** Verifies bearer tokens. Build it once with {@link createAuthenticator}. */
export interface Authenticator {
  /**
   * The principal of an `Authorization` header value.
   * @throws AuthError when it is missing, malformed, expired or unknown
   */
  authenticate(authorization: string | undefined): Promise<Principal>
}

/** True when `principal` may perform `action` on `instance`. */
export function allowed(principal: Principal, instance: string, action: string): boolean {
  if (principal.instances !== '*' && !principal.instances.has(instance)) return false
  for (const p of principal.actions) {
    if (p === '*' || p === action) return true
    if (p.endsWith('.*') && action.startsWith(p.slice(0, -1))) return true
  }
  return false
}

function instancesOf(v: unknown): '*' | ReadonlySet<string> | undefined {
  if (v === '*') return '*'
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return new Set(v)
  return undefined
}

function actionsOf(v: unknown): string[] | undefined {
  if (typeof v === 'string') return v.split(/\s+/).filter((x) => x.length > 0)
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v
  return undefined
}

/**
 * Builds the authenticator of `config`. With neither API keys nor JWT settings every request is refused.
 * @throws EngineError CONFIG_INVALID naming the setting at fault
 */
export function createAuthenticator(config: AuthConfig): Authenticator {
  const keys = new Map<string, { principal: Principal; digest: Buffer }>()
  for (const [i, k] of (config.apiKeys ?? []).entries()) {
    const digest =
      k.keySha256 !== undefined
        ? Buffer.from(k.keySha256, 'hex')
        : k.key !== undefined
          ? sha256(k.key)
          : undefined
    if (digest?.length !== 32) {
      throw new EngineError('CONFIG_INVALID', `auth.apiKeys[${i}]: needs key or a 64-hex-digit keySha256`)
    }
    if (k.key !== undefined && k.key.length < 16) {
      throw new EngineError('CONFIG_INVALID', `auth.apiKeys[${i}].key: must be at least 16 characters`)
    }
    const instances = instancesOf(k.instances)
    const actions = actionsOf(k.actions)
    if (instances === undefined || actions === undefined || typeof k.subject !== 'string') {
      throw new EngineError('CONFIG_INVALID', `auth.apiKeys[${i}]: needs subject, instances and actions`)
    }
    keys.set(digest.toString('hex'), {
      principal: { subject: k.subject, instances, actions, expiresAt: undefined },
      digest,
    })
  }
  const jwt = config.jwt === undefined ? undefined : jwtVerifier(config.jwt)
  // Verified JWTs are remembered (by digest) until they expire, so that a busy client pays for one
  // signature check, not one per request.
  const verified = new LRUCache<string, Principal>({ max: 10_000 })

  return {
    async authenticate(authorization) {
      if (authorization === undefined) throw new AuthError('missing Authorization header')
      const m = /^Bearer ([A-Za-z0-9._~+/=-]{1,8192})$/i.exec(authorization.trim())
      const token = m?.[1]
      if (token === undefined) throw new AuthError('Authorization is not a Bearer token')
      const hex = sha256Hex(token)
      const key = keys.get(hex)
      if (key !== undefined) {
        // The map lookup is by digest; compare the stored digest again in constant time for good measure.
        if (!timingSafeEqual(key.digest, Buffer.from(hex, 'hex'))) throw new AuthError('unknown API key')
        return key.principal
      }
      if (jwt === undefined || token.split('.').length !== 3) throw new AuthError('unknown API key')
      const now = Math.floor(Date.now() / 1000)
      const hit = verified.get(hex)
      if (hit !== undefined && (hit.expiresAt === undefined || hit.expiresAt > now)) return hit
      const p = await jwt(token)
      verified.set(hex, p)
      return p
    },
  }
}

const BASE64URL = /^[A-Za-z0-9_-]*$/

/**
 * True when `token` is three segments of canonical unpadded base64url: no `=`, `+`, `/` or whitespace, and
 * re-encoding the decoded bytes gives the same text (so no non-zero trailing bits and no impossible length).
 * jose's decoder is lenient; without this check one signed token has many accepted spellings.
 */
function canonicalCompact(token: string): boolean {
  const parts = token.split('.')
  if (parts.length !== 3) return false
  for (const p of parts) {
    if (!BASE64URL.test(p) || Buffer.from(p, 'base64url').toString('base64url') !== p) return false
  }
  return true
}

/** The NumericDate claim `claim` (RFC 7519 §2: here a non-negative safe integer), or undefined if absent. */
function numericDate(payload: JWTPayload, claim: 'exp' | 'iat' | 'nbf'): number | undefined {
  const v: unknown = payload[claim]
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new AuthError(`token ${claim} is not an integer NumericDate`)
  }
  return v
}

function jwtVerifier(c: JwtConfig): (token: string) => Promise<Principal> {
  const maxLifetime = c.maxLifetimeSec ?? DEFAULT_JWT_MAX_LIFETIME_S
  if (!Number.isInteger(maxLifetime) || maxLifetime < 1 || maxLifetime > MAX_JWT_LIFETIME_LIMIT_S) {
    throw new EngineError(
      'CONFIG_INVALID',
      `auth.jwt.maxLifetimeSec: must be an integer from 1 to ${MAX_JWT_LIFETIME_LIMIT_S} (seconds)`,
    )
  }
  const tolerance = c.clockToleranceSec ?? 30
  let secret: KeyObject | undefined
  const rawSecret =
    c.hs256Secret ??
    (c.hs256SecretFile === undefined
      ? undefined
      : readConfigFile(c.hs256SecretFile, 'jwt.hs256SecretFile').trim())
  if (rawSecret !== undefined) {
    if (Buffer.byteLength(rawSecret) < 32)
      throw new EngineError('CONFIG_INVALID', 'auth.jwt.hs256Secret: must be at least 32 bytes')
    secret = createSecretKey(Buffer.from(rawSecret, 'utf8'))
  }
  const publicKeys = (c.publicKeyFiles ?? []).map((f) => {
    try {
      return createPublicKey(readConfigFile(f, 'jwt.publicKeyFiles'))
    } catch (err) {
      if (err instanceof EngineError) throw err
      throw new EngineError('CONFIG_INVALID', `auth.jwt.publicKeyFiles: ${f} is not a PEM public key`, {
        cause: err,
      })
    }
  })
  let jwks: ReturnType<typeof createLocalJWKSet> | undefined
  if (c.jwksFile !== undefined) {
    try {
      jwks = createLocalJWKSet(JSON.parse(readConfigFile(c.jwksFile, 'jwt.jwksFile')) as JSONWebKeySet)
    } catch (err) {
      if (err instanceof EngineError) throw err
      throw new EngineError('CONFIG_INVALID', `auth.jwt.jwksFile: ${c.jwksFile} is not a JWKS document`, {
        cause: err,
      })
    }
  }
  if (secret === undefined && publicKeys.length === 0 && jwks === undefined) {
    throw new EngineError('CONFIG_INVALID', 'auth.jwt: needs hs256Secret, publicKeyFiles or jwksFile')
  }
  const options = {
    ...(c.issuer === undefined ? {} : { issuer: c.issuer }),
    ...(c.audience === undefined ? {} : { audience: c.audience }),
    clockTolerance: tolerance,
    requiredClaims: ['exp', 'sub'],
  }
  const instancesClaim = c.instancesClaim ?? 'instances'
  const actionsClaim = c.actionsClaim ?? 'actions'
  const toPrincipal = (payload: JWTPayload): Principal => {
    // jose accepts any JSON number (1e300, 1.5e9 + 0.5) for the NumericDates and sets no upper bound on exp.
    const exp = numericDate(payload, 'exp')
    const iat = numericDate(payload, 'iat')
    numericDate(payload, 'nbf')
    if (exp === undefined) throw new AuthError('token lacks exp')
    if (iat !== undefined && exp - iat > maxLifetime)
      throw new AuthError('token lifetime exceeds the maximum')
    if (exp - Math.floor(Date.now() / 1000) > maxLifetime + tolerance) {
      throw new AuthError('token expires beyond the maximum lifetime')
    }
    const instances = instancesOf(payload[instancesClaim])
    const actions = actionsOf(payload[actionsClaim])
    if (instances === undefined || actions === undefined || typeof payload.sub !== 'string') {
      throw new AuthError(`token lacks ${instancesClaim}/${actionsClaim}/sub claims`)
    }
    return { subject: payload.sub, instances, actions, expiresAt: exp }
  }
  return async (token) => {
    if (!canonicalCompact(token)) throw new AuthError('JWT rejected (non-canonical encoding)')
    const attempts: (() => Promise<{ payload: JWTPayload }>)[] = []
    if (secret !== undefined) {
      const s = secret
      attempts.push(() => jwtVerify(token, s, { ...options, algorithms: ['HS256'] }))
    }
    for (const k of publicKeys)
      attempts.push(() => jwtVerify(token, k, { ...options, algorithms: ['RS256', 'ES256'] }))
    if (jwks !== undefined) {
      const set = jwks
      attempts.push(() => jwtVerify(token, set, { ...options, algorithms: ['RS256', 'ES256'] }))
    }
    let last: unknown
    for (const attempt of attempts) {
      try {
        return toPrincipal((await attempt()).payload)
      } catch (err) {
        if (err instanceof AuthError) throw err
        last = err
      }
    }
    const code = typeof last === 'object' && last !== null && 'code' in last ? String(last.code) : 'invalid'
    throw new AuthError(`JWT rejected (${code})`)
  }
}

function readConfigFile(path: string, setting: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    throw new EngineError('CONFIG_INVALID', `auth.${setting}: cannot read ${path}`, { cause: err })
  }
}
