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

/**
 * Verifies a request's SigV4 signature and returns the credential that signed it.
 * @throws SigV4Error with the AWS error type the SDK expects
 */
export async function verifySigV4(
  req: SignedRequest,
  options: {
    readonly credentials: ReadonlyMap<string, AwsKmsCredential>
    readonly region: string
    readonly service: string
    readonly now: number
    readonly maxSkewMs: number
  },
): Promise<AwsKmsCredential> {
  const auth = req.headers.get('authorization')
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
  if (region !== options.region) {
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
  const amzDate = req.headers.get('x-amz-date')
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
  if (!signed.includes('host') || !signed.includes('x-amz-date')) {
    throw new SigV4Error('InvalidSignatureException', 'SignedHeaders must include host and x-amz-date')
  }
  const headers: Record<string, string> = {}
  for (const h of signed) {
    const v = req.headers.get(h)
    if (v === undefined) throw new SigV4Error('InvalidSignatureException', `Signed header ${h} is missing`)
    headers[h] = v
  }
  const query: Record<string, string> = {}
  for (const [k, v] of req.query) query[k] = v
  const signer = new SignatureV4({
    credentials: { accessKeyId: cred.accessKeyId, secretAccessKey: cred.secretAccessKey },
    region,
    service,
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
    { signingDate, signableHeaders: new Set(signed) },
  )
  const expected = /Signature=([0-9a-f]{64})$/.exec(out.headers['authorization'] ?? '')?.[1] ?? ''
  const a = Buffer.from(expected, 'hex')
  const b = Buffer.from(signature, 'hex')
  if (a.length !== 32 || b.length !== 32 || !timingSafeEqual(a, b)) {
    throw new SigV4Error(
      'InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    )
  }
  return cred
}
