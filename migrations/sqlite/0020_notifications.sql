-- Users' notification inboxes (docs/notifications.md). A plugin notifies a user once
-- per (plugin, key): a retried event handler cannot notify twice. `read_at` is null
-- while unread. A row in notification_email means the user also wants an email
-- copy of that category's notifications (none: inbox only).
CREATE TABLE notifications (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    plugin_id  TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    category   TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    link       TEXT,
    created_at TEXT NOT NULL,
    read_at    TEXT,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, plugin_id, dedupe_key)
);
CREATE INDEX notifications_inbox ON notifications (tenant_id, user_id, id);

CREATE TABLE notification_email (
    tenant_id TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    category  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, category)
);
