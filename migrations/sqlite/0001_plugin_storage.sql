-- Plugin-private document storage and per-tenant plugin settings.
CREATE TABLE plugin_documents (
    tenant_id   TEXT    NOT NULL,
    plugin_id   TEXT    NOT NULL,
    collection  TEXT    NOT NULL,
    doc_key     TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id, collection, doc_key)
) WITHOUT ROWID;

CREATE TABLE plugin_settings (
    tenant_id   TEXT NOT NULL,
    plugin_id   TEXT NOT NULL,
    setting_key TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id, setting_key)
) WITHOUT ROWID;
