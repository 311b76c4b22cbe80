-- API versioning (PostgreSQL twin of migrations/sqlite/0004_versioning.sql): operator
-- overrides of the built-in version lifecycle, and the request log behind client
-- tracking and usage analytics.

-- One row per version whose lifecycle an operator changed; versions themselves (and
-- their defaults) live in code. Dates are `YYYY-MM-DD` (UTC).
CREATE TABLE api_versions (
    version     TEXT COLLATE "C" PRIMARY KEY,
    lifecycle   TEXT NOT NULL,
    deprecation TEXT COLLATE "C",
    sunset      TEXT COLLATE "C",
    successor   TEXT COLLATE "C",
    updated_at  TEXT COLLATE "C" NOT NULL
);

-- Every authenticated /api/v1 request, written in batches off the request path and
-- purged after the retention period. `route` is the route template, never the raw
-- path. No primary key: rows are only ever scanned by (tenant, time) and purged by time.
CREATE TABLE request_log (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    at          TEXT COLLATE "C" NOT NULL,
    key_id      TEXT COLLATE "C",
    client      TEXT COLLATE "C",
    api_version TEXT COLLATE "C" NOT NULL,
    method      TEXT NOT NULL,
    route       TEXT COLLATE "C" NOT NULL,
    status      BIGINT NOT NULL,
    latency_us  BIGINT NOT NULL
);
CREATE INDEX request_log_by_tenant_time ON request_log (tenant_id, at);
CREATE INDEX request_log_by_time ON request_log (at);
