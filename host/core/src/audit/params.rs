//! Query-string parameters of the audit endpoints: parsed once with unknown and
//! repeated names refused, then each value checked — length, characters, RFC 3339
//! times, page sizes, opaque cursors — collecting every problem with its parameter
//! name, so a client learns all its mistakes from one 400.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{AuditError, Issue};
use crate::store::time;

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub const MAX_LIMIT: i64 = 500;
/// Longest accepted filter value (ids are 26 characters; plugin ids `id@version`).
pub const MAX_FILTER_LEN: usize = 200;
/// Longest accepted query string, in bytes.
const MAX_QUERY_LEN: usize = 8 * 1024;

/// Decoded query parameters, each name at most once.
#[derive(Debug, Clone, Default)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// Parse a raw query string, accepting only the names in `allowed`.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Params, AuditError> {
        let (params, issues) = Params::parse_all(raw, allowed)?;
        if issues.is_empty() {
            Ok(params)
        } else {
            Err(AuditError::BadParams(issues))
        }
    }

    /// Like [`Params::parse`], but unknown and repeated parameters are returned as
    /// issues beside the known ones, so that [`Params::check_with`] reports them
    /// together with the known parameters' bad values. Only an over-long query fails.
    pub fn parse_all(raw: Option<&str>, allowed: &[&str]) -> Result<(Params, Vec<Issue>), AuditError> {
        let raw = raw.unwrap_or("");
        if raw.len() > MAX_QUERY_LEN {
            return Err(AuditError::BadParams(vec![Issue::new(
                "query",
                format!("the query string is longer than {MAX_QUERY_LEN} bytes"),
            )]));
        }
        let mut map = BTreeMap::new();
        let mut issues = Vec::new();
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            if !allowed.contains(&name.as_ref()) {
                issues.push(Issue::new(
                    name.as_ref(),
                    format!("unknown parameter; expected one of: {}", allowed.join(", ")),
                ));
            } else if map.insert(name.to_string(), value.into_owned()).is_some() {
                issues.push(Issue::new(name.as_ref(), "given more than once"));
            }
        }
        Ok((Params { map }, issues))
    }

    /// Params from name/value pairs (for callers that are not HTTP handlers).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
        Params {
            map: pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    /// The raw value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// Start checking values.
    pub fn check(&self) -> Checker<'_> {
        self.check_with(Vec::new())
    }

    /// Start checking values with `issues` already found (from [`Params::parse_all`]).
    pub fn check_with(&self, issues: Vec<Issue>) -> Checker<'_> {
        Checker { params: self, issues }
    }
}

/// Checks parameter values, remembering every problem until [`Checker::finish`].
#[derive(Debug)]
pub struct Checker<'a> {
    params: &'a Params,
    issues: Vec<Issue>,
}

