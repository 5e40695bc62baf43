/**
 * An AWS-KMS-compatible endpoint over the engine (AWS JSON 1.1: `POST /`, `X-Amz-Target:
 * TrentService.<Operation>`, `application/x-amz-json-1.1`), so that any AWS SDK can use keys held in the
 * engine's HSM. Requests are SigV4-verified against configured access keys; each access key acts for one
 * engine instance (tenant). This layer only translates: key rules live in the engine.
 */
import { randomUUID } from 'node:crypto'
import { Hono, type Context } from 'hono'
import type { Logger } from 'pino'
import type { EnvelopeEngine } from '../../core/engine.js'
import { EngineError } from '../../core/errors.js'
import {
  BodyBudget,
  BodyBudgetError,
  BodyTooLargeError,
  DEFAULT_BODY_BUDGET_FACTOR,
  readCappedBody,
  ClientAbortError,
  CLIENT_CLOSED_REQUEST,
} from '../body.js'
import type { AuditEvent, AuditSink } from '../audit.js'
import { AWS_KMS_ERRORS, clientMessage } from '../errors.js'
import { AwsError, CONTENT_TYPE, type Handler, type Json, type OpContext } from './operation.js'
import * as aliases from './operations/aliases.js'
import * as crypto from './operations/crypto.js'
import * as keys from './operations/keys.js'
import * as multiRegion from './operations/multi-region.js'
import * as policies from './operations/policies.js'
import * as rotation from './operations/rotation.js'
import * as tags from './operations/tags.js'
import { checkSigV4Headers, SigV4Error, verifySigV4Signature, type AwsKmsCredential } from './sigv4.js'
import { accountIdOf, engineIdOfMrk } from './translate.js'

/** Options of {@link createAwsKmsApp}. */
export interface AwsKmsAppOptions {
  /** The engine whose keys the endpoint serves. Give it `lifecycle: { enableCooldownMs: 0 }` for AWS semantics. */
  readonly engine: EnvelopeEngine
  /** Accepted access keys; each acts for one engine instance (tenant). */
  readonly credentials: readonly AwsKmsCredential[]
  /**
   * The regions this endpoint serves, the default one first: a request's SigV4 credential scope selects
   * its region (a region not listed is refused), its ARNs carry it, and it sees only the keys present there
   * (a key without a region record is in the default region). Give this or {@link region}.
   */
  readonly regions?: readonly string[]
  /** One region: the same as `regions: [region]`. */
  readonly region?: string
  /** Time source for the signature clock-skew check (default Date.now). */
  readonly clock?: { now(): number }
  /** Largest accepted signature clock skew (default 5 minutes, as AWS). */
  readonly maxSkewMs?: number
  /** Largest request body in bytes (default 64 KiB); larger ones get 413 RequestEntityTooLargeException. */
  readonly maxBodyBytes?: number
  /**
   * Request body bytes in flight at once on this listener (default 64 × maxBodyBytes). A body that does not
   * fit (its Content-Length, or maxBodyBytes when chunked) is refused unread with ThrottlingException.
   */
  readonly maxInFlightBodyBytes?: number
  /**
   * Request log (request id, operation, access key id, instance, key id, status, error type; never bodies,
   * key material, secrets or signatures).
   */
  readonly logger?: Pick<Logger, 'info' | 'warn' | 'error'>
  /**
   * Where audit events go (the Key Protect listener's schema, with `api: "aws-kms"` and the operation
   * name): one per request, refused ones included. Default: dropped.
   */
  readonly audit?: AuditSink
  /**
   * Admission control: called for every authenticated request before it runs; returning true answers
   * `ThrottlingException` without running it (rate limiting, or fault injection in tests).
   */
  readonly throttle?: (operation: string, instance: string) => boolean
}

/** The operations, by name (a Vault-like table); each handler is in operations/<group>.ts, camelCased. */
const OPERATIONS: Readonly<Record<string, Handler>> = {
  CreateKey: keys.createKey,
  DescribeKey: keys.describeKey,
  ListKeys: keys.listKeys,
  CreateAlias: aliases.createAlias,
  DeleteAlias: aliases.deleteAlias,
  ListAliases: aliases.listAliases,
  Encrypt: crypto.encrypt,
  Decrypt: crypto.decrypt,
  ReEncrypt: crypto.reEncrypt,
  GenerateDataKey: crypto.generateDataKey,
  GenerateDataKeyWithoutPlaintext: crypto.generateDataKeyWithoutPlaintext,
  GenerateRandom: crypto.generateRandom,
  EnableKey: keys.enableKey,
  DisableKey: keys.disableKey,
  ScheduleKeyDeletion: keys.scheduleKeyDeletion,
  CancelKeyDeletion: keys.cancelKeyDeletion,
  EnableKeyRotation: rotation.enableKeyRotation,
  DisableKeyRotation: rotation.disableKeyRotation,
  GetKeyRotationStatus: rotation.getKeyRotationStatus,
  RotateKeyOnDemand: rotation.rotateKeyOnDemand,
  TagResource: tags.tagResource,
  UntagResource: tags.untagResource,
  ListResourceTags: tags.listResourceTags,
  ReplicateKey: multiRegion.replicateKey,
  PutKeyPolicy: policies.putKeyPolicy,
  GetKeyPolicy: policies.getKeyPolicy,
  ListKeyPolicies: policies.listKeyPolicies,
}

