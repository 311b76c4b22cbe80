//! The lifecycle of an API version — preview, current, deprecated, retired — with its
//! dates and successor, the rules an operator's change must satisfy, and the date
//! formats the lifecycle headers use (RFC 9745 `Deprecation`, RFC 8594 `Sunset`).

use std::fmt;
use std::str::FromStr;

use time::macros::format_description;
use time::{Date, Duration};

use super::registry::Registry;
use crate::store::StoreError;

/// Notice given between deprecation and sunset when the operator names no sunset.
pub const DEFAULT_SUNSET_NOTICE_DAYS: i64 = 180;

/// Where a version is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// Served, but may still change; for early adopters.
    Preview,
    /// Served and stable.
    Current,
    /// Served, with `Deprecation`, `Sunset` and successor `Link` headers.
    Deprecated,
    /// No longer served: 410 naming the successor.
    Retired,
}

impl Lifecycle {
    /// Every lifecycle, in order.
    pub const ALL: [Lifecycle; 4] = [
        Lifecycle::Preview,
        Lifecycle::Current,
        Lifecycle::Deprecated,
        Lifecycle::Retired,
    ];

    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Preview => "preview",
            Lifecycle::Current => "current",
            Lifecycle::Deprecated => "deprecated",
            Lifecycle::Retired => "retired",
        }
    }

    /// Whether a deprecation date and sunset belong to this lifecycle.
    pub fn is_ending(self) -> bool {
        matches!(self, Lifecycle::Deprecated | Lifecycle::Retired)
    }
}

impl serde::Serialize for Lifecycle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a lifecycle; use preview, current, deprecated or retired")]
pub struct UnknownLifecycle(pub String);

impl FromStr for Lifecycle {
    type Err = UnknownLifecycle;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lifecycle::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownLifecycle(s.chars().take(40).collect()))
    }
}

/// A version's lifecycle with its dates and successor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The lifecycle.
    pub lifecycle: Lifecycle,
    /// When it was (or will be) deprecated; set for deprecated and retired versions.
    pub deprecation: Option<Date>,
    /// When it stops (or stopped) being served; set for deprecated and retired versions.
    pub sunset: Option<Date>,
    /// The version clients should move to.
    pub successor: Option<String>,
}

/// An operator's request to change a version's lifecycle. Absent dates and successor
/// take defaults (see [`plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleChange {
    /// The new lifecycle.
    pub lifecycle: Lifecycle,
    /// Deprecation date (deprecated or retired only).
    pub deprecation: Option<Date>,
    /// Sunset date (deprecated or retired only).
    pub sunset: Option<Date>,
    /// Successor version.
    pub successor: Option<String>,
}

/// Why a lifecycle change was refused.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// No such version (404).
    #[error("there is no API version {0}")]
    NotFound(String),
    /// A field of the change is invalid (422).
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The change would leave the registry in a state clients cannot use (409).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> LifecycleError {
    LifecycleError::Invalid {
        field,
        message: message.into(),
    }
}

