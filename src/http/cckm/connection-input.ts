/**
 * A connection request body (the CCKM API's, or the CLI's `--params-file` and flags) → the library's
 * {@link ConnectionInput}: the literal-secret refusal, the schema, the per-cloud fields (wire.ts `paramsOf`).
 */
import type { SyncCloud } from '../../core/ports-sync.js'
import type { ConnectionInput } from '../../core/sync/types.js'
import * as S from './schemas.js'
import { FieldProblem, paramsOf } from './wire.js'

/**
 * Refuses a literal secret where a reference belongs, before the schema runs (whose message would not say
 * what to do), and without echoing it.
 * @throws FieldProblem naming the field
 */
export function refuseLiteralSecrets(raw: unknown): void {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return
  const b = raw as Record<string, unknown>
  for (const f of S.SECRET_FIELDS) {
    const v = b[f]
    if (v !== undefined && v !== null && typeof v !== 'object') {
      throw new FieldProblem(
        `${f}: a literal secret is not accepted (it would be stored in the catalog); give a reference: {"env":"VARIABLE_NAME"} or {"file":"/absolute/path"}, read by the engine when it opens the connection`,
      )
    }
  }
}

/**
 * The connection `raw` describes (the fields of POST …/connections, `name` included).
 * @throws FieldProblem for a literal secret, an unknown, missing or invalid field, a field of another cloud
 */
export function connectionInput(cloud: SyncCloud, raw: unknown): ConnectionInput {
  refuseLiteralSecrets(raw)
  const r = S.ConnectionCreate.safeParse(raw)
  if (!r.success) {
    const issue = r.error.issues[0]
    const path = issue?.path.map(String).join('.') ?? ''
    throw new FieldProblem(`${path.length === 0 ? 'body' : path}: ${issue?.message ?? 'invalid'}`)
  }
  return { name: r.data.name, description: r.data.description, params: paramsOf(cloud, r.data) }
}
