-- Plugin-private document storage and per-tenant plugin settings.
-- Keys use the "C" collation so their order is byte order, as in SQLite.
CREATE TABLE plugin_documents (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    plugin_id   TEXT COLLATE "C" NOT NULL,
    collection  TEXT COLLATE "C" NOT NULL,
    doc_key     TEXT COLLATE "C" NOT NULL,
    value       TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    updated_at  TEXT   NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id, collection, doc_key)
);

CREATE TABLE plugin_settings (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    plugin_id   TEXT COLLATE "C" NOT NULL,
    setting_key TEXT COLLATE "C" NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id, setting_key)
);
