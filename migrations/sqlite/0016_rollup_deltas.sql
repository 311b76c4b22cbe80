-- Roll-up totals that a subtree move changes, kept as deferred deltas.
--
-- A move takes the moved subtree's totals out of every ancestor it loses and adds them
-- to every ancestor it gains: (total keys × changed ancestors) upserts, seconds for a
-- subtree with ~700 keys moved 200 levels down. Instead the move stores the subtree's
-- totals once, as a delta (`rollup_deltas`), and one reference per changed ancestor
-- (`rollup_pending`, with the sign: -1 for an ancestor lost, +1 for one gained). A
-- group's subtree totals are its `rollup_totals` rows plus sign × the deltas it
-- references, summed per key — exact at every moment. A background pass folds the
-- references into `rollup_totals` in small transactions and deletes deltas no longer
-- referenced (store::rollups::deferred).
CREATE TABLE rollup_deltas (
    tenant_id TEXT NOT NULL,
    rollup_id TEXT NOT NULL,
    delta_id  TEXT NOT NULL,
    dims      TEXT NOT NULL,
    n         INTEGER NOT NULL,
    s0        REAL NOT NULL,
    s1        REAL NOT NULL,
    s2        REAL NOT NULL,
    s3        REAL NOT NULL,
    PRIMARY KEY (tenant_id, rollup_id, delta_id, dims)
) WITHOUT ROWID;

CREATE TABLE rollup_pending (
    tenant_id TEXT NOT NULL,
    rollup_id TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    delta_id  TEXT NOT NULL,
    sign      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, rollup_id, group_id, delta_id)
) WITHOUT ROWID;
CREATE INDEX rollup_pending_by_delta ON rollup_pending (tenant_id, rollup_id, delta_id);
