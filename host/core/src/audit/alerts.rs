//! Alerts raised by audit policies: listing them (newest first, cursor-paginated,
//! by policy and acknowledgement) and acknowledging them — itself an audited change
//! (`audit_alert.acknowledge`).

use super::params::{Params, check_text};
use super::{AuditError, AuditResult, Page};
use crate::store::audit::{self as ledger, Actor, NewEvent};
use crate::store::audit_policy::{self as store, AlertFilter, AlertRow};
use crate::store::{Db, StoreError, time};

/// Cursor family of alert lists.
const CURSOR_KIND: &str = "a1";

/// Parameters of the alert list.
pub const LIST_PARAMS: [&str; 4] = ["policy", "acknowledged", "cursor", "limit"];

/// A validated alert query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertQuery {
    /// Filters and position.
    pub filter: AlertFilter,
    /// Page size.
    pub limit: i64,
}

impl AlertQuery {
    /// Validate list parameters (see [`LIST_PARAMS`]).
    pub fn from_params(p: &Params) -> AuditResult<AlertQuery> {
        let mut c = p.check();
        let filter = AlertFilter {
            policy_id: c.text("policy"),
            acknowledged: c.bool("acknowledged"),
            before_id: c.cursor(CURSOR_KIND),
        };
        let limit = c.limit();
        c.finish()?;
        Ok(AlertQuery { filter, limit })
    }
}

/// One page of `tenant`'s alerts.
pub async fn list(db: &Db, tenant: &str, q: &AlertQuery) -> AuditResult<Page<AlertRow>> {
    let mut rows = store::list_alerts(db, tenant, &q.filter, q.limit + 1).await?;
    let more = rows.len() as i64 > q.limit;
    rows.truncate(usize::try_from(q.limit).unwrap_or(0));
    let next_cursor = match rows.last() {
        Some(last) if more => Some(super::params::encode_cursor(CURSOR_KIND, &last.id)),
        _ => None,
    };
    Ok(Page {
        data: rows,
        next_cursor,
    })
}

fn not_found(id: &str) -> AuditError {
    AuditError::NotFound(format!("no audit alert {id}"))
}

/// Acknowledge an alert on behalf of `actor` (whose user is recorded). Acknowledging
/// an acknowledged alert changes nothing and returns it as it is.
pub async fn acknowledge(db: &Db, tenant: &str, actor: &Actor, id: &str) -> AuditResult<AlertRow> {
    if check_text(id, 100).is_err() {
        return Err(not_found(id));
    }
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    let current = store::get_alert_tx(&mut tx, tenant, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if current.acknowledged_at.is_some() {
        return Ok(current);
    }
    let mut next = current.clone();
    next.acknowledged_at = Some(time::now());
    next.acknowledged_by = actor.user_id.clone();
    let before = serde_json::to_value(&current).unwrap_or_default();
    let after = serde_json::to_value(&next).unwrap_or_default();
    ledger::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        NewEvent {
            action: "audit_alert.acknowledge",
            entity_type: "audit_alert",
            entity_id: Some(id),
            before: Some(&before),
            after: Some(&after),
        },
    )
    .await?;
    let by = actor.user_id.as_deref().unwrap_or("");
    let at = next.acknowledged_at.as_deref().unwrap_or("");
    if !store::acknowledge_alert(&mut tx, tenant, id, by, at).await? {
        // Someone else acknowledged it meanwhile: theirs stands, and no event is kept.
        drop(tx);
        let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
        return store::get_alert_tx(&mut tx, tenant, id)
            .await?
            .ok_or_else(|| not_found(id));
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(next)
}
