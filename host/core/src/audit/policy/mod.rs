//! Audit policies: rules over the event stream that raise alerts. This module owns
//! their model, validation and (audited) CRUD; [`eval`] owns the background
//! evaluator that applies them as events are written.
//!
//! Kinds:
//! - `mass-delete` `{threshold: N, window_minutes: W}`: an actor made more than N
//!   `*.delete` actions within W minutes. One alert per breach: after an alert, that
//!   actor's deletes raise no other alert for W minutes.
//! - `field-change` `{object: O, field: F}`: an event on `record:O` whose changed
//!   fields include F.
//! - `capability-grant` `{capability: C}`: a plugin lifecycle event (`entity_type`
//!   `plugin`, action `plugin.*`: install, upgrade, rollback, grant…) that newly grants
//!   a matching capability key. C is a key (`storage`, `http:https://api.example.com`,
//!   `records:account:write`…) or a prefix ending in `*` (`http:*`). **Contract with
//!   the plugin lifecycle code:** those events carry the plugin's granted keys as a
//!   JSON array of strings at `after.grants` and, when the plugin existed before, the
//!   previous ones at `before.grants`; keys in `after.grants` but not in
//!   `before.grants` are the newly granted ones (the marketplace's installation
//!   snapshots have exactly this shape).
//!
//! A policy judges only events written after it was created (or last re-enabled),
//! never the history before it.

pub mod eval;
mod input;

use serde::{Deserialize, Serialize};

pub use eval::{EvalReport, evaluate_pending, run_evaluator};
pub use input::{NotifyInput, PolicyInput};

use super::{AuditError, AuditResult, Issue};
use crate::store::audit::{self as ledger, Actor, NewEvent};
use crate::store::audit_policy::{self as store, PolicyRow};
use crate::store::{Db, StoreError, time};
use input::{RuleParams, check_name, check_notify, invalid_unless_empty};

/// Most policies per tenant.
pub const MAX_POLICIES: i64 = 100;
/// What a policy looks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Rule {
    /// More than `threshold` deletes by one actor within `window_minutes`.
    MassDelete {
        /// Deletes allowed within the window.
        threshold: i64,
        /// Window length in minutes.
        window_minutes: i64,
    },
    /// A field of an object changed.
    FieldChange {
        /// Object name (`opportunity`).
        object: String,
        /// Top-level field name (`amount`).
        field: String,
    },
    /// A plugin was granted a capability.
    CapabilityGrant {
        /// Capability key, or a prefix ending in `*`.
        capability: String,
    },
}

impl Rule {
    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::MassDelete { .. } => "mass-delete",
            Rule::FieldChange { .. } => "field-change",
            Rule::CapabilityGrant { .. } => "capability-grant",
        }
    }
}

/// Whether capability key `key` matches policy pattern `pattern` (exact, or a prefix
/// ending in `*`).
pub fn capability_matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => key == pattern,
    }
}

/// Who is told about alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    /// Email recipients.
    pub emails: Vec<String>,
    /// Whether to call the tenant's webhook.
    pub webhook: bool,
}

/// A policy as the API shows it: the rule's parameters sit beside `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Rule (serialised flat: `kind` and its parameters).
    #[serde(flatten)]
    pub rule: Rule,
    /// Whether it is applied.
    pub enabled: bool,
    /// Notifications.
    pub notify: Notify,
    /// Version, for `If-Match`.
    pub version: i64,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// Judges only events after this seq.
    #[serde(skip)]
    pub start_seq: i64,
}

impl Policy {
    fn from_row(r: PolicyRow) -> Result<Policy, StoreError> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("audit policy {}: {e}", r.id));
        Ok(Policy {
            rule: serde_json::from_str(&r.rule).map_err(corrupt)?,
            notify: serde_json::from_str(&r.notify).map_err(corrupt)?,
            id: r.id,
            name: r.name,
            enabled: r.enabled,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            start_seq: r.start_seq,
        })
    }

    fn to_row(&self) -> Result<PolicyRow, StoreError> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("audit policy encoding: {e}"));
        Ok(PolicyRow {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.rule.kind().to_string(),
            rule: serde_json::to_string(&self.rule).map_err(corrupt)?,
            enabled: self.enabled,
            notify: serde_json::to_string(&self.notify).map_err(corrupt)?,
            start_seq: self.start_seq,
            version: self.version,
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
        })
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

fn policy_not_found(id: &str) -> AuditError {
    AuditError::NotFound(format!("no audit policy {id}"))
}

fn audit_change<'a>(
    action: &'a str,
    id: &'a str,
    before: Option<&'a serde_json::Value>,
    after: Option<&'a serde_json::Value>,
) -> NewEvent<'a> {
    NewEvent {
        action,
        entity_type: "audit_policy",
        entity_id: Some(id),
        before,
        after,
    }
}

