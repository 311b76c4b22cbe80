-- Core host (PostgreSQL twin of migrations/sqlite/0002_core.sql; ids use the "C"
-- collation so their order is byte order, as in SQLite): tenants, identity, groups (with a closure table), CRM records and their
-- shares, and the audit ledger. Every tenant-owned table is keyed by tenant_id first.

CREATE TABLE tenants (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    name                TEXT COLLATE "C" NOT NULL,
    default_api_version TEXT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'active',
    created_at          TEXT COLLATE "C" NOT NULL
);

CREATE TABLE users (
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    id         TEXT COLLATE "C" NOT NULL,
    email      TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    role       TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'active',
    version    BIGINT NOT NULL DEFAULT 1,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email)
);

-- API keys: only the SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    tenant_id    TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    user_id      TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    secret_hash  TEXT COLLATE "C" NOT NULL UNIQUE,
    prefix       TEXT COLLATE "C" NOT NULL,
    api_version  TEXT,
    created_by   TEXT,
    created_at   TEXT COLLATE "C" NOT NULL,
    last_used_at TEXT,
    expires_at   TEXT,
    revoked_at   TEXT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id)
);

CREATE TABLE operator_tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    secret_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  TEXT COLLATE "C" NOT NULL,
    revoked_at  TEXT
);

-- Hierarchical groups. group_closure holds every (ancestor, descendant) pair,
-- including (g, g) at depth 0, so subtree questions are single indexed joins.
CREATE TABLE groups (
    tenant_id    TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    parent_id    TEXT COLLATE "C",
    owner_plugin TEXT,
    version      BIGINT NOT NULL DEFAULT 1,
    created_at   TEXT COLLATE "C" NOT NULL,
    updated_at   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES groups(tenant_id, id)
);
CREATE INDEX groups_by_parent ON groups (tenant_id, parent_id);

CREATE TABLE group_closure (
    tenant_id     TEXT COLLATE "C" NOT NULL,
    ancestor_id   TEXT COLLATE "C" NOT NULL,
    descendant_id TEXT COLLATE "C" NOT NULL,
    depth         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, ancestor_id, descendant_id)
);
CREATE INDEX group_closure_up ON group_closure (tenant_id, descendant_id, depth);

CREATE TABLE group_members (
    tenant_id TEXT COLLATE "C" NOT NULL,
    group_id  TEXT COLLATE "C" NOT NULL,
    user_id   TEXT COLLATE "C" NOT NULL,
    role      TEXT NOT NULL DEFAULT 'member',
    added_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, user_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups(tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id)
);
CREATE INDEX group_members_by_user ON group_members (tenant_id, user_id, group_id);

-- Tenant-defined custom objects (standard objects are described in code).
CREATE TABLE object_types (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    label      TEXT NOT NULL,
    fields     TEXT NOT NULL,
    version    BIGINT NOT NULL DEFAULT 1,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- CRM records of every object; fields live in `data` (JSON). Ids are ULIDs, so id
-- order is creation order and cursors stay stable under concurrent inserts.
CREATE TABLE records (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    object     TEXT COLLATE "C" NOT NULL,
    owner_id   TEXT COLLATE "C" NOT NULL,
    data       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    deleted_at TEXT COLLATE "C",
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX records_by_object ON records (tenant_id, object, id);
CREATE INDEX records_by_owner ON records (tenant_id, owner_id, object, id);

CREATE TABLE record_shares (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    record_id  TEXT COLLATE "C" NOT NULL,
    group_id   TEXT COLLATE "C" NOT NULL,
    access     TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, record_id, group_id),
    FOREIGN KEY (tenant_id, record_id) REFERENCES records(tenant_id, id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups(tenant_id, id)
);
CREATE INDEX record_shares_by_group ON record_shares (tenant_id, group_id, record_id);

-- Append-only audit ledger: a per-tenant hash chain.
CREATE TABLE audit_events (
    tenant_id      TEXT COLLATE "C"    NOT NULL,
    seq            BIGINT NOT NULL,
    id             TEXT COLLATE "C"    NOT NULL,
    occurred_at    TEXT COLLATE "C"    NOT NULL,
    actor_user     TEXT COLLATE "C",
    actor_key      TEXT COLLATE "C",
    actor_plugin   TEXT COLLATE "C",
    action         TEXT COLLATE "C"    NOT NULL,
    entity_type    TEXT COLLATE "C"    NOT NULL,
    entity_id      TEXT COLLATE "C",
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
    tenant_id TEXT COLLATE "C" PRIMARY KEY,
    seq       BIGINT NOT NULL,
    hash      TEXT    NOT NULL
);
