-- Idempotency keys (docs/api.md, "Retrying safely"): the first response to a POST or
-- PATCH sent with an `Idempotency-Key`, kept 24 hours per tenant, API key and key, so
-- that a retry returns it instead of doing the work again. `request_hash` is the
-- SHA-256 of method, path, query and body: the same key with another request is
-- refused. A row without a status is a request still running.
CREATE TABLE idempotency_keys (
    tenant_id    TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT,
    headers      TEXT,
    body         BYTEA,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key_id, idem_key)
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
