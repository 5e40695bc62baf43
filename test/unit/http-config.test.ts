import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import { describe, expect, it } from 'vitest'
import { AuthError, createAuthenticator } from '../../src/http/auth.js'
import { loadHttpConfig } from '../../src/http/config.js'
import { expectCodeSync } from '../helpers/expect-code.js'

const SECRET = 'unit-test-hs256-secret-of-at-least-32-bytes'

describe('HTTP configuration: EKMS_JWT_MAX_LIFETIME_S', () => {
  it('is unset by default and read as an integer number of seconds', () => {
    expect(loadHttpConfig({}).jwtMaxLifetimeSec).toBeUndefined()
    expect(loadHttpConfig({ EKMS_JWT_MAX_LIFETIME_S: '3600' }).jwtMaxLifetimeSec).toBe(3600)
  })

  it('a non-numeric, fractional, zero or too large value is a CONFIG_INVALID startup error naming it', () => {
    for (const v of ['abc', '1h', '1.5', '0', '-60', String(367 * 86_400)]) {
      const err = expectCodeSync(() => loadHttpConfig({ EKMS_JWT_MAX_LIFETIME_S: v }), 'CONFIG_INVALID')
      expect(err.message).toBe('EKMS_JWT_MAX_LIFETIME_S: must be an integer from 1 to 31622400')
    }
  })

  it('auth.jwt.maxLifetimeSec is validated when the authenticator is built', () => {
    for (const v of [0, 1.5, Number.NaN, 1e300]) {
      const err = expectCodeSync(
        () => createAuthenticator({ jwt: { hs256Secret: SECRET, maxLifetimeSec: v } }),
        'CONFIG_INVALID',
      )
      expect(err.message).toMatch(/^auth\.jwt\.maxLifetimeSec: must be an integer/)
    }
    expect(() => createAuthenticator({ jwt: { hs256Secret: SECRET, maxLifetimeSec: 60 } })).not.toThrow()
  })
})

describe('JWT maximum lifetime, configured', () => {
  const auth = createAuthenticator({ jwt: { hs256Secret: SECRET, maxLifetimeSec: 600 } })
  const token = (iat: number, exp: number): Promise<string> =>
    new SignJWT({ instances: '*', actions: ['*'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u')
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(new TextEncoder().encode(SECRET))

  it('a lifetime over maxLifetimeSec is refused; one just under it passes', async () => {
    const now = Math.floor(Date.now() / 1000)
    await expect(auth.authenticate(`Bearer ${await token(now, now + 601)}`)).rejects.toBeInstanceOf(AuthError)
    await expect(auth.authenticate(`Bearer ${await token(now, now + 599)}`)).resolves.toMatchObject({
      subject: 'u',
      expiresAt: now + 599,
    })
  })

  it('EKMS_JWT_MAX_LIFETIME_S overrides the auth file’s jwt.maxLifetimeSec', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekms-http-config-'))
    const file = join(dir, 'auth.json')
    writeFileSync(file, JSON.stringify({ jwt: { hs256Secret: SECRET, maxLifetimeSec: 60 } }))
    expect(loadHttpConfig({ EKMS_AUTH_FILE: file }).auth?.jwt?.maxLifetimeSec).toBe(60)
    expect(
      loadHttpConfig({ EKMS_AUTH_FILE: file, EKMS_JWT_MAX_LIFETIME_S: '120' }).auth?.jwt?.maxLifetimeSec,
    ).toBe(120)
  })
})

describe('HTTP configuration files are validated strictly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ekms-httpcfg-'))
  const write = (name: string, v: unknown): string => {
    const f = join(dir, name)
    writeFileSync(f, JSON.stringify(v))
    return f
  }

  it('EKMS_AUTH_FILE with an unknown key (apikeys) or a wrong type is CONFIG_INVALID naming the file and path, never a secret', () => {
    const typo = write('typo.json', { apikeys: [{ key: 'secret-key-value-123', subject: 'a' }] })
    const e1 = expectCodeSync(() => loadHttpConfig({ EKMS_AUTH_FILE: typo }), 'CONFIG_INVALID')
    expect(e1.message).toContain(typo)
    expect(e1.message).toMatch(/\(top level\): Unrecognized key: "apikeys"/)
    expect(e1.message).not.toContain('secret-key-value-123')
    const wrong = write('wrong.json', {
      apiKeys: [{ key: 'another-secret-0123456', subject: 'a', instances: 'all', actions: ['*'] }],
      jwt: { hs256Secret: 42 },
    })
    const e2 = expectCodeSync(() => loadHttpConfig({ EKMS_AUTH_FILE: wrong }), 'CONFIG_INVALID')
    expect(e2.message).toMatch(/apiKeys\.0\.instances: /)
    expect(e2.message).toMatch(/jwt\.hs256Secret: Invalid input: expected string/)
    expect(e2.message).not.toContain('another-secret-0123456')
  })

  it('a valid EKMS_AUTH_FILE is read as it is', () => {
    const ok = write('ok.json', {
      apiKeys: [{ key: 'a-valid-key-0123456789', subject: 'ops', instances: ['acme'], actions: ['kms.*'] }],
    })
    expect(loadHttpConfig({ EKMS_AUTH_FILE: ok }).auth?.apiKeys?.[0]?.subject).toBe('ops')
  })

  it('EKMS_AWSKMS_CREDENTIALS_FILE with an unknown key or a missing field names the entry and field', () => {
    const f = write('aws.json', [
      { accessKeyId: 'AKIAEXAMPLE000000001', secretAccessKey: 'very-secret', instance: 'a', region: 'x' },
      { accessKeyId: 'AKIAEXAMPLE000000002', instance: 'b' },
    ])
    const e = expectCodeSync(() => loadHttpConfig({ EKMS_AWSKMS_CREDENTIALS_FILE: f }), 'CONFIG_INVALID')
    expect(e.message).toMatch(/0: Unrecognized key: "region"/)
    expect(e.message).toMatch(/1\.secretAccessKey: Invalid input: expected string/)
    expect(e.message).not.toContain('very-secret')
  })
})

