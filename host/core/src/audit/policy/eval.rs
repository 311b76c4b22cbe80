//! The policy evaluator: reads each tenant's new events after a stored cursor,
//! applies the tenant's enabled policies, and records alerts — each with its outbox
//! notifications — in the same transaction that advances the cursor. A crash
//! therefore loses or repeats nothing, and a re-run (a retry, or a second host on
//! the same PostgreSQL) inserts nothing twice: alerts are unique per (policy, event).
//!
//! Outbox rows, one per configured channel of the policy (`email` when it has
//! addresses, `webhook` when enabled; none otherwise), carry:
//! `{"type": "audit.alert", "tenant_id", "alert": {…alert…}, "to": [emails]}` (`to`
//! only for email), `subject` and `text` for email.
//!
//! The evaluator writes no audit events itself: alerts are derived data, and an
//! event per alert would feed the evaluator its own output.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

use super::{Policy, Rule, capability_matches};
use crate::store::audit::AuditEvent;
use crate::store::audit_policy::{self as store, AlertRow, DeleteEvent, PendingTenant};
use crate::store::audit_query;
use crate::store::{Db, StoreError, StoreResult, time};

/// How often [`run_evaluator`] looks for new events.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Events judged per transaction.
const BATCH: i64 = 1_000;

/// What one [`evaluate_pending`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EvalReport {
    /// Tenants with new events and enabled policies.
    pub tenants: usize,
    /// Events judged.
    pub events: i64,
    /// Alerts raised.
    pub alerts: usize,
}

/// Run the evaluator until `shutdown` resolves: every [`POLL_INTERVAL`], judge every
/// tenant's new events ([`evaluate_pending`]). Failures are logged and retried on the
/// next tick. The server starts this once per process, beside the API:
/// `tokio::spawn(audit::policy::run_evaluator(db.clone(), shutdown))`.
pub async fn run_evaluator(db: Db, shutdown: impl std::future::Future<Output = ()>) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = evaluate_pending(&db).await {
                    tracing::warn!(error = ?e, "audit policy evaluation failed; retrying");
                }
            }
            () = &mut shutdown => return,
        }
    }
}

