/**
 * The only file that loads `@azure/keyvault-keys` and `@azure/identity`, and only when a provider is built:
 * both are optional peer dependencies, so importing `envelope-kms/providers/azure-kv` works without them and
 * a missing one is a typed error naming the package to install. `@azure/identity` is loaded only for the
 * credentials that need it (client secret, managed identity); a static token needs no package of its own.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type * as KeysSdk from '@azure/keyvault-keys'
import type * as IdentitySdk from '@azure/identity'
import { EngineError } from '../../core/errors.js'

const KEYS_PACKAGE = '@azure/keyvault-keys'
const IDENTITY_PACKAGE = '@azure/identity'

let keysSdk: typeof KeysSdk | undefined
let identitySdk: typeof IdentitySdk | undefined

function load(name: string): unknown {
  try {
    return createRequire(import.meta.url)(name)
  } catch (err) {
    const missing = (err as { code?: unknown }).code === 'MODULE_NOT_FOUND'
    throw new EngineError(
      'PROVIDER_MODULE_LOAD_FAILED',
      missing
        ? `azure-kv: the optional dependency ${name} is not installed (npm install ${name})`
        : `azure-kv: ${name} could not be loaded`,
      { cause: err },
    )
  }
}

/** `@azure/keyvault-keys`, loaded once (synchronously, as the AWS SDK and pkcs11js are). */
export function loadKeysSdk(): typeof KeysSdk {
  keysSdk ??= load(KEYS_PACKAGE) as typeof KeysSdk
  return keysSdk
}

function loadIdentitySdk(): typeof IdentitySdk {
  identitySdk ??= load(IDENTITY_PACKAGE) as typeof IdentitySdk
  return identitySdk
}

/** The `TokenCredential` of `@azure/core-auth`, as the Key Vault client takes it (any `@azure/identity` credential). */
export type AzureTokenCredential = ConstructorParameters<typeof KeysSdk.KeyClient>[1]

/** An access token as `@azure/core-auth` defines it. */
export type AzureAccessToken = NonNullable<Awaited<ReturnType<AzureTokenCredential['getToken']>>>

/**
 * Where the provider's access tokens come from. Secrets (client secret, token) are never logged nor put in
 * error messages.
 */
export type AzureKvCredential =
  /** A Microsoft Entra application with a client secret (`ClientSecretCredential` of `@azure/identity`). */
  | {
      readonly kind: 'client-secret'
      readonly tenantId: string
      readonly clientId: string
      readonly clientSecret: string
      /** The Entra authority host (default: the public cloud's). */
      readonly authorityHost?: string | undefined
    }
  /** The managed identity of the Azure host (`ManagedIdentityCredential`); `clientId` for a user-assigned one. */
  | { readonly kind: 'managed-identity'; readonly clientId?: string | undefined }
  /**
   * A bearer token given as a string, or read from a file on every request for a token (so that an outside
   * process can renew the file). Meant for short-lived tokens handed in by a platform, and for tests.
   */
  | { readonly kind: 'static-token'; readonly token: string }
  | { readonly kind: 'static-token'; readonly tokenFile: string }
  /** Any `TokenCredential` built by the caller (`DefaultAzureCredential`, a workload identity, ...). */
  | { readonly kind: 'token-credential'; readonly credential: AzureTokenCredential }

/** How long a static token is claimed to last (the SDK refreshes a token some minutes before it expires). */
const STATIC_TOKEN_LIFETIME_MS = 60 * 60 * 1000

/** A credential handing out a fixed token, or the current content of a token file or secret source. */
class StaticTokenCredential implements AzureTokenCredential {
  readonly #token: () => string | Promise<string>
  constructor(token: () => string | Promise<string>) {
    this.#token = token
  }
  async getToken(): Promise<AzureAccessToken> {
    return { token: await this.#token(), expiresOnTimestamp: Date.now() + STATIC_TOKEN_LIFETIME_MS }
  }
}

/**
 * A credential whose bearer token is `read()` again on every token request (the SDK asks when its cached
 * token nears the claimed one-hour lifetime, and after a 401 challenge). An empty token or a failing read is
 * PROVIDER_LOGIN_FAILED, the read's own error kept as cause; the token never enters a message.
 */
export function readTokenCredential(read: () => Promise<string>): AzureTokenCredential {
  return new StaticTokenCredential(async () => {
    let token: string
    try {
      token = (await read()).trim()
    } catch (err) {
      throw new EngineError('PROVIDER_LOGIN_FAILED', 'azure-kv: the token source cannot be read', {
        cause: err,
      })
    }
    if (token === '') throw new EngineError('PROVIDER_LOGIN_FAILED', 'azure-kv: the token source is empty')
    return token
  })
}

function nonEmpty(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.trim() === '')
    throw new EngineError('CONFIG_INVALID', `azure-kv: credential.${what} must be a non-empty string`)
  return v
}

/**
 * Builds the `TokenCredential` of a credential configuration.
 * @throws EngineError CONFIG_INVALID (a field), PROVIDER_MODULE_LOAD_FAILED (`@azure/identity` missing)
 */
export function buildCredential(c: AzureKvCredential): AzureTokenCredential {
  switch (c.kind) {
    case 'client-secret': {
      const { ClientSecretCredential } = loadIdentitySdk()
      return new ClientSecretCredential(
        nonEmpty(c.tenantId, 'tenantId'),
        nonEmpty(c.clientId, 'clientId'),
        nonEmpty(c.clientSecret, 'clientSecret'),
        c.authorityHost === undefined ? {} : { authorityHost: c.authorityHost },
      )
    }
    case 'managed-identity': {
      const { ManagedIdentityCredential } = loadIdentitySdk()
      return c.clientId === undefined
        ? new ManagedIdentityCredential()
        : new ManagedIdentityCredential({ clientId: nonEmpty(c.clientId, 'clientId') })
    }
    case 'static-token': {
      if ('tokenFile' in c) {
        const file = nonEmpty(c.tokenFile, 'tokenFile')
        return new StaticTokenCredential(() => {
          let token: string
          try {
            token = readFileSync(file, 'utf8').trim()
          } catch (err) {
            throw new EngineError('PROVIDER_LOGIN_FAILED', 'azure-kv: the token file cannot be read', {
              cause: err,
            })
          }
          if (token === '')
            throw new EngineError('PROVIDER_LOGIN_FAILED', 'azure-kv: the token file is empty')
          return token
        })
      }
      const token = nonEmpty(c.token, 'token').trim()
      return new StaticTokenCredential(() => token)
    }
    case 'token-credential':
      if (typeof c.credential?.getToken !== 'function')
        throw new EngineError('CONFIG_INVALID', 'azure-kv: credential.credential must be a TokenCredential')
      return c.credential
    default:
      throw new EngineError(
        'CONFIG_INVALID',
        'azure-kv: credential.kind must be client-secret, managed-identity, static-token or token-credential',
      )
  }
}
