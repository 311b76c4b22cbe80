-- Background jobs (docs/jobs.md): long work a plugin does in steps. A job is due
-- while `due_at` is set; a worker claims it with a token and a lease (`claimed_by`,
-- `claim_until`), runs steps, and commits each step's progress, next state and writes
-- in one transaction that also checks it still holds the claim and that `steps` is
-- the number it started from — so a step is committed exactly once even when hosts
-- crash or leases lapse. `attempt` counts failed tries of the current step.
CREATE TABLE jobs (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    plugin_id        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    input            TEXT NOT NULL,
    run_as           TEXT,
    status           TEXT NOT NULL,
    step_state       TEXT,
    steps            BIGINT NOT NULL,
    attempt          BIGINT NOT NULL,
    done             BIGINT NOT NULL,
    total            BIGINT,
    message          TEXT,
    result           TEXT,
    file_id          TEXT,
    error            TEXT,
    cancel_requested BIGINT NOT NULL,
    due_at           TEXT,
    claimed_by       TEXT,
    claim_until      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX jobs_due ON jobs (due_at);
CREATE INDEX jobs_by_user ON jobs (tenant_id, run_as, id);
CREATE INDEX jobs_by_plugin ON jobs (tenant_id, plugin_id, status);
