-- Durable plugin timers and cron (the `schedule` capability). One row per tenant,
-- plugin and key. `due_at` is the next fire (NULL once a one-shot timer has failed:
-- kept to show its error); `claimed_by`/`claim_until` are the scheduler's claim and
-- lease while it fires the timer. Times are fixed-width RFC 3339 UTC text ("C"
-- collation: text order is time order, keys sort by bytes as in SQLite).
CREATE TABLE plugin_timers (
    tenant_id     TEXT COLLATE "C" NOT NULL,
    plugin_id     TEXT COLLATE "C" NOT NULL,
    timer_key     TEXT COLLATE "C" NOT NULL,
    payload       TEXT NOT NULL,
    cron          TEXT,
    time_zone     TEXT,
    due_at        TEXT COLLATE "C",
    claimed_by    TEXT COLLATE "C",
    claim_until   TEXT COLLATE "C",
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    fires         BIGINT NOT NULL DEFAULT 0,
    failures      BIGINT NOT NULL DEFAULT 0,
    last_fired_at TEXT COLLATE "C",
    last_error    TEXT,
    last_error_at TEXT,
    PRIMARY KEY (tenant_id, plugin_id, timer_key)
);
CREATE INDEX plugin_timers_by_due ON plugin_timers (due_at);
