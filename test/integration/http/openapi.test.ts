/**
 * The OpenAPI document a running server publishes (`GET /openapi.json`): it describes every Key Protect, Qlik and CCKM route
 * the server mounts, with its operationId, the bearer security scheme, error responses and the package's
 * version, and it passes `redocly lint` with the recommended rules (run on the served document).
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KEY_PROTECT_ROUTES } from '../../../src/http/keyprotect/index.js'
import { operationIdOf } from '../../../src/http/keyprotect/pipeline.js'
import { createHttpApp } from '../../../src/http/app.js'
import { createAuthenticator } from '../../../src/http/auth.js'
import { startServer } from '../../../src/http/server.js'
import { QLIK_PREFIX, QLIK_ROUTES } from '../../../src/http/qlik/index.js'
import { CCKM_ROUTES } from '../../../src/http/cckm/index.js'
import { TEST_AUTH } from '../../helpers/http.js'
import { startQlikServer, type QlikTestServer } from '../../helpers/qlik.js'

const run = promisify(execFile)

/** The 41 operations of the Key Protect v2 spec digest (shared/spec/key-protect-v2.md §0), as method and path. */
const SPEC_OPERATIONS = [
  'post /keys',
  'get /keys',
  'head /keys',
  'post /keys_with_policy_overrides',
  'get /keys/{id}',
  'post /keys/{id}?action=<action>',
  'patch /keys/{id}',
  'delete /keys/{id}',
  'get /keys/{id}/metadata',
  'delete /keys/{id}/purge',
  'post /keys/{id}/restore',
  'get /keys/{id}/versions',
  'post /keys/{id}/actions/wrap',
  'post /keys/{id}/actions/unwrap',
  'post /keys/{id}/actions/rewrap',
  'post /keys/{id}/actions/rotate',
  'post /keys/{id}/actions/setKeyForDeletion',
  'post /keys/{id}/actions/unsetKeyForDeletion',
  'post /keys/{id}/actions/enable',
  'post /keys/{id}/actions/disable',
  'post /keys/{id}/actions/sync',
  'put /keys/{id}/policies',
  'get /keys/{id}/policies',
  'put /instance/policies',
  'get /instance/policies',
  'get /instance/allowed_ip_port',
  'post /import_token',
  'get /import_token',
  'post /keys/{id}/registrations/{urlEncodedResourceCRN}',
  'patch /keys/{id}/registrations/{urlEncodedResourceCRN}',
  'put /keys/{id}/registrations/{urlEncodedResourceCRN}',
  'delete /keys/{id}/registrations/{urlEncodedResourceCRN}',
  'post /keys/{id}/registrations?action=deactivate',
  'get /keys/{id}/registrations',
  'get /keys/registrations',
  'post /event_ack',
  'post /keys/{id}/aliases/{alias}',
  'delete /keys/{id}/aliases/{alias}',
  'get /key_rings',
  'post /key_rings/{key-ring-id}',
  'delete /key_rings/{key-ring-id}',
]

interface Operation {
  operationId?: string
  security?: unknown
  responses: Record<string, unknown>
}
interface Doc {
  info: { version: string; license?: { name: string } }
  servers?: { url: string }[]
  security?: Record<string, unknown>[]
  components?: { securitySchemes?: Record<string, { type: string; scheme?: string }> }
  paths: Record<string, Record<string, Operation>>
}

let s: QlikTestServer
let doc: Doc
let raw: string

beforeAll(async () => {
  // With tenant key providers, as `serve` runs it: the Qlik routes are in the document too.
  s = await startQlikServer()
  const res = await fetch(`${s.url}/openapi.json`)
  expect(res.status).toBe(200)
  raw = await res.text()
  doc = JSON.parse(raw) as Doc
})
afterAll(async () => {
  await s.close()
})

