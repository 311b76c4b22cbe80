-- Subtree aggregates (`shared_within`) read the shares below a group and then the
-- records they name. Two changes keep that to the records actually measured:
--
-- 1. Each share carries the object of its record (copied when the share is made; a
--    record never changes object), so an aggregate over opportunities no longer
--    fetches every shared account and contact only to discard it.
-- 2. The per-object index of records also holds `deleted_at`, so counting live
--    records of an object is answered from the index alone.
ALTER TABLE record_shares ADD COLUMN object TEXT NOT NULL DEFAULT '';
UPDATE record_shares SET object = (
    SELECT r.object FROM records r
    WHERE r.tenant_id = record_shares.tenant_id AND r.id = record_shares.record_id
);
CREATE INDEX record_shares_by_group_object ON record_shares (tenant_id, group_id, object, record_id);

CREATE INDEX records_live_by_object ON records (tenant_id, object, id, deleted_at);
DROP INDEX records_by_object;
