//! Roll-ups for plugins: the `[[rollups]]` an installation declares, resolved against
//! the tenant's schema and built when it is installed, upgraded or rolled back
//! ([`sync`]), and the answers to `records.rollup` ([`query`]).
//!
//! A roll-up query means one thing whoever asks: the records of the roll-up's object
//! shared with the group or any group below it *that the caller may see*, counted and
//! summed per dimension values, filtered and grouped by the query. Callers who see the
//! whole subtree — tenant admins and owners, calls with no user, members of the group
//! or of one of its ancestors — are answered from the totals the host keeps
//! (`store::rollups`), in time independent of the subtree's size. Anyone else gets
//! the same numbers computed live over what they may see, as any aggregate is. Both
//! paths go through one filter-and-group step here, so they cannot disagree on
//! semantics; the end-to-end tests compare them with a brute force.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::query::{self, AggregateRequest, Filter, Func, Kind, Measure, Op, Target};
use super::schema::ObjectSchema;
use super::{RecordError, RecordResult, Who, schema};
use crate::manifest::RollupSpec;
use crate::problem::FieldProblem;
use crate::store::rollups::{
    self as store, Definition, DimKind, Dimension, MAX_SUMS, Rollup, Source, SumField, Total, normalize, number_json,
};
use crate::store::{Db, Tx};

/// Most filters of one roll-up query.
pub const MAX_FILTERS: usize = 20;
/// Most dimension combinations a live (not kept) roll-up may produce.
const MAX_LIVE_GROUPS: u32 = 100_000;

/// Resolve a declared roll-up against the object's schema in the tenant. Problems
/// are reported at `rollups[i].dimensions[j]` / `rollups[i].sums[j]`.
pub async fn resolve(db: &Db, tenant: &str, index: usize, spec: &RollupSpec) -> Result<Definition, Vec<FieldProblem>> {
    let schema = schema(db, tenant, &spec.object).await.map_err(|e| {
        vec![FieldProblem {
            field: format!("rollups[{index}].object"),
            message: e.to_string(),
        }]
    })?;
    resolve_in(&schema, index, spec)
}

/// The problems of the roll-ups over standard objects, whose schema every tenant
/// shares — so a publisher hears of them at publish time, not at the first install.
pub fn check_standard(specs: &[RollupSpec]) -> Vec<FieldProblem> {
    let standard = super::schema::standard_objects();
    specs
        .iter()
        .enumerate()
        .filter_map(|(i, spec)| {
            let schema = standard.iter().find(|o| o.name == spec.object)?;
            resolve_in(schema, i, spec).err()
        })
        .flatten()
        .collect()
}

fn resolve_in(schema: &ObjectSchema, index: usize, spec: &RollupSpec) -> Result<Definition, Vec<FieldProblem>> {
    let at = |field: String| format!("rollups[{index}].{field}");
    let req = AggregateRequest {
        group_by: spec.dimensions.clone(),
        measures: std::iter::once(Measure {
            func: Func::Count,
            field: None,
            alias: None,
            filters: Vec::new(),
        })
        .chain(spec.sums.iter().map(|f| Measure {
            func: Func::Sum,
            field: Some(f.clone()),
            alias: None,
            filters: Vec::new(),
        }))
        .collect(),
        filters: Vec::new(),
    };
    let resolved = query::resolve_aggregate(schema, &req).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| {
                // `group_by[j]` → `dimensions[j]`; `measures[k].field` → `sums[k-1]`.
                let field = if let Some(rest) = p.field.strip_prefix("group_by") {
                    format!("dimensions{rest}")
                } else if let Some(k) = p
                    .field
                    .strip_prefix("measures[")
                    .and_then(|r| r.split(']').next())
                    .and_then(|k| k.parse::<usize>().ok())
                {
                    format!("sums[{}]", k.saturating_sub(1))
                } else {
                    p.field
                };
                FieldProblem {
                    field: at(field),
                    message: p.message,
                }
            })
            .collect::<Vec<_>>()
    })?;
    let source = |target: &Target| match target {
        Target::Column(c) => Source::Column((*c).to_string()),
        Target::Json(path) => Source::Json(path.clone()),
        Target::SharedWithin => Source::Json(Vec::new()),
    };
    let kind = |k: Kind| match k {
        Kind::Text => DimKind::Text,
        Kind::Number => DimKind::Number,
        Kind::Bool => DimKind::Bool,
    };
    Ok(Definition {
        dimensions: resolved
            .group_by
            .iter()
            .map(|g| Dimension {
                name: g.name.clone(),
                source: source(&g.field.target),
                kind: if g.bucket.is_some() {
                    DimKind::Text
                } else {
                    kind(g.field.kind)
                },
                bucket: g.bucket,
            })
            .collect(),
        sums: resolved
            .measures
            .iter()
            .skip(1)
            .zip(&spec.sums)
            .filter_map(|(m, name)| {
                m.field.as_ref().map(|f| SumField {
                    name: name.clone(),
                    source: source(&f.target),
                })
            })
            .collect(),
    })
}

