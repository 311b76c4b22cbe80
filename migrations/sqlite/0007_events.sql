-- Events: the per-tenant ordered event log (the durable outbox, written in the same
-- transaction as the change it describes), each subscriber's delivery cursor, and
-- the dead-letter list. See docs/events.md for the delivery semantics.

-- A tenant's next event number. Bumped (and so row-locked) by every append until its
-- transaction commits, which makes `seq` order the tenant's commit order.
CREATE TABLE event_heads (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    seq       INTEGER NOT NULL
);

-- The event log. `cause` is the plugin whose write caused the event; `depth` the
-- number of event hops that led to it; user, request and API version are those of
-- the write (they make the caller of `on-event`).
CREATE TABLE events (
    tenant_id   TEXT    NOT NULL REFERENCES tenants(id),
    seq         INTEGER NOT NULL,
    id          TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    cause       TEXT,
    depth       INTEGER NOT NULL,
    user_id     TEXT,
    request_id  TEXT,
    api_version TEXT,
    occurred_at TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE UNIQUE INDEX events_by_id ON events (tenant_id, id);

-- One per installation: how far its deliveries got (`position`: the last seq
-- delivered, dead-lettered or skipped), the failures of the event at the head
-- (`attempt_seq`, `attempts`, `retry_at`, `last_error`) and the lease of the worker
-- delivering it (several hosts may share one PostgreSQL).
CREATE TABLE event_cursors (
    tenant_id   TEXT    NOT NULL REFERENCES tenants(id),
    plugin_id   TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    attempt_seq INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    retry_at    TEXT,
    last_error  TEXT,
    lease_owner TEXT,
    lease_until TEXT,
    touched_at  TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id)
);

-- Events a plugin failed to handle `attempts` times. `state` is `dead` (listed,
-- waiting for an admin) or `replaying` (re-queued: delivered before the plugin's
-- other pending events).
CREATE TABLE event_dead_letters (
    tenant_id   TEXT    NOT NULL REFERENCES tenants(id),
    id          TEXT    NOT NULL,
    plugin_id   TEXT    NOT NULL,
    event_seq   INTEGER NOT NULL,
    event_id    TEXT    NOT NULL,
    event_name  TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    error       TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    failed_at   TEXT    NOT NULL,
    replayed_at TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX event_dead_letters_by_plugin ON event_dead_letters (tenant_id, plugin_id, state, event_seq);