/** The operations this endpoint implements (`TrentService.<name>`). */
export const AWS_KMS_OPERATIONS: readonly string[] = Object.keys(OPERATIONS)

/** The request id header AWS answers with (the SDKs read it as `$metadata.requestId`). */
const REQUEST_ID = 'x-amzn-RequestId'

function reply(c: Context, status: number, body: Json, requestId: string): Response {
  return c.body(JSON.stringify(body), status as 200, {
    'content-type': CONTENT_TYPE,
    [REQUEST_ID]: requestId,
  })
}

/** The key the caller named, as given (KeyId, or the field the operation uses instead). */
function keyRefOf(input: Json): string | undefined {
  const v = input['KeyId'] ?? input['DestinationKeyId'] ?? input['TargetKeyId'] ?? input['SourceKeyId']
  return typeof v === 'string' ? v.slice(0, 2048) : undefined
}

/** The key id an answer names (`KeyId` is an ARN in most of them, `KeyMetadata.KeyId` an id). */
function keyIdOfAnswer(out: Json): string | undefined {
  const meta = out['KeyMetadata'] as { KeyId?: unknown } | undefined
  const v = typeof meta?.KeyId === 'string' ? meta.KeyId : out['KeyId']
  if (typeof v !== 'string') return undefined
  const i = v.lastIndexOf(':key/')
  const id = i < 0 ? v : v.slice(i + ':key/'.length)
  return engineIdOfMrk(id) ?? id
}

