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
