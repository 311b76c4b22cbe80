//! Approval process definitions: what they hold, how they are checked (every problem
//! by path, answered 422), and how conditions on a record are evaluated.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most steps in a process, branches in a step, approvers in a branch.
pub const MAX_STEPS: usize = 20;
/// See [`MAX_STEPS`].
pub const MAX_BRANCHES: usize = 10;
/// See [`MAX_STEPS`].
pub const MAX_APPROVERS: usize = 50;
/// Deepest manager chain an approver may name.
pub const MAX_LEVELS: u32 = 10;

/// A comparison in a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than (numbers; strings compare as text).
    Gt,
    /// Greater or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less or equal.
    Lte,
    /// One of a list.
    In,
    /// Absent or null.
    IsNull,
    /// Present and not null.
    NotNull,
}

/// `field op value` on a record's fields (`owner_id` included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The field.
    pub field: String,
    /// The comparison.
    pub op: Op,
    /// What to compare with (a list for `in`; ignored for the null tests).
    #[serde(default)]
    pub value: Value,
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

impl Condition {
    /// Whether `fields` satisfy it. A missing field is null; an ordering between a
    /// number and text is false. `amount.currency` reaches into a value; a money
    /// amount (`{"value": …, "currency": …}`) compares with a number by its value.
    pub fn holds(&self, fields: &Map<String, Value>) -> bool {
        let mut parts = self.field.split('.');
        let first = parts.next().unwrap_or_default();
        let mut v = fields.get(first).unwrap_or(&Value::Null);
        for part in parts {
            v = v.get(part).unwrap_or(&Value::Null);
        }
        if self.value.is_number() && v.get("value").is_some_and(Value::is_number) {
            v = &v["value"];
        }
        use std::cmp::Ordering::*;
        match self.op {
            Op::Eq => v == &self.value,
            Op::Ne => v != &self.value,
            Op::Gt => compare(v, &self.value) == Some(Greater),
            Op::Gte => matches!(compare(v, &self.value), Some(Greater | Equal)),
            Op::Lt => compare(v, &self.value) == Some(Less),
            Op::Lte => matches!(compare(v, &self.value), Some(Less | Equal)),
            Op::In => self.value.as_array().is_some_and(|list| list.contains(v)),
            Op::IsNull => v.is_null(),
            Op::NotNull => !v.is_null(),
        }
    }
}

/// Whether every condition holds (an empty list always does).
pub fn all_hold(conditions: &[Condition], fields: &Map<String, Value>) -> bool {
    conditions.iter().all(|c| c.holds(fields))
}

/// Who may approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Approver {
    /// A named user.
    User {
        /// The user's id.
        id: String,
    },
    /// The members of a group (at the time the step starts).
    Group {
        /// The group's id.
        id: String,
    },
    /// Everyone with a role (`manager`, `admin`, …).
    Role {
        /// The role.
        role: String,
    },
    /// The submitter's manager.
    SubmitterManager,
    /// The record owner's manager.
    OwnerManager,
    /// The manager `levels` up from the submitter (1 = their manager).
    ManagerChain {
        /// How many levels up.
        levels: u32,
    },
    /// The user named in a field of the record.
    Field {
        /// The field holding a user id.
        field: String,
    },
}

/// How a branch's approvers decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The first decision decides.
    #[default]
    Any,
    /// Everyone must approve; one rejection rejects.
    All,
    /// `quorum` approvals approve; rejections that make the quorum unreachable reject.
    Quorum,
}

/// What happens when a branch waits too long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TimeoutAction {
    /// Reassign to the managers of the approvers who have not decided.
    EscalateToManager,
    /// Reassign to a named user.
    EscalateToUser {
        /// The user.
        id: String,
    },
    /// Approve the branch.
    Approve,
    /// Reject the branch (and so the request).
    Reject,
}

/// A branch's deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    /// Seconds after the branch starts (or was last escalated).
    pub after_seconds: u64,
    /// Remind the waiting approvers this many seconds before.
    #[serde(default)]
    pub remind_before_seconds: Option<u64>,
    /// What then.
    pub action: TimeoutAction,
}

/// Approvers deciding by a rule, with an optional deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// A name for people ("Finance").
    #[serde(default)]
    pub name: Option<String>,
    /// Who decides.
    pub approvers: Vec<Approver>,
    /// How.
    #[serde(default)]
    pub rule: Rule,
    /// Approvals needed with `rule = "quorum"`.
    #[serde(default)]
    pub quorum: Option<u32>,
    /// Deadline.
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

