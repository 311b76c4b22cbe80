-- Marketplace: publishers and their keys, content-addressed packages, reviews, and
-- per-tenant installations with capability grants.

CREATE TABLE publishers (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'active',
    created_at   TEXT NOT NULL
);

-- Keys rotate: several may be active; 'retired' keys no longer sign new packages but
-- their packages stay valid; 'revoked' keys invalidate their packages everywhere.
CREATE TABLE publisher_keys (
    key_id       TEXT PRIMARY KEY,
    publisher_id TEXT NOT NULL REFERENCES publishers(id),
    public_key   TEXT NOT NULL,
    status       TEXT NOT NULL,
    added_at     TEXT NOT NULL,
    retired_at   TEXT,
    revoked_at   TEXT
);
CREATE INDEX publisher_keys_by_publisher ON publisher_keys (publisher_id);

CREATE TABLE publisher_tokens (
    id           TEXT PRIMARY KEY,
    publisher_id TEXT NOT NULL REFERENCES publishers(id),
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);

-- One row per published version, addressed by the package digest.
CREATE TABLE packages (
    digest        TEXT PRIMARY KEY,
    plugin_id     TEXT NOT NULL,
    version       TEXT NOT NULL,
    version_order TEXT NOT NULL,
    publisher_id  TEXT NOT NULL REFERENCES publishers(id),
    key_id        TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    categories    TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    package       BLOB NOT NULL,
    size          INTEGER NOT NULL,
    published_at  TEXT NOT NULL,
    UNIQUE (plugin_id, version)
);
CREATE INDEX packages_by_plugin ON packages (plugin_id, version_order);

CREATE TABLE reviews (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    plugin_id  TEXT NOT NULL,
    rating     INTEGER NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id)
);
CREATE INDEX reviews_by_plugin ON reviews (plugin_id);

-- A tenant's installation of a plugin: the active version, its state, what the admin
-- granted, and the version before the last upgrade (for rollback).
CREATE TABLE installations (
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    plugin_id        TEXT NOT NULL,
    version          TEXT NOT NULL,
    digest           TEXT NOT NULL REFERENCES packages(digest),
    state            TEXT NOT NULL,
    grants           TEXT NOT NULL,
    previous_version TEXT,
    previous_digest  TEXT,
    previous_grants  TEXT,
    installed_at     TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    uninstalled_at   TEXT,
    purge_after      TEXT,
    row_version      INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, plugin_id)
);
CREATE INDEX installations_by_digest ON installations (digest);
