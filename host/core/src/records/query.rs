//! Typed record queries: filters, sorting, field selection, cursors and aggregates,
//! parsed from query strings or JSON and resolved against the object's schema. The
//! result names *what* to compare; `store::records` turns it into SQL with every
//! value bound as a parameter.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schema::{FieldType, ObjectSchema};
use crate::problem::FieldProblem;

/// Largest page.
pub const MAX_LIMIT: u32 = 500;
/// Page size when none is given.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most filters in one query.
pub const MAX_FILTERS: usize = 20;
/// Most values in one `in` filter.
pub const MAX_IN_VALUES: usize = 500;
/// Most sort keys.
pub const MAX_SORT: usize = 3;
/// Most group-by keys of an aggregate.
pub const MAX_GROUP_BY: usize = 4;
/// Most measures of an aggregate.
pub const MAX_MEASURES: usize = 10;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `=`
    Eq,
    /// `≠` (records without the field do not match)
    Ne,
    /// `<`
    Lt,
    /// `≤`
    Lte,
    /// `>`
    Gt,
    /// `≥`
    Gte,
    /// one of a list
    In,
    /// text contains (case-insensitive)
    Contains,
    /// text starts with (case-sensitive)
    Prefix,
    /// `true`: the field is absent/null; `false`: it has a value
    IsNull,
}

impl Op {
    /// The operator named `s` (`eq`, `gte`, `is_null`, …).
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "in" => Op::In,
            "contains" => Op::Contains,
            "prefix" => Op::Prefix,
            "is_null" | "is-null" => Op::IsNull,
            _ => return None,
        })
    }
}

/// A filter as a client writes it: field, comparison, JSON value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Field name (`stage`), money member (`amount.currency`) or metadata (`owner_id`).
    pub field: String,
    /// Comparison (default `eq`).
    #[serde(default = "default_op")]
    pub op: Op,
    /// Value (an array for `in`, a boolean for `is_null`).
    #[serde(default)]
    pub value: Value,
}

fn default_op() -> Op {
    Op::Eq
}

/// How a resolved value compares in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text (byte order).
    Text,
    /// Number (double).
    Number,
    /// Boolean (0/1).
    Bool,
}

/// Where a field's value lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A column of `records` (metadata).
    Column(&'static str),
    /// A JSON path inside `records.data`.
    Json(Vec<String>),
    /// Not a value but a relation: the record is shared with one of the given groups
    /// or any of their descendants (filter [`SHARED_WITHIN`] only).
    SharedWithin,
}

/// Pseudo-field for filters: `shared_within = <group id>` keeps records shared with
/// that group or any group below it (`in`: below any of several groups; `ne`: shared
/// with none of the subtree). Territory roll-ups use it to aggregate a subtree in SQL.
/// It only narrows what the caller may already see.
pub const SHARED_WITHIN: &str = "shared_within";

fn shared_within(f: &Filter) -> Result<Resolved, String> {
    let ids: Vec<Value> = match (&f.op, &f.value) {
        (Op::Eq | Op::Ne, v @ Value::String(_)) => vec![v.clone()],
        (Op::In, Value::Array(a)) => a.clone(),
        (Op::In, Value::String(s)) => s.split(',').map(|v| Value::String(v.to_string())).collect(),
        _ => return Err(format!("`{SHARED_WITHIN}` takes eq, ne or in with group ids")),
    };
    if ids.is_empty() || ids.len() > MAX_IN_VALUES {
        return Err(format!("`{SHARED_WITHIN}` needs 1–{MAX_IN_VALUES} group ids"));
    }
    let values = ids
        .into_iter()
        .map(|v| match v {
            Value::String(s) if !s.is_empty() && s.len() <= 100 => Ok(Bound::Text(s)),
            _ => Err(format!("`{SHARED_WITHIN}` needs group ids (non-empty strings)")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Resolved {
        field: FieldRef {
            name: SHARED_WITHIN.into(),
            target: Target::SharedWithin,
            kind: Kind::Text,
        },
        op: f.op,
        values,
        null: false,
    })
}

/// A field resolved against the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef {
    /// The name the client used.
    pub name: String,
    /// Where it lives.
    pub target: Target,
    /// How it compares.
    pub kind: Kind,
}

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// Text.
    Text(String),
    /// Number.
    Number(f64),
    /// Boolean as 0/1.
    Bool(i64),
}

