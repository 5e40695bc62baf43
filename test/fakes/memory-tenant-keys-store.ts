/**
 * An in-memory KeyProviderStore & DataKeyStore for unit tests, with the semantics of the SQLite store
 * (src/store/sqlite/key-providers.ts, data-keys.ts): each call atomic, compare-and-set where documented.
 * `gate` lets a test interleave calls.
 */
import { EngineError } from '../../src/core/errors.js'
import type {
  DataKeyRecord,
  DataKeyStore,
  KeyProviderPatch,
  KeyProviderRecord,
  KeyProviderStore,
  TenantKeyState,
} from '../../src/core/ports-tenant-keys.js'

export class MemoryTenantKeysStore implements KeyProviderStore, DataKeyStore {
  readonly providers = new Map<string, KeyProviderRecord>()
  readonly states = new Map<string, TenantKeyState>()
  readonly dataKeys = new Map<string, DataKeyRecord>()
  /** Called before every replaceWrapped (tests change entries there to race the migration). */
  beforeReplace: (() => void) | undefined

  async insertKeyProvider(r: KeyProviderRecord): Promise<boolean> {
    for (const p of this.providers.values()) {
      if (p.tenant === r.tenant && (p.arn === r.arn || p.fingerprint === r.fingerprint)) return false
    }
    this.providers.set(`${r.tenant}\0${r.fingerprint}`, r)
    return true
  }
  async getKeyProvider(tenant: string, fp: string): Promise<KeyProviderRecord | undefined> {
    return this.providers.get(`${tenant}\0${fp}`)
  }
  async listKeyProviders(tenant: string): Promise<KeyProviderRecord[]> {
    return [...this.providers.values()]
      .filter((p) => p.tenant === tenant)
      .sort((a, b) => a.createdAt - b.createdAt || a.fingerprint.localeCompare(b.fingerprint))
  }
  async updateKeyProvider(tenant: string, fp: string, patch: KeyProviderPatch): Promise<boolean> {
    const k = `${tenant}\0${fp}`
    const r = this.providers.get(k)
    if (r === undefined) return false
    this.providers.set(k, { ...r, ...patch })
    return true
  }
  async deleteKeyProvider(tenant: string, fp: string): Promise<'deleted' | 'not-found' | 'in-use'> {
    const k = `${tenant}\0${fp}`
    if (!this.providers.has(k)) return 'not-found'
    if (this.states.get(tenant)?.currentFingerprint === fp) return 'in-use'
    for (const d of this.dataKeys.values()) {
      if (d.tenant === tenant && d.providerFingerprint === fp) return 'in-use'
    }
    this.providers.delete(k)
    return 'deleted'
  }
  async getTenantKeyState(tenant: string): Promise<TenantKeyState | undefined> {
    return this.states.get(tenant)
  }
  async initTenantKeyState(s: TenantKeyState): Promise<TenantKeyState> {
    if (!this.states.has(s.tenant)) this.states.set(s.tenant, s)
    return this.states.get(s.tenant)!
  }
  async setDefaultKey(tenant: string, keyId: string): Promise<TenantKeyState> {
    const s = this.states.get(tenant)
    if (s === undefined) throw new EngineError('STORE_ERROR', 'no state')
    if (s.defaultKeyId === undefined) {
      this.states.set(tenant, { ...s, defaultKeyId: keyId, revision: s.revision + 1 })
    }
    return this.states.get(tenant)!
  }
  async switchCurrent(
    tenant: string,
    expected: number,
    to: string,
    at: number,
  ): Promise<TenantKeyState | undefined> {
    const s = this.states.get(tenant)
    if (s === undefined || s.revision !== expected) return undefined
    if (to !== tenant && !this.providers.has(`${tenant}\0${to}`)) {
      throw new EngineError('KEY_PROVIDER_NOT_FOUND', 'no such provider')
    }
    const from = s.currentFingerprint
    if (from !== tenant) {
      const r = this.providers.get(`${tenant}\0${from}`)
      if (r !== undefined) this.providers.set(`${tenant}\0${from}`, { ...r, demotedFromCurrentAt: at })
    }
    if (to !== tenant) {
      const r = this.providers.get(`${tenant}\0${to}`)!
      this.providers.set(`${tenant}\0${to}`, { ...r, promotedToCurrentAt: at })
    }
    const next: TenantKeyState = {
      ...s,
      currentFingerprint: to,
      revision: s.revision + 1,
      defaultPromotedAt: to === tenant ? at : s.defaultPromotedAt,
      defaultDemotedAt: from === tenant ? at : s.defaultDemotedAt,
    }
    this.states.set(tenant, next)
    return next
  }

  #sorted(tenant: string): DataKeyRecord[] {
    return [...this.dataKeys.values()]
      .filter((d) => d.tenant === tenant)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }
  async insertDataKey(r: DataKeyRecord): Promise<boolean> {
    const k = `${r.tenant}\0${r.name}`
    if (this.dataKeys.has(k)) return false
    this.dataKeys.set(k, r)
    return true
  }
  async getDataKey(tenant: string, name: string): Promise<DataKeyRecord | undefined> {
    return this.dataKeys.get(`${tenant}\0${name}`)
  }
  async listDataKeys(
    tenant: string,
    q: { readonly after?: string | undefined; readonly limit: number },
  ): Promise<DataKeyRecord[]> {
    return this.#sorted(tenant)
      .filter((d) => d.name > (q.after ?? ''))
      .slice(0, q.limit)
  }
  async deleteDataKey(tenant: string, name: string): Promise<boolean> {
    return this.dataKeys.delete(`${tenant}\0${name}`)
  }
  async countDataKeys(tenant: string, fp?: string): Promise<number> {
    return this.#sorted(tenant).filter((d) => fp === undefined || d.providerFingerprint === fp).length
  }
  async listDataKeysNotUnder(
    tenant: string,
    fp: string,
    after: string | undefined,
    limit: number,
  ): Promise<DataKeyRecord[]> {
    return this.#sorted(tenant)
      .filter((d) => d.name > (after ?? '') && d.providerFingerprint !== fp)
      .slice(0, limit)
  }
  async replaceWrapped(
    tenant: string,
    updates: Parameters<DataKeyStore['replaceWrapped']>[1],
  ): Promise<number> {
    this.beforeReplace?.()
    let n = 0
    for (const u of updates) {
      const k = `${tenant}\0${u.name}`
      const r = this.dataKeys.get(k)
      if (r === undefined || r.wrapped !== u.expectedWrapped) continue
      this.dataKeys.set(k, {
        ...r,
        wrapped: u.wrapped,
        providerFingerprint: u.providerFingerprint,
        updatedAt: u.updatedAt,
      })
      n++
    }
    return n
  }
}
