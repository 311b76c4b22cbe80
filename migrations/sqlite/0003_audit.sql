-- Audit ledger: query indexes, policies, alerts, the evaluator's cursor and the
-- notification outbox. The audit_events table itself (0002) is not changed: its
-- columns are what the hash chain covers.

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
    tenant_id  TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    rule       TEXT    NOT NULL,
    enabled    INTEGER NOT NULL,
    notify     TEXT    NOT NULL,
    start_seq  INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- How far the policy evaluator has read each tenant's chain.
CREATE TABLE audit_policy_cursor (
    tenant_id  TEXT    PRIMARY KEY,
    last_seq   INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);

-- Alerts raised by policies. One per (policy, triggering event) at most: the
-- evaluator inserts with ON CONFLICT DO NOTHING, so re-runs are harmless.
CREATE TABLE audit_alerts (
    tenant_id       TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    policy_id       TEXT    NOT NULL,
    policy_name     TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    event_seq       INTEGER NOT NULL,
    event_id        TEXT    NOT NULL,
    event_at        TEXT    NOT NULL,
    actor           TEXT,
    message         TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, policy_id, event_seq)
);
CREATE INDEX audit_alerts_by_policy ON audit_alerts (tenant_id, policy_id, id);
-- The last mass-delete alert of one actor (to raise one alert per window breach).
CREATE INDEX audit_alerts_by_actor ON audit_alerts (tenant_id, policy_id, actor, event_seq);

-- Notifications waiting for delivery (email, webhook). Rows are inserted in the same
-- transaction as what caused them; a delivery worker (a later issue) sends them.
CREATE TABLE outbox (
    id              TEXT    PRIMARY KEY,
    tenant_id       TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_tenant ON outbox (tenant_id, created_at);
