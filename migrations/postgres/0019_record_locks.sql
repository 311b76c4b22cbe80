-- Record locks (docs/records.md, "Locks"): a plugin granted `records:<object>:lock`
-- freezes a record — an approval freezes what it approves. One lock per record; while
-- it stands, writes by anyone but the locking plugin are refused (423) unless an admin
-- overrides. Released by the plugin, or with the plugin's uninstallation.
CREATE TABLE record_locks (
    tenant_id  TEXT NOT NULL,
    object     TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    plugin_id  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    locked_by  TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, object, record_id)
);
CREATE INDEX record_locks_plugin ON record_locks (tenant_id, plugin_id);
