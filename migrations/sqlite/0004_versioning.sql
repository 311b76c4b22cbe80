-- API versioning: operator overrides of the built-in version lifecycle, and the
-- request log behind client tracking and usage analytics.

-- One row per version whose lifecycle an operator changed; versions themselves (and
-- their defaults) live in code. Dates are `YYYY-MM-DD` (UTC).
CREATE TABLE api_versions (
    version     TEXT PRIMARY KEY,
    lifecycle   TEXT NOT NULL,
    deprecation TEXT,
    sunset      TEXT,
    successor   TEXT,
    updated_at  TEXT NOT NULL
);

-- Every authenticated /api/v1 request, written in batches off the request path and
-- purged after the retention period. `route` is the route template, never the raw
-- path. No primary key: rows are only ever scanned by (tenant, time) and purged by time.
CREATE TABLE request_log (
    tenant_id   TEXT    NOT NULL,
    at          TEXT    NOT NULL,
    key_id      TEXT,
    client      TEXT,
    api_version TEXT    NOT NULL,
    method      TEXT    NOT NULL,
    route       TEXT    NOT NULL,
    status      INTEGER NOT NULL,
    latency_us  INTEGER NOT NULL
);
CREATE INDEX request_log_by_tenant_time ON request_log (tenant_id, at);
CREATE INDEX request_log_by_time ON request_log (at);
