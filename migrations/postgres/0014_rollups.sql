-- Roll-ups: totals of a plugin-declared measure over every group's *subtree*, kept
-- current by the host on each record, share and group change, so a subtree total is
-- one indexed read instead of a pass over every record below the group.

-- One row per roll-up a plugin declares (`[[rollups]]` in its manifest) in a tenant
-- where it is installed. `definition` is the resolved form (JSON: dimensions with the
-- path, kind and date bucket of each; summed fields with their paths).
CREATE TABLE rollups (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    plugin_id  TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    object     TEXT COLLATE "C" NOT NULL,
    definition TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX rollups_by_plugin ON rollups (tenant_id, plugin_id, name);
CREATE INDEX rollups_by_object ON rollups (tenant_id, object);

-- Per group: the records shared with the group or any group below it (each record
-- once, however many of those groups it is shared with), bucketed by the roll-up's
-- dimension values (`dims`, a JSON array): how many (`n`) and the sums of up to four
-- fields. Rows whose count drops to zero are deleted.
CREATE TABLE rollup_totals (
    tenant_id TEXT COLLATE "C" NOT NULL,
    rollup_id TEXT COLLATE "C" NOT NULL,
    group_id  TEXT COLLATE "C" NOT NULL,
    dims      TEXT COLLATE "C" NOT NULL,
    n         BIGINT NOT NULL,
    s0        DOUBLE PRECISION NOT NULL,
    s1        DOUBLE PRECISION NOT NULL,
    s2        DOUBLE PRECISION NOT NULL,
    s3        DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, rollup_id, group_id, dims)
);

-- Records shared with more than one group. A subtree move recounts these one by one
-- (a record shared both inside and outside the moved subtree must stay counted once
-- by the ancestors they share); every other record moves with its subtree's totals.
CREATE TABLE record_multi_shares (
    tenant_id TEXT COLLATE "C" NOT NULL,
    record_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, record_id)
);
INSERT INTO record_multi_shares (tenant_id, record_id)
SELECT tenant_id, record_id FROM record_shares GROUP BY tenant_id, record_id HAVING COUNT(*) > 1;
