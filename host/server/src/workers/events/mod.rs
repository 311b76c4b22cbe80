//! Event delivery: the background worker that moves each installation's cursor
//! through the tenant's event log and calls the plugin's `on-event` (emission and the
//! log's rules are `plinth_core::events`; semantics in `docs/events.md`).
//!
//! - [`worker`]: finds cursors with something due and serves them;
//! - `deliver`: one cursor's deliveries — in seq order, at least once, retries with
//!   backoff, then the dead-letter list.

mod deliver;
pub mod worker;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

/// Delivery settings. Read by the worker on every tick, so they can be changed on
/// a running server (tests shorten the backoff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// How often the worker looks for work when nothing woke it.
    pub poll_interval: Duration,
    /// Delay before the first retry; doubled for each further failure.
    pub backoff_base: Duration,
    /// Longest delay between retries.
    pub backoff_max: Duration,
    /// Failed attempts after which an event goes to the dead-letter list.
    pub max_attempts: u32,
    /// Cursors (tenant × plugin) served per tick.
    pub cursors_per_tick: u32,
    /// Events delivered to one cursor per tick before others get a turn.
    pub events_per_cursor: u32,
    /// Cursors served at the same time.
    pub concurrency: u32,
    /// How long events stay in the log once every subscriber is past them (zero:
    /// forever). Events a subscriber has not reached, or a dead letter refers to,
    /// stay whatever their age.
    pub retention: Duration,
    /// How often the worker prunes the log.
    pub prune_every: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            poll_interval: Duration::from_millis(200),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            max_attempts: 5,
            cursors_per_tick: 64,
            events_per_cursor: 50,
            concurrency: 4,
            retention: Duration::from_secs(30 * 24 * 3600),
            prune_every: Duration::from_secs(3600),
        }
    }
}

impl EventsConfig {
    /// The delay after the `failures`-th failure (from 1): `base × 2^(failures-1)`,
    /// capped at `backoff_max`, minus up to a quarter at random so that many failing
    /// subscribers do not retry in lockstep.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let full = self.backoff_base.saturating_mul(1u32 << exp).min(self.backoff_max);
        let jitter = rand::random::<f64>() * 0.25;
        full.mul_f64(1.0 - jitter)
    }
}

/// The handle the API and the worker share: settings and the wake-up signal.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RwLock<EventsConfig>,
    wake: watch::Sender<u64>,
}

impl Default for Events {
    fn default() -> Self {
        Events::new(EventsConfig::default())
    }
}

impl Events {
    /// A handle with `config`.
    pub fn new(config: EventsConfig) -> Events {
        let (wake, _) = watch::channel(0);
        Events {
            inner: Arc::new(Inner {
                config: RwLock::new(config),
                wake,
            }),
        }
    }

    /// The current settings.
    pub fn config(&self) -> EventsConfig {
        self.inner.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replace the settings (the worker uses them from its next tick).
    pub fn set_config(&self, config: EventsConfig) {
        *self.inner.config.write().unwrap_or_else(|p| p.into_inner()) = config;
        self.wake();
    }

    /// Tell the worker that events may have been committed, so it looks now rather
    /// than at its next poll.
    pub fn wake(&self) {
        self.inner.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn wakeups(&self) -> watch::Receiver<u64> {
        self.inner.wake.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered_down() {
        let c = EventsConfig {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..EventsConfig::default()
        };
        for (failures, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (40, 1000)] {
            let d = c.backoff(failures).as_millis();
            assert!(
                d <= full && d >= full * 3 / 4,
                "failure {failures}: {d} ms not in [{}, {full}]",
                full * 3 / 4
            );
        }
    }
}
