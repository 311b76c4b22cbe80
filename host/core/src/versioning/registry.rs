//! The registry of API versions: the versions this host speaks (defined in code, with
//! default lifecycles) overlaid with the operator's overrides from the database, and
//! [`Versions`], the process-wide handle that keeps a current snapshot of it.
//!
//! Built-in defaults: `2026-11-01` is **current** (and [`DEFAULT_VERSION`], the one new
//! tenants get); `2027-01-15` is **preview** until an operator makes it current. Once it
//! is, the operator deprecates 2026-11-01 (sunset defaulting to 180 days later) and
//! finally retires it.
//!
//! Freshness: the snapshot is loaded from the database before the first versioned
//! request, replaced at once when a change is made through this process, and reloaded
//! every [`REFRESH_EVERY`] by the background task, so other hosts sharing the
//! database (and changes made with `plinth admin version set`) take effect within
//! that interval.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::DEFAULT_VERSION;
use super::change::{self, VersionChange};
use super::lifecycle::{self, Lifecycle, LifecycleChange, LifecycleError, Status};
use crate::store::versions::VersionOverride;
use crate::store::{Db, StoreResult, time as store_time};

/// How often the background task reloads the registry from the database.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// The versions this host speaks, oldest first, with their default lifecycles.
const BUILTIN: &[(&str, Lifecycle, &str)] = &[
    (
        "2026-11-01",
        Lifecycle::Current,
        "The first dated version of the Plinth REST API.",
    ),
    (
        "2027-01-15",
        Lifecycle::Preview,
        "Money amounts as objects with their currency.",
    ),
];

/// One version as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The version, e.g. `2026-11-01`.
    pub version: &'static str,
    /// One line about the version.
    pub summary: &'static str,
    /// Lifecycle, dates and successor.
    pub status: Status,
    /// When an operator last changed it (`None`: built-in defaults).
    pub overridden_at: Option<String>,
}

impl VersionInfo {
    /// The breaking changes this version introduced.
    pub fn changes(&self) -> impl Iterator<Item = &'static dyn VersionChange> + '_ {
        change::all().iter().copied().filter(|c| c.introduced() == self.version)
    }
}

/// A snapshot of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    versions: Vec<VersionInfo>,
}

impl Registry {
    /// The built-in versions with their default lifecycles.
    pub fn builtin() -> Registry {
        let versions = BUILTIN
            .iter()
            .enumerate()
            .map(|(i, &(version, lifecycle, summary))| VersionInfo {
                version,
                summary,
                status: Status {
                    lifecycle,
                    deprecation: None,
                    sunset: None,
                    successor: BUILTIN.get(i + 1).map(|next| next.0.to_string()),
                },
                overridden_at: None,
            })
            .collect();
        Registry { versions }
    }

    /// The built-in versions with stored overrides applied. Rows for versions this
    /// host does not know (written by a newer host) or that do not decode are skipped
    /// with a warning: the built-in lifecycle then stands.
    pub fn with_overrides(rows: &[VersionOverride]) -> Registry {
        let mut registry = Registry::builtin();
        for row in rows {
            let Some(info) = registry.versions.iter_mut().find(|v| v.version == row.version) else {
                tracing::warn!(version = %row.version, "ignoring the lifecycle of an API version this host does not know");
                continue;
            };
            match decode(row) {
                Some(status) => {
                    info.status = status;
                    info.overridden_at = Some(row.updated_at.clone());
                }
                None => tracing::warn!(version = %row.version, "ignoring an undecodable API version lifecycle row"),
            }
        }
        registry
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> &[VersionInfo] {
        &self.versions
    }

    /// One version.
    pub fn get(&self, version: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// The versions that are served (every one not retired).
    pub fn supported(&self) -> Vec<&'static str> {
        self.versions
            .iter()
            .filter(|v| v.status.lifecycle != Lifecycle::Retired)
            .map(|v| v.version)
            .collect()
    }

    /// The version used when neither the request, nor a key, nor a tenant names one:
    /// [`DEFAULT_VERSION`], unless an operator has retired it, then the newest current.
    pub fn fallback(&self) -> &'static str {
        match self.get(DEFAULT_VERSION) {
            Some(v) if v.status.lifecycle != Lifecycle::Retired => v.version,
            _ => self
                .versions
                .iter()
                .rev()
                .find(|v| v.status.lifecycle == Lifecycle::Current)
                .map_or(DEFAULT_VERSION, |v| v.version),
        }
    }

