/**
 * The key-region store role: in which regions of a regional API (the AWS-KMS-compatible endpoint) a key is
 * present, whether it is a multi-region key and which region holds its primary, and its access policy in
 * each region. A key without a record is present in the API's default region only. The role sits beside
 * `MetadataStore`, not in it (a store without it still serves the engine); records cascade with their key.
 */

/** One key in one region. Times are milliseconds since the epoch. */
export interface KeyRegionRecord {
  readonly instance: string
  readonly keyId: string
  readonly region: string
  /** The region of the key's primary; equal to `region` on the primary's own record. */
  readonly primaryRegion: string
  /** A multi-region key (its records in other regions are replicas of the primary). */
  readonly multiRegion: boolean
  /** The key's description in this region; undefined: the engine key's own description. */
  readonly description: string | undefined
  /** The key's access policy in this region (a JSON document the API layer validated); undefined: none. */
  readonly policy: string | undefined
  readonly createdAt: number
  readonly updatedAt: number
}

/** The key-region role of a catalog. */
export interface KeyRegionStore {
  /** Every record of one key, oldest first. */
  listKeyRegions(instance: string, keyId: string): Promise<KeyRegionRecord[]>
  /** Every record of an instance, by key id then region (an instance has few placed keys). */
  listInstanceKeyRegions(instance: string): Promise<KeyRegionRecord[]>
  /**
   * Inserts a record; false (nothing written) when the key already has one in that region.
   * @throws when the key has no catalog row
   */
  insertKeyRegion(r: KeyRegionRecord): Promise<boolean>
  /** Replaces the policy of an existing record; false when the key has no record in that region. */
  setKeyRegionPolicy(
    instance: string,
    keyId: string,
    region: string,
    policy: string | undefined,
    updatedAt: number,
  ): Promise<boolean>
}
