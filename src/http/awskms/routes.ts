/**
 * An AWS-KMS-compatible endpoint over the engine (AWS JSON 1.1: `POST /`, `X-Amz-Target:
 * TrentService.<Operation>`, `application/x-amz-json-1.1`), so that any AWS SDK can use keys held in the
 * engine's HSM. Requests are SigV4-verified against configured access keys; each access key acts for one
 * engine instance (tenant). This layer only translates: key rules live in the engine.
 */
import { Hono, type Context } from 'hono'
import type { Logger } from 'pino'
import { parseCiphertext } from '../../core/ciphertext.js'
import type { EnvelopeEngine } from '../../core/engine.js'
import { EngineError, invalidField, isEngineError } from '../../core/errors.js'
import { AWS_KMS_ERRORS, clientMessage } from '../errors.js'
import { SigV4Error, verifySigV4, type AwsKmsCredential } from './sigv4.js'
import {
  accountIdOf,
  aliasArn,
  blobOf,
  contextToAad,
  intOf,
  keyArn,
  keyMetadata,
  monthsOfDays,
  parseKeyRef,
  seconds,
  validateAliasName,
  type Scope,
} from './translate.js'

/** Options of {@link createAwsKmsApp}. */
export interface AwsKmsAppOptions {
  /** The engine whose keys the endpoint serves. Give it `lifecycle: { enableCooldownMs: 0 }` for AWS semantics. */
  readonly engine: EnvelopeEngine
  /** Accepted access keys; each acts for one engine instance (tenant). */
  readonly credentials: readonly AwsKmsCredential[]
  /** The region this endpoint answers for (signatures must be scoped to it; ARNs carry it). */
  readonly region: string
  /** Time source for the signature clock-skew check (default Date.now). */
  readonly clock?: { now(): number }
  /** Largest accepted signature clock skew (default 5 minutes, as AWS). */
  readonly maxSkewMs?: number
  /** Largest request body in bytes (default 64 KiB). */
  readonly maxBodyBytes?: number
  /** Request log (operation, status, error type; never bodies, keys or signatures). */
  readonly logger?: Pick<Logger, 'info' | 'warn' | 'error'>
  /**
   * Admission control: called for every authenticated request before it runs; returning true answers
   * `ThrottlingException` without running it (rate limiting, or fault injection in tests).
   */
  readonly throttle?: (operation: string, instance: string) => boolean
}

type Json = Record<string, unknown>
type Handler = (ctx: OpContext, body: Json) => Promise<Json>

interface OpContext extends Scope {
  readonly engine: EnvelopeEngine
}

class AwsError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status: number = 400,
  ) {
    super(message)
  }
}

const CONTENT_TYPE = 'application/x-amz-json-1.1'
const MAX_PLAINTEXT = 4096
const MAX_CIPHERTEXT = 6144

async function keyIdOf(c: OpContext, v: unknown, field = 'KeyId'): Promise<string> {
  const ref = parseKeyRef(c, v, field)
  if ('id' in ref) return ref.id
  try {
    return await c.engine.resolveAliasName(c.instance, ref.alias)
  } catch (err) {
    if (isEngineError(err, 'ALIAS_NOT_FOUND_ERR')) {
      throw new EngineError('KEY_NOT_FOUND_ERR', `Alias '${ref.alias}' is not found.`)
    }
    throw err
  }
}

/** AWS tells a disabled key (DisabledException) from other states (KMSInvalidStateException). */
async function stateError(c: OpContext, keyId: string, err: unknown): Promise<never> {
  if (isEngineError(err, 'KEY_ACTION_INVALID_STATE_ERR')) {
    const k = await c.engine.getKey(c.instance, keyId).catch(() => undefined)
    const pending = await c.engine.getKeyDeletionDate(c.instance, keyId).catch(() => undefined)
    if (k?.state === 2 && pending === undefined)
      throw new AwsError('DisabledException', `${keyArn(c, keyId)} is disabled.`)
    if (pending !== undefined)
      throw new AwsError('KMSInvalidStateException', `${keyArn(c, keyId)} is pending deletion.`)
  }
  throw err
}

