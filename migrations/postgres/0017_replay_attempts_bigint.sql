-- `event_dead_letters.replay_attempts` was declared INTEGER (4 bytes) by 0012, where
-- every other integer column is BIGINT and SQLite's INTEGER is 8 bytes. It held a small
-- retry count, so nothing broke; the schema comparison test
-- (tests/tests/migrations_schema.rs) found the difference, and this makes the two
-- databases agree again.
ALTER TABLE event_dead_letters ALTER COLUMN replay_attempts TYPE BIGINT;
