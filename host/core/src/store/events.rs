//! The event log's storage: appending an event inside the writer's transaction (so
//! nothing commits without its event, and nothing is logged that did not commit) and
//! reading a tenant's log in order.
//!
//! `seq` is per tenant and follows commit order: every append bumps the tenant's
//! `event_heads` row, whose lock (PostgreSQL) or the single writer (SQLite) is held
//! until the transaction ends, so a later `seq` always commits later.

use serde::Serialize;
use sqlx::Row;

use super::{Db, StoreResult, Tx, time};

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent<'a> {
    /// Dotted name, e.g. `record.opportunity.updated`.
    pub name: &'a str,
    /// JSON payload text.
    pub payload: &'a str,
    /// The plugin whose write caused it.
    pub cause: Option<&'a str>,
    /// Event hops that led here.
    pub depth: i64,
    /// The user whose write caused it.
    pub user_id: Option<&'a str>,
    /// The request that made the write.
    pub request_id: Option<&'a str>,
    /// That request's API version.
    pub api_version: Option<&'a str>,
}

/// A logged event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    /// Tenant.
    #[serde(skip)]
    pub tenant_id: String,
    /// Position in the tenant's log, from 1, in commit order.
    pub seq: i64,
    /// Unique id (stable across redeliveries).
    pub id: String,
    /// Dotted name.
    pub name: String,
    /// JSON payload text.
    #[serde(skip)]
    pub payload: String,
    /// The plugin whose write caused it.
    pub cause: Option<String>,
    /// Event hops that led here.
    pub depth: i64,
    /// The user whose write caused it.
    pub user_id: Option<String>,
    /// The request that made the write.
    pub request_id: Option<String>,
    /// That request's API version.
    pub api_version: Option<String>,
    /// When it was logged.
    pub occurred_at: String,
}

const COLUMNS: &str = "tenant_id, seq, id, name, payload, cause, depth, user_id, request_id, api_version, occurred_at";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<StoredEvent> {
    Ok(StoredEvent {
        tenant_id: r.try_get("tenant_id")?,
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        payload: r.try_get("payload")?,
        cause: r.try_get("cause")?,
        depth: r.try_get("depth")?,
        user_id: r.try_get("user_id")?,
        request_id: r.try_get("request_id")?,
        api_version: r.try_get("api_version")?,
        occurred_at: r.try_get("occurred_at")?,
    })
}

/// Append `event` to `tenant`'s log inside `tx`.
pub async fn append(tx: &mut Tx<'_>, tenant: &str, event: &NewEvent<'_>) -> StoreResult<StoredEvent> {
    let seq: i64 = sqlx::query(
        "INSERT INTO event_heads (tenant_id, seq) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET seq = event_heads.seq + 1 RETURNING seq",
    )
    .bind(tenant)
    .fetch_one(&mut **tx)
    .await?
    .try_get("seq")?;
    let stored = StoredEvent {
        tenant_id: tenant.to_string(),
        seq,
        id: ulid::Ulid::new().to_string(),
        name: event.name.to_string(),
        payload: event.payload.to_string(),
        cause: event.cause.map(str::to_string),
        depth: event.depth,
        user_id: event.user_id.map(str::to_string),
        request_id: event.request_id.map(str::to_string),
        api_version: event.api_version.map(str::to_string),
        occurred_at: time::now(),
    };
    sqlx::query(&format!(
        "INSERT INTO events ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&stored.tenant_id)
    .bind(stored.seq)
    .bind(&stored.id)
    .bind(&stored.name)
    .bind(&stored.payload)
    .bind(&stored.cause)
    .bind(stored.depth)
    .bind(&stored.user_id)
    .bind(&stored.request_id)
    .bind(&stored.api_version)
    .bind(&stored.occurred_at)
    .execute(&mut **tx)
    .await?;
    Ok(stored)
}

/// The seq of `tenant`'s latest event as seen inside `tx` (0 before the first).
pub async fn head_in(tx: &mut Tx<'_>, tenant: &str) -> StoreResult<i64> {
    let row = sqlx::query("SELECT seq FROM event_heads WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(r) => r.try_get("seq")?,
        None => 0,
    })
}

impl Db {
    /// The seq of `tenant`'s latest committed event (0 before the first).
    pub async fn event_head(&self, tenant: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT seq FROM event_heads WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(self.reader())
            .await?;
        Ok(match row {
            Some(r) => r.try_get("seq")?,
            None => 0,
        })
    }

    /// Up to `limit` of `tenant`'s events after `after`, in seq order.
    pub async fn events_after(&self, tenant: &str, after: i64, limit: i64) -> StoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(tenant)
        .bind(after)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Delete up to `limit` events that occurred before `before` and that nothing
    /// still needs: every subscriber's cursor of their tenant is past them (a disabled
    /// plugin's cursor holds them), and no dead letter refers to them (replay reads
    /// the event). Returns how many were deleted; call again while it returns `limit`.
    pub async fn prune_events(&self, before: &str, limit: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM events WHERE (tenant_id, seq) IN (\
               SELECT e.tenant_id, e.seq FROM events e \
               WHERE e.occurred_at < $1 \
                 AND e.seq <= COALESCE((SELECT MIN(c.position) FROM event_cursors c \
                                        WHERE c.tenant_id = e.tenant_id), e.seq) \
                 AND NOT EXISTS (SELECT 1 FROM event_dead_letters d \
                                 WHERE d.tenant_id = e.tenant_id AND d.event_seq = e.seq) \
               ORDER BY e.tenant_id, e.seq LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    /// One of `tenant`'s events by seq.
    pub async fn event_at(&self, tenant: &str, seq: i64) -> StoreResult<Option<StoredEvent>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE tenant_id = $1 AND seq = $2"
        ))
        .bind(tenant)
        .bind(seq)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(from_row).transpose()
    }
}