function onlyValue(v: unknown, allowed: readonly string[], field: string): void {
  if (v !== undefined && v !== null && !allowed.includes(v as string)) {
    throw new AwsError(
      'UnsupportedOperationException',
      `${field} ${JSON.stringify(v)} is not supported by this endpoint`,
    )
  }
}

function tagPairsOf(tags: unknown): { key: string; value: string }[] {
  if (tags === undefined || tags === null) return []
  if (!Array.isArray(tags)) throw invalidField('Tags', 'must be a list of {TagKey, TagValue}')
  return tags.map((t: unknown) => {
    const o = t as { TagKey?: unknown; TagValue?: unknown } | null
    if (
      typeof o !== 'object' ||
      o === null ||
      typeof o.TagKey !== 'string' ||
      typeof o.TagValue !== 'string'
    ) {
      throw invalidField('Tags', 'each tag must be {TagKey: string, TagValue: string}')
    }
    return { key: o.TagKey, value: o.TagValue }
  })
}

function markerOf(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string' || !/^[A-Za-z0-9_-]{1,1400}$/.test(v))
    throw invalidField('Marker', 'is not a marker this endpoint issued')
  return Buffer.from(v, 'base64url').toString('utf8')
}
const marker = (s: string): string => Buffer.from(s, 'utf8').toString('base64url')

async function dataKey(c: OpContext, b: Json, withPlaintext: boolean): Promise<Json> {
  const keyId = await keyIdOf(c, b['KeyId'])
  const aad = contextToAad(b['EncryptionContext'])
  if (b['KeySpec'] !== undefined && b['NumberOfBytes'] !== undefined) {
    throw invalidField('KeySpec', 'give KeySpec or NumberOfBytes, not both')
  }
  let n: number
  if (b['KeySpec'] === 'AES_256') n = 32
  else if (b['KeySpec'] === 'AES_128') n = 16
  else if (b['KeySpec'] !== undefined) throw invalidField('KeySpec', 'must be AES_256 or AES_128')
  else if (b['NumberOfBytes'] !== undefined) n = intOf(b['NumberOfBytes'], 'NumberOfBytes', 1, 1024, 32)
  else throw invalidField('KeySpec', 'KeySpec or NumberOfBytes is required')
  let plaintext: Buffer | undefined
  try {
    const w =
      n === 32
        ? await c.engine.wrap(c.instance, keyId, { aad })
        : await c.engine.wrap(c.instance, keyId, {
            aad,
            plaintext: (plaintext = await c.engine.generateRandom(n)),
          })
    plaintext ??= w.plaintext
    return {
      CiphertextBlob: w.ciphertext,
      ...(withPlaintext ? { Plaintext: plaintext?.toString('base64') } : {}),
      KeyId: keyArn(c, keyId),
    }
  } catch (err) {
    return await stateError(c, keyId, err)
  } finally {
    plaintext?.fill(0)
  }
}

