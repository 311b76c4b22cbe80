//! Timestamps as stored: RFC 3339 UTC with millisecond precision and a `Z`, fixed
//! width, so that text order is time order in both databases.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, formatted for storage.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

/// Format a time for storage (`2026-11-24T14:00:00.000Z`).
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parse any RFC 3339 time.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_and_round_trip() {
        let t = parse("2026-01-02T03:04:05.6+01:00").unwrap();
        let s = format(t);
        assert_eq!(s, "2026-01-02T02:04:05.600Z");
        assert_eq!(parse(&s).unwrap(), t);
    }
}
