/**
 * Store roles of Key Protect's instance services (part of the {@link MetadataStore} contract in ports.ts,
 * which re-exports them): import tokens, instance policies, registrations and the per-key event log. Kept in
 * their own file so that ports.ts stays the engine's core contract (provider, key catalog, caches, batches).
 */
export interface ImportTokenRecord {
  readonly instance: string
  /** The provider ref of the token's key pair. */
  readonly providerRef: string
  readonly publicKeyPem: string
  /** 12 random bytes from the provider's RNG, proven by a secure import. */
  readonly nonce: Buffer
  readonly createdAt: number
  readonly expiresAt: number
  readonly maxRetrievals: number
  readonly remainingRetrievals: number
}

/** The import-token role: one token per instance, its retrieval counter decremented atomically. */
export interface ImportTokenStore {
  /** Inserts the instance's token or replaces it; returns the replaced one (its key pair is to destroy). */
  putImportToken(t: ImportTokenRecord): Promise<ImportTokenRecord | undefined>
  getImportToken(instance: string): Promise<ImportTokenRecord | undefined>
  /**
   * Decrements the retrieval counter of the token `providerRef` if it is above 0, atomically; returns the
   * token after the decrement, or undefined when it was 0 or the token was replaced or removed.
   */
  takeImportTokenRetrieval(instance: string, providerRef: string): Promise<ImportTokenRecord | undefined>
  /** Removes the instance's token if it is still `providerRef`. Returns false otherwise. */
  deleteImportToken(instance: string, providerRef: string): Promise<boolean>
  /** Every token whose expiry is at or before `now`, of every instance. */
  listExpiredImportTokens(now: number): Promise<ImportTokenRecord[]>
}

/** Instance policy types (Key Protect instance policies, spec digest §4.7). */
export type InstancePolicyType =
  'allowedNetwork' | 'dualAuthDelete' | 'allowedIP' | 'keyCreateImportAccess' | 'metrics' | 'rotation'

/**
 * One instance policy. `attributes` is the policy's attribute object as core validated and completed it
 * (Key Protect's attribute names, e.g. `allowed_ip`, `interval_month`); undefined when the policy is
 * disabled or has no attributes. Times are milliseconds since the epoch.
 */
export interface InstancePolicyRecord {
  readonly instance: string
  readonly type: InstancePolicyType
  readonly enabled: boolean
  readonly attributes: Readonly<Record<string, unknown>> | undefined
  readonly createdAt: number
  readonly createdBy: string | undefined
  readonly updatedAt: number
  readonly updatedBy: string | undefined
}

/** The instance-policy role: at most one policy of each type per instance. */
export interface InstancePolicyStore {
  /** Inserts or replaces the given policies (all of `instance`), in one transaction. */
  putInstancePolicies(instance: string, policies: readonly InstancePolicyRecord[]): Promise<void>
  /** An instance's policies, ordered by type. */
  listInstancePolicies(instance: string): Promise<InstancePolicyRecord[]>
}

/**
 * A registration (Key Protect): a cloud resource, named by its CRN, protected by a root key. Its state is not
 * stored: it follows the key's (core/keys/registrations.ts), except `deactivated`, set by the deprecated
 * `?action=deactivate`.
 */
export interface RegistrationRecord {
  readonly instance: string
  readonly keyId: string
  readonly resourceCrn: string
  readonly description: string | undefined
  /** Opaque service-to-service metadata, stored as given. */
  readonly registrationMetadata: string | undefined
  readonly preventKeyDeletion: boolean
  /** The key version the resource uses (`keyVersionId` of a PUT), when it said. */
  readonly keyVersionId: string | undefined
  readonly deactivated: boolean
  readonly createdAt: number
  readonly createdBy: string | undefined
  readonly updatedAt: number
  readonly updatedBy: string | undefined
}

/** The registration role: one row per (instance, key, resource CRN), gone with its key. */
export interface RegistrationStore {
  getRegistration(
    instance: string,
    keyId: string,
    resourceCrn: string,
  ): Promise<RegistrationRecord | undefined>
  /**
   * Inserts a registration if its key is still Active (1) and not being purged, atomically (a key delete in
   * another process cannot slip in between); false when the key already has one for that CRN or is no longer
   * Active (nothing written).
   */
  insertRegistration(r: RegistrationRecord): Promise<boolean>
  /** Replaces an existing registration (same key and CRN); false when there is none. */
  updateRegistration(r: RegistrationRecord): Promise<boolean>
  /** Removes a registration; false when there was none. */
  deleteRegistration(instance: string, keyId: string, resourceCrn: string): Promise<boolean>
  /** Removes every registration of a key (a forced delete); returns how many. */
  deleteKeyRegistrations(instance: string, keyId: string): Promise<number>
  /**
   * The instance's registrations, of one key (`keyId`, which wins over `keyRingId`) or of the keys in one key
   * ring, ordered by creation time, key id and CRN. (CRN patterns and paging are applied by core.)
   */
  listRegistrations(
    instance: string,
    query: { readonly keyId?: string | undefined; readonly keyRingId?: string | undefined },
  ): Promise<RegistrationRecord[]>
}

/** Lifecycle events of a key, kept in its event log (and notified to its registrations). */
export type KeyEventType = 'rotate' | 'disable' | 'enable' | 'delete' | 'restore' | 'policy' | 'sync'

/** One event of a key's durable event log. Times are milliseconds since the epoch. */
export interface KeyEventRecord {
  readonly instance: string
  /** A v4 UUID; what `POST /event_ack` names. */
  readonly eventId: string
  readonly keyId: string
  readonly type: KeyEventType
  /** The key's version when the event happened. */
  readonly keyVersion: number
  /** The registration notified (sync events: one per registration), else undefined. */
  readonly resourceCrn: string | undefined
  readonly createdAt: number
  readonly createdBy: string | undefined
  /** When a registered service acknowledged it, and the key state it reported (`adopterKeyState`). */
  readonly ackedAt: number | undefined
  readonly ackState: string | undefined
}

/** The key-event role: an append-only log per key (gone with the key), acknowledgements recorded in place. */
export interface KeyEventLog {
  /** Appends events in one transaction. */
  appendKeyEvents(events: readonly KeyEventRecord[]): Promise<void>
  /** A key's events, oldest first. */
  listKeyEvents(instance: string, keyId: string): Promise<KeyEventRecord[]>
  getKeyEvent(instance: string, eventId: string): Promise<KeyEventRecord | undefined>
  /** Records an acknowledgement; false when the instance has no such event. */
  ackKeyEvent(instance: string, eventId: string, ackedAt: number, ackState: string): Promise<boolean>
}
