//! Policy request bodies and their validation: every problem of a body is reported
//! at once, each with its field path, before anything is stored.

use serde::Deserialize;

use super::{Notify, Rule};
use crate::audit::params::check_text;
use crate::audit::{AuditError, AuditResult, Issue, valid_object_name};

/// Longest policy name.
const MAX_NAME: usize = 200;
/// Most notification addresses per policy.
const MAX_EMAILS: usize = 20;
/// Largest mass-delete threshold.
const MAX_THRESHOLD: i64 = 1_000_000;
/// Longest mass-delete window: one week.
const MAX_WINDOW_MINUTES: i64 = 7 * 24 * 60;

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
pub(super) struct RuleParams {
    threshold: Option<i64>,
    window_minutes: Option<i64>,
    object: Option<String>,
    field: Option<String>,
    capability: Option<String>,
}

impl RuleParams {
    pub(super) fn of_input(i: &PolicyInput) -> RuleParams {
        RuleParams {
            threshold: i.threshold,
            window_minutes: i.window_minutes,
            object: i.object.clone(),
            field: i.field.clone(),
            capability: i.capability.clone(),
        }
    }

    pub(super) fn of_rule(r: &Rule) -> RuleParams {
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
    pub(super) fn overlay(self, over: RuleParams) -> RuleParams {
        RuleParams {
            threshold: over.threshold.or(self.threshold),
            window_minutes: over.window_minutes.or(self.window_minutes),
            object: over.object.or(self.object),
            field: over.field.or(self.field),
            capability: over.capability.or(self.capability),
        }
    }

    /// The rule of `kind` from these parameters, reporting every problem.
    pub(super) fn into_rule(self, kind: &str, issues: &mut Vec<Issue>) -> Option<Rule> {
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

pub(super) fn check_name(name: &str, issues: &mut Vec<Issue>) {
    if let Err(m) = check_text(name, MAX_NAME) {
        issues.push(Issue::new("name", m));
    } else if name.trim().is_empty() {
        issues.push(Issue::new("name", "must not be blank"));
    }
}

pub(super) fn check_notify(n: Option<NotifyInput>, issues: &mut Vec<Issue>) -> Option<Notify> {
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

pub(super) fn invalid_unless_empty(issues: Vec<Issue>) -> AuditResult<()> {
    if issues.is_empty() {
        Ok(())
    } else {
        Err(AuditError::Invalid(issues))
    }
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
    fn capability_patterns_are_keys_or_prefixes() {
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
}