/// One step: a single branch (`approvers`, `rule`, …) or parallel `branches` that must
/// all approve; skipped when the record does not meet `criteria`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// A name for people ("Manager", "Finance and legal").
    pub name: String,
    /// Run the step only when these hold.
    #[serde(default)]
    pub criteria: Vec<Condition>,
    /// Parallel branches.
    #[serde(default)]
    pub branches: Vec<Branch>,
    /// A single-branch step's approvers.
    #[serde(default)]
    pub approvers: Vec<Approver>,
    /// A single-branch step's rule.
    #[serde(default)]
    pub rule: Option<Rule>,
    /// A single-branch step's quorum.
    #[serde(default)]
    pub quorum: Option<u32>,
    /// A single-branch step's deadline.
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

impl StepDef {
    /// The step's branches: its `branches`, or the one its own fields describe.
    pub fn branches(&self) -> Vec<Branch> {
        if !self.branches.is_empty() {
            return self.branches.clone();
        }
        vec![Branch {
            name: None,
            approvers: self.approvers.clone(),
            rule: self.rule.unwrap_or_default(),
            quorum: self.quorum,
            timeout: self.timeout.clone(),
        }]
    }
}

/// Field updates on the record when a request ends a certain way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// Fields to set.
    #[serde(default)]
    pub field_updates: Map<String, Value>,
}

/// A process as an admin writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessInput {
    /// Its name.
    pub name: String,
    /// The object whose records it approves.
    pub object: String,
    /// Among the object's processes, lower orders are tried first; the first whose
    /// entry criteria match applies.
    #[serde(default)]
    pub order: i64,
    /// Inactive processes are never chosen.
    #[serde(default = "yes")]
    pub active: bool,
    /// Submit automatically when a record is created or changed to match.
    #[serde(default)]
    pub auto_submit: bool,
    /// Which records it applies to.
    #[serde(default)]
    pub entry: Vec<Condition>,
    /// The steps, in order.
    pub steps: Vec<StepDef>,
    /// Set on final approval.
    #[serde(default)]
    pub on_approved: Outcome,
    /// Set on rejection.
    #[serde(default)]
    pub on_rejected: Outcome,
    /// Set on recall.
    #[serde(default)]
    pub on_recalled: Outcome,
    /// Approvers (and admins) may still edit the record while it is pending.
    #[serde(default)]
    pub approvers_may_edit: bool,
}

fn yes() -> bool {
    true
}

/// A stored process: the input plus identity and definition version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// Id.
    pub id: String,
    /// Definition version: 1, then +1 per change. Requests keep the version they
    /// started with (a copy of it).
    pub version: u32,
    /// The definition.
    #[serde(flatten)]
    pub def: ProcessInput,
}

/// Objects a process may name: those the manifest grants.
pub const OBJECTS: &[&str] = &["opportunity", "account", "lead", "contact"];
/// Roles an approver may name.
const ROLES: &[&str] = &["owner", "admin", "manager", "member"];

fn check_conditions(problems: &mut Vec<(String, String)>, path: &str, conditions: &[Condition]) {
    for (i, c) in conditions.iter().enumerate() {
        if c.field.is_empty() {
            problems.push((format!("{path}[{i}].field"), "must name a field".into()));
        }
        if c.op == Op::In && !c.value.is_array() {
            problems.push((format!("{path}[{i}].value"), "must be a list for `in`".into()));
        }
    }
}

fn check_branch(problems: &mut Vec<(String, String)>, path: &str, b: &Branch) {
    if b.approvers.is_empty() {
        problems.push((format!("{path}.approvers"), "must name at least one approver".into()));
    }
    if b.approvers.len() > MAX_APPROVERS {
        problems.push((format!("{path}.approvers"), format!("at most {MAX_APPROVERS}")));
    }
    for (i, a) in b.approvers.iter().enumerate() {
        let at = format!("{path}.approvers[{i}]");
        match a {
            Approver::User { id } | Approver::Group { id } if id.is_empty() => {
                problems.push((format!("{at}.id"), "must not be empty".into()));
            }
            Approver::Role { role } if !ROLES.contains(&role.as_str()) => {
                problems.push((format!("{at}.role"), format!("must be one of {}", ROLES.join(", "))));
            }
            Approver::ManagerChain { levels } if *levels == 0 || *levels > MAX_LEVELS => {
                problems.push((format!("{at}.levels"), format!("must be 1–{MAX_LEVELS}")));
            }
            Approver::Field { field } if field.is_empty() => {
                problems.push((format!("{at}.field"), "must name a field".into()));
            }
            _ => {}
        }
    }
    match (b.rule, b.quorum) {
        (Rule::Quorum, None) => problems.push((format!("{path}.quorum"), "is required with rule `quorum`".into())),
        (Rule::Quorum, Some(0)) => problems.push((format!("{path}.quorum"), "must be at least 1".into())),
        (Rule::Quorum, Some(m)) => {
            // Only named users have a known count before the step starts.
            let named = b.approvers.iter().all(|a| matches!(a, Approver::User { .. }));
            if named && m as usize > b.approvers.len() {
                problems.push((
                    format!("{path}.quorum"),
                    format!("{m} of {} approvers can never be reached", b.approvers.len()),
                ));
            }
        }
        (_, Some(_)) => problems.push((format!("{path}.quorum"), "only applies to rule `quorum`".into())),
        _ => {}
    }
    if let Some(t) = &b.timeout {
        if t.after_seconds == 0 {
            problems.push((format!("{path}.timeout.after_seconds"), "must be at least 1".into()));
        }
        if t.remind_before_seconds.is_some_and(|r| r == 0 || r >= t.after_seconds) {
            problems.push((
                format!("{path}.timeout.remind_before_seconds"),
                "must be between 1 and after_seconds".into(),
            ));
        }
    }
}