/// A filter resolved against the schema, ready for SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The field.
    pub field: FieldRef,
    /// Comparison.
    pub op: Op,
    /// Values (one, or several for `in`; none for `is_null`).
    pub values: Vec<Bound>,
    /// For `is_null`: whether null is wanted.
    pub null: bool,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The field.
    pub field: FieldRef,
    /// Descending (nulls last) rather than ascending (nulls first).
    pub desc: bool,
}

/// Which records a listing includes by deletion state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deleted {
    /// Only live records.
    #[default]
    Exclude,
    /// Live and deleted.
    Include,
    /// Only deleted (the recycle bin).
    Only,
}

/// A resolved listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// Filters (all must hold).
    pub filters: Vec<Resolved>,
    /// Sort keys (then id).
    pub sort: Vec<SortKey>,
    /// Fields to return (`None`: all).
    pub fields: Option<Vec<String>>,
    /// Position after which to continue.
    pub cursor: Option<Cursor>,
    /// Page size.
    pub limit: u32,
    /// Deletion state.
    pub deleted: Deleted,
}

/// Keyset position: the sort values and id of the last record of the previous page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// One value per sort key (`null` for missing).
    pub values: Vec<Value>,
    /// Record id.
    pub id: String,
}

impl Cursor {
    /// Opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parse the text form; `sort_len` must match the query's sort.
    pub fn decode(s: &str, sort_len: usize) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        let c: Cursor = serde_json::from_slice(&bytes).ok()?;
        (c.values.len() == sort_len && c.id.len() <= 64).then_some(c)
    }
}

const META: &[(&str, Kind)] = &[
    ("id", Kind::Text),
    ("owner_id", Kind::Text),
    ("created_at", Kind::Text),
    ("updated_at", Kind::Text),
    ("created_by", Kind::Text),
    ("updated_by", Kind::Text),
    ("deleted_at", Kind::Text),
    ("version", Kind::Number),
];

/// Resolve a field name against the schema.
pub fn field_ref(schema: &ObjectSchema, name: &str) -> Result<FieldRef, String> {
    if let Some((col, kind)) = META.iter().find(|(c, _)| *c == name) {
        return Ok(FieldRef {
            name: name.into(),
            target: Target::Column(col),
            kind: *kind,
        });
    }
    let (base, member) = match name.split_once('.') {
        Some((b, m)) => (b, Some(m)),
        None => (name, None),
    };
    let def = schema
        .field(base)
        .ok_or_else(|| format!("`{base}` is not a field of {}", schema.name))?;
    let (path, kind) = match (def.field_type, member) {
        (FieldType::Money, None | Some("value")) => (vec![base.to_string(), "value".into()], Kind::Number),
        (FieldType::Money, Some("currency")) => (vec![base.to_string(), "currency".into()], Kind::Text),
        (FieldType::Money, Some(m)) => return Err(format!("an amount has `value` and `currency`, not `{m}`")),
        (_, Some(_)) => return Err(format!("`{base}` has no members")),
        (t, None) if t.is_numeric() => (vec![base.to_string()], Kind::Number),
        (FieldType::Boolean, None) => (vec![base.to_string()], Kind::Bool),
        (_, None) => (vec![base.to_string()], Kind::Text),
    };
    Ok(FieldRef {
        name: name.into(),
        target: Target::Json(path),
        kind,
    })
}

fn bound(field: &FieldRef, schema: &ObjectSchema, value: &Value) -> Result<Bound, String> {
    match field.kind {
        Kind::Number => value
            .as_f64()
            .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|n: &f64| n.is_finite())
            .map(Bound::Number)
            .ok_or_else(|| "needs a number".into()),
        Kind::Bool => match value {
            Value::Bool(b) => Ok(Bound::Bool(i64::from(*b))),
            Value::String(s) if s == "true" => Ok(Bound::Bool(1)),
            Value::String(s) if s == "false" => Ok(Bound::Bool(0)),
            _ => Err("needs true or false".into()),
        },
        Kind::Text => {
            let s = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err("needs a string".into()),
            };
            if s.chars().count() > 1_000 {
                return Err("values are at most 1000 characters".into());
            }
            if let Target::Json(path) = &field.target
                && let Some(def) = schema.field(&path[0])
                && def.field_type == FieldType::Enum
                && !def.values.contains(&s)
            {
                return Err(format!("`{s}` is not one of: {}", def.values.join(", ")));
            }
            Ok(Bound::Text(s))
        }
    }
}

