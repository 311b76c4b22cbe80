//! Roll-ups: per-group *subtree* totals of records that the host keeps current.
//!
//! A plugin declares a roll-up in its manifest (`[[rollups]]`: an object, up to four
//! dimensions, up to four summed fields). For every group G of the tenant,
//! `rollup_totals` then holds, per combination of dimension values, how many records
//! are shared with G or a group below it — each record once, however many of those
//! groups it is shared with — and the sums of the fields over them. A subtree total
//! that a `shared_within` aggregate computes by visiting every record below G is then
//! one indexed read of G's rows.
//!
//! The totals are maintained in the transaction of every change that moves them:
//!
//! - a record's measured values change, or it is deleted or restored
//!   ([`record_changed`]): its old contribution leaves, and its new one enters, every
//!   group that covers it (the ancestors of the groups it is shared with);
//! - shares are added or removed ([`shares_changed`], a batch at a time): the groups
//!   that cover the record after the batch and not before gain it, and the reverse
//!   lose it;
//! - a subtree moves ([`before_move`], [`after_move`]): its root's totals leave the old
//!   ancestors that are not also new ones and enter the new ones — stored once as a
//!   delta that each of those ancestors references, folded into their rows later, in
//!   the background ([`deferred`]: a group's totals are its rows plus its pending
//!   deltas, exact at every moment); records shared with more than one group
//!   (`record_multi_shares`) are taken out before and put back after, so one shared
//!   both inside and outside the subtree stays counted once.
//!
//! Groups are created empty and deleted only without shares, so neither changes a
//! total. On PostgreSQL every change above first takes [`guard`], a share lock on the
//! tenant row, which a tree change or a roll-up build (holding the tenant's tree lock)
//! excludes: no change can read the labels of a tree that is being rewritten.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::groups::ancestor_ids;
use super::records::{Record, column_value, json_value};
use super::sql::{Arg, Builder};
use super::{StoreError, StoreResult, Tx, time};
use crate::records::query::Bucket;

mod deferred;
mod shares;
pub use deferred::{FOLD_INTERVAL, FoldReport, fold_pending, group_deleted, run_folder};
pub use shares::{ShareChange, shares_changed};

/// Most summed fields of one roll-up (columns `s0`…`s3`).
pub const MAX_SUMS: usize = 4;
/// Most dimensions of one roll-up.
pub const MAX_DIMENSIONS: usize = 4;
/// Rows written per statement when a roll-up is built.
const BUILD_BATCH: usize = 5_000;
/// Groups named per statement.
const GROUP_CHUNK: usize = 400;

/// Where a value lives in a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A metadata column (`owner_id`, `created_at`…).
    Column(String),
    /// A path inside the record's fields (`["amount", "value"]`).
    Json(Vec<String>),
}

impl Source {
    fn value(&self, r: &Record) -> Value {
        match self {
            Source::Column(c) => column_value(r, c),
            Source::Json(path) => json_value(r, path),
        }
    }
}

/// How a dimension's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DimKind {
    /// Text, in byte order.
    Text,
    /// A number.
    Number,
    /// `true` / `false`.
    Bool,
}

/// One dimension: a field, perhaps bucketed by time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimension {
    /// As declared and as named in results: `stage`, `close_date:month`.
    pub name: String,
    /// Where the value is read.
    pub source: Source,
    /// How it compares (text for a time bucket).
    pub kind: DimKind,
    /// Time bucket of a date or time field.
    pub bucket: Option<Bucket>,
}

/// One summed field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SumField {
    /// As declared (`amount`); results name the sum `sum_<name>`.
    pub name: String,
    /// Where the value is read (`amount` → its value).
    pub source: Source,
}

/// A roll-up resolved against its object's schema.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Definition {
    /// Dimensions, in declared order.
    pub dimensions: Vec<Dimension>,
    /// Summed fields, in declared order (at most [`MAX_SUMS`]).
    pub sums: Vec<SumField>,
}

/// What one record adds to the totals of every group that covers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// The dimension values, as a JSON array (the `dims` key).
    pub dims: String,
    /// The summed values (0 for an absent one).
    pub sums: [f64; MAX_SUMS],
}

impl Definition {
    /// The contribution of a live record.
    pub fn contribution(&self, r: &Record) -> Contribution {
        let dims: Vec<Value> = self
            .dimensions
            .iter()
            .map(|d| normalize(d.kind, d.bucket, &d.source.value(r)))
            .collect();
        let mut sums = [0.0; MAX_SUMS];
        for (slot, s) in sums.iter_mut().zip(&self.sums) {
            *slot = number_of(&s.source.value(r)).unwrap_or(0.0);
        }
        Contribution {
            dims: Value::Array(dims).to_string(),
            sums,
        }
    }
}

fn number_of(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n: &f64| n.is_finite())
}

