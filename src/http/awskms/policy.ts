/**
 * Key policies of the AWS-KMS-compatible endpoint: the documented subset (docs/aws-kms.md, "Key
 * policies") that is parsed, validated and evaluated here. Statements have `Effect` Allow or Deny, `Action` a
 * string or list (`kms:*`, `kms:Generate*`-style wildcards, `*`), an optional `Condition` on
 * `aws:RequestedRegion` (StringEquals / StringNotEquals); `Principal` must be `"*"` or AWS account ids / ARNs
 * and is otherwise ignored, `Resource` is ignored. An explicit Deny wins; when the policy has Allow statements
 * the action must match one.
 */
import { invalidField } from '../../core/errors.js'
import { AwsError } from './aws-error.js'

/** The longest key policy AWS accepts, in characters. */
export const MAX_POLICY_CHARS = 32_768

interface Statement {
  readonly effect: 'Allow' | 'Deny'
  readonly actions: readonly RegExp[]
  /** The `aws:RequestedRegion` condition, when there is one. */
  readonly regions: { readonly negate: boolean; readonly values: readonly string[] } | undefined
}

/** A parsed key policy. */
export interface KeyPolicy {
  readonly statements: readonly Statement[]
}

/** What a policy says about one request. */
export type PolicyDecision = 'allow' | 'explicit-deny' | 'implicit-deny'

const malformed = (why: string): AwsError => new AwsError('MalformedPolicyDocumentException', why)

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

const strings = (v: unknown, what: string): string[] => {
  const list = Array.isArray(v) ? (v as unknown[]) : [v]
  if (list.length === 0 || !list.every((x) => typeof x === 'string' && x.length > 0))
    throw malformed(`${what} must be a non-empty string or a list of them`)
  return list as string[]
}

const ACTION_RE = /^[a-zA-Z0-9-]+:[A-Za-z0-9*?]+$/
const ACCOUNT_PRINCIPAL_RE = /^(\*|\d{12}|arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/:*-]+)$/

/** An action pattern as a case-insensitive regular expression (`*` any run, `?` one character). */
function actionPattern(p: string): RegExp {
  if (p !== '*' && !ACTION_RE.test(p)) throw malformed(`Action '${p.slice(0, 100)}' is not a valid action`)
  const body = p
    .split('')
    .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\-]/g, '\\$&')))
    .join('')
  return new RegExp(`^${body}$`, 'i')
}

function principal(v: unknown): void {
  if (v === '*') return
  if (!isObject(v) || Object.keys(v).length !== 1 || !('AWS' in v))
    throw malformed(
      'Principal must be "*" or {"AWS": account ids or ARNs}; other principals are not supported',
    )
  for (const p of strings(v['AWS'], 'Principal.AWS')) {
    if (!ACCOUNT_PRINCIPAL_RE.test(p))
      throw malformed(`Principal '${p.slice(0, 100)}' is not an AWS account or ARN`)
  }
}

function condition(v: unknown): Statement['regions'] {
  if (v === undefined) return undefined
  if (!isObject(v)) throw malformed('Condition must be an object')
  let out: Statement['regions']
  for (const [op, body] of Object.entries(v)) {
    if (op !== 'StringEquals' && op !== 'StringNotEquals')
      throw malformed(
        `Condition operator '${op.slice(0, 60)}' is not supported (StringEquals, StringNotEquals)`,
      )
    if (!isObject(body)) throw malformed(`Condition.${op} must be an object`)
    for (const [key, values] of Object.entries(body)) {
      if (key.toLowerCase() !== 'aws:requestedregion')
        throw malformed(`Condition key '${key.slice(0, 60)}' is not supported (aws:RequestedRegion)`)
      if (out !== undefined) throw malformed('Condition: one aws:RequestedRegion test per statement')
      out = { negate: op === 'StringNotEquals', values: strings(values, `Condition.${op}.${key}`) }
    }
  }
  return out
}

function statement(v: unknown): Statement {
  if (!isObject(v)) throw malformed('each Statement must be an object')
  for (const k of Object.keys(v)) {
    if (!['Sid', 'Effect', 'Principal', 'Action', 'Resource', 'Condition'].includes(k))
      throw malformed(`Statement element '${k.slice(0, 60)}' is not supported by this endpoint`)
  }
  if (v['Sid'] !== undefined && typeof v['Sid'] !== 'string') throw malformed('Sid must be a string')
  const effect = v['Effect']
  if (effect !== 'Allow' && effect !== 'Deny') throw malformed('Effect must be Allow or Deny')
  if (v['Principal'] === undefined) throw malformed('Statement has no Principal')
  principal(v['Principal'])
  if (v['Action'] === undefined) throw malformed('Statement has no Action')
  if (v['Resource'] !== undefined) strings(v['Resource'], 'Resource')
  return {
    effect,
    actions: strings(v['Action'], 'Action').map(actionPattern),
    regions: condition(v['Condition']),
  }
}

