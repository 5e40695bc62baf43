/**
 * AWS Signature Version 4 verification for the AWS-KMS-compatible endpoint. The signature is recomputed
 * with `@smithy/signature-v4` (the signer the AWS SDK itself uses) over exactly the headers the client
 * signed, and compared in constant time.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { HttpRequest } from '@smithy/protocol-http'
import { SignatureV4 } from '@smithy/signature-v4'

function bytes(d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof d === 'string') return d
  if (d instanceof ArrayBuffer) return new Uint8Array(d)
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
}

/** SHA-256 / HMAC-SHA-256 in the shape the signer expects (node:crypto underneath). */
export class NodeSha256 {
  readonly #h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret))
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#h.update(bytes(data))
  }
  async digest(): Promise<Uint8Array> {
    return this.#h.digest()
  }
  reset(): void {
    throw new Error('NodeSha256: reset is not supported')
  }
}

/** An access key the endpoint accepts, and the engine instance (tenant) it acts for. */
export interface AwsKmsCredential {
  readonly accessKeyId: string
  readonly secretAccessKey: string
  readonly instance: string
  /** The 12-digit account id shown in ARNs (default: derived from the instance). */
  readonly accountId?: string
}

/** Why a request was refused, as AWS names it. */
export class SigV4Error extends Error {
  constructor(
    readonly type:
      | 'MissingAuthenticationTokenException'
      | 'IncompleteSignatureException'
      | 'UnrecognizedClientException'
      | 'InvalidSignatureException',
    message: string,
  ) {
    super(message)
  }
}

const AUTH_RE =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;_.-]+),\s*Signature=([0-9a-f]{64})$/
const AMZ_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/

/** The request as received: method, path, query string, lower-case headers, raw body. */
export interface SignedRequest {
  readonly method: string
  readonly path: string
  readonly query: URLSearchParams
  readonly headers: ReadonlyMap<string, string>
  readonly body: string
}

/** What the signature covers apart from the body: found by {@link checkSigV4Headers} before the body is read. */
export interface SigV4Header {
  readonly credential: AwsKmsCredential
  readonly region: string
  readonly service: string
  readonly signingDate: Date
  /** The signed headers, lower-case, as the client listed them. */
  readonly signed: readonly string[]
  readonly signature: string
}

/**
 * Headers every request must sign. `x-amz-target` names the operation and `content-type` its encoding: a
 * signature that leaves either out could be replayed as another operation (a captured DescribeKey sent
 * as ScheduleKeyDeletion). The AWS SDKs sign all four.
 */
export const REQUIRED_SIGNED_HEADERS: readonly string[] = [
  'host',
  'x-amz-date',
  'x-amz-target',
  'content-type',
]

export interface SigV4Options {
  readonly credentials: ReadonlyMap<string, AwsKmsCredential>
  /** The regions served: a credential scope naming another one is refused. */
  readonly regions: ReadonlySet<string>
  readonly service: string
  readonly now: number
  readonly maxSkewMs: number
}

/**
 * Every check that needs no body: the Authorization header's form, the access key, scope, date and skew,
 * and the signed-header list. Run it before reading the body, so that anonymous or unknown clients are
 * refused without their upload being read.
 * @throws SigV4Error with the AWS error type the SDK expects
 */