const OPERATIONS: Readonly<Record<string, Handler>> = {
  async CreateKey(c, b) {
    onlyValue(b['KeyUsage'], ['ENCRYPT_DECRYPT'], 'KeyUsage')
    onlyValue(b['KeySpec'], ['SYMMETRIC_DEFAULT'], 'KeySpec')
    onlyValue(b['CustomerMasterKeySpec'], ['SYMMETRIC_DEFAULT'], 'CustomerMasterKeySpec')
    onlyValue(b['Origin'], ['AWS_KMS'], 'Origin')
    if (b['MultiRegion'] === true)
      throw new AwsError(
        'UnsupportedOperationException',
        'MultiRegion keys are not supported; endpoints sharing one engine serve every key in their regions',
      )
    if (b['Policy'] !== undefined)
      throw new AwsError(
        'UnsupportedOperationException',
        'key policies are not supported; access is per access key and tenant',
      )
    const tags = tagPairsOf(b['Tags'])
    const description = b['Description']
    if (description !== undefined && typeof description !== 'string')
      throw invalidField('Description', 'must be a string')
    const k = await c.engine.createKey(c.instance, {
      name: 'aws-kms-key',
      ...(description === undefined || description === '' ? {} : { description }),
    })
    if (tags.length > 0) await c.engine.tagKey(c.instance, k.id, tags)
    return { KeyMetadata: keyMetadata(c, k, undefined) }
  },

  async DescribeKey(c, b) {
    const id = await keyIdOf(c, b['KeyId'])
    const k = await c.engine.getKey(c.instance, id)
    if (k.extractable) throw new EngineError('KEY_NOT_FOUND_ERR', 'Key does not exist')
    return { KeyMetadata: keyMetadata(c, k, await c.engine.getKeyDeletionDate(c.instance, id)) }
  },

  async ListKeys(c, b) {
    const limit = intOf(b['Limit'], 'Limit', 1, 1000, 100)
    const offset = Number(markerOf(b['Marker']) ?? '0')
    if (!Number.isSafeInteger(offset) || offset < 0)
      throw invalidField('Marker', 'is not a marker this endpoint issued')
    const { keys, total } = await c.engine.listKeys(c.instance, {
      limit,
      offset,
      extractable: false,
      states: [0, 1, 2, 3],
    })
    const next = offset + keys.length
    return {
      Keys: keys.map((k) => ({ KeyId: k.id, KeyArn: keyArn(c, k.id) })),
      Truncated: next < total,
      ...(next < total ? { NextMarker: marker(String(next)) } : {}),
    }
  },

  async CreateAlias(c, b) {
    const name = validateAliasName(b['AliasName'])
    const target = parseKeyRef(c, b['TargetKeyId'], 'TargetKeyId')
    if (!('id' in target)) throw invalidField('TargetKeyId', 'must be a key id or key ARN, not an alias')
    await c.engine.createAliasName(c.instance, name, target.id)
    return {}
  },

  async DeleteAlias(c, b) {
    await c.engine.deleteAliasName(c.instance, validateAliasName(b['AliasName']))
    return {}
  },

  async ListAliases(c, b) {
    const limit = intOf(b['Limit'], 'Limit', 1, 100, 50)
    const keyId = b['KeyId'] === undefined ? undefined : await keyIdOf(c, b['KeyId'])
    const after = markerOf(b['Marker'])
    const { aliases, more } = await c.engine.listAliasNames(c.instance, {
      limit,
      ...(keyId === undefined ? {} : { keyId }),
      ...(after === undefined ? {} : { after }),
    })
    const last = aliases.at(-1)
    return {
      Aliases: aliases.map((a) => ({
        AliasName: a.name,
        AliasArn: aliasArn(c, a.name),
        TargetKeyId: a.keyId,
        CreationDate: seconds(a.createdAt),
        LastUpdatedDate: seconds(a.updatedAt),
      })),
      Truncated: more,
      ...(more && last !== undefined ? { NextMarker: marker(last.name) } : {}),
    }
  },

  async Encrypt(c, b) {
    onlyValue(b['EncryptionAlgorithm'], ['SYMMETRIC_DEFAULT'], 'EncryptionAlgorithm')
    const keyId = await keyIdOf(c, b['KeyId'])
    const plaintext = blobOf(b['Plaintext'], 'Plaintext', 1, MAX_PLAINTEXT)
    try {
      const w = await c.engine.wrap(c.instance, keyId, {
        plaintext,
        aad: contextToAad(b['EncryptionContext']),
      })
      return {
        CiphertextBlob: w.ciphertext,
        KeyId: keyArn(c, keyId),
        EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      }
    } catch (err) {
      return await stateError(c, keyId, err)
    } finally {
      plaintext.fill(0)
    }
  },

  async Decrypt(c, b) {
    onlyValue(b['EncryptionAlgorithm'], ['SYMMETRIC_DEFAULT'], 'EncryptionAlgorithm')
    const blob = blobOf(b['CiphertextBlob'], 'CiphertextBlob', 1, MAX_CIPHERTEXT)
    const blobKey = parseCiphertext(blob).keyId
    if (b['KeyId'] !== undefined && b['KeyId'] !== null) {
      const given = await keyIdOf(c, b['KeyId'])
      if (given !== blobKey)
        throw new AwsError(
          'IncorrectKeyException',
          'The key ID in the request does not identify the key that encrypted the ciphertext.',
        )
    }
    try {
      const u = await c.engine.unwrap(c.instance, blobKey, blob, {
        aad: contextToAad(b['EncryptionContext']),
      })
      try {
        return {
          KeyId: keyArn(c, blobKey),
          Plaintext: u.plaintext.toString('base64'),
          EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
        }
      } finally {
        u.plaintext.fill(0)
      }
    } catch (err) {
      return await stateError(c, blobKey, err)
    }
  },

  async ReEncrypt(c, b) {
    onlyValue(b['SourceEncryptionAlgorithm'], ['SYMMETRIC_DEFAULT'], 'SourceEncryptionAlgorithm')
    onlyValue(b['DestinationEncryptionAlgorithm'], ['SYMMETRIC_DEFAULT'], 'DestinationEncryptionAlgorithm')
    const blob = blobOf(b['CiphertextBlob'], 'CiphertextBlob', 1, MAX_CIPHERTEXT)
    const blobKey = parseCiphertext(blob).keyId
    if (b['SourceKeyId'] !== undefined && b['SourceKeyId'] !== null) {
      if ((await keyIdOf(c, b['SourceKeyId'], 'SourceKeyId')) !== blobKey) {
        throw new AwsError(
          'IncorrectKeyException',
          'The source key ID does not identify the key that encrypted the ciphertext.',
        )
      }
    }
    const dest = await keyIdOf(c, b['DestinationKeyId'], 'DestinationKeyId')
    try {
      const r = await c.engine.reencrypt(c.instance, blob, {
        sourceKeyId: blobKey,
        sourceAad: contextToAad(b['SourceEncryptionContext'], 'SourceEncryptionContext'),
        destinationKeyId: dest,
        destinationAad: contextToAad(b['DestinationEncryptionContext'], 'DestinationEncryptionContext'),
      })
      return {
        CiphertextBlob: r.ciphertext,
        SourceKeyId: keyArn(c, r.sourceKeyId),
        KeyId: keyArn(c, r.keyId),
        SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
        DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      }
    } catch (err) {
      try {
        await stateError(c, blobKey, err)
      } catch (e) {
        if (e !== err) throw e
      }
      return await stateError(c, dest, err)
    }
  },

  GenerateDataKey: (c, b) => dataKey(c, b, true),
  GenerateDataKeyWithoutPlaintext: (c, b) => dataKey(c, b, false),

  async GenerateRandom(c, b) {
    const n = intOf(b['NumberOfBytes'], 'NumberOfBytes', 1, 1024, 32)
    const r = await c.engine.generateRandom(n)
    try {
      return { Plaintext: r.toString('base64') }
    } finally {
      r.fill(0)
    }
  },

  async EnableKey(c, b) {
    const id = await keyIdOf(c, b['KeyId'])
    if ((await c.engine.getKey(c.instance, id)).state !== 1) await c.engine.enable(c.instance, id)
    return {}
  },

  async DisableKey(c, b) {
    const id = await keyIdOf(c, b['KeyId'])
    if ((await c.engine.getKey(c.instance, id)).state !== 2) await c.engine.disable(c.instance, id)
    return {}
  },

  async ScheduleKeyDeletion(c, b) {
    const id = await keyIdOf(c, b['KeyId'])
    const days = intOf(b['PendingWindowInDays'], 'PendingWindowInDays', 7, 30, 30)
    const { deletionDate } = await c.engine.scheduleKeyDeletion(c.instance, id, { pendingWindowDays: days })
    return {
      KeyId: keyArn(c, id),
      DeletionDate: seconds(deletionDate),
      KeyState: 'PendingDeletion',
      PendingWindowInDays: days,
    }
  },

  async CancelKeyDeletion(c, b) {
    const id = await keyIdOf(c, b['KeyId'])
    await c.engine.cancelKeyDeletion(c.instance, id)
    return { KeyId: keyArn(c, id) }
  },

  async EnableKeyRotation(c, b) {
    const id = await keyIdOf(c, b['KeyId'])
    const days = intOf(b['RotationPeriodInDays'], 'RotationPeriodInDays', 90, 2560, 365)
    await c.engine.setKeyPolicies(c.instance, id, {
      rotation: { enabled: true, intervalMonth: monthsOfDays(days) },
    })
    return {}
  },

  async DisableKeyRotation(c, b) {
    const id = await keyIdOf(c, b['KeyId'])
    await c.engine.setKeyPolicies(c.instance, id, { rotation: { enabled: false } })
    return {}
  },

  async GetKeyRotationStatus(c, b) {
    const id = await keyIdOf(c, b['KeyId'])
    const k = await c.engine.getKey(c.instance, id)
    const r = k.rotation
    const enabled = r?.enabled === true
    const months = r?.intervalMonth
    const from = (k.lastRotatedAt ?? k.createdAt).getTime()
    return {
      KeyId: keyArn(c, id),
      KeyRotationEnabled: enabled,
      ...(enabled && months !== undefined
        ? { RotationPeriodInDays: months * 30, NextRotationDate: (from + months * 30 * 86_400_000) / 1000 }
        : {}),
    }
  },

  async RotateKeyOnDemand(c, b) {
    const id = await keyIdOf(c, b['KeyId'])
    try {
      await c.engine.rotate(c.instance, id)
    } catch (err) {
      return await stateError(c, id, err)
    }
    return { KeyId: keyArn(c, id) }
  },

  async TagResource(c, b) {
    const id = await keyIdOf(c, b['KeyId'])
    await c.engine.tagKey(c.instance, id, tagPairsOf(b['Tags']))
    return {}
  },

  async UntagResource(c, b) {
    const id = await keyIdOf(c, b['KeyId'])
    const keys = b['TagKeys']
    if (!Array.isArray(keys)) throw invalidField('TagKeys', 'must be a list of strings')
    await c.engine.untagKey(c.instance, id, keys as string[])
    return {}
  },

  async ListResourceTags(c, b) {
    const id = await keyIdOf(c, b['KeyId'])
    const limit = intOf(b['Limit'], 'Limit', 1, 50, 50)
    const after = markerOf(b['Marker'])
    const all = await c.engine.listKeyTags(c.instance, id)
    const rest = after === undefined ? all : all.filter((t) => t.key > after)
    const page = rest.slice(0, limit)
    const more = rest.length > limit
    const last = page.at(-1)
    return {
      Tags: page.map((t) => ({ TagKey: t.key, TagValue: t.value })),
      Truncated: more,
      ...(more && last !== undefined ? { NextMarker: marker(last.key) } : {}),
    }
  },
}