/**
 * Parses and validates a key policy document.
 * @throws AwsError MalformedPolicyDocumentException; EngineError INVALID_FIELD_ERR (not a string, too long)
 */
export function parseKeyPolicy(text: unknown, field = 'Policy'): KeyPolicy {
  if (typeof text !== 'string' || text.length === 0)
    throw invalidField(field, 'must be a JSON policy document')
  if (text.length > MAX_POLICY_CHARS)
    throw invalidField(field, `must be at most ${MAX_POLICY_CHARS} characters`)
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw malformed('The policy is not valid JSON')
  }
  if (!isObject(doc)) throw malformed('The policy must be a JSON object')
  for (const k of Object.keys(doc)) {
    if (!['Version', 'Id', 'Statement'].includes(k))
      throw malformed(`Policy element '${k.slice(0, 60)}' is not supported`)
  }
  if (doc['Version'] !== undefined && doc['Version'] !== '2012-10-17' && doc['Version'] !== '2008-10-17')
    throw malformed('Version must be 2012-10-17 or 2008-10-17')
  if (doc['Id'] !== undefined && typeof doc['Id'] !== 'string') throw malformed('Id must be a string')
  const st = doc['Statement']
  const list = Array.isArray(st) ? (st as unknown[]) : st === undefined ? [] : [st]
  if (list.length === 0) throw malformed('The policy has no Statement')
  return { statements: list.map(statement) }
}

function matches(s: Statement, action: string, region: string): boolean {
  if (!s.actions.some((a) => a.test(action))) return false
  if (s.regions === undefined) return true
  return s.regions.values.includes(region) !== s.regions.negate
}

/** What `policy` decides for `action` (e.g. `kms:Decrypt`) requested in `region`. */
export function evaluateKeyPolicy(policy: KeyPolicy, action: string, region: string): PolicyDecision {
  if (policy.statements.some((s) => s.effect === 'Deny' && matches(s, action, region))) return 'explicit-deny'
  const allows = policy.statements.filter((s) => s.effect === 'Allow')
  if (allows.length === 0 || allows.some((s) => matches(s, action, region))) return 'allow'
  return 'implicit-deny'
}

/** The key policy AWS gives a key created without one (it allows the account every action). */
export function defaultKeyPolicy(accountId: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Id: 'key-default-1',
    Statement: [
      {
        Sid: 'Enable IAM User Permissions',
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${accountId}:root` },
        Action: 'kms:*',
        Resource: '*',
      },
    ],
  })
}

/**
 * AWS's lockout safety check: a new policy must still let the caller change the policy in this region,
 * unless `bypass` (BypassPolicyLockoutSafetyCheck).
 * @throws AwsError MalformedPolicyDocumentException
 */
export function checkLockout(policy: KeyPolicy, region: string, bypass: unknown): void {
  if (bypass === true) return
  if (evaluateKeyPolicy(policy, 'kms:PutKeyPolicy', region) !== 'allow')
    throw malformed(
      'The new key policy will not allow you to update the key policy in the future (set BypassPolicyLockoutSafetyCheck to apply it anyway).',
    )
}

/**
 * The optional `Policy` of CreateKey / ReplicateKey / PutKeyPolicy: validated, with the lockout check for
 * `region` (`BypassPolicyLockoutSafetyCheck` from the same body); undefined when not given.
 * @throws AwsError MalformedPolicyDocumentException; EngineError INVALID_FIELD_ERR
 */
export function policyOf(body: Readonly<Record<string, unknown>>, region: string): string | undefined {
  const v = body['Policy']
  if (v === undefined || v === null) return undefined
  checkLockout(parseKeyPolicy(v), region, body['BypassPolicyLockoutSafetyCheck'])
  return v as string
}

/** Parsed policies by text (a few distinct documents are evaluated on every request). */
const parsed = new Map<string, KeyPolicy>()

/** {@link parseKeyPolicy} of a stored policy, memoised (at most 256 documents). */
export function storedPolicy(text: string): KeyPolicy {
  let p = parsed.get(text)
  if (p === undefined) {
    p = parseKeyPolicy(text)
    if (parsed.size >= 256) parsed.clear()
    parsed.set(text, p)
  }
  return p
}
