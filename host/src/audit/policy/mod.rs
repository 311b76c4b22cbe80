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
//! - `capability-grant` `{capability: C}`: a `plugin.grant`, `plugin.install` or
//!   `plugin.upgrade` event that newly grants a matching capability key. C is a key
//!   (`storage`, `http:https://api.example.com`, `records:account:write`…) or a prefix
//!   ending in `*` (`http:*`). **Contract with the plugin lifecycle code:** those
//!   events carry the plugin's granted keys as a JSON array of strings at
//!   `after.grants` (and, for changes, the previous ones at `before.grants`); keys in
//!   `after.grants` but not in `before.grants` are the newly granted ones.
//!
//! A policy judges only events written after it was created (or last re-enabled),
//! never the history before it.

pub mod eval;

use serde::{Deserialize, Serialize};

pub use eval::{EvalReport, evaluate_pending, run_evaluator};

use super::params::check_text;
use super::{AuditError, AuditResult, Issue, valid_object_name};
use crate::store::audit::{self as ledger, Actor, NewEvent};
use crate::store::audit_policy::{self as store, PolicyRow};
use crate::store::{Db, StoreError, time};

/// Most policies per tenant.
pub const MAX_POLICIES: i64 = 100;
/// Longest policy name.
const MAX_NAME: usize = 200;
/// Most notification addresses per policy.
const MAX_EMAILS: usize = 20;
/// Largest mass-delete threshold.
const MAX_THRESHOLD: i64 = 1_000_000;
/// Longest mass-delete window: one week.
const MAX_WINDOW_MINUTES: i64 = 7 * 24 * 60;

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

/// The body of `POST` (all of `name` and `kind` plus the kind's parameters) and of
/// `PATCH` (any subset; with `kind`, the rule is replaced by the body's parameters;
/// without it, the given parameters change the current rule; `notify` is replaced
/// as a whole).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// Name.
    pub name: Option<String>,
    /// Kind.
    pub kind: Option<String>,
    /// mass-delete: deletes allowed within the window.
    pub threshold: Option<i64>,
    /// mass-delete: window in minutes.
    pub window_minutes: Option<i64>,
    /// field-change: object.
    pub object: Option<String>,
    /// field-change: field.
    pub field: Option<String>,
    /// capability-grant: capability key or prefix `*`.
    pub capability: Option<String>,
    /// Whether it is applied (default true).
    pub enabled: Option<bool>,
    /// Notifications (default none).
    pub notify: Option<NotifyInput>,
}

/// Notification settings in a body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyInput {
    /// Email recipients (default none).
    pub emails: Option<Vec<String>>,
    /// Call the webhook (default false).
    pub webhook: Option<bool>,
}

/// The rule parameters a body may carry.
#[derive(Debug, Clone, Default)]
struct RuleParams {
    threshold: Option<i64>,
    window_minutes: Option<i64>,
    object: Option<String>,
    field: Option<String>,
    capability: Option<String>,
}

impl RuleParams {
    fn of_input(i: &PolicyInput) -> RuleParams {
        RuleParams {
            threshold: i.threshold,
            window_minutes: i.window_minutes,
            object: i.object.clone(),
            field: i.field.clone(),
            capability: i.capability.clone(),
        }
    }

    fn of_rule(r: &Rule) -> RuleParams {
        match r.clone() {
            Rule::MassDelete {
                threshold,
                window_minutes,
            } => RuleParams {
                threshold: Some(threshold),
                window_minutes: Some(window_minutes),
                ..RuleParams::default()
            },
            Rule::FieldChange { object, field } => RuleParams {
                object: Some(object),
                field: Some(field),
                ..RuleParams::default()
            },
            Rule::CapabilityGrant { capability } => RuleParams {
                capability: Some(capability),
                ..RuleParams::default()
            },
        }
    }

    /// `self` with every parameter `over` gives replaced.
    fn overlay(self, over: RuleParams) -> RuleParams {
        RuleParams {
            threshold: over.threshold.or(self.threshold),
            window_minutes: over.window_minutes.or(self.window_minutes),
            object: over.object.or(self.object),
            field: over.field.or(self.field),
            capability: over.capability.or(self.capability),
        }
    }