export function checkSigV4Headers(headers: ReadonlyMap<string, string>, options: SigV4Options): SigV4Header {
  const auth = headers.get('authorization')
  if (auth === undefined) {
    throw new SigV4Error('MissingAuthenticationTokenException', 'Missing Authentication Token')
  }
  const m = AUTH_RE.exec(auth)
  if (m === null) {
    throw new SigV4Error(
      'IncompleteSignatureException',
      'Authorization header is not a valid AWS4-HMAC-SHA256 signature',
    )
  }
  const [, accessKeyId = '', scopeDate = '', region = '', service = '', signedList = '', signature = ''] = m
  const cred = options.credentials.get(accessKeyId)
  if (cred === undefined) {
    throw new SigV4Error(
      'UnrecognizedClientException',
      'The security token included in the request is invalid.',
    )
  }
  if (!options.regions.has(region)) {
    throw new SigV4Error(
      'InvalidSignatureException',
      `Credential should be scoped to a valid region, not '${region}'.`,
    )
  }
  if (service !== options.service) {
    throw new SigV4Error(
      'InvalidSignatureException',
      `Credential should be scoped to correct service: '${options.service}'.`,
    )
  }
  const amzDate = headers.get('x-amz-date')
  const d = amzDate === undefined ? null : AMZ_DATE_RE.exec(amzDate)
  if (amzDate === undefined || d === null) {
    throw new SigV4Error('IncompleteSignatureException', 'X-Amz-Date header is missing or malformed')
  }
  const [y, mo, da, h, mi, se] = d.slice(1).map(Number) as [number, number, number, number, number, number]
  const signingDate = new Date(Date.UTC(y, mo - 1, da, h, mi, se))
  if (amzDate.slice(0, 8) !== scopeDate) {
    throw new SigV4Error('InvalidSignatureException', 'Credential date does not match X-Amz-Date')
  }
  const skew = options.now - signingDate.getTime()
  if (Math.abs(skew) > options.maxSkewMs) {
    throw new SigV4Error(
      'InvalidSignatureException',
      skew > 0
        ? `Signature expired: ${amzDate} is now earlier than the allowed ${options.maxSkewMs / 60000} minutes.`
        : `Signature not yet current: ${amzDate} is later than the allowed ${options.maxSkewMs / 60000} minutes.`,
    )
  }
  const signed = signedList.split(';')
  const missing = REQUIRED_SIGNED_HEADERS.filter((h) => !signed.includes(h))
  if (missing.length > 0) {
    throw new SigV4Error(
      'InvalidSignatureException',
      `SignedHeaders must include ${REQUIRED_SIGNED_HEADERS.join(', ')}; missing: ${missing.join(', ')}`,
    )
  }
  for (const h of signed) {
    if (!headers.has(h)) throw new SigV4Error('InvalidSignatureException', `Signed header ${h} is missing`)
  }
  return { credential: cred, region, service, signingDate, signed, signature }
}

/**
 * Checks the signature itself over the request and its body, after {@link checkSigV4Headers}.
 * @throws SigV4Error InvalidSignatureException
 */
export async function verifySigV4Signature(req: SignedRequest, pre: SigV4Header): Promise<AwsKmsCredential> {
  const headers: Record<string, string> = {}
  for (const h of pre.signed) {
    const v = req.headers.get(h)
    if (v === undefined) throw new SigV4Error('InvalidSignatureException', `Signed header ${h} is missing`)
    headers[h] = v
  }
  // The signer takes a client's x-amz-content-sha256 as the payload hash without hashing the body: hold
  // the header to the body actually received, or a captured request could carry another body.
  const declaredHash = headers['x-amz-content-sha256']
  if (declaredHash !== undefined) {
    const actual = createHash('sha256').update(req.body, 'utf8').digest('hex')
    if (declaredHash !== actual) {
      throw new SigV4Error(
        'InvalidSignatureException',
        'The provided x-amz-content-sha256 header does not match what was computed.',
      )
    }
  }
  const query: Record<string, string> = {}
  for (const [k, v] of req.query) query[k] = v
  const cred = pre.credential
  const signer = new SignatureV4({
    credentials: { accessKeyId: cred.accessKeyId, secretAccessKey: cred.secretAccessKey },
    region: pre.region,
    service: pre.service,
    sha256: NodeSha256,
    applyChecksum: false,
  })
  const out = await signer.sign(
    new HttpRequest({
      method: req.method,
      protocol: 'http:',
      hostname: headers['host'] ?? '',
      path: req.path,
      query,
      headers,
      body: req.body,
    }),
    { signingDate: pre.signingDate, signableHeaders: new Set(pre.signed) },
  )
  const expected = /Signature=([0-9a-f]{64})$/.exec(out.headers['authorization'] ?? '')?.[1] ?? ''
  const a = Buffer.from(expected, 'hex')
  const b = Buffer.from(pre.signature, 'hex')
  if (a.length !== 32 || b.length !== 32 || !timingSafeEqual(a, b)) {
    throw new SigV4Error(
      'InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    )
  }
  return cred
}

/**
 * Verifies a request's SigV4 signature and returns the credential that signed it
 * ({@link checkSigV4Headers} then {@link verifySigV4Signature}).
 * @throws SigV4Error with the AWS error type the SDK expects
 */
export async function verifySigV4(req: SignedRequest, options: SigV4Options): Promise<AwsKmsCredential> {
  return verifySigV4Signature(req, checkSigV4Headers(req.headers, options))
}