describe('HTTP configuration: the audit buffer (issue 12, point 8)', () => {
  it('defaults to a 4 MiB bound and the fail-closed policy; reads both variables', () => {
    const d = loadHttpConfig({})
    expect([d.auditBufferBytes, d.auditWhenFull, d.auditSync]).toEqual([4 * 1024 * 1024, 'reject', false])
    const c = loadHttpConfig({
      EKMS_AUDIT_BUFFER_BYTES: '65536',
      EKMS_AUDIT_WHEN_FULL: 'drop',
      EKMS_AUDIT_SYNC: '1',
    })
    expect([c.auditBufferBytes, c.auditWhenFull, c.auditSync]).toEqual([65_536, 'drop', true])
  })

  it('an unknown policy or an out-of-range bound is a CONFIG_INVALID startup error naming it', () => {
    expect(
      expectCodeSync(() => loadHttpConfig({ EKMS_AUDIT_WHEN_FULL: 'block' }), 'CONFIG_INVALID').message,
    ).toBe('EKMS_AUDIT_WHEN_FULL: must be reject or drop')
    for (const v of ['1000', 'lots', '1.5'])
      expect(
        expectCodeSync(() => loadHttpConfig({ EKMS_AUDIT_BUFFER_BYTES: v }), 'CONFIG_INVALID').message,
      ).toMatch(/^EKMS_AUDIT_BUFFER_BYTES: must be an integer/)
  })
})

describe('HTTP configuration: EKMS_TRUSTED_PROXIES', () => {
  it('is empty by default; a comma-separated list of IPv4/IPv6 addresses and CIDRs is read as given', () => {
    expect(loadHttpConfig({}).trustedProxies).toEqual([])
    expect(
      loadHttpConfig({ EKMS_TRUSTED_PROXIES: ' 10.0.0.1, 10.1.0.0/16,::1, fd00::/8 ' }).trustedProxies,
    ).toEqual(['10.0.0.1', '10.1.0.0/16', '::1', 'fd00::/8'])
  })

  it('an entry that is not an address or CIDR is a CONFIG_INVALID startup error naming it', () => {
    expect(
      expectCodeSync(
        () => loadHttpConfig({ EKMS_TRUSTED_PROXIES: '10.0.0.1,proxy.local,10.0.0.0/33' }),
        'CONFIG_INVALID',
      ).message,
    ).toBe('EKMS_TRUSTED_PROXIES: not an IPv4/IPv6 address or CIDR: "proxy.local", "10.0.0.0/33"')
  })
})

