/**
 * Registrations (Key Protect, spec digest §3.7 and §4.8): cloud resources, named by CRN, that a root key
 * protects. Created on an Active root key; merged (PATCH), replaced (PUT), deleted, deactivated; listed per
 * key or across keys with a CRN pattern. A registration's state is not stored: it follows its key's
 * (`registrationState`). The key-deletion rule (`checkKeyDeletable`) is applied by deletion.ts.
 */
import { assertAllowed, concurrentChange, storeCall, type EngineContext } from '../context.js'
import { EngineError } from '../errors.js'
import { KeyState, type KeyStateValue } from '../key-state.js'
import type { RegistrationRecord } from '../ports.js'
import {
  optionsObject,
  validateActor,
  validateDescription,
  validateInstance,
  validatePaging,
} from '../validate.js'
import type {
  KeyScope,
  ListRegistrationsOptions,
  RegistrationInfo,
  RegistrationInput,
} from '../engine-types.js'
import { effectiveState } from '../key-state.js'
import type { CachedKey } from './directory.js'
import { currentVersion } from './directory.js'
import { versionInfo } from './views.js'

/** Segments a CRN has up to the service instance (`crn:v1:<cloud>:<type>:<service>:<region>:<scope>:<instance>`). */
const INSTANCE_SEGMENTS = 8
const MAX_SEGMENTS = 10
const CRN_PARAM = 'urlEncodedResourceCRN'
const QUERY_PARAM = 'urlEncodedResourceCRNQuery'
const CRN_CHARS_RE = /^[\x21-\x7e]+$/

function invalidParam(name: string, message: string): EngineError {
  return new EngineError('INVALID_FIELD_ERR', `${name}: ${message}`, { target: { type: 'param', name } })
}

/** A resource CRN: `crn:`, 8–10 segments, the service instance named, no wildcard. */
export function validateResourceCrn(crn: unknown): string {
  if (typeof crn !== 'string' || crn.length > 512 || !CRN_CHARS_RE.test(crn) || crn.includes('*')) {
    throw invalidParam(CRN_PARAM, 'must be a CRN of printable characters without *, at most 512')
  }
  const seg = crn.split(':')
  if (seg[0] !== 'crn' || seg.length < INSTANCE_SEGMENTS || seg.length > MAX_SEGMENTS) {
    throw invalidParam(
      CRN_PARAM,
      'must be a CRN specified to at least the service instance, at most 10 segments',
    )
  }
  if ((seg[INSTANCE_SEGMENTS - 1] ?? '').length === 0) {
    throw invalidParam(CRN_PARAM, 'must be specified to at least the service instance')
  }
  return crn
}

/**
 * A CRN pattern as a matcher: `*` as a segment matches any one segment; `*` in the last segment makes it a
 * prefix search (what comes before the `*` starts the rest of the CRN). `acrossKeys`: no `*` in the first 8
 * segments, which must all be given.
 */
export function crnMatcher(query: unknown, acrossKeys: boolean): (crn: string) => boolean {
  if (typeof query !== 'string' || query.length === 0 || query.length > 512 || !CRN_CHARS_RE.test(query)) {
    throw invalidParam(QUERY_PARAM, 'must be a CRN pattern of printable characters, at most 512')
  }
  const q = query.split(':')
  if (q[0] !== 'crn' || q.length > MAX_SEGMENTS) {
    throw invalidParam(QUERY_PARAM, 'must be a CRN pattern of at most 10 segments')
  }
  if (
    acrossKeys &&
    (q.length < INSTANCE_SEGMENTS || q.slice(0, INSTANCE_SEGMENTS).some((s) => s.includes('*') || s === ''))
  ) {
    throw invalidParam(QUERY_PARAM, 'must be: specified to at least the service instance')
  }
  const last = q.length - 1
  return (crn) => {
    const c = crn.split(':')
    for (let i = 0; i < q.length; i++) {
      const p = q[i] ?? ''
      if (i === last && p.includes('*')) {
        const prefix = p.slice(0, p.indexOf('*'))
        return c.length > i && c.slice(i).join(':').startsWith(prefix)
      }
      if (i >= c.length) return false
      if (p !== '*' && p !== c[i]) return false
    }
    return c.length === q.length
  }
}