/// Resolve client filters; every problem is returned with its path.
pub fn resolve_filters(
    schema: &ObjectSchema,
    filters: &[Filter],
    prefix: &str,
) -> Result<Vec<Resolved>, Vec<FieldProblem>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    if filters.len() > MAX_FILTERS {
        problems.push(FieldProblem {
            field: prefix.into(),
            message: format!("at most {MAX_FILTERS} filters"),
        });
    }
    for (i, f) in filters.iter().enumerate() {
        let path = format!("{prefix}[{i}]");
        let mut fail = |m: String| {
            problems.push(FieldProblem {
                field: format!("{path}.{}", f.field),
                message: m,
            })
        };
        if f.field == SHARED_WITHIN {
            match shared_within(f) {
                Ok(r) => out.push(r),
                Err(m) => fail(m),
            }
            continue;
        }
        let field = match field_ref(schema, &f.field) {
            Ok(r) => r,
            Err(m) => {
                fail(m);
                continue;
            }
        };
        let resolved = match f.op {
            Op::IsNull => match &f.value {
                Value::Bool(b) => Ok(Resolved {
                    field,
                    op: f.op,
                    values: vec![],
                    null: *b,
                }),
                Value::String(s) if s == "true" || s == "false" => Ok(Resolved {
                    field,
                    op: f.op,
                    values: vec![],
                    null: s == "true",
                }),
                _ => Err("is_null needs true or false".to_string()),
            },
            Op::In => {
                let items: Vec<Value> = match &f.value {
                    Value::Array(a) => a.clone(),
                    Value::String(s) => s.split(',').map(|v| Value::String(v.to_string())).collect(),
                    _ => vec![],
                };
                if items.is_empty() || items.len() > MAX_IN_VALUES {
                    Err(format!("`in` needs 1–{MAX_IN_VALUES} values"))
                } else {
                    items
                        .iter()
                        .map(|v| bound(&field, schema, v))
                        .collect::<Result<Vec<_>, _>>()
                        .map(|values| Resolved {
                            field,
                            op: f.op,
                            values,
                            null: false,
                        })
                }
            }
            Op::Contains | Op::Prefix if field.kind != Kind::Text => Err(format!("`{:?}` works on text fields", f.op)),
            Op::Lt | Op::Lte | Op::Gt | Op::Gte if field.kind == Kind::Bool => {
                Err("booleans compare only with eq and ne".into())
            }
            op => bound(&field, schema, &f.value).map(|v| Resolved {
                field,
                op,
                values: vec![v],
                null: false,
            }),
        };
        match resolved {
            Ok(r) => out.push(r),
            Err(m) => fail(m),
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// Parse `sort=-amount,name`.
pub fn parse_sort(schema: &ObjectSchema, sort: &str) -> Result<Vec<SortKey>, FieldProblem> {
    let mut keys = Vec::new();
    for part in sort.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (desc, name) = match part.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        let field = field_ref(schema, name).map_err(|m| FieldProblem {
            field: "sort".into(),
            message: m,
        })?;
        keys.push(SortKey { field, desc });
    }
    if keys.len() > MAX_SORT {
        return Err(FieldProblem {
            field: "sort".into(),
            message: format!("at most {MAX_SORT} sort keys"),
        });
    }
    if keys.last().is_some_and(|k| k.field.name == "id") {
        keys.pop();
    }
    Ok(keys)
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Func {
    /// Number of records (no field).
    Count,
    /// Sum.
    Sum,
    /// Average.
    Avg,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Number of distinct values.
    CountDistinct,
}

/// A measure as a client writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    /// Function.
    #[serde(rename = "fn")]
    pub func: Func,
    /// Field (not for `count`).
    #[serde(default)]
    pub field: Option<String>,
    /// Name in the result (default `fn` or `fn_field`).
    #[serde(default, rename = "as")]
    pub alias: Option<String>,
    /// Filters for this measure only, on top of the query's (SQL `FILTER (WHERE …)`):
    /// one pass over the records can then report, say, the open pipeline and the
    /// amount won this quarter side by side.
    #[serde(default, rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
}

/// Time buckets for grouping date and time fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// `2026-11-24`
    Day,
    /// `2026-11`
    Month,
    /// `2026-Q4`
    Quarter,
    /// `2026`
    Year,
}

/// A group-by key: a field, optionally bucketed by time (`close_date:month`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKey {
    /// The field.
    pub field: FieldRef,
    /// Time bucket for date/time fields.
    pub bucket: Option<Bucket>,
    /// Result name.
    pub name: String,
}

/// A resolved aggregate measure.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedMeasure {
    /// Function.
    pub func: Func,
    /// Field (`None` for count).
    pub field: Option<FieldRef>,
    /// Result name.
    pub alias: String,
    /// Filters for this measure only (empty: every record the query keeps).
    pub filters: Vec<Resolved>,
}

