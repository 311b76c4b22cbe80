//! Durable timers and cron (capability `schedule`).
//!
//! A timer is kept by the host, survives restarts and calls [`Plugin::on_timer`]
//! once per due time with the key and payload given here. Keys are per tenant and
//! plugin: setting a key that exists replaces that timer. Fires missed while the host
//! was down or the plugin disabled run once when it is back. A failing `on_timer` is
//! recorded (tenant admins see it) and not retried: reschedule from `on_timer` if you
//! want another attempt.
//!
//! Limits: keys are 1–200 characters, payloads at most 64 KiB, at most 10,000 pending
//! timers per tenant, fire times at most about ten years ahead.
//!
//! ```no_run
//! use std::time::Duration;
//! use plinth_sdk::schedule;
//!
//! // Remind in 15 minutes; setting the same key again moves the reminder.
//! schedule::after(Duration::from_secs(15 * 60), "remind:opp-42", "{\"opportunity\":\"opp-42\"}")?;
//! // Every weekday at 09:00 Berlin time, daylight saving included.
//! let first = schedule::cron("daily-digest", "0 9 * * MON-FRI", "Europe/Berlin", "")?;
//! plinth_sdk::info!("first digest at {first}");
//! # Ok::<(), plinth_sdk::Error>(())
//! ```
//!
//! [`Plugin::on_timer`]: crate::Plugin::on_timer

use std::time::Duration;

use crate::__private::wit::plinth::plugin::schedule as wit;
use crate::Error;

/// A pending timer, as [`list`] returns it.
///
/// ```
/// let t = plinth_sdk::schedule::Timer {
///     key: "digest".into(),
///     next_fire: "2026-11-24T08:00:00.000Z".into(),
///     cron: Some("0 9 * * *".into()),
///     time_zone: Some("Europe/Berlin".into()),
///     payload: String::new(),
/// };
/// assert!(t.is_cron());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// The key it was set under.
    pub key: String,
    /// When it fires next: RFC 3339, UTC, millisecond precision.
    pub next_fire: String,
    /// The cron expression, for cron timers.
    pub cron: Option<String>,
    /// The IANA time zone of the cron expression, for cron timers.
    pub time_zone: Option<String>,
    /// What `on_timer` will receive.
    pub payload: String,
}

impl Timer {
    /// Whether this is a cron (repeating) timer rather than a one-shot one.
    ///
    /// ```
    /// let t = plinth_sdk::schedule::Timer {
    ///     key: "once".into(), next_fire: "2026-11-24T08:00:00.000Z".into(),
    ///     cron: None, time_zone: None, payload: String::new(),
    /// };
    /// assert!(!t.is_cron());
    /// ```
    pub fn is_cron(&self) -> bool {
        self.cron.is_some()
    }
}

/// Fire once at `time`, an RFC 3339 time with an offset (`2026-11-24T14:00:00Z`). A
/// time in the past fires as soon as possible.
///
/// ```no_run
/// plinth_sdk::schedule::at("2026-12-01T09:00:00+01:00", "renewal:acc-7", "acc-7")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn at(time: &str, key: &str, payload: &str) -> Result<(), Error> {
    Ok(wit::at(time, key, payload)?)
}

/// Fire once, `delay` from now (millisecond precision).
///
/// ```no_run
/// use std::time::Duration;
/// plinth_sdk::schedule::after(Duration::from_secs(3600), "escalate:req-9", "req-9")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn after(delay: Duration, key: &str, payload: &str) -> Result<(), Error> {
    let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    Ok(wit::after(millis, key, payload)?)
}

/// Fire at every time matching `expression` (standard 5-field cron: minute, hour,
/// day of month, month, day of week) in the IANA `time_zone` (`UTC`,
/// `Europe/Berlin`…). Returns the first fire time (RFC 3339, UTC).
///
/// ```no_run
/// let next = plinth_sdk::schedule::cron("quarter-hourly", "*/15 * * * *", "UTC", "{}")?;
/// # let _ = next;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn cron(key: &str, expression: &str, time_zone: &str, payload: &str) -> Result<String, Error> {
    Ok(wit::cron(key, expression, time_zone, payload)?)
}

/// Remove the timer under `key`; `true` if one was pending.
///
/// ```no_run
/// if plinth_sdk::schedule::cancel("escalate:req-9")? {
///     plinth_sdk::info!("escalation cancelled");
/// }
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn cancel(key: &str) -> Result<bool, Error> {
    Ok(wit::cancel(key)?)
}

/// Every pending timer of this plugin in the calling tenant, by key.
///
/// ```no_run
/// for t in plinth_sdk::schedule::list()? {
///     plinth_sdk::info!("{} fires at {}", t.key, t.next_fire);
/// }
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn list() -> Result<Vec<Timer>, Error> {
    Ok(wit::list()?
        .into_iter()
        .map(|t| Timer {
            key: t.key,
            next_fire: t.next_fire,
            cron: t.cron,
            time_zone: t.time_zone,
            payload: t.payload,
        })
        .collect())
}
