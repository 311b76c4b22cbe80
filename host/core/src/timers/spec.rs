//! What a timer may be: key, payload and count limits, one-shot fire times, and cron
//! expressions in IANA time zones with their next fire time.
//!
//! Cron is parsed by `croner` (5 fields only: minute, hour, day of month, month, day
//! of week; names like `MON` and nicknames like `@daily` allowed) and evaluated in
//! the zone with `chrono-tz`. Across daylight-saving changes croner follows Vixie cron
//! (OCPS): a fixed-time job skipped by a spring-forward gap runs right after the gap,
//! one repeated by a fall-back runs once; wildcard/step jobs run at each matching
//! wall-clock time that exists. Searches move in real time, so a next fire is never
//! before the instant it is computed from.

use std::str::FromStr;
use std::time::Duration;

use chrono::TimeZone as _;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use time::OffsetDateTime;

/// Longest key, in characters.
pub const MAX_KEY_CHARS: usize = 200;
/// Largest payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Most pending timers per tenant and plugin.
pub const MAX_TIMERS: i64 = 10_000;
/// Longest cron expression or time-zone name, in bytes.
const MAX_EXPRESSION_BYTES: usize = 200;
/// How far ahead a timer may fire: about ten years.
pub const MAX_AHEAD: Duration = Duration::from_secs(3653 * 24 * 3600);

/// Why a timer was refused; `Invalid` and `Limit` become the WIT errors of that name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Malformed or out of range.
    #[error("{0}")]
    Invalid(String),
    /// Over a size or count limit.
    #[error("{0}")]
    Limit(String),
}

/// Check a timer key: 1–200 characters, none of them control characters.
pub fn check_key(key: &str) -> Result<(), SpecError> {
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_KEY_CHARS {
        return Err(SpecError::Invalid(format!(
            "a timer key is 1–{MAX_KEY_CHARS} characters (got {chars})"
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(SpecError::Invalid(
            "a timer key may not contain control characters".into(),
        ));
    }
    Ok(())
}

/// Check a payload's size.
pub fn check_payload(payload: &str) -> Result<(), SpecError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(SpecError::Limit(format!(
            "a timer payload is at most {MAX_PAYLOAD_BYTES} bytes (got {})",
            payload.len()
        )));
    }
    Ok(())
}

fn check_horizon(due: OffsetDateTime, now: OffsetDateTime) -> Result<OffsetDateTime, SpecError> {
    if due > now + MAX_AHEAD {
        return Err(SpecError::Invalid(format!(
            "a timer may fire at most {} days ahead",
            MAX_AHEAD.as_secs() / 86_400
        )));
    }
    Ok(truncate(due))
}

fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000).unwrap_or(t)
}

/// The fire time of `at(time)`: an RFC 3339 time with an offset, at most
/// [`MAX_AHEAD`] after `now`. Times in the past are accepted (they fire at once).
pub fn at(time: &str, now: OffsetDateTime) -> Result<OffsetDateTime, SpecError> {
    let due = crate::store::time::parse(time).ok_or_else(|| {
        SpecError::Invalid(format!(
            "`{time}` is not an RFC 3339 time with an offset, e.g. 2026-11-24T14:00:00Z"
        ))
    })?;
    check_horizon(due, now)
}

/// The fire time of `after(millis)`.
pub fn after(millis: u64, now: OffsetDateTime) -> Result<OffsetDateTime, SpecError> {
    let delay = Duration::from_millis(millis);
    if delay > MAX_AHEAD {
        return check_horizon(now + MAX_AHEAD + Duration::from_millis(1), now);
    }
    check_horizon(now + delay, now)
}

/// A parsed cron expression and its time zone.
#[derive(Debug, Clone)]
pub struct CronSpec {
    cron: Cron,
    zone: chrono_tz::Tz,
}

