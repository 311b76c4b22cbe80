-- The group hierarchy as nested intervals instead of a closure table.
--
-- Each group owns the interval [lft, rgt] of its tenant's label space (1 .. 2^62): a
-- descendant's interval lies strictly inside each of its ancestors', siblings'
-- intervals are disjoint, and no label is used twice in a tenant. "A is D or one of
-- its ancestors" is A.lft <= D.lft <= A.rgt, and a subtree is one range of the
-- (tenant_id, lft) index. Labels leave gaps, so a new group takes free labels inside
-- its parent's interval; where none are left, the labels of the smallest enclosing
-- subtree with room are spread again (store::groups::labels).
--
-- The closure table wrote |subtree| × (ancestors that change) rows per move — 566k
-- rows, seconds, for a 10k subtree moved 54 levels down. Intervals rewrite one row per
-- group of the moved subtree, whatever the depth.
--
-- depth: edges from the group's root (0 for a root).
--
-- Groups written before this migration get their labels when the server starts
-- (store::groups::label_unlabelled), from the parent links.
ALTER TABLE groups ADD COLUMN lft BIGINT;
ALTER TABLE groups ADD COLUMN rgt BIGINT;
ALTER TABLE groups ADD COLUMN depth BIGINT;
CREATE INDEX groups_by_lft ON groups (tenant_id, lft, id);
CREATE INDEX groups_by_rgt ON groups (tenant_id, rgt);
DROP TABLE group_closure;
