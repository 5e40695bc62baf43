/**
 * The public contract of key synchronization (the CipherTrust CCKM model, docs/key-sync.md): cloud
 * connections, synchronization jobs, and the linked (externally managed) root keys they discover, usable for
 * wrap/unwrap through their source. The CCKM HTTP adapter (`src/http/cckm/`) and the `sync` CLI translate to
 * and from it. Implemented by `service.ts`.
 */
import type { SecretBytes } from '../secret-bytes.js'
import type { JobState } from '../ports-jobs.js'
import type { ConnectionCheck, ConnectionParams, LinkedKeyVersion, SyncCloud } from '../ports-sync.js'

/** The job type of a synchronization of `cloud` (one active per tenant and cloud: a second is JOB_CONFLICT). */
export function syncJobType(cloud: SyncCloud): string {
  return `cckm-sync:${cloud}`
}

/** The one spelling of a job's `overall_status` (docs/http-cckm.md): CCKM's underscore form. */
export type SyncOverallStatus = 'in_progress' | 'completed' | 'failed' | 'cancelled'

export interface ConnectionInput {
  readonly name: string
  readonly description?: string | undefined
  /** `params.cloud` is the connection's cloud. */
  readonly params: ConnectionParams
}

/** A connection as the library returns it: secrets appear only as their {@link SecretSource} references. */
export interface ConnectionView {
  readonly id: string
  readonly name: string
  readonly cloud: SyncCloud
  readonly description: string | undefined
  readonly params: ConnectionParams
  readonly createdAt: Date
  readonly updatedAt: Date
  readonly lastTest:
    { readonly testedAt: Date; readonly ok: boolean; readonly checks: readonly ConnectionCheck[] } | undefined
}

export interface SyncJobRequest {
  readonly cloud: SyncCloud
  /**
   * The connections to synchronize, by name or id (PKCS#11: also by token label). Mutually exclusive with
   * `synchronizeAll`; one of the two is required (INVALID_FIELD_ERR otherwise).
   */
  readonly vaults?: readonly string[] | undefined
  /** Every connection of the cloud. */
  readonly synchronizeAll?: boolean | undefined
  /** AWS only: restrict discovery to these regions (each must be one of the connection's regions). */
  readonly regions?: readonly string[] | undefined
  readonly createdBy?: string | undefined
}

/** Counters of a synchronization job, as far as it got. */
export interface SyncCounts {
  /** Keys the sources reported (every version counted once per key). */
  readonly discovered: number
  readonly inserted: number
  readonly updated: number
  readonly unchanged: number
  /** Keys marked deleted at the source by this job. */
  readonly markedDeleted: number
}

export interface SyncJobView {
  readonly id: string
  readonly tenant: string
  readonly cloud: SyncCloud
  readonly overallStatus: SyncOverallStatus
  /** The job record's state (`queued` shows as `in_progress`). */
  readonly state: JobState
  /** A cancel was requested (CCKM `abort`). */
  readonly abort: boolean
  /** The connections synchronized, resolved at submission. */
  readonly vaults: readonly { readonly name: string; readonly id: string }[]
  readonly regions: readonly string[] | undefined
  readonly synchronizeAll: boolean
  /** Vaults (AWS: connection × region) finished, of all. */
  readonly done: number
  readonly total: number
  /** 0-100. */
  readonly progress: number
  readonly counts: SyncCounts
  readonly error: { readonly code: string; readonly message: string } | undefined
  readonly createdBy: string | undefined
  readonly createdAt: Date
  readonly updatedAt: Date
  readonly startedAt: Date | undefined
  readonly finishedAt: Date | undefined
}

/** A linked key as the library returns it. */
export interface LinkedKeyView {
  readonly id: string
  readonly cloud: SyncCloud
  readonly connectionId: string
  readonly vault: string
  readonly sourceKeyId: string
  readonly name: string
  readonly keyType: string
  readonly usable: boolean
  readonly enabled: boolean
  readonly versions: readonly LinkedKeyVersion[]
  readonly attributes: Readonly<Record<string, unknown>>
  readonly sourceState: 'present' | 'deleted'
  readonly deletedAtSourceAt: Date | undefined
  readonly firstSyncedAt: Date
  readonly lastSyncedAt: Date
  readonly lastSyncJobId: string
}

export interface LinkedWrapResult {
  /** Base64 of a ciphertext v1 (mechanism 0x10) naming the linked key id and version (1-based). */
  readonly ciphertext: string
  readonly keyId: string
  readonly keyVersion: number
  /** The generated DEK when none was given (the caller zeroizes it). */
  readonly plaintext: SecretBytes | undefined
}

export interface LinkedUnwrapResult {
  readonly plaintext: SecretBytes
  readonly keyId: string
  readonly keyVersion: number
}

