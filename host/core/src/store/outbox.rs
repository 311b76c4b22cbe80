//! The outbox: email and webhook notifications waiting for delivery, their
//! attachments, and the claims workers take on them.
//!
//! A row moves `pending` → `sending` (claimed by one worker until `lease_until`) →
//! `sent`, back to `pending` with a later `next_attempt_at` after a failed attempt,
//! or to `failed` after the last one. Claims are atomic (one `UPDATE … RETURNING`;
//! on PostgreSQL the candidate rows are locked with `FOR UPDATE SKIP LOCKED`), so
//! several hosts on one database never send a row twice at once; a claim whose
//! worker died expires and the row is tried again. `attempts` counts claims and
//! doubles as the fencing token: a worker may only settle the claim it holds.

use sqlx::Row;

use super::{Db, Dialect, StoreResult, Tx};

/// Row kinds.
pub mod kind {
    /// An email.
    pub const EMAIL: &str = "email";
    /// A webhook call.
    pub const WEBHOOK: &str = "webhook";
}

/// Row statuses.
pub mod status {
    /// Waiting for `next_attempt_at`.
    pub const PENDING: &str = "pending";
    /// Claimed by a worker.
    pub const SENDING: &str = "sending";
    /// Delivered (or, for an alert, fanned out to the tenant's webhooks).
    pub const SENT: &str = "sent";
    /// Given up after the last attempt, or undeliverable.
    pub const FAILED: &str = "failed";
}

/// A row to insert.
#[derive(Debug, Clone, Copy)]
pub struct NewOutbox<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// [`kind`].
    pub kind: &'a str,
    /// JSON payload.
    pub payload: &'a str,
    /// The plugin that queued it, if any.
    pub plugin: Option<&'a str>,
    /// For webhook rows, the webhook it goes to.
    pub webhook: Option<&'a str>,
    /// Now (also the first attempt time).
    pub now: &'a str,
}

/// Insert a row; returns its id.
pub async fn insert(tx: &mut Tx<'_>, row: NewOutbox<'_>) -> StoreResult<String> {
    let id = ulid::Ulid::new().to_string();
    sqlx::query(
        "INSERT INTO outbox (id, tenant_id, kind, payload, status, attempts, next_attempt_at, created_at, \
         plugin_id, webhook_id) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $6, $7)",
    )
    .bind(&id)
    .bind(row.tenant)
    .bind(row.kind)
    .bind(row.payload)
    .bind(row.now)
    .bind(row.plugin)
    .bind(row.webhook)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// An email attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// File name.
    pub filename: String,
    /// MIME type.
    pub content_type: String,
    /// Bytes.
    pub content: Vec<u8>,
}

/// Store the attachments of outbox row `id`, in order.
pub async fn insert_attachments(tx: &mut Tx<'_>, tenant: &str, id: &str, files: &[Attachment]) -> StoreResult<()> {
    for (idx, f) in files.iter().enumerate() {
        sqlx::query(
            "INSERT INTO outbox_attachments (tenant_id, outbox_id, idx, filename, content_type, content) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant)
        .bind(id)
        .bind(idx as i64)
        .bind(&f.filename)
        .bind(&f.content_type)
        .bind(&f.content)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The attachments of a tenant's outbox row, in order.
pub async fn attachments(db: &Db, tenant: &str, id: &str) -> StoreResult<Vec<Attachment>> {
    let rows = sqlx::query(
        "SELECT filename, content_type, content FROM outbox_attachments \
         WHERE tenant_id = $1 AND outbox_id = $2 ORDER BY idx",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Attachment {
                filename: r.try_get("filename")?,
                content_type: r.try_get("content_type")?,
                content: r.try_get("content")?,
            })
        })
        .collect()
}

/// A row a worker claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// [`kind`].
    pub kind: String,
    /// JSON payload.
    pub payload: String,
    /// This attempt's number (from 1); the claim's fencing token.
    pub attempt: i64,
    /// The queuing plugin.
    pub plugin_id: Option<String>,
    /// The target webhook (webhook rows).
    pub webhook_id: Option<String>,
    /// When it was queued.
    pub created_at: String,
}

/// Claim up to `limit` rows due at `now` (pending and due, or claimed by a worker
/// whose lease ran out), oldest due first, until `lease_until`. A worker query: it
/// spans tenants by design.
pub async fn claim(db: &Db, now: &str, lease_until: &str, limit: i64) -> StoreResult<Vec<Claimed>> {
    let lock = match db.dialect() {
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    };
    let rows = sqlx::query(&format!(
        "UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_until = $2 \
         WHERE id IN (SELECT id FROM outbox WHERE (status = 'pending' AND next_attempt_at <= $1) \
         OR (status = 'sending' AND lease_until < $1) ORDER BY next_attempt_at, id LIMIT $3{lock}) \
         RETURNING id, tenant_id, kind, payload, attempts, plugin_id, webhook_id, created_at"
    ))
    .bind(now)
    .bind(lease_until)
    .bind(limit)
    .fetch_all(db.writer())
    .await?;
    let mut claimed: Vec<Claimed> = rows
        .iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                kind: r.try_get("kind")?,
                payload: r.try_get("payload")?,
                attempt: r.try_get("attempts")?,
                plugin_id: r.try_get("plugin_id")?,
                webhook_id: r.try_get("webhook_id")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect::<StoreResult<_>>()?;
    // RETURNING gives no order guarantee.
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

/// How a claimed attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Delivered; `result` notes how.
    Sent {
        /// E.g. the .eml file written or the SMTP reply.
        result: &'a str,
    },
    /// Failed; try again at `next_attempt_at`.
    Retry {
        /// What went wrong.
        error: &'a str,
        /// When to try next.
        next_attempt_at: &'a str,
    },
    /// Failed for good.
    Failed {
        /// What went wrong.
        error: &'a str,
    },
}

