//! The timer scheduler: the background worker that fires plugins' `on-timer` (the
//! clock and the rules for what a timer may be are `plinth_core::timers`; semantics in
//! `docs/timers.md`).
//!
//! Timers live in the database (`store::timers`). Each pass the scheduler claims the
//! due timers of enabled installations (atomically, with a lease, so several hosts on
//! one PostgreSQL never fire the same due time twice), fires them through
//! [`PluginHost::timer`], and then deletes a fired one-shot timer or moves a cron timer
//! to its next time after *now* — so fires missed while the host was down or the
//! plugin disabled run once, then the schedule continues. Failures (an `err`, a trap,
//! a timeout) are recorded on the timer and in execution metrics, never retried.
//!
//! Between passes it sleeps until the earliest due time (at most
//! [`SchedulerConfig::poll`], so other hosts' new timers and re-enabled plugins are
//! seen), and wakes early when a timer is set on this host or a manual `Clock` moves.

mod fire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use plinth_core::store::{Db, time as stored};
use plinth_core::timers::Timers;
use plinth_runtime::plugins::PluginHost;

/// Scheduler settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Longest sleep between passes: bounds how late this host notices timers set on
    /// other hosts, plugins re-enabled elsewhere, and expired leases.
    pub poll: Duration,
    /// Most timers claimed per statement.
    pub batch: i64,
    /// Most timers fired at once.
    pub concurrency: usize,
    /// How long a claim lasts: if the host dies while firing, another host fires the
    /// timer after this. Must exceed the longest call (the runtime's timeout caps it).
    pub lease: Duration,
    /// How long a failed one-shot timer is kept (to show its error) before it is swept.
    pub keep_failed: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            poll: Duration::from_secs(1),
            batch: 32,
            concurrency: 8,
            lease: Duration::from_secs(300),
            keep_failed: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// How a running scheduler is observed (by tests, and by anything that must know a
/// change has been acted on).
#[derive(Clone, Debug)]
pub struct SchedulerHandle {
    started: Arc<AtomicU64>,
    finished: watch::Receiver<u64>,
    timers: Timers,
}

impl SchedulerHandle {
    /// Wake the scheduler and wait until a pass that started after this call has
    /// finished: then every timer due by the clock at that point has fired (or is
    /// held, or is claimed by another host).
    pub async fn caught_up(&self) {
        let after = self.started.load(Ordering::SeqCst);
        self.timers.wake();
        let mut finished = self.finished.clone();
        let _ = finished.wait_for(|done| *done > after).await;
    }
}

/// The background scheduler of one host.
#[derive(Debug)]
pub struct Scheduler {
    db: Db,
    plugins: Arc<PluginHost>,
    timers: Timers,
    config: SchedulerConfig,
    /// Passes started; a pass's number is the count after it started.
    started: Arc<AtomicU64>,
    /// The number of the last pass finished.
    finished: watch::Sender<u64>,
}

impl Scheduler {
    /// A scheduler firing `plugins`' timers, going by their services' clock.
    pub fn new(db: Db, plugins: Arc<PluginHost>, config: SchedulerConfig) -> Scheduler {
        let timers = plugins.services().timers.clone();
        Scheduler {
            db,
            plugins,
            timers,
            config,
            started: Arc::new(AtomicU64::new(0)),
            finished: watch::channel(0).0,
        }
    }

    /// A handle to observe its progress.
    pub fn handle(&self) -> SchedulerHandle {
        SchedulerHandle {
            started: self.started.clone(),
            finished: self.finished.subscribe(),
            timers: self.timers.clone(),
        }
    }

    /// Run until `shutdown` resolves. Fires in progress finish first; timers claimed
    /// but not yet fired are fired too (a claim batch is small and calls are bounded).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut moved = self.timers.clock().subscribe();
        let token_prefix = ulid::Ulid::new().to_string();
        loop {
            let pass = self.started.fetch_add(1, Ordering::SeqCst) + 1;
            let now = self.timers.now();
            let wait = match self.pass(&token_prefix, now).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = ?e, "timer pass failed; retrying");
                    self.config.poll
                }
            };
            // Failed one-shot timers are swept about hourly (by the default poll).
            if pass % 3600 == 1 {
                self.sweep(now).await;
            }
            self.finished.send_replace(pass);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.timers.woken() => {}
                _ = async {
                    match moved.as_mut() {
                        Some(rx) => rx.changed().await,
                        None => std::future::pending().await,
                    }
                } => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// Fire everything due at `now` and say how long to sleep.
    async fn pass(&self, token_prefix: &str, now: OffsetDateTime) -> Result<Duration, plinth_core::store::StoreError> {
        let now_s = stored::format(now);
        let mut round = 0u64;
        loop {
            round += 1;
            let token = format!("{token_prefix}:{}", ulid::Ulid::new());
            let lease_until = stored::format(now + self.config.lease);
            let claimed = self
                .db
                .claim_timers(&token, &now_s, &lease_until, self.config.batch)
                .await?;
            let full = claimed.len() as i64 >= self.config.batch;
            fire::fire_all(
                &self.db,
                &self.plugins,
                &self.timers,
                &token,
                now,
                claimed,
                self.config.concurrency,
            )
            .await;
            if !full || round > 10_000 {
                break;
            }
        }
        let next = self.db.next_timer_due(&now_s).await?;
        let wait = match next.as_deref().and_then(stored::parse) {
            // Due but not claimable this instant (e.g. held back briefly after a
            // release): do not spin.
            Some(due) if due <= now => Duration::from_millis(50),
            Some(due) => Duration::try_from(due - now).unwrap_or(self.config.poll),
            None => self.config.poll,
        };
        Ok(wait.min(self.config.poll))
    }

    async fn sweep(&self, now: OffsetDateTime) {
        let before = stored::format(now - self.config.keep_failed);
        match self.db.sweep_failed_timers(&before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(swept = n, "removed old failed one-shot timers"),
            Err(e) => tracing::warn!(error = ?e, "could not sweep failed timers"),
        }
    }
}
