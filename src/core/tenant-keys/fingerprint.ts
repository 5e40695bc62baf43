/**
 * Key-provider fingerprints (Qlik `arnFingerPrint`): the id of a provider in paths and in the
 * `#BYOKv1#:<fingerprint>:` prefix of wrapped DEKs. Frozen: documented in docs/tenant-key-providers.md.
 *
 * fingerprint = the first 32 lower-case hex characters of
 * SHA-256("envelope-kms/key-provider/v1" ‖ 0x00 ‖ tenant ‖ 0x00 ‖ arn), strings UTF-8.
 *
 * Tenant-bound (the same ARN registered by two tenants has two fingerprints), stable (no secret, no
 * time), and 128 bits so that collisions are not a concern. The built-in default provider's fingerprint
 * is the tenant id itself, as Qlik's is.
 */
import { createHash } from 'node:crypto'

/** The domain string hashed before the tenant and the ARN. */
export const FINGERPRINT_DOMAIN = 'envelope-kms/key-provider/v1'

/** The form of a customer-managed provider's fingerprint: 32 lower-case hex characters. */
export const FINGERPRINT_RE = /^[0-9a-f]{32}$/

/**
 * The longest fingerprint the API accepts in a path (Qlik answers 414 beyond it): the longest tenant id
 * (an engine instance id, at most 128 characters, which is the default provider's fingerprint).
 */
export const MAX_FINGERPRINT_LENGTH = 128

/**
 * The fingerprint of `arn` (an AWS KMS key ARN or an engine root key id) registered in `tenant`.
 * @example
 * providerFingerprint('acme', 'arn:aws:kms:eu-west-1:111122223333:key/mrk-0123456789abcdef0123456789abcdef')
 */
export function providerFingerprint(tenant: string, arn: string): string {
  return createHash('sha256')
    .update(`${FINGERPRINT_DOMAIN}\0${tenant}\0${arn}`, 'utf8')
    .digest('hex')
    .slice(0, 32)
}
