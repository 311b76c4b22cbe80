-- Audit ledger (PostgreSQL twin of migrations/sqlite/0003_audit.sql): query indexes,
-- policies, alerts, the evaluator's cursor and the notification outbox. The
-- audit_events table itself (0002) is not changed: its columns are what the hash
-- chain covers. Key and id columns use the "C" collation so order is byte order.

-- Filters of GET /api/v1/audit/events, each walked newest first by seq.
CREATE INDEX audit_by_actor ON audit_events (tenant_id, actor_user, seq);
CREATE INDEX audit_by_key ON audit_events (tenant_id, actor_key, seq);
CREATE INDEX audit_by_action ON audit_events (tenant_id, action, seq);
-- Plugin writes are a minority of events: a partial index stays small.
CREATE INDEX audit_by_plugin ON audit_events (tenant_id, actor_plugin, seq) WHERE actor_plugin IS NOT NULL;

-- Audit policies. `rule` is the JSON of the kind's parameters (with `kind`), `notify`
-- the JSON of {emails, webhook}. A policy only judges events after `start_seq` (the
-- chain head when it was created or last enabled), so it never alerts on history.
CREATE TABLE audit_policies (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    name       TEXT   NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    rule       TEXT   NOT NULL,
    enabled    BIGINT NOT NULL,
    notify     TEXT   NOT NULL,
    start_seq  BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- How far the policy evaluator has read each tenant's chain.
CREATE TABLE audit_policy_cursor (
    tenant_id  TEXT COLLATE "C" PRIMARY KEY,
    last_seq   BIGINT NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);

-- Alerts raised by policies. One per (policy, triggering event) at most: the
-- evaluator inserts with ON CONFLICT DO NOTHING, so re-runs are harmless.
CREATE TABLE audit_alerts (
    tenant_id       TEXT COLLATE "C" NOT NULL,
    id              TEXT COLLATE "C" NOT NULL,
    policy_id       TEXT COLLATE "C" NOT NULL,
    policy_name     TEXT   NOT NULL,
    kind            TEXT COLLATE "C" NOT NULL,
    event_seq       BIGINT NOT NULL,
    event_id        TEXT COLLATE "C" NOT NULL,
    event_at        TEXT COLLATE "C" NOT NULL,
    actor           TEXT COLLATE "C",
    message         TEXT   NOT NULL,
    created_at      TEXT COLLATE "C" NOT NULL,
    acknowledged_at TEXT COLLATE "C",
    acknowledged_by TEXT COLLATE "C",
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, policy_id, event_seq)
);
CREATE INDEX audit_alerts_by_policy ON audit_alerts (tenant_id, policy_id, id);
-- The last mass-delete alert of one actor (to raise one alert per window breach).
CREATE INDEX audit_alerts_by_actor ON audit_alerts (tenant_id, policy_id, actor, event_seq);

-- Notifications waiting for delivery (email, webhook). Rows are inserted in the same
-- transaction as what caused them; a delivery worker (a later issue) sends them.
CREATE TABLE outbox (
    id              TEXT COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL,
    kind            TEXT COLLATE "C" NOT NULL,
    payload         TEXT   NOT NULL,
    status          TEXT COLLATE "C" NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT COLLATE "C" NOT NULL,
    created_at      TEXT COLLATE "C" NOT NULL,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_tenant ON outbox (tenant_id, created_at);
