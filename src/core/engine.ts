/**
 * EnvelopeEngine: the public face of the engine. Every method keeps its signature and TSDoc and delegates to
 * the operation module that owns the rule (docs/architecture.md):
 * - keys/: the directory (metadata cache), locks, provisioning, lifecycle, transitions, deletion, standard
 *   keys, policies, key rings, aliases, tags, queries;
 * - wrap/: the DEK wrapper (single items and batches), the usage meter, wrap/unwrap/rewrap/reencrypt, batches;
 * - envelope/: where data keys come from (direct or cached), seal, open, streams;
 * - jobs/: reconciliation, due rotations, scheduled deletions, the scheduler.
 * Operation modules never call back into this facade. Depends only on the ports (DESIGN.md).
 * Over 500 lines only because it carries the TSDoc of all 51 public members; each body is a delegation.
 */
import type { Transform } from 'node:stream'
import { checkOpen, guard, type EngineContext } from './context.js'
import { EngineError, type ErrorCode } from './errors.js'
import { Mechanism } from './format/ciphertext.js'
import {
  systemClock,
  type CallOptions,
  type ImportAlgorithm,
  type InstancePolicyType,
  type KeyPolicyType,
  type TagPair,
} from './ports.js'
import { optionsObject } from './validate.js'
import {
  KEY_PROTECT_LIFECYCLE,
  type AddAliasOptions,
  type AliasNameInfo,
  type AutoPurgeResult,
  type BatchOptions,
  type BatchResult,
  type CreateKeyOptions,
  type EnableOptions,
  type EngineOptions,
  type EventAckInput,
  type ImportTokenInfo,
  type ImportTokenOptions,
  type ImportTokenRetrieval,
  type KeyAliasInfo,
  type InstancePolicyInfo,
  type InstancePolicyInput,
  type KeyEventInfo,
  type KeyInfo,
  type KeyPoliciesInput,
  type KeyPolicyInfo,
  type KeyRingInfo,
  type KeyScope,
  type KeyVersionInfo,
  type ListKeysOptions,
  type ListRegistrationsOptions,
  type ListVersionsOptions,
  type OpenOptions,
  type ReconcileReport,
  type ReencryptManyItem,
  type ReencryptManyOptions,
  type ReencryptResult,
  type RegistrationInfo,
  type RegistrationInput,
  type RewrapResult,
  type SealOptions,
  type SecureImportInput,
  type UnwrapOptions,
  type UnwrapResult,
  type WrapOptions,
  type WrapResult,
} from './engine-types.js'
import { KeyDirectory } from './keys/directory.js'
import { KeyLocks } from './keys/locks.js'
import * as aliases from './keys/aliases.js'
import * as deletion from './keys/deletion.js'
import * as keyRings from './keys/key-rings.js'
import * as lifecycle from './keys/lifecycle.js'
import * as policyOps from './keys/policies.js'
import * as query from './keys/query.js'
import * as standardKeys from './keys/standard-keys.js'
import * as tagOps from './keys/tags.js'
import * as transitions from './keys/transitions.js'
import * as importTokens from './keys/import-token.js'
import * as instancePolicies from './keys/instance-policies.js'
import * as events from './keys/events.js'
import * as registrations from './keys/registrations.js'
import { keyRegionRole } from './keys/key-regions.js'
import type { KeyRegionStore } from './ports-key-regions.js'
import { createDekWrapper } from './wrap/dek-wrapper.js'
import { UsageMeter } from './wrap/usage-meter.js'
import * as batch from './wrap/batch.js'
import * as wrapOps from './wrap/wrap.js'
import { createDekSource } from './envelope/dek-source.js'
import * as openOps from './envelope/open.js'
import * as sealOps from './envelope/seal.js'
import { reconcile as reconcileOp } from './jobs/reconcile.js'
import * as rotation from './jobs/rotation.js'
import * as scheduledDeletion from './jobs/scheduled-deletion.js'
import * as autoPurge from './jobs/auto-purge.js'

export { KEY_PROTECT_LIFECYCLE } from './engine-types.js'
export type {
  AddAliasOptions,
  AliasNameInfo,
  AutoPurgeResult,
  BatchOptions,
  BatchResult,
  CreateKeyOptions,
  EnableOptions,
  ImportTokenOptions,
  ImportTokenInfo,
  ImportTokenRetrieval,
  KeyAliasInfo,
  InstancePolicyAttributes,
  InstancePolicyInfo,
  InstancePolicyInput,
  SecureImportInput,
  RegistrationInput,
  RegistrationInfo,
  ListRegistrationsOptions,
  KeyEventInfo,
  EventAckInput,
  EngineOptions,
  KeyInfo,
  KeyPoliciesInput,
  KeyPolicyInfo,
  KeyRingInfo,
  KeyScope,
  KeyVersionInfo,
  LifecyclePolicy,
  ListKeysOptions,
  ListVersionsOptions,
  OpenOptions,
  ReconcileReport,
  ReencryptManyItem,
  ReencryptManyOptions,
  ReencryptResult,
  RewrapResult,
  SealOptions,
  UnwrapOptions,
  UnwrapResult,
  WrapOptions,
  WrapResult,
} from './engine-types.js'

/**
 * The envelope-encryption engine. Create it with {@link createEngine}; every method takes the instance
 * (tenant) first, and an instance never sees another instance's keys.
 */
export class EnvelopeEngine {
  readonly #ctx: EngineContext
  readonly #ownsDeps: boolean
  readonly #keyRegions: KeyRegionStore | undefined

