-- A timer runs as the user whose call set it (docs/timers.md, "Who a timer runs as"):
-- its `caller` carries that user and their roles at the time it fires, so scheduled
-- work sees what that user may see. NULL: set by a call with no user (an event, a
-- timer), so it runs with no user, as before. While that user is deactivated the timer
-- is held, never fired with stale rights.
ALTER TABLE plugin_timers ADD COLUMN run_as TEXT;
