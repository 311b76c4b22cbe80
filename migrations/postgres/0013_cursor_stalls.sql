-- Why the delivery worker last failed to serve a cursor, on the host's side (a
-- database error, a package that no longer loads), for the tenant admin's view of
-- the subscription: a short text with a reference to the logged detail, and since
-- when. Both are cleared by the next pass that serves the cursor without such a
-- failure. A plugin's own failures stay in `last_error`.
ALTER TABLE event_cursors ADD COLUMN stalled TEXT;
ALTER TABLE event_cursors ADD COLUMN stalled_since TEXT;
