-- Outbox delivery (email and webhooks), tenants' webhooks and their delivery log,
-- and per-plugin secrets (PostgreSQL twin of migrations/sqlite/0009_outbox.sql).
-- Extends the notification outbox of 0003.

-- Who queued a row (a plugin id for plugin email; NULL for host notifications), the
-- webhook a 'webhook' row is addressed to (NULL: an alert not yet fanned out to the
-- tenant's webhooks), the claim of the worker sending it (status 'sending' until
-- lease_until; a crashed worker's claim expires), when it finished, and a note on
-- the result (the .eml file written, the SMTP reply).
ALTER TABLE outbox ADD COLUMN plugin_id TEXT COLLATE "C";
ALTER TABLE outbox ADD COLUMN webhook_id TEXT COLLATE "C";
ALTER TABLE outbox ADD COLUMN lease_until TEXT COLLATE "C";
ALTER TABLE outbox ADD COLUMN finished_at TEXT COLLATE "C";
ALTER TABLE outbox ADD COLUMN result TEXT;
-- GET /api/v1/outbox lists a tenant's rows newest first by id.
CREATE INDEX outbox_by_tenant_id ON outbox (tenant_id, id);

-- Email attachments, kept out of the payload JSON so they stay binary and the
-- listing never reads them.
CREATE TABLE outbox_attachments (
    tenant_id    TEXT COLLATE "C" NOT NULL,
    outbox_id    TEXT COLLATE "C" NOT NULL,
    idx          BIGINT NOT NULL,
    filename     TEXT   NOT NULL,
    content_type TEXT   NOT NULL,
    content      BYTEA  NOT NULL,
    PRIMARY KEY (outbox_id, idx)
);

-- Tenants' webhooks. `secret` is the signing secret encrypted by the host's secret
-- key (see docs/secrets.md); `events` a JSON array of subscription patterns.
CREATE TABLE webhooks (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    url        TEXT   NOT NULL,
    secret     BYTEA  NOT NULL,
    events     TEXT   NOT NULL,
    alerts     BIGINT NOT NULL,
    enabled    BIGINT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- One row per delivery attempt.
CREATE TABLE webhook_deliveries (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    webhook_id  TEXT COLLATE "C" NOT NULL,
    outbox_id   TEXT COLLATE "C" NOT NULL,
    topic       TEXT   NOT NULL,
    attempt     BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms  BIGINT NOT NULL,
    error       TEXT,
    settled     BIGINT NOT NULL,
    at          TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries (tenant_id, webhook_id, id);

-- Per tenant+plugin secrets: value encrypted (AEAD, associated data binds tenant,
-- plugin and name), never stored or returned in clear.
CREATE TABLE plugin_secrets (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    plugin_id  TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    value      BYTEA  NOT NULL,
    key_id     TEXT   NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, plugin_id, name)
);