/// Make the stored roll-ups of `plugin` in the tenant match `specs`, inside the
/// caller's transaction (an install, upgrade or rollback, so a failure changes
/// nothing): roll-ups no longer declared, or declared differently, are dropped; new
/// ones are built from the records as they are. A roll-up over an object the tenant
/// did not grant (`records:<object>:read`) is not kept. Returns every resolution
/// problem at once; nothing is written when there is one.
pub async fn sync(
    db: &Db,
    tx: &mut Tx<'_>,
    tenant: &str,
    plugin: &str,
    specs: &[RollupSpec],
    grants: &[String],
) -> Result<(), SyncError> {
    let mut wanted = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        if !grants.iter().any(|g| *g == format!("records:{}:read", spec.object)) {
            continue;
        }
        match resolve(db, tenant, i, spec).await {
            Ok(def) => {
                wanted.insert(spec.name.clone(), (spec.object.clone(), def));
            }
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        return Err(SyncError::Invalid(problems));
    }
    for existing in store::rollups_of_plugin(tx, tenant, plugin).await? {
        match wanted.get(&existing.name) {
            Some((object, def)) if *object == existing.object && *def == existing.definition => {
                wanted.remove(&existing.name);
            }
            _ => store::drop_rollup(tx, tenant, &existing.id).await?,
        }
    }
    for (name, (object, def)) in wanted {
        let (rollup, rows) = store::create_rollup(tx, tenant, plugin, &name, &object, &def).await?;
        tracing::info!(tenant, plugin, rollup = %rollup.name, rows, "roll-up built");
    }
    Ok(())
}

/// Drop every roll-up of `plugin` in the tenant (uninstall).
pub async fn drop_all(tx: &mut Tx<'_>, tenant: &str, plugin: &str) -> Result<(), SyncError> {
    for existing in store::rollups_of_plugin(tx, tenant, plugin).await? {
        store::drop_rollup(tx, tenant, &existing.id).await?;
    }
    Ok(())
}

/// Why [`sync`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A declared roll-up does not fit the tenant's schema.
    #[error("{}", .0.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldProblem>),
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A roll-up query: group by some of the roll-up's dimensions, keep the totals whose
/// dimension values pass every filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupQuery {
    /// Dimensions to group by, by their declared names (empty: one grand total).
    pub group_by: Vec<String>,
    /// Conditions on dimensions (`field` is a dimension's declared name, e.g.
    /// `close_date:month`; values compare as that dimension's values do).
    pub filters: Vec<Filter>,
}

/// The answer to a roll-up query.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupResult {
    /// One object per group: the group-by values, then `count` and `sum_<field>`.
    pub rows: Vec<Map<String, Value>>,
    /// Whether the kept totals answered (`false`: computed live).
    pub kept: bool,
}

