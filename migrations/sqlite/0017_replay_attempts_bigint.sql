-- Twin of migrations/postgres/0017_replay_attempts_bigint.sql, which widens
-- `event_dead_letters.replay_attempts` to BIGINT. SQLite's INTEGER is already 8 bytes,
-- so nothing changes here; the file keeps both folders' numbered migrations in step
-- (checked by tests/tests/migrations_schema.rs).
SELECT 1;
