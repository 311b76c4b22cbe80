//! Which API version a request uses: the `Accept-Version` header, else the API key's
//! pinned version, else the tenant's default, else the registry's fallback — and the
//! refusals when that version is unknown (400) or retired (410).

use super::lifecycle::{Lifecycle, Status};
use super::registry::{Registry, VersionInfo};

/// Longest requested version kept in errors and the request log.
const MAX_REQUESTED: usize = 40;

/// Where the selected version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The `Accept-Version` header.
    Header,
    /// The API key's pinned version.
    Key,
    /// The tenant's default version.
    Tenant,
    /// The registry's fallback (no caller, key or tenant named one).
    Default,
}

impl Source {
    /// How to name the source in an error.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Header => "the Accept-Version header",
            Source::Key => "the API key's pinned version",
            Source::Tenant => "the tenant's default version",
            Source::Default => "the server's default version",
        }
    }
}

/// Why a request's version cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// The version is not one this host speaks.
    #[error("{} names API version `{requested}`, which does not exist; supported versions: {}", .origin.describe(), .supported.join(", "))]
    Unknown {
        /// What was asked for (truncated).
        requested: String,
        /// Where it came from.
        origin: Source,
        /// The versions that are served.
        supported: Vec<&'static str>,
    },
    /// The version has been retired.
    #[error("API version {version} (from {}) has been retired{}", .origin.describe(), .status.successor.as_deref().map(|s| format!("; use {s}")).unwrap_or_default())]
    Retired {
        /// The retired version.
        version: &'static str,
        /// Where it came from.
        origin: Source,
        /// Its lifecycle (successor and dates).
        status: Status,
    },
}

impl SelectError {
    /// The version the caller asked for (for the request log).
    pub fn requested(&self) -> &str {
        match self {
            SelectError::Unknown { requested, .. } => requested,
            SelectError::Retired { version, .. } => version,
        }
    }
}

/// Choose the version of a request.
pub fn select<'r>(
    registry: &'r Registry,
    header: Option<&str>,
    key_pin: Option<&str>,
    tenant_default: Option<&str>,
) -> Result<&'r VersionInfo, SelectError> {
    let (requested, source) = match (header, key_pin, tenant_default) {
        (Some(h), _, _) => (h.trim(), Source::Header),
        (None, Some(k), _) => (k, Source::Key),
        (None, None, Some(t)) => (t, Source::Tenant),
        (None, None, None) => (registry.fallback(), Source::Default),
    };
    let info = registry.get(requested).ok_or_else(|| SelectError::Unknown {
        requested: requested.chars().take(MAX_REQUESTED).collect(),
        origin: source,
        supported: registry.supported(),
    })?;
    if info.status.lifecycle == Lifecycle::Retired {
        return Err(SelectError::Retired {
            version: info.version,
            origin: source,
            status: info.status.clone(),
        });
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::versions::VersionOverride;

    #[test]
    fn header_beats_key_beats_tenant_beats_default() {
        let r = Registry::builtin();
        let pick = |h, k, t| select(&r, h, k, t).map(|v| v.version);
        assert_eq!(
            pick(Some("2027-01-15"), Some("2026-11-01"), Some("2026-11-01")),
            Ok("2027-01-15")
        );
        assert_eq!(pick(None, Some("2027-01-15"), Some("2026-11-01")), Ok("2027-01-15"));
        assert_eq!(pick(None, None, Some("2027-01-15")), Ok("2027-01-15"));
        assert_eq!(pick(None, None, None), Ok("2026-11-01"));
        assert_eq!(pick(Some(" 2027-01-15 "), None, None), Ok("2027-01-15"));
    }

    #[test]
    fn unknown_and_retired_versions_are_refused_with_what_to_do() {
        let r = Registry::builtin();
        let err = select(&r, Some("2025-01-01"), None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the Accept-Version header names API version `2025-01-01`, which does not exist; \
             supported versions: 2026-11-01, 2027-01-15"
        );
        let err = select(&r, None, Some("v1"), None).unwrap_err();
        assert!(err.to_string().starts_with("the API key's pinned version"), "{err}");

        let r = Registry::with_overrides(&[
            VersionOverride {
                version: "2027-01-15".into(),
                lifecycle: "current".into(),
                deprecation: None,
                sunset: None,
                successor: None,
                updated_at: String::new(),
            },
            VersionOverride {
                version: "2026-11-01".into(),
                lifecycle: "retired".into(),
                deprecation: Some("2026-12-01".into()),
                sunset: Some("2027-06-30".into()),
                successor: Some("2027-01-15".into()),
                updated_at: String::new(),
            },
        ]);
        let err = select(&r, None, None, Some("2026-11-01")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "API version 2026-11-01 (from the tenant's default version) has been retired; use 2027-01-15"
        );
        assert_eq!(err.requested(), "2026-11-01");
    }
}
