-- A replayed dead letter counts its failed tries on itself. They used to share the
-- cursor's (attempt_seq, attempts) pair with the event at the head of the log, so a
-- replay that interleaved with a failing head event reset that event's count: it could
-- get up to twice `max_attempts` tries before being parked.
ALTER TABLE event_dead_letters ADD COLUMN replay_attempts INTEGER NOT NULL DEFAULT 0;
