/**
 * Schema migrations of the SQLite catalog, applied in order and recorded in `PRAGMA user_version`.
 * A released migration is never edited: changes come as a new entry at the end.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: instances, keys, versions, aliases, key rings, pending provider objects.
  `
  CREATE TABLE catalog_meta (
    k TEXT PRIMARY KEY,
    v TEXT NOT NULL
  ) STRICT;

  CREATE TABLE instances (
    instance   TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE keys (
    instance         TEXT NOT NULL REFERENCES instances(instance),
    id               TEXT NOT NULL,
    name             TEXT NOT NULL,
    description      TEXT,
    extractable      INTEGER NOT NULL CHECK (extractable IN (0, 1)),
    imported         INTEGER NOT NULL CHECK (imported IN (0, 1)),
    state            INTEGER NOT NULL CHECK (state IN (0, 1, 2, 3, 5)),
    key_ring_id      TEXT NOT NULL DEFAULT 'default',
    tags             TEXT NOT NULL DEFAULT '[]',
    created_at       INTEGER NOT NULL,
    created_by       TEXT,
    updated_at       INTEGER NOT NULL,
    state_changed_at INTEGER NOT NULL,
    last_rotated_at  INTEGER,
    expiration_date  INTEGER,
    deleted_at       INTEGER,
    deleted_by       TEXT,
    current_version  INTEGER NOT NULL CHECK (current_version >= 1),
    wrapped_payload  BLOB,
    internal         INTEGER NOT NULL DEFAULT 0 CHECK (internal IN (0, 1)),
    PRIMARY KEY (instance, id)
  ) STRICT;
  CREATE UNIQUE INDEX keys_id_unique ON keys(id);
  CREATE INDEX keys_listing ON keys(instance, internal, created_at, id);
  CREATE INDEX keys_system ON keys(instance, internal) WHERE internal = 1;

  CREATE TABLE key_versions (
    instance     TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    version_id   TEXT NOT NULL,
    provider_ref TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (instance, key_id, version),
    FOREIGN KEY (instance, key_id) REFERENCES keys(instance, id) ON DELETE CASCADE
  ) STRICT;

  CREATE TABLE aliases (
    instance   TEXT NOT NULL,
    alias      TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (instance, alias),
    FOREIGN KEY (instance, key_id) REFERENCES keys(instance, id) ON DELETE CASCADE
  ) STRICT;
  CREATE INDEX aliases_by_key ON aliases(instance, key_id);

  CREATE TABLE key_rings (
    instance   TEXT NOT NULL REFERENCES instances(instance),
    id         TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT,
    PRIMARY KEY (instance, id)
  ) STRICT;

  CREATE TABLE pending_versions (
    instance   TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    PRIMARY KEY (instance, key_id, version)
  ) STRICT;
  `,
  // 2: AES-GCM invocations reserved per root-key version (NIST SP 800-38D random-IV limit).
  `
  ALTER TABLE key_versions ADD COLUMN gcm_reserved INTEGER NOT NULL DEFAULT 0 CHECK (gcm_reserved >= 0);
  `,
  // 3: key-level policies (rotation, dualAuthDelete).
  `
  CREATE TABLE key_policies (
    instance       TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    type           TEXT NOT NULL CHECK (type IN ('rotation', 'dualAuthDelete')),
    policy_id      TEXT NOT NULL,
    enabled        INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    interval_month INTEGER CHECK (interval_month BETWEEN 1 AND 12),
    created_at     INTEGER NOT NULL,
    created_by     TEXT,
    updated_at     INTEGER NOT NULL,
    updated_by     TEXT,
    -- dualAuthDelete only: the first authorisation of a two-person delete (setKeyForDeletion)
    auth_by        TEXT,
    auth_expires_at INTEGER,
    PRIMARY KEY (instance, key_id, type),
    FOREIGN KEY (instance, key_id) REFERENCES keys(instance, id) ON DELETE CASCADE
  ) STRICT;
  CREATE INDEX key_policies_rotation ON key_policies(type, enabled) WHERE type = 'rotation' AND enabled = 1;
  `,
  // 4: alias names (path-like, re-pointable: AWS KMS `alias/...`), key/value tag pairs, scheduled deletion.
  `
  CREATE TABLE alias_names (
    instance   TEXT NOT NULL,
    name       TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (instance, name),
    FOREIGN KEY (instance, key_id) REFERENCES keys(instance, id) ON DELETE CASCADE
  ) STRICT;
  CREATE INDEX alias_names_by_key ON alias_names(instance, key_id);

  CREATE TABLE key_tag_pairs (
    instance  TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    tag_key   TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (instance, key_id, tag_key),
    FOREIGN KEY (instance, key_id) REFERENCES keys(instance, id) ON DELETE CASCADE
  ) STRICT;

  CREATE TABLE key_deletion_schedule (
    instance      TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    deletion_date INTEGER NOT NULL,
    PRIMARY KEY (instance, key_id),
    FOREIGN KEY (instance, key_id) REFERENCES keys(instance, id) ON DELETE CASCADE
  ) STRICT;
  CREATE INDEX key_deletion_schedule_due ON key_deletion_schedule(deletion_date);
  `,
  // 5: the durable "purging" mark of a crash-safe purge (set before the first provider object is destroyed).
  `
  ALTER TABLE keys ADD COLUMN purging_since INTEGER;
  CREATE INDEX keys_purging ON keys(purging_since) WHERE purging_since IS NOT NULL;
  `,
  // 6: import tokens (Key Protect secure import): one per instance, its key pair in the provider.
  `
  CREATE TABLE import_tokens (
    instance             TEXT PRIMARY KEY,
    provider_ref         TEXT NOT NULL,
    public_key_pem       TEXT NOT NULL,
    nonce                BLOB NOT NULL,
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    max_retrievals       INTEGER NOT NULL CHECK (max_retrievals BETWEEN 1 AND 500),
    remaining_retrievals INTEGER NOT NULL CHECK (remaining_retrievals BETWEEN 0 AND max_retrievals)
  ) STRICT;
  CREATE INDEX import_tokens_expiry ON import_tokens(expires_at);
  `,
  // 7: registrations (resources protected by a root key) and the per-key event log (Key Protect).
  `
  CREATE TABLE registrations (
    instance               TEXT NOT NULL,
    key_id                 TEXT NOT NULL,
    resource_crn           TEXT NOT NULL,
    description            TEXT,
    registration_metadata  TEXT,
    prevent_key_deletion   INTEGER NOT NULL CHECK (prevent_key_deletion IN (0, 1)),
    key_version_id         TEXT,
    deactivated            INTEGER NOT NULL DEFAULT 0 CHECK (deactivated IN (0, 1)),
    created_at             INTEGER NOT NULL,
    created_by             TEXT,
    updated_at             INTEGER NOT NULL,
    updated_by             TEXT,
    PRIMARY KEY (instance, key_id, resource_crn),
    FOREIGN KEY (instance, key_id) REFERENCES keys(instance, id) ON DELETE CASCADE
  ) STRICT;
  CREATE INDEX registrations_listing ON registrations(instance, created_at, key_id, resource_crn);

  CREATE TABLE key_events (
    instance     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    type         TEXT NOT NULL CHECK (type IN ('rotate', 'disable', 'enable', 'delete', 'restore', 'policy', 'sync')),
    key_version  INTEGER NOT NULL,
    resource_crn TEXT,
    created_at   INTEGER NOT NULL,
    created_by   TEXT,
    acked_at     INTEGER,
    ack_state    TEXT,
    PRIMARY KEY (instance, event_id),
    FOREIGN KEY (instance, key_id) REFERENCES keys(instance, id) ON DELETE CASCADE
  ) STRICT;
  CREATE INDEX key_events_by_key ON key_events(instance, key_id, seq);
  `,
  // 8: instance policies (Key Protect, spec digest §4.7): one row per instance and policy type.
  `
  CREATE TABLE instance_policies (
    instance   TEXT NOT NULL,
    type       TEXT NOT NULL CHECK (type IN ('allowedNetwork', 'dualAuthDelete', 'allowedIP',
                                             'keyCreateImportAccess', 'metrics', 'rotation')),
    enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    attributes TEXT,
    created_at INTEGER NOT NULL,
    created_by TEXT,
    updated_at INTEGER NOT NULL,
    updated_by TEXT,
    PRIMARY KEY (instance, type)
  ) STRICT;
  `,
  // 9: who added a Key Protect alias (answered as the alias's createdBy); NULL for aliases added before.
  `
  ALTER TABLE aliases ADD COLUMN created_by TEXT;
  `,
  // 10: key regions of the AWS-compatible endpoint: the regions a key is present in (multi-region keys: the
  // primary's region and each replica's), its description and key policy there. No row: the default region.
  `
  CREATE TABLE key_regions (
    instance       TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    region         TEXT NOT NULL,
    primary_region TEXT NOT NULL,
    multi_region   INTEGER NOT NULL CHECK (multi_region IN (0, 1)),
    description    TEXT,
    policy         TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (instance, key_id, region),
    FOREIGN KEY (instance, key_id) REFERENCES keys(instance, id) ON DELETE CASCADE
  ) STRICT;
  `,
  // 11: the job system (core/jobs/runner.ts): durable job records. At most one active (queued or running)
  // job of a type per tenant, enforced here by a unique partial index so that two processes cannot both
  // start one.
  `
  CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    type             TEXT NOT NULL,
    tenant           TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    params           TEXT NOT NULL,
    checkpoint       TEXT,
    done             INTEGER NOT NULL CHECK (done >= 0),
    total            INTEGER NOT NULL CHECK (total >= 0),
    cancel_requested INTEGER NOT NULL CHECK (cancel_requested IN (0, 1)),
    error_code       TEXT,
    error_message    TEXT,
    result           TEXT,
    created_by       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    revision         INTEGER NOT NULL CHECK (revision >= 1),
    lease_owner      TEXT,
    lease_until      INTEGER
  ) STRICT;
  CREATE UNIQUE INDEX jobs_one_active ON jobs(tenant, type) WHERE state IN ('queued', 'running');
  CREATE INDEX jobs_by_tenant ON jobs(tenant, created_at);
  `,
  // 12: tenant key providers (registered customer-managed keys), each tenant's key-provider state (the
  // current provider, the default provider's root key) and the per-tenant data-key catalog.
  `
  CREATE TABLE key_providers (
    tenant                 TEXT NOT NULL,
    fingerprint            TEXT NOT NULL,
    id                     TEXT NOT NULL,
    kind                   TEXT NOT NULL CHECK (kind IN ('aws-kms', 'engine-key')),
    arn                    TEXT NOT NULL,
    name                   TEXT NOT NULL,
    description            TEXT,
    multi_region           INTEGER NOT NULL CHECK (multi_region IN (0, 1)),
    replica_keys           TEXT NOT NULL,
    created_at             INTEGER NOT NULL,
    created_by             TEXT,
    promoted_at            INTEGER NOT NULL DEFAULT 0,
    demoted_at             INTEGER NOT NULL DEFAULT 0,
    compliance             TEXT,
    PRIMARY KEY (tenant, fingerprint),
    UNIQUE (tenant, arn),
    UNIQUE (id)
  ) STRICT;
  CREATE INDEX key_providers_listing ON key_providers(tenant, created_at, fingerprint);

  CREATE TABLE tenant_key_state (
    tenant               TEXT PRIMARY KEY,
    current_fingerprint  TEXT NOT NULL,
    default_key_id       TEXT,
    default_promoted_at  INTEGER NOT NULL,
    default_demoted_at   INTEGER NOT NULL,
    revision             INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE data_keys (
    tenant                TEXT NOT NULL,
    name                  TEXT NOT NULL,
    wrapped               TEXT NOT NULL,
    provider_fingerprint  TEXT NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX data_keys_by_provider ON data_keys(tenant, provider_fingerprint, name);
  `,
  // 13: vault keys of the Azure-Key-Vault-compatible API (core/ports-vault-keys.ts), a kind of their own:
  // no engine table refers to them and they refer to none. Names compare case-insensitively (Key Vault).
  `
  CREATE TABLE vault_keys (
    instance        TEXT NOT NULL,
    name            TEXT NOT NULL COLLATE NOCASE,
    created_at      INTEGER NOT NULL,
    current_version TEXT NOT NULL,
    deleted_at      INTEGER,
    purge_at        INTEGER,
    PRIMARY KEY (instance, name)
  ) STRICT;
  CREATE TABLE vault_key_versions (
    instance     TEXT NOT NULL,
    name         TEXT NOT NULL COLLATE NOCASE,
    version      TEXT NOT NULL,
    seq          INTEGER NOT NULL CHECK (seq >= 1),
    kty          TEXT NOT NULL CHECK (kty IN ('oct-HSM', 'RSA-HSM')),
    size         INTEGER NOT NULL,
    provider_ref TEXT NOT NULL,
    public_n     BLOB,
    public_e     BLOB,
    imported     INTEGER NOT NULL CHECK (imported IN (0, 1)),
    enabled      INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    key_ops      TEXT NOT NULL,
    tags         TEXT NOT NULL,
    not_before   INTEGER,
    expires      INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (instance, name, version),
    UNIQUE (instance, name, seq),
    FOREIGN KEY (instance, name) REFERENCES vault_keys (instance, name) ON DELETE CASCADE
  ) STRICT;
  `,
  // 14: the vault-key maintenance pass (core/jobs/vault-key-maintenance.ts): soft-deleted keys by purge date,
  // and versions by device object (the orphan sweep asks whether an object has a row).
  `
  CREATE INDEX vault_keys_purge_due ON vault_keys(purge_at) WHERE purge_at IS NOT NULL;
  CREATE INDEX vault_key_versions_by_ref ON vault_key_versions(provider_ref);
  `,
  // 15: cloud connections of key synchronization (store/sqlite/connections.ts): params as JSON (secret
  // references only, never a secret), names unique per tenant case-insensitively.
  `
  CREATE TABLE sync_connections (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL COLLATE NOCASE,
    cloud       TEXT NOT NULL CHECK (cloud IN ('azure', 'aws', 'pkcs11')),
    description TEXT,
    params      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    last_test   TEXT,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, name)
  ) STRICT;
  CREATE INDEX sync_connections_by_cloud ON sync_connections(tenant, cloud, name);
  `,
  // 16: linked (synchronized) root keys (store/sqlite/linked-keys.ts): one row per key of a connection
  // (its identity at the source unique within the connection), versions and attributes as JSON. A
  // connection with linked keys cannot be deleted (checked in the delete's transaction; the foreign key
  // backs it).
  `
  CREATE TABLE linked_keys (
    tenant               TEXT NOT NULL,
    id                   TEXT NOT NULL,
    cloud                TEXT NOT NULL CHECK (cloud IN ('azure', 'aws', 'pkcs11')),
    connection_id        TEXT NOT NULL,
    source_key_id        TEXT NOT NULL,
    vault                TEXT NOT NULL,
    name                 TEXT NOT NULL,
    key_type             TEXT NOT NULL,
    usable               INTEGER NOT NULL CHECK (usable IN (0, 1)),
    enabled              INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    versions             TEXT NOT NULL,
    attributes           TEXT NOT NULL,
    source_state         TEXT NOT NULL CHECK (source_state IN ('present', 'deleted')),
    deleted_at_source_at INTEGER,
    first_synced_at      INTEGER NOT NULL,
    last_synced_at       INTEGER NOT NULL,
    last_sync_job_id     TEXT NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, connection_id, source_key_id),
    FOREIGN KEY (tenant, connection_id) REFERENCES sync_connections(tenant, id)
  ) STRICT;
  CREATE INDEX linked_keys_by_cloud ON linked_keys(tenant, cloud, id);
  CREATE INDEX linked_keys_by_connection ON linked_keys(tenant, connection_id, id);
  CREATE INDEX linked_keys_by_state ON linked_keys(tenant, source_state, id);
  `,
]