/// Judge every tenant's events written since the last pass, until caught up with the
/// heads as they were when the pass began. Tenants are independent: one failing does
/// not stop the others; the first failure is returned after all were tried.
pub async fn evaluate_pending(db: &Db) -> StoreResult<EvalReport> {
    let mut report = EvalReport::default();
    let mut first_error = None;
    for t in store::pending_tenants(db).await? {
        report.tenants += 1;
        if let Err(e) = evaluate_tenant(db, &t, &mut report).await {
            tracing::warn!(tenant = %t.tenant_id, error = ?e, "audit policy evaluation failed");
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

async fn evaluate_tenant(db: &Db, t: &PendingTenant, report: &mut EvalReport) -> StoreResult<()> {
    let tenant = t.tenant_id.as_str();
    let mut policies = Vec::new();
    for row in store::list_policies(db, tenant, true).await? {
        match Policy::from_row(row) {
            Ok(p) => policies.push(p),
            Err(e) => tracing::warn!(tenant, error = ?e, "skipping an unreadable audit policy"),
        }
    }
    // Nothing before the oldest policy's start can raise an alert: skip it.
    let Some(start) = policies.iter().map(|p| p.start_seq).min() else {
        return Ok(());
    };
    let mut cursor = t.last_seq.max(start);
    loop {
        let upto = cursor.saturating_add(BATCH).min(t.head_seq);
        let events = if upto > cursor {
            audit_query::chain_page(db, tenant, cursor, upto, BATCH).await?
        } else {
            Vec::new()
        };
        let alerts = judge(db, tenant, &policies, cursor, upto, &events).await?;
        let mut tx = db.writer().begin().await?;
        let now = time::now();
        for (alert, notify) in &alerts {
            if store::insert_alert(&mut tx, tenant, alert).await? {
                report.alerts += 1;
                enqueue(&mut tx, tenant, alert, notify, &now).await?;
            }
        }
        store::advance_cursor(&mut tx, tenant, upto.max(cursor), &now).await?;
        tx.commit().await?;
        report.events += events.len() as i64;
        if upto >= t.head_seq {
            return Ok(());
        }
        cursor = upto;
    }
}

async fn enqueue(
    tx: &mut crate::store::Tx<'_>,
    tenant: &str,
    alert: &AlertRow,
    notify: &super::Notify,
    now: &str,
) -> StoreResult<()> {
    let encode = |v: serde_json::Value| v.to_string();
    if !notify.emails.is_empty() {
        let payload = serde_json::json!({
            "type": "audit.alert",
            "tenant_id": tenant,
            "to": notify.emails,
            "subject": format!("Plinth audit alert: {}", alert.policy_name),
            "text": alert.message,
            "alert": alert,
        });
        store::enqueue_outbox(tx, tenant, "email", &encode(payload), now).await?;
    }
    if notify.webhook {
        let payload = serde_json::json!({ "type": "audit.alert", "tenant_id": tenant, "alert": alert });
        store::enqueue_outbox(tx, tenant, "webhook", &encode(payload), now).await?;
    }
    Ok(())
}

/// Who an alert is about: the user if any, else the plugin, else the key.
fn actor_of(user: &Option<String>, plugin: &Option<String>, key: &Option<String>) -> String {
    match (user, plugin, key) {
        (Some(u), _, _) => format!("user:{u}"),
        (None, Some(p), _) => format!("plugin:{p}"),
        (None, None, Some(k)) => format!("key:{k}"),
        (None, None, None) => "system".into(),
    }
}

fn alert(p: &Policy, e: &AuditEvent, actor: String, message: String) -> (AlertRow, super::Notify) {
    let row = AlertRow {
        id: ulid::Ulid::new().to_string(),
        policy_id: p.id.clone(),
        policy_name: p.name.clone(),
        kind: p.rule.kind().to_string(),
        event_seq: e.seq,
        event_id: e.id.clone(),
        event_at: e.occurred_at.clone(),
        actor: Some(actor),
        message,
        created_at: time::now(),
        acknowledged_at: None,
        acknowledged_by: None,
    };
    (row, p.notify.clone())
}

/// Alerts raised by `events` (the tenant's events with `after < seq <= upto`).
async fn judge(
    db: &Db,
    tenant: &str,
    policies: &[Policy],
    after: i64,
    upto: i64,
    events: &[AuditEvent],
) -> StoreResult<Vec<(AlertRow, super::Notify)>> {
    let mut out = Vec::new();
    for e in events {
        for p in policies.iter().filter(|p| e.seq > p.start_seq) {
            let actor = || actor_of(&e.actor_user, &e.actor_plugin, &e.actor_key);
            match &p.rule {
                Rule::FieldChange { object, field } => {
                    if field_changed(e, object, field) {
                        let msg = format!(
                            "field {field} of {object} {} changed ({} by {})",
                            e.entity_id.as_deref().unwrap_or("?"),
                            e.action,
                            actor()
                        );
                        out.push(alert(p, e, actor(), msg));
                    }
                }
                Rule::CapabilityGrant { capability } => {
                    let granted = newly_granted(e, capability);
                    if !granted.is_empty() {
                        let msg = format!(
                            "plugin {} was granted {} ({} by {})",
                            e.entity_id.as_deref().unwrap_or("?"),
                            granted.join(", "),
                            e.action,
                            actor()
                        );
                        out.push(alert(p, e, actor(), msg));
                    }
                }
                Rule::MassDelete { .. } => {}
            }
        }
    }
    let mass: Vec<&Policy> = policies
        .iter()
        .filter(|p| matches!(p.rule, Rule::MassDelete { .. }))
        .collect();
    if !mass.is_empty() && events.iter().any(|e| e.action.ends_with(".delete")) {
        out.extend(mass_deletes(db, tenant, &mass, after, upto, events).await?);
    }
    Ok(out)
}

fn field_changed(e: &AuditEvent, object: &str, field: &str) -> bool {
    e.entity_type.strip_prefix("record:") == Some(object)
        && serde_json::from_str::<Vec<String>>(&e.changed_fields).is_ok_and(|f| f.iter().any(|x| x == field))
}

/// The capability keys in `after.grants` but not in `before.grants` that match
/// `pattern`, for `plugin.*` events. Any plugin action counts, not only `install`,
/// `upgrade` and `grant`: a `rollback` that restores an older version's grants is a
/// grant too, and actions that leave the grants alone (`enable`, `disable`) add none.
fn newly_granted(e: &AuditEvent, pattern: &str) -> Vec<String> {
    if !e.action.starts_with("plugin.") || e.entity_type != "plugin" {
        return Vec::new();
    }
    let grants = |state: &Option<String>| -> Vec<String> {
        state
            .as_deref()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .and_then(|v| v.get("grants").cloned())
            .and_then(|g| serde_json::from_value::<Vec<String>>(g).ok())
            .unwrap_or_default()
    };
    let before = grants(&e.before_state);
    grants(&e.after_state)
        .into_iter()
        .filter(|k| !before.contains(k) && capability_matches(pattern, k))
        .collect()
}

fn minutes_before(at: &str, minutes: i64) -> Option<String> {
    let t = time::parse(at)?;
    Some(time::format(t - ::time::Duration::minutes(minutes)))
}

/// Mass-delete alerts for the deletes among `events`: a delete that brings its actor
/// above the threshold within the window alerts, unless the same policy alerted for
/// that actor less than a window before.
async fn mass_deletes(
    db: &Db,
    tenant: &str,
    policies: &[&Policy],
    after: i64,
    upto: i64,
    events: &[AuditEvent],
) -> StoreResult<Vec<(AlertRow, super::Notify)>> {
    let widest = policies
        .iter()
        .filter_map(|p| match p.rule {
            Rule::MassDelete { window_minutes, .. } => Some(window_minutes),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let earliest = events
        .iter()
        .filter(|e| e.action.ends_with(".delete"))
        .map(|e| e.occurred_at.as_str())
        .min()
        .unwrap_or("");
    let since = minutes_before(earliest, widest)
        .ok_or_else(|| StoreError::Corrupt(format!("audit event time {earliest:?}")))?;
    // Every delete that can share a window with one of this batch's deletes.
    let deletes = store::deletes_since(db, tenant, &since, upto).await?;
    let by_seq: HashMap<i64, &AuditEvent> = events.iter().map(|e| (e.seq, e)).collect();
    let mut out = Vec::new();
    for p in policies {
        let Rule::MassDelete {
            threshold,
            window_minutes,
        } = p.rule
        else {
            continue;
        };
        let mut windows: HashMap<String, VecDeque<&DeleteEvent>> = HashMap::new();
        let mut last_alert: HashMap<String, Option<String>> = HashMap::new();
        for d in &deletes {
            let Some(start) = minutes_before(&d.occurred_at, window_minutes) else {
                continue;
            };
            let actor = actor_of(&d.actor_user, &d.actor_plugin, &d.actor_key);
            let window = windows.entry(actor.clone()).or_default();
            window.push_back(d);
            while window.front().is_some_and(|f| f.occurred_at <= start) {
                window.pop_front();
            }
            let count = window.len() as i64;
            if d.seq <= after || d.seq <= p.start_seq || count <= threshold {
                continue;
            }
            let last = match last_alert.get(&actor) {
                Some(l) => l.clone(),
                None => store::last_alert_for_actor(db, tenant, &p.id, &actor).await?,
            };
            if last.as_deref().is_some_and(|l| l > start.as_str()) {
                last_alert.insert(actor, last);
                continue;
            }
            let Some(e) = by_seq.get(&d.seq) else {
                continue;
            };
            last_alert.insert(actor.clone(), Some(d.occurred_at.clone()));
            let msg = format!(
                "{actor} made {count} deletes within {window_minutes} minutes (threshold {threshold}); latest: {} {}",
                e.action,
                e.entity_id.as_deref().unwrap_or("?")
            );
            out.push(alert(p, e, actor, msg));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, before: Option<&str>, after: Option<&str>) -> AuditEvent {
        AuditEvent {
            tenant_id: "t".into(),
            seq: 1,
            id: "e".into(),
            occurred_at: "2026-01-01T00:00:00.000Z".into(),
            actor_user: None,
            actor_key: None,
            actor_plugin: Some("crm@1.0.0".into()),
            action: action.into(),
            entity_type: "plugin".into(),
            entity_id: Some("crm".into()),
            before_state: before.map(str::to_string),
            after_state: after.map(str::to_string),
            changed_fields: "[]".into(),
            request_id: None,
            api_version: None,
            client: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn only_newly_granted_matching_keys_count() {
        let e = event(
            "plugin.grant",
            Some(r#"{"grants":["http:https://a.example"]}"#),
            Some(r#"{"grants":["http:https://a.example","http:https://b.example","storage"]}"#),
        );
        assert_eq!(newly_granted(&e, "http:*"), vec!["http:https://b.example"]);
        assert_eq!(newly_granted(&e, "storage"), vec!["storage"]);
        assert!(newly_granted(&e, "email").is_empty());
        let same = event(
            "plugin.enable",
            Some(r#"{"grants":["storage"]}"#),
            Some(r#"{"grants":["storage"]}"#),
        );
        assert!(newly_granted(&same, "*").is_empty());
        let rollback = event(
            "plugin.rollback",
            Some(r#"{"grants":["storage"]}"#),
            Some(r#"{"grants":["storage","http:https://old.example"]}"#),
        );
        assert_eq!(newly_granted(&rollback, "http:*"), vec!["http:https://old.example"]);
        let not_plugin = event("record.update", None, Some(r#"{"grants":["storage"]}"#));
        assert!(newly_granted(&not_plugin, "*").is_empty());
        let garbage = event("plugin.install", None, Some(r#"{"grants":"storage"}"#));
        assert!(newly_granted(&garbage, "*").is_empty());
    }

    #[test]
    fn actors_prefer_the_user() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(actor_of(&s("u"), &s("p"), &s("k")), "user:u");
        assert_eq!(actor_of(&None, &s("p"), &s("k")), "plugin:p");
        assert_eq!(actor_of(&None, &None, &None), "system");
    }

    #[test]
    fn windows_are_computed_in_stored_form() {
        assert_eq!(
            minutes_before("2026-01-01T00:05:00.000Z", 10).as_deref(),
            Some("2025-12-31T23:55:00.000Z")
        );
        assert_eq!(minutes_before("garbage", 10), None);
    }
}
