/**
 * Wrap and unwrap under a linked key, through the source that holds it. The ciphertext is v1
 * (format/ciphertext.ts) with the provider-opaque mechanism (0x10), as for AWS KMS root keys: its header
 * names the linked key's UUID and the 1-based index of the version in the key's `versions`, and the body is
 * the source's own blob. The AAD given to the source is the engine's AAD of opaque ciphertexts (domain,
 * header, DEK length, tenant, caller AAD; `buildHsmAad`): a ciphertext moved to another tenant, another
 * linked key or version, or unwrapped with other caller AAD does not authenticate at the source.
 *
 * Not every source can bind an AAD (Azure RSA keys wrap with RSA-OAEP-256, which has none), so what the
 * source encrypts is the DEK followed by the SHA-256 of that AAD, checked on unwrap: the binding holds
 * whatever the source, and a source that binds the AAD itself checks it twice.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { EngineError, invalidField } from '../errors.js'
import {
  buildHsmAad,
  encodeHeader,
  encodeOpaqueCiphertext,
  GENERATED_DEK_BYTES,
  MAX_DEK_BYTES,
  Mechanism,
  MIN_DEK_BYTES,
  parseCiphertext,
  validateAad,
} from '../format/ciphertext.js'
import type { LinkedKeyRecord } from '../ports-sync.js'
import { SecretBytes } from '../secret-bytes.js'
import type { SyncConnections } from './connections.js'
import type { LinkedUnwrapResult, LinkedWrapResult } from './types.js'

/** Bytes of the AAD digest appended to the DEK inside the source's blob. */
const BINDING_BYTES = 32

const digest = (aad: Buffer): Buffer => createHash('sha256').update(aad).digest()

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

function notFound(): EngineError {
  return new EngineError('LINKED_KEY_NOT_FOUND', 'no linked key of this tenant has that id')
}

function unavailable(why: string): EngineError {
  return new EngineError('LINKED_KEY_UNAVAILABLE', `linked key: ${why}`)
}

/** The tenant's linked key `id`. @throws EngineError LINKED_KEY_NOT_FOUND */
export async function mustGetLinkedKey(
  connections: SyncConnections,
  tenant: string,
  id: unknown,
): Promise<LinkedKeyRecord> {
  if (typeof id !== 'string' || !UUID_RE.test(id.toLowerCase())) throw notFound()
  const r = await connections.store.getLinkedKey(tenant, id.toLowerCase())
  if (r === undefined) throw notFound()
  return r
}

/**
 * Purges the tenant's linked key `id`, only once its source no longer has it (atomic in the store: a
 * synchronization that finds it again in between wins). What it means: `KeySync.purgeLinkedKey` (types.ts).
 * @throws EngineError LINKED_KEY_NOT_FOUND, KEY_ACTION_INVALID_STATE_ERR (still present at its source)
 */
export async function purgeLinked(connections: SyncConnections, tenant: string, id: unknown): Promise<void> {
  const r = await mustGetLinkedKey(connections, tenant, id)
  const outcome = await connections.store.deleteLinkedKey(tenant, r.id)
  if (outcome === 'not-found') throw notFound()
  if (outcome === 'present') {
    throw new EngineError(
      'KEY_ACTION_INVALID_STATE_ERR',
      'linked key: still present at its source; delete it at the source and synchronize first',
    )
  }
}

async function sourceOf(connections: SyncConnections, r: LinkedKeyRecord) {
  const conn = await connections.store.getConnection(r.tenant, r.connectionId)
  if (conn === undefined) throw unavailable('its connection no longer exists')
  return connections.source(conn)
}

/** The plaintext to wrap as a copy this module owns, or a fresh 32-byte DEK. */
function plaintextOf(p: SecretBytes | Uint8Array | undefined): { dek: SecretBytes; generated: boolean } {
  if (p === undefined) return { dek: SecretBytes.adopt(randomBytes(GENERATED_DEK_BYTES)), generated: true }
  const bytes = p instanceof SecretBytes ? p.bytes : p
  if (!(bytes instanceof Uint8Array) || bytes.length < MIN_DEK_BYTES || bytes.length > MAX_DEK_BYTES) {
    throw invalidField('plaintext', `must be ${MIN_DEK_BYTES}-${MAX_DEK_BYTES} bytes`)
  }
  return { dek: SecretBytes.copyOf(bytes), generated: false }
}

