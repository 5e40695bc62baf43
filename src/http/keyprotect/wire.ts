/**
 * Key Protect v2 wire shapes: the collection envelope, the key resource and the error envelope
 * (spec digest §1.3, §1.4, §2.1). The table mapping engine error codes to statuses is in ../errors.ts.
 */
import type { WireCode } from '../errors.js'
import type { KeyInfo, KeyPolicyInfo, RegistrationInfo } from '../../core/engine.js'

export const KEY_TYPE = 'application/vnd.ibm.kms.key+json'
export const POLICY_TYPE = 'application/vnd.ibm.kms.policy+json'
export const ERROR_TYPE = 'application/vnd.ibm.kms.error+json'
export const ALIAS_TYPE = 'application/vnd.ibm.kms.alias+json'
export const KEY_RING_TYPE = 'application/vnd.ibm.kms.key_ring+json'
export const REGISTRATION_TYPE = 'application/vnd.ibm.kms.registration+json'
export const RESOURCE_CRN_TYPE = 'application/vnd.ibm.kms.resource_crn+json'
export const MORE_INFO = 'https://cloud.ibm.com/apidocs/key-protect'

const REASON_PHRASE: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  410: 'Gone',
  413: 'Payload Too Large',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

/** Standard reason messages (the doc's texts where it has one). */
const REASON_MESSAGE: Partial<Record<WireCode, string>> = {
  KEY_NOT_FOUND_ERR: 'Key does not exist',
  KEY_ACTION_INVALID_STATE_ERR: 'Key is not in a valid state',
  KEY_DELETED_ERR: 'Key has already been deleted. Please check the key ID and try again.',
  KEY_ROOT_REQ_ERR: 'Requested action can only be completed with a root key.',
  UNPROCESSABLE_CIPHERTEXT_ERR: 'The provided ciphertext is invalid or corrupted',
  UNAUTHORIZED_ERR: 'The user does not have access to the specified resource',
  TOO_MANY_REQUESTS_ERR: 'Wait a few minutes and try again.',
}

export interface WireTarget {
  readonly type: string
  readonly name: string
}

/** The Key Protect error envelope (always with `reasons[0]`). */
export function errorBody(
  status: number,
  code: WireCode,
  message: string,
  what: string,
  target?: WireTarget,
): unknown {
  const phrase = REASON_PHRASE[status] ?? 'Error'
  let errorMsg: string
  if (status === 401) errorMsg = 'Unauthorized: The user does not have access to the specified resource.'
  else if (status === 429) errorMsg = 'Too Many Requests: Wait a few minutes and try again.'
  else if (status >= 500)
    errorMsg = `${phrase}: The key management service is currently unavailable. Your request could not be processed. Try again later.`
  else errorMsg = `${phrase}: ${what} could not be performed. See 'reasons' for more details.`
  return {
    metadata: { collectionType: ERROR_TYPE, collectionTotal: 1 },
    resources: [
      {
        errorMsg,
        reasons: [
          {
            code,
            message: REASON_MESSAGE[code] ?? message,
            status,
            moreInfo: MORE_INFO,
            ...(target === undefined ? {} : { target: { type: target.type, name: target.name } }),
          },
        ],
      },
    ],
  }
}

