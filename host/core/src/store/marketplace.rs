//! Marketplace storage: publishers, their keys and upload tokens, published packages
//! (the signed package file itself, content-addressed by digest), and reviews.
//! Publishers and packages are global (the operator's); reviews belong to tenants.

use serde::Serialize;
use sqlx::Row;

use super::{Db, StoreError, StoreResult, time};

/// A publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publisher {
    /// Id: what manifests name in `plugin.publisher`.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Registration time.
    pub created_at: String,
    /// Its keys.
    pub keys: Vec<PublisherKey>,
}

/// One of a publisher's signing keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublisherKey {
    /// Key id (first 8 bytes of SHA-256 of the public key, hex).
    pub key_id: String,
    /// `ed25519:<base64>`.
    pub public_key: String,
    /// `active`, `retired` (valid for what it signed, signs nothing new) or `revoked`.
    pub status: String,
    /// When added.
    pub added_at: String,
    /// When retired.
    pub retired_at: Option<String>,
    /// When revoked.
    pub revoked_at: Option<String>,
}

/// A published package version (metadata; the file via [`Db::package_file`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageRow {
    /// SHA-256 content address.
    pub digest: String,
    /// Plugin id.
    pub plugin_id: String,
    /// Version.
    pub version: String,
    /// Publisher.
    pub publisher_id: String,
    /// Signing key.
    pub key_id: String,
    /// Plugin name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Categories (JSON array text).
    #[serde(skip)]
    pub categories: String,
    /// `plugin.toml` text.
    #[serde(skip)]
    pub manifest: String,
    /// Package file size in bytes.
    pub size: i64,
    /// Publication time.
    pub published_at: String,
}

/// A new package row.
#[derive(Debug, Clone)]
pub struct NewPackage<'a> {
    /// Digest.
    pub digest: &'a str,
    /// Plugin id.
    pub plugin_id: &'a str,
    /// Version.
    pub version: &'a semver::Version,
    /// Publisher.
    pub publisher_id: &'a str,
    /// Key id.
    pub key_id: &'a str,
    /// Name.
    pub name: &'a str,
    /// Description.
    pub description: &'a str,
    /// Categories.
    pub categories: &'a [String],
    /// Manifest text.
    pub manifest: &'a str,
    /// The encoded package.
    pub file: &'a [u8],
}

/// A tenant's review of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    /// Plugin id.
    pub plugin_id: String,
    /// 1–5.
    pub rating: i64,
    /// Plain text (never interpreted as HTML by the host).
    pub body: String,
    /// Created.
    pub created_at: String,
    /// Last edit.
    pub updated_at: String,
}

/// Catalog sort orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogSort {
    /// Highest average rating first.
    Rating,
    /// Most active installations first.
    Installs,
    /// Most recently published first.
    Recent,
    /// By plugin id.
    Name,
}

/// One plugin in the catalog: its latest version plus summary figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogEntry {
    /// Plugin id.
    pub id: String,
    /// Latest version's name.
    pub name: String,
    /// Latest version's description.
    pub description: String,
    /// Latest version's categories.
    pub categories: Vec<String>,
    /// Publisher.
    pub publisher: String,
    /// Latest version.
    pub latest_version: String,
    /// When the latest version was published.
    pub updated_at: String,
    /// Average rating (null without reviews).
    pub rating: Option<f64>,
    /// Number of reviews.
    pub reviews: i64,
    /// Tenants with it installed (not uninstalled).
    pub installs: i64,
}

/// A semver version as a string that sorts like the version (pre-releases before
/// their release; pre-release identifiers compared as text).
pub fn version_order(v: &semver::Version) -> String {
    let pre = if v.pre.is_empty() {
        "~".to_string()
    } else {
        format!("-{}", v.pre)
    };
    format!("{:010}.{:010}.{:010}{pre}", v.major, v.minor, v.patch)
}

const PACKAGE_COLUMNS: &str =
    "digest, plugin_id, version, publisher_id, key_id, name, description, categories, manifest, size, published_at";

