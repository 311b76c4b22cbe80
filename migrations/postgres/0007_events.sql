-- Events (PostgreSQL twin of migrations/sqlite/0007_events.sql): the per-tenant
-- ordered event log (the durable outbox, written in the same transaction as the
-- change it describes), each subscriber's delivery cursor, and the dead-letter list.
-- Key and id columns use the "C" collation so order is byte order. See docs/events.md for the delivery semantics.

-- A tenant's next event number. Bumped (and so row-locked) by every append until its
-- transaction commits, which makes `seq` order the tenant's commit order.
CREATE TABLE event_heads (
    tenant_id TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants(id),
    seq       BIGINT NOT NULL
);

-- The event log. `cause` is the plugin whose write caused the event; `depth` the
-- number of event hops that led to it; user, request and API version are those of
-- the write (they make the caller of `on-event`).
CREATE TABLE events (
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    seq         BIGINT NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    payload     TEXT   NOT NULL,
    cause       TEXT COLLATE "C",
    depth       BIGINT NOT NULL,
    user_id     TEXT COLLATE "C",
    request_id  TEXT COLLATE "C",
    api_version TEXT COLLATE "C",
    occurred_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE UNIQUE INDEX events_by_id ON events (tenant_id, id);

-- One per installation: how far its deliveries got (`position`: the last seq
-- delivered, dead-lettered or skipped), the failures of the event at the head
-- (`attempt_seq`, `attempts`, `retry_at`, `last_error`) and the lease of the worker
-- delivering it (several hosts may share one PostgreSQL).
CREATE TABLE event_cursors (
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    plugin_id   TEXT COLLATE "C" NOT NULL,
    position    BIGINT NOT NULL,
    attempt_seq BIGINT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    retry_at    TEXT COLLATE "C",
    last_error  TEXT,
    lease_owner TEXT COLLATE "C",
    lease_until TEXT COLLATE "C",
    touched_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id)
);

-- Events a plugin failed to handle `attempts` times. `state` is `dead` (listed,
-- waiting for an admin) or `replaying` (re-queued: delivered before the plugin's
-- other pending events).
CREATE TABLE event_dead_letters (
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    id          TEXT COLLATE "C" NOT NULL,
    plugin_id   TEXT COLLATE "C" NOT NULL,
    event_seq   BIGINT NOT NULL,
    event_id    TEXT COLLATE "C" NOT NULL,
    event_name  TEXT COLLATE "C" NOT NULL,
    attempts    BIGINT NOT NULL,
    error       TEXT   NOT NULL,
    state       TEXT COLLATE "C" NOT NULL,
    failed_at   TEXT COLLATE "C" NOT NULL,
    replayed_at TEXT COLLATE "C",
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX event_dead_letters_by_plugin ON event_dead_letters (tenant_id, plugin_id, state, event_seq);
