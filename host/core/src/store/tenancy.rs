//! Tenants, users, API keys and operator tokens. Secrets never reach this module:
//! callers pass the SHA-256 of a secret, and lookups go by that hash.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::{Db, StoreError, StoreResult, time};

/// Transaction type used across repositories.
pub type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// API version used when neither the request nor the key names one.
    pub default_api_version: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Creation time.
    pub created_at: String,
}

/// A user of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Tenant.
    #[serde(skip)]
    pub tenant_id: String,
    /// Id.
    pub id: String,
    /// Email, unique in the tenant.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `owner`, `admin`, `manager`, `member` or `read-only`.
    pub role: String,
    /// `active` or `disabled`.
    pub status: String,
    /// The user they report to, in the same tenant.
    pub manager_id: Option<String>,
    /// Their locale (BCP 47, e.g. `de-DE`).
    pub locale: Option<String>,
    /// Their IANA time zone (e.g. `Europe/Berlin`).
    pub time_zone: Option<String>,
    /// Version for optimistic concurrency.
    pub version: i64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// An API key's metadata (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Tenant.
    #[serde(skip)]
    pub tenant_id: String,
    /// Id.
    pub id: String,
    /// The user it acts as.
    pub user_id: String,
    /// Name given at creation.
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    /// Pinned API version, if any.
    pub api_version: Option<String>,
    /// Who created it.
    pub created_by: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last time it authenticated a request (updated at most once a minute).
    pub last_used_at: Option<String>,
    /// Expiry, if any.
    pub expires_at: Option<String>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<String>,
}

/// Everything a request needs to know about the key that authenticated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedKey {
    /// Tenant.
    pub tenant_id: String,
    /// Tenant status.
    pub tenant_status: String,
    /// The tenant's default API version.
    pub tenant_api_version: String,
    /// Key id.
    pub key_id: String,
    /// The key's pinned API version.
    pub key_api_version: Option<String>,
    /// Expiry.
    pub expires_at: Option<String>,
    /// Revocation.
    pub revoked_at: Option<String>,
    /// The user.
    pub user_id: String,
    /// The user's role.
    pub role: String,
    /// The user's status.
    pub user_status: String,
}

const USER_COLUMNS: &str =
    "tenant_id, id, email, name, role, status, manager_id, locale, time_zone, version, created_at, updated_at";
