/**
 * Regions of the AWS-KMS-compatible endpoint: which served regions a key is present in (the catalog's
 * key-region records; a key without one in a served region is in the default region only), multi-region
 * keys (a primary and its replicas: one engine key, so the same key material in every region), and the
 * key-policy check every key-using operation passes through.
 */
import { EngineError } from '../../core/errors.js'
import type { KeyRegionRecord, KeyRegionStore } from '../../core/ports-key-regions.js'
import { AwsError } from './aws-error.js'
import { evaluateKeyPolicy, storedPolicy } from './policy.js'
import { keyArn, type Scope } from './translate.js'

/** The request as the region checks see it. */
export interface RegionScope extends Scope {
  /** The regions this endpoint serves; the first is the default one. */
  readonly regions: readonly string[]
  readonly keyRegions: KeyRegionStore
  /** The caller as AWS names it in AccessDeniedException messages. */
  readonly principalArn: string
  readonly multiRegionKeys: Set<string>
}

/** Where a key is, seen from one region. */
export interface Placement {
  readonly keyId: string
  /** The served regions the key is present in. */
  readonly regions: readonly string[]
  readonly multiRegion: boolean
  /** The primary's region (a single-region key: its one region). */
  readonly primaryRegion: string
  /** The served regions of its replicas (multi-region keys). */
  readonly replicaRegions: readonly string[]
  /** Its record in the region asked about, if it has one. */
  readonly record: KeyRegionRecord | undefined
}

/** The default region: the first served one. */
export const defaultRegionOf = (s: RegionScope): string => s.regions[0] ?? s.region

/** Where `keyId` is, seen from `region` (default: the request's). */
export async function placementOf(s: RegionScope, keyId: string, region = s.region): Promise<Placement> {
  const all = await s.keyRegions.listKeyRegions(s.instance, keyId)
  const served = all.filter((r) => s.regions.includes(r.region))
  const multiRegion = all.some((r) => r.multiRegion)
  if (multiRegion) s.multiRegionKeys.add(keyId)
  if (served.length === 0) {
    const home = defaultRegionOf(s)
    return { keyId, regions: [home], multiRegion, primaryRegion: home, replicaRegions: [], record: undefined }
  }
  const primaryRegion = served[0]?.primaryRegion ?? defaultRegionOf(s)
  return {
    keyId,
    regions: served.map((r) => r.region),
    multiRegion,
    primaryRegion,
    replicaRegions: served.filter((r) => r.region !== primaryRegion).map((r) => r.region),
    record: served.find((r) => r.region === region),
  }
}

/**
 * Checks that `keyId` is present in the request's region (NotFoundException otherwise, as AWS answers for a
 * key of another region) and, unless `action` is null, that its key policy there allows `action`.
 * @throws EngineError KEY_NOT_FOUND_ERR; AwsError AccessDeniedException
 */
export async function present(s: RegionScope, keyId: string, action: string | null): Promise<Placement> {
  const p = await placementOf(s, keyId)
  if (!p.regions.includes(s.region))
    throw new EngineError('KEY_NOT_FOUND_ERR', `Key '${keyArn(s, keyId)}' does not exist`)
  const policy = p.record?.policy
  if (action !== null && policy !== undefined) {
    const decision = evaluateKeyPolicy(storedPolicy(policy), action, s.region)
    if (decision !== 'allow') {
      throw new AwsError(
        'AccessDeniedException',
        `User: ${s.principalArn} is not authorized to perform: ${action} on resource: ${keyArn(s, keyId)} ${
          decision === 'explicit-deny'
            ? 'with an explicit deny in a resource-based policy'
            : `because no resource-based policy allows the ${action} action`
        }`,
      )
    }
  }
  return p
}