/// A filter resolved against a dimension.
struct DimFilter {
    index: usize,
    op: Op,
    values: Vec<Value>,
    null: bool,
}

fn filter_value(d: &Dimension, v: &Value) -> Result<Value, String> {
    let out = match (d.kind, v) {
        (_, Value::Null) => return Err("needs a value".into()),
        (DimKind::Number, v) => normalize(DimKind::Number, None, v),
        (DimKind::Bool, Value::String(s)) if s == "true" || s == "false" => Value::Bool(s == "true"),
        (DimKind::Bool, v) => normalize(DimKind::Bool, None, v),
        (DimKind::Text, Value::String(s)) => Value::String(s.clone()),
        (DimKind::Text, Value::Number(n)) => Value::String(n.to_string()),
        (DimKind::Text, _) => return Err("needs a string".into()),
    };
    if out.is_null() {
        return Err(match d.kind {
            DimKind::Number => "needs a number".into(),
            DimKind::Bool => "needs true or false".into(),
            DimKind::Text => "needs a string".into(),
        });
    }
    Ok(out)
}

fn resolve_query(def: &Definition, q: &RollupQuery) -> Result<(Vec<usize>, Vec<DimFilter>), Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let names: Vec<&str> = def.dimensions.iter().map(|d| d.name.as_str()).collect();
    let unknown = |name: &str| {
        if names.is_empty() {
            format!("`{name}` is not a dimension of this roll-up (it has none)")
        } else {
            format!("`{name}` is not a dimension of this roll-up ({})", names.join(", "))
        }
    };
    let mut group_by = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, g) in q.group_by.iter().enumerate() {
        match names.iter().position(|n| n == g) {
            Some(_) if !seen.insert(g.as_str()) => problems.push(FieldProblem {
                field: format!("group_by[{i}]"),
                message: format!("`{g}` is listed twice"),
            }),
            Some(p) => group_by.push(p),
            None => problems.push(FieldProblem {
                field: format!("group_by[{i}]"),
                message: unknown(g),
            }),
        }
    }
    if q.filters.len() > MAX_FILTERS {
        problems.push(FieldProblem {
            field: "filters".into(),
            message: format!("at most {MAX_FILTERS} filters"),
        });
    }
    let mut filters = Vec::new();
    for (i, f) in q.filters.iter().enumerate() {
        let at = format!("filters[{i}]");
        let Some(index) = names.iter().position(|n| *n == f.field) else {
            problems.push(FieldProblem {
                field: format!("{at}.field"),
                message: unknown(&f.field),
            });
            continue;
        };
        let d = &def.dimensions[index];
        let parsed: Result<DimFilter, String> = match f.op {
            Op::IsNull => match f.value {
                Value::Bool(null) => Ok(DimFilter {
                    index,
                    op: f.op,
                    values: Vec::new(),
                    null,
                }),
                _ => Err("is_null needs true or false".into()),
            },
            Op::In => match &f.value {
                Value::Array(items) if !items.is_empty() && items.len() <= query::MAX_IN_VALUES => items
                    .iter()
                    .map(|v| filter_value(d, v))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|values| DimFilter {
                        index,
                        op: f.op,
                        values,
                        null: false,
                    }),
                _ => Err(format!("in needs an array of 1–{} values", query::MAX_IN_VALUES)),
            },
            Op::Contains | Op::Prefix if d.kind != DimKind::Text => Err(format!("`{}` is not text", d.name)),
            op => filter_value(d, &f.value).map(|v| DimFilter {
                index,
                op,
                values: vec![v],
                null: false,
            }),
        };
        match parsed {
            Ok(df) => filters.push(df),
            Err(message) => problems.push(FieldProblem {
                field: format!("{at}.value"),
                message,
            }),
        }
    }
    if problems.is_empty() {
        Ok((group_by, filters))
    } else {
        Err(problems)
    }
}

