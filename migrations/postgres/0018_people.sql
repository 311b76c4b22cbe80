-- The people directory (docs/people.md): who a user reports to, and the locale and time
-- zone their work is shown in. `manager_id` names a user of the same tenant; the
-- service refuses cycles (a user cannot end up managing themselves through the
-- chain). Reports are found through the index, a manager chain by walking it.
ALTER TABLE users ADD COLUMN manager_id TEXT;
ALTER TABLE users ADD COLUMN locale TEXT;
ALTER TABLE users ADD COLUMN time_zone TEXT;
CREATE INDEX users_manager ON users (tenant_id, manager_id);
