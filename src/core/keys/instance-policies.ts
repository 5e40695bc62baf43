/**
 * Instance policies (Key Protect, spec digest §3.5 and §4.7): one policy of each type per instance, stored
 * in the catalog (InstancePolicyStore) and read through {@link InstancePolicyCache}, so that the checks on
 * the hot path (allowedIP on every request) answer from memory without an await.
 *
 * Rules:
 * - `attributes` are required when a policy with attributes is enabled and dropped when it is disabled
 *   (disabling resets them); keyCreateImportAccess attributes default to true (create/import) and false
 *   (`enforce_token`).
 * - allowedIP: a request whose client address is outside the CIDRs (or unknown) is refused with
 *   IP_ADDRESS_NOT_ALLOWED_ERR ({@link checkClientAddress}).
 * - keyCreateImportAccess: create, import and rotate of a forbidden kind (root/standard × generated/imported,
 *   imported material without an import token under `enforce_token`) → KEY_CREATE_IMPORT_ACCESS_ERR.
 * - rotation and dualAuthDelete: a root key created while they are enabled gets them as key policies, unless
 *   its creation names its own policy of that type (keys_with_policy_overrides); existing keys are left as
 *   they are (the doc: instance policies apply to keys created after the change).
 * - allowedNetwork and metrics are stored and returned; there is no private endpoint nor metrics sink here.
 *
 * The cache holds an instance's policies for the engine's metadata TTL; a PUT through this engine
 * invalidates it at once, another process's PUT is seen once the entry expires.
 */
import { storeCall, type EngineContext } from '../context.js'
import { EngineError, invalidField } from '../errors.js'
import type { InstancePolicyRecord, InstancePolicyType, KeyPolicyRecord, MetadataStore } from '../ports.js'
import { addressList, parseCidr, type AddressList } from '../address-list.js'
import { optionsObject, validateActor, validateInstance } from '../validate.js'
import type { InstancePolicyInfo, InstancePolicyInput, KeyPoliciesInput } from '../engine-types.js'

export const INSTANCE_POLICY_TYPES: readonly InstancePolicyType[] = [
  'allowedNetwork',
  'dualAuthDelete',
  'allowedIP',
  'keyCreateImportAccess',
  'metrics',
  'rotation',
]

/** Most CIDRs in one allowedIP policy. */
export const MAX_ALLOWED_IP_ENTRIES = 1000

const ACCESS_FLAGS = [
  'create_root_key',
  'create_standard_key',
  'import_root_key',
  'import_standard_key',
] as const

/** What the checks need of an instance's policies, compiled once per load. */
export interface InstancePolicySet {
  readonly records: readonly InstancePolicyRecord[]
  /** The allowedIP list when that policy is enabled. */
  readonly allowedIp: AddressList | undefined
  /** keyCreateImportAccess attributes when that policy is enabled. */
  readonly access: Readonly<Record<(typeof ACCESS_FLAGS)[number] | 'enforce_token', boolean>> | undefined
  /** rotation interval (months) when that policy is enabled. */
  readonly rotationMonths: number | undefined
  readonly dualAuthDelete: boolean
  readonly loadedAt: number
}

function compile(records: readonly InstancePolicyRecord[], now: number): InstancePolicySet {
  const on = (t: InstancePolicyType) => records.find((r) => r.type === t && r.enabled)
  const ip = on('allowedIP')
  const acc = on('keyCreateImportAccess')
  const rot = on('rotation')
  const a = (acc?.attributes ?? {}) as Record<string, unknown>
  return {
    records,
    allowedIp: ip === undefined ? undefined : addressList((ip.attributes?.['allowed_ip'] ?? []) as string[]),
    access:
      acc === undefined
        ? undefined
        : {
            create_root_key: a['create_root_key'] !== false,
            create_standard_key: a['create_standard_key'] !== false,
            import_root_key: a['import_root_key'] !== false,
            import_standard_key: a['import_standard_key'] !== false,
            enforce_token: a['enforce_token'] === true,
          },
    rotationMonths: rot === undefined ? undefined : (rot.attributes?.['interval_month'] as number),
    dualAuthDelete: on('dualAuthDelete') !== undefined,
    loadedAt: now,
  }
}

/** An in-memory view of each instance's policies, loaded single-flight, kept `ttlMs`. */
export class InstancePolicyCache {
  readonly #entries = new Map<string, InstancePolicySet>()
  readonly #loading = new Map<string, Promise<InstancePolicySet>>()

  constructor(
    private readonly store: MetadataStore,
    private readonly now: () => number,
    private readonly ttlMs: number,
  ) {}

  /** The instance's policies if cached and fresh; no await. */
  peek(instance: string): InstancePolicySet | undefined {
    const e = this.#entries.get(instance)
    return e !== undefined && this.now() - e.loadedAt < this.ttlMs ? e : undefined
  }