/** A registration's state, from its key's (spec digest §4.8). */
export function registrationState(r: RegistrationRecord, keyState: KeyStateValue): KeyStateValue {
  if (r.deactivated) return KeyState.DEACTIVATED
  if (keyState === KeyState.DESTROYED || keyState === KeyState.SUSPENDED) return KeyState.SUSPENDED
  return keyState
}

function toInfo(ctx: EngineContext, k: CachedKey, r: RegistrationRecord): RegistrationInfo {
  const v = [...k.versions.values()].find((x) => x.versionId === r.keyVersionId) ?? currentVersion(k)
  const keyState = effectiveState(k.record.state, k.record.expirationDate, ctx.clock.now())
  return {
    keyId: r.keyId,
    keyName: k.record.name,
    resourceCrn: r.resourceCrn,
    description: r.description,
    registrationMetadata: r.registrationMetadata,
    preventKeyDeletion: r.preventKeyDeletion,
    keyVersion: versionInfo(v),
    state: registrationState(r, keyState),
    createdAt: new Date(r.createdAt),
    createdBy: r.createdBy,
    updatedAt: new Date(r.updatedAt),
    updatedBy: r.updatedBy,
  }
}

interface CleanInput {
  preventKeyDeletion?: boolean
  description?: string | undefined
  registrationMetadata?: string | undefined
  keyVersionId?: string | undefined
}

function cleanInput(k: CachedKey, input: RegistrationInput): CleanInput {
  const x = optionsObject(input)
  const out: CleanInput = {}
  if (x.preventKeyDeletion !== undefined) {
    if (typeof x.preventKeyDeletion !== 'boolean') {
      throw new EngineError('INVALID_FIELD_ERR', 'preventKeyDeletion: must be a boolean', {
        target: { type: 'field', name: 'preventKeyDeletion' },
      })
    }
    out.preventKeyDeletion = x.preventKeyDeletion
  }
  if (x.description !== undefined) out.description = validateDescription(x.description)
  if (x.registrationMetadata !== undefined) {
    if (typeof x.registrationMetadata !== 'string' || x.registrationMetadata.length > 4096) {
      throw new EngineError(
        'INVALID_FIELD_ERR',
        'registrationMetadata: must be a string of at most 4096 characters',
        {
          target: { type: 'field', name: 'registrationMetadata' },
        },
      )
    }
    out.registrationMetadata = x.registrationMetadata
  }
  if (x.keyVersionId !== undefined) {
    if (![...k.versions.values()].some((v) => v.versionId === x.keyVersionId)) {
      throw new EngineError('INVALID_FIELD_ERR', 'keyVersionId: is not a version of this key', {
        target: { type: 'field', name: 'keyVersionId' },
      })
    }
    out.keyVersionId = x.keyVersionId
  }
  return out
}

/**
 * Registers a resource to an Active root key. `created` is false when an identical registration (same
 * preventKeyDeletion, description and metadata) exists.
 * @throws EngineError REGISTRATION_DUP_ERR (one exists with other properties), KEY_INVALID_STATE_ERR
 */
