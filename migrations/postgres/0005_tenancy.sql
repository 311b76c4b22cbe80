-- Tenancy & groups: indexes for the paginated listings of users' keys, groups'
-- children and members, so each page is one ordered index range scan.

-- Children of a group in id order (cursor pagination); replaces groups_by_parent.
DROP INDEX groups_by_parent;
CREATE INDEX groups_by_parent_id ON groups (tenant_id, parent_id, id);

-- A user's own keys ("members list only their keys").
CREATE INDEX api_keys_by_user ON api_keys (tenant_id, user_id, id);