  /** The instance's policies, from the cache or the catalog. */
  get(instance: string): InstancePolicySet | Promise<InstancePolicySet> {
    return this.peek(instance) ?? this.load(instance)
  }

  /** Reads the catalog (one read in flight per instance). */
  load(instance: string): Promise<InstancePolicySet> {
    let p = this.#loading.get(instance)
    if (p === undefined) {
      p = storeCall(() => this.store.listInstancePolicies(instance))
        .then((records) => {
          const set = compile(records, this.now())
          this.#entries.set(instance, set)
          return set
        })
        .finally(() => this.#loading.delete(instance))
      this.#loading.set(instance, p)
    }
    return p
  }

  invalidate(instance: string): void {
    this.#entries.delete(instance)
  }
}

function info(r: InstancePolicyRecord): InstancePolicyInfo {
  return {
    type: r.type,
    enabled: r.enabled,
    attributes: r.attributes,
    createdAt: new Date(r.createdAt),
    createdBy: r.createdBy,
    updatedAt: new Date(r.updatedAt),
    updatedBy: r.updatedBy,
  }
}

function validateType(type: unknown, field: string): InstancePolicyType {
  if (typeof type !== 'string' || !INSTANCE_POLICY_TYPES.includes(type as InstancePolicyType)) {
    throw invalidField(field, `must be one of ${INSTANCE_POLICY_TYPES.join(', ')}`)
  }
  return type as InstancePolicyType
}

function missing(name: string, message: string): EngineError {
  return new EngineError('MISSING_FIELD_ERR', `${name}: ${message}`, { target: { type: 'field', name } })
}

/**
 * The stored attributes of an enabled policy of `type`, validated and completed.
 * @throws EngineError INVALID_FIELD_ERR, MISSING_FIELD_ERR
 */
function attributesOf(type: InstancePolicyType, raw: unknown): Record<string, unknown> | undefined {
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    throw invalidField('attributes', 'must be an object')
  }
  const a = (raw ?? {}) as Record<string, unknown>
  const allowedNames: Record<InstancePolicyType, readonly string[]> = {
    dualAuthDelete: [],
    metrics: [],
    rotation: ['interval_month'],
    allowedNetwork: ['allowed_network'],
    allowedIP: ['allowed_ip'],
    keyCreateImportAccess: [...ACCESS_FLAGS, 'enforce_token'],
  }
  for (const name of Object.keys(a)) {
    if (!allowedNames[type].includes(name)) throw invalidField(name, `is not an attribute of ${type}`)
  }
  switch (type) {
    case 'dualAuthDelete':
    case 'metrics':
      return undefined
    case 'rotation': {
      const m = a['interval_month']
      if (m === undefined) throw missing('interval_month', 'is required to enable rotation')
      if (typeof m !== 'number' || !Number.isInteger(m) || m < 1 || m > 12) {
        throw invalidField('interval_month', 'must be an integer from 1 to 12')
      }
      return { interval_month: m }
    }
    case 'allowedNetwork': {
      const n = a['allowed_network']
      if (n === undefined) throw missing('allowed_network', 'is required to enable allowedNetwork')
      if (n !== 'public-and-private' && n !== 'private-only') {
        throw invalidField('allowed_network', 'must be public-and-private or private-only')
      }
      return { allowed_network: n }
    }
    case 'allowedIP': {
      const list = a['allowed_ip']
      if (list === undefined) throw missing('allowed_ip', 'is required to enable allowedIP')
      if (!Array.isArray(list) || list.length === 0 || list.length > MAX_ALLOWED_IP_ENTRIES) {
        throw invalidField('allowed_ip', `must be 1-${MAX_ALLOWED_IP_ENTRIES} IPv4/IPv6 CIDRs`)
      }
      for (const c of list) {
        if (typeof c !== 'string') throw invalidField('allowed_ip', 'must be strings')
        const p = parseCidr(c)
        if (!p.ok) throw invalidField('allowed_ip', p.reason)
      }
      return { allowed_ip: [...(list as string[])] }
    }
    case 'keyCreateImportAccess': {
      const out: Record<string, boolean> = {}
      for (const name of [...ACCESS_FLAGS, 'enforce_token'] as const) {
        const v = a[name]
        if (v !== undefined && typeof v !== 'boolean') throw invalidField(name, 'must be a boolean')
        out[name] = v ?? name !== 'enforce_token'
      }
      return out
    }
  }
}

/**
 * Sets instance policies (each type at most once per call), in one catalog transaction; the first
 * creation date and creator of a type are kept.
 * @throws EngineError INVALID_FIELD_ERR, MISSING_FIELD_ERR
 */
