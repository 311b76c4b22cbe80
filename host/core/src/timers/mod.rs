//! Timer rules and time: the [`Clock`] plugin timers go by, what a timer may be
//! ([`spec`]: one-shot, interval, cron with a time zone), and the [`Timers`] handle
//! host calls use to read the clock and wake the scheduler. Timers are stored by
//! `store::timers`; the scheduler that fires them through the plugin host is a
//! server worker (`workers::timers`). Semantics: `docs/timers.md`.

mod clock;
pub mod spec;

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::Notify;

pub use clock::Clock;

/// What host calls need of the scheduler: the clock, and a way to wake it when a
/// timer is set. Cheap to clone; shared by the capability and the scheduler.
#[derive(Clone, Debug, Default)]
pub struct Timers {
    clock: Clock,
    wake: Arc<Notify>,
}

impl Timers {
    /// Timers going by `clock`.
    pub fn new(clock: Clock) -> Timers {
        Timers {
            clock,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now, by the clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Tell the scheduler a timer changed, so it recomputes its next wake-up.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves at the next [`Timers::wake`] (or at once if one is pending).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}
