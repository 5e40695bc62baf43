/**
 * The Key Vault keys operations this listener serves: the path patterns, each with its IAM action and its
 * handler (one vault-key service call, the reply shaped by wire.ts). Matching is on raw path segments; an
 * empty version segment (`/keys/{name}/`, `/keys/{name}//encrypt`) means the latest version.
 */
import { SecretBytes } from '../../core/secret-bytes.js'
import type { VaultKeys } from '../../core/vault-keys/vault-keys.js'
import {
  attributesField,
  AzureError,
  badParameter,
  bytesField,
  keyBundle,
  keyItem,
  keyOpsField,
  operationResult,
  stringField,
  tagsField,
  type Json,
  type WireContext,
} from './wire.js'

/** What a handler is given. */
export interface OpContext {
  readonly vault: VaultKeys
  readonly instance: string
  readonly wire: WireContext
  /** The path parameters: `name`, `version` (possibly empty). */
  readonly params: Readonly<Record<string, string>>
  readonly query: URLSearchParams
  /** The parsed JSON body ({} when the route takes none). */
  readonly body: Json
  /** The api-version the client sent (echoed in nextLinks). */
  readonly apiVersion: string
  /** Largest page of a list (maxresults is capped to it). */
  readonly maxPage: number
}

/** A handler's answer: status (200, or 204 for purge) and JSON body. */
export interface OpResult {
  readonly status: 200 | 204
  readonly body: Json | undefined
}

export interface Route {
  readonly method: string
  /** Segments; `:name` / `:version` capture one (the version may be empty). */
  readonly pattern: readonly string[]
  /** The operation name (audit `operation`, IAM check). */
  readonly op: string
  readonly iam: string
  /** Whether the route reads a JSON body. */
  readonly body: boolean
  readonly handler: (c: OpContext) => Promise<OpResult>
}

const ok = (body: Json): OpResult => ({ status: 200, body })

function keySpec(b: Json): { kty: 'oct-HSM' | 'RSA-HSM'; size: number | undefined } {
  const kty = stringField(b, 'kty')
  if (kty !== 'oct-HSM' && kty !== 'RSA-HSM')
    throw badParameter(
      `kty: ${kty.slice(0, 20)} is not supported; this Managed-HSM-like vault makes oct-HSM and RSA-HSM keys`,
    )
  const size = b['key_size']
  if (size !== undefined && size !== null && (typeof size !== 'number' || !Number.isInteger(size)))
    throw badParameter('key_size: must be an integer')
  const exp = b['public_exponent']
  if (exp !== undefined && exp !== null && exp !== 65537)
    throw badParameter('public_exponent: only 65537 is supported')
  if (b['curve'] !== undefined && b['curve'] !== null) throw badParameter('curve: EC keys are not supported')
  return { kty, size: typeof size === 'number' ? size : undefined }
}

function attrsOf(b: Json): {
  keyOps: ReturnType<typeof keyOpsField>
  tags: ReturnType<typeof tagsField>
  enabled: boolean | undefined
  notBefore: number | undefined
  expires: number | undefined
} {
  const a = attributesField(b['attributes'])
  return {
    keyOps: keyOpsField(b['key_ops']),
    tags: tagsField(b['tags']),
    enabled: a.enabled,
    notBefore: a.notBefore ?? undefined,
    expires: a.expires ?? undefined,
  }
}

/** maxresults, 1 to the page cap (default 25, as Key Vault). */
function pageSize(c: OpContext): number {
  const raw = c.query.get('maxresults')
  if (raw === null || raw === '') return Math.min(25, c.maxPage)
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1 || n > c.maxPage)
    throw badParameter(`maxresults: must be 1 to ${c.maxPage}`)
  return n
}

function skipToken(c: OpContext): string | undefined {
  const t = c.query.get('$skiptoken')
  if (t === null || t === '') return undefined
  if (!/^[A-Za-z0-9_-]{1,400}$/.test(t)) throw badParameter('$skiptoken: is not a token this vault issued')
  return Buffer.from(t, 'base64url').toString('utf8')
}

function nextLink(c: OpContext, path: string, token: string | undefined, size: number): string | null {
  if (token === undefined) return null
  const q = new URLSearchParams({
    'api-version': c.apiVersion,
    $skiptoken: Buffer.from(token, 'utf8').toString('base64url'),
    maxresults: String(size),
  })
  return `${c.wire.origin}${path}?${q.toString()}`
}

async function listKeys(c: OpContext, deleted: boolean): Promise<OpResult> {
  const size = pageSize(c)
  const after = skipToken(c)
  const page = deleted
    ? await c.vault.listDeleted(c.instance, after, size + 1)
    : await c.vault.list(c.instance, after, size + 1)
  const more = page.length > size ? page[size - 1]?.key.name : undefined
  return ok({
    value: page.slice(0, size).map((v) => keyItem(c.wire, v, false)),
    nextLink: nextLink(c, deleted ? '/deletedkeys' : '/keys', more, size),
  })
}