/// A number as JSON: integral values as integers, so `100` and `100.0` group together.
pub fn number_json(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// A dimension value in its one canonical form, whether it comes from a record (when
/// totals are kept) or from SQL (when the same totals are computed live): numbers as
/// [`number_json`], booleans as `true`/`false` (SQL gives 0/1), time buckets as SQL's
/// `substr` cuts them.
pub fn normalize(kind: DimKind, bucket: Option<Bucket>, v: &Value) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    if let Some(b) = bucket {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Value::String(bucket_text(b, &text));
    }
    match kind {
        DimKind::Number => number_of(v).map_or(Value::Null, number_json),
        DimKind::Bool => match v {
            Value::Bool(b) => Value::Bool(*b),
            other => other.as_f64().map_or(Value::Null, |n| Value::Bool(n != 0.0)),
        },
        DimKind::Text => match v {
            Value::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        },
    }
}

/// `2026-11-24T10:00:00Z` → `2026-11-24` / `2026-11` / `2026-Q4` / `2026`, exactly as
/// the SQL of an aggregate's `field:bucket` key cuts it.
fn bucket_text(b: Bucket, s: &str) -> String {
    let prefix = |n: usize| s.chars().take(n).collect::<String>();
    match b {
        Bucket::Day => prefix(10),
        Bucket::Month => prefix(7),
        Bucket::Year => prefix(4),
        Bucket::Quarter => {
            let month: i64 = s.chars().skip(5).take(2).collect::<String>().parse().unwrap_or(0);
            format!("{}-Q{}", prefix(4), (month + 2) / 3)
        }
    }
}

/// A roll-up of one plugin in one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollup {
    /// Tenant.
    pub tenant_id: String,
    /// Id (ULID).
    pub id: String,
    /// The plugin that declared it.
    pub plugin_id: String,
    /// Its name in the manifest.
    pub name: String,
    /// The object measured.
    pub object: String,
    /// Resolved definition.
    pub definition: Definition,
    /// When it was built.
    pub created_at: String,
}

fn rollup_from(r: &sqlx::any::AnyRow) -> StoreResult<Rollup> {
    let definition: String = r.try_get("definition")?;
    Ok(Rollup {
        tenant_id: r.try_get("tenant_id")?,
        id: r.try_get("id")?,
        plugin_id: r.try_get("plugin_id")?,
        name: r.try_get("name")?,
        object: r.try_get("object")?,
        definition: serde_json::from_str(&definition)
            .map_err(|e| StoreError::Corrupt(format!("roll-up definition: {e}")))?,
        created_at: r.try_get("created_at")?,
    })
}

const ROLLUP_COLUMNS: &str = "tenant_id, id, plugin_id, name, object, definition, created_at";

/// The roll-ups of `plugin` in the tenant, by name.
pub async fn rollups_of_plugin(conn: &mut AnyConnection, tenant: &str, plugin: &str) -> StoreResult<Vec<Rollup>> {
    let rows = sqlx::query(&format!(
        "SELECT {ROLLUP_COLUMNS} FROM rollups WHERE tenant_id = $1 AND plugin_id = $2 ORDER BY name"
    ))
    .bind(tenant)
    .bind(plugin)
    .fetch_all(conn)
    .await?;
    rows.iter().map(rollup_from).collect()
}

/// The roll-ups over records of `object` in the tenant.
pub async fn rollups_of_object(conn: &mut AnyConnection, tenant: &str, object: &str) -> StoreResult<Vec<Rollup>> {
    let rows = sqlx::query(&format!(
        "SELECT {ROLLUP_COLUMNS} FROM rollups WHERE tenant_id = $1 AND object = $2 ORDER BY id"
    ))
    .bind(tenant)
    .bind(object)
    .fetch_all(conn)
    .await?;
    rows.iter().map(rollup_from).collect()
}