/// Create a policy (audited as `audit_policy.create`). At most [`MAX_POLICIES`] per
/// tenant.
pub async fn create(db: &Db, tenant: &str, actor: &Actor, input: PolicyInput) -> AuditResult<Policy> {
    let mut issues = Vec::new();
    let name = input.name.clone().unwrap_or_default();
    match &input.name {
        Some(n) => check_name(n, &mut issues),
        None => issues.push(Issue::new("name", "is required")),
    }
    let rule = match &input.kind {
        Some(kind) => RuleParams::of_input(&input).into_rule(kind, &mut issues),
        None => {
            issues.push(Issue::new("kind", "is required"));
            None
        }
    };
    let notify = check_notify(input.notify, &mut issues).unwrap_or_default();
    invalid_unless_empty(issues)?;
    let Some(rule) = rule else {
        return Err(AuditError::Invalid(vec![Issue::new("kind", "is invalid")]));
    };
    let now = time::now();
    let mut policy = Policy {
        id: ulid::Ulid::new().to_string(),
        name,
        rule,
        enabled: input.enabled.unwrap_or(true),
        notify,
        version: 1,
        created_at: now.clone(),
        updated_at: now,
        start_seq: 0,
    };
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    // Appending first takes the tenant's chain lock (on PostgreSQL), which also
    // serialises the count below against concurrent creations.
    let after = policy.to_json();
    let event = ledger::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        audit_change("audit_policy.create", &policy.id, None, Some(&after)),
    )
    .await?;
    if store::count_policies(&mut tx, tenant).await? >= MAX_POLICIES {
        return Err(AuditError::Limit(format!(
            "a tenant may have at most {MAX_POLICIES} audit policies"
        )));
    }
    policy.start_seq = event.seq;
    store::insert_policy(&mut tx, tenant, &policy.to_row()?).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(policy)
}

/// Every policy of `tenant`, oldest first.
pub async fn list(db: &Db, tenant: &str) -> AuditResult<Vec<Policy>> {
    let rows = store::list_policies(db, tenant, false).await?;
    Ok(rows.into_iter().map(Policy::from_row).collect::<Result<_, _>>()?)
}

/// One policy.
pub async fn get(db: &Db, tenant: &str, id: &str) -> AuditResult<Policy> {
    let row = store::get_policy(db, tenant, id)
        .await?
        .ok_or_else(|| policy_not_found(id))?;
    Ok(Policy::from_row(row)?)
}

/// Change a policy (audited as `audit_policy.update`), optionally only if its version
/// is `if_match`. Re-enabling it restarts judgement from now. A change that changes
/// nothing returns the policy as it is, without a new version or event.
pub async fn update(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    id: &str,
    input: PolicyInput,
    if_match: Option<i64>,
) -> AuditResult<Policy> {
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    let row = store::get_policy_tx(&mut tx, tenant, id)
        .await?
        .ok_or_else(|| policy_not_found(id))?;
    let current = Policy::from_row(row)?;
    if if_match.is_some_and(|v| v != current.version) {
        return Err(AuditError::VersionMismatch(format!(
            "the policy is at version {}",
            current.version
        )));
    }
    let mut issues = Vec::new();
    if let Some(n) = &input.name {
        check_name(n, &mut issues);
    }
    let params = RuleParams::of_input(&input);
    let rule = match &input.kind {
        Some(kind) => params.into_rule(kind, &mut issues),
        None => RuleParams::of_rule(&current.rule)
            .overlay(params)
            .into_rule(current.rule.kind(), &mut issues),
    };
    let notify = check_notify(input.notify, &mut issues);
    invalid_unless_empty(issues)?;
    let mut next = current.clone();
    if let Some(n) = input.name {
        next.name = n;
    }
    if let Some(r) = rule {
        next.rule = r;
    }
    if let Some(n) = notify {
        next.notify = n;
    }
    if let Some(e) = input.enabled {
        next.enabled = e;
    }
    let unchanged = (&next.name, &next.rule, next.enabled, &next.notify)
        == (&current.name, &current.rule, current.enabled, &current.notify);
    if unchanged {
        // Nothing to record: no new version, no audit event.
        return Ok(current);
    }
    next.version = current.version + 1;
    next.updated_at = time::now();
    let (before, after) = (current.to_json(), next.to_json());
    let event = ledger::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        audit_change("audit_policy.update", id, Some(&before), Some(&after)),
    )
    .await?;
    if next.enabled && !current.enabled {
        // Events written while it was off are not judged after the fact.
        next.start_seq = event.seq;
    }
    if !store::update_policy(&mut tx, tenant, &next.to_row()?, current.version).await? {
        return Err(AuditError::VersionMismatch(
            "the policy was changed concurrently".into(),
        ));
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(next)
}

/// Delete a policy (audited as `audit_policy.delete`), optionally only if its version
/// is `if_match`. Its alerts remain.
pub async fn delete(db: &Db, tenant: &str, actor: &Actor, id: &str, if_match: Option<i64>) -> AuditResult<()> {
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    let row = store::get_policy_tx(&mut tx, tenant, id)
        .await?
        .ok_or_else(|| policy_not_found(id))?;
    let current = Policy::from_row(row)?;
    if if_match.is_some_and(|v| v != current.version) {
        return Err(AuditError::VersionMismatch(format!(
            "the policy is at version {}",
            current.version
        )));
    }
    let before = current.to_json();
    ledger::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        audit_change("audit_policy.delete", id, Some(&before), None),
    )
    .await?;
    if !store::delete_policy(&mut tx, tenant, id, current.version).await? {
        return Err(AuditError::VersionMismatch(
            "the policy was changed concurrently".into(),
        ));
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_patterns_match_exactly_or_by_prefix() {
        assert!(capability_matches("http:*", "http:https://api.example.com"));
        assert!(!capability_matches("http:*", "storage"));
        assert!(capability_matches("storage", "storage"));
        assert!(!capability_matches("storage", "storage2"));
    }

    #[test]
    fn policies_serialise_flat() {
        let p = Policy {
            id: "p".into(),
            name: "n".into(),
            rule: Rule::FieldChange {
                object: "opportunity".into(),
                field: "amount".into(),
            },
            enabled: true,
            notify: Notify::default(),
            version: 1,
            created_at: "c".into(),
            updated_at: "u".into(),
            start_seq: 9,
        };
        let v = p.to_json();
        assert_eq!(v["kind"], "field-change");
        assert_eq!(v["field"], "amount");
        assert!(v.get("start_seq").is_none());
    }
}