  /** @internal use {@link createEngine} */
  constructor(options: EngineOptions) {
    const provider = options.provider
    const store = options.store
    const clock = options.clock ?? systemClock
    const wrapper = createDekWrapper(provider)
    if (wrapper.mechanism === Mechanism.OPAQUE && options.pool !== undefined) {
      throw new EngineError('CONFIG_INVALID', 'pool: runs PKCS#11 providers only')
    }
    const usage = new UsageMeter(store, options.usage?.limit ?? 2 ** 32, options.usage?.block ?? 65_536)
    const keys = new KeyDirectory({
      store,
      clock,
      ttlMs: options.metadataCacheTtlMs ?? 1000,
      pollMs: options.catalogPollIntervalMs ?? 50,
      mechanism: wrapper.mechanism,
      dekCache: options.dekCache,
    })
    const ctx: Omit<EngineContext, 'deks'> & { deks?: EngineContext['deks'] } = {
      provider,
      store,
      clock,
      life: { ...KEY_PROTECT_LIFECYCLE, ...options.lifecycle },
      keys,
      instancePolicies: new instancePolicies.InstancePolicyCache(
        store,
        () => clock.now(),
        options.metadataCacheTtlMs ?? 1000,
      ),
      locks: new KeyLocks(),
      usage,
      wrapper,
      dekCache: options.dekCache,
      pool: options.pool,
      reconcileGraceMs: options.reconcileGraceMs ?? 60_000,
      systemKeyInflight: new Map(),
      closed: false,
    }
    // The DEK source needs the rest of the context; it is chosen (direct or cached) once, here.
    ctx.deks = createDekSource(ctx as EngineContext)
    this.#ctx = ctx as EngineContext
    this.#ownsDeps = options.ownsDependencies ?? true
    this.#keyRegions = keyRegionRole(this.#ctx)
  }

  /**
   * The catalog's key-region role: in which regions of a regional API (the AWS-KMS-compatible endpoint) a
   * key is present, and its access policy there. Calls fail with ENGINE_CLOSED once the engine is closed
   * and with STORE_ERROR when the catalog fails. Undefined when the store does not implement the role (the
   * SQLite catalog does).
   */
  get keyRegions(): KeyRegionStore | undefined {
    return this.#keyRegions
  }

  /** The provider's name, e.g. `pkcs11:softhsm2`. */
  get providerName(): string {
    return this.#ctx.provider.name
  }

