//! Input rules shared by the REST handlers and the `sharing` capability: names,
//! emails, membership roles, dates. Each check returns the cleaned value or a
//! `(field, message)` problem, and [`Problems`] collects them so a request hears
//! about every mistake at once.

use super::error::TenancyError;

/// Longest display name (users, groups, tenants, keys), in characters.
pub const MAX_NAME: usize = 200;
/// Longest email address (RFC 5321 path limit).
pub const MAX_EMAIL: usize = 254;
/// Longest membership role.
pub const MAX_MEMBER_ROLE: usize = 50;

/// Collects field problems; [`Problems::finish`] turns them into one error.
#[derive(Debug, Default)]
pub struct Problems(Vec<(String, String)>);

impl Problems {
    /// Keep the value of a check, or remember its problem (returning `None`).
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(m) => {
                self.0.push((field.to_string(), m));
                None
            }
        }
    }

    /// Record a problem directly.
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_string(), message.into()));
    }

    /// `Ok` if nothing was wrong, else every problem in one [`TenancyError::Invalid`].
    pub fn finish(self) -> Result<(), TenancyError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(TenancyError::Invalid(self.0))
        }
    }
}

/// A display name: trimmed, 1–200 characters, no control characters.
pub fn name(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if trimmed.chars().count() > MAX_NAME {
        return Err(format!("must be at most {MAX_NAME} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_string())
}

/// An email address: trimmed and lower-cased (so addresses differing only in case
/// are one user), `local@domain.tld` shape, no spaces, at most 254 characters.
pub fn email(raw: &str) -> Result<String, String> {
    let e = raw.trim().to_lowercase();
    if e.is_empty() {
        return Err("must not be empty".into());
    }
    if e.len() > MAX_EMAIL {
        return Err(format!("must be at most {MAX_EMAIL} characters"));
    }
    let bad = || "must be an email address such as ada@example.com".to_string();
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    let shape_ok = !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-')
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'));
    if shape_ok { Ok(e) } else { Err(bad()) }
}

/// A BCP 47 language tag as people write them: `de`, `de-DE`, `zh-Hant-TW`; at most
/// 35 characters of letters and digits in `-`-separated subtags.
pub fn locale(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let mut subtags = raw.split('-');
    let language_ok = subtags
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
    let rest_ok = subtags.all(|t| (1..=8).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric()));
    if raw.len() <= 35 && language_ok && rest_ok {
        Ok(raw.to_string())
    } else {
        Err(format!("`{raw}` is not a language tag like `de` or `de-DE`"))
    }
}

/// An IANA time zone name (`Europe/Berlin`, `UTC`).
pub fn time_zone(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    raw.parse::<chrono_tz::Tz>()
        .map(|_| raw.to_string())
        .map_err(|_| format!("`{raw}` is not an IANA time zone like `Europe/Berlin`"))
}

/// A membership role: 1–50 characters of `a-z`, `0-9`, `-`, `_`, starting with a
/// letter (`member`, `owner`, `forecast-manager`…).
pub fn member_role(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_MEMBER_ROLE
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(format!(
            "must be 1–{MAX_MEMBER_ROLE} characters of a-z, 0-9, '-' or '_', starting with a letter"
        ))
    }
}

/// An API version name: a date `YYYY-MM-DD` (the registry decides which exist).
pub fn api_version(raw: &str) -> Result<String, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(raw, &format) {
        Ok(_) if raw.len() == 10 => Ok(raw.to_string()),
        _ => Err("must be an API version date such as 2026-11-01".into()),
    }
}

/// A future instant in RFC 3339, normalised to the stored form.
pub fn future_time(raw: &str) -> Result<String, String> {
    let t = crate::store::time::parse(raw)
        .ok_or_else(|| "must be an RFC 3339 time such as 2027-01-01T00:00:00Z".to_string())?;
    if t <= time::OffsetDateTime::now_utc() {
        return Err("must be in the future".into());
    }
    Ok(crate::store::time::format(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("  Sales  ").unwrap(), "Sales");
        assert!(name("   ").is_err());
        assert!(name(&"x".repeat(201)).is_err());
        assert!(name(&"é".repeat(200)).is_ok());
        assert!(name("a\u{0}b").is_err());
    }

    #[test]
    fn emails_must_look_like_emails() {
        assert_eq!(email(" Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.com",
            "ada@x",
            "a b@x.com",
            "a@b@c.com",
            "a@x..com",
            "a@.x.com",
            "a@x.com.",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert!(email(&format!("{}@x.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn member_roles_and_versions() {
        assert!(member_role("forecast-manager").is_ok());
        for bad in ["", "Owner", "1st", "a b", &"a".repeat(51)] {
            assert!(member_role(bad).is_err(), "{bad}");
        }
        assert!(api_version("2026-11-01").is_ok());
        assert!(api_version("2026-13-01").is_err());
        assert!(api_version("latest").is_err());
    }

    #[test]
    fn times_must_be_future_rfc3339() {
        assert!(future_time("2999-01-01T00:00:00Z").unwrap().ends_with('Z'));
        assert!(future_time("2001-01-01T00:00:00Z").is_err());
        assert!(future_time("tomorrow").is_err());
    }

    #[test]
    fn problems_collect_every_field() {
        let mut p = Problems::default();
        assert_eq!(p.check("name", name("ok")), Some("ok".to_string()));
        assert_eq!(p.check("email", email("nope")), None);
        assert_eq!(locale("de-DE"), Ok("de-DE".into()));
        assert_eq!(locale("zh-Hant-TW"), Ok("zh-Hant-TW".into()));
        assert!(locale("deutsch").is_err() && locale("de_DE").is_err() && locale("").is_err());
        assert_eq!(time_zone("Europe/Berlin"), Ok("Europe/Berlin".into()));
        assert!(time_zone("Mars/Olympus").is_err());
        p.push("role", "bad");
        match p.finish() {
            Err(TenancyError::Invalid(v)) => assert_eq!(v.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
