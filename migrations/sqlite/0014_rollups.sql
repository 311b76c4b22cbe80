-- Roll-ups: totals of a plugin-declared measure over every group's *subtree*, kept
-- current by the host on each record, share and group change, so a subtree total is
-- one indexed read instead of a pass over every record below the group.

-- One row per roll-up a plugin declares (`[[rollups]]` in its manifest) in a tenant
-- where it is installed. `definition` is the resolved form (JSON: dimensions with the
-- path, kind and date bucket of each; summed fields with their paths).
CREATE TABLE rollups (
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    plugin_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    object     TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX rollups_by_plugin ON rollups (tenant_id, plugin_id, name);
CREATE INDEX rollups_by_object ON rollups (tenant_id, object);

-- Per group: the records shared with the group or any group below it (each record
-- once, however many of those groups it is shared with), bucketed by the roll-up's
-- dimension values (`dims`, a JSON array): how many (`n`) and the sums of up to four
-- fields. Rows whose count drops to zero are deleted.
CREATE TABLE rollup_totals (
    tenant_id TEXT NOT NULL,
    rollup_id TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    dims      TEXT NOT NULL,
    n         INTEGER NOT NULL,
    s0        REAL NOT NULL,
    s1        REAL NOT NULL,
    s2        REAL NOT NULL,
    s3        REAL NOT NULL,
    PRIMARY KEY (tenant_id, rollup_id, group_id, dims)
) WITHOUT ROWID;

-- Records shared with more than one group. A subtree move recounts these one by one
-- (a record shared both inside and outside the moved subtree must stay counted once
-- by the ancestors they share); every other record moves with its subtree's totals.
CREATE TABLE record_multi_shares (
    tenant_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, record_id)
) WITHOUT ROWID;
INSERT INTO record_multi_shares (tenant_id, record_id)
SELECT tenant_id, record_id FROM record_shares GROUP BY tenant_id, record_id HAVING COUNT(*) > 1;