impl Checker<'_> {
    fn raw(&self, name: &str) -> Option<&str> {
        self.params.map.get(name).map(String::as_str)
    }

    fn fail<T>(&mut self, name: &str, message: impl Into<String>) -> Option<T> {
        self.issues.push(Issue::new(name, message));
        None
    }

    /// A free-text filter: non-empty, at most [`MAX_FILTER_LEN`] characters, no
    /// control characters.
    pub fn text(&mut self, name: &str) -> Option<String> {
        let v = self.raw(name)?.to_string();
        match check_text(&v, MAX_FILTER_LEN) {
            Ok(()) => Some(v),
            Err(m) => self.fail(name, m),
        }
    }

    /// An RFC 3339 time, returned in stored form (UTC, milliseconds).
    pub fn time(&mut self, name: &str) -> Option<String> {
        let v = self.raw(name)?;
        match time::parse(v) {
            Some(t) => Some(time::format(t)),
            // A `+` offset sent unencoded arrives as a space.
            None if v.contains(' ') => self.fail(
                name,
                "must be an RFC 3339 time; encode a `+` offset as %2B (e.g. 2026-11-24T15:00:00%2B01:00)",
            ),
            None => self.fail(name, "must be an RFC 3339 time, e.g. 2026-11-24T14:00:00Z"),
        }
    }

    /// A required RFC 3339 time.
    pub fn required_time(&mut self, name: &str) -> Option<String> {
        if self.raw(name).is_none() {
            return self.fail(name, "is required (an RFC 3339 time)");
        }
        self.time(name)
    }

    /// The page size: 1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
    pub fn limit(&mut self) -> i64 {
        let Some(v) = self.raw("limit") else {
            return DEFAULT_LIMIT;
        };
        match v.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                self.issues.push(Issue::new(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                ));
                DEFAULT_LIMIT
            }
        }
    }

    /// `true` or `false`.
    pub fn bool(&mut self, name: &str) -> Option<bool> {
        match self.raw(name)? {
            "true" => Some(true),
            "false" => Some(false),
            _ => self.fail(name, "must be true or false"),
        }
    }

    /// One of `choices`, else `default`.
    pub fn choice(&mut self, name: &str, choices: &[&'static str], default: &'static str) -> &'static str {
        let Some(v) = self.raw(name) else {
            return default;
        };
        match choices.iter().find(|c| **c == v) {
            Some(c) => c,
            None => {
                self.issues
                    .push(Issue::new(name, format!("must be one of: {}", choices.join(", "))));
                default
            }
        }
    }

    /// The `cursor` parameter, decoded: the value it carries, if it was made for `kind`.
    pub fn cursor(&mut self, kind: &str) -> Option<String> {
        let v = self.raw("cursor")?;
        match decode_cursor(kind, v) {
            Some(c) => Some(c),
            None => self.fail("cursor", "is not a cursor returned by this endpoint"),
        }
    }

    /// Record a problem found by the caller.
    pub fn issue(&mut self, name: &str, message: impl Into<String>) {
        self.issues.push(Issue::new(name, message));
    }

    /// Every problem found, as one error.
    pub fn finish(self) -> Result<(), AuditError> {
        if self.issues.is_empty() {
            Ok(())
        } else {
            Err(AuditError::BadParams(self.issues))
        }
    }
}

/// Non-empty, at most `max` characters, no control characters.
pub fn check_text(v: &str, max: usize) -> Result<(), String> {
    if v.is_empty() {
        Err("must not be empty".into())
    } else if v.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else if v.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

/// An opaque cursor carrying `value` for the endpoint family `kind`.
pub fn encode_cursor(kind: &str, value: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{value}"))
}

/// The value of a cursor made by [`encode_cursor`] for `kind`.
pub fn decode_cursor(kind: &str, cursor: &str) -> Option<String> {
    if cursor.len() > 256 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let value = text.strip_prefix(kind)?.strip_prefix(':')?;
    Some(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_repeated_names_are_refused_together() {
        let Err(AuditError::BadParams(issues)) = Params::parse(Some("a=1&b=2&a=3"), &["a"]) else {
            panic!("expected an error");
        };
        let fields: Vec<_> = issues.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(fields, ["b", "a"]);
    }

    #[test]
    fn values_are_checked_and_times_normalised() {
        let p = Params::parse(
            Some("from=2026-01-02T03:04:05%2B01:00&to=yesterday&limit=501&actor="),
            &["from", "to", "limit", "actor"],
        )
        .unwrap();
        let mut c = p.check();
        assert_eq!(c.time("from").as_deref(), Some("2026-01-02T02:04:05.000Z"));
        assert_eq!(c.time("to"), None);
        assert_eq!(c.limit(), DEFAULT_LIMIT);
        assert_eq!(c.text("actor"), None);
        let Err(AuditError::BadParams(issues)) = c.finish() else {
            panic!("expected an error");
        };
        assert_eq!(issues.len(), 3);
    }

    #[test]
    fn cursors_round_trip_and_reject_other_kinds() {
        let c = encode_cursor("e1", "d:42");
        assert_eq!(decode_cursor("e1", &c).as_deref(), Some("d:42"));
        assert_eq!(decode_cursor("a1", &c), None);
        assert_eq!(decode_cursor("e1", "!!!"), None);
    }
}
