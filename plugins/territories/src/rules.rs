//! Assignment rules and their evaluation.
//!
//! A territory has rules; a rule matches an account when all its criteria hold.
//! Evaluation for one account:
//!
//! 1. A territory is *eligible* when, for every ancestor that has `apply_to_children`
//!    rules, the account matches at least one of them (a parent's rule narrows its
//!    whole subtree: "EMEA: country in [...]" gates every territory below EMEA).
//!    Archived territories are never eligible.
//! 2. An eligible territory *matches* when one of its own rules matches.
//! 3. Territories matched by a `keep-all` rule are all kept. Of those matched only by
//!    `most-specific` rules, one is kept: drop any that has a matched descendant, then
//!    take the best priority (lowest number), then the deepest, then the smallest id.

use std::collections::BTreeSet;

use plinth_sdk::Error;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::Model;

/// Account fields rules may test (the manifest declares them).
pub const TEXT_FIELDS: [&str; 5] = ["name", "type", "industry", "country", "city"];
pub const NUMBER_FIELDS: [&str; 2] = ["annual_revenue", "employees"];
const MAX_CRITERIA: usize = 20;
const MAX_RULES: usize = 50;
const MAX_VALUES: usize = 500;

/// One condition on an account field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Criterion {
    /// Field equals the value.
    Equals { field: String, value: Value },
    /// Field is one of the values.
    In { field: String, values: Vec<Value> },
    /// Text field starts with the prefix.
    Prefix { field: String, value: String },
    /// Numeric field in `[min, max)`; either end may be open.
    Range {
        field: String,
        #[serde(default)]
        min: Option<f64>,
        #[serde(default)]
        max: Option<f64>,
    },
}

/// Keep every matching territory, or only the most specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    MostSpecific,
    KeepAll,
}

/// A rule of a territory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Lower wins.
    #[serde(default)]
    pub priority: i64,
    pub criteria: Vec<Criterion>,
    #[serde(default)]
    pub apply_to_children: bool,
    #[serde(default)]
    pub mode: Mode,
}

fn field_of(c: &Criterion) -> &str {
    match c {
        Criterion::Equals { field, .. }
        | Criterion::In { field, .. }
        | Criterion::Prefix { field, .. }
        | Criterion::Range { field, .. } => field,
    }
}

/// Check a rule set; every problem is reported with its path.
pub fn validate(rules: &[Rule]) -> Result<(), Error> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut fail = |path: String, m: &str| problems.push((path, m.to_string()));
    if rules.len() > MAX_RULES {
        fail("rules".into(), "at most 50 rules per territory");
    }
    for (i, r) in rules.iter().enumerate() {
        if r.criteria.is_empty() || r.criteria.len() > MAX_CRITERIA {
            fail(format!("rules[{i}].criteria"), "1–20 criteria");
        }
        for (j, c) in r.criteria.iter().enumerate() {
            let path = format!("rules[{i}].criteria[{j}]");
            let f = field_of(c);
            let numeric = NUMBER_FIELDS.contains(&f);
            if !numeric && !TEXT_FIELDS.contains(&f) {
                fail(
                    format!("{path}.field"),
                    "not a rule field (name, type, industry, country, city, annual_revenue, employees)",
                );
                continue;
            }
            let scalar_ok = |v: &Value| if numeric { v.is_number() } else { v.is_string() };
            match c {
                Criterion::Equals { value, .. } if !scalar_ok(value) => fail(
                    format!("{path}.value"),
                    if numeric { "needs a number" } else { "needs a string" },
                ),
                Criterion::In { values, .. } if values.is_empty() || values.len() > MAX_VALUES => {
                    fail(format!("{path}.values"), "1–500 values")
                }
                Criterion::In { values, .. } if !values.iter().all(scalar_ok) => fail(
                    format!("{path}.values"),
                    if numeric { "needs numbers" } else { "needs strings" },
                ),
                Criterion::Prefix { value, .. } if numeric || value.is_empty() => fail(
                    format!("{path}.value"),
                    "prefix needs a text field and a non-empty prefix",
                ),
                Criterion::Range { min, max, .. } => {
                    if !numeric {
                        fail(format!("{path}.field"), "range needs a numeric field");
                    } else if min.is_none() && max.is_none() {
                        fail(path.clone(), "range needs min or max");
                    } else if let (Some(a), Some(b)) = (min, max)
                        && a >= b
                    {
                        fail(path.clone(), "min must be below max");
                    }
                }
                _ => {}
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let summary = problems
        .iter()
        .map(|(p, m)| format!("{p}: {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(problems.into_iter().fold(
        Error::invalid(format!("invalid assignment rules: {summary}")),
        |e, (p, m)| e.with_field(p, m),
    ))
}

fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

pub fn matches(c: &Criterion, fields: &Map<String, Value>) -> bool {
    match c {
        Criterion::Equals { field, value } => match (fields.get(field), value) {
            (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (Some(a), b) => a == b,
            (None, _) => false,
        },
        Criterion::In { field, values } => match fields.get(field) {
            Some(Value::Number(a)) => values.iter().any(|v| v.as_f64() == a.as_f64()),
            Some(a) => values.contains(a),
            None => false,
        },
        Criterion::Prefix { field, value } => fields
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with(value.as_str())),
        Criterion::Range { field, min, max } => {
            num(fields.get(field)).is_some_and(|x| min.is_none_or(|m| x >= m) && max.is_none_or(|m| x < m))
        }
    }
}

pub fn rule_matches(r: &Rule, fields: &Map<String, Value>) -> bool {
    r.criteria.iter().all(|c| matches(c, fields))
}

/// The territories `fields` (an account) is assigned to under `model`, sorted.
pub fn assign(model: &Model, fields: &Map<String, Value>) -> Vec<String> {
    struct Hit<'a> {
        id: &'a str,
        keep_all: bool,
        priority: i64,
        depth: usize,
    }
    let mut hits: Vec<Hit<'_>> = Vec::new();
    for (id, t) in &model.by_id {
        if t.archived || t.rules.is_empty() {
            continue;
        }
        let matched: Vec<&Rule> = t.rules.iter().filter(|r| rule_matches(r, fields)).collect();
        if matched.is_empty() {
            continue;
        }
        let chain = model.ancestors_or_self(id);
        let eligible = chain.iter().skip(1).all(|a| {
            let Some(at) = model.by_id.get(*a) else { return true };
            if at.archived {
                return false;
            }
            let gates: Vec<&Rule> = at.rules.iter().filter(|r| r.apply_to_children).collect();
            gates.is_empty() || gates.iter().any(|r| rule_matches(r, fields))
        });
        if !eligible {
            continue;
        }
        hits.push(Hit {
            id,
            keep_all: matched.iter().any(|r| r.mode == Mode::KeepAll),
            priority: matched.iter().map(|r| r.priority).min().unwrap_or(0),
            depth: chain.len(),
        });
    }
    let mut out: BTreeSet<String> = hits.iter().filter(|h| h.keep_all).map(|h| h.id.to_string()).collect();
    let specific: Vec<&Hit<'_>> = hits.iter().filter(|h| !h.keep_all).collect();
    let best = specific
        .iter()
        .filter(|h| {
            !specific
                .iter()
                .any(|o| o.id != h.id && model.is_ancestor_or_self(h.id, o.id))
        })
        .min_by(|a, b| {
            (a.priority, std::cmp::Reverse(a.depth), a.id).cmp(&(b.priority, std::cmp::Reverse(b.depth), b.id))
        });
    if let Some(b) = best {
        out.insert(b.id.to_string());
    }
    out.into_iter().collect()
}
