/**
 * The ten endpoints of the Qlik Cloud encryption key providers API (spec digest §A.3), each one library call
 * on {@link TenantKeyProviders} and a reply shaped by wire.ts. Static routes come before `/{arnFingerPrint}`.
 */
import type { z } from '@hono/zod-openapi'
import type { KeyProviderView, TenantKeyProviders } from '../../core/tenant-keys/types.js'
import { QLIK_HTTP_ERRORS, QLIK_ROUTE_ERRORS } from '../errors.js'
import { json, noBody, QLIK_PREFIX, type QlikReq, type QlikRouteDef } from './pipeline.js'
import * as S from './schemas.js'
import { acceptProviderSpelling, keyProviderWire, migrationWire, providerKind } from './wire.js'

type Tk = { readonly tenantKeys: TenantKeyProviders }

/** Where a client reads the migration a 205 reset started (the 205 itself carries no body). */
export const MIGRATION_DETAILS_PATH = `${QLIK_PREFIX}/migration/actions/details`

/** A collection response: a bare array (every example; not the schema's `{errors: [...]}`). */
function collection(r: QlikReq, list: readonly KeyProviderView[]): Response {
  return json(
    r,
    200,
    list.map((p) => keyProviderWire(p, 'list')),
  )
}

/** GET /keyproviders: the tenant's registered providers (not the default). */
async function getEncryptionKeyproviders(r: QlikReq, { tenantKeys }: Tk): Promise<Response> {
  return collection(r, await tenantKeys.list(r.tenant))
}

/** POST /keyproviders: registers a key (not current); 201 with the provider. */
async function createEncryptionKeyprovider(r: QlikReq, { tenantKeys }: Tk): Promise<Response> {
  const b = r.body as z.infer<typeof S.KeyProviderCreate>
  const p = await tenantKeys.register(r.tenant, {
    arn: b.arn,
    name: b.name,
    description: b.description,
    kind: providerKind(b.keyprovider),
    createdBy: r.principal.subject,
  })
  return json(r, 201, keyProviderWire(p, 'single'))
}

/** GET /keyproviders/actions/list: the default provider first, then the registered ones. */
async function listEncryptionKeyproviders(r: QlikReq, { tenantKeys }: Tk): Promise<Response> {
  return collection(r, await tenantKeys.listAll(r.tenant))
}

/**
 * POST /keyproviders/actions/reset-to-default-provider: starts the migration back to the default provider;
 * 205 without a body (a null-body status), `Location` naming the migration details endpoint.
 */
async function resetEncryptionKeyproviders(r: QlikReq, { tenantKeys }: Tk): Promise<Response> {
  const m = await tenantKeys.resetToDefault(r.tenant, { createdBy: r.principal.subject })
  return noBody(r, 205, { location: MIGRATION_DETAILS_PATH, 'x-migration-id': m.id })
}

/** GET /keyproviders/migration/actions/details: the ongoing migration, or the last one. */
async function getEncryptionKeyprovidersMigrationDetails(r: QlikReq, { tenantKeys }: Tk): Promise<Response> {
  return json(r, 200, migrationWire(await tenantKeys.migration(r.tenant)))
}

/** GET /keyproviders/{arnFingerPrint}: one provider (the tenant id: the default provider). */
async function getEncryptionKeyprovider(r: QlikReq, { tenantKeys }: Tk): Promise<Response> {
  return json(r, 200, keyProviderWire(await tenantKeys.get(r.tenant, r.fingerprint), 'single'))
}

/** PATCH /keyproviders/{arnFingerPrint}: JSON Patch of name and description, all or nothing; 204. */
async function patchEncryptionKeyprovider(r: QlikReq, { tenantKeys }: Tk): Promise<Response> {
  await tenantKeys.patch(r.tenant, r.fingerprint, r.body as z.infer<typeof S.KeyProviderPatch>)
  return noBody(r, 204)
}

/** DELETE /keyproviders/{arnFingerPrint}: an inactive, non-default provider; 204 without a body. */
async function deleteEncryptionKeyprovider(r: QlikReq, { tenantKeys }: Tk): Promise<Response> {
  await tenantKeys.delete(r.tenant, r.fingerprint)
  return noBody(r, 204)
}

