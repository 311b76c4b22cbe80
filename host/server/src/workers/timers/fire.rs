//! Firing claimed timers: resolve the installation, call `on-timer` as the tenant's
//! system identity, then record the outcome and move the timer on.

use std::time::Duration;

use futures_util::StreamExt as _;
use time::OffsetDateTime;

use plinth_core::store::timers::{Fired, TimerRow};
use plinth_core::store::{Db, time as stored};
use plinth_core::timers::Timers;
use plinth_core::timers::spec::CronSpec;
use plinth_runtime::bindings::Caller;
use plinth_runtime::plugins::{PluginHost, Resolved};

/// How long a timer whose installation turned out not to be active (a lifecycle
/// change racing the claim) waits before it is looked at again.
const HOLD_BACK: Duration = Duration::from_secs(1);
/// How long a timer whose plugin cannot be loaded (untrusted or broken package) waits.
const LOAD_BACKOFF: Duration = Duration::from_secs(60);
/// Longest error text kept on a timer.
const MAX_ERROR_CHARS: usize = 1000;

/// Fire `claimed` (all claimed with `token` at `now`), at most `concurrency` at once.
pub(super) async fn fire_all(
    db: &Db,
    plugins: &PluginHost,
    timers: &Timers,
    token: &str,
    now: OffsetDateTime,
    claimed: Vec<TimerRow>,
    concurrency: usize,
) {
    futures_util::stream::iter(claimed)
        .for_each_concurrent(concurrency.max(1), |timer| async move {
            if let Err(e) = fire_one(db, plugins, timers, token, now, &timer).await {
                tracing::warn!(
                    error = ?e,
                    tenant = %timer.tenant_id,
                    plugin = %timer.plugin_id,
                    key = %timer.key,
                    "could not record a timer fire; its claim lapses after the lease"
                );
            }
        })
        .await;
}

/// The next due time of a cron timer after `now` (fires missed before `now` collapse
/// into the one being made); `Err` with a reason when it cannot continue.
fn next_due(timer: &TimerRow, now: OffsetDateTime) -> Result<Option<String>, String> {
    let (Some(expression), Some(zone)) = (&timer.cron, &timer.time_zone) else {
        return Ok(None);
    };
    let spec = CronSpec::parse(expression, zone).map_err(|e| format!("the stored cron timer is invalid: {e}"))?;
    match spec.next_after(now) {
        Some(next) => Ok(Some(stored::format(next))),
        None => Err("the cron expression has no further fire time within the horizon".into()),
    }
}

async fn fire_one(
    db: &Db,
    plugins: &PluginHost,
    timers: &Timers,
    token: &str,
    now: OffsetDateTime,
    timer: &TimerRow,
) -> Result<(), plinth_core::store::StoreError> {
    let active = match plugins.resolve(&timer.tenant_id, &timer.plugin_id).await {
        Ok(Resolved::Active(active)) => active,
        Ok(Resolved::Inactive(_) | Resolved::NotInstalled) => {
            // Held: disabled or uninstalled since the claim was made.
            return db
                .release_timer(timer, token, &stored::format(timers.now() + HOLD_BACK))
                .await;
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                tenant = %timer.tenant_id,
                plugin = %timer.plugin_id,
                "a timer's plugin cannot be loaded; holding the timer"
            );
            return db
                .release_timer(timer, token, &stored::format(timers.now() + LOAD_BACKOFF))
                .await;
        }
    };
    let api_version = match db.tenant(&timer.tenant_id).await {
        Ok(Some(t)) => t.default_api_version,
        _ => plinth_core::versioning::DEFAULT_VERSION.to_string(),
    };
    // It runs as the user whose call set it, with their roles as they are now; one
    // deactivated since the claim is held like a disabled plugin, never run stale.
    let (user_id, roles) = match &timer.run_as {
        None => (None, Vec::new()),
        Some(id) => match db.user(&timer.tenant_id, id).await? {
            Some(u) if u.status == "active" => (Some(u.id), vec![u.role]),
            _ => {
                return db
                    .release_timer(timer, token, &stored::format(timers.now() + HOLD_BACK))
                    .await;
            }
        },
    };
    let request_id = ulid::Ulid::new().to_string();
    let caller = Caller {
        tenant_id: timer.tenant_id.clone(),
        user_id,
        roles,
        api_version,
        request_id: request_id.clone(),
    };
    let outcome = plugins
        .timer(&active, caller, timer.key.clone(), timer.payload.clone())
        .await;
    let (next, cron_problem) = match next_due(timer, now) {
        Ok(next) => (next, None),
        Err(problem) => (None, Some(problem)),
    };
    let error = match (&outcome.result, cron_problem) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(()), problem) => problem,
    };
    let error: Option<String> = error.map(|e| e.chars().take(MAX_ERROR_CHARS).collect());
    if let Some(e) = &error {
        tracing::info!(
            tenant = %timer.tenant_id,
            plugin = %timer.plugin_id,
            key = %timer.key,
            request_id = %request_id,
            "timer fire failed (not retried): {e}"
        );
    }
    let fired_at = stored::format(timers.now());
    db.finish_timer(
        timer,
        token,
        Fired {
            at: &fired_at,
            error: error.as_deref(),
            next_due: next.as_deref(),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn row(cron: Option<&str>, zone: Option<&str>) -> TimerRow {
        TimerRow {
            tenant_id: "t".into(),
            plugin_id: "p".into(),
            key: "k".into(),
            payload: String::new(),
            cron: cron.map(str::to_string),
            time_zone: zone.map(str::to_string),
            due_at: Some("2026-01-01T00:00:00.000Z".into()),
            claimed_by: None,
            claim_until: None,
            created_at: String::new(),
            updated_at: String::new(),
            fires: 0,
            failures: 0,
            last_fired_at: None,
            last_error: None,
            last_error_at: None,
            run_as: None,
        }
    }

    #[test]
    fn missed_cron_fires_collapse_into_one() {
        // Due at 00:00, but the host only came back at 00:52: the next is 00:55, not
        // the ten fire times in between.
        let next = next_due(
            &row(Some("*/5 * * * *"), Some("UTC")),
            datetime!(2026-01-01 00:52:10 UTC),
        );
        assert_eq!(next, Ok(Some("2026-01-01T00:55:00.000Z".into())));
        assert_eq!(next_due(&row(None, None), datetime!(2026-01-01 00:52 UTC)), Ok(None));
        assert!(next_due(&row(Some("bad"), Some("UTC")), datetime!(2026-01-01 00:52 UTC)).is_err());
    }
}
