//! The time the scheduler and the `schedule` capability go by: the system clock in
//! production, or a manual clock that tests set and advance (so a cron test covers an
//! hour, or a daylight-saving change, without sleeping).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

/// A source of "now", cheap to clone. [`Clock::default`] is the system clock.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

#[derive(Debug)]
struct Manual {
    now: Mutex<OffsetDateTime>,
    changed: watch::Sender<()>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that stands at `start` until [`Clock::advance`] or [`Clock::set`] moves it.
    pub fn manual(start: OffsetDateTime) -> Clock {
        let (changed, _) = watch::channel(());
        Clock {
            manual: Some(Arc::new(Manual {
                now: Mutex::new(truncate(start)),
                changed,
            })),
        }
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// The current time, UTC, truncated to milliseconds (the precision timers keep).
    pub fn now(&self) -> OffsetDateTime {
        match &self.manual {
            Some(m) => *m.now.lock().unwrap_or_else(|p| p.into_inner()),
            None => truncate(OffsetDateTime::now_utc()),
        }
    }

    /// Move a manual clock forward by `by` (no effect on the system clock).
    pub fn advance(&self, by: Duration) {
        if let Some(m) = &self.manual {
            let mut now = m.now.lock().unwrap_or_else(|p| p.into_inner());
            *now = truncate(*now + by);
            drop(now);
            m.changed.send_replace(());
        }
    }

    /// Set a manual clock to `to` (no effect on the system clock).
    pub fn set(&self, to: OffsetDateTime) {
        if let Some(m) = &self.manual {
            *m.now.lock().unwrap_or_else(|p| p.into_inner()) = truncate(to);
            m.changed.send_replace(());
        }
    }

    /// A receiver that sees every move of a manual clock; `None` for the system clock,
    /// whose time moves by itself.
    pub fn subscribe(&self) -> Option<watch::Receiver<()>> {
        self.manual.as_ref().map(|m| m.changed.subscribe())
    }
}

/// Drop sub-millisecond precision, in UTC.
fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = time::macros::datetime!(2026-03-29 00:00:00.123456 UTC);
        let clock = Clock::manual(start);
        assert_eq!(clock.now(), time::macros::datetime!(2026-03-29 00:00:00.123 UTC));
        let seen = clock.subscribe().unwrap();
        clock.advance(Duration::from_secs(90));
        assert!(seen.has_changed().unwrap());
        assert_eq!(clock.now(), time::macros::datetime!(2026-03-29 00:01:30.123 UTC));
        assert!(!Clock::system().is_manual());
        assert!(Clock::system().subscribe().is_none());
    }
}