/**
 * Wraps a DEK under the newest enabled version of a linked key.
 * @throws EngineError LINKED_KEY_NOT_FOUND, LINKED_KEY_UNAVAILABLE, INVALID_FIELD_ERR, PROVIDER_*
 */
export async function wrapLinked(
  connections: SyncConnections,
  tenant: string,
  id: string,
  input: { readonly plaintext?: SecretBytes | Uint8Array; readonly aad?: readonly string[] } = {},
): Promise<LinkedWrapResult> {
  const r = await mustGetLinkedKey(connections, tenant, id)
  if (r.sourceState === 'deleted') throw unavailable('deleted at its source')
  if (!r.enabled) throw unavailable('disabled at its source')
  if (!r.usable) throw unavailable(`a ${r.keyType} key cannot wrap data keys`)
  let index = -1
  for (let i = r.versions.length - 1; i >= 0; i--) {
    if (r.versions[i]?.enabled === true) {
      index = i
      break
    }
  }
  const version = r.versions[index]
  if (version === undefined) throw unavailable('no version of it is enabled')
  const aad = validateAad(input.aad)
  const { dek, generated } = plaintextOf(input.plaintext)
  try {
    const header = encodeHeader(Mechanism.OPAQUE, r.id, index + 1)
    const source = await sourceOf(connections, r)
    const hsmAad = buildHsmAad(header, dek.length, tenant, aad)
    const inner = SecretBytes.adopt(Buffer.concat([dek.bytes, digest(hsmAad)]))
    let blob: Buffer
    try {
      blob = await source.wrap(version.ref, inner, hsmAad)
    } finally {
      inner.zeroize()
    }
    const ciphertext = encodeOpaqueCiphertext(header, dek.length, blob).toString('base64')
    return { ciphertext, keyId: r.id, keyVersion: index + 1, plaintext: generated ? dek : undefined }
  } catch (err) {
    dek.zeroize()
    throw err
  } finally {
    if (!generated) dek.zeroize()
  }
}

/**
 * Unwraps a ciphertext of {@link wrapLinked}. A key deleted at its source is still tried (the source may
 * still answer, e.g. during a soft-delete retention period).
 * @throws EngineError CIPHERTEXT_INVALID, LINKED_KEY_NOT_FOUND, KEY_VERSION_NOT_FOUND, UNWRAP_AAD_MISMATCH,
 * LINKED_KEY_UNAVAILABLE (its connection is gone), PROVIDER_*
 */
export async function unwrapLinked(
  connections: SyncConnections,
  tenant: string,
  input: { readonly ciphertext: string; readonly aad?: readonly string[] },
): Promise<LinkedUnwrapResult> {
  const parsed = parseCiphertext(input.ciphertext)
  if (parsed.mechanism !== Mechanism.OPAQUE) {
    throw new EngineError('CIPHERTEXT_INVALID', 'ciphertext: not a linked-key ciphertext', {
      target: { type: 'field', name: 'ciphertext' },
    })
  }
  const aad = validateAad(input.aad)
  const r = await mustGetLinkedKey(connections, tenant, parsed.keyId)
  const version = r.versions[parsed.keyVersion - 1]
  if (version === undefined) {
    throw new EngineError(
      'KEY_VERSION_NOT_FOUND',
      `ciphertext: the linked key has no version ${parsed.keyVersion}`,
    )
  }
  const source = await sourceOf(connections, r)
  const hsmAad = buildHsmAad(parsed.header, parsed.dekLength, tenant, aad)
  const inner = await source.unwrap(version.ref, parsed.encrypted, hsmAad)
  try {
    const b = inner.bytes
    if (
      b.length !== parsed.dekLength + BINDING_BYTES ||
      !timingSafeEqual(b.subarray(parsed.dekLength), digest(hsmAad))
    ) {
      throw new EngineError(
        'UNWRAP_AAD_MISMATCH',
        'ciphertext: does not authenticate with this AAD, tenant and key',
      )
    }
    const plaintext = SecretBytes.copyOf(b.subarray(0, parsed.dekLength))
    return { plaintext, keyId: r.id, keyVersion: parsed.keyVersion }
  } finally {
    inner.zeroize()
  }
}