impl CronSpec {
    /// Parse a 5-field expression and an IANA zone name (`UTC`, `Europe/Berlin`).
    pub fn parse(expression: &str, time_zone: &str) -> Result<CronSpec, SpecError> {
        if expression.len() > MAX_EXPRESSION_BYTES || time_zone.len() > MAX_EXPRESSION_BYTES {
            return Err(SpecError::Invalid(format!(
                "cron expressions and time zones are at most {MAX_EXPRESSION_BYTES} bytes"
            )));
        }
        let zone = chrono_tz::Tz::from_str(time_zone).map_err(|_| {
            SpecError::Invalid(format!(
                "`{time_zone}` is not an IANA time zone (e.g. `UTC`, `Europe/Berlin`)"
            ))
        })?;
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| {
                SpecError::Invalid(format!(
                    "`{expression}` is not a 5-field cron expression (minute hour day-of-month month day-of-week): {e}"
                ))
            })?;
        Ok(CronSpec { cron, zone })
    }

    /// The first fire time strictly after `t`, if there is one within [`MAX_AHEAD`]
    /// of `t`.
    pub fn next_after(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        let millis = i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()?;
        let start = self.zone.timestamp_millis_opt(millis).single()?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        let next = OffsetDateTime::from_unix_timestamp_nanos(i128::from(next.timestamp_millis()) * 1_000_000).ok()?;
        (next <= t + MAX_AHEAD).then_some(next)
    }

    /// The first fire time after `now`, or `invalid` when the expression never fires
    /// within [`MAX_AHEAD`] (e.g. `0 0 30 2 *`).
    pub fn first_after(&self, now: OffsetDateTime) -> Result<OffsetDateTime, SpecError> {
        self.next_after(now).ok_or_else(|| {
            SpecError::Invalid(format!(
                "the cron expression never fires within the next {} days",
                MAX_AHEAD.as_secs() / 86_400
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn fires(spec: &CronSpec, from: OffsetDateTime, until: OffsetDateTime) -> Vec<String> {
        let mut out = Vec::new();
        let mut t = from;
        while let Some(next) = spec.next_after(t) {
            if next > until {
                break;
            }
            out.push(crate::store::time::format(next));
            t = next;
        }
        out
    }

    #[test]
    fn keys_payloads_and_horizon() {
        assert!(check_key("a").is_ok());
        assert!(check_key(&"é".repeat(200)).is_ok());
        assert!(matches!(check_key(""), Err(SpecError::Invalid(_))));
        assert!(matches!(check_key(&"k".repeat(201)), Err(SpecError::Invalid(_))));
        assert!(matches!(check_key("a\nb"), Err(SpecError::Invalid(_))));
        assert!(check_payload(&"x".repeat(MAX_PAYLOAD_BYTES)).is_ok());
        assert!(matches!(
            check_payload(&"x".repeat(MAX_PAYLOAD_BYTES + 1)),
            Err(SpecError::Limit(_))
        ));
        let now = datetime!(2026-11-24 12:00:00 UTC);
        assert_eq!(after(1500, now).unwrap(), datetime!(2026-11-24 12:00:01.5 UTC));
        assert!(matches!(after(u64::MAX, now), Err(SpecError::Invalid(_))));
        assert_eq!(
            at("2026-11-24T14:00:00.123456+01:00", now).unwrap(),
            datetime!(2026-11-24 13:00:00.123 UTC)
        );
        assert!(at("2020-01-01T00:00:00Z", now).is_ok(), "the past fires at once");
        assert!(matches!(at("2040-01-01T00:00:00Z", now), Err(SpecError::Invalid(_))));
        assert!(matches!(at("tomorrow", now), Err(SpecError::Invalid(_))));
    }

    #[test]
    fn cron_parsing_is_strict_about_fields_and_zones() {
        assert!(CronSpec::parse("*/5 * * * *", "UTC").is_ok());
        assert!(CronSpec::parse("0 9 * * MON-FRI", "Europe/Berlin").is_ok());
        assert!(CronSpec::parse("@daily", "America/New_York").is_ok());
        for bad in [
            "",
            "* * * *",
            "0 * * * * *",
            "0 0 * * * * 2030",
            "61 * * * *",
            "nonsense",
        ] {
            assert!(
                matches!(CronSpec::parse(bad, "UTC"), Err(SpecError::Invalid(_))),
                "{bad:?} must be refused"
            );
        }
        assert!(matches!(
            CronSpec::parse("* * * * *", "Mars/Olympus"),
            Err(SpecError::Invalid(_))
        ));
        assert!(matches!(CronSpec::parse("* * * * *", ""), Err(SpecError::Invalid(_))));
        let never = CronSpec::parse("0 0 30 2 *", "UTC").unwrap();
        assert!(matches!(
            never.first_after(datetime!(2026-01-01 00:00 UTC)),
            Err(SpecError::Invalid(_))
        ));
    }

    #[test]
    fn next_fire_is_strictly_after_and_in_the_zone() {
        let every5 = CronSpec::parse("*/5 * * * *", "UTC").unwrap();
        let t = datetime!(2026-11-24 12:00:00 UTC);
        assert_eq!(every5.next_after(t), Some(datetime!(2026-11-24 12:05 UTC)));
        assert_eq!(
            every5.next_after(datetime!(2026-11-24 12:04:59.999 UTC)),
            Some(datetime!(2026-11-24 12:05 UTC))
        );
        assert_eq!(fires(&every5, t, datetime!(2026-11-24 13:00 UTC)).len(), 12);
        // 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer.
        let nine = CronSpec::parse("0 9 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            nine.next_after(datetime!(2026-01-10 12:00 UTC)),
            Some(datetime!(2026-01-11 08:00 UTC))
        );
        assert_eq!(
            nine.next_after(datetime!(2026-07-10 12:00 UTC)),
            Some(datetime!(2026-07-11 07:00 UTC))
        );
    }

    #[test]
    fn daylight_saving_changes_follow_vixie_cron() {
        // Europe/Berlin, 2026-03-29: 02:00 local jumps to 03:00 (01:00 UTC).
        let gap = CronSpec::parse("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            fires(&gap, datetime!(2026-03-28 00:00 UTC), datetime!(2026-03-31 00:00 UTC)),
            [
                "2026-03-28T01:30:00.000Z", // 02:30 CET
                "2026-03-29T01:00:00.000Z", // skipped 02:30 runs right after the gap, 03:00 CEST
                "2026-03-30T00:30:00.000Z", // 02:30 CEST
            ]
        );
        // An hourly job simply has no 02:xx that day: 23 fires in the short day.
        let hourly = CronSpec::parse("0 * * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            fires(
                &hourly,
                datetime!(2026-03-28 23:00 UTC),
                datetime!(2026-03-29 22:00 UTC)
            )
            .len(),
            23
        );
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let overlap = CronSpec::parse("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            fires(
                &overlap,
                datetime!(2026-10-24 12:00 UTC),
                datetime!(2026-10-26 12:00 UTC)
            ),
            ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"],
            "a fixed time repeated by the fall-back runs once"
        );
        // Every 30 minutes runs in both passes of the repeated hour: 50 in the long day.
        let half = CronSpec::parse("*/30 * * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            fires(&half, datetime!(2026-10-24 21:59 UTC), datetime!(2026-10-25 22:59 UTC)).len(),
            50
        );
    }
}