export async function setInstancePolicies(
  ctx: EngineContext,
  instance: string,
  policies: readonly InstancePolicyInput[],
  options: { updatedBy?: string },
): Promise<InstancePolicyInfo[]> {
  validateInstance(instance)
  const actor = validateActor(optionsObject(options).updatedBy, 'updatedBy')
  const given: unknown = policies
  if (!Array.isArray(given) || given.length === 0) {
    throw invalidField('resources', 'give at least one instance policy')
  }
  const existing = await storeCall(() => ctx.store.listInstancePolicies(instance))
  const now = ctx.clock.now()
  const seen = new Set<InstancePolicyType>()
  const records: InstancePolicyRecord[] = []
  for (const p0 of policies) {
    const p: InstancePolicyInput = optionsObject(p0)
    const type = validateType(p.type, 'policy_type')
    if (seen.has(type)) throw invalidField('policy_type', `${type} is given more than once`)
    seen.add(type)
    if (typeof p.enabled !== 'boolean') throw invalidField('enabled', 'must be a boolean')
    const prev = existing.find((r) => r.type === type)
    records.push({
      instance,
      type,
      enabled: p.enabled,
      attributes: p.enabled ? attributesOf(type, p.attributes) : undefined,
      createdAt: prev?.createdAt ?? now,
      createdBy: prev === undefined ? actor : prev.createdBy,
      updatedAt: now,
      updatedBy: actor,
    })
  }
  await storeCall(() => ctx.store.putInstancePolicies(instance, records))
  ctx.instancePolicies.invalidate(instance)
  return records.map(info)
}

/** The instance's policies (all, or of one type), fresh from the catalog; a type never set is absent. */
export async function getInstancePolicies(
  ctx: EngineContext,
  instance: string,
  type: InstancePolicyType | undefined,
): Promise<InstancePolicyInfo[]> {
  validateInstance(instance)
  if (type !== undefined) validateType(type, 'policy')
  ctx.instancePolicies.invalidate(instance)
  const set = await ctx.instancePolicies.load(instance)
  return set.records.filter((r) => type === undefined || r.type === type).map(info)
}

function refuseAddress(set: InstancePolicySet, address: string | undefined): void {
  if (set.allowedIp !== undefined && !set.allowedIp.matches(address)) {
    throw new EngineError(
      'IP_ADDRESS_NOT_ALLOWED_ERR',
      address === undefined
        ? 'the client address is unknown and the instance has an allowedIP policy'
        : `the client address ${address} is not allowed by the instance's allowedIP policy`,
    )
  }
}

/**
 * Checks `address` against the instance's allowedIP policy: synchronous (`undefined`) while the policy is
 * cached, a promise when it must be read.
 * @throws EngineError IP_ADDRESS_NOT_ALLOWED_ERR
 */
export function checkClientAddress(
  ctx: EngineContext,
  instance: string,
  address: string | undefined,
): undefined | Promise<void> {
  const set = ctx.instancePolicies.peek(instance)
  if (set !== undefined) {
    refuseAddress(set, address)
    return undefined
  }
  return ctx.instancePolicies.load(instance).then((s) => {
    refuseAddress(s, address)
  })
}

/**
 * Refuses a create, import or rotation that the instance's keyCreateImportAccess policy forbids.
 * @throws EngineError KEY_CREATE_IMPORT_ACCESS_ERR
 */
export async function assertCreateImportAccess(
  ctx: EngineContext,
  instance: string,
  what: {
    readonly root: boolean
    readonly imported: boolean
    readonly withToken: boolean
    readonly op: string
  },
): Promise<void> {
  const access = (await ctx.instancePolicies.get(instance)).access
  if (access === undefined) return
  const flag = `${what.imported ? 'import' : 'create'}_${what.root ? 'root' : 'standard'}_key` as const
  if (!access[flag]) {
    throw new EngineError(
      'KEY_CREATE_IMPORT_ACCESS_ERR',
      `${what.op}: the instance's keyCreateImportAccess policy has ${flag}=false`,
    )
  }
  if (what.imported && !what.withToken && access.enforce_token) {
    throw new EngineError(
      'KEY_CREATE_IMPORT_ACCESS_ERR',
      `${what.op}: the instance's keyCreateImportAccess policy requires an import token (enforce_token)`,
    )
  }
}

/**
 * The key policies a new root key gets from its instance: rotation and dualAuthDelete when enabled there
 * and not given by the creation itself (`own`).
 */
export async function instanceKeyPolicyDefaults(
  ctx: EngineContext,
  instance: string,
  own: readonly KeyPolicyRecord[],
): Promise<KeyPoliciesInput> {
  const set = await ctx.instancePolicies.get(instance)
  const has = (t: KeyPolicyRecord['type']) => own.some((p) => p.type === t)
  return {
    ...(set.rotationMonths !== undefined && !has('rotation')
      ? { rotation: { enabled: true, intervalMonth: set.rotationMonths } }
      : {}),
    ...(set.dualAuthDelete && !has('dualAuthDelete') ? { dualAuthDelete: { enabled: true } } : {}),
  }
}