/// Check `change` to `version` against `registry` and resolve its defaults:
///
/// - a version that has been released (current, deprecated, retired) cannot go back
///   to preview;
/// - at least one version must stay current, so that clients always have somewhere
///   to go;
/// - deprecated and retired versions need a successor that is a newer, current
///   version (default: the next version in the registry);
/// - deprecation defaults to the date already stored, else `today`; sunset defaults to
///   the one stored, else deprecation + [`DEFAULT_SUNSET_NOTICE_DAYS`] (deprecated) or
///   today (retired), and may not precede deprecation;
/// - preview and current versions carry no dates.
pub fn plan(
    registry: &Registry,
    version: &str,
    change: LifecycleChange,
    today: Date,
) -> Result<Status, LifecycleError> {
    let info = registry
        .get(version)
        .ok_or_else(|| LifecycleError::NotFound(version.chars().take(40).collect()))?;
    let before = &info.status;
    let lifecycle = change.lifecycle;

    if lifecycle == Lifecycle::Preview && before.lifecycle != Lifecycle::Preview {
        return Err(LifecycleError::Conflict(format!(
            "{version} has been released ({}); it cannot go back to preview",
            before.lifecycle
        )));
    }
    let another_current = registry
        .versions()
        .iter()
        .any(|v| v.version != version && v.status.lifecycle == Lifecycle::Current);
    if lifecycle != Lifecycle::Current && before.lifecycle == Lifecycle::Current && !another_current {
        return Err(LifecycleError::Conflict(format!(
            "{version} is the only current version; make another version current first"
        )));
    }

    let successor = match change.successor {
        Some(s) => Some(s),
        None => registry.next_after(version).map(str::to_string),
    };
    if !lifecycle.is_ending() {
        if change.deprecation.is_some() {
            return Err(invalid(
                "deprecation",
                format!("a {lifecycle} version has no deprecation date"),
            ));
        }
        if change.sunset.is_some() {
            return Err(invalid("sunset", format!("a {lifecycle} version has no sunset date")));
        }
        return Ok(Status {
            lifecycle,
            deprecation: None,
            sunset: None,
            successor: successor.filter(|s| registry.get(s).is_some()),
        });
    }

    let successor = successor.ok_or_else(|| {
        invalid(
            "successor",
            format!("{version} is the newest version; there is no successor to send its clients to"),
        )
    })?;
    match registry.get(&successor) {
        None => return Err(invalid("successor", "there is no such API version")),
        Some(s) if s.version <= version => {
            return Err(invalid(
                "successor",
                format!("the successor must be newer than {version}"),
            ));
        }
        Some(s) if s.status.lifecycle != Lifecycle::Current => {
            return Err(invalid(
                "successor",
                format!(
                    "the successor must be a current version; {} is {}",
                    s.version, s.status.lifecycle
                ),
            ));
        }
        Some(_) => {}
    }

    let deprecation = change.deprecation.or(before.deprecation).unwrap_or(today);
    let sunset = match (change.sunset, before.sunset) {
        (Some(s), _) | (None, Some(s)) => s,
        (None, None) if lifecycle == Lifecycle::Retired => today.max(deprecation),
        (None, None) => deprecation.saturating_add(Duration::days(DEFAULT_SUNSET_NOTICE_DAYS)),
    };
    if sunset < deprecation {
        return Err(invalid("sunset", "the sunset cannot precede the deprecation date"));
    }
    Ok(Status {
        lifecycle,
        deprecation: Some(deprecation),
        sunset: Some(sunset),
        successor: Some(successor),
    })
}

/// Parse a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]")).ok()
}

/// Format a date as `YYYY-MM-DD`.
pub fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The RFC 9745 `Deprecation` value: `@<unix seconds>` of midnight UTC of `d`.
pub fn deprecation_header(d: Date) -> String {
    format!("@{}", d.midnight().assume_utc().unix_timestamp())
}

/// The RFC 8594 `Sunset` value: an HTTP-date (RFC 9110 IMF-fixdate) of midnight UTC
/// of `d`, e.g. `Wed, 30 Jun 2027 00:00:00 GMT`.
pub fn sunset_header(d: Date) -> String {
    let weekday = match d.weekday() {
        time::Weekday::Monday => "Mon",
        time::Weekday::Tuesday => "Tue",
        time::Weekday::Wednesday => "Wed",
        time::Weekday::Thursday => "Thu",
        time::Weekday::Friday => "Fri",
        time::Weekday::Saturday => "Sat",
        time::Weekday::Sunday => "Sun",
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS[usize::from(u8::from(d.month())) - 1];
    format!("{weekday}, {:02} {month} {:04} 00:00:00 GMT", d.day(), d.year())
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn header_date_formats() {
        assert_eq!(deprecation_header(date!(2026 - 12 - 01)), "@1796083200");
        assert_eq!(sunset_header(date!(2027 - 06 - 30)), "Wed, 30 Jun 2027 00:00:00 GMT");
        assert_eq!(sunset_header(date!(2027 - 01 - 03)), "Sun, 03 Jan 2027 00:00:00 GMT");
        assert_eq!(parse_date("2027-06-30"), Some(date!(2027 - 06 - 30)));
        assert_eq!(parse_date("2027-6-30"), None);
        assert_eq!(parse_date("2027-02-30"), None);
        assert_eq!(format_date(date!(2027 - 06 - 03)), "2027-06-03");
    }

    #[test]
    fn lifecycle_names_round_trip() {
        for l in Lifecycle::ALL {
            assert_eq!(l.as_str().parse::<Lifecycle>(), Ok(l));
        }
        assert!("gone".parse::<Lifecycle>().is_err());
    }
}