fn package_from(r: &sqlx::any::AnyRow) -> StoreResult<PackageRow> {
    Ok(PackageRow {
        digest: r.try_get("digest")?,
        plugin_id: r.try_get("plugin_id")?,
        version: r.try_get("version")?,
        publisher_id: r.try_get("publisher_id")?,
        key_id: r.try_get("key_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        categories: r.try_get("categories")?,
        manifest: r.try_get("manifest")?,
        size: r.try_get("size")?,
        published_at: r.try_get("published_at")?,
    })
}

impl Db {
    /// Register a publisher (conflict if the id exists).
    pub async fn insert_publisher(&self, id: &str, display_name: &str) -> StoreResult<()> {
        let result =
            sqlx::query("INSERT INTO publishers (id, display_name, status, created_at) VALUES ($1, $2, 'active', $3)")
                .bind(id)
                .bind(display_name)
                .bind(time::now())
                .execute(self.writer())
                .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if super::is_unique_violation(&e) => Err(StoreError::Conflict(format!("publisher `{id}` exists"))),
            Err(e) => Err(e.into()),
        }
    }

    /// A publisher with its keys.
    pub async fn publisher(&self, id: &str) -> StoreResult<Option<Publisher>> {
        let Some(row) = sqlx::query("SELECT id, display_name, status, created_at FROM publishers WHERE id = $1")
            .bind(id)
            .fetch_optional(self.reader())
            .await?
        else {
            return Ok(None);
        };
        let keys = sqlx::query(
            "SELECT key_id, public_key, status, added_at, retired_at, revoked_at FROM publisher_keys \
             WHERE publisher_id = $1 ORDER BY added_at, key_id",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|r| {
            Ok(PublisherKey {
                key_id: r.try_get("key_id")?,
                public_key: r.try_get("public_key")?,
                status: r.try_get("status")?,
                added_at: r.try_get("added_at")?,
                retired_at: r.try_get("retired_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(Publisher {
            id: row.try_get("id")?,
            display_name: row.try_get("display_name")?,
            status: row.try_get("status")?,
            created_at: row.try_get("created_at")?,
            keys,
        }))
    }

    /// Every publisher id, sorted.
    pub async fn publisher_ids(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM publishers ORDER BY id")
            .fetch_all(self.reader())
            .await?)
    }

    /// Add a key to a publisher (conflict if the key id is already registered).
    pub async fn insert_publisher_key(&self, publisher: &str, key_id: &str, public_key: &str) -> StoreResult<()> {
        let result = sqlx::query(
            "INSERT INTO publisher_keys (key_id, publisher_id, public_key, status, added_at) VALUES ($1, $2, $3, 'active', $4)",
        )
        .bind(key_id)
        .bind(publisher)
        .bind(public_key)
        .bind(time::now())
        .execute(self.writer())
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if super::is_unique_violation(&e) => {
                Err(StoreError::Conflict(format!("key {key_id} is already registered")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Retire or revoke a key. Returns false if the publisher has no such key.
    pub async fn set_key_status(&self, publisher: &str, key_id: &str, status: &str) -> StoreResult<bool> {
        let column = match status {
            "retired" => "retired_at",
            "revoked" => "revoked_at",
            _ => return Err(StoreError::Invalid(format!("unknown key status {status}"))),
        };
        let done = sqlx::query(&format!(
            "UPDATE publisher_keys SET status = $3, {column} = $4 WHERE publisher_id = $1 AND key_id = $2"
        ))
        .bind(publisher)
        .bind(key_id)
        .bind(status)
        .bind(time::now())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Store a publisher upload token (by hash).
    pub async fn insert_publisher_token(&self, publisher: &str, secret_hash: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO publisher_tokens (id, publisher_id, secret_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(ulid::Ulid::new().to_string())
            .bind(publisher)
            .bind(secret_hash)
            .bind(time::now())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// The publisher an upload token belongs to.
    pub async fn publisher_for_token(&self, secret_hash: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT t.publisher_id FROM publisher_tokens t JOIN publishers p ON p.id = t.publisher_id \
             WHERE t.secret_hash = $1 AND t.revoked_at IS NULL AND p.status = 'active'",
        )
        .bind(secret_hash)
        .fetch_optional(self.reader())
        .await?)
    }

    /// Store a published package (conflict if the digest or id+version exists).
    pub async fn insert_package(&self, p: NewPackage<'_>) -> StoreResult<()> {
        let categories = serde_json::to_string(p.categories).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let result = sqlx::query(
            "INSERT INTO packages (digest, plugin_id, version, version_order, publisher_id, key_id, name, description, \
             categories, manifest, package, size, published_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(p.digest)
        .bind(p.plugin_id)
        .bind(p.version.to_string())
        .bind(version_order(p.version))
        .bind(p.publisher_id)
        .bind(p.key_id)
        .bind(p.name)
        .bind(p.description)
        .bind(categories)
        .bind(p.manifest)
        .bind(p.file.to_vec())
        .bind(i64::try_from(p.file.len()).unwrap_or(i64::MAX))
        .bind(time::now())
        .execute(self.writer())
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if super::is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "{} {} is already published",
                p.plugin_id, p.version
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A package's metadata by digest.
    pub async fn package(&self, digest: &str) -> StoreResult<Option<PackageRow>> {
        let row = sqlx::query(&format!("SELECT {PACKAGE_COLUMNS} FROM packages WHERE digest = $1"))
            .bind(digest)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(package_from).transpose()
    }

    /// A package's metadata by plugin and version.
    pub async fn package_version(&self, plugin: &str, version: &str) -> StoreResult<Option<PackageRow>> {
        let row = sqlx::query(&format!(
            "SELECT {PACKAGE_COLUMNS} FROM packages WHERE plugin_id = $1 AND version = $2"
        ))
        .bind(plugin)
        .bind(version)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(package_from).transpose()
    }

    /// The encoded package file.
    pub async fn package_file(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("SELECT package FROM packages WHERE digest = $1")
            .bind(digest)
            .fetch_optional(self.reader())
            .await?)
    }

    /// Every version of a plugin, newest first.
    pub async fn package_versions(&self, plugin: &str) -> StoreResult<Vec<PackageRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {PACKAGE_COLUMNS} FROM packages WHERE plugin_id = $1 ORDER BY version_order DESC"
        ))
        .bind(plugin)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(package_from).collect()
    }

    /// Digests of packages signed by a key.
    pub async fn packages_signed_by(&self, key_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT digest FROM packages WHERE key_id = $1")
            .bind(key_id)
            .fetch_all(self.reader())
            .await?)
    }

    /// The catalog: each plugin's latest version with rating and install figures.
    /// `text` matches id, name or description (case-insensitive); `category` matches
    /// one of the latest version's categories.
    pub async fn catalog(
        &self,
        text: Option<&str>,
        category: Option<&str>,
        sort: CatalogSort,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<CatalogEntry>> {
        let mut b = super::sql::Builder::new(
            "SELECT p.plugin_id, p.name, p.description, p.categories, p.publisher_id, p.version, p.published_at, \
             (SELECT AVG(CAST(r.rating AS DOUBLE PRECISION)) FROM reviews r WHERE r.plugin_id = p.plugin_id) AS rating, \
             (SELECT COUNT(*) FROM reviews r WHERE r.plugin_id = p.plugin_id) AS reviews, \
             (SELECT COUNT(*) FROM installations i WHERE i.plugin_id = p.plugin_id AND i.uninstalled_at IS NULL) AS installs \
             FROM packages p WHERE p.version_order = \
             (SELECT MAX(q.version_order) FROM packages q WHERE q.plugin_id = p.plugin_id)",
        );
        if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
            let escaped = text
                .trim()
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let pat = b.text(format!("%{escaped}%"));
            b.push(&format!(
                " AND (lower(p.plugin_id) LIKE {pat} ESCAPE '\\' OR lower(p.name) LIKE {pat} ESCAPE '\\' \
                 OR lower(p.description) LIKE {pat} ESCAPE '\\')"
            ));
        }
        if let Some(category) = category {
            let pat = b.text(format!("%\"{}\"%", category.replace('"', "")));
            b.push(&format!(" AND p.categories LIKE {pat}"));
        }
        b.push(match sort {
            CatalogSort::Rating => " ORDER BY rating DESC NULLS LAST, p.plugin_id",
            CatalogSort::Installs => " ORDER BY installs DESC, p.plugin_id",
            CatalogSort::Recent => " ORDER BY p.published_at DESC, p.plugin_id",
            CatalogSort::Name => " ORDER BY p.plugin_id",
        });
        let l = b.arg(super::sql::Arg::Int(limit));
        let o = b.arg(super::sql::Arg::Int(offset));
        b.push(&format!(" LIMIT {l} OFFSET {o}"));
        let rows = b.query().fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                let categories: String = r.try_get("categories")?;
                Ok(CatalogEntry {
                    id: r.try_get("plugin_id")?,
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    categories: serde_json::from_str(&categories).unwrap_or_default(),
                    publisher: r.try_get("publisher_id")?,
                    latest_version: r.try_get("version")?,
                    updated_at: r.try_get("published_at")?,
                    rating: r.try_get::<Option<f64>, _>("rating")?,
                    reviews: r.try_get("reviews")?,
                    installs: r.try_get("installs")?,
                })
            })
            .collect()
    }

    /// Reviews of a plugin, newest first.
    pub async fn reviews(&self, plugin: &str, limit: i64) -> StoreResult<Vec<Review>> {
        let rows = sqlx::query(
            "SELECT plugin_id, rating, body, created_at, updated_at FROM reviews WHERE plugin_id = $1 \
             ORDER BY updated_at DESC LIMIT $2",
        )
        .bind(plugin)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Review {
                    plugin_id: r.try_get("plugin_id")?,
                    rating: r.try_get("rating")?,
                    body: r.try_get("body")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Create or replace the tenant's review of a plugin inside `tx`; returns the
    /// previous review, if any.
    pub async fn upsert_review(
        &self,
        tx: &mut super::Tx<'_>,
        tenant: &str,
        plugin: &str,
        rating: i64,
        body: &str,
    ) -> StoreResult<(Option<Review>, Review)> {
        let before = review_in(tx, tenant, plugin).await?;
        let now = time::now();
        sqlx::query(
            "INSERT INTO reviews (tenant_id, plugin_id, rating, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (tenant_id, plugin_id) DO UPDATE SET rating = excluded.rating, body = excluded.body, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(plugin)
        .bind(rating)
        .bind(body)
        .bind(&now)
        .execute(&mut **tx)
        .await?;
        let after = review_in(tx, tenant, plugin)
            .await?
            .ok_or_else(|| StoreError::NotFound("review".into()))?;
        Ok((before, after))
    }

    /// Delete the tenant's review inside `tx`; returns it, if there was one.
    pub async fn delete_review(
        &self,
        tx: &mut super::Tx<'_>,
        tenant: &str,
        plugin: &str,
    ) -> StoreResult<Option<Review>> {
        let before = review_in(tx, tenant, plugin).await?;
        sqlx::query("DELETE FROM reviews WHERE tenant_id = $1 AND plugin_id = $2")
            .bind(tenant)
            .bind(plugin)
            .execute(&mut **tx)
            .await?;
        Ok(before)
    }
}

async fn review_in(tx: &mut super::Tx<'_>, tenant: &str, plugin: &str) -> StoreResult<Option<Review>> {
    let row = sqlx::query(
        "SELECT plugin_id, rating, body, created_at, updated_at FROM reviews WHERE tenant_id = $1 AND plugin_id = $2",
    )
    .bind(tenant)
    .bind(plugin)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        Ok(Review {
            plugin_id: row.try_get("plugin_id")?,
            rating: row.try_get("rating")?,
            body: row.try_get("body")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::version_order;

    #[test]
    fn version_order_sorts_like_semver() {
        let mut versions: Vec<semver::Version> = [
            "1.10.0",
            "1.2.0",
            "1.2.0-beta.1",
            "0.9.9",
            "2.0.0-rc.1",
            "2.0.0",
            "1.2.0-alpha",
        ]
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
        let mut by_text = versions.clone();
        versions.sort();
        by_text.sort_by_key(version_order);
        assert_eq!(versions, by_text);
    }
}
