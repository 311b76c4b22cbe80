//! The delivery worker: a background task per host that looks for cursors with
//! something due — every [`EventsConfig::poll_interval`], and at once when woken
//! ([`super::Events::wake`], sent after API writes commit) — and serves up to
//! `cursors_per_tick` of them, `concurrency` at a time. Cursors are leased in the
//! database, so any number of hosts can run workers on one PostgreSQL; on SQLite
//! there is one process.
//!
//! Shutdown lets the deliveries in progress finish (each is bounded by the plugin's
//! timeout) and stops before the next one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::watch;

use super::deliver::{Deliverer, Served};
use super::{Events, EventsConfig};
use plinth_core::store::{Db, StoreResult};
use plinth_runtime::plugins::PluginHost;

/// Slack added to the longest plugin call when sizing a cursor lease.
const LEASE_SLACK: Duration = Duration::from_secs(30);

/// Run the worker until `shutdown` resolves.
pub async fn run(db: Db, plugins: Arc<PluginHost>, events: Events, shutdown: impl Future<Output = ()>) {
    match db.backfill_cursors().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            cursors = n,
            "started event delivery for installations made before events"
        ),
        Err(e) => tracing::warn!(error = ?e, "could not start event cursors for older installations"),
    }
    let (stop, stopping) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    let work = async {
        let mut wakeups = events.wakeups();
        let mut stopped = stopping.clone();
        let lease_for = plugins.runtime().limits().max_timeout * 2 + LEASE_SLACK;
        let mut pruned_at: Option<std::time::Instant> = None;
        while !*stopping.borrow() {
            let config = events.config();
            if pruned_at.is_none_or(|at| at.elapsed() >= config.prune_every) {
                pruned_at = Some(std::time::Instant::now());
                prune(&db, config.retention).await;
            }
            match tick(&db, &plugins, &config, lease_for, &stopping).await {
                // More may be due right away (new events, the rest of a batch).
                Ok(served) if served.progressed => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "event delivery pass failed; retrying"),
            }
            tokio::select! {
                _ = wakeups.changed() => {}
                () = tokio::time::sleep(config.poll_interval) => {}
                _ = stopped.changed() => {}
            }
        }
    };
    tokio::join!(signal, work);
}

/// Most events deleted per statement when pruning (keeps each transaction short).
const PRUNE_BATCH: i64 = 5_000;

/// Delete events older than `retention` that no subscriber or dead letter needs.
pub async fn prune(db: &Db, retention: Duration) -> u64 {
    if retention.is_zero() {
        return 0;
    }
    let cutoff = time::OffsetDateTime::now_utc() - retention;
    let before = plinth_core::store::time::format(cutoff);
    let mut total = 0;
    loop {
        match db.prune_events(&before, PRUNE_BATCH).await {
            Ok(n) => {
                total += n;
                if n < PRUNE_BATCH as u64 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = ?e, "could not prune the event log; retrying at the next pass");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(events = total, "pruned delivered events past their retention");
    }
    total
}

/// Serve the cursors due now. Returns what was achieved in total.
pub(super) async fn tick(
    db: &Db,
    plugins: &PluginHost,
    config: &EventsConfig,
    lease_for: Duration,
    stopping: &watch::Receiver<bool>,
) -> StoreResult<Served> {
    let due = db.due_cursors(i64::from(config.cursors_per_tick.max(1))).await?;
    if due.is_empty() {
        return Ok(Served::default());
    }
    let deliverer = Deliverer {
        db,
        plugins,
        config,
        lease_for,
        stopping,
    };
    let results: Vec<(String, String, StoreResult<Served>)> = futures_util::stream::iter(due)
        .map(|(tenant, plugin)| {
            let deliverer = &deliverer;
            async move {
                let served = deliverer.serve(&tenant, &plugin).await;
                (tenant, plugin, served)
            }
        })
        .buffer_unordered(config.concurrency.max(1) as usize)
        .collect()
        .await;
    let mut total = Served::default();
    for (tenant, plugin, served) in results {
        match served {
            Ok(s) => {
                total.delivered += s.delivered;
                total.progressed |= s.progressed;
            }
            Err(e) => tracing::warn!(%tenant, %plugin, error = ?e, "event delivery failed; the cursor is retried"),
        }
    }
    Ok(total)
}