/** POST /keyproviders/{arnFingerPrint}/actions/migrate: promotes it and starts the migration; 200. */
async function migrateEncryptionKeyprovider(r: QlikReq, { tenantKeys }: Tk): Promise<Response> {
  const m = await tenantKeys.migrate(r.tenant, r.fingerprint, { createdBy: r.principal.subject })
  return json(r, 200, migrationWire(m))
}

/** POST /keyproviders/{arnFingerPrint}/actions/test: probes the key; 201 with the refreshed provider. */
async function testEncryptionKeyprovider(r: QlikReq, { tenantKeys }: Tk): Promise<Response> {
  return json(r, 201, keyProviderWire(await tenantKeys.test(r.tenant, r.fingerprint), 'single'))
}

const one = { description: 'The key provider', schema: S.KeyProvider }
const migration = { description: 'The migration', schema: S.MigrationInformation }

/** Every route, in registration order (static paths before `/{arnFingerPrint}`). */
export const QLIK_ROUTES: readonly QlikRouteDef[] = [
  {
    method: 'get',
    path: '',
    operationId: 'getEncryptionKeyproviders',
    summary: 'List the tenant’s registered (AWS-KMS) key providers',
    responses: { 200: { description: 'The providers (a bare array)', schema: S.KeyProviderList } },
    handler: getEncryptionKeyproviders,
  },
  {
    method: 'post',
    path: '',
    operationId: 'createEncryptionKeyprovider',
    summary: 'Register a key provider (not current)',
    body: { schema: S.KeyProviderCreate, prepare: acceptProviderSpelling },
    responses: { 201: one },
    errors: { KEY_PROVIDER_NOT_FOUND: QLIK_ROUTE_ERRORS.registerFailed },
    handler: createEncryptionKeyprovider,
  },
  {
    method: 'get',
    path: '/actions/list',
    operationId: 'listEncryptionKeyproviders',
    summary: 'List every key provider, the default one first',
    responses: { 200: { description: 'The providers (a bare array)', schema: S.KeyProviderList } },
    handler: listEncryptionKeyproviders,
  },
  {
    method: 'post',
    path: '/actions/reset-to-default-provider',
    operationId: 'resetEncryptionKeyproviders',
    summary: 'Migrate back to the default provider',
    responses: {
      205: { description: 'Migration started; no body (see Location and X-Migration-Id)' },
    },
    errors: {
      MIGRATION_IN_PROGRESS: QLIK_ROUTE_ERRORS.resetMigrationRunning,
      JOB_CONFLICT: QLIK_ROUTE_ERRORS.resetMigrationRunning,
      KEY_PROVIDER_ALREADY_CURRENT: QLIK_ROUTE_ERRORS.resetAlreadyDefault,
    },
    handler: resetEncryptionKeyproviders,
  },
  {
    method: 'get',
    path: '/migration/actions/details',
    operationId: 'getEncryptionKeyprovidersMigrationDetails',
    summary: 'The ongoing migration, or the last one',
    responses: { 200: migration },
    handler: getEncryptionKeyprovidersMigrationDetails,
  },
  {
    method: 'get',
    path: '/{arnFingerPrint}',
    operationId: 'getEncryptionKeyprovider',
    summary: 'Get one key provider',
    responses: { 200: one },
    handler: getEncryptionKeyprovider,
  },
  {
    method: 'patch',
    path: '/{arnFingerPrint}',
    operationId: 'patchEncryptionKeyprovider',
    summary: 'Update the name and/or description (JSON Patch)',
    body: { schema: S.KeyProviderPatch, invalid: QLIK_HTTP_ERRORS.badPatch },
    responses: { 204: { description: 'Updated' } },
    handler: patchEncryptionKeyprovider,
  },
  {
    method: 'delete',
    path: '/{arnFingerPrint}',
    operationId: 'deleteEncryptionKeyprovider',
    summary: 'Delete an inactive, non-default key provider',
    responses: { 204: { description: 'Deleted; no body' } },
    handler: deleteEncryptionKeyprovider,
  },
  {
    method: 'post',
    path: '/{arnFingerPrint}/actions/migrate',
    operationId: 'migrateEncryptionKeyprovider',
    summary: 'Make the provider current and migrate every entry to it',
    responses: { 200: migration },
    handler: migrateEncryptionKeyprovider,
  },
  {
    method: 'post',
    path: '/{arnFingerPrint}/actions/test',
    operationId: 'testEncryptionKeyprovider',
    summary: 'Probe the key in its region and every replica',
    responses: { 201: one },
    handler: testEncryptionKeyprovider,
  },
]