async function updateKey(c: OpContext): Promise<OpResult> {
  const a = attributesField(c.body['attributes'])
  const keyOps = keyOpsField(c.body['key_ops'])
  const tags = tagsField(c.body['tags'])
  const view = await c.vault.update(c.instance, name(c), version(c), {
    ...(a.enabled === undefined ? {} : { enabled: a.enabled }),
    ...(a.notBefore === undefined ? {} : { notBefore: a.notBefore }),
    ...(a.expires === undefined ? {} : { expires: a.expires }),
    ...(keyOps === undefined ? {} : { keyOps }),
    ...(tags === undefined ? {} : { tags }),
  })
  return ok(keyBundle(c.wire, view))
}

const name = (c: OpContext): string => c.params['name'] ?? ''
const version = (c: OpContext): string | undefined => c.params['version'] || undefined

/** Every route. Order matters only where patterns overlap (none do by segment count and literals). */
export const ROUTES: readonly Route[] = [
  {
    method: 'GET',
    pattern: ['keys'],
    op: 'GetKeys',
    iam: 'kms.secrets.list',
    body: false,
    handler: (c) => listKeys(c, false),
  },
  {
    method: 'GET',
    pattern: ['deletedkeys'],
    op: 'GetDeletedKeys',
    iam: 'kms.secrets.list',
    body: false,
    handler: (c) => listKeys(c, true),
  },
  {
    method: 'POST',
    pattern: ['keys', ':name', 'create'],
    op: 'CreateKey',
    iam: 'kms.secrets.create',
    body: true,
    handler: async (c) => {
      const spec = keySpec(c.body)
      return ok(keyBundle(c.wire, await c.vault.create(c.instance, name(c), { ...spec, ...attrsOf(c.body) })))
    },
  },
  {
    method: 'PUT',
    pattern: ['keys', ':name'],
    op: 'ImportKey',
    iam: 'kms.secrets.import',
    body: true,
    handler: async (c) => {
      const key = c.body['key']
      if (typeof key !== 'object' || key === null || Array.isArray(key))
        throw badParameter('key: is required (a JWK)')
      const jwk = key as Json
      const kty = jwk['kty']
      if (kty !== 'oct-HSM' && !(kty === 'oct' && c.body['Hsm'] === true))
        throw badParameter('key.kty: only oct-HSM keys (or oct with "Hsm": true) can be imported')
      const material = SecretBytes.adopt(bytesField(jwk, 'k', true))
      try {
        const attrs = attrsOf(c.body)
        const view = await c.vault.importKey(c.instance, name(c), material, {
          ...attrs,
          keyOps: keyOpsField(jwk['key_ops']) ?? attrs.keyOps,
        })
        return ok(keyBundle(c.wire, view))
      } finally {
        material.zeroize()
      }
    },
  },
  {
    method: 'POST',
    pattern: ['keys', ':name', 'rotate'],
    op: 'RotateKey',
    iam: 'kms.secrets.rotate',
    body: false,
    handler: async (c) => ok(keyBundle(c.wire, await c.vault.rotate(c.instance, name(c)))),
  },
  {
    method: 'GET',
    pattern: ['keys', ':name', 'versions'],
    op: 'GetKeyVersions',
    iam: 'kms.secrets.listkeyversions',
    body: false,
    handler: async (c) => {
      const size = pageSize(c)
      const token = skipToken(c)
      const after = token === undefined ? 0 : Number(token)
      if (!Number.isSafeInteger(after) || after < 0)
        throw badParameter('$skiptoken: is not a token this vault issued')
      const page = await c.vault.listVersions(c.instance, name(c), after, size + 1)
      const more = page.length > size ? String(page[size - 1]?.version.seq) : undefined
      return ok({
        value: page.slice(0, size).map((v) => keyItem(c.wire, v, true)),
        nextLink: nextLink(c, `/keys/${encodeURIComponent(name(c))}/versions`, more, size),
      })
    },
  },
  {
    method: 'GET',
    pattern: ['keys', ':name'],
    op: 'GetKey',
    iam: 'kms.secrets.read',
    body: false,
    handler: async (c) => ok(keyBundle(c.wire, await c.vault.get(c.instance, name(c)))),
  },
  {
    method: 'GET',
    pattern: ['keys', ':name', ':version'],
    op: 'GetKey',
    iam: 'kms.secrets.read',
    body: false,
    handler: async (c) => ok(keyBundle(c.wire, await c.vault.get(c.instance, name(c), version(c)))),
  },
  {
    method: 'PATCH',
    pattern: ['keys', ':name', ':version'],
    op: 'UpdateKey',
    iam: 'kms.secrets.patch',
    body: true,
    handler: (c) => updateKey(c),
  },
  {
    method: 'PATCH',
    pattern: ['keys', ':name'],
    op: 'UpdateKey',
    iam: 'kms.secrets.patch',
    body: true,
    handler: (c) => updateKey(c),
  },
  {
    method: 'DELETE',
    pattern: ['keys', ':name'],
    op: 'DeleteKey',
    iam: 'kms.secrets.delete',
    body: false,
    handler: async (c) => ok(keyBundle(c.wire, await c.vault.delete(c.instance, name(c)))),
  },
  {
    method: 'GET',
    pattern: ['deletedkeys', ':name'],
    op: 'GetDeletedKey',
    iam: 'kms.secrets.read',
    body: false,
    handler: async (c) => ok(keyBundle(c.wire, await c.vault.getDeleted(c.instance, name(c)))),
  },
  {
    method: 'POST',
    pattern: ['deletedkeys', ':name', 'recover'],
    op: 'RecoverDeletedKey',
    iam: 'kms.secrets.restore',
    body: false,
    handler: async (c) => ok(keyBundle(c.wire, await c.vault.recover(c.instance, name(c)))),
  },
  {
    method: 'DELETE',
    pattern: ['deletedkeys', ':name'],
    op: 'PurgeDeletedKey',
    iam: 'kms.secrets.purge',
    body: false,
    handler: async (c) => {
      await c.vault.purge(c.instance, name(c))
      return { status: 204, body: undefined }
    },
  },
  {
    method: 'POST',
    pattern: ['keys', ':name', ':version', 'encrypt'],
    op: 'Encrypt',
    iam: 'kms.secrets.wrap',
    body: true,
    handler: async (c) => {
      if (c.body['iv'] !== undefined && c.body['iv'] !== null)
        throw badParameter('iv: the HSM makes the IV of an encryption; send none')
      const aad = bytesField(c.body, 'aad')
      const r = await c.vault.encrypt(c.instance, name(c), version(c), {
        alg: stringField(c.body, 'alg'),
        plaintext: bytesField(c.body, 'value', true),
        aad,
      })
      return ok(operationResult(c.wire, r.version, r.ciphertext, { iv: r.iv, tag: r.tag, aad }))
    },
  },
  {
    method: 'POST',
    pattern: ['keys', ':name', ':version', 'decrypt'],
    op: 'Decrypt',
    iam: 'kms.secrets.unwrap',
    body: true,
    handler: async (c) => {
      const r = await c.vault.decrypt(c.instance, name(c), version(c), {
        alg: stringField(c.body, 'alg'),
        ciphertext: bytesField(c.body, 'value', true),
        iv: bytesField(c.body, 'iv'),
        tag: bytesField(c.body, 'tag'),
        aad: bytesField(c.body, 'aad'),
      })
      try {
        return ok(operationResult(c.wire, r.version, r.plaintext.bytes))
      } finally {
        r.plaintext.zeroize()
      }
    },
  },
  {
    method: 'POST',
    pattern: ['keys', ':name', ':version', 'wrapkey'],
    op: 'WrapKey',
    iam: 'kms.secrets.wrap',
    body: true,
    handler: async (c) => {
      const key = SecretBytes.adopt(bytesField(c.body, 'value', true))
      try {
        const r = await c.vault.wrapKey(c.instance, name(c), version(c), {
          alg: stringField(c.body, 'alg'),
          key,
        })
        return ok(operationResult(c.wire, r.version, r.wrapped))
      } finally {
        key.zeroize()
      }
    },
  },
  {
    method: 'POST',
    pattern: ['keys', ':name', ':version', 'unwrapkey'],
    op: 'UnwrapKey',
    iam: 'kms.secrets.unwrap',
    body: true,
    handler: async (c) => {
      const r = await c.vault.unwrapKey(c.instance, name(c), version(c), {
        alg: stringField(c.body, 'alg'),
        wrapped: bytesField(c.body, 'value', true),
      })
      try {
        return ok(operationResult(c.wire, r.version, r.key.bytes))
      } finally {
        r.key.zeroize()
      }
    },
  },
]

/**
 * The route of `method` and the path's segments, with its parameters; undefined when none matches.
 * @throws AzureError BadParameter when a segment is not valid percent-encoding
 */
export function matchRoute(
  method: string,
  segments: readonly string[],
): { route: Route; params: Record<string, string> } | undefined {
  for (const route of ROUTES) {
    if (route.method !== method || route.pattern.length !== segments.length) continue
    const params: Record<string, string> = {}
    let hit = true
    for (const [i, p] of route.pattern.entries()) {
      const s = segments[i] ?? ''
      if (p.startsWith(':')) {
        let v: string
        try {
          v = decodeURIComponent(s)
        } catch {
          throw new AzureError(400, 'BadParameter', 'the path is not valid percent-encoding')
        }
        if (p === ':name' && v === '') {
          hit = false
          break
        }
        params[p.slice(1)] = v
      } else if (s.toLowerCase() !== p) {
        hit = false
        break
      }
    }
    if (hit) return { route, params }
  }
  return undefined
}