/// Every problem of a definition, by path.
pub fn check(p: &ProcessInput) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if p.name.trim().is_empty() || p.name.chars().count() > 200 {
        problems.push(("name".into(), "must be 1–200 characters".into()));
    }
    if !OBJECTS.contains(&p.object.as_str()) {
        problems.push(("object".into(), format!("must be one of {}", OBJECTS.join(", "))));
    }
    check_conditions(&mut problems, "entry", &p.entry);
    if p.steps.is_empty() {
        problems.push(("steps".into(), "a process needs at least one step".into()));
    }
    if p.steps.len() > MAX_STEPS {
        problems.push(("steps".into(), format!("at most {MAX_STEPS}")));
    }
    for (i, s) in p.steps.iter().enumerate() {
        let at = format!("steps[{i}]");
        if s.name.trim().is_empty() {
            problems.push((format!("{at}.name"), "must not be empty".into()));
        }
        check_conditions(&mut problems, &format!("{at}.criteria"), &s.criteria);
        let single = !s.approvers.is_empty() || s.rule.is_some() || s.quorum.is_some() || s.timeout.is_some();
        if !s.branches.is_empty() && single {
            problems.push((
                at.clone(),
                "give either `branches` or one branch's `approvers`/`rule`/`quorum`/`timeout`, not both".into(),
            ));
            continue;
        }
        if s.branches.len() > MAX_BRANCHES {
            problems.push((format!("{at}.branches"), format!("at most {MAX_BRANCHES}")));
        }
        if s.branches.is_empty() {
            check_branch(&mut problems, &at, &s.branches()[0]);
        } else {
            for (j, b) in s.branches.iter().enumerate() {
                check_branch(&mut problems, &format!("{at}.branches[{j}]"), b);
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn process(v: Value) -> ProcessInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn conditions_compare_numbers_text_lists_and_nulls() {
        let fields = json!({"discount": 25, "stage": "proposal", "owner_id": "u1",
                            "amount": {"value": 6_000_000, "currency": "EUR"}});
        let fields = fields.as_object().unwrap();
        let c = |field: &str, op: Op, value: Value| Condition {
            field: field.into(),
            op,
            value,
        };
        assert!(c("discount", Op::Gt, json!(20)).holds(fields));
        assert!(!c("discount", Op::Gt, json!(25)).holds(fields));
        assert!(c("discount", Op::Gte, json!(25.0)).holds(fields));
        assert!(c("stage", Op::In, json!(["proposal", "negotiation"])).holds(fields));
        assert!(c("probability", Op::IsNull, Value::Null).holds(fields));
        assert!(
            !c("stage", Op::Lt, json!(3)).holds(fields),
            "text against a number is false"
        );
        assert!(
            c("amount", Op::Gt, json!(5_000_000)).holds(fields),
            "money by its value"
        );
        assert!(c("amount.currency", Op::Eq, json!("EUR")).holds(fields));
        assert!(c("nothing.here", Op::IsNull, Value::Null).holds(fields));
    }

    #[test]
    fn every_problem_of_a_definition_is_named_by_path() {
        let bad = process(json!({
            "name": "", "object": "planet",
            "steps": [
                {"name": "Manager", "approvers": []},
                {"name": "Finance", "approvers": [{"type": "user", "id": "a"}, {"type": "user", "id": "b"}],
                 "rule": "quorum", "quorum": 3},
                {"name": "Both", "branches": [{"approvers": [{"type": "manager_chain", "levels": 0}]}],
                 "approvers": [{"type": "submitter_manager"}]},
                {"name": "Late", "approvers": [{"type": "role", "role": "king"}],
                 "timeout": {"after_seconds": 10, "remind_before_seconds": 10, "action": {"type": "approve"}}}
            ]
        }));
        let paths: Vec<String> = check(&bad).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "name",
                "object",
                "steps[0].approvers",
                "steps[1].quorum",
                "steps[2]",
                "steps[3].approvers[0].role",
                "steps[3].timeout.remind_before_seconds"
            ]
        );
        let empty = process(json!({"name": "x", "object": "opportunity", "steps": []}));
        assert_eq!(check(&empty)[0].0, "steps");
    }
}