  /**
   * The `encryptionAlgorithm`s of a secure import the provider can unwrap inside the device, preferred
   * first (a PKCS#11 token: its profile's `oaepHashes`; SoftHSM2 2.6: `RSAES_OAEP_SHA_1` only). Empty: no
   * import tokens ({@link createImportToken} is PROVIDER_UNSUPPORTED).
   */
  get importAlgorithms(): readonly ImportAlgorithm[] {
    return [...(this.#ctx.provider.capabilities.importTokens ?? [])]
  }

  /**
   * Creates a root key (version 1 in the HSM) or a standard key.
   * @throws EngineError INVALID_FIELD_ERR, MISSING_FIELD_ERR, KEY_ALIAS_NOT_UNIQUE_ERR, PROVIDER_UNAVAILABLE, ...
   * @example
   * const key = await engine.createKey('acme', { name: 'payments-root' })
   */
  async createKey(instance: string, options: CreateKeyOptions): Promise<KeyInfo> {
    return guard(this.#ctx, 'createKey', () => lifecycle.createKey(this.#ctx, instance, options))
  }

  /**
   * Returns a key's metadata (never its material). Works in every state, including deleted.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError KEY_NOT_FOUND_ERR
   */
  async getKey(instance: string, idOrAlias: string, scope: KeyScope = {}): Promise<KeyInfo> {
    return guard(this.#ctx, 'getKey', () => query.getKey(this.#ctx, instance, idOrAlias, scope))
  }

  /**
   * Returns a standard key's material (Key Protect `payload`); a copy the caller owns.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError KEY_NOT_FOUND_ERR, KEY_NOT_EXTRACTABLE_ERR (root key), KEY_DELETED_ERR
   */
  async getKeyPayload(
    instance: string,
    idOrAlias: string,
    opts: CallOptions & KeyScope = {},
  ): Promise<Buffer> {
    return guard(this.#ctx, 'getKeyPayload', () =>
      standardKeys.getKeyPayload(this.#ctx, instance, idOrAlias, opts),
    )
  }

  /**
   * Lists an instance's keys, ordered by creation time then id (stable paging) unless `sort` says
   * otherwise; never returns material. `search`, `filter` and `sort` follow Key Protect (spec digest §4.11)
   * and look at most at `maxSearchSpace` keys (after the state, kind and ring selection).
   * @throws EngineError INVALID_FIELD_ERR, KEY_SEARCH_TOO_BROAD
   */
  async listKeys(
    instance: string,
    options: ListKeysOptions = {},
  ): Promise<{ keys: KeyInfo[]; total: number; incompleteSearch?: boolean }> {
    return guard(this.#ctx, 'listKeys', () => query.listKeys(this.#ctx, instance, options))
  }

  /**
   * Lists a root key's versions, oldest first.
   * @throws EngineError KEY_NOT_FOUND_ERR, KEY_DELETED_ERR (unless allKeyStates), KEY_ROOT_REQ_ERR
   */
  async listKeyVersions(
    instance: string,
    idOrAlias: string,
    options: ListVersionsOptions = {},
  ): Promise<{ versions: KeyVersionInfo[]; total: number }> {
    return guard(this.#ctx, 'listKeyVersions', () =>
      query.listKeyVersions(this.#ctx, instance, idOrAlias, options),
    )
  }

  /**
   * Creates a new version of a root key; wrap uses it from now on, older versions still unwrap.
   * Imported keys must be given new material.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR, KEY_DELETED_ERR, KEY_ROTATION_NOT_PERMITTED, MISSING_FIELD_ERR
   */
  async rotate(
    instance: string,
    idOrAlias: string,
    options: { payload?: Uint8Array; secureImport?: SecureImportInput } & KeyScope = {},
  ): Promise<KeyInfo> {
    return guard(this.#ctx, 'rotate', () => lifecycle.rotate(this.#ctx, instance, idOrAlias, options))
  }

  /**
   * Suspends a root key (state 1 → 2): wrap and unwrap are refused until {@link enable}.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR, KEY_DELETED_ERR, KEY_ROOT_REQ_ERR
   */
  async disable(instance: string, idOrAlias: string, scope: KeyScope = {}): Promise<KeyInfo> {
    return guard(this.#ctx, 'disable', () =>
      transitions.disable(this.#ctx, instance, idOrAlias, optionsObject(scope)),
    )
  }

  /**
   * Re-activates a suspended root key (state 2 → 1); refused within 30 s of its last state change unless
   * `cooldown: false` (the AWS-KMS-compatible API), and while a deletion is scheduled.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR, KEY_DELETED_ERR, KEY_ROOT_REQ_ERR
   */
  async enable(instance: string, idOrAlias: string, options: EnableOptions = {}): Promise<KeyInfo> {
    return guard(this.#ctx, 'enable', () =>
      transitions.enable(this.#ctx, instance, idOrAlias, optionsObject(options)),
    )
  }

  /**
   * Soft-deletes a key (state 5). It can be restored within the restore window and purged after 4 h.
   * A key with registrations is refused (PROTECTED_RESOURCE_ERR) unless `force`, which removes them; a
   * registration with `preventKeyDeletion` refuses it even forced (PREV_KEY_DEL_ERR). Nothing changes on a
   * refusal.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError KEY_DELETED_ERR (already deleted), KEY_NOT_FOUND_ERR, PROTECTED_RESOURCE_ERR, PREV_KEY_DEL_ERR, AUTHORIZATIONS_NOT_MET
   */
  async deleteKey(
    instance: string,
    idOrAlias: string,
    options: { deletedBy?: string; force?: boolean } & KeyScope = {},
  ): Promise<KeyInfo> {
    return guard(this.#ctx, 'deleteKey', () => deletion.deleteKey(this.#ctx, instance, idOrAlias, options))
  }

  /**
   * First authorisation of a two-person delete: a key with an enabled dualAuthDelete policy can then be
   * deleted by another user within `dualAuthWindowMs` (7 days).
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError NOT_DUAL_AUTH_ERR, KEY_DELETED_ERR, KEY_NOT_FOUND_ERR, MISSING_FIELD_ERR
   */
  async setKeyForDeletion(
    instance: string,
    idOrAlias: string,
    options: { by?: string } & KeyScope = {},
  ): Promise<KeyInfo> {
    return guard(this.#ctx, 'setKeyForDeletion', () =>
      deletion.deletionAuth(this.#ctx, instance, idOrAlias, options, true),
    )
  }

  /**
   * Withdraws a setKeyForDeletion authorisation.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError NOT_DUAL_AUTH_ERR, KEY_DELETED_ERR, KEY_NOT_FOUND_ERR
   */
  async unsetKeyForDeletion(
    instance: string,
    idOrAlias: string,
    options: { by?: string } & KeyScope = {},
  ): Promise<KeyInfo> {
    return guard(this.#ctx, 'unsetKeyForDeletion', () =>
      deletion.deletionAuth(this.#ctx, instance, idOrAlias, options, false),
    )
  }

  /**
   * Restores a deleted key to Active (state 5 → 1), from 30 s to 30 days after deletion. Imported root keys
   * must be given their original material, which is checked against the HSM copy.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * A key whose purge started ({@link purgeKey}) is never restored.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR, KEY_PURGE_IN_PROGRESS_ERR, REQ_TOO_EARLY_ERR, MISSING_FIELD_ERR, INVALID_FIELD_ERR
   */
  async restoreKey(
    instance: string,
    idOrAlias: string,
    options: { payload?: Uint8Array; secureImport?: SecureImportInput } & KeyScope = {},
  ): Promise<KeyInfo> {
    return guard(this.#ctx, 'restoreKey', () => deletion.restoreKey(this.#ctx, instance, idOrAlias, options))
  }

  /**
   * Permanently destroys a deleted key (≥ 4 h after deletion): a durable "purging" mark, its HSM objects,
   * then its catalog rows. Irreversible: every ciphertext under it becomes undecryptable. Crash-safe: once
   * marked, the key is never restored, and a purge that stopped half-way (a crash, a provider failure) is
   * finished by calling this again or by {@link reconcile}.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR (not deleted), REQ_TOO_EARLY_ERR, and the provider's errors (retry)
   */
  async purgeKey(instance: string, idOrAlias: string, scope: KeyScope = {}): Promise<void> {
    return guard(this.#ctx, 'purgeKey', () => deletion.purgeKey(this.#ctx, instance, idOrAlias, scope))
  }

  /**
   * A root key's policies (rotation, dualAuthDelete), optionally of one type.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError KEY_NOT_FOUND_ERR
   */
  async getKeyPolicies(
    instance: string,
    idOrAlias: string,
    type?: KeyPolicyType,
    scope: KeyScope = {},
  ): Promise<KeyPolicyInfo[]> {
    return guard(this.#ctx, 'getKeyPolicies', () =>
      policyOps.getKeyPolicies(this.#ctx, instance, idOrAlias, type, scope),
    )
  }

  /**
   * Sets key-level policies of a root key in state 1. A dualAuthDelete policy, once enabled, stays enabled.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError KEY_INVALID_STATE_ERR, KEY_DELETED_ERR, INVALID_FIELD_ERR
   */
  async setKeyPolicies(
    instance: string,
    idOrAlias: string,
    policies: KeyPoliciesInput,
    options: { updatedBy?: string } & KeyScope = {},
  ): Promise<KeyPolicyInfo[]> {
    return guard(this.#ctx, 'setKeyPolicies', () =>
      policyOps.setKeyPolicies(this.#ctx, instance, idOrAlias, policies, options),
    )
  }

  /**
   * Rotates every root key whose rotation policy is due: `intervalMonth` × 30 days after its last rotation
   * (or creation). A key overdue by several intervals (the engine was down) rotates once. Imported keys
   * need new material and are reported, not rotated; keys not in state 1 or 3 are skipped.
   */
  async rotateDueKeys(): Promise<{
    rotated: string[]
    skipped: string[]
    failed: { id: string; code: ErrorCode }[]
  }> {
    return guard(this.#ctx, 'rotateDueKeys', () => rotation.rotateDueKeys(this.#ctx))
  }

  /**
   * Moves a key to another key ring. `expectedRing`, when given, must be the key's current ring.
   * @throws EngineError KEY_NOT_FOUND_ERR, KEY_RING_NOT_FOUND_ERR, KEY_DELETED_ERR, INVALID_FIELD_ERR
   */
  async moveKey(
    instance: string,
    idOrAlias: string,
    keyRingId: string,
    options: { expectedRing?: string } = {},
  ): Promise<KeyInfo> {
    return guard(this.#ctx, 'moveKey', () =>
      keyRings.moveKey(this.#ctx, instance, idOrAlias, keyRingId, options),
    )
  }

  /**
   * Creates a key ring. `default` is reserved.
   * @throws EngineError INVALID_FIELD_ERR, KEY_RING_RESOURCE_QUOTA_ERR
   */
  async createKeyRing(
    instance: string,
    id: string,
    options: { createdBy?: string } = {},
  ): Promise<{ created: boolean }> {
    return guard(this.#ctx, 'createKeyRing', () => keyRings.createKeyRing(this.#ctx, instance, id, options))
  }

  /** The instance's key rings, `default` first. */
  async listKeyRings(instance: string): Promise<KeyRingInfo[]> {
    return guard(this.#ctx, 'listKeyRings', () => keyRings.listKeyRings(this.#ctx, instance))
  }

  /**
   * Deletes an empty key ring; with `force`, a ring whose keys are all deleted (they move to `default`).
   * @throws EngineError KEY_RING_NOT_FOUND_ERR, KEY_RING_NOT_EMPTY_ERR, KEY_RING_KEYS_NOT_DELETED_ERR, INVALID_FIELD_ERR
   */
  async deleteKeyRing(instance: string, id: string, options: { force?: boolean } = {}): Promise<void> {
    return guard(this.#ctx, 'deleteKeyRing', () => keyRings.deleteKeyRing(this.#ctx, instance, id, options))
  }

  /**
   * Adds an alias to a key; `created` false when the key already had it. Returns the stored alias: an
   * existing one keeps its first `createdBy` (the `createdBy` option of the call that added it) and date.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError INVALID_FIELD_ERR, KEY_ALIAS_NOT_UNIQUE_ERR, KEY_ALIAS_QUOTA_ERR, KEY_DELETED_ERR
   */
  async addAlias(
    instance: string,
    idOrAlias: string,
    alias: string,
    options: AddAliasOptions = {},
  ): Promise<KeyAliasInfo> {
    return guard(this.#ctx, 'addAlias', () =>
      aliases.addAlias(this.#ctx, instance, idOrAlias, alias, options),
    )
  }

  /**
   * Removes an alias (the key stays).
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError ALIAS_NOT_FOUND_ERR, KEY_NOT_FOUND_ERR
   */
  async removeAlias(instance: string, idOrAlias: string, alias: string, scope: KeyScope = {}): Promise<void> {
    return guard(this.#ctx, 'removeAlias', () =>
      aliases.removeAlias(this.#ctx, instance, idOrAlias, alias, scope),
    )
  }

  /**
   * Wraps a DEK under the key's latest version. Without `plaintext` it generates a 32-byte DEK from the
   * provider's RNG and returns it.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR, KEY_DELETED_ERR, KEY_NOT_FOUND_ERR, INVALID_FIELD_ERR, PROVIDER_UNAVAILABLE
   * @example
   * const { plaintext, ciphertext } = await engine.wrap('acme', keyId, { aad: ['order-42'] })
   */
  wrap(instance: string, idOrAlias: string, options: WrapOptions = {}): Promise<WrapResult> {
    return wrapOps.wrap(this.#ctx, instance, idOrAlias, options)
  }

  /**
   * Unwraps a DEK. A ciphertext made under an older version also comes back rewrapped under the latest.
   * @throws EngineError UNWRAP_AAD_MISMATCH, CIPHERTEXT_INVALID, KEY_VERSION_NOT_FOUND, KEY_ACTION_INVALID_STATE_ERR, KEY_DELETED_ERR
   */
  unwrap(
    instance: string,
    idOrAlias: string,
    ciphertext: string | Uint8Array,
    options: UnwrapOptions = {},
  ): Promise<UnwrapResult> {
    return wrapOps.unwrap(this.#ctx, instance, idOrAlias, ciphertext, options)
  }

  /**
   * Re-wraps a ciphertext under the key's latest version. The DEK is held only inside this call (AES-GCM
   * on SoftHSM2 cannot re-encrypt inside the HSM; see docs/ciphertext-format.md) and is zeroed at once.
   * @throws EngineError as {@link unwrap}
   */
  rewrap(
    instance: string,
    idOrAlias: string,
    ciphertext: string | Uint8Array,
    options: UnwrapOptions = {},
  ): Promise<RewrapResult> {
    return wrapOps.rewrap(this.#ctx, instance, idOrAlias, ciphertext, options)
  }

  /**
   * Wraps many DEKs under the key's latest version: `items` is a count of DEKs to generate, or the DEKs.
   * Runs on the worker pool when there is one. Results come in input order; an item fails alone.
   * @throws EngineError for the whole call: KEY_NOT_FOUND_ERR, KEY_ACTION_INVALID_STATE_ERR, ABORTED, ...
   */
  async wrapMany(
    instance: string,
    idOrAlias: string,
    items: number | readonly Uint8Array[],
    options: BatchOptions = {},
  ): Promise<
    BatchResult<{ ciphertext: string; keyVersion: KeyVersionInfo; plaintext: Buffer | undefined }>[]
  > {
    return guard(this.#ctx, 'wrapMany', () => batch.wrapMany(this.#ctx, instance, idOrAlias, items, options))
  }

  /**
   * Unwraps many ciphertexts of one key; those under older versions also come back rewrapped.
   * @throws EngineError for the whole call (key, state, abort); per-item errors are in the results
   */
  async unwrapMany(
    instance: string,
    idOrAlias: string,
    ciphertexts: readonly (string | Uint8Array)[],
    options: BatchOptions = {},
  ): Promise<
    BatchResult<{
      plaintext: Buffer
      keyVersion: KeyVersionInfo
      rewrapped: { ciphertext: string; keyVersion: KeyVersionInfo } | undefined
    }>[]
  > {
    return guard(this.#ctx, 'unwrapMany', () =>
      batch.unwrapMany(this.#ctx, instance, idOrAlias, ciphertexts, options),
    )
  }

  /**
   * Re-wraps many ciphertexts of one key under its latest version (after a rotation, for a migration).
   * @throws EngineError for the whole call (key, state, abort); per-item errors are in the results
   * @example
   * const results = await engine.rewrapMany('acme', keyId, ciphertexts, { onProgress: (done, total) => bar.update(done / total) })
   */
  async rewrapMany(
    instance: string,
    idOrAlias: string,
    ciphertexts: readonly (string | Uint8Array)[],
    options: BatchOptions = {},
  ): Promise<
    BatchResult<{ ciphertext: string; keyVersion: KeyVersionInfo; rewrappedKeyVersion: KeyVersionInfo }>[]
  > {
    return guard(this.#ctx, 'rewrapMany', () =>
      batch.rewrapMany(this.#ctx, instance, idOrAlias, ciphertexts, options),
    )
  }

  /**
   * Re-encrypts many ciphertexts of one source key under the latest version of another key (a provider
   * migration): each DEK is unwrapped and wrapped again on the worker pool (or inline), never returned.
   * The source is `options.sourceKeyId` or the key the first ciphertext names; items of any other key fail
   * alone with CIPHERTEXT_INVALID.
   * @throws EngineError for the whole call: as {@link rewrapMany} for the source, as {@link wrapMany} for the
   * destination; per-item errors are in the results
   */
  async reencryptMany(
    instance: string,
    destinationIdOrAlias: string,
    ciphertexts: readonly (string | Uint8Array)[],
    options: ReencryptManyOptions = {},
  ): Promise<BatchResult<ReencryptManyItem>[]> {
    return guard(this.#ctx, 'reencryptMany', () =>
      batch.reencryptMany(this.#ctx, instance, destinationIdOrAlias, ciphertexts, options),
    )
  }

  /**
   * Encrypts `data` into a self-describing message (docs/message-format.md): a fresh or cached DEK wrapped
   * under the key's latest version, the context bound, AES-256-GCM frames under a per-message key derived
   * from the DEK (AES-256 nonce-based derivation under an HKDF-SHA-256 derivation key), key-committed.
   * @throws EngineError as {@link wrap}, INVALID_FIELD_ERR
   * @example
   * const sealed = await engine.seal('acme', keyId, data, { context: { table: 'orders' } })
   */
  seal(instance: string, idOrAlias: string, data: Uint8Array, options: SealOptions = {}): Promise<Buffer> {
    return sealOps.seal(this.#ctx, instance, idOrAlias, data, options)
  }

  /**
   * Decrypts a message made by {@link seal} or {@link sealStream}. The key comes from the message itself;
   * the instance must own it and the context must match.
   * @throws EngineError MESSAGE_INVALID, MESSAGE_AUTH_FAILED, MESSAGE_TOO_LARGE, CONTEXT_MISMATCH, and as {@link unwrap}
   */
  open(instance: string, message: Uint8Array, options: OpenOptions = {}): Promise<Buffer> {
    return openOps.open(this.#ctx, instance, message, options)
  }

  /**
   * A Transform stream that seals what is written to it. Memory stays within about one frame whatever the
   * stream's length.
   * @example
   * await pipeline(fs.createReadStream('big.bin'), engine.sealStream('acme', keyId, { context }), fs.createWriteStream('big.sealed'))
   */
  sealStream(instance: string, idOrAlias: string, options: SealOptions = {}): Transform {
    return sealOps.sealStream(this.#ctx, instance, idOrAlias, options)
  }

  /**
   * A Transform stream that opens a message written to it; it emits a frame's plaintext only after that
   * frame authenticated, and fails (typed) on truncation, reordering, tampering or a wrong context.
   */
  openStream(instance: string, options: OpenOptions = {}): Transform {
    return openOps.openStream(this.#ctx, instance, options)
  }

  /**
   * Compares the provider's objects with the catalog: finishes purges that stopped half-way (`purged`),
   * destroys objects of creations that never committed, adopts objects of this catalog that lost their row,
   * reports objects it cannot place (`unknown`) and catalog versions whose object is missing (`missing`).
   */
  async reconcile(): Promise<ReconcileReport> {
    return guard(this.#ctx, 'reconcile', () => reconcileOp(this.#ctx))
  }

  /**
   * AES-GCM usage of each root-key version: reserved in the catalog (all processes) and used by this process.
   * @throws EngineError KEY_NOT_FOUND_ERR, KEY_ROOT_REQ_ERR
   */
  async usage(
    instance: string,
    idOrAlias: string,
  ): Promise<{ limit: number; versions: { number: number; reserved: number; usedByThisProcess: number }[] }> {
    return guard(this.#ctx, 'usage', async () =>
      this.#ctx.usage.report(await this.#ctx.keys.resolve(instance, idOrAlias, true)),
    )
  }

  /**
   * Readiness: the provider's probe ({@link RootKeyProvider.health}; the PKCS#11 provider asks the token and
   * caches the answer for a second) and a catalog ping. `ok` only when both answer; `providerOk` tells which
   * one did not.
   */
  async health(): Promise<{
    ok: boolean
    provider: string
    detail: string
    store: boolean
    providerOk: boolean
  }> {
    const ctx = this.#ctx
    if (ctx.closed)
      return {
        ok: false,
        provider: ctx.provider.name,
        detail: 'engine closed',
        store: false,
        providerOk: false,
      }
    const h = await ctx.provider.health()
    let store = true
    try {
      await ctx.store.ping()
    } catch {
      store = false
    }
    return {
      ok: h.ok && store,
      provider: ctx.provider.name,
      detail: store ? h.detail : `${h.detail}; catalog unavailable`,
      store,
      providerOk: h.ok,
    }
  }

  /** Closes the engine (and, unless `ownsDependencies: false`, its provider and store). Idempotent. */
  async close(): Promise<void> {
    const ctx = this.#ctx
    if (ctx.closed) return
    ctx.closed = true
    ctx.keys.clear()
    ctx.dekCache?.close()
    await ctx.pool?.close() // before the provider: workers share the process's PKCS#11 library
    if (this.#ownsDeps) {
      await ctx.provider.close()
      await ctx.store.close()
    }
  }

  /**
   * `length` (1–1024) random bytes from the provider's RNG (the HSM's `C_GenerateRandom`, KMS `GenerateRandom`).
   * @throws EngineError INVALID_FIELD_ERR, PROVIDER_UNAVAILABLE
   */
  async generateRandom(length: number, opts: CallOptions = {}): Promise<Buffer> {
    return guard(this.#ctx, 'generateRandom', () => wrapOps.generateRandom(this.#ctx, length, opts))
  }

  /**
   * Creates an alias name: a path-like name (`[A-Za-z0-9/_-]`, 1–256 characters; AWS KMS `alias/...`) for a
   * key, in a namespace of its own (Key Protect aliases are separate). Any state but deleted.
   * @throws EngineError KEY_ALIAS_NOT_UNIQUE_ERR (name taken), KEY_NOT_FOUND_ERR, KEY_DELETED_ERR, INVALID_FIELD_ERR
   */
  async createAliasName(instance: string, name: string, idOrAlias: string): Promise<void> {
    return guard(this.#ctx, 'createAliasName', () =>
      aliases.createAliasName(this.#ctx, instance, name, idOrAlias),
    )
  }

  /**
   * Points an existing alias name at another key.
   * @throws EngineError ALIAS_NOT_FOUND_ERR, KEY_NOT_FOUND_ERR, KEY_DELETED_ERR
   */
  async updateAliasName(instance: string, name: string, idOrAlias: string): Promise<void> {
    return guard(this.#ctx, 'updateAliasName', () =>
      aliases.updateAliasName(this.#ctx, instance, name, idOrAlias),
    )
  }

  /** @throws EngineError ALIAS_NOT_FOUND_ERR */
  async deleteAliasName(instance: string, name: string): Promise<void> {
    return guard(this.#ctx, 'deleteAliasName', () => aliases.deleteAliasName(this.#ctx, instance, name))
  }

  /**
   * The key id an alias name points at.
   * @throws EngineError ALIAS_NOT_FOUND_ERR
   */
  async resolveAliasName(instance: string, name: string): Promise<string> {
    return guard(this.#ctx, 'resolveAliasName', () => aliases.resolveAliasName(this.#ctx, instance, name))
  }

  /**
   * Alias names of the instance (or of one key) in name order, `limit` (1–1000) after the name `after`.
   * @throws EngineError INVALID_FIELD_ERR, KEY_NOT_FOUND_ERR (keyId given and unknown)
   */
  async listAliasNames(
    instance: string,
    options: { keyId?: string; after?: string; limit?: number } = {},
  ): Promise<{ aliases: AliasNameInfo[]; more: boolean }> {
    return guard(this.#ctx, 'listAliasNames', () => aliases.listAliasNames(this.#ctx, instance, options))
  }

  /**
   * Adds or replaces key/value tags of a key (at most 50 per key; keys 1–128, values 0–256 characters).
   * Separate from Key Protect's string `tags`.
   * @throws EngineError TAG_QUOTA_ERR, INVALID_FIELD_ERR, KEY_NOT_FOUND_ERR, KEY_DELETED_ERR
   */
  async tagKey(instance: string, idOrAlias: string, tags: readonly TagPair[]): Promise<void> {
    return guard(this.#ctx, 'tagKey', () => tagOps.tagKey(this.#ctx, instance, idOrAlias, tags))
  }

  /** Removes key/value tags by key (absent ones are ignored). */
  async untagKey(instance: string, idOrAlias: string, keys: readonly string[]): Promise<void> {
    return guard(this.#ctx, 'untagKey', () => tagOps.untagKey(this.#ctx, instance, idOrAlias, keys))
  }

  /** A key's key/value tags in key order. @throws EngineError KEY_NOT_FOUND_ERR */
  async listKeyTags(instance: string, idOrAlias: string): Promise<TagPair[]> {
    return guard(this.#ctx, 'listKeyTags', () => tagOps.listKeyTags(this.#ctx, instance, idOrAlias))
  }

  /**
   * Schedules a root key's deletion `pendingWindowDays` (7–30, default 30) days from now (AWS KMS
   * `ScheduleKeyDeletion`): the key is suspended (state 2) at once, so nothing can wrap or unwrap with it,
   * and {@link enable} is refused until {@link cancelKeyDeletion}. {@link runScheduledDeletions} destroys it
   * once the date has passed.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR (not in state 1 or 2, or already scheduled), KEY_DELETED_ERR
   */
  async scheduleKeyDeletion(
    instance: string,
    idOrAlias: string,
    options: { pendingWindowDays?: number } = {},
  ): Promise<{ deletionDate: Date }> {
    return guard(this.#ctx, 'scheduleKeyDeletion', () =>
      deletion.scheduleKeyDeletion(this.#ctx, instance, idOrAlias, options),
    )
  }

  /**
   * Cancels a scheduled deletion; the key stays suspended (state 2) until {@link enable}. Refused once the
   * deletion has started destroying the key.
   * @throws EngineError KEY_ACTION_INVALID_STATE_ERR (not pending deletion), KEY_PURGE_IN_PROGRESS_ERR, KEY_NOT_FOUND_ERR
   */
  async cancelKeyDeletion(instance: string, idOrAlias: string): Promise<void> {
    return guard(this.#ctx, 'cancelKeyDeletion', () =>
      deletion.cancelKeyDeletion(this.#ctx, instance, idOrAlias),
    )
  }

  /** When a key is scheduled to be deleted; undefined when it is not. @throws EngineError KEY_NOT_FOUND_ERR */
  async getKeyDeletionDate(instance: string, idOrAlias: string): Promise<Date | undefined> {
    return guard(this.#ctx, 'getKeyDeletionDate', () =>
      deletion.getKeyDeletionDate(this.#ctx, instance, idOrAlias),
    )
  }

  /**
   * Destroys every key whose scheduled deletion date has passed: its provider objects, then its catalog
   * rows (irreversible and crash-safe, like {@link purgeKey}; a run that stopped half-way is finished by the
   * next one or by {@link reconcile}). Run it periodically; returns what it destroyed.
   */
  async runScheduledDeletions(): Promise<{ destroyed: { instance: string; keyId: string }[] }> {
    return guard(this.#ctx, 'runScheduledDeletions', () => scheduledDeletion.runScheduledDeletions(this.#ctx))
  }

  /**
   * The automatic purge (Key Protect): destroys every key deleted (state 5) more than the lifecycle's
   * `purgeScheduledAfterMs` (default 90 days) ago — its `purgeScheduledOn` date has passed — through the
   * crash-safe purge protocol of {@link purgeKey} (irreversible; a pass that stopped half-way is finished
   * by the next one or by {@link reconcile}). Each key is purged once: a second pass finds nothing to do.
   * A key that fails is reported in `failed` and the pass goes on. The scheduler runs it when started with
   * `autoPurge: true` (as `envelope-kms serve` does).
   */
  async runAutoPurge(): Promise<AutoPurgeResult> {
    return guard(this.#ctx, 'runAutoPurge', () => autoPurge.runAutoPurge(this.#ctx))
  }

  /**
   * Creates the instance's import token (Key Protect secure import), replacing any previous one and
   * destroying its key pair: an RSA-2048 key pair generated in the provider, a 12-byte nonce.
   * `expirationSec` 300-86400 (default 600), `maxAllowedRetrievals` 1-500 (default 1).
   * @throws EngineError INVALID_FIELD_ERR, PROVIDER_UNSUPPORTED (no import tokens, e.g. AWS KMS)
   */
  async createImportToken(instance: string, options: ImportTokenOptions = {}): Promise<ImportTokenInfo> {
    return guard(this.#ctx, 'createImportToken', () =>
      importTokens.createImportToken(this.#ctx, instance, options),
    )
  }

  /**
   * Returns the instance's import token (public key as SPKI PEM, nonce, counters) and takes one retrieval.
   * Pass the encrypted material as `secureImport` to {@link createKey}, {@link rotate} or {@link restoreKey}.
   * @throws EngineError IMPORT_TOKEN_NOT_FOUND_ERR, IMPORT_TOKEN_EXPIRED_ERR, IMPORT_TOKEN_RETRIEVALS_EXHAUSTED
   */
  async getImportToken(instance: string): Promise<ImportTokenRetrieval> {
    return guard(this.#ctx, 'getImportToken', () => importTokens.getImportToken(this.#ctx, instance))
  }

  /**
   * Registers a cloud resource (its CRN: `crn:v1:…`, specified to at least the service instance, at most 10
   * segments) to an Active root key. `created` is false when an identical registration already exists.
   * `keyRingId` (optional): the key must be in that key ring, else KEY_NOT_FOUND_ERR.
   * @throws EngineError REGISTRATION_DUP_ERR (it exists with other properties), KEY_INVALID_STATE_ERR (not an Active root key), KEY_NOT_FOUND_ERR, INVALID_FIELD_ERR
   */
  async createRegistration(
    instance: string,
    idOrAlias: string,
    resourceCrn: string,
    input: RegistrationInput = {},
    options: { by?: string } & KeyScope = {},
  ): Promise<{ registration: RegistrationInfo; created: boolean }> {
    return guard(this.#ctx, 'createRegistration', () =>
      registrations.createRegistration(this.#ctx, instance, idOrAlias, resourceCrn, input, options),
    )
  }

  /**
   * Merges `input` into a registration (the fields not given are kept).
   * @throws EngineError REGISTRATION_NOT_FOUND_ERR, KEY_NOT_FOUND_ERR, INVALID_FIELD_ERR
   */
  async updateRegistration(
    instance: string,
    idOrAlias: string,
    resourceCrn: string,
    input: RegistrationInput,
    options: { by?: string } & KeyScope = {},
  ): Promise<RegistrationInfo> {
    return guard(this.#ctx, 'updateRegistration', () =>
      registrations.updateRegistration(this.#ctx, instance, idOrAlias, resourceCrn, input, options, true),
    )
  }

  /**
   * Replaces a registration's properties with `input` (the fields not given are reset).
   * @throws EngineError REGISTRATION_NOT_FOUND_ERR, KEY_NOT_FOUND_ERR, INVALID_FIELD_ERR
   */
  async replaceRegistration(
    instance: string,
    idOrAlias: string,
    resourceCrn: string,
    input: RegistrationInput,
    options: { by?: string } & KeyScope = {},
  ): Promise<RegistrationInfo> {
    return guard(this.#ctx, 'replaceRegistration', () =>
      registrations.updateRegistration(this.#ctx, instance, idOrAlias, resourceCrn, input, options, false),
    )
  }

  /**
   * Deletes a registration and returns what it was.
   * @throws EngineError REGISTRATION_NOT_FOUND_ERR, KEY_NOT_FOUND_ERR, INVALID_FIELD_ERR
   */
  async deleteRegistration(
    instance: string,
    idOrAlias: string,
    resourceCrn: string,
    scope: KeyScope = {},
  ): Promise<RegistrationInfo> {
    return guard(this.#ctx, 'deleteRegistration', () =>
      registrations.deleteRegistration(this.#ctx, instance, idOrAlias, resourceCrn, scope),
    )
  }

  /**
   * Deactivates a Suspended (2) registration — one whose key is disabled or deleted (Key Protect's deprecated
   * `?action=deactivate`).
   * @throws EngineError REG_INVALID_STATE_ERR, REGISTRATION_NOT_FOUND_ERR, KEY_NOT_FOUND_ERR
   */
  async deactivateRegistration(
    instance: string,
    idOrAlias: string,
    resourceCrn: string,
    options: { by?: string } & KeyScope = {},
  ): Promise<RegistrationInfo> {
    return guard(this.#ctx, 'deactivateRegistration', () =>
      registrations.deactivateRegistration(this.#ctx, instance, idOrAlias, resourceCrn, options),
    )
  }

  /**
   * A key's registrations, paged, optionally filtered by a CRN pattern (`*` per segment; in the last segment,
   * a prefix) and by preventKeyDeletion. `total` counts every match.
   * @throws EngineError KEY_NOT_FOUND_ERR, INVALID_FIELD_ERR (target `param`)
   */
  async listRegistrations(
    instance: string,
    idOrAlias: string,
    options: ListRegistrationsOptions = {},
  ): Promise<{ registrations: RegistrationInfo[]; total: number }> {
    return guard(this.#ctx, 'listRegistrations', () =>
      registrations.listRegistrations(this.#ctx, instance, idOrAlias, options),
    )
  }

  /**
   * The instance's registrations across keys (of the keys in `keyRingId` when given), paged. A
   * `resourceCrnQuery` must name at least the service instance, without `*` in its first 8 segments.
   * @throws EngineError INVALID_FIELD_ERR (target `param`)
   */
  async listAllRegistrations(
    instance: string,
    options: ListRegistrationsOptions = {},
  ): Promise<{ registrations: RegistrationInfo[]; total: number }> {
    return guard(this.#ctx, 'listAllRegistrations', () =>
      registrations.listRegistrations(this.#ctx, instance, undefined, options),
    )
  }

  /**
   * Re-notifies the services registered to a root key: records one `sync` event per registration in the
   * key's event log and returns them (none without registrations). At most once per `minSyncIntervalMs`
   * (lifecycle policy, default 1 h) per key.
   * @throws EngineError KEY_ROOT_REQ_ERR (a standard key), REQ_TOO_EARLY_ERR, KEY_NOT_FOUND_ERR
   */
  async syncKey(
    instance: string,
    idOrAlias: string,
    options: { by?: string } & KeyScope = {},
  ): Promise<KeyEventInfo[]> {
    return guard(this.#ctx, 'syncKey', () => events.syncKey(this.#ctx, instance, idOrAlias, options))
  }

  /**
   * A key's event log, oldest first: rotate, disable, enable, delete, restore, policy and sync events, each
   * with its acknowledgement once a registered service sent one.
   * @throws EngineError KEY_NOT_FOUND_ERR
   */
  async listKeyEvents(instance: string, idOrAlias: string, scope: KeyScope = {}): Promise<KeyEventInfo[]> {
    return guard(this.#ctx, 'listKeyEvents', () =>
      events.listKeyEvents(this.#ctx, instance, idOrAlias, scope),
    )
  }

  /**
   * Records acknowledgements of key events by registered services (Key Protect `POST /event_ack`), all or
   * none: every event must exist in the instance.
   * @throws EngineError EVENT_NOT_FOUND, MISSING_FIELD_ERR (eventId, timestamp), INVALID_FIELD_ERR
   */
  async acknowledgeEvents(instance: string, acks: readonly EventAckInput[]): Promise<void> {
    return guard(this.#ctx, 'acknowledgeEvents', () => events.acknowledgeEvents(this.#ctx, instance, acks))
  }

  /** Removes expired import tokens and destroys their key pairs (the scheduler runs it); returns how many. */
  async expireImportTokens(): Promise<number> {
    return guard(this.#ctx, 'expireImportTokens', () => importTokens.expireImportTokens(this.#ctx))
  }

  /**
   * Sets instance policies (Key Protect `dualAuthDelete`, `rotation`, `allowedNetwork`, `allowedIP`,
   * `keyCreateImportAccess`, `metrics`), each type at most once, in one catalog transaction. Attributes are
   * needed when a policy with attributes is enabled and dropped when it is disabled. rotation and
   * dualAuthDelete apply to root keys created afterwards that do not name their own; allowedIP is enforced
   * by {@link checkClientAddress}; keyCreateImportAccess by {@link createKey} and {@link rotate}.
   * @throws EngineError INVALID_FIELD_ERR, MISSING_FIELD_ERR
   */
  async setInstancePolicies(
    instance: string,
    policies: readonly InstancePolicyInput[],
    options: { updatedBy?: string } = {},
  ): Promise<InstancePolicyInfo[]> {
    return guard(this.#ctx, 'setInstancePolicies', () =>
      instancePolicies.setInstancePolicies(this.#ctx, instance, policies, options),
    )
  }

  /**
   * The instance's policies, all or of one type, ordered by type; a type never set is absent.
   * @throws EngineError INVALID_FIELD_ERR (an unknown type)
   */
  async getInstancePolicies(instance: string, type?: InstancePolicyType): Promise<InstancePolicyInfo[]> {
    return guard(this.#ctx, 'getInstancePolicies', () =>
      instancePolicies.getInstancePolicies(this.#ctx, instance, type),
    )
  }

  /**
   * Checks a client address (IPv4, IPv6 or IPv4-mapped IPv6; undefined when unknown) against the
   * instance's allowedIP policy. Answers synchronously (`undefined`) while the instance's policies are
   * cached (the engine's metadata TTL, invalidated by {@link setInstancePolicies}), else with a promise.
   * @throws EngineError IP_ADDRESS_NOT_ALLOWED_ERR (thrown, or the promise rejects), STORE_ERROR
   */
  checkClientAddress(instance: string, address: string | undefined): undefined | Promise<void> {
    checkOpen(this.#ctx, 'checkClientAddress')
    const r = instancePolicies.checkClientAddress(this.#ctx, instance, address)
    return r === undefined ? undefined : guard(this.#ctx, 'checkClientAddress', () => r)
  }

  /**
   * Moves a ciphertext from its key (`sourceKeyId`, or the key the ciphertext names) to the latest version
   * of `destinationKeyId`, with another AAD if asked (AWS KMS `ReEncrypt`). The source key must allow
   * unwrap, the destination wrap. With an opaque provider that can re-encrypt (AWS KMS), the DEK never
   * enters this process; otherwise it is held only inside this call and zeroed.
   * @throws EngineError as {@link unwrap} for the source, as {@link wrap} for the destination
   */
  async reencrypt(
    instance: string,
    ciphertext: string | Uint8Array,
    options: {
      sourceKeyId?: string
      sourceAad?: readonly string[]
      destinationKeyId: string
      destinationAad?: readonly string[]
    } & CallOptions,
  ): Promise<ReencryptResult> {
    return guard(this.#ctx, 'reencrypt', () => wrapOps.reencrypt(this.#ctx, instance, ciphertext, options))
  }
}

/**
 * Creates an engine over a provider and a store, and reconciles the provider's objects with the catalog.
 * @throws EngineError PROVIDER_UNAVAILABLE, STORE_ERROR
 * @example
 * const engine = await createEngine({ provider, store })
 */
export async function createEngine(options: EngineOptions): Promise<EnvelopeEngine> {
  const engine = new EnvelopeEngine(options)
  if (options.reconcileOnStart ?? true) await engine.reconcile()
  return engine
}
