/**
 * The text form of a DEK wrapped by a tenant key provider (docs/tenant-key-providers.md, frozen):
 *
 * - under the tenant's default provider: the base64 of a ciphertext v1, no prefix;
 * - under a customer-managed provider: `#BYOKv1#:<fingerprint>:` then the base64 of a ciphertext v1, where
 *   `<fingerprint>` is the provider's 32 lower-case hex characters.
 *
 * Underneath the prefix the engine's own ciphertext format (docs/ciphertext-format.md) stays
 * self-describing: it names the key id and version (mechanism 0x01 under an engine root key, 0x10 with a
 * KMS blob under an AWS KMS provider record). This file only splits and joins the text form; which key
 * the inner ciphertext must name is the caller's check.
 */
import { EngineError } from '../errors.js'
import { parseCiphertext, type ParsedCiphertext } from './ciphertext.js'

/** The prefix that starts a value wrapped under a customer-managed provider. */
export const BYOK_PREFIX_V1 = '#BYOKv1#:'

const FP_RE = /^[0-9a-f]{32}$/

/** A parsed wrapped DEK. */
export interface ParsedWrappedDek {
  /** The customer-managed provider's fingerprint; undefined = the default provider (no prefix). */
  readonly fingerprint: string | undefined
  /** The inner ciphertext v1 as base64 (the text after the prefix). */
  readonly inner: string
  readonly ciphertext: ParsedCiphertext
}

function invalid(reason: string): EngineError {
  return new EngineError('CIPHERTEXT_INVALID', `ciphertext: ${reason}`, {
    target: { type: 'field', name: 'ciphertext' },
  })
}

/**
 * Joins a fingerprint (undefined: the default provider) and the base64 of a ciphertext v1.
 * @throws EngineError INTERNAL_ERROR when `fingerprint` is not 32 lower-case hex characters
 */
export function encodeWrappedDek(fingerprint: string | undefined, innerBase64: string): string {
  if (fingerprint === undefined) return innerBase64
  if (!FP_RE.test(fingerprint)) throw new EngineError('INTERNAL_ERROR', 'wrapped DEK: bad fingerprint')
  return `${BYOK_PREFIX_V1}${fingerprint}:${innerBase64}`
}

/**
 * Splits a wrapped DEK and parses its inner ciphertext v1.
 * @throws EngineError CIPHERTEXT_INVALID for any malformed input
 */
export function parseWrappedDek(input: unknown): ParsedWrappedDek {
  if (typeof input !== 'string') throw invalid('must be a string')
  if (input.startsWith('#')) {
    if (!input.startsWith(BYOK_PREFIX_V1)) throw invalid('has an unknown prefix')
    const fp = input.slice(BYOK_PREFIX_V1.length, BYOK_PREFIX_V1.length + 32)
    if (!FP_RE.test(fp) || input[BYOK_PREFIX_V1.length + 32] !== ':') {
      throw invalid('the #BYOKv1# prefix has no valid fingerprint')
    }
    const inner = input.slice(BYOK_PREFIX_V1.length + 33)
    return { fingerprint: fp, inner, ciphertext: parseCiphertext(inner) }
  }
  return { fingerprint: undefined, inner: input, ciphertext: parseCiphertext(input) }
}