describe('HTTP configuration: the regions of the AWS-KMS-compatible endpoint (issue 14, point 4)', () => {
  const creds = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'ekms-aws-regions-'))
    const f = join(dir, 'aws.json')
    writeFileSync(
      f,
      JSON.stringify([{ accessKeyId: 'AKIAEXAMPLE000000001', secretAccessKey: 's', instance: 'a' }]),
    )
    return f
  }

  it('EKMS_AWSKMS_REGIONS lists the regions served, the default first; EKMS_AWSKMS_REGION is the one-region form; us-east-1 without either', () => {
    const f = creds()
    const regions = (env: Record<string, string>): readonly string[] | undefined =>
      loadHttpConfig({ EKMS_AWSKMS_CREDENTIALS_FILE: f, ...env }).awsKms?.regions
    expect(regions({ EKMS_AWSKMS_REGIONS: 'eu-west-1, eu-west-3' })).toEqual(['eu-west-1', 'eu-west-3'])
    expect(regions({ EKMS_AWSKMS_REGION: 'eu-west-3' })).toEqual(['eu-west-3'])
    expect(regions({})).toEqual(['us-east-1'])
  })

  it('both variables, a bad region name or a repeated region are CONFIG_INVALID naming the variable', () => {
    const f = creds()
    const load = (env: Record<string, string>) => () =>
      loadHttpConfig({ EKMS_AWSKMS_CREDENTIALS_FILE: f, ...env })
    expect(
      expectCodeSync(
        load({ EKMS_AWSKMS_REGIONS: 'eu-west-1', EKMS_AWSKMS_REGION: 'eu-west-1' }),
        'CONFIG_INVALID',
      ).message,
    ).toMatch(/give one of them/)
    expect(
      expectCodeSync(load({ EKMS_AWSKMS_REGIONS: 'eu-west-1,EU_WEST' }), 'CONFIG_INVALID').message,
    ).toMatch(/EKMS_AWSKMS_REGIONS: not a region name: "EU_WEST"/)
    expect(
      expectCodeSync(load({ EKMS_AWSKMS_REGIONS: 'eu-west-1,eu-west-1' }), 'CONFIG_INVALID').message,
    ).toMatch(/a region repeats/)
  })
})

describe('HTTP configuration: EKMS_AZUREKV_*', () => {
  it('is off without a port; with one it needs both TLS files (HTTPS only)', () => {
    expect(loadHttpConfig({}).azureKv).toBeUndefined()
    const e = expectCodeSync(() => loadHttpConfig({ EKMS_AZUREKV_PORT: '8444' }), 'CONFIG_INVALID')
    expect(e.message).toContain('EKMS_AZUREKV_TLS_CERT / EKMS_AZUREKV_TLS_KEY')
    expectCodeSync(
      () => loadHttpConfig({ EKMS_AZUREKV_PORT: '8444', EKMS_AZUREKV_TLS_CERT: '/c.pem' }),
      'CONFIG_INVALID',
    )
  })

  it('reads the port, files, challenge parameters and retention, with their defaults', () => {
    const tls = { EKMS_AZUREKV_TLS_CERT: '/c.pem', EKMS_AZUREKV_TLS_KEY: '/k.pem' }
    expect(loadHttpConfig({ EKMS_AZUREKV_PORT: '8444', ...tls }).azureKv).toEqual({
      port: 8444,
      tls: { certFile: '/c.pem', keyFile: '/k.pem' },
      authority: 'https://login.microsoftonline.com/envelope-kms',
      resource: 'https://vault.azure.net',
      retentionDays: 90,
    })
    const c = loadHttpConfig({
      EKMS_AZUREKV_PORT: '0',
      ...tls,
      EKMS_AZUREKV_AUTHORITY: 'https://login.example.com/tenant-1/',
      EKMS_AZUREKV_RESOURCE: 'https://kms.example.com',
      EKMS_AZUREKV_RETENTION_DAYS: '7',
    }).azureKv
    expect(c?.authority).toBe('https://login.example.com/tenant-1')
    expect(c?.resource).toBe('https://kms.example.com')
    expect(c?.retentionDays).toBe(7)
  })

  it('a plain-http challenge URL or a retention outside 7-90 days is CONFIG_INVALID', () => {
    const base = { EKMS_AZUREKV_PORT: '0', EKMS_AZUREKV_TLS_CERT: '/c', EKMS_AZUREKV_TLS_KEY: '/k' }
    expectCodeSync(
      () => loadHttpConfig({ ...base, EKMS_AZUREKV_RESOURCE: 'http://vault.local' }),
      'CONFIG_INVALID',
    )
    expectCodeSync(() => loadHttpConfig({ ...base, EKMS_AZUREKV_RETENTION_DAYS: '6' }), 'CONFIG_INVALID')
    expectCodeSync(() => loadHttpConfig({ ...base, EKMS_AZUREKV_RETENTION_DAYS: '91' }), 'CONFIG_INVALID')
  })
})