    /// The version after `version` in the registry.
    pub fn next_after(&self, version: &str) -> Option<&'static str> {
        self.versions.iter().map(|v| v.version).find(|v| *v > version)
    }
}

fn decode(row: &VersionOverride) -> Option<Status> {
    let date = |d: &Option<String>| match d {
        None => Some(None),
        Some(s) => lifecycle::parse_date(s).map(Some),
    };
    Some(Status {
        lifecycle: row.lifecycle.parse().ok()?,
        deprecation: date(&row.deprecation)?,
        sunset: date(&row.sunset)?,
        successor: row.successor.clone(),
    })
}

/// The process-wide registry: a snapshot behind a lock, loaded from the database
/// before first use and replaced whenever it is reloaded.
#[derive(Debug)]
pub struct Versions {
    current: RwLock<Arc<Registry>>,
    loaded: tokio::sync::OnceCell<()>,
}

impl Default for Versions {
    fn default() -> Self {
        Versions {
            current: RwLock::new(Arc::new(Registry::builtin())),
            loaded: tokio::sync::OnceCell::new(),
        }
    }
}

impl Versions {
    /// The current snapshot (built-in defaults until first loaded).
    pub fn snapshot(&self) -> Arc<Registry> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The snapshot, loading the operator's overrides first if that has not happened
    /// yet (so no request is ever served under stale built-in lifecycles).
    pub async fn ensure_loaded(&self, db: &Db) -> StoreResult<Arc<Registry>> {
        self.loaded.get_or_try_init(|| self.reload(db)).await?;
        Ok(self.snapshot())
    }

