/**
 * The key-policy subset of the AWS-KMS-compatible endpoint (src/http/awskms/policy.ts), rule by rule:
 * wildcards, explicit deny, implicit deny, the aws:RequestedRegion condition, validation.
 */
import { describe, expect, it } from 'vitest'
import { AwsError } from '../../../src/http/awskms/aws-error.js'
import { evaluateKeyPolicy, parseKeyPolicy, policyOf } from '../../../src/http/awskms/policy.js'

const policy = (...Statement: object[]): string => JSON.stringify({ Version: '2012-10-17', Statement })
const allowAll = { Effect: 'Allow', Principal: '*', Action: 'kms:*' }

describe('key policy evaluation', () => {
  it('kms:Generate* matches GenerateDataKey and GenerateDataKeyWithoutPlaintext, not Encrypt; matching is case-insensitive', () => {
    const p = parseKeyPolicy(policy(allowAll, { Effect: 'Deny', Principal: '*', Action: 'kms:Generate*' }))
    expect(evaluateKeyPolicy(p, 'kms:GenerateDataKey', 'eu-west-1')).toBe('explicit-deny')
    expect(evaluateKeyPolicy(p, 'kms:generatedatakeywithoutplaintext', 'eu-west-1')).toBe('explicit-deny')
    expect(evaluateKeyPolicy(p, 'kms:Encrypt', 'eu-west-1')).toBe('allow')
  })

  it('an explicit Deny wins over an Allow of the same action', () => {
    const p = parseKeyPolicy(
      policy(
        { Effect: 'Allow', Principal: '*', Action: 'kms:Decrypt' },
        { Effect: 'Deny', Principal: '*', Action: ['kms:Decrypt'] },
      ),
    )
    expect(evaluateKeyPolicy(p, 'kms:Decrypt', 'eu-west-1')).toBe('explicit-deny')
  })

  it('with Allow statements, an action none of them names is denied (implicit); a policy of Deny statements only allows the rest', () => {
    const allowOnly = parseKeyPolicy(
      policy({ Effect: 'Allow', Principal: '*', Action: ['kms:Encrypt', 'kms:PutKeyPolicy'] }),
    )
    expect(evaluateKeyPolicy(allowOnly, 'kms:Decrypt', 'eu-west-1')).toBe('implicit-deny')
    expect(evaluateKeyPolicy(allowOnly, 'kms:Encrypt', 'eu-west-1')).toBe('allow')
    const denyOnly = parseKeyPolicy(
      policy({ Effect: 'Deny', Principal: '*', Action: 'kms:ScheduleKeyDeletion' }),
    )
    expect(evaluateKeyPolicy(denyOnly, 'kms:Decrypt', 'eu-west-1')).toBe('allow')
  })

  it('aws:RequestedRegion: StringEquals applies in the listed regions only, StringNotEquals everywhere else', () => {
    const eq = parseKeyPolicy(
      policy(allowAll, {
        Effect: 'Deny',
        Principal: '*',
        Action: 'kms:Decrypt',
        Condition: { StringEquals: { 'aws:RequestedRegion': ['eu-west-3', 'us-east-2'] } },
      }),
    )
    expect(evaluateKeyPolicy(eq, 'kms:Decrypt', 'eu-west-3')).toBe('explicit-deny')
    expect(evaluateKeyPolicy(eq, 'kms:Decrypt', 'eu-west-1')).toBe('allow')
    const ne = parseKeyPolicy(
      policy(allowAll, {
        Effect: 'Deny',
        Principal: '*',
        Action: 'kms:Decrypt',
        Condition: { StringNotEquals: { 'aws:RequestedRegion': 'eu-west-1' } },
      }),
    )
    expect(evaluateKeyPolicy(ne, 'kms:Decrypt', 'eu-west-3')).toBe('explicit-deny')
    expect(evaluateKeyPolicy(ne, 'kms:Decrypt', 'eu-west-1')).toBe('allow')
  })
})

describe('key policy validation', () => {
  const malformed = (text: string): string => {
    try {
      parseKeyPolicy(text)
    } catch (err) {
      expect(err).toBeInstanceOf(AwsError)
      expect((err as AwsError).type).toBe('MalformedPolicyDocumentException')
      return (err as AwsError).message
    }
    throw new Error('expected MalformedPolicyDocumentException')
  }

  it('refuses what the subset does not evaluate rather than ignore it', () => {
    expect(malformed(policy({ Effect: 'Allow', Principal: '*', NotAction: 'kms:Decrypt' }))).toMatch(
      /NotAction/,
    )
    expect(malformed(policy({ Effect: 'Allow', Principal: { Service: 'x' }, Action: 'kms:*' }))).toMatch(
      /Principal/,
    )
    expect(
      malformed(policy({ Effect: 'Allow', Principal: '*', Action: 'kms:*', Condition: { Bool: {} } })),
    ).toMatch(/Bool/)
    expect(malformed(policy({ Effect: 'Allow', Action: 'kms:*' }))).toMatch(/no Principal/)
    expect(malformed(policy({ Effect: 'Allow', Principal: '*', Action: 'kms Decrypt' }))).toMatch(
      /not a valid action/,
    )
    expect(malformed(JSON.stringify({ Version: '2020-01-01', Statement: [allowAll] }))).toMatch(/Version/)
  })

  it('accepts account principals (ids, IAM ARNs, "*") and ignores them', () => {
    const p = parseKeyPolicy(
      policy({
        Effect: 'Allow',
        Principal: { AWS: ['111122223333', 'arn:aws:iam::111122223333:role/app', '*'] },
        Action: 'kms:*',
      }),
    )
    expect(evaluateKeyPolicy(p, 'kms:Encrypt', 'eu-west-1')).toBe('allow')
  })

  it('policyOf: the lockout safety check refuses a policy forbidding kms:PutKeyPolicy unless bypassed', () => {
    const locks = policy({ Effect: 'Allow', Principal: '*', Action: 'kms:Encrypt' })
    expect(() => policyOf({ Policy: locks }, 'eu-west-1')).toThrow(
      /will not allow you to update the key policy/,
    )
    expect(policyOf({ Policy: locks, BypassPolicyLockoutSafetyCheck: true }, 'eu-west-1')).toBe(locks)
    expect(policyOf({}, 'eu-west-1')).toBeUndefined()
  })
})
