//! Tenants' webhooks (URL, encrypted signing secret, subscriptions) and the log of
//! every delivery attempt.

use sqlx::Row;

use super::{Db, StoreError, StoreResult, Tx};

/// A stored webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    /// Id (ULID).
    pub id: String,
    /// Target URL.
    pub url: String,
    /// The signing secret, sealed by the host's vault.
    pub secret: Vec<u8>,
    /// Event subscription patterns.
    pub events: Vec<String>,
    /// Whether audit alerts are sent to it.
    pub alerts: bool,
    /// Whether it receives anything.
    pub enabled: bool,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

const COLUMNS: &str = "id, url, secret, events, alerts, enabled, created_at, updated_at";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<WebhookRow> {
    let events: String = r.try_get("events")?;
    Ok(WebhookRow {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        secret: r.try_get("secret")?,
        events: serde_json::from_str(&events).map_err(|e| StoreError::Corrupt(format!("webhook events: {e}")))?,
        alerts: r.try_get::<i64, _>("alerts")? != 0,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn events_json(events: &[String]) -> StoreResult<String> {
    serde_json::to_string(events).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Number of webhooks of `tenant`.
pub async fn count(tx: &mut Tx<'_>, tenant: &str) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM webhooks WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("n")?)
}

/// Store a new webhook.
pub async fn insert(tx: &mut Tx<'_>, tenant: &str, w: &WebhookRow) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO webhooks (tenant_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(tenant)
    .bind(&w.id)
    .bind(&w.url)
    .bind(&w.secret)
    .bind(events_json(&w.events)?)
    .bind(i64::from(w.alerts))
    .bind(i64::from(w.enabled))
    .bind(&w.created_at)
    .bind(&w.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replace a webhook's settings (not its secret or creation time); false if absent.
pub async fn update(tx: &mut Tx<'_>, tenant: &str, w: &WebhookRow) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE webhooks SET url = $3, events = $4, alerts = $5, enabled = $6, updated_at = $7, secret = $8 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(&w.id)
    .bind(&w.url)
    .bind(events_json(&w.events)?)
    .bind(i64::from(w.alerts))
    .bind(i64::from(w.enabled))
    .bind(&w.updated_at)
    .bind(&w.secret)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Delete a webhook; false if absent.
pub async fn delete(tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// One webhook of `tenant`, read inside `tx`.
pub async fn get_tx(tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<Option<WebhookRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM webhooks WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// One webhook of `tenant`.
pub async fn get(db: &Db, tenant: &str, id: &str) -> StoreResult<Option<WebhookRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM webhooks WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every webhook of `tenant` (their number is capped), oldest first.
pub async fn list(db: &Db, tenant: &str) -> StoreResult<Vec<WebhookRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM webhooks WHERE tenant_id = $1 ORDER BY id"
    ))
    .bind(tenant)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(from_row).collect()
}

/// The enabled webhooks of `tenant`, read inside `tx` (for fan-out).
pub async fn enabled_tx(tx: &mut Tx<'_>, tenant: &str) -> StoreResult<Vec<WebhookRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM webhooks WHERE tenant_id = $1 AND enabled = 1 ORDER BY id"
    ))
    .bind(tenant)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(from_row).collect()
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// Id (ULID).
    pub id: String,
    /// The outbox row delivered.
    pub outbox_id: String,
    /// What was delivered (`audit.alert`, or an event name).
    pub topic: String,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// HTTP status received, if any.
    pub status_code: Option<i64>,
    /// Time to the response or the failure, in milliseconds.
    pub latency_ms: i64,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Whether this attempt settled the delivery (success, or the last failure).
    #[serde(rename = "final")]
    pub is_final: bool,
    /// When it was made.
    pub at: String,
}

/// Record a delivery attempt of webhook `webhook`.
pub async fn insert_delivery(db: &Db, tenant: &str, webhook: &str, d: &Delivery) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (tenant_id, id, webhook_id, outbox_id, topic, attempt, status_code, \
         latency_ms, error, settled, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(tenant)
    .bind(&d.id)
    .bind(webhook)
    .bind(&d.outbox_id)
    .bind(&d.topic)
    .bind(d.attempt)
    .bind(d.status_code)
    .bind(d.latency_ms)
    .bind(&d.error)
    .bind(i64::from(d.is_final))
    .bind(&d.at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Up to `limit` delivery attempts of one webhook, newest first, before id `before`.
pub async fn deliveries(
    db: &Db,
    tenant: &str,
    webhook: &str,
    before: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<Delivery>> {
    // Fixed fragments only: with a cursor, `id < $3` and the limit moves to `$4`.
    let (cursor, limit_param) = if before.is_some() {
        (" AND id < $3", "$4")
    } else {
        ("", "$3")
    };
    let sql = format!(
        "SELECT id, outbox_id, topic, attempt, status_code, latency_ms, error, settled, at FROM webhook_deliveries \
         WHERE tenant_id = $1 AND webhook_id = $2{cursor} ORDER BY id DESC LIMIT {limit_param}"
    );
    let mut q = sqlx::query(&sql).bind(tenant).bind(webhook);
    if let Some(b) = before {
        q = q.bind(b);
    }
    let rows = q.bind(limit).fetch_all(db.reader()).await?;
    rows.iter()
        .map(|r| {
            Ok(Delivery {
                id: r.try_get("id")?,
                outbox_id: r.try_get("outbox_id")?,
                topic: r.try_get("topic")?,
                attempt: r.try_get("attempt")?,
                status_code: r.try_get("status_code")?,
                latency_ms: r.try_get("latency_ms")?,
                error: r.try_get("error")?,
                is_final: r.try_get::<i64, _>("settled")? != 0,
                at: r.try_get("at")?,
            })
        })
        .collect()
}

/// Remove the delivery log of a deleted webhook.
pub async fn delete_deliveries(tx: &mut Tx<'_>, tenant: &str, webhook: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2")
        .bind(tenant)
        .bind(webhook)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