    /// Read the overrides from the database and replace the snapshot.
    pub async fn reload(&self, db: &Db) -> StoreResult<()> {
        let registry = Registry::with_overrides(&db.version_overrides().await?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(registry);
        Ok(())
    }

    /// Change a version's lifecycle: validate against the freshest registry, store
    /// the override, and take it into this process's snapshot at once. Concurrent
    /// changes from several hosts are last-writer-wins.
    pub async fn set(&self, db: &Db, version: &str, change: LifecycleChange) -> Result<VersionInfo, LifecycleError> {
        self.reload(db).await?;
        let today = time::OffsetDateTime::now_utc().date();
        let status = lifecycle::plan(&self.snapshot(), version, change, today)?;
        db.put_version_override(&VersionOverride {
            version: version.to_string(),
            lifecycle: status.lifecycle.as_str().to_string(),
            deprecation: status.deprecation.map(lifecycle::format_date),
            sunset: status.sunset.map(lifecycle::format_date),
            successor: status.successor.clone(),
            updated_at: store_time::now(),
        })
        .await?;
        self.reload(db).await?;
        let info = self
            .snapshot()
            .get(version)
            .cloned()
            .ok_or_else(|| LifecycleError::NotFound(version.to_string()))?;
        // Operator actions belong to no tenant, so they go to the log, not a ledger.
        tracing::info!(
            version,
            lifecycle = %info.status.lifecycle,
            deprecation = ?info.status.deprecation.map(lifecycle::format_date),
            sunset = ?info.status.sunset.map(lifecycle::format_date),
            successor = ?info.status.successor,
            "API version lifecycle changed"
        );
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn change(lifecycle: Lifecycle) -> LifecycleChange {
        LifecycleChange {
            lifecycle,
            deprecation: None,
            sunset: None,
            successor: None,
        }
    }

    fn with(registry: &Registry, version: &str, status: Status) -> Registry {
        let mut r = registry.clone();
        if let Some(v) = r.versions.iter_mut().find(|v| v.version == version) {
            v.status = status;
        }
        r
    }

    #[test]
    fn builtins_are_sorted_known_and_every_change_belongs_to_one() {
        let r = Registry::builtin();
        let names: Vec<_> = r.versions().iter().map(|v| v.version).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert!(names.contains(&DEFAULT_VERSION));
        assert_eq!(
            r.get(DEFAULT_VERSION).map(|v| v.status.lifecycle),
            Some(Lifecycle::Current)
        );
        for c in change::all() {
            assert!(
                r.get(c.introduced()).is_some(),
                "{} is not a registry version",
                c.introduced()
            );
        }
        assert_eq!(r.get("2027-01-15").map(|v| v.changes().count()), Some(1));
        assert_eq!(r.next_after("2026-11-01"), Some("2027-01-15"));
        assert_eq!(r.fallback(), DEFAULT_VERSION);
    }

    #[test]
    fn released_versions_cannot_return_to_preview_and_one_stays_current() {
        let r = Registry::builtin();
        let today = date!(2026 - 11 - 24);
        let err = lifecycle::plan(&r, "2026-11-01", change(Lifecycle::Preview), today).unwrap_err();
        assert!(matches!(err, LifecycleError::Conflict(_)), "{err}");
        let err = lifecycle::plan(&r, "2026-11-01", change(Lifecycle::Retired), today).unwrap_err();
        assert!(err.to_string().contains("only current"), "{err}");
        let err = lifecycle::plan(&r, "2099-01-01", change(Lifecycle::Current), today).unwrap_err();
        assert!(matches!(err, LifecycleError::NotFound(_)));
    }

    #[test]
    fn deprecation_needs_a_current_newer_successor_and_fills_in_dates() {
        let today = date!(2026 - 11 - 24);
        let r = Registry::builtin();
        // The successor (2027-01-15) is still preview.
        let err = lifecycle::plan(&r, "2026-11-01", change(Lifecycle::Deprecated), today).unwrap_err();
        assert!(err.to_string().contains("only current"), "{err}");

        let next = lifecycle::plan(&r, "2027-01-15", change(Lifecycle::Current), today).unwrap();
        let r = with(&r, "2027-01-15", next);
        let err = lifecycle::plan(&r, "2027-01-15", change(Lifecycle::Deprecated), today).unwrap_err();
        assert!(err.to_string().contains("newest version"), "{err}");

        let status = lifecycle::plan(&r, "2026-11-01", change(Lifecycle::Deprecated), today).unwrap();
        assert_eq!(status.deprecation, Some(today));
        assert_eq!(status.sunset, Some(date!(2027 - 05 - 23)));
        assert_eq!(status.successor.as_deref(), Some("2027-01-15"));

        let mut bad = change(Lifecycle::Deprecated);
        bad.sunset = Some(date!(2026 - 01 - 01));
        let err = lifecycle::plan(&r, "2026-11-01", bad, today).unwrap_err();
        assert!(matches!(err, LifecycleError::Invalid { field: "sunset", .. }), "{err}");

        let mut bad = change(Lifecycle::Deprecated);
        bad.successor = Some("2026-11-01".into());
        let err = lifecycle::plan(&r, "2026-11-01", bad, today).unwrap_err();
        assert!(
            matches!(err, LifecycleError::Invalid { field: "successor", .. }),
            "{err}"
        );

        // Retiring keeps the dates already announced.
        let deprecated = with(&r, "2026-11-01", status.clone());
        let retired = lifecycle::plan(&deprecated, "2026-11-01", change(Lifecycle::Retired), today).unwrap();
        assert_eq!(
            (retired.deprecation, retired.sunset),
            (status.deprecation, status.sunset)
        );

        let mut dated = change(Lifecycle::Current);
        dated.sunset = Some(date!(2028 - 01 - 01));
        let err = lifecycle::plan(&r, "2026-11-01", dated, today).unwrap_err();
        assert!(matches!(err, LifecycleError::Invalid { field: "sunset", .. }), "{err}");
    }

    #[test]
    fn overrides_apply_and_bad_rows_are_ignored() {
        let row = |version: &str, lifecycle: &str| VersionOverride {
            version: version.into(),
            lifecycle: lifecycle.into(),
            deprecation: None,
            sunset: None,
            successor: None,
            updated_at: "2026-11-24T00:00:00.000Z".into(),
        };
        let r = Registry::with_overrides(&[
            row("2027-01-15", "current"),
            row("2026-11-01", "retired"),
            row("2030-01-01", "current"),
            row("2026-11-01", "bogus"),
        ]);
        assert_eq!(
            r.get("2027-01-15").map(|v| v.status.lifecycle),
            Some(Lifecycle::Current)
        );
        assert_eq!(
            r.get("2026-11-01").map(|v| v.status.lifecycle),
            Some(Lifecycle::Retired)
        );
        assert_eq!(r.supported(), vec!["2027-01-15"]);
        assert_eq!(r.fallback(), "2027-01-15");
        assert_eq!(r.versions().len(), 2);
    }
}
