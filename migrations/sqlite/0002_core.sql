-- Core host: tenants, identity, groups (with a closure table), CRM records and their
-- shares, and the audit ledger. Every tenant-owned table is keyed by tenant_id first.

CREATE TABLE tenants (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    default_api_version TEXT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'active',
    created_at          TEXT NOT NULL
);

CREATE TABLE users (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    id         TEXT NOT NULL,
    email      TEXT NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'active',
    version    INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email)
);

-- API keys: only the SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    api_version  TEXT,
    created_by   TEXT,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    expires_at   TEXT,
    revoked_at   TEXT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id)
);

CREATE TABLE operator_tokens (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- Hierarchical groups. group_closure holds every (ancestor, descendant) pair,
-- including (g, g) at depth 0, so subtree questions are single indexed joins.
CREATE TABLE groups (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    parent_id    TEXT,
    owner_plugin TEXT,
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES groups(tenant_id, id)
);
CREATE INDEX groups_by_parent ON groups (tenant_id, parent_id);

CREATE TABLE group_closure (
    tenant_id     TEXT NOT NULL,
    ancestor_id   TEXT NOT NULL,
    descendant_id TEXT NOT NULL,
    depth         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, ancestor_id, descendant_id)
) WITHOUT ROWID;
CREATE INDEX group_closure_up ON group_closure (tenant_id, descendant_id, depth);

CREATE TABLE group_members (
    tenant_id TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    role      TEXT NOT NULL DEFAULT 'member',
    added_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, user_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups(tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX group_members_by_user ON group_members (tenant_id, user_id, group_id);

-- Tenant-defined custom objects (standard objects are described in code).
CREATE TABLE object_types (
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    label      TEXT NOT NULL,
    fields     TEXT NOT NULL,
    version    INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- CRM records of every object; fields live in `data` (JSON). Ids are ULIDs, so id
-- order is creation order and cursors stay stable under concurrent inserts.
CREATE TABLE records (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    object     TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    data       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    deleted_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX records_by_object ON records (tenant_id, object, id);
CREATE INDEX records_by_owner ON records (tenant_id, owner_id, object, id);

CREATE TABLE record_shares (
    tenant_id  TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    access     TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, record_id, group_id),
    FOREIGN KEY (tenant_id, record_id) REFERENCES records(tenant_id, id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups(tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX record_shares_by_group ON record_shares (tenant_id, group_id, record_id);

-- Append-only audit ledger: a per-tenant hash chain.
CREATE TABLE audit_events (
    tenant_id      TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    id             TEXT    NOT NULL,
    occurred_at    TEXT    NOT NULL,
    actor_user     TEXT,
    actor_key      TEXT,
    actor_plugin   TEXT,
    action         TEXT    NOT NULL,
    entity_type    TEXT    NOT NULL,
    entity_id      TEXT,
    before_state   TEXT,
    after_state    TEXT,
    changed_fields TEXT    NOT NULL,
    request_id     TEXT,
    api_version    TEXT,
    client         TEXT,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_by_entity ON audit_events (tenant_id, entity_type, entity_id, seq);
CREATE INDEX audit_by_time ON audit_events (tenant_id, occurred_at);

-- The head of each tenant's chain; updating it serialises appends per tenant.
CREATE TABLE audit_heads (
    tenant_id TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    hash      TEXT    NOT NULL
);