export async function createRegistration(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  resourceCrn: string,
  input: RegistrationInput,
  options: { by?: string } & KeyScope,
): Promise<{ registration: RegistrationInfo; created: boolean }> {
  options = optionsObject(options)
  const by = validateActor(options.by, 'by')
  const crn = validateResourceCrn(resourceCrn)
  const k0 = await ctx.keys.resolve(instance, idOrAlias, true, options.keyRingId)
  return ctx.locks.withKey(instance, k0.record.id, async () => {
    const k = await ctx.keys.load(instance, k0.record.id, true)
    assertAllowed(ctx, 'register', k.record)
    const x = cleanInput(k, input)
    const now = ctx.clock.now()
    const rec: RegistrationRecord = {
      instance,
      keyId: k.record.id,
      resourceCrn: crn,
      description: x.description,
      registrationMetadata: x.registrationMetadata,
      preventKeyDeletion: x.preventKeyDeletion ?? false,
      keyVersionId: x.keyVersionId,
      deactivated: false,
      createdAt: now,
      createdBy: by,
      updatedAt: now,
      updatedBy: by,
    }
    if (await storeCall(() => ctx.store.insertRegistration(rec))) {
      return { registration: toInfo(ctx, k, rec), created: true }
    }
    const old = await storeCall(() => ctx.store.getRegistration(instance, k.record.id, crn))
    // Not inserted and none there: the key left state 1 in another process since it was read.
    if (old === undefined) throw concurrentChange('key: state changed concurrently; registration not created')
    if (
      old.preventKeyDeletion === rec.preventKeyDeletion &&
      old.description === rec.description &&
      old.registrationMetadata === rec.registrationMetadata
    ) {
      return { registration: toInfo(ctx, k, old), created: false }
    }
    throw new EngineError(
      'REGISTRATION_DUP_ERR',
      'registration: one exists for this key and resource with other properties',
    )
  })
}

/**
 * Changes a registration: `merge` (PATCH) keeps the fields not given, otherwise (PUT) they are reset.
 * @throws EngineError REGISTRATION_NOT_FOUND_ERR
 */
export async function updateRegistration(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  resourceCrn: string,
  input: RegistrationInput,
  options: { by?: string } & KeyScope,
  merge: boolean,
): Promise<RegistrationInfo> {
  options = optionsObject(options)
  const by = validateActor(options.by, 'by')
  const crn = validateResourceCrn(resourceCrn)
  return withRegistration(ctx, instance, idOrAlias, crn, options, async (k, old) => {
    const x = cleanInput(k, input)
    const base = merge
      ? old
      : {
          ...old,
          description: undefined,
          registrationMetadata: undefined,
          preventKeyDeletion: false,
          keyVersionId: undefined,
        }
    const rec: RegistrationRecord = { ...base, ...x, updatedAt: ctx.clock.now(), updatedBy: by }
    if (!(await storeCall(() => ctx.store.updateRegistration(rec)))) throw notFound()
    return toInfo(ctx, k, rec)
  })
}

/** Deletes a registration and returns it. @throws EngineError REGISTRATION_NOT_FOUND_ERR */
export async function deleteRegistration(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  resourceCrn: string,
  scope: KeyScope,
): Promise<RegistrationInfo> {
  const crn = validateResourceCrn(resourceCrn)
  return withRegistration(ctx, instance, idOrAlias, crn, optionsObject(scope), async (k, old) => {
    if (!(await storeCall(() => ctx.store.deleteRegistration(instance, k.record.id, crn)))) throw notFound()
    return toInfo(ctx, k, old)
  })
}

/**
 * Deactivates a Suspended registration (its key disabled or deleted): the deprecated `?action=deactivate`.
 * @throws EngineError REGISTRATION_NOT_FOUND_ERR, REG_INVALID_STATE_ERR
 */
export async function deactivateRegistration(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  resourceCrn: string,
  options: { by?: string } & KeyScope,
): Promise<RegistrationInfo> {
  options = optionsObject(options)
  const by = validateActor(options.by, 'by')
  const crn = validateResourceCrn(resourceCrn)
  return withRegistration(ctx, instance, idOrAlias, crn, options, async (k, old) => {
    const keyState = effectiveState(k.record.state, k.record.expirationDate, ctx.clock.now())
    if (registrationState(old, keyState) !== KeyState.SUSPENDED) {
      throw new EngineError(
        'REG_INVALID_STATE_ERR',
        'registration: must be Suspended (2), its key disabled or deleted, to be deactivated',
      )
    }
    const rec: RegistrationRecord = { ...old, deactivated: true, updatedAt: ctx.clock.now(), updatedBy: by }
    if (!(await storeCall(() => ctx.store.updateRegistration(rec)))) throw notFound()
    return toInfo(ctx, k, rec)
  })
}