/** Key synchronization as the library uses it. Every method is scoped to `tenant`. */
export interface KeySync {
  /** @throws EngineError INVALID_FIELD_ERR (validation), CONNECTION_EXISTS, PROVIDER_UNSUPPORTED (no SDK) */
  createConnection(tenant: string, input: ConnectionInput): Promise<ConnectionView>
  /** By id or name. @throws EngineError CONNECTION_NOT_FOUND */
  getConnection(tenant: string, idOrName: string): Promise<ConnectionView>
  listConnections(tenant: string, query?: { readonly cloud?: SyncCloud }): Promise<ConnectionView[]>
  /** Replaces description and/or params (same cloud). @throws EngineError CONNECTION_NOT_FOUND, INVALID_FIELD_ERR */
  updateConnection(
    tenant: string,
    idOrName: string,
    patch: { readonly description?: string | undefined; readonly params?: ConnectionParams | undefined },
  ): Promise<ConnectionView>
  /**
   * Deletes a connection no linked key refers to. With `purgeDeleted`, the links of its keys deleted at the
   * source are purged with it, atomically (as {@link purgeLinkedKey} each); its keys still present at the
   * source block it either way, and then nothing is purged.
   * @throws EngineError CONNECTION_NOT_FOUND, CONNECTION_IN_USE (linked keys refer to it: the message says
   * how many are deleted at the source, to purge, and how many are still present there)
   */
  deleteConnection(
    tenant: string,
    idOrName: string,
    options?: { readonly purgeDeleted?: boolean | undefined },
  ): Promise<void>
  /** Opens the connection and probes it; records and returns the outcome (never throws for a failed probe). */
  testConnection(tenant: string, idOrName: string): Promise<ConnectionView>

  /**
   * Starts a synchronization job.
   * @throws EngineError INVALID_FIELD_ERR (neither or both of vaults/synchronizeAll, bad region),
   * CONNECTION_NOT_FOUND (an unknown vault), JOB_CONFLICT (one runs for this cloud)
   */
  startSync(tenant: string, request: SyncJobRequest): Promise<SyncJobView>
  /** @throws EngineError JOB_NOT_FOUND (also another tenant's, or another kind of job) */
  getSyncJob(tenant: string, id: string): Promise<SyncJobView>
  /** Newest first. */
  listSyncJobs(
    tenant: string,
    query?: {
      readonly cloud?: SyncCloud
      readonly overallStatus?: SyncOverallStatus
      readonly skip?: number
      readonly limit?: number
    },
  ): Promise<{ readonly jobs: SyncJobView[]; readonly total: number }>
  /** @throws EngineError JOB_NOT_FOUND, JOB_FINISHED */
  cancelSync(tenant: string, id: string): Promise<SyncJobView>
  waitForSync(tenant: string, id: string, options?: { readonly signal?: AbortSignal }): Promise<SyncJobView>
  /** Calls `listener` after each durable change of the job. Returns the unsubscribe. */
  subscribeSync(tenant: string, id: string, listener: (job: SyncJobView) => void): () => void

  /** @throws EngineError LINKED_KEY_NOT_FOUND */
  getLinkedKey(tenant: string, id: string): Promise<LinkedKeyView>
  listLinkedKeys(
    tenant: string,
    query?: {
      readonly cloud?: SyncCloud
      readonly connection?: string
      readonly sourceState?: 'present' | 'deleted'
      readonly after?: string
      readonly limit?: number
    },
  ): Promise<{ readonly keys: LinkedKeyView[]; readonly total: number }>
  /**
   * Removes a linked key from the catalog: the explicit end of a link whose key is gone at its source (a
   * synchronization marked it `deleted`). Keys are never dropped by a synchronization; this is the only way
   * one leaves the catalog, and once a connection's links are all purged the connection can be deleted.
   *
   * Ciphertexts made under a purged link can no longer be unwrapped through the engine (their header names
   * the purged id; unwrap is LINKED_KEY_NOT_FOUND), even while the source would still answer for the key
   * (a soft-delete retention period): the key is gone at the source anyway. Should the key reappear at the
   * source later, the next synchronization links it again under a NEW id; the old ciphertexts stay
   * unreadable through the engine.
   * @throws EngineError LINKED_KEY_NOT_FOUND, KEY_ACTION_INVALID_STATE_ERR (still present at its source:
   * delete it at the source and synchronize first)
   */
  purgeLinkedKey(tenant: string, id: string): Promise<void>
  /**
   * Wraps a DEK (generated, 32 bytes, when `plaintext` is undefined) under the linked key's newest enabled
   * version, through its source.
   * @throws EngineError LINKED_KEY_NOT_FOUND, LINKED_KEY_UNAVAILABLE (deleted at the source, disabled, or
   * not usable for wrapping), PROVIDER_*
   */
  wrap(
    tenant: string,
    id: string,
    input?: { readonly plaintext?: SecretBytes | Uint8Array; readonly aad?: readonly string[] },
  ): Promise<LinkedWrapResult>
  /**
   * Unwraps a ciphertext of {@link wrap}; the key id and version come from the ciphertext.
   * @throws EngineError CIPHERTEXT_INVALID, LINKED_KEY_NOT_FOUND, KEY_VERSION_NOT_FOUND, UNWRAP_AAD_MISMATCH,
   * PROVIDER_*
   */
  unwrap(
    tenant: string,
    input: { readonly ciphertext: string; readonly aad?: readonly string[] },
  ): Promise<LinkedUnwrapResult>
}