    /// The rule of `kind` from these parameters, reporting every problem.
    fn into_rule(self, kind: &str, issues: &mut Vec<Issue>) -> Option<Rule> {
        let present = [
            ("threshold", self.threshold.is_some()),
            ("window_minutes", self.window_minutes.is_some()),
            ("object", self.object.is_some()),
            ("field", self.field.is_some()),
            ("capability", self.capability.is_some()),
        ];
        let own: &[&str] = match kind {
            "mass-delete" => &["threshold", "window_minutes"],
            "field-change" => &["object", "field"],
            "capability-grant" => &["capability"],
            _ => {
                issues.push(Issue::new(
                    "kind",
                    "must be one of: mass-delete, field-change, capability-grant",
                ));
                return None;
            }
        };
        let before = issues.len();
        for (name, is_present) in present {
            if is_present && !own.contains(&name) {
                issues.push(Issue::new(name, format!("is not a parameter of kind {kind}")));
            } else if !is_present && own.contains(&name) {
                issues.push(Issue::new(name, format!("is required for kind {kind}")));
            }
        }
        let rule = match kind {
            "mass-delete" => {
                let threshold = self.threshold.unwrap_or(0);
                let window_minutes = self.window_minutes.unwrap_or(0);
                if self.threshold.is_some() && !(1..=MAX_THRESHOLD).contains(&threshold) {
                    issues.push(Issue::new("threshold", format!("must be from 1 to {MAX_THRESHOLD}")));
                }
                if self.window_minutes.is_some() && !(1..=MAX_WINDOW_MINUTES).contains(&window_minutes) {
                    issues.push(Issue::new(
                        "window_minutes",
                        format!("must be from 1 to {MAX_WINDOW_MINUTES} (one week)"),
                    ));
                }
                Rule::MassDelete {
                    threshold,
                    window_minutes,
                }
            }
            "field-change" => {
                let object = self.object.unwrap_or_default();
                let field = self.field.unwrap_or_default();
                if !object.is_empty() && !valid_object_name(&object) {
                    issues.push(Issue::new(
                        "object",
                        "must be an object name: lowercase letters, digits and _, starting with a letter",
                    ));
                }
                if !field.is_empty() && !valid_field_name(&field) {
                    issues.push(Issue::new(
                        "field",
                        "must be a field name: letters, digits and _, at most 128 characters",
                    ));
                }
                Rule::FieldChange { object, field }
            }
            _ => {
                let capability = self.capability.unwrap_or_default();
                if !capability.is_empty() && !valid_capability_pattern(&capability) {
                    issues.push(Issue::new(
                        "capability",
                        "must be a capability key, or a prefix ending in *, without spaces (at most 200 characters)",
                    ));
                }
                Rule::CapabilityGrant { capability }
            }
        };
        (issues.len() == before).then_some(rule)
    }
}

fn valid_field_name(f: &str) -> bool {
    let mut chars = f.chars();
    f.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_capability_pattern(c: &str) -> bool {
    let body = c.strip_suffix('*').unwrap_or(c);
    c.len() <= 200 && !body.contains('*') && c.chars().all(|ch| ch.is_ascii_graphic())
}

/// A deliberately plain check: one `@`, something on both sides, a dot in the
/// domain, and none of the characters that could smuggle extra recipients or
/// headers into a mail later.
fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    e.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && e.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, ',' | ';' | '<' | '>' | '"' | '(' | ')' | '[' | ']' | '\\'))
}

fn check_name(name: &str, issues: &mut Vec<Issue>) {
    if let Err(m) = check_text(name, MAX_NAME) {
        issues.push(Issue::new("name", m));
    } else if name.trim().is_empty() {
        issues.push(Issue::new("name", "must not be blank"));
    }
}

fn check_notify(n: Option<NotifyInput>, issues: &mut Vec<Issue>) -> Option<Notify> {
    let n = n?;
    let emails = n.emails.unwrap_or_default();
    if emails.len() > MAX_EMAILS {
        issues.push(Issue::new("notify.emails", format!("at most {MAX_EMAILS} addresses")));
    }
    for (i, e) in emails.iter().enumerate() {
        if !valid_email(e) {
            issues.push(Issue::new(format!("notify.emails[{i}]"), "is not an email address"));
        }
    }
    Some(Notify {
        emails,
        webhook: n.webhook.unwrap_or(false),
    })
}

fn invalid_unless_empty(issues: Vec<Issue>) -> AuditResult<()> {
    if issues.is_empty() {
        Ok(())
    } else {
        Err(AuditError::Invalid(issues))
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
/// is `if_match`. Re-enabling it restarts judgement from now.
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

    fn rule(kind: &str, p: RuleParams) -> Result<Rule, Vec<String>> {
        let mut issues = Vec::new();
        p.into_rule(kind, &mut issues)
            .ok_or_else(|| issues.into_iter().map(|i| i.field).collect())
    }

    #[test]
    fn rules_need_their_own_parameters_and_no_others() {
        let p = RuleParams {
            threshold: Some(5),
            window_minutes: Some(10),
            ..RuleParams::default()
        };
        assert_eq!(
            rule("mass-delete", p.clone()),
            Ok(Rule::MassDelete {
                threshold: 5,
                window_minutes: 10
            })
        );
        assert_eq!(
            rule("field-change", p),
            Err(vec![
                "threshold".into(),
                "window_minutes".into(),
                "object".into(),
                "field".into()
            ])
        );
        let p = RuleParams {
            threshold: Some(0),
            ..RuleParams::default()
        };
        assert_eq!(
            rule("mass-delete", p),
            Err(vec!["window_minutes".into(), "threshold".into()])
        );
        assert_eq!(rule("other", RuleParams::default()), Err(vec!["kind".into()]));
    }

    #[test]
    fn capability_patterns_match_exactly_or_by_prefix() {
        assert!(capability_matches("http:*", "http:https://api.example.com"));
        assert!(!capability_matches("http:*", "storage"));
        assert!(capability_matches("storage", "storage"));
        assert!(!capability_matches("storage", "storage2"));
        assert!(valid_capability_pattern("http:*"));
        assert!(!valid_capability_pattern("ht*p:"));
        assert!(!valid_capability_pattern("a b"));
    }

    #[test]
    fn emails_are_checked_plainly() {
        assert!(valid_email("ops@bank.example"));
        assert!(!valid_email("ops@bank"));
        assert!(!valid_email("a@b.c, evil@x.y"));
        assert!(!valid_email("a@b.c\r\nBcc: x@y.z"));
        assert!(!valid_email("@b.c"));
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
