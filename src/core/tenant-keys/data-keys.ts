/**
 * The per-tenant data-key catalog (named DEKs stored only wrapped) and the application-held ciphertexts
 * (wrapDek / unwrapDek), over the codec of core.ts.
 */
import { EngineError, invalidField } from '../errors.js'
import type { DataKeyRecord } from '../ports-tenant-keys.js'
import type { SecretBytes } from '../secret-bytes.js'
import type { TenantKeysCore } from './core.js'
import type { DataKeyInfo, DataKeyWithSecret, UnwrappedDek, WrappedDek } from './types.js'

const MAX_NAME = 256

/** A data key's name: 1-256 characters, no control characters. @throws EngineError INVALID_FIELD_ERR */
export function validateDataKeyName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME) {
    throw invalidField('name', `must be 1-${MAX_NAME} characters`)
  }
  if (/[\u0000-\u001f\u007f]/.test(name)) throw invalidField('name', 'must not contain control characters')
  return name
}

function info(r: DataKeyRecord): DataKeyInfo {
  return {
    name: r.name,
    providerFingerprint: r.providerFingerprint,
    createdAt: new Date(r.createdAt),
    updatedAt: new Date(r.updatedAt),
  }
}

function notFound(): EngineError {
  return new EngineError('DATA_KEY_NOT_FOUND', 'the data-key catalog has no entry of that name')
}

/**
 * After writing `r` under `fingerprint`: if the current provider moved meanwhile (a migration was promoted
 * while this call wrapped), rewrap the entry in place (compare-and-set), so that no entry written under an
 * old provider can outlive the migration's last sweep.
 */
async function followPromotion(
  core: TenantKeysCore,
  r: DataKeyRecord,
  plaintext: SecretBytes,
): Promise<void> {
  const s = await core.state(r.tenant)
  if (s.currentFingerprint === r.providerFingerprint) return
  const current = await core.mustResolve(r.tenant, s.currentFingerprint)
  const w = await core.wrapUnder(r.tenant, current, plaintext.bytes)
  w.plaintext.zeroize()
  await core.store.replaceWrapped(r.tenant, [
    {
      name: r.name,
      expectedWrapped: r.wrapped,
      wrapped: w.wrapped,
      providerFingerprint: w.fingerprint,
      updatedAt: core.now(),
    },
  ])
}

export async function createDataKey(
  core: TenantKeysCore,
  tenant: string,
  name: string,
): Promise<DataKeyWithSecret> {
  validateDataKeyName(name)
  if ((await core.store.getDataKey(tenant, name)) !== undefined) {
    throw new EngineError('DATA_KEY_EXISTS', 'the data-key catalog already has an entry of that name')
  }
  const current = await core.current(tenant)
  const w = await core.wrapUnder(tenant, current)
  try {
    const now = core.now()
    const r: DataKeyRecord = {
      tenant,
      name,
      wrapped: w.wrapped,
      providerFingerprint: w.fingerprint,
      createdAt: now,
      updatedAt: now,
    }
    if (!(await core.store.insertDataKey(r))) {
      throw new EngineError('DATA_KEY_EXISTS', 'the data-key catalog already has an entry of that name')
    }
    await followPromotion(core, r, w.plaintext)
    return { ...info(r), plaintext: w.plaintext }
  } catch (err) {
    w.plaintext.zeroize()
    throw err
  }
}

export async function getDataKey(
  core: TenantKeysCore,
  tenant: string,
  name: string,
): Promise<DataKeyWithSecret> {
  validateDataKeyName(name)
  const r = await core.store.getDataKey(tenant, name)
  if (r === undefined) throw notFound()
  // An entry under an older provider is stored under the current one now, unless a migration of the
  // tenant runs in this process: it rewrites the entry anyway, and the read stays a read (no wrap, no
  // durable write on the event loop while the migration's own writes share it).
  const u = await core.unwrapValue(tenant, r.wrapped, { rewrap: !core.isMigrating(tenant) })
  let rec = r
  if (u.rewrapped !== undefined) {
    // Compare-and-set: a concurrent rewrite or delete wins.
    const updatedAt = core.now()
    const n = await core.store.replaceWrapped(tenant, [
      {
        name,
        expectedWrapped: r.wrapped,
        wrapped: u.rewrapped.wrapped,
        providerFingerprint: u.rewrapped.fingerprint,
        updatedAt,
      },
    ])
    if (n === 1) {
      rec = { ...r, wrapped: u.rewrapped.wrapped, providerFingerprint: u.rewrapped.fingerprint, updatedAt }
    }
  }
  return { ...info(rec), plaintext: u.plaintext }
}

export async function listDataKeys(
  core: TenantKeysCore,
  tenant: string,
  options: { readonly after?: string; readonly limit?: number } = {},
): Promise<DataKeyInfo[]> {
  const limit = options.limit ?? 100
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw invalidField('limit', 'must be 1-1000')
  const rows = await core.store.listDataKeys(tenant, { after: options.after, limit })
  return rows.map(info)
}

export async function deleteDataKey(core: TenantKeysCore, tenant: string, name: string): Promise<void> {
  validateDataKeyName(name)
  if (!(await core.store.deleteDataKey(tenant, name))) throw notFound()
}

export async function wrapDek(
  core: TenantKeysCore,
  tenant: string,
  dek?: Uint8Array,
): Promise<WrappedDek & { plaintext: SecretBytes }> {
  if (dek !== undefined && !(dek instanceof Uint8Array)) throw invalidField('dek', 'must be bytes')
  const current = await core.current(tenant)
  const w = await core.wrapUnder(tenant, current, dek)
  return { ciphertext: w.wrapped, providerFingerprint: w.fingerprint, plaintext: w.plaintext }
}

export async function unwrapDek(
  core: TenantKeysCore,
  tenant: string,
  ciphertext: string,
): Promise<UnwrappedDek> {
  const u = await core.unwrapValue(tenant, ciphertext)
  return {
    plaintext: u.plaintext,
    providerFingerprint: u.provider.fingerprint,
    rewrapped: u.rewrapped?.wrapped,
  }
}