/** A key's registrations (`idOrAlias`), or the instance's across keys (`idOrAlias` undefined), paged. */
export async function listRegistrations(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string | undefined,
  options: ListRegistrationsOptions,
): Promise<{ registrations: RegistrationInfo[]; total: number }> {
  options = optionsObject(options)
  instance = validateInstance(instance)
  const { limit, offset } = validatePaging(options.limit, options.offset)
  const match =
    options.resourceCrnQuery === undefined
      ? undefined
      : crnMatcher(options.resourceCrnQuery, idOrAlias === undefined)
  if (options.preventKeyDeletion !== undefined && typeof options.preventKeyDeletion !== 'boolean') {
    throw invalidParam('preventKeyDeletion', 'must be a boolean')
  }
  let query: { keyId?: string; keyRingId?: string }
  if (idOrAlias !== undefined) {
    const k = await ctx.keys.resolve(instance, idOrAlias, true, options.keyRingId)
    query = { keyId: k.record.id }
  } else {
    query = options.keyRingId === undefined ? {} : { keyRingId: options.keyRingId }
  }
  const all = (await storeCall(() => ctx.store.listRegistrations(instance, query))).filter(
    (r) =>
      (match === undefined || match(r.resourceCrn)) &&
      (options.preventKeyDeletion === undefined || r.preventKeyDeletion === options.preventKeyDeletion),
  )
  const page = all.slice(offset, offset + limit)
  const keys = new Map<string, CachedKey>()
  const out: RegistrationInfo[] = []
  for (const r of page) {
    let k = keys.get(r.keyId)
    if (k === undefined) {
      k = await ctx.keys.load(instance, r.keyId, true)
      keys.set(r.keyId, k)
    }
    out.push(toInfo(ctx, k, r))
  }
  return { registrations: out, total: all.length }
}

/**
 * The registration rule of a key delete (spec digest §4.8), checked under the key's lock before anything
 * changes: a registration with preventKeyDeletion refuses it even when forced; other registrations refuse
 * it unless forced. Returns whether registrations are to be removed once the key is deleted.
 * @throws EngineError PREV_KEY_DEL_ERR, PROTECTED_RESOURCE_ERR
 */
export async function checkKeyDeletable(
  ctx: EngineContext,
  instance: string,
  keyId: string,
  force: boolean,
): Promise<boolean> {
  const regs = await storeCall(() => ctx.store.listRegistrations(instance, { keyId }))
  if (regs.length === 0) return false
  const prevent = regs.find((r) => r.preventKeyDeletion)
  if (prevent !== undefined) {
    throw new EngineError(
      'PREV_KEY_DEL_ERR',
      `key: registration ${prevent.resourceCrn} has preventKeyDeletion; the key cannot be deleted`,
    )
  }
  if (!force) {
    throw new EngineError(
      'PROTECTED_RESOURCE_ERR',
      `key: protects ${regs.length} registered resource(s); delete with force to remove the registrations`,
    )
  }
  return true
}

function notFound(): EngineError {
  return new EngineError('REGISTRATION_NOT_FOUND_ERR', 'registration: the key has none for this resource')
}

async function withRegistration<T>(
  ctx: EngineContext,
  instance: string,
  idOrAlias: string,
  crn: string,
  scope: KeyScope,
  fn: (k: CachedKey, old: RegistrationRecord) => Promise<T>,
): Promise<T> {
  const k0 = await ctx.keys.resolve(instance, idOrAlias, true, scope.keyRingId)
  return ctx.locks.withKey(instance, k0.record.id, async () => {
    const k = await ctx.keys.load(instance, k0.record.id, true)
    const old = await storeCall(() => ctx.store.getRegistration(instance, k.record.id, crn))
    if (old === undefined) throw notFound()
    return fn(k, old)
  })
}