/// Every roll-up of the tenant.
async fn rollups_of_tenant(conn: &mut AnyConnection, tenant: &str) -> StoreResult<Vec<Rollup>> {
    let rows = sqlx::query(&format!(
        "SELECT {ROLLUP_COLUMNS} FROM rollups WHERE tenant_id = $1 ORDER BY id"
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    rows.iter().map(rollup_from).collect()
}

/// Roll-up `name` of `plugin` in the tenant.
pub async fn rollup(conn: &mut AnyConnection, tenant: &str, plugin: &str, name: &str) -> StoreResult<Option<Rollup>> {
    let row = sqlx::query(&format!(
        "SELECT {ROLLUP_COLUMNS} FROM rollups WHERE tenant_id = $1 AND plugin_id = $2 AND name = $3"
    ))
    .bind(tenant)
    .bind(plugin)
    .bind(name)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(rollup_from).transpose()
}

/// Take the tenant's roll-up guard for the rest of the transaction (PostgreSQL: a
/// share lock on the tenant row, which the tree lock of a move or a build excludes;
/// SQLite's single writer needs nothing). Every change that moves totals takes it
/// *before* reading which roll-ups exist, so a build never misses a change that
/// committed while it ran.
pub async fn guard(tx: &mut Tx<'_>, tenant: &str) -> StoreResult<()> {
    if tx.backend_name().eq_ignore_ascii_case("postgresql") {
        sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR SHARE")
            .bind(tenant)
            .fetch_optional(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A live record by id, whatever its object.
async fn live_record(conn: &mut AnyConnection, tenant: &str, id: &str) -> StoreResult<Option<Record>> {
    let row = sqlx::query(&format!(
        "SELECT {} FROM records r WHERE r.tenant_id = $1 AND r.id = $2 AND r.deleted_at IS NULL",
        super::records::COLUMNS
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(super::records::from_row).transpose()
}

/// Which groups a change applies to, as a `SELECT … AS g` over bound parameters.
enum Groups<'a> {
    /// Every group covering the record: the ancestors of the groups it is shared with.
    CoveringRecord(&'a str),
    /// These groups.
    Listed(&'a [String]),
}

impl Groups<'_> {
    fn select(&self, b: &mut Builder, t: &str) -> String {
        match self {
            Groups::CoveringRecord(record) => {
                let r = b.text(*record);
                // The record's share groups and their ancestors, by parent links.
                format!(
                    "WITH RECURSIVE up(id, parent_id) AS (\
                     SELECT d.id, d.parent_id FROM record_shares s CROSS JOIN groups d \
                     WHERE s.tenant_id = {t} AND s.record_id = {r} AND d.tenant_id = {t} AND d.id = s.group_id \
                     UNION SELECT g.id, g.parent_id FROM up CROSS JOIN groups g WHERE g.tenant_id = {t} AND g.id = up.parent_id) \
                     SELECT id AS g FROM up"
                )
            }
            Groups::Listed(ids) => {
                let list: Vec<String> = ids.iter().map(|id| b.text(id.clone())).collect();
                format!(
                    "SELECT gr.id AS g FROM groups gr WHERE gr.tenant_id = {t} AND gr.id IN ({})",
                    list.join(", ")
                )
            }
        }
    }
}

const UPSERT: &str = " ON CONFLICT (tenant_id, rollup_id, group_id, dims) DO UPDATE SET \
     n = rollup_totals.n + excluded.n, s0 = rollup_totals.s0 + excluded.s0, \
     s1 = rollup_totals.s1 + excluded.s1, s2 = rollup_totals.s2 + excluded.s2, \
     s3 = rollup_totals.s3 + excluded.s3";

/// A change to the totals under one key: counts and sums to add (negative to remove).
#[derive(Debug, Clone, PartialEq)]
struct Delta {
    dims: String,
    n: i64,
    sums: [f64; MAX_SUMS],
}

impl Delta {
    /// `sign` × one record's contribution.
    fn of(c: &Contribution, sign: i64) -> Delta {
        Delta {
            dims: c.dims.clone(),
            n: sign,
            sums: c.sums.map(|s| s * sign as f64),
        }
    }

    /// What replacing contribution `old` by `new` changes: one delta per key (a key
    /// may appear only once in an upsert), none when nothing changes.
    fn replacing(old: Option<&Contribution>, new: Option<&Contribution>) -> Vec<Delta> {
        match (old, new) {
            (Some(o), Some(n)) if o.dims == n.dims => {
                let mut sums = [0.0; MAX_SUMS];
                for (i, slot) in sums.iter_mut().enumerate() {
                    *slot = n.sums[i] - o.sums[i];
                }
                if sums == [0.0; MAX_SUMS] {
                    Vec::new()
                } else {
                    vec![Delta {
                        dims: n.dims.clone(),
                        n: 0,
                        sums,
                    }]
                }
            }
            _ => old
                .map(|c| Delta::of(c, -1))
                .into_iter()
                .chain(new.map(|c| Delta::of(c, 1)))
                .collect(),
        }
    }
}

/// Add each delta of one record to roll-up `rollup` at `groups`, in
/// one statement whose rows go in (group, key) order — so two transactions changing
/// totals of the same groups lock their rows in the same order and cannot deadlock on
/// them (PostgreSQL). Rows whose count reaches zero are removed, which also drops any
/// rounding left in their sums.
async fn apply(tx: &mut Tx<'_>, tenant: &str, rollup: &str, changes: &[Delta], groups: &Groups<'_>) -> StoreResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut b = Builder::new("");
    let t = b.text(tenant);
    let id = b.text(rollup);
    let mut rows = Vec::with_capacity(changes.len());
    for c in changes {
        let dims = b.text(c.dims.clone());
        let n = b.arg(Arg::Int(c.n));
        let sums: Vec<String> = c
            .sums
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{} AS s{i}", b.arg(Arg::Float(*s))))
            .collect();
        rows.push(format!("SELECT {dims} AS dims, {n} AS n, {}", sums.join(", ")));
    }
    let select = groups.select(&mut b, &t);
    b.push(&format!(
        "INSERT INTO rollup_totals (tenant_id, rollup_id, group_id, dims, n, s0, s1, s2, s3) \
         SELECT {t}, {id}, x.g, d.dims, d.n, d.s0, d.s1, d.s2, d.s3 FROM ({select}) x CROSS JOIN ({}) d \
         WHERE x.g IS NOT NULL ORDER BY x.g, d.dims{UPSERT}{RETURNING}",
        rows.join(" UNION ALL ")
    ));
    let emptied = emptied(b.query().fetch_all(&mut **tx).await?)?;
    delete_empty(tx, tenant, rollup, &emptied).await
}

/// The upserts return each row they touched with its new count.
const RETURNING: &str = " RETURNING group_id, dims, n";

/// The (group, key) of the returned rows whose count reached zero.
fn emptied(rows: Vec<sqlx::any::AnyRow>) -> StoreResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for r in rows {
        if r.try_get::<i64, _>("n")? == 0 {
            out.push((r.try_get("group_id")?, r.try_get("dims")?));
        }
    }
    Ok(out)
}

/// Delete the totals an upsert just brought to a count of zero — unless the group
/// references deltas of moves not yet folded: its rows are then only part of its
/// totals, and a zero count may come with sums that the deltas need (a record counted
/// through a delta deleted, another with the same key added: count 0, sums the
/// difference). The fold clears such rows once it has folded the group's deltas.
///
/// By their exact keys — so the
/// statement never depends on the planner's view of a table that may have just
/// grown by a million rows (PostgreSQL once chose a scan of every total for an
/// `IN (subquery)` form: 280 ms writes at p95). Each branch is a whole primary key, so
/// every `OR` branch is one index lookup: with the tenant and roll-up outside the
/// branches, or bound once for all of them, SQLite read every total of the roll-up
/// instead (27 ms per write at 20k territories, 160 ms at 100k).
async fn delete_empty(tx: &mut Tx<'_>, tenant: &str, rollup: &str, rows: &[(String, String)]) -> StoreResult<()> {
    for chunk in rows.chunks(GROUP_CHUNK) {
        let mut b = Builder::new("");
        let keys: Vec<String> = chunk
            .iter()
            .map(|(g, d)| {
                // Arguments of their own in every branch: SQLite factors terms that
                // the branches share (the same `?`) out of the `OR`, and then reads
                // the roll-up's whole key range.
                let t = b.text(tenant);
                let id = b.text(rollup);
                let g = b.text(g.clone());
                let d = b.text(d.clone());
                format!(
                    "(tenant_id = {t} AND rollup_id = {id} AND group_id = {g} AND dims = {d} AND n = 0 \
                     AND NOT EXISTS (SELECT 1 FROM rollup_pending p \
                     WHERE p.tenant_id = {t} AND p.rollup_id = {id} AND p.group_id = {g}))"
                )
            })
            .collect();
        b.push(&format!("DELETE FROM rollup_totals WHERE {}", keys.join(" OR ")));
        b.query().execute(&mut **tx).await?;
    }
    Ok(())
}

/// A record changed: `before` and `after` are its live states (`None` while deleted),
/// e.g. `(Some, Some)` for an update, `(Some, None)` for a delete.
pub async fn record_changed(
    tx: &mut Tx<'_>,
    tenant: &str,
    before: Option<&Record>,
    after: Option<&Record>,
) -> StoreResult<()> {
    let Some(object) = before.or(after).map(|r| r.object.clone()) else {
        return Ok(());
    };
    let id = before.or(after).map(|r| r.id.clone()).unwrap_or_default();
    guard(tx, tenant).await?;
    for rollup in rollups_of_object(tx, tenant, &object).await? {
        let old = before.map(|r| rollup.definition.contribution(r));
        let new = after.map(|r| rollup.definition.contribution(r));
        let changes = Delta::replacing(old.as_ref(), new.as_ref());
        apply(tx, tenant, &rollup.id, &changes, &Groups::CoveringRecord(&id)).await?;
    }
    Ok(())
}

/// What [`before_move`] took out, for [`after_move`] to put back.
#[derive(Debug, Default)]
pub struct PendingMove {
    /// Ancestors gained by the move.
    gained: Vec<String>,
    /// Per roll-up with totals in the subtree: the delta holding them.
    deltas: Vec<(String, String)>,
    /// Records shared with several groups, one inside the subtree, taken out whole.
    recount: Vec<(Record, Vec<Rollup>)>,
}

/// First half of moving `group`'s subtree under `new_parent` (`None`: to the root
/// level), called in the move's transaction, under the tree lock, *before* the
/// hierarchy changes: takes out the records shared with several groups one of which
/// is in the subtree, then the subtree's totals from the ancestors it loses — stored
/// once as a delta that those ancestors reference with sign -1 ([`deferred`]).
pub async fn before_move(
    tx: &mut Tx<'_>,
    tenant: &str,
    group: &str,
    new_parent: Option<&str>,
) -> StoreResult<Option<PendingMove>> {
    let rollups = rollups_of_tenant(tx, tenant).await?;
    if rollups.is_empty() {
        return Ok(None);
    }
    let old = ancestor_ids(tx, tenant, group, false).await?;
    let new = match new_parent {
        Some(p) => ancestor_ids(tx, tenant, p, true).await?,
        None => Vec::new(),
    };
    let (old_set, new_set): (HashSet<&String>, HashSet<&String>) = (old.iter().collect(), new.iter().collect());
    let lost: Vec<String> = old.iter().filter(|a| !new_set.contains(a)).cloned().collect();
    let gained: Vec<String> = new.iter().filter(|a| !old_set.contains(a)).cloned().collect();
    let mut pending = PendingMove {
        gained,
        deltas: Vec::new(),
        recount: Vec::new(),
    };
    if lost.is_empty() && pending.gained.is_empty() {
        return Ok(Some(pending));
    }
    let multi: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT m.record_id FROM groups a CROSS JOIN record_multi_shares m \
         CROSS JOIN record_shares s CROSS JOIN groups d \
         WHERE a.tenant_id = $1 AND a.id = $2 AND m.tenant_id = $1 AND s.tenant_id = $1 AND s.record_id = m.record_id \
         AND d.tenant_id = $1 AND d.id = s.group_id AND d.lft >= a.lft AND d.lft <= a.rgt",
    )
    .bind(tenant)
    .bind(group)
    .fetch_all(&mut **tx)
    .await?;
    for id in multi {
        let Some(r) = live_record(tx, tenant, &id).await? else {
            continue;
        };
        let of_object: Vec<Rollup> = rollups.iter().filter(|x| x.object == r.object).cloned().collect();
        if of_object.is_empty() {
            continue;
        }
        for rollup in &of_object {
            let c = rollup.definition.contribution(&r);
            apply(
                tx,
                tenant,
                &rollup.id,
                &[Delta::of(&c, -1)],
                &Groups::CoveringRecord(&r.id),
            )
            .await?;
        }
        pending.recount.push((r, of_object));
    }
    for rollup in &rollups {
        if let Some(delta) = deferred::snapshot(tx, tenant, &rollup.id, group).await? {
            deferred::refer(tx, tenant, &rollup.id, &delta, &lost, -1).await?;
            pending.deltas.push((rollup.id.clone(), delta));
        }
    }
    Ok(Some(pending))
}

/// Second half of a move, after the hierarchy changed: the ancestors gained reference
/// the subtree's deltas with sign +1, and the records taken out are counted again
/// where they now belong.
pub async fn after_move(tx: &mut Tx<'_>, tenant: &str, pending: PendingMove) -> StoreResult<()> {
    for (rollup, delta) in &pending.deltas {
        deferred::refer(tx, tenant, rollup, delta, &pending.gained, 1).await?;
    }
    for (r, rollups) in &pending.recount {
        for rollup in rollups {
            let c = rollup.definition.contribution(r);
            apply(
                tx,
                tenant,
                &rollup.id,
                &[Delta::of(&c, 1)],
                &Groups::CoveringRecord(&r.id),
            )
            .await?;
        }
    }
    Ok(())
}

/// One stored total: the dimension values, the count and the sums.
#[derive(Debug, Clone, PartialEq)]
pub struct Total {
    /// Dimension values in declared order.
    pub dims: Vec<Value>,
    /// Records counted.
    pub n: i64,
    /// Sums in declared order (unused slots are 0).
    pub sums: [f64; MAX_SUMS],
}

/// The totals of `rollup` for the subtree of `group`: its kept rows plus the deltas
/// of moves not yet folded into them ([`deferred`]).
pub async fn totals(conn: &mut AnyConnection, tenant: &str, rollup: &str, group: &str) -> StoreResult<Vec<Total>> {
    let rows = sqlx::query(&format!(
        "SELECT x.dims, CAST(SUM(x.n) AS BIGINT) AS n, SUM(x.s0) AS s0, SUM(x.s1) AS s1, SUM(x.s2) AS s2, \
         SUM(x.s3) AS s3 FROM ({}) x GROUP BY x.dims HAVING SUM(x.n) > 0",
        deferred::subtree_rows(conn.backend_name().eq_ignore_ascii_case("postgresql"))
    ))
    .bind(tenant)
    .bind(rollup)
    .bind(group)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let dims: String = r.try_get("dims")?;
            let dims: Vec<Value> =
                serde_json::from_str(&dims).map_err(|e| StoreError::Corrupt(format!("roll-up key: {e}")))?;
            Ok(Total {
                dims,
                n: r.try_get("n")?,
                sums: [r.try_get("s0")?, r.try_get("s1")?, r.try_get("s2")?, r.try_get("s3")?],
            })
        })
        .collect()
}

/// Whether `user` is a member of `group` or of one of its ancestors — and so sees
/// every record shared within the subtree.
pub async fn sees_subtree(conn: &mut AnyConnection, tenant: &str, user: &str, group: &str) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM groups d CROSS JOIN group_members m CROSS JOIN groups a \
         WHERE d.tenant_id = $1 AND d.id = $3 AND m.tenant_id = $1 AND m.user_id = $2 \
         AND a.tenant_id = $1 AND a.id = m.group_id AND d.lft >= a.lft AND d.lft <= a.rgt LIMIT 1",
    )
    .bind(tenant)
    .bind(user)
    .bind(group)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// Remove a roll-up and its totals. Pending references go first: a fold that has
/// taken some holds them until it commits, and the totals it wrote are then seen
/// (and deleted) by the statements after.
pub async fn drop_rollup(tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<()> {
    for sql in [
        "DELETE FROM rollup_pending WHERE tenant_id = $1 AND rollup_id = $2",
        "DELETE FROM rollup_deltas WHERE tenant_id = $1 AND rollup_id = $2",
        "DELETE FROM rollup_totals WHERE tenant_id = $1 AND rollup_id = $2",
        "DELETE FROM rollups WHERE tenant_id = $1 AND id = $2",
    ] {
        sqlx::query(sql).bind(tenant).bind(id).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Create roll-up `name` of `plugin` over `object` and compute its totals from the
/// records and shares as they are in this transaction, which holds the tree lock
/// (taken here), so no move and no other build runs meanwhile and no record or share
/// change interleaves (see [`guard`]). Returns the roll-up and how many total rows it
/// wrote.
///
/// One pass over the shared live records of the object: a record shared with one
/// group adds to that group's own totals, which are then summed up the tree, children
/// into parents; a record shared with several groups is added once to each group
/// covering it.
pub async fn create_rollup(
    tx: &mut Tx<'_>,
    tenant: &str,
    plugin: &str,
    name: &str,
    object: &str,
    definition: &Definition,
) -> StoreResult<(Rollup, u64)> {
    super::groups::lock_tree(tx, tenant).await?;
    let rollup = Rollup {
        tenant_id: tenant.to_string(),
        id: ulid::Ulid::new().to_string(),
        plugin_id: plugin.to_string(),
        name: name.to_string(),
        object: object.to_string(),
        definition: definition.clone(),
        created_at: time::now(),
    };
    let text = serde_json::to_string(definition).map_err(|e| StoreError::Invalid(e.to_string()))?;
    sqlx::query(&format!(
        "INSERT INTO rollups ({ROLLUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(tenant)
    .bind(&rollup.id)
    .bind(plugin)
    .bind(name)
    .bind(object)
    .bind(text)
    .bind(&rollup.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if super::is_unique_violation(&e) {
            StoreError::Conflict(format!("plugin {plugin} already has a roll-up named {name}"))
        } else {
            e.into()
        }
    })?;
    let written = build::totals(tx, &rollup).await?;
    if tx.backend_name().eq_ignore_ascii_case("postgresql") {
        // The table may have just grown by millions of rows: let the planner know
        // before the next change reads it.
        sqlx::query("ANALYZE rollup_totals").execute(&mut **tx).await?;
    }
    Ok((rollup, written))
}

mod build {
    //! Computing a roll-up's totals from scratch (see [`super::create_rollup`]).

    use futures_util::TryStreamExt;

    use super::*;

    /// Counts and sums per dimension key.
    type Sums = HashMap<String, (i64, [f64; MAX_SUMS])>;

    fn add(into: &mut Sums, dims: &str, n: i64, sums: &[f64; MAX_SUMS]) {
        let slot = into.entry(dims.to_string()).or_insert((0, [0.0; MAX_SUMS]));
        slot.0 += n;
        for (a, b) in slot.1.iter_mut().zip(sums) {
            *a += b;
        }
    }

    /// Merge `b` into `a`, always folding the smaller map into the larger.
    fn merge(a: Sums, b: Sums) -> Sums {
        let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
        for (k, (n, s)) in small {
            add(&mut big, &k, n, &s);
        }
        big
    }

    pub(super) async fn totals(tx: &mut Tx<'_>, rollup: &Rollup) -> StoreResult<u64> {
        let tenant = rollup.tenant_id.as_str();
        // Each shared live record with its groups, in record order.
        let mut own: HashMap<String, Sums> = HashMap::new();
        let mut multi: Vec<(Contribution, Vec<String>)> = Vec::new();
        {
            let sql = format!(
                "SELECT {}, s.group_id AS share_group FROM record_shares s CROSS JOIN records r \
                 WHERE s.tenant_id = $1 AND s.object = $2 \
                 AND r.tenant_id = s.tenant_id AND r.id = s.record_id AND r.deleted_at IS NULL \
                 ORDER BY s.record_id",
                super::super::records::COLUMNS
            );
            let mut rows = sqlx::query(&sql).bind(tenant).bind(&rollup.object).fetch(&mut **tx);
            let mut current: Option<(Contribution, String, Vec<String>)> = None;
            let flush = |done: Option<(Contribution, String, Vec<String>)>,
                         own: &mut HashMap<String, Sums>,
                         multi: &mut Vec<(Contribution, Vec<String>)>| {
                if let Some((c, _, groups)) = done {
                    if let [only] = groups.as_slice() {
                        add(own.entry(only.clone()).or_default(), &c.dims, 1, &c.sums);
                    } else {
                        multi.push((c, groups));
                    }
                }
            };
            while let Some(row) = rows.try_next().await? {
                let group: String = row.try_get("share_group")?;
                let id: String = row.try_get("id")?;
                match &mut current {
                    Some((_, rid, groups)) if *rid == id => groups.push(group),
                    _ => {
                        let r = super::super::records::from_row(&row)?;
                        let c = rollup.definition.contribution(&r);
                        let done = current.replace((c, id, vec![group]));
                        flush(done, &mut own, &mut multi);
                    }
                }
            }
            flush(current.take(), &mut own, &mut multi);
        }

        // The tree: children of every group.
        let edges: Vec<(String, Option<String>)> = sqlx::query("SELECT id, parent_id FROM groups WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("parent_id")?)))
            .collect::<StoreResult<_>>()?;
        let parent: HashMap<&str, &str> = edges
            .iter()
            .filter_map(|(id, p)| p.as_deref().map(|p| (id.as_str(), p)))
            .collect();
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for (id, p) in &edges {
            if let Some(p) = p {
                children.entry(p.as_str()).or_default().push(id.as_str());
            }
        }

        // Records shared with several groups: once into each group covering them.
        let mut extra: HashMap<String, Sums> = HashMap::new();
        for (c, groups) in &multi {
            let mut covering: HashSet<&str> = HashSet::new();
            for g in groups {
                let mut at = Some(g.as_str());
                while let Some(x) = at {
                    if !covering.insert(x) {
                        break;
                    }
                    at = parent.get(x).copied();
                }
            }
            for g in covering {
                add(extra.entry(g.to_string()).or_default(), &c.dims, 1, &c.sums);
            }
        }

        // Post-order over every tree (iterative: depth is unbounded), summing each
        // group's own totals with its children's, writing each group as it completes.
        let mut writer = Writer::new(rollup);
        let roots = edges.iter().filter(|(_, p)| p.is_none()).map(|(id, _)| id.as_str());
        let mut done: HashMap<&str, Sums> = HashMap::new();
        for root in roots {
            let mut stack: Vec<(&str, bool)> = vec![(root, false)];
            while let Some((g, expanded)) = stack.pop() {
                let kids = children.get(g).map(Vec::as_slice).unwrap_or_default();
                if !expanded {
                    stack.push((g, true));
                    stack.extend(kids.iter().map(|k| (*k, false)));
                    continue;
                }
                let mut sums = own.remove(g).unwrap_or_default();
                for k in kids {
                    if let Some(child) = done.remove(k) {
                        sums = merge(sums, child);
                    }
                }
                let extra = extra.remove(g).unwrap_or_default();
                writer.group(tx, g, &sums, &extra).await?;
                done.insert(g, sums);
            }
        }
        writer.finish(tx).await
    }

    /// Batched INSERTs of total rows.
    struct Writer<'a> {
        rollup: &'a Rollup,
        rows: Vec<(String, String, i64, [f64; MAX_SUMS])>,
        written: u64,
    }

    impl<'a> Writer<'a> {
        fn new(rollup: &'a Rollup) -> Self {
            Writer {
                rollup,
                rows: Vec::new(),
                written: 0,
            }
        }

        async fn group(&mut self, tx: &mut Tx<'_>, g: &str, sums: &Sums, extra: &Sums) -> StoreResult<()> {
            let mut all: BTreeMap<&str, (i64, [f64; MAX_SUMS])> = BTreeMap::new();
            for (k, v) in sums.iter().chain(extra.iter()) {
                let slot = all.entry(k.as_str()).or_insert((0, [0.0; MAX_SUMS]));
                slot.0 += v.0;
                for (a, b) in slot.1.iter_mut().zip(&v.1) {
                    *a += b;
                }
            }
            for (k, (n, s)) in all {
                if n > 0 {
                    self.rows.push((g.to_string(), k.to_string(), n, s));
                }
                if self.rows.len() >= BUILD_BATCH {
                    self.flush(tx).await?;
                }
            }
            Ok(())
        }

        /// One statement per batch, its rows passed as one JSON array parameter and
        /// unpacked by the database (`json_each` / `jsonb_array_elements`): binding
        /// nine parameters per row cost ~25 µs a row through the driver, more than
        /// the inserts themselves.
        async fn flush(&mut self, tx: &mut Tx<'_>) -> StoreResult<()> {
            if self.rows.is_empty() {
                return Ok(());
            }
            let rows: Vec<Value> = self
                .rows
                .drain(..)
                .map(|(g, dims, n, s)| serde_json::json!([g, dims, n, s[0], s[1], s[2], s[3]]))
                .collect();
            let count = rows.len() as u64;
            let postgres = tx.backend_name().eq_ignore_ascii_case("postgresql");
            let sql = if postgres {
                "INSERT INTO rollup_totals (tenant_id, rollup_id, group_id, dims, n, s0, s1, s2, s3) \
                 SELECT $1, $2, e->>0, e->>1, (e->>2)::bigint, (e->>3)::float8, (e->>4)::float8, \
                 (e->>5)::float8, (e->>6)::float8 FROM jsonb_array_elements(CAST($3 AS jsonb)) AS e"
            } else {
                "INSERT INTO rollup_totals (tenant_id, rollup_id, group_id, dims, n, s0, s1, s2, s3) \
                 SELECT $1, $2, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), \
                 json_extract(j.value, '$[2]'), json_extract(j.value, '$[3]'), json_extract(j.value, '$[4]'), \
                 json_extract(j.value, '$[5]'), json_extract(j.value, '$[6]') FROM json_each($3) AS j"
            };
            sqlx::query(sql)
                .bind(&self.rollup.tenant_id)
                .bind(&self.rollup.id)
                .bind(Value::Array(rows).to_string())
                .execute(&mut **tx)
                .await?;
            self.written += count;
            Ok(())
        }

        async fn finish(mut self, tx: &mut Tx<'_>) -> StoreResult<u64> {
            self.flush(tx).await?;
            Ok(self.written)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_group_the_same_whether_stored_as_integers_or_floats() {
        assert_eq!(number_json(100.0), Value::from(100));
        assert_eq!(number_json(12.5), serde_json::json!(12.5));
        let d = |v: Value| normalize(DimKind::Number, None, &v);
        assert_eq!(d(serde_json::json!(100)), d(serde_json::json!(100.0)));
        assert_eq!(d(serde_json::json!("42")), Value::from(42));
        assert_eq!(d(Value::Null), Value::Null);
    }

    #[test]
    fn booleans_and_text_have_one_form() {
        assert_eq!(normalize(DimKind::Bool, None, &Value::from(1)), Value::Bool(true));
        assert_eq!(normalize(DimKind::Bool, None, &Value::Bool(false)), Value::Bool(false));
        assert_eq!(normalize(DimKind::Text, None, &Value::from(7)), Value::from("7"));
    }

    #[test]
    fn time_buckets_cut_like_sql() {
        let b = |bucket, s: &str| normalize(DimKind::Text, Some(bucket), &Value::from(s));
        assert_eq!(b(Bucket::Day, "2026-11-24T10:00:00Z"), Value::from("2026-11-24"));
        assert_eq!(b(Bucket::Month, "2026-11-24"), Value::from("2026-11"));
        assert_eq!(b(Bucket::Year, "2026-11-24"), Value::from("2026"));
        assert_eq!(b(Bucket::Quarter, "2026-11-24"), Value::from("2026-Q4"));
        assert_eq!(b(Bucket::Quarter, "2026-01-01"), Value::from("2026-Q1"));
        assert_eq!(b(Bucket::Quarter, "2026-03-31"), Value::from("2026-Q1"));
        assert_eq!(b(Bucket::Quarter, "2026-04-01"), Value::from("2026-Q2"));
    }

    #[test]
    fn a_contribution_reads_dimensions_and_sums_from_the_record() {
        let def = Definition {
            dimensions: vec![
                Dimension {
                    name: "stage".into(),
                    source: Source::Json(vec!["stage".into()]),
                    kind: DimKind::Text,
                    bucket: None,
                },
                Dimension {
                    name: "close_date:month".into(),
                    source: Source::Json(vec!["close_date".into()]),
                    kind: DimKind::Text,
                    bucket: Some(Bucket::Month),
                },
                Dimension {
                    name: "owner_id".into(),
                    source: Source::Column("owner_id".into()),
                    kind: DimKind::Text,
                    bucket: None,
                },
            ],
            sums: vec![SumField {
                name: "amount".into(),
                source: Source::Json(vec!["amount".into(), "value".into()]),
            }],
        };
        let r = Record {
            tenant_id: "t".into(),
            id: "r".into(),
            object: "opportunity".into(),
            owner_id: "u1".into(),
            data: serde_json::json!({"stage": "proposal", "close_date": "2026-11-24", "amount": {"value": 1200.5, "currency": "EUR"}}),
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
            created_by: None,
            updated_by: None,
            deleted_at: None,
        };
        let c = def.contribution(&r);
        assert_eq!(c.dims, r#"["proposal","2026-11","u1"]"#);
        assert_eq!(c.sums, [1200.5, 0.0, 0.0, 0.0]);
        let bare = Record {
            data: serde_json::json!({}),
            ..r
        };
        let c = def.contribution(&bare);
        assert_eq!(c.dims, r#"[null,null,"u1"]"#);
        assert_eq!(c.sums, [0.0; MAX_SUMS]);
    }
}