/** The operations this endpoint implements (`TrentService.<name>`). */
export const AWS_KMS_OPERATIONS: readonly string[] = Object.keys(OPERATIONS)

function reply(c: Context, status: number, body: Json): Response {
  return c.body(JSON.stringify(body), status as 200, { 'content-type': CONTENT_TYPE })
}

/**
 * Builds the AWS-KMS-compatible Hono app. Mount it at the root of its own listener (AWS SDKs post to
 * `/`), e.g. `serve({ fetch: createAwsKmsApp(options).fetch, port })`.
 */
export function createAwsKmsApp(options: AwsKmsAppOptions): Hono {
  const credentials = new Map<string, AwsKmsCredential>()
  for (const cr of options.credentials) {
    if (credentials.has(cr.accessKeyId))
      throw new EngineError('CONFIG_INVALID', `credentials: access key ${cr.accessKeyId} repeats`)
    if (cr.accountId !== undefined && !/^\d{12}$/.test(cr.accountId))
      throw new EngineError('CONFIG_INVALID', 'credentials[].accountId: must be 12 digits')
    credentials.set(cr.accessKeyId, cr)
  }
  if (!/^[a-z0-9-]{1,64}$/.test(options.region))
    throw new EngineError('CONFIG_INVALID', 'region: must be a region name')
  const clock = options.clock ?? { now: () => Date.now() }
  const maxSkewMs = options.maxSkewMs ?? 5 * 60_000
  const maxBody = options.maxBodyBytes ?? 64 * 1024
  const log = options.logger
  const app = new Hono()

  app.post('/', async (c) => {
    const target = c.req.header('x-amz-target') ?? ''
    const op = target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : ''
    let status = 200
    let type: string | undefined
    try {
      const declared = Number(c.req.header('content-length') ?? '0')
      if (declared > maxBody)
        throw new AwsError('RequestEntityTooLargeException', `request body exceeds ${maxBody} bytes`, 413)
      const raw = await c.req.arrayBuffer()
      if (raw.byteLength > maxBody)
        throw new AwsError('RequestEntityTooLargeException', `request body exceeds ${maxBody} bytes`, 413)
      const body = Buffer.from(raw).toString('utf8')
      const url = new URL(c.req.url)
      const headers = new Map<string, string>()
      c.req.raw.headers.forEach((v, k) => headers.set(k.toLowerCase(), v))
      const cred = await verifySigV4(
        { method: 'POST', path: url.pathname, query: url.searchParams, headers, body },
        { credentials, region: options.region, service: 'kms', now: clock.now(), maxSkewMs },
      )
      const handler = Object.hasOwn(OPERATIONS, op) ? OPERATIONS[op] : undefined
      if (handler === undefined)
        throw new AwsError('UnknownOperationException', `unknown operation ${target.slice(0, 80)}`)
      if (!(c.req.header('content-type') ?? '').startsWith(CONTENT_TYPE)) {
        throw new AwsError('SerializationException', `content-type must be ${CONTENT_TYPE}`)
      }
      let input: unknown
      try {
        input = body.length === 0 ? {} : JSON.parse(body)
      } catch {
        throw new AwsError('SerializationException', 'request body is not valid JSON')
      }
      if (typeof input !== 'object' || input === null || Array.isArray(input)) {
        throw new AwsError('SerializationException', 'request body must be a JSON object')
      }
      if (options.throttle?.(op, cred.instance) === true)
        throw new AwsError('ThrottlingException', 'Rate exceeded')
      const ctx: OpContext = {
        engine: options.engine,
        instance: cred.instance,
        accountId: cred.accountId ?? accountIdOf(cred.instance),
        region: options.region,
      }
      return reply(c, 200, await handler(ctx, input as Json))
    } catch (err) {
      let message: string
      if (err instanceof AwsError || err instanceof SigV4Error) {
        type = err.type
        status = err instanceof AwsError ? err.status : 400
        message = err.message
      } else if (err instanceof EngineError) {
        const shape = AWS_KMS_ERRORS[err.code]
        type = shape.type
        status = shape.status
        message = clientMessage(shape, err.message)
        if (status >= 500) log?.error({ op, code: err.code, err: err.message }, 'aws-kms request failed')
      } else {
        type = 'KMSInternalException'
        status = 500
        message = 'The service failed to process the request; retry later.'
        log?.error({ op, err: err instanceof Error ? err.name : typeof err }, 'aws-kms request failed')
      }
      return reply(c, status, { __type: type, message })
    } finally {
      log?.info({ op, status, ...(type === undefined ? {} : { error: type }) }, 'aws-kms request')
    }
  })
  app.all('*', (c) => reply(c, 404, { __type: 'UnknownOperationException', message: 'POST / only' }))
  return app
}