/// Settle the claim `attempt` of row `id`; false if that claim is no longer held
/// (it expired and another worker took the row).
pub async fn settle(db: &Db, id: &str, attempt: i64, outcome: Outcome<'_>, now: &str) -> StoreResult<bool> {
    let mut tx = db.writer().begin().await?;
    let done = settle_in(&mut tx, id, attempt, outcome, now).await?;
    tx.commit().await?;
    Ok(done)
}

/// [`settle`] inside `tx`.
pub async fn settle_in(tx: &mut Tx<'_>, id: &str, attempt: i64, outcome: Outcome<'_>, now: &str) -> StoreResult<bool> {
    // Only the claim this worker holds: still sending, and the attempt it took.
    const SENT: &str = "UPDATE outbox SET status = 'sent', lease_until = NULL, finished_at = $3, result = $4 \
         WHERE id = $1 AND status = 'sending' AND attempts = $2";
    const RETRY: &str = "UPDATE outbox SET status = 'pending', lease_until = NULL, next_attempt_at = $3, \
         last_error = $4 WHERE id = $1 AND status = 'sending' AND attempts = $2";
    const FAILED: &str = "UPDATE outbox SET status = 'failed', lease_until = NULL, finished_at = $3, last_error = $4 \
         WHERE id = $1 AND status = 'sending' AND attempts = $2";
    let (sql, third, fourth) = match outcome {
        Outcome::Sent { result } => (SENT, now, result),
        Outcome::Retry { error, next_attempt_at } => (RETRY, next_attempt_at, error),
        Outcome::Failed { error } => (FAILED, now, error),
    };
    let q = sqlx::query(sql).bind(id).bind(attempt).bind(third).bind(fourth);
    Ok(q.execute(&mut **tx).await?.rows_affected() == 1)
}

/// An outbox row as the tenant admin sees it (never attachments' bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Id.
    pub id: String,
    /// [`kind`].
    pub kind: String,
    /// JSON payload.
    pub payload: String,
    /// [`status`].
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// Next attempt (pending rows).
    pub next_attempt_at: String,
    /// Queued at.
    pub created_at: String,
    /// Last failure.
    pub last_error: Option<String>,
    /// Queuing plugin.
    pub plugin_id: Option<String>,
    /// Target webhook.
    pub webhook_id: Option<String>,
    /// Finished at (sent or failed).
    pub finished_at: Option<String>,
    /// Result note.
    pub result: Option<String>,
}

/// Filters of the outbox listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only rows with a smaller id (the page cursor; newest first).
    pub before_id: Option<String>,
}

const COLUMNS: &str = "id, kind, payload, status, attempts, next_attempt_at, created_at, last_error, \
     plugin_id, webhook_id, finished_at, result";

fn row_from(r: &sqlx::any::AnyRow) -> StoreResult<OutboxRow> {
    Ok(OutboxRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        payload: r.try_get("payload")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        created_at: r.try_get("created_at")?,
        last_error: r.try_get("last_error")?,
        plugin_id: r.try_get("plugin_id")?,
        webhook_id: r.try_get("webhook_id")?,
        finished_at: r.try_get("finished_at")?,
        result: r.try_get("result")?,
    })
}

/// Up to `limit` rows of `tenant`, newest first.
pub async fn list(db: &Db, tenant: &str, f: &OutboxFilter, limit: i64) -> StoreResult<Vec<OutboxRow>> {
    // Fixed fragments only; each present filter takes the next `$n`.
    let mut sql = format!("SELECT {COLUMNS} FROM outbox WHERE tenant_id = $1");
    let mut n = 1;
    for (present, column) in [
        (f.kind.is_some(), "kind"),
        (f.status.is_some(), "status"),
        (f.before_id.is_some(), "id <"),
    ] {
        if present {
            n += 1;
            let op = if column.ends_with('<') { "" } else { " =" };
            sql.push_str(&format!(" AND {column}{op} ${n}"));
        }
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
    let mut q = sqlx::query(&sql).bind(tenant);
    for v in [&f.kind, &f.status, &f.before_id].into_iter().flatten() {
        q = q.bind(v.as_str());
    }
    let rows = q.bind(limit).fetch_all(db.reader()).await?;
    rows.iter().map(row_from).collect()
}

/// One row of `tenant`.
pub async fn get(db: &Db, tenant: &str, id: &str) -> StoreResult<Option<OutboxRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(row_from).transpose()
}