/** RFC 3339 UTC without milliseconds, as Key Protect prints dates. */
export function rfc3339(d: Date | undefined): string | undefined {
  return d === undefined ? undefined : d.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

export interface WireOptions {
  readonly region: string
  readonly account: string
}

/** `crn:v1:bluemix:public:kms:<region>:a/<account>:<instance>:key:<id>`. */
export function keyCrn(o: WireOptions, instance: string, id: string): string {
  return `crn:v1:bluemix:public:kms:${o.region}:a/${o.account}:${instance}:key:${id}`
}

/** A key resource (§2.1); `payload` only when given (GET of a standard key). */
export function keyResource(o: WireOptions, k: KeyInfo, payload?: Buffer): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: KEY_TYPE,
    id: k.id,
    name: k.name,
    aliases: [...k.aliases],
    ...(k.description === undefined ? {} : { description: k.description }),
    tags: [...k.tags],
    state: k.state,
    ...(k.expirationDate === undefined ? {} : { expirationDate: rfc3339(k.expirationDate) }),
    extractable: k.extractable,
    crn: keyCrn(o, k.instance, k.id),
    imported: k.imported,
    keyRingID: k.keyRingId,
    creationDate: rfc3339(k.createdAt),
    createdBy: k.createdBy ?? 'unknown',
    lastUpdateDate: rfc3339(k.updatedAt),
    ...(k.lastRotatedAt === undefined ? {} : { lastRotateDate: rfc3339(k.lastRotatedAt) }),
    keyVersion: k.deleted
      ? { id: k.keyVersion.id }
      : { id: k.keyVersion.id, creationDate: rfc3339(k.keyVersion.createdAt) },
    dualAuthDelete: {
      enabled: k.dualAuthDelete.enabled,
      ...(k.dualAuthDelete.enabled ? { keySetForDeletion: k.dualAuthDelete.keySetForDeletion === true } : {}),
      ...(k.dualAuthDelete.authExpiration === undefined
        ? {}
        : { authExpiration: rfc3339(k.dualAuthDelete.authExpiration) }),
    },
    ...(k.rotation === undefined
      ? {}
      : {
          rotation: {
            enabled: k.rotation.enabled,
            ...(k.rotation.intervalMonth === undefined ? {} : { interval_month: k.rotation.intervalMonth }),
          },
        }),
    deleted: k.deleted,
    algorithmType: 'Deprecated',
    algorithmMode: 'Deprecated',
    algorithmBitSize: 256,
    algorithmMetadata: { bitLength: '256', mode: 'Deprecated' },
  }
  if (k.deleted) {
    out['deletionDate'] = rfc3339(k.deletedAt)
    out['deletedBy'] = k.deletedBy ?? 'unknown'
    out['restoreAllowed'] = k.restoreAllowed
    out['restoreExpirationDate'] = rfc3339(k.restoreExpirationDate)
    out['purgeAllowed'] = k.purgeAllowed
    out['purgeAllowedFrom'] = rfc3339(k.purgeAllowedFrom)
    out['purgeScheduledOn'] = rfc3339(k.purgeScheduledOn)
  }
  if (payload !== undefined) out['payload'] = payload.toString('base64')
  return out
}

/** The collection envelope. */
export function collection(
  collectionType: string,
  resources: readonly unknown[],
  extra: Record<string, unknown> = {},
): unknown {
  return { metadata: { collectionType, collectionTotal: resources.length, ...extra }, resources }
}

/** A key policy resource (§3.4). */
export function policyResource(o: WireOptions, instance: string, p: KeyPolicyInfo): Record<string, unknown> {
  return {
    id: p.id,
    crn: `crn:v1:bluemix:public:kms:${o.region}:a/${o.account}:${instance}:policy:${p.id}`,
    ...(p.type === 'rotation'
      ? {
          rotation: {
            enabled: p.enabled,
            ...(p.intervalMonth === undefined ? {} : { interval_month: p.intervalMonth }),
          },
        }
      : { dualAuthDelete: { enabled: p.enabled } }),
    createdBy: p.createdBy ?? 'unknown',
    creationDate: rfc3339(p.createdAt),
    updatedBy: p.updatedBy ?? 'unknown',
    lastUpdateDate: rfc3339(p.updatedAt),
  }
}

/** A registration resource (§3.7). */
export function registrationResource(g: RegistrationInfo): Record<string, unknown> {
  return {
    keyId: g.keyId,
    keyName: g.keyName,
    resourceCrn: g.resourceCrn,
    createdBy: g.createdBy ?? 'unknown',
    creationDate: rfc3339(g.createdAt),
    updatedBy: g.updatedBy ?? 'unknown',
    lastUpdated: rfc3339(g.updatedAt),
    ...(g.description === undefined ? {} : { description: g.description }),
    ...(g.registrationMetadata === undefined ? {} : { registrationMetadata: g.registrationMetadata }),
    preventKeyDeletion: g.preventKeyDeletion,
    keyVersion: { id: g.keyVersion.id, creationDate: rfc3339(g.keyVersion.createdAt) },
  }
}