/// Order of dimension values in results: null, booleans, numbers, text.
fn compare(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            _ => 3,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => rank(a).cmp(&rank(b)),
    }
}

impl DimFilter {
    /// SQL's semantics: a missing value passes only `is_null`.
    fn passes(&self, v: &Value) -> bool {
        if self.op == Op::IsNull {
            return v.is_null() == self.null;
        }
        if v.is_null() {
            return false;
        }
        let same_kind = |t: &Value| std::mem::discriminant(v) == std::mem::discriminant(t);
        let target = &self.values[0];
        let cmp = || same_kind(target).then(|| compare(v, target));
        match self.op {
            Op::Eq => cmp() == Some(Ordering::Equal),
            Op::Ne => cmp().is_some_and(|o| o != Ordering::Equal),
            Op::Lt => cmp() == Some(Ordering::Less),
            Op::Lte => cmp().is_some_and(|o| o != Ordering::Greater),
            Op::Gt => cmp() == Some(Ordering::Greater),
            Op::Gte => cmp().is_some_and(|o| o != Ordering::Less),
            Op::In => self
                .values
                .iter()
                .any(|t| same_kind(t) && compare(v, t) == Ordering::Equal),
            Op::Contains => match (v, target) {
                (Value::String(s), Value::String(t)) => s.to_lowercase().contains(&t.to_lowercase()),
                _ => false,
            },
            Op::Prefix => match (v, target) {
                (Value::String(s), Value::String(t)) => s.starts_with(t.as_str()),
                _ => false,
            },
            Op::IsNull => unreachable!("handled above"),
        }
    }
}

/// Filter the totals and sum them per group-by values, in result order.
fn regroup(def: &Definition, totals: Vec<Total>, group_by: &[usize], filters: &[DimFilter]) -> Vec<Map<String, Value>> {
    let mut groups: Vec<(Vec<Value>, i64, [f64; MAX_SUMS])> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for t in totals {
        if !filters
            .iter()
            .all(|f| f.passes(t.dims.get(f.index).unwrap_or(&Value::Null)))
        {
            continue;
        }
        let key: Vec<Value> = group_by
            .iter()
            .map(|i| t.dims.get(*i).cloned().unwrap_or(Value::Null))
            .collect();
        let slot = *index.entry(Value::Array(key.clone()).to_string()).or_insert_with(|| {
            groups.push((key, 0, [0.0; MAX_SUMS]));
            groups.len() - 1
        });
        let g = &mut groups[slot];
        g.1 += t.n;
        for (a, b) in g.2.iter_mut().zip(&t.sums) {
            *a += b;
        }
    }
    if group_by.is_empty() && groups.is_empty() {
        groups.push((Vec::new(), 0, [0.0; MAX_SUMS]));
    }
    groups.sort_by(|a, b| {
        a.0.iter()
            .zip(&b.0)
            .map(|(x, y)| compare(x, y))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    groups
        .into_iter()
        .map(|(key, n, sums)| {
            let mut row = Map::new();
            for (i, v) in group_by.iter().zip(key) {
                row.insert(def.dimensions[*i].name.clone(), v);
            }
            row.insert("count".into(), n.into());
            for (s, total) in def.sums.iter().zip(sums) {
                // Sums carry float rounding; 1e-9 of a cent is not information.
                row.insert(format!("sum_{}", s.name), number_json((total * 1e9).round() / 1e9));
            }
            row
        })
        .collect()
}

/// The totals of `rollup` below `group` computed live over the records `who` sees.
async fn live_totals(db: &Db, who: &Who, rollup: &Rollup, group: &str) -> RecordResult<Vec<Total>> {
    let def = &rollup.definition;
    let schema = schema(db, &who.tenant, &rollup.object).await?;
    let req = AggregateRequest {
        group_by: def.dimensions.iter().map(|d| d.name.clone()).collect(),
        measures: std::iter::once(Measure {
            func: Func::Count,
            field: None,
            alias: Some("n".into()),
            filters: Vec::new(),
        })
        .chain(def.sums.iter().enumerate().map(|(i, s)| Measure {
            func: Func::Sum,
            field: Some(s.name.clone()),
            alias: Some(format!("s{i}")),
            filters: Vec::new(),
        }))
        .collect(),
        filters: vec![Filter {
            field: query::SHARED_WITHIN.into(),
            op: Op::Eq,
            value: Value::String(group.to_string()),
        }],
    };
    let q = query::resolve_aggregate(&schema, &req).map_err(RecordError::Invalid)?;
    let (rows, truncated) = db
        .aggregate_records(&who.tenant, &rollup.object, &who.viewer(), &q, MAX_LIVE_GROUPS)
        .await?;
    if truncated {
        return Err(RecordError::BadRequest(format!(
            "this roll-up has more than {MAX_LIVE_GROUPS} combinations of dimension values below the group"
        )));
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let dims = def
                .dimensions
                .iter()
                .map(|d| normalize(d.kind, None, row.get(&d.name).unwrap_or(&Value::Null)))
                .collect();
            let mut sums = [0.0; MAX_SUMS];
            for (i, slot) in sums.iter_mut().enumerate().take(def.sums.len()) {
                *slot = row.get(&format!("s{i}")).and_then(Value::as_f64).unwrap_or(0.0);
            }
            Total {
                dims,
                n: row.get("n").and_then(Value::as_i64).unwrap_or(0),
                sums,
            }
        })
        .collect())
}