describe('GET /openapi.json', () => {
  it('lists every mounted Key Protect route once, with a unique operationId and error responses', () => {
    const seen = new Set<string>()
    for (const def of KEY_PROTECT_ROUTES) {
      const op = doc.paths[`/api/v2${def.path}`]?.[def.method]
      expect(op, `${def.method} ${def.path}`).toBeDefined()
      expect(op?.operationId).toBe(operationIdOf(def))
      expect(seen.has(op?.operationId ?? '')).toBe(false)
      seen.add(op?.operationId ?? '')
      for (const status of ['400', '401', '403', '429', '4XX', '5XX']) {
        expect(op?.responses[status], `${def.method} ${def.path} ${status}`).toBeDefined()
      }
    }
    // The official SDK's method names (@ibm-cloud/ibm-key-protect) for the operations it has.
    const sdk = new Map(
      Object.entries({
        'post /keys': 'createKey',
        'get /keys': 'getKeys',
        'head /keys': 'getKeyCollectionMetadata',
        'get /keys/{id}/versions': 'getKeyVersions',
        'put /keys/{id}/policies': 'putPolicy',
        'get /keys/{id}/policies': 'getPolicy',
        'post /keys/{id}/aliases/{alias}': 'createKeyAlias',
        'delete /keys/{id}/aliases/{alias}': 'deleteKeyAlias',
        'post /keys/{id}/actions/wrap': 'wrapKey',
        'post /keys/{id}/restore': 'restoreKey',
        'get /key_rings': 'listKeyRings',
        'post /import_token': 'postImportToken',
        'get /import_token': 'getImportToken',
        'put /instance/policies': 'putInstancePolicy',
        'get /instance/policies': 'getInstancePolicy',
        'get /instance/allowed_ip_port': 'getAllowedIpPort',
        'get /keys/{id}/registrations': 'getRegistrations',
        'get /keys/registrations': 'getRegistrationsAllKeys',
        'post /keys/{id}/actions/sync': 'syncAssociatedResources',
        // Newer IBM SDKs (not in the pinned 0.1.2) name the registration writes and event_ack so.
        'post /keys/{id}/registrations/{urlEncodedResourceCRN}': 'createRegistration',
        'patch /keys/{id}/registrations/{urlEncodedResourceCRN}': 'updateRegistration',
        'put /keys/{id}/registrations/{urlEncodedResourceCRN}': 'replaceRegistration',
        'delete /keys/{id}/registrations/{urlEncodedResourceCRN}': 'deleteRegistration',
        'post /keys/{id}/registrations': 'deactivateRegistration',
        'post /event_ack': 'eventAcknowledge',
      }),
    )
    for (const [route, id] of sdk) {
      const [method = '', path = ''] = route.split(' ')
      expect(doc.paths[`/api/v2${path}`]?.[method]?.operationId, route).toBe(id)
    }
    const documented = Object.values(doc.paths).reduce((n, p) => n + Object.keys(p).length, 0)
    expect(documented).toBe(KEY_PROTECT_ROUTES.length + QLIK_ROUTES.length + CCKM_ROUTES.length)
  })

  it('documents the CCKM routes once each, with a unique operationId and the CCKM error responses', () => {
    expect(CCKM_ROUTES).toHaveLength(16)
    for (const def of CCKM_ROUTES) {
      const op = doc.paths[def.path]?.[def.method]
      expect(op?.operationId, `${def.method} ${def.path}`).toBe(def.operationId)
      for (const status of ['400', '401', '403', '404', '4XX', '5XX']) {
        expect(op?.responses[status], `${def.path} ${status}`).toBeDefined()
      }
    }
  })

  it("documents the Qlik key providers API's ten operations under @qlik/api's function names", () => {
    const qlik = new Map(
      Object.entries({
        'get ': 'getEncryptionKeyproviders',
        'post ': 'createEncryptionKeyprovider',
        'get /actions/list': 'listEncryptionKeyproviders',
        'post /actions/reset-to-default-provider': 'resetEncryptionKeyproviders',
        'get /migration/actions/details': 'getEncryptionKeyprovidersMigrationDetails',
        'get /{arnFingerPrint}': 'getEncryptionKeyprovider',
        'patch /{arnFingerPrint}': 'patchEncryptionKeyprovider',
        'delete /{arnFingerPrint}': 'deleteEncryptionKeyprovider',
        'post /{arnFingerPrint}/actions/migrate': 'migrateEncryptionKeyprovider',
        'post /{arnFingerPrint}/actions/test': 'testEncryptionKeyprovider',
      }),
    )
    expect(QLIK_ROUTES).toHaveLength(10)
    for (const [route, id] of qlik) {
      const [method = '', path = ''] = route.split(' ')
      const op = doc.paths[`${QLIK_PREFIX}${path}`]?.[method]
      expect(op?.operationId, route).toBe(id)
      for (const status of ['400', '401', '403', '429', '4XX', '5XX']) {
        expect(op?.responses[status], `${route} ${status}`).toBeDefined()
      }
    }
  })

  it("documents every one of the spec digest's 41 operations (the ?action= forms as a query parameter)", () => {
    expect(SPEC_OPERATIONS).toHaveLength(41)
    const missing = SPEC_OPERATIONS.filter((op) => {
      const [method = '', target = ''] = op.split(' ')
      const [path = '', query] = target.split('?')
      const o = doc.paths[`/api/v2${path}`]?.[method]
      if (o === undefined) return true
      if (query === undefined) return false
      const params = (o as { parameters?: { in: string; name: string }[] }).parameters ?? []
      return !params.some((p) => p.in === 'query' && p.name === 'action')
    })
    expect(missing).toEqual([])
  })

  it('declares the bearer scheme, a server, the licence and the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version: string
    }
    expect(doc.info.version).toBe(pkg.version)
    expect(doc.info.license?.name).toBe('Apache-2.0')
    expect(doc.components?.securitySchemes?.['bearer']).toMatchObject({ type: 'http', scheme: 'bearer' })
    expect(doc.security).toEqual([{ bearer: [] }])
    expect(doc.servers?.length).toBeGreaterThan(0)
  })

  it('passes redocly lint with the recommended rules (no errors, no warnings)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekms-openapi-'))
    try {
      const file = join(dir, 'openapi.json')
      writeFileSync(file, raw)
      const bin = new URL('../../../node_modules/.bin/redocly', import.meta.url).pathname
      const out = await run(bin, ['lint', '--extends', 'recommended', '--format', 'json', file], {
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
        maxBuffer: 16 * 1024 * 1024,
      }).catch((err: unknown) => {
        const e = err as { stdout?: string; stderr?: string; code?: number }
        throw new Error(`redocly lint failed (exit ${String(e.code)}):\n${e.stdout ?? ''}${e.stderr ?? ''}`)
      })
      const report = JSON.parse(out.stdout) as { totals: { errors: number; warnings: number } }
      expect(report.totals).toMatchObject({ errors: 0, warnings: 0 })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

describe('app-level errors', () => {
  it('a route added to the public app that throws answers 500 in the error envelope and echoes Correlation-Id', async () => {
    const extended = createHttpApp({ engine: s.t.engine, auth: createAuthenticator(TEST_AUTH) })
    extended.app.get('/extension/boom', () => {
      throw new Error('boom')
    })
    const server = await startServer(extended, { host: '127.0.0.1', port: 0 })
    try {
      const res = await fetch(`${server.url}/extension/boom`, { headers: { 'correlation-id': 'trace-123' } })
      expect(res.status).toBe(500)
      expect(res.headers.get('correlation-id')).toBe('trace-123')
      const body = (await res.json()) as { resources: { reasons: { code: string }[] }[] }
      expect(body.resources[0]?.reasons[0]?.code).toBe('INTERNAL_SERVER_ERR')
      const missing = await fetch(`${server.url}/no/such/path`, {
        headers: { 'correlation-id': 'trace-456' },
      })
      expect(missing.status).toBe(404)
      expect(missing.headers.get('correlation-id')).toBe('trace-456')
    } finally {
      await server.close(2000)
    }
  })
})