/// An aggregate request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateRequest {
    /// Up to four keys: `"stage"`, `"owner_id"`, `"close_date:month"`.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Measures (default: count).
    #[serde(default)]
    pub measures: Vec<Measure>,
    /// Filters.
    #[serde(default)]
    pub filters: Vec<Filter>,
}

/// A resolved aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateQuery {
    /// Group keys.
    pub group_by: Vec<GroupKey>,
    /// Measures.
    pub measures: Vec<ResolvedMeasure>,
    /// Filters.
    pub filters: Vec<Resolved>,
}

/// Resolve an aggregate request; all problems at once.
pub fn resolve_aggregate(schema: &ObjectSchema, req: &AggregateRequest) -> Result<AggregateQuery, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut p = |field: String, message: String| problems.push(FieldProblem { field, message });
    if req.group_by.len() > MAX_GROUP_BY {
        p("group_by".into(), format!("at most {MAX_GROUP_BY} keys"));
    }
    if req.measures.len() > MAX_MEASURES {
        p("measures".into(), format!("at most {MAX_MEASURES} measures"));
    }
    let mut group_by = Vec::new();
    for (i, key) in req.group_by.iter().enumerate() {
        let (name, bucket) = match key.split_once(':') {
            Some((n, b)) => (n, Some(b)),
            None => (key.as_str(), None),
        };
        let bucket = match bucket {
            None => None,
            Some("day") => Some(Bucket::Day),
            Some("month") => Some(Bucket::Month),
            Some("quarter") => Some(Bucket::Quarter),
            Some("year") => Some(Bucket::Year),
            Some(b) => {
                p(
                    format!("group_by[{i}]"),
                    format!("unknown bucket `{b}` (day, month, quarter, year)"),
                );
                continue;
            }
        };
        match field_ref(schema, name) {
            Ok(field) => {
                let is_time = matches!(&field.target, Target::Column(c) if c.ends_with("_at"))
                    || matches!(&field.target, Target::Json(path) if schema.field(&path[0]).is_some_and(|d| matches!(d.field_type, FieldType::Date | FieldType::Datetime)));
                if bucket.is_some() && !is_time {
                    p(
                        format!("group_by[{i}]"),
                        format!("`{name}` is not a date or time field"),
                    );
                    continue;
                }
                group_by.push(GroupKey {
                    field,
                    bucket,
                    name: key.clone(),
                });
            }
            Err(m) => p(format!("group_by[{i}]"), m),
        }
    }
    let defaults = [Measure {
        func: Func::Count,
        field: None,
        alias: None,
        filters: vec![],
    }];
    let measures_in: &[Measure] = if req.measures.is_empty() {
        &defaults
    } else {
        &req.measures
    };
    let mut measures = Vec::new();
    let mut aliases = std::collections::BTreeSet::new();
    for (i, m) in measures_in.iter().enumerate() {
        let func_name = serde_json::to_value(m.func)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let field = match (m.func, &m.field) {
            (Func::Count, None) => None,
            (Func::Count, Some(_)) => {
                p(
                    format!("measures[{i}].field"),
                    "count takes no field (use count_distinct)".into(),
                );
                continue;
            }
            (_, None) => {
                p(format!("measures[{i}].field"), format!("{func_name} needs a field"));
                continue;
            }
            (func, Some(name)) => match field_ref(schema, name) {
                Ok(f) if matches!(func, Func::Sum | Func::Avg) && f.kind != Kind::Number => {
                    p(
                        format!("measures[{i}].field"),
                        format!("{func_name} needs a numeric field; `{name}` is not"),
                    );
                    continue;
                }
                Ok(f) => Some(f),
                Err(e) => {
                    p(format!("measures[{i}].field"), e);
                    continue;
                }
            },
        };
        let alias = m.alias.clone().unwrap_or_else(|| match &field {
            None => func_name.clone(),
            Some(f) => format!("{func_name}_{}", f.name.replace('.', "_")),
        });
        if !super::schema::is_identifier(&alias) || !aliases.insert(alias.clone()) {
            p(
                format!("measures[{i}].as"),
                format!("`{alias}` is not a unique lowercase name"),
            );
            continue;
        }
        let filters = match resolve_filters(schema, &m.filters, &format!("measures[{i}].where")) {
            Ok(f) => f,
            Err(errors) => {
                for e in errors {
                    p(e.field, e.message);
                }
                continue;
            }
        };
        measures.push(ResolvedMeasure {
            func: m.func,
            field,
            alias,
            filters,
        });
    }
    let filters = match resolve_filters(schema, &req.filters, "filters") {
        Ok(f) => f,
        Err(mut e) => {
            problems.append(&mut e);
            vec![]
        }
    };
    if problems.is_empty() {
        Ok(AggregateQuery {
            group_by,
            measures,
            filters,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::schema::standard_objects;
    use serde_json::json;

    fn opp() -> ObjectSchema {
        standard_objects()
            .into_iter()
            .find(|o| o.name == "opportunity")
            .unwrap()
    }

    #[test]
    fn bad_filters_are_all_reported() {
        let filters = vec![
            Filter {
                field: "stgae".into(),
                op: Op::Eq,
                value: json!("x"),
            },
            Filter {
                field: "stage".into(),
                op: Op::Eq,
                value: json!("won"),
            },
            Filter {
                field: "amount".into(),
                op: Op::Gt,
                value: json!("lots"),
            },
            Filter {
                field: "amount".into(),
                op: Op::Contains,
                value: json!("1"),
            },
        ];
        let problems = resolve_filters(&opp(), &filters, "filter").unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[1].message.contains("closed_won"));
    }

    #[test]
    fn shared_within_resolves_group_ids_and_rejects_other_shapes() {
        let f = |op, value| Filter {
            field: SHARED_WITHIN.into(),
            op,
            value,
        };
        let ok = resolve_filters(
            &opp(),
            &[f(Op::Eq, json!("g1")), f(Op::In, json!(["g1", "g2"]))],
            "filter",
        )
        .unwrap();
        assert_eq!(ok[0].field.target, Target::SharedWithin);
        assert_eq!(ok[1].values, vec![Bound::Text("g1".into()), Bound::Text("g2".into())]);
        let bad = [
            f(Op::Gt, json!("g1")),
            f(Op::Eq, json!(5)),
            f(Op::In, json!([])),
            f(Op::Eq, json!("")),
        ];
        let problems = resolve_filters(&opp(), &bad, "filter").unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        // Not a sortable or groupable field.
        assert!(field_ref(&opp(), SHARED_WITHIN).is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            values: vec![json!(5.0), Value::Null],
            id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
        };
        assert_eq!(Cursor::decode(&c.encode(), 2), Some(c.clone()));
        assert_eq!(Cursor::decode(&c.encode(), 1), None);
        assert_eq!(Cursor::decode("!!!", 0), None);
    }

    #[test]
    fn aggregates_resolve_with_buckets_and_defaults() {
        let req = AggregateRequest {
            group_by: vec!["stage".into(), "close_date:quarter".into()],
            measures: vec![
                Measure {
                    func: Func::Sum,
                    field: Some("amount".into()),
                    alias: None,
                    filters: vec![],
                },
                Measure {
                    func: Func::Count,
                    field: None,
                    alias: None,
                    filters: vec![],
                },
            ],
            filters: vec![],
        };
        let q = resolve_aggregate(&opp(), &req).unwrap();
        assert_eq!(q.measures[0].alias, "sum_amount");
        assert_eq!(q.group_by[1].bucket, Some(Bucket::Quarter));
        let bad = AggregateRequest {
            group_by: vec!["stage:month".into()],
            measures: vec![Measure {
                func: Func::Sum,
                field: Some("stage".into()),
                alias: None,
                filters: vec![],
            }],
            filters: vec![],
        };
        assert_eq!(resolve_aggregate(&opp(), &bad).unwrap_err().len(), 2);
    }

    #[test]
    fn measures_take_their_own_filters_and_report_problems_by_path() {
        let req: AggregateRequest = serde_json::from_value(serde_json::json!({
            "group_by": ["probability"],
            "measures": [
                {"fn": "sum", "field": "amount", "as": "open_amount",
                 "where": [{"field": "stage", "op": "in", "value": ["proposal", "negotiation"]}]},
                {"fn": "count", "as": "won", "where": [{"field": "stage", "op": "eq", "value": "closed_won"}]},
                {"fn": "count"}
            ]
        }))
        .unwrap();
        let q = resolve_aggregate(&opp(), &req).unwrap();
        assert_eq!(q.measures[0].filters.len(), 1);
        assert_eq!(q.measures[0].filters[0].values.len(), 2);
        assert_eq!(q.measures[1].alias, "won");
        assert!(q.measures[2].filters.is_empty());

        let bad: AggregateRequest = serde_json::from_value(serde_json::json!({
            "measures": [{"fn": "count", "where": [{"field": "nope", "op": "eq", "value": 1}]}]
        }))
        .unwrap();
        let problems = resolve_aggregate(&opp(), &bad).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "measures[0].where[0].nope");
    }
}