/// Answer roll-up `name` of `plugin` for the subtree of `group`, as `who` sees it.
pub async fn query(
    db: &Db,
    who: &Who,
    plugin: &str,
    name: &str,
    group: &str,
    q: &RollupQuery,
) -> RecordResult<RollupResult> {
    let mut conn = db.reader().acquire().await.map_err(crate::store::StoreError::from)?;
    let Some(rollup) = store::rollup(&mut conn, &who.tenant, plugin, name).await? else {
        return Err(RecordError::NotFound(format!(
            "no roll-up `{name}`: the plugin's manifest must declare it in [[rollups]], and the tenant must grant the records it reads"
        )));
    };
    let (group_by, filters) = resolve_query(&rollup.definition, q).map_err(RecordError::Invalid)?;
    if crate::store::groups::group(&mut conn, &who.tenant, group)
        .await?
        .is_none()
    {
        return Err(RecordError::NotFound(format!("group {group} not found")));
    }
    let viewer = who.viewer();
    let kept = viewer.all || store::sees_subtree(&mut conn, &who.tenant, &who.user_id, group).await?;
    let totals = if kept {
        store::totals(&mut conn, &who.tenant, &rollup.id, group).await?
    } else {
        drop(conn);
        live_totals(db, who, &rollup, group).await?
    };
    let rows = regroup(&rollup.definition, totals, &group_by, &filters);
    if rows.len() > super::MAX_GROUPS as usize {
        return Err(RecordError::BadRequest(format!(
            "more than {} groups; add filters or group by fewer dimensions",
            super::MAX_GROUPS
        )));
    }
    Ok(RollupResult { rows, kept })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn def() -> Definition {
        let dim = |name: &str, kind, bucket| Dimension {
            name: name.into(),
            source: Source::Json(vec![name.split(':').next().unwrap_or(name).into()]),
            kind,
            bucket,
        };
        Definition {
            dimensions: vec![
                dim("stage", DimKind::Text, None),
                dim("probability", DimKind::Number, None),
                dim("close_date:month", DimKind::Text, Some(query::Bucket::Month)),
            ],
            sums: vec![SumField {
                name: "amount".into(),
                source: Source::Json(vec!["amount".into(), "value".into()]),
            }],
        }
    }

    fn total(stage: Value, p: Value, month: Value, n: i64, amount: f64) -> Total {
        Total {
            dims: vec![stage, p, month],
            n,
            sums: [amount, 0.0, 0.0, 0.0],
        }
    }

    fn sample() -> Vec<Total> {
        vec![
            total(json!("proposal"), json!(60), json!("2026-10"), 2, 300.0),
            total(json!("proposal"), json!(60), json!("2026-11"), 1, 100.0),
            total(json!("closed_won"), json!(100), json!("2026-10"), 3, 900.5),
            total(json!("closed_lost"), json!(0), json!("2026-12"), 1, 50.0),
            total(Value::Null, Value::Null, Value::Null, 4, 0.0),
        ]
    }

    fn run(q: RollupQuery) -> Result<Vec<Map<String, Value>>, Vec<FieldProblem>> {
        let d = def();
        let (g, f) = resolve_query(&d, &q)?;
        Ok(regroup(&d, sample(), &g, &f))
    }

    fn filter(field: &str, op: Op, value: Value) -> Filter {
        Filter {
            field: field.into(),
            op,
            value,
        }
    }

    #[test]
    fn no_grouping_is_one_grand_total() {
        let rows = run(RollupQuery::default()).unwrap();
        assert_eq!(
            rows,
            vec![json!({"count": 11, "sum_amount": 1350.5}).as_object().unwrap().clone()]
        );
    }

    #[test]
    fn groups_are_summed_and_ordered_with_missing_values_first() {
        let rows = run(RollupQuery {
            group_by: vec!["stage".into()],
            filters: vec![],
        })
        .unwrap();
        let stages: Vec<&Value> = rows.iter().map(|r| &r["stage"]).collect();
        assert_eq!(
            stages,
            [
                &Value::Null,
                &json!("closed_lost"),
                &json!("closed_won"),
                &json!("proposal")
            ]
        );
        assert_eq!(rows[3]["count"], json!(3));
        assert_eq!(rows[3]["sum_amount"], json!(400));
    }

    #[test]
    fn filters_follow_sql_semantics() {
        let count = |f: Vec<Filter>| {
            run(RollupQuery {
                group_by: vec![],
                filters: f,
            })
            .unwrap()[0]["count"]
                .clone()
        };
        assert_eq!(count(vec![filter("stage", Op::Eq, json!("proposal"))]), json!(3));
        // `ne` never matches a missing value.
        assert_eq!(count(vec![filter("stage", Op::Ne, json!("proposal"))]), json!(4));
        assert_eq!(
            count(vec![filter("close_date:month", Op::Gte, json!("2026-11"))]),
            json!(2)
        );
        assert_eq!(
            count(vec![
                filter("close_date:month", Op::Lt, json!("2026-11")),
                filter("probability", Op::Gte, json!(60))
            ]),
            json!(5)
        );
        assert_eq!(count(vec![filter("probability", Op::In, json!([0, "100"]))]), json!(4));
        assert_eq!(count(vec![filter("stage", Op::IsNull, json!(true))]), json!(4));
        assert_eq!(count(vec![filter("stage", Op::Prefix, json!("closed_"))]), json!(4));
        assert_eq!(count(vec![filter("stage", Op::Contains, json!("WON"))]), json!(3));
        assert_eq!(count(vec![filter("stage", Op::Eq, json!("none"))]), json!(0));
    }

    #[test]
    fn bad_queries_name_every_problem() {
        let problems = run(RollupQuery {
            group_by: vec!["region".into(), "stage".into(), "stage".into()],
            filters: vec![
                filter("amount", Op::Eq, json!(1)),
                filter("probability", Op::Eq, json!("high")),
                filter("probability", Op::Prefix, json!("1")),
                filter("stage", Op::In, json!([])),
            ],
        })
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "group_by[0]",
                "group_by[2]",
                "filters[0].field",
                "filters[1].value",
                "filters[2].value",
                "filters[3].value"
            ]
        );
        assert!(
            problems[0].message.contains("stage, probability, close_date:month"),
            "{problems:?}"
        );
    }
}