/// [`USER_COLUMNS`] of the table aliased `u`.
fn user_columns_of_u() -> String {
    USER_COLUMNS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const KEY_COLUMNS: &str =
    "tenant_id, id, user_id, name, prefix, api_version, created_by, created_at, last_used_at, expires_at, revoked_at";

fn user_from(r: &sqlx::any::AnyRow) -> StoreResult<User> {
    Ok(User {
        tenant_id: r.try_get("tenant_id")?,
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        status: r.try_get("status")?,
        manager_id: r.try_get("manager_id")?,
        locale: r.try_get("locale")?,
        time_zone: r.try_get("time_zone")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn key_from(r: &sqlx::any::AnyRow) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        tenant_id: r.try_get("tenant_id")?,
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        api_version: r.try_get("api_version")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn tenant_from(r: &sqlx::any::AnyRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        default_api_version: r.try_get("default_api_version")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Create a tenant and its audit chain.
pub async fn insert_tenant(tx: &mut Tx<'_>, name: &str, default_api_version: &str) -> StoreResult<Tenant> {
    let tenant = Tenant {
        id: ulid::Ulid::new().to_string(),
        name: name.to_string(),
        default_api_version: default_api_version.to_string(),
        status: "active".into(),
        created_at: time::now(),
    };
    sqlx::query("INSERT INTO tenants (id, name, default_api_version, status, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&tenant.id)
        .bind(&tenant.name)
        .bind(&tenant.default_api_version)
        .bind(&tenant.status)
        .bind(&tenant.created_at)
        .execute(&mut **tx)
        .await?;
    super::audit::init_chain(tx, &tenant.id).await?;
    Ok(tenant)
}

/// Create a user. A duplicate email in the tenant is a conflict.
pub async fn insert_user(tx: &mut Tx<'_>, tenant: &str, email: &str, name: &str, role: &str) -> StoreResult<User> {
    let now = time::now();
    let user = User {
        tenant_id: tenant.to_string(),
        id: ulid::Ulid::new().to_string(),
        email: email.to_string(),
        name: name.to_string(),
        role: role.to_string(),
        status: "active".into(),
        manager_id: None,
        locale: None,
        time_zone: None,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    let result = sqlx::query(
        "INSERT INTO users (tenant_id, id, email, name, role, status, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8)",
    )
    .bind(tenant)
    .bind(&user.id)
    .bind(email)
    .bind(name)
    .bind(role)
    .bind(&user.status)
    .bind(&user.created_at)
    .bind(&user.updated_at)
    .execute(&mut **tx)
    .await;
    match result {
        Ok(_) => Ok(user),
        Err(e) if super::is_unique_violation(&e) => Err(StoreError::Conflict(format!(
            "a user with email {email} already exists"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Fields of a new API key (the secret itself is hashed by the caller).
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    /// The user it acts as.
    pub user_id: &'a str,
    /// A name.
    pub name: &'a str,
    /// SHA-256 (hex) of the secret.
    pub secret_hash: &'a str,
    /// Display prefix of the secret.
    pub prefix: &'a str,
    /// Pinned API version.
    pub api_version: Option<&'a str>,
    /// Creator.
    pub created_by: Option<&'a str>,
    /// Expiry.
    pub expires_at: Option<&'a str>,
}

/// Store a new API key.
pub async fn insert_key(tx: &mut Tx<'_>, tenant: &str, key: NewKey<'_>) -> StoreResult<ApiKey> {
    let stored = ApiKey {
        tenant_id: tenant.to_string(),
        id: ulid::Ulid::new().to_string(),
        user_id: key.user_id.to_string(),
        name: key.name.to_string(),
        prefix: key.prefix.to_string(),
        api_version: key.api_version.map(str::to_string),
        created_by: key.created_by.map(str::to_string),
        created_at: time::now(),
        last_used_at: None,
        expires_at: key.expires_at.map(str::to_string),
        revoked_at: None,
    };
    sqlx::query(
        "INSERT INTO api_keys (tenant_id, id, user_id, name, secret_hash, prefix, api_version, created_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(tenant)
    .bind(&stored.id)
    .bind(key.user_id)
    .bind(key.name)
    .bind(key.secret_hash)
    .bind(key.prefix)
    .bind(key.api_version)
    .bind(key.created_by)
    .bind(&stored.created_at)
    .bind(key.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(stored)
}

fn lock_clause(conn: &AnyConnection) -> &'static str {
    if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        " FOR UPDATE"
    } else {
        ""
    }
}

/// A user, row-locked until the transaction ends (PostgreSQL), for read-check-write.
pub async fn lock_user(tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<Option<User>> {
    let lock = lock_clause(tx);
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2{lock}"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(user_from).transpose()
}

/// Ids of the tenant's active owners, row-locked (PostgreSQL) so that two concurrent
/// demotions cannot both see "another owner remains" and leave none.
pub async fn lock_active_owners(tx: &mut Tx<'_>, tenant: &str) -> StoreResult<Vec<String>> {
    let lock = lock_clause(tx);
    Ok(sqlx::query_scalar(&format!(
        "SELECT id FROM users WHERE tenant_id = $1 AND role = 'owner' AND status = 'active' ORDER BY id{lock}"
    ))
    .bind(tenant)
    .fetch_all(&mut **tx)
    .await?)
}

/// Write a user's changeable fields — name, role, status, manager, locale, time zone —
/// from `next` (bumps the version); returns the new state.
pub async fn update_user(tx: &mut Tx<'_>, next: &User) -> StoreResult<User> {
    let done = sqlx::query(
        "UPDATE users SET name = $3, role = $4, status = $5, manager_id = $6, locale = $7, time_zone = $8, \
         version = version + 1, updated_at = $9 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(&next.tenant_id)
    .bind(&next.id)
    .bind(&next.name)
    .bind(&next.role)
    .bind(&next.status)
    .bind(&next.manager_id)
    .bind(&next.locale)
    .bind(&next.time_zone)
    .bind(time::now())
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("user {} not found", next.id)));
    }
    lock_user(tx, &next.tenant_id, &next.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {} not found", next.id)))
}

/// Deepest management chain the directory walks: deeper chains are cut off there
/// (real ones are a handful of levels; this bounds the walk on any data).
pub const MAX_CHAIN: u32 = 100;

/// `id`'s managers, nearest first, at most `levels` (≤ [`MAX_CHAIN`]) of them; on any
/// connection, so a write can check a new manager inside its transaction.
pub async fn manager_chain(conn: &mut AnyConnection, tenant: &str, id: &str, levels: u32) -> StoreResult<Vec<User>> {
    let columns = user_columns_of_u();
    let rows = sqlx::query(&format!(
        "WITH RECURSIVE chain(id, manager_id, depth) AS ( \
             SELECT id, manager_id, 0 FROM users WHERE tenant_id = $1 AND id = $2 \
             UNION ALL \
             SELECT u.id, u.manager_id, c.depth + 1 FROM users u JOIN chain c \
               ON u.tenant_id = $1 AND u.id = c.manager_id WHERE c.depth < $3 \
         ) \
         SELECT {columns} FROM chain c JOIN users u ON u.tenant_id = $1 AND u.id = c.id \
         WHERE c.depth > 0 ORDER BY c.depth"
    ))
    .bind(tenant)
    .bind(id)
    .bind(i64::from(levels.min(MAX_CHAIN)))
    .fetch_all(conn)
    .await?;
    rows.iter().map(user_from).collect()
}

/// An API key's metadata, read on any connection (e.g. inside a transaction).
pub async fn key(conn: &mut AnyConnection, tenant: &str, id: &str) -> StoreResult<Option<ApiKey>> {
    let row = sqlx::query(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(key_from).transpose()
}

/// Revoke a key now. Returns the key as revoked; an already revoked key is a conflict.
pub async fn revoke_key(tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<ApiKey> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL")
            .bind(tenant)
            .bind(id)
            .bind(time::now())
            .execute(&mut **tx)
            .await?;
    let current = key(tx, tenant, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("API key {id} not found")))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!("API key {id} is already revoked")));
    }
    Ok(current)
}

/// A tenant, row-locked until the transaction ends (PostgreSQL).
pub async fn lock_tenant(tx: &mut Tx<'_>, id: &str) -> StoreResult<Option<Tenant>> {
    // NO KEY UPDATE: does not block the KEY SHARE locks of foreign-key checks.
    let lock = if lock_clause(tx).is_empty() {
        ""
    } else {
        " FOR NO KEY UPDATE"
    };
    let row = sqlx::query(&format!(
        "SELECT id, name, default_api_version, status, created_at FROM tenants WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(tenant_from).transpose()
}

/// Set a tenant's name and status; returns the new state.
pub async fn update_tenant(tx: &mut Tx<'_>, id: &str, name: &str, status: &str) -> StoreResult<Tenant> {
    let done = sqlx::query("UPDATE tenants SET name = $2, status = $3 WHERE id = $1")
        .bind(id)
        .bind(name)
        .bind(status)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("tenant {id} not found")));
    }
    lock_tenant(tx, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {id} not found")))
}

impl Db {
    /// Look up the key whose secret hashes to `secret_hash`, with its user and tenant.
    pub async fn resolve_key(&self, secret_hash: &str) -> StoreResult<Option<ResolvedKey>> {
        let row = sqlx::query(
            "SELECT k.tenant_id, t.status AS tenant_status, t.default_api_version, k.id AS key_id, \
                    k.api_version AS key_api_version, k.expires_at, k.revoked_at, \
                    u.id AS user_id, u.role, u.status AS user_status \
             FROM api_keys k \
             JOIN tenants t ON t.id = k.tenant_id \
             JOIN users u ON u.tenant_id = k.tenant_id AND u.id = k.user_id \
             WHERE k.secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            Ok(ResolvedKey {
                tenant_id: r.try_get("tenant_id")?,
                tenant_status: r.try_get("tenant_status")?,
                tenant_api_version: r.try_get("default_api_version")?,
                key_id: r.try_get("key_id")?,
                key_api_version: r.try_get("key_api_version")?,
                expires_at: r.try_get("expires_at")?,
                revoked_at: r.try_get("revoked_at")?,
                user_id: r.try_get("user_id")?,
                role: r.try_get("role")?,
                user_status: r.try_get("user_status")?,
            })
        })
        .transpose()
    }

    /// Record when keys were last used (batched by the caller, off the request path).
    pub async fn touch_keys(&self, uses: &[(String, String, String)]) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await?;
        for (tenant, key, at) in uses {
            sqlx::query("UPDATE api_keys SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(key)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A tenant by id.
    pub async fn tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query("SELECT id, name, default_api_version, status, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(tenant_from).transpose()
    }

    /// All tenants, in creation order.
    pub async fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query("SELECT id, name, default_api_version, status, created_at FROM tenants ORDER BY id")
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(tenant_from).collect()
    }

    /// A user of `tenant`.
    pub async fn user(&self, tenant: &str, id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(user_from).transpose()
    }

    /// Users of `tenant` in id order, after `after`, at most `limit`.
    /// `id`'s managers, nearest first, at most `levels` of them.
    pub async fn manager_chain(&self, tenant: &str, id: &str, levels: u32) -> StoreResult<Vec<User>> {
        let mut conn = self.reader().acquire().await?;
        manager_chain(&mut conn, tenant, id, levels).await
    }

    /// The users who report to `id` directly, by id, after `after`, at most `limit`.
    pub async fn direct_reports(
        &self,
        tenant: &str,
        id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND manager_id = $2 AND id > $3 ORDER BY id LIMIT $4"
        ))
        .bind(tenant)
        .bind(id)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(user_from).collect()
    }

    /// The direct members of group `group`, as users, by id, after `after`, at most
    /// `limit`; `None` when the tenant has no such group.
    pub async fn group_people(
        &self,
        tenant: &str,
        group: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Option<Vec<User>>> {
        let mut conn = self.reader().acquire().await?;
        if super::groups::group(&mut conn, tenant, group).await?.is_none() {
            return Ok(None);
        }
        let columns = user_columns_of_u();
        let rows = sqlx::query(&format!(
            "SELECT {columns} FROM group_members m JOIN users u ON u.tenant_id = m.tenant_id AND u.id = m.user_id \
             WHERE m.tenant_id = $1 AND m.group_id = $2 AND u.id > $3 ORDER BY u.id LIMIT $4"
        ))
        .bind(tenant)
        .bind(group)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(user_from).collect::<StoreResult<Vec<_>>>().map(Some)
    }

    /// Everyone below `id` in the management tree (reports, their reports, … down to
    /// [`MAX_CHAIN`] levels), by id, after `after`, at most `limit`.
    pub async fn all_reports(&self, tenant: &str, id: &str, after: Option<&str>, limit: i64) -> StoreResult<Vec<User>> {
        let columns = user_columns_of_u();
        let rows = sqlx::query(&format!(
            "WITH RECURSIVE below(id, depth) AS ( \
                 SELECT id, 1 FROM users WHERE tenant_id = $1 AND manager_id = $2 \
                 UNION \
                 SELECT u.id, b.depth + 1 FROM users u JOIN below b \
                   ON u.tenant_id = $1 AND u.manager_id = b.id WHERE b.depth < $5 \
             ) \
             SELECT DISTINCT {columns} FROM below b JOIN users u ON u.tenant_id = $1 AND u.id = b.id \
             WHERE u.id > $3 AND u.id <> $2 ORDER BY u.id LIMIT $4"
        ))
        .bind(tenant)
        .bind(id)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .bind(i64::from(MAX_CHAIN))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(user_from).collect()
    }

    pub async fn users(&self, tenant: &str, after: Option<&str>, limit: i64) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(user_from).collect()
    }

    /// An API key's metadata.
    pub async fn api_key(&self, tenant: &str, id: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(key_from).transpose()
    }

    /// API keys of `tenant` in id order, after `after`, at most `limit`.
    pub async fn api_keys(&self, tenant: &str, after: Option<&str>, limit: i64) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(key_from).collect()
    }

    /// Tenants in id order after `after`, at most `limit` (operator listing).
    pub async fn tenants_page(&self, after: Option<&str>, limit: i64) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query(
            "SELECT id, name, default_api_version, status, created_at FROM tenants WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(tenant_from).collect()
    }

    /// API keys of one user of `tenant` in id order, after `after`, at most `limit`.
    pub async fn api_keys_of_user(
        &self,
        tenant: &str,
        user: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND user_id = $2 AND id > $3 ORDER BY id LIMIT $4"
        ))
        .bind(tenant)
        .bind(user)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(key_from).collect()
    }

    /// Store a new operator token (by hash).
    pub async fn insert_operator_token(&self, secret_hash: &str) -> StoreResult<String> {
        let id = ulid::Ulid::new().to_string();
        sqlx::query("INSERT INTO operator_tokens (id, secret_hash, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(secret_hash)
            .bind(time::now())
            .execute(self.writer())
            .await?;
        Ok(id)
    }

    /// Whether an unrevoked operator token has this hash.
    pub async fn operator_token_valid(&self, secret_hash: &str) -> StoreResult<bool> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM operator_tokens WHERE secret_hash = $1 AND revoked_at IS NULL")
                .bind(secret_hash)
                .fetch_optional(self.reader())
                .await?;
        Ok(found.is_some())
    }
}