/** The served regions of the options (`regions`, or `region` alone), validated. */
function regionsOf(options: AwsKmsAppOptions): readonly string[] {
  if ((options.regions === undefined) === (options.region === undefined))
    throw new EngineError('CONFIG_INVALID', 'regions: give regions or region (not both)')
  const regions = options.regions ?? [options.region ?? '']
  if (regions.length === 0) throw new EngineError('CONFIG_INVALID', 'regions: must list at least one region')
  for (const r of regions) {
    if (!/^[a-z0-9-]{1,64}$/.test(r)) throw new EngineError('CONFIG_INVALID', 'regions: must be region names')
  }
  if (new Set(regions).size !== regions.length)
    throw new EngineError('CONFIG_INVALID', 'regions: a region repeats')
  return [...regions]
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
  const regions = regionsOf(options)
  const served = new Set(regions)
  const keyRegions = options.engine.keyRegions
  if (keyRegions === undefined)
    throw new EngineError(
      'CONFIG_INVALID',
      "engine: its catalog has no key-region role (the SQLite catalog's)",
    )
  const clock = options.clock ?? { now: () => Date.now() }
  const maxSkewMs = options.maxSkewMs ?? 5 * 60_000
  const maxBody = options.maxBodyBytes ?? 64 * 1024
  const budget = new BodyBudget(options.maxInFlightBodyBytes ?? DEFAULT_BODY_BUDGET_FACTOR * maxBody)
  const log = options.logger
  const audit = options.audit
  const app = new Hono()

  app.post('/', async (c) => {
    const requestId = randomUUID()
    const target = c.req.header('x-amz-target') ?? ''
    const op = target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : ''
    const known = Object.hasOwn(OPERATIONS, op)
    let status = 200
    let type: string | undefined
    let bodyRead = false
    let accessKeyId: string | undefined
    let instance: string | undefined
    let keyRef: string | undefined
    let keyId: string | undefined
    const seen: { keyId: string | undefined } = { keyId: undefined }
    // Refused because the audit buffer is full: counted by the sink, not recorded.
    let auditRefused = false
    try {
      // Audit is a security control: a request whose event cannot be kept does not run.
      if (audit?.accepting?.() === false) {
        auditRefused = true
        throw new AwsError(
          'ServiceUnavailableException',
          'The audit log is not accepting events; retry later.',
          503,
        )
      }
      const headers = new Map<string, string>()
      c.req.raw.headers.forEach((v, k) => headers.set(k.toLowerCase(), v))
      // Who is asking, before the body is read: a missing or malformed Authorization, an unknown access
      // key, a bad scope or date, or SignedHeaders without the required four are refused here, unread.
      const sigOptions = { credentials, regions: served, service: 'kms', now: clock.now(), maxSkewMs }
      const pre = checkSigV4Headers(headers, sigOptions)
      let raw: Buffer
      try {
        raw = await readCappedBody(c, maxBody, budget)
      } catch (err) {
        if (err instanceof BodyTooLargeError) {
          throw new AwsError('RequestEntityTooLargeException', `request body exceeds ${maxBody} bytes`, 413)
        }
        if (err instanceof BodyBudgetError) {
          // AWS's own throttling error (400, as AWS KMS answers it and as `throttle` below does): the SDKs
          // recognise it by name and retry with backoff. Nothing of the body was read.
          throw new AwsError('ThrottlingException', 'Too many request bodies in flight; retry later.')
        }
        throw err
      }
      bodyRead = true
      const body = raw.toString('utf8')
      const url = new URL(c.req.url)
      // The signature covers the body hash, so it is checked once the (capped) body is in.
      const cred = await verifySigV4Signature(
        { method: 'POST', path: url.pathname, query: url.searchParams, headers, body },
        pre,
      )
      accessKeyId = cred.accessKeyId
      instance = cred.instance
      const handler = known ? OPERATIONS[op] : undefined
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
      keyRef = keyRefOf(input as Json)
      if (options.throttle?.(op, cred.instance) === true)
        throw new AwsError('ThrottlingException', 'Rate exceeded')
      const accountId = cred.accountId ?? accountIdOf(cred.instance)
      const ctx: OpContext = {
        engine: options.engine,
        op,
        instance: cred.instance,
        accountId,
        region: pre.region,
        regions,
        keyRegions,
        principalArn: `arn:aws:iam::${accountId}:user/${cred.accessKeyId}`,
        multiRegionKeys: new Set(),
        seen,
      }
      const out = await handler(ctx, input as Json)
      keyId = keyIdOfAnswer(out)
      return reply(c, 200, out, requestId)
    } catch (err) {
      if (err instanceof ClientAbortError) {
        // The client left mid-body: a client abort, not a service failure (no error log, no 5xx).
        status = CLIENT_CLOSED_REQUEST
        type = 'ClientClosedRequest'
        return new Response(null, {
          status: CLIENT_CLOSED_REQUEST,
          headers: { connection: 'close', [REQUEST_ID]: requestId },
        })
      }
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
        if (status >= 500)
          log?.error({ requestId, op, code: err.code, err: err.message }, 'aws-kms request failed')
      } else {
        type = 'KMSInternalException'
        status = 500
        message = 'The service failed to process the request; retry later.'
        log?.error(
          { requestId, op, err: err instanceof Error ? err.name : typeof err },
          'aws-kms request failed',
        )
      }
      const res = reply(c, status, { __type: type, message }, requestId)
      if (auditRefused) res.headers.set('retry-after', '1')
      // Refused before its body was read (or part way): close the connection rather than let it carry
      // the rest of the upload.
      if (!bodyRead) res.headers.set('connection', 'close')
      return res
    } finally {
      keyId ??= seen.keyId
      log?.info(
        {
          requestId,
          op,
          ...(accessKeyId === undefined ? {} : { accessKeyId, instance }),
          ...(keyId === undefined ? {} : { keyId }),
          status,
          ...(type === undefined ? {} : { error: type }),
        },
        'aws-kms request',
      )
      if (audit !== undefined && !auditRefused) {
        const written = audit.record({
          event: `aws-kms.${known ? op : 'unknown'}`,
          outcome: status < 400 ? 'success' : 'failure',
          status,
          subject: accessKeyId,
          instance,
          keyId,
          correlationId: requestId,
          reason: type,
          method: 'POST',
          route: '/',
          api: 'aws-kms',
          ...(known ? { operation: op } : {}),
          ...(keyRef === undefined || keyRef === keyId ? {} : { keyRef }),
        } satisfies AuditEvent)
        // EKMS_AUDIT_SYNC: the response leaves once its line is written.
        if (written !== undefined) await written
      }
    }
  })
  app.all('*', async (c) => {
    const requestId = randomUUID()
    const written = audit?.record({
      event: 'aws-kms.unknown',
      outcome: 'failure',
      status: 404,
      subject: undefined,
      instance: undefined,
      keyId: undefined,
      correlationId: requestId,
      reason: 'UnknownOperationException',
      method: c.req.method.slice(0, 16),
      route: c.req.path.slice(0, 256),
      api: 'aws-kms',
    })
    if (written !== undefined) await written
    return reply(c, 404, { __type: 'UnknownOperationException', message: 'POST / only' }, requestId)
  })
  return app
}
