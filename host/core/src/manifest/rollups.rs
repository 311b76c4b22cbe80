//! `[[rollups]]`: subtree totals a plugin asks the host to keep.
//!
//! ```toml
//! [[rollups]]
//! name = "pipeline"
//! object = "opportunity"
//! dimensions = ["stage", "probability", "close_date:month"]
//! sums = ["amount"]
//! ```
//!
//! For every group of the tenant the host then keeps, per combination of dimension
//! values, the number of records of `object` shared with the group or any group below
//! it, and the sums of the `sums` fields over them (see `store::rollups`). The plugin
//! reads them with `records.rollup`, as fast for a subtree of ten thousand groups as
//! for one.
//!
//! Here the manifest is checked on its own: names, limits, and that every field is
//! one the plugin declares for the object. Whether the fields exist, which are
//! numbers and which are dates is checked against the tenant's schema when the plugin
//! is installed.

use serde::Serialize;
use toml::{Table, Value};

use super::walk::{Ctx, is_ident, join};
use super::{FieldSet, RecordAccess};
use std::collections::BTreeMap;

/// Most roll-ups one plugin declares.
pub const MAX_ROLLUPS: usize = 8;
/// Most dimensions of one roll-up.
pub const MAX_DIMENSIONS: usize = 4;
/// Most summed fields of one roll-up.
pub const MAX_SUMS: usize = 4;
/// Time buckets a date dimension may have.
pub const BUCKETS: &[&str] = &["day", "month", "quarter", "year"];
/// Record metadata a dimension may name besides declared fields.
const META: &[&str] = &["owner_id", "created_at", "updated_at", "created_by", "updated_by"];

const KEYS: &[&str] = &["name", "object", "dimensions", "sums"];

/// One `[[rollups]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollupSpec {
    /// Unique within the manifest (`^[a-z][a-z0-9_]{0,62}$`).
    pub name: String,
    /// The CRM object measured; declared in `[capabilities.records]`.
    pub object: String,
    /// Up to four `field` or `field:bucket` (bucket `day|month|quarter|year`).
    pub dimensions: Vec<String>,
    /// Up to four numeric fields to sum.
    pub sums: Vec<String>,
}

fn dimension(d: &str, allowed: Option<&FieldSet>) -> Result<String, String> {
    let (field, bucket) = match d.split_once(':') {
        Some((f, b)) => (f, Some(b)),
        None => (d, None),
    };
    if !is_ident(field) {
        return Err(format!(
            "invalid dimension `{d}`; expected a field name, optionally with `:day|month|quarter|year`"
        ));
    }
    if let Some(b) = bucket
        && !BUCKETS.contains(&b)
    {
        return Err(format!(
            "unknown time bucket `{b}`; expected one of {}",
            BUCKETS.join(", ")
        ));
    }
    declared(field, allowed, true)?;
    Ok(d.to_string())
}

fn declared(field: &str, allowed: Option<&FieldSet>, meta_ok: bool) -> Result<(), String> {
    if meta_ok && META.contains(&field) {
        return Ok(());
    }
    match allowed {
        Some(set) if !set.allows(field) => Err(format!(
            "field `{field}` is not among the fields the plugin declares for this object"
        )),
        _ => Ok(()),
    }
}

/// Parse `[[rollups]]`, checking each against the declared record capabilities.
pub(super) fn rollups(cx: &mut Ctx, value: &Value, records: &BTreeMap<String, RecordAccess>) -> Vec<RollupSpec> {
    let Some(items) = value.as_array() else {
        cx.report("rollups", "expected an array of tables (`[[rollups]]`)");
        return Vec::new();
    };
    if items.len() > MAX_ROLLUPS {
        cx.report(
            "rollups",
            format!("must have at most {MAX_ROLLUPS} entries (found {})", items.len()),
        );
    }
    let mut out: Vec<RollupSpec> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("rollups[{i}]");
        let Some(t) = cx.expect::<&Table>(&path, item) else {
            continue;
        };
        if let Some(spec) = rollup(cx, &path, t, records) {
            if let Some(j) = out.iter().position(|o| o.name == spec.name) {
                cx.report(
                    join(&path, "name"),
                    format!("duplicate roll-up name `{}` (same as rollups[{j}])", spec.name),
                );
                continue;
            }
            out.push(spec);
        }
    }
    out
}

fn rollup(cx: &mut Ctx, path: &str, t: &Table, records: &BTreeMap<String, RecordAccess>) -> Option<RollupSpec> {
    cx.unknown_keys(path, t, KEYS);
    let before = cx.problems.len();
    let name = cx.require::<&str>(t, path, "name").and_then(|n| {
        let ok = is_ident(n)
            .then(|| n.to_string())
            .ok_or_else(|| format!("invalid roll-up name `{n}`; must match ^[a-z][a-z0-9_]{{0,62}}$"));
        cx.check(&join(path, "name"), ok)
    });
    let object = cx.require::<&str>(t, path, "object").and_then(|o| {
        let ok = match records.get(o) {
            Some(_) => Ok(o.to_string()),
            None => Err(format!(
                "object `{o}` is not declared in [capabilities.records]; a roll-up reads records the plugin may read"
            )),
        };
        cx.check(&join(path, "object"), ok)
    });
    let allowed = object.as_deref().and_then(|o| records.get(o)).map(|r| &r.fields);
    let dimensions = match cx.get::<&[Value]>(t, path, "dimensions") {
        None => Vec::new(),
        Some(items) => cx.string_list(
            &join(path, "dimensions"),
            items,
            MAX_DIMENSIONS,
            |d| dimension(d, allowed),
            |d: &String| d.split(':').next().unwrap_or(d).to_string(),
        ),
    };
    let sums = match cx.get::<&[Value]>(t, path, "sums") {
        None => Vec::new(),
        Some(items) => cx.string_list(
            &join(path, "sums"),
            items,
            MAX_SUMS,
            |s| {
                if !is_ident(s) {
                    return Err(format!("invalid field name `{s}`"));
                }
                declared(s, allowed, false).map(|()| s.to_string())
            },
            String::clone,
        ),
    };
    if cx.problems.len() != before {
        return None;
    }
    Some(RollupSpec {
        name: name?,
        object: object?,
        dimensions,
        sums,
    })
}
