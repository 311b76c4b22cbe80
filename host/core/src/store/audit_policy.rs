//! Audit policies, the alerts they raise, the evaluator's per-tenant cursor and the
//! notification outbox rows alerts enqueue.
//!
//! Policy rules and notification settings are stored as JSON text; their meaning
//! belongs to `crate::audit::policy`. Alerts are unique per (policy, event), so an
//! evaluator that runs twice over the same events — a retry, or two hosts on one
//! PostgreSQL — inserts nothing the second time.

use serde::Serialize;
use sqlx::Row;

use super::{Db, Dialect, StoreResult, Tx};

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    /// Id (ULID).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Kind (`mass-delete`, `field-change`, `capability-grant`).
    pub kind: String,
    /// JSON of the rule's parameters (tagged with `kind`).
    pub rule: String,
    /// Whether the evaluator applies it.
    pub enabled: bool,
    /// JSON of the notification settings.
    pub notify: String,
    /// Only events with a higher seq are judged.
    pub start_seq: i64,
    /// Optimistic-concurrency version, from 1.
    pub version: i64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

const POLICY_COLUMNS: &str = "id, name, kind, rule, enabled, notify, start_seq, version, created_at, updated_at";

fn policy_from_row(r: &sqlx::any::AnyRow) -> StoreResult<PolicyRow> {
    Ok(PolicyRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        rule: r.try_get("rule")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        notify: r.try_get("notify")?,
        start_seq: r.try_get("start_seq")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Number of policies of `tenant`.
pub async fn count_policies(tx: &mut Tx<'_>, tenant: &str) -> StoreResult<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_policies WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("n")?)
}

/// The chain head seq of `tenant` as seen inside `tx`.
pub async fn head_seq(tx: &mut Tx<'_>, tenant: &str) -> StoreResult<i64> {
    let row = sqlx::query("SELECT seq FROM audit_heads WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| r.try_get("seq")).transpose()?.unwrap_or(0))
}

/// Store a new policy.
pub async fn insert_policy(tx: &mut Tx<'_>, tenant: &str, p: &PolicyRow) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO audit_policies (tenant_id, {POLICY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(tenant)
    .bind(&p.id)
    .bind(&p.name)
    .bind(&p.kind)
    .bind(&p.rule)
    .bind(i64::from(p.enabled))
    .bind(&p.notify)
    .bind(p.start_seq)
    .bind(p.version)
    .bind(&p.created_at)
    .bind(&p.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One policy of `tenant`, read inside `tx`.
pub async fn get_policy_tx(tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<Option<PolicyRow>> {
    let row = sqlx::query(&format!(
        "SELECT {POLICY_COLUMNS} FROM audit_policies WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(policy_from_row).transpose()
}

/// One policy of `tenant`.
pub async fn get_policy(db: &Db, tenant: &str, id: &str) -> StoreResult<Option<PolicyRow>> {
    let row = sqlx::query(&format!(
        "SELECT {POLICY_COLUMNS} FROM audit_policies WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(policy_from_row).transpose()
}

/// Every policy of `tenant` (their number is capped), oldest first; only the enabled
/// ones when `enabled_only`.
pub async fn list_policies(db: &Db, tenant: &str, enabled_only: bool) -> StoreResult<Vec<PolicyRow>> {
    let filter = if enabled_only { " AND enabled = 1" } else { "" };
    let rows = sqlx::query(&format!(
        "SELECT {POLICY_COLUMNS} FROM audit_policies WHERE tenant_id = $1{filter} ORDER BY id"
    ))
    .bind(tenant)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(policy_from_row).collect()
}

/// Replace a policy if its version is still `expected_version`; false otherwise.
pub async fn update_policy(tx: &mut Tx<'_>, tenant: &str, p: &PolicyRow, expected_version: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE audit_policies SET name = $3, kind = $4, rule = $5, enabled = $6, notify = $7, start_seq = $8, \
         version = $9, updated_at = $10 WHERE tenant_id = $1 AND id = $2 AND version = $11",
    )
    .bind(tenant)
    .bind(&p.id)
    .bind(&p.name)
    .bind(&p.kind)
    .bind(&p.rule)
    .bind(i64::from(p.enabled))
    .bind(&p.notify)
    .bind(p.start_seq)
    .bind(p.version)
    .bind(&p.updated_at)
    .bind(expected_version)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Delete a policy if its version is still `expected_version`; false otherwise.
pub async fn delete_policy(tx: &mut Tx<'_>, tenant: &str, id: &str, expected_version: i64) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM audit_policies WHERE tenant_id = $1 AND id = $2 AND version = $3")
        .bind(tenant)
        .bind(id)
        .bind(expected_version)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A tenant whose chain has grown past the evaluator's cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTenant {
    /// Tenant.
    pub tenant_id: String,
    /// Last seq evaluated (0 if never).
    pub last_seq: i64,
    /// Current head of the chain.
    pub head_seq: i64,
}

/// Tenants with at least one enabled policy and events the evaluator has not read.
/// (A worker query: it spans tenants by design and returns only ids and positions.)
pub async fn pending_tenants(db: &Db) -> StoreResult<Vec<PendingTenant>> {
    let rows = sqlx::query(
        "SELECT h.tenant_id AS tenant_id, h.seq AS head_seq, COALESCE(c.last_seq, 0) AS last_seq \
         FROM audit_heads h LEFT JOIN audit_policy_cursor c ON c.tenant_id = h.tenant_id \
         WHERE h.seq > COALESCE(c.last_seq, 0) \
         AND EXISTS (SELECT 1 FROM audit_policies p WHERE p.tenant_id = h.tenant_id AND p.enabled = 1) \
         ORDER BY h.tenant_id",
    )
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PendingTenant {
                tenant_id: r.try_get("tenant_id")?,
                last_seq: r.try_get("last_seq")?,
                head_seq: r.try_get("head_seq")?,
            })
        })
        .collect()
}

/// Move `tenant`'s evaluator cursor forward to `seq` (never backwards).
pub async fn advance_cursor(tx: &mut Tx<'_>, tenant: &str, seq: i64, now: &str) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_policy_cursor (tenant_id, last_seq, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET last_seq = excluded.last_seq, updated_at = excluded.updated_at \
         WHERE audit_policy_cursor.last_seq < excluded.last_seq",
    )
    .bind(tenant)
    .bind(seq)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A delete event, as the mass-delete rule needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteEvent {
    /// Seq.
    pub seq: i64,
    /// Time.
    pub occurred_at: String,
    /// Acting user.
    pub actor_user: Option<String>,
    /// Acting key.
    pub actor_key: Option<String>,
    /// Acting plugin.
    pub actor_plugin: Option<String>,
}

/// `*.delete` events of `tenant` after time `since` (exclusive) up to seq `upto`,
/// oldest first.
pub async fn deletes_since(db: &Db, tenant: &str, since: &str, upto: i64) -> StoreResult<Vec<DeleteEvent>> {
    let ends_with_delete = match db.dialect() {
        Dialect::Sqlite => "substr(action, -7) = '.delete'",
        Dialect::Postgres => "right(action, 7) = '.delete'",
    };
    let rows = sqlx::query(&format!(
        "SELECT seq, occurred_at, actor_user, actor_key, actor_plugin FROM audit_events \
         WHERE tenant_id = $1 AND occurred_at > $2 AND seq <= $3 AND {ends_with_delete} ORDER BY seq"
    ))
    .bind(tenant)
    .bind(since)
    .bind(upto)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeleteEvent {
                seq: r.try_get("seq")?,
                occurred_at: r.try_get("occurred_at")?,
                actor_user: r.try_get("actor_user")?,
                actor_key: r.try_get("actor_key")?,
                actor_plugin: r.try_get("actor_plugin")?,
            })
        })
        .collect()
}

/// Time of the triggering event of the last alert a policy raised for one actor.
pub async fn last_alert_for_actor(db: &Db, tenant: &str, policy: &str, actor: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query(
        "SELECT event_at FROM audit_alerts WHERE tenant_id = $1 AND policy_id = $2 AND actor = $3 \
         ORDER BY event_seq DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(policy)
    .bind(actor)
    .fetch_optional(db.reader())
    .await?;
    row.map(|r| r.try_get("event_at")).transpose().map_err(Into::into)
}

/// A stored alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRow {
    /// Id (ULID).
    pub id: String,
    /// The policy that raised it.
    pub policy_id: String,
    /// That policy's name when it fired.
    pub policy_name: String,
    /// That policy's kind.
    pub kind: String,
    /// Seq of the triggering event.
    pub event_seq: i64,
    /// Id of the triggering event.
    pub event_id: String,
    /// Time of the triggering event.
    pub event_at: String,
    /// The actor concerned (`user:…`, `plugin:…`, `key:…`, `system`).
    pub actor: Option<String>,
    /// What happened, for people.
    pub message: String,
    /// When it was raised.
    pub created_at: String,
    /// When someone acknowledged it.
    pub acknowledged_at: Option<String>,
    /// Who acknowledged it (user id).
    pub acknowledged_by: Option<String>,
}

const ALERT_COLUMNS: &str = "id, policy_id, policy_name, kind, event_seq, event_id, event_at, actor, message, \
     created_at, acknowledged_at, acknowledged_by";

fn alert_from_row(r: &sqlx::any::AnyRow) -> StoreResult<AlertRow> {
    Ok(AlertRow {
        id: r.try_get("id")?,
        policy_id: r.try_get("policy_id")?,
        policy_name: r.try_get("policy_name")?,
        kind: r.try_get("kind")?,
        event_seq: r.try_get("event_seq")?,
        event_id: r.try_get("event_id")?,
        event_at: r.try_get("event_at")?,
        actor: r.try_get("actor")?,
        message: r.try_get("message")?,
        created_at: r.try_get("created_at")?,
        acknowledged_at: r.try_get("acknowledged_at")?,
        acknowledged_by: r.try_get("acknowledged_by")?,
    })
}

/// Insert an alert unless the policy already alerted on that event; true if inserted.
pub async fn insert_alert(tx: &mut Tx<'_>, tenant: &str, a: &AlertRow) -> StoreResult<bool> {
    let done = sqlx::query(&format!(
        "INSERT INTO audit_alerts (tenant_id, {ALERT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (tenant_id, policy_id, event_seq) DO NOTHING"
    ))
    .bind(tenant)
    .bind(&a.id)
    .bind(&a.policy_id)
    .bind(&a.policy_name)
    .bind(&a.kind)
    .bind(a.event_seq)
    .bind(&a.event_id)
    .bind(&a.event_at)
    .bind(&a.actor)
    .bind(&a.message)
    .bind(&a.created_at)
    .bind(&a.acknowledged_at)
    .bind(&a.acknowledged_by)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Filters of the alert list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// Only this policy's alerts.
    pub policy_id: Option<String>,
    /// Only acknowledged (`Some(true)`) or unacknowledged (`Some(false)`) alerts.
    pub acknowledged: Option<bool>,
    /// Only alerts with a smaller id (the page cursor; newest first).
    pub before_id: Option<String>,
}

/// Up to `limit` alerts of `tenant`, newest first.
pub async fn list_alerts(db: &Db, tenant: &str, f: &AlertFilter, limit: i64) -> StoreResult<Vec<AlertRow>> {
    // Fixed fragments only; the `$n` of each present filter follows the ones before it.
    let mut sql = format!("SELECT {ALERT_COLUMNS} FROM audit_alerts WHERE tenant_id = $1");
    let mut n = 1;
    if f.policy_id.is_some() {
        n += 1;
        sql.push_str(&format!(" AND policy_id = ${n}"));
    }
    if f.before_id.is_some() {
        n += 1;
        sql.push_str(&format!(" AND id < ${n}"));
    }
    match f.acknowledged {
        Some(true) => sql.push_str(" AND acknowledged_at IS NOT NULL"),
        Some(false) => sql.push_str(" AND acknowledged_at IS NULL"),
        None => {}
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
    let mut q = sqlx::query(&sql).bind(tenant);
    if let Some(p) = &f.policy_id {
        q = q.bind(p.as_str());
    }
    if let Some(b) = &f.before_id {
        q = q.bind(b.as_str());
    }
    let rows = q.bind(limit).fetch_all(db.reader()).await?;
    rows.iter().map(alert_from_row).collect()
}

/// One alert of `tenant`, read inside `tx`.
pub async fn get_alert_tx(tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<Option<AlertRow>> {
    let row = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM audit_alerts WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(alert_from_row).transpose()
}

/// Mark an alert acknowledged unless it already is; true if this call did it.
pub async fn acknowledge_alert(tx: &mut Tx<'_>, tenant: &str, id: &str, by: &str, now: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE audit_alerts SET acknowledged_at = $3, acknowledged_by = $4 \
         WHERE tenant_id = $1 AND id = $2 AND acknowledged_at IS NULL",
    )
    .bind(tenant)
    .bind(id)
    .bind(now)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Queue a notification (`kind` is `email` or `webhook`) for delivery.
pub async fn enqueue_outbox(
    tx: &mut Tx<'_>,
    tenant: &str,
    kind: &str,
    payload: &str,
    now: &str,
) -> StoreResult<String> {
    let id = ulid::Ulid::new().to_string();
    sqlx::query(
        "INSERT INTO outbox (id, tenant_id, kind, payload, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
    )
    .bind(&id)
    .bind(tenant)
    .bind(kind)
    .bind(payload)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}
