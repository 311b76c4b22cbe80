//! Operator overrides of API version lifecycles (table `api_versions`). The versions
//! themselves and their default lifecycles are defined in code
//! (`crate::versioning`); a row here replaces one version's lifecycle, dates and
//! successor. The table is global: versions are not tenant-owned.

use sqlx::Row;

use super::{Db, StoreResult};

/// A stored lifecycle override of one version. Dates are `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionOverride {
    /// The version, e.g. `2026-11-01`.
    pub version: String,
    /// `preview`, `current`, `deprecated` or `retired`.
    pub lifecycle: String,
    /// When the version was (or will be) deprecated.
    pub deprecation: Option<String>,
    /// When the version stops (or stopped) being served.
    pub sunset: Option<String>,
    /// The version clients should move to.
    pub successor: Option<String>,
    /// When the override was written.
    pub updated_at: String,
}

impl Db {
    /// Every stored override, by version.
    pub async fn version_overrides(&self) -> StoreResult<Vec<VersionOverride>> {
        let rows = sqlx::query(
            "SELECT version, lifecycle, deprecation, sunset, successor, updated_at FROM api_versions ORDER BY version",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(VersionOverride {
                    version: r.try_get("version")?,
                    lifecycle: r.try_get("lifecycle")?,
                    deprecation: r.try_get("deprecation")?,
                    sunset: r.try_get("sunset")?,
                    successor: r.try_get("successor")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Insert or replace the override of `o.version`.
    pub async fn put_version_override(&self, o: &VersionOverride) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_versions (version, lifecycle, deprecation, sunset, successor, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (version) DO UPDATE SET \
             lifecycle = excluded.lifecycle, deprecation = excluded.deprecation, sunset = excluded.sunset, \
             successor = excluded.successor, updated_at = excluded.updated_at",
        )
        .bind(&o.version)
        .bind(&o.lifecycle)
        .bind(o.deprecation.as_deref())
        .bind(o.sunset.as_deref())
        .bind(o.successor.as_deref())
        .bind(&o.updated_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
