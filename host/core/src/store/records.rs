//! CRM records: storage, visibility and queries. Every function takes the tenant;
//! every read that a user makes goes through the visibility predicate, computed in
//! SQL from the groups' nested intervals: a record is visible to its owner, to members of
//! any group it is shared with, and to members of any *ancestor* of such a group.
//! Owners and admins (`Viewer::all`) see everything in their tenant.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Row;

use super::sql::{Arg, Builder, any_json};
use super::{Db, Dialect, StoreError, StoreResult, Tx};
use crate::records::query::{
    AggregateQuery, Bound, Bucket, Cursor, Deleted, FieldRef, Func, Kind, ListQuery, Op, Resolved, Target,
};

/// A stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Tenant.
    pub tenant_id: String,
    /// Id (ULID).
    pub id: String,
    /// Object name.
    pub object: String,
    /// Owning user.
    pub owner_id: String,
    /// Field values (a JSON object).
    pub data: Value,
    /// Version, from 1, +1 per change.
    pub version: i64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Creator.
    pub created_by: Option<String>,
    /// Last changer.
    pub updated_by: Option<String>,
    /// Soft-deletion time.
    pub deleted_at: Option<String>,
}

/// Who is looking, for visibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The user.
    pub user_id: String,
    /// Sees everything in the tenant (owner/admin roles, or the host itself).
    pub all: bool,
}

/// Which record: tenant, object and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Object name.
    pub object: &'a str,
    /// Record id.
    pub id: &'a str,
}

/// Who changes a record, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// The user.
    pub by: &'a str,
    /// The time (`store::time::now()`).
    pub at: &'a str,
}

/// What access is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read.
    Read,
    /// Change or delete.
    Write,
}

/// Columns of a record row. `data` is TEXT on SQLite and `jsonb` on PostgreSQL (which
/// the `Any` driver cannot decode), so it is read as text on both.
pub(super) const COLUMNS: &str = "r.tenant_id, r.id, r.object, r.owner_id, CAST(r.data AS TEXT) AS data, r.version, r.created_at, r.updated_at, r.created_by, r.updated_by, r.deleted_at";

/// The placeholder for record data written as JSON text: PostgreSQL stores `jsonb`
/// (parsed once on write, so field expressions never re-parse the document).
fn data_param(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("${n}"),
        Dialect::Postgres => format!("CAST(${n} AS jsonb)"),
    }
}

pub(super) fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<Record> {
    let data: String = row.try_get("data")?;
    Ok(Record {
        tenant_id: row.try_get("tenant_id")?,
        id: row.try_get("id")?,
        object: row.try_get("object")?,
        owner_id: row.try_get("owner_id")?,
        data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(format!("record data: {e}")))?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        created_by: row.try_get("created_by")?,
        updated_by: row.try_get("updated_by")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

/// Default for [`Db::with_visibility_threshold`]: below this many shares reachable by
/// a user, listings start from the user's shares; above it, from the records index
/// (which then finds visible rows fast).
pub const SPARSE_SHARES: i64 = 5_000;

/// How long a chosen [`Plan`] is reused for the same viewer and object.
const PLAN_TTL: Duration = Duration::from_secs(30);
/// Most plans remembered at once (expired ones are dropped first, then all).
const PLAN_CACHE_MAX: usize = 10_000;

/// Visibility plans chosen recently, per (tenant, object, viewer). Choosing one
/// costs a capped count of the viewer's shares (a few milliseconds for a territory
/// member who sees tens of thousands of records); the choice only decides speed,
/// never the result, so a plan up to [`PLAN_TTL`] old is good enough, and paging
/// through a list or reloading it skips the count. Per process: each host of a
/// cluster learns its own.
#[derive(Debug, Default)]
pub(super) struct PlanCache {
    plans: Mutex<HashMap<PlanKey, (Plan, Instant)>>,
}

/// (tenant, object, viewer's user id).
type PlanKey = (String, String, String);

impl PlanCache {
    fn get(&self, tenant: &str, object: &str, user: &str) -> Option<Plan> {
        let plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        let key = (tenant.to_string(), object.to_string(), user.to_string());
        plans
            .get(&key)
            .filter(|(_, at)| at.elapsed() < PLAN_TTL)
            .map(|(plan, _)| *plan)
    }

    fn put(&self, tenant: &str, object: &str, user: &str, plan: Plan) {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if plans.len() >= PLAN_CACHE_MAX {
            plans.retain(|_, (_, at)| at.elapsed() < PLAN_TTL);
            if plans.len() >= PLAN_CACHE_MAX {
                plans.clear();
            }
        }
        let key = (tenant.to_string(), object.to_string(), user.to_string());
        plans.insert(key, (plan, Instant::now()));
    }
}

/// How the visibility predicate is evaluated (the result is the same either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Test each candidate record with a correlated EXISTS: cheap when the viewer
    /// sees a good share of the records, since a page fills after few rows.
    Probe,
    /// Enumerate the records shared with the viewer (plus their own) and look those
    /// up by primary key: cheap when the viewer sees few records, whatever the total.
    FromShares,
}

/// Append ` AND <record r is visible/writable by viewer in tenant>` to `b`, probing
/// each record: its shares and their groups, then the viewer's groups, then one
/// interval comparison per (share, group) pair: "does this group of the viewer's
/// contain the shared group?". The cost is a few key lookups per record, whatever the
/// depth of the tree. The join order is named (`CROSS JOIN` fixes it on SQLite;
/// PostgreSQL still plans freely): left to itself, SQLite started from the tenant's
/// whole closure table when there was one, which at 20,000 territories made one
/// record read by a member of the root take 20 ms.
///
/// `LIMIT 1 OFFSET 0` keeps the probe per record on PostgreSQL. Without it, the
/// planner may turn the `EXISTS` into a hashed subplan that first enumerates every
/// share the viewer reaches: a root member's first page of accounts took 470 ms that
/// way at 101k territories (1.5 ms probed), a region member's 40 ms (4 ms). An
/// `OFFSET` makes PostgreSQL leave the subquery as written (a constant `LIMIT` alone
/// would be dropped); SQLite, which always probes, needs the `LIMIT` for the
/// `OFFSET`. Aggregates, which read every visible record anyway, leave the choice
/// open ([`Reading::AllRows`]).
fn push_visibility(b: &mut Builder, tenant: &str, viewer: &Viewer, access: Access) {
    push_probe(b, tenant, viewer, access, Reading::FirstRows);
}

/// What a query with visibility reads of the rows it filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// One record, or the first page: probe each candidate.
    FirstRows,
    /// Every visible row (aggregates): let the database pick.
    AllRows,
}

fn push_probe(b: &mut Builder, tenant: &str, viewer: &Viewer, access: Access, reading: Reading) {
    if viewer.all {
        return;
    }
    let fence = match reading {
        Reading::FirstRows => " LIMIT 1 OFFSET 0",
        Reading::AllRows => "",
    };
    let t = b.text(tenant);
    let user = b.text(viewer.user_id.clone());
    let rw = if access == Access::Write {
        " AND s.access = 'read-write'"
    } else {
        ""
    };
    // d: the group a share names; a: a group of the viewer's, which sees it when d
    // lies within a's interval (a is d or one of its ancestors).
    b.push(&format!(
        " AND (r.owner_id = {user} OR EXISTS (SELECT 1 FROM record_shares s \
         CROSS JOIN groups d CROSS JOIN group_members m CROSS JOIN groups a \
         WHERE s.tenant_id = {t} AND s.record_id = r.id{rw} \
         AND d.tenant_id = s.tenant_id AND d.id = s.group_id \
         AND m.tenant_id = s.tenant_id AND m.user_id = {user} \
         AND a.tenant_id = m.tenant_id AND a.id = m.group_id AND d.lft >= a.lft AND d.lft <= a.rgt{fence}))"
    ));
}

/// Read visibility on records of `object` by the plan [`Db::visibility_plan`] chose:
/// [`Plan::Probe`] as [`push_visibility`] (per `reading`); [`Plan::FromShares`] starts from the viewer:
/// their groups → everything below them → those groups' shares of `object`, plus the
/// viewer's own records, computed once (the tenant and object are bound, nothing
/// refers to `r`).
fn push_visibility_as(
    b: &mut Builder,
    dialect: Dialect,
    tenant: &str,
    object: &str,
    viewer: &Viewer,
    plan: Plan,
    reading: Reading,
) {
    if viewer.all || plan == Plan::Probe {
        return push_probe(b, tenant, viewer, Access::Read, reading);
    }
    let ids = shared_ids(b, dialect, tenant, object, viewer);
    b.push(&format!(" AND r.id IN ({ids})"));
}

/// The ids of the records of `object` shared with `viewer` through their groups (and
/// everything below them), plus their own, as a `SELECT … AS id` with its arguments
/// bound in `b`. Starts from the viewer: their groups → every group within their
/// intervals (one index range each) → those groups' shares of `object`.
fn shared_ids(b: &mut Builder, dialect: Dialect, tenant: &str, object: &str, viewer: &Viewer) -> String {
    let t = b.text(tenant);
    let o = b.text(object);
    let user = b.text(viewer.user_id.clone());
    format!(
        "SELECT s.record_id AS id FROM {} \
         UNION SELECT own.id AS id FROM records own WHERE own.tenant_id = {t} AND own.owner_id = {user} AND own.object = {o}",
        reachable_shares(dialect, &t, &user, &o)
    )
}

/// The `FROM … WHERE …` of the shares of object `o` that user `user` of tenant `t`
/// reaches through their groups (`s` being the share), the three given as SQL
/// expressions. The viewer's groups, then the groups within their intervals, then
/// each one's shares by the `(group, object)` index — in that order: `CROSS JOIN`
/// fixes it on SQLite; on PostgreSQL, which cannot estimate how many groups lie
/// within an interval (it guesses ~1/9 of the tenant's, against 10 for an area of
/// the territories bench), a `LATERAL … OFFSET 0` lookup per group keeps it from
/// hash-joining every share of the tenant (an area member's page: 16 ms at 20,000
/// accounts). Plans use this only for viewers who reach few shares.
fn reachable_shares(dialect: Dialect, t: &str, user: &str, o: &str) -> String {
    let groups = "group_members m CROSS JOIN groups a CROSS JOIN groups d";
    let viewer = format!(
        "m.tenant_id = {t} AND m.user_id = {user} AND a.tenant_id = m.tenant_id AND a.id = m.group_id \
         AND d.tenant_id = a.tenant_id AND d.lft >= a.lft AND d.lft <= a.rgt"
    );
    match dialect {
        Dialect::Sqlite => format!(
            "{groups} CROSS JOIN record_shares s WHERE {viewer} \
             AND s.tenant_id = d.tenant_id AND s.group_id = d.id AND s.object = {o}"
        ),
        Dialect::Postgres => format!(
            "{groups} CROSS JOIN LATERAL (SELECT x.record_id FROM record_shares x \
             WHERE x.tenant_id = d.tenant_id AND x.group_id = d.id AND x.object = {o} OFFSET 0) s WHERE {viewer}"
        ),
    }
}

/// Whether `viewer` has `access` to the live record `record_id` of the tenant, on an
/// open connection or transaction (so a caller can decide inside its own transaction).
pub async fn has_access(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    record_id: &str,
    viewer: &Viewer,
    access: Access,
) -> StoreResult<bool> {
    let mut b = Builder::new("SELECT r.id FROM records r WHERE r.tenant_id = ");
    let t = b.text(tenant);
    let i = b.text(record_id);
    b.push(&format!("{t} AND r.id = {i} AND r.deleted_at IS NULL"));
    push_visibility(&mut b, tenant, viewer, access);
    Ok(b.query().fetch_optional(conn).await?.is_some())
}

/// The SQL expression for a field, per dialect.
fn expr(b: &mut Builder, dialect: Dialect, field: &FieldRef) -> String {
    match &field.target {
        Target::Column(col) => format!("r.{col}"),
        Target::Json(path) => match dialect {
            Dialect::Sqlite => {
                let p = b.text(format!("$.{}", path.join(".")));
                format!("json_extract(r.data, {p})")
            }
            Dialect::Postgres => {
                let p = b.text(format!("{{{}}}", path.join(",")));
                let raw = format!("(r.data #>> {p}::text[])");
                match field.kind {
                    Kind::Text => format!("({raw} COLLATE \"C\")"),
                    Kind::Number => format!("({raw}::double precision)"),
                    Kind::Bool => format!("(({raw})::boolean::int)"),
                }
            }
        },
        // Only filters use it, and `push_filters` handles it before asking for an expression.
        Target::SharedWithin => "NULL".into(),
    }
}

fn bind(b: &mut Builder, v: &Bound) -> String {
    match v {
        Bound::Text(s) => b.text(s.clone()),
        Bound::Number(n) => b.arg(Arg::Float(*n)),
        Bound::Bool(i) => b.arg(Arg::Int(*i)),
    }
}

/// Filters of a query over the records of `object` in `tenant`, each ANDed on.
fn push_filters(b: &mut Builder, dialect: Dialect, tenant: &str, object: &str, filters: &[Resolved]) {
    for clause in filter_clauses(b, dialect, tenant, object, filters) {
        b.push(" AND ").push(&clause);
    }
}

/// One SQL condition per filter (binding their values in `b`).
fn filter_clauses(b: &mut Builder, dialect: Dialect, tenant: &str, object: &str, filters: &[Resolved]) -> Vec<String> {
    let mut out = Vec::with_capacity(filters.len());
    for f in filters {
        if f.field.target == Target::SharedWithin {
            // Uncorrelated, so it is evaluated once, and it must start from the groups
            // within the named groups' intervals, then their shares of this object by the
            // (group, object) index: SQLite (without statistics) otherwise scans every
            // share of the tenant, hence CROSS JOIN, which fixes its join order
            // (PostgreSQL still plans freely). Only shares of `object` are read, so the
            // records probed are the ones measured.
            let t = b.text(tenant);
            let o = b.text(object);
            let groups: Vec<String> = f.values.iter().map(|v| bind(b, v)).collect();
            let not = if f.op == Op::Ne { "NOT " } else { "" };
            out.push(format!(
                "r.id {not}IN (SELECT s.record_id FROM groups a CROSS JOIN groups d CROSS JOIN record_shares s \
                 WHERE a.tenant_id = {t} AND a.id IN ({}) \
                 AND d.tenant_id = a.tenant_id AND d.lft >= a.lft AND d.lft <= a.rgt \
                 AND s.tenant_id = d.tenant_id AND s.group_id = d.id AND s.object = {o})",
                groups.join(", ")
            ));
            continue;
        }
        let e = expr(b, dialect, &f.field);
        let clause = match f.op {
            Op::IsNull if f.null => format!("{e} IS NULL"),
            Op::IsNull => format!("{e} IS NOT NULL"),
            Op::In => {
                let list: Vec<String> = f.values.iter().map(|v| bind(b, v)).collect();
                format!("{e} IN ({})", list.join(", "))
            }
            Op::Contains | Op::Prefix => {
                let Some(Bound::Text(s)) = f.values.first() else {
                    continue;
                };
                let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                let (pattern, lhs) = if f.op == Op::Contains {
                    (format!("%{}%", escaped.to_lowercase()), format!("lower({e})"))
                } else {
                    (format!("{escaped}%"), e.clone())
                };
                let p = b.text(pattern);
                // Case-sensitive prefix match on SQLite needs GLOB-free LIKE with
                // case_sensitive_like off; the extra `substr` comparison makes it exact.
                match f.op {
                    Op::Prefix => {
                        let raw = b.text(s.clone());
                        format!("({lhs} LIKE {p} ESCAPE '\\' AND substr({e}, 1, length({raw})) = {raw})")
                    }
                    _ => format!("{lhs} LIKE {p} ESCAPE '\\'"),
                }
            }
            op => {
                let Some(v) = f.values.first() else { continue };
                let v = bind(b, v);
                let sym = match op {
                    Op::Eq => "=",
                    Op::Ne => "<>",
                    Op::Lt => "<",
                    Op::Lte => "<=",
                    Op::Gt => ">",
                    _ => ">=",
                };
                format!("{e} {sym} {v}")
            }
        };
        out.push(clause);
    }
    out
}

fn deleted_clause(deleted: Deleted) -> &'static str {
    match deleted {
        Deleted::Exclude => " AND r.deleted_at IS NULL",
        Deleted::Include => "",
        Deleted::Only => " AND r.deleted_at IS NOT NULL",
    }
}

fn json_bound(kind: Kind, v: &Value) -> Option<Bound> {
    match (kind, v) {
        (_, Value::Null) => None,
        (Kind::Number, v) => v.as_f64().map(Bound::Number),
        (Kind::Bool, v) => v.as_i64().or_else(|| v.as_bool().map(i64::from)).map(Bound::Bool),
        (Kind::Text, Value::String(s)) => Some(Bound::Text(s.clone())),
        (Kind::Text, v) => Some(Bound::Text(v.to_string())),
    }
}

/// The value a record has for a sort key, as stored (for the next cursor).
fn sort_value(record: &Record, field: &FieldRef) -> Value {
    match &field.target {
        Target::Column(c) => column_value(record, c),
        Target::SharedWithin => Value::Null,
        Target::Json(path) => json_value(record, path),
    }
}

/// The value of metadata column `column` of a record (`null` for an unknown column).
pub(crate) fn column_value(record: &Record, column: &str) -> Value {
    match column {
        "id" => record.id.clone().into(),
        "owner_id" => record.owner_id.clone().into(),
        "created_at" => record.created_at.clone().into(),
        "updated_at" => record.updated_at.clone().into(),
        "created_by" => record.created_by.clone().into(),
        "updated_by" => record.updated_by.clone().into(),
        "deleted_at" => record.deleted_at.clone().into(),
        "version" => record.version.into(),
        _ => Value::Null,
    }
}

/// The value at `path` inside a record's fields (`null` when absent).
pub(crate) fn json_value(record: &Record, path: &[String]) -> Value {
    path.iter()
        .try_fold(&record.data, |v, k| v.get(k))
        .cloned()
        .unwrap_or(Value::Null)
}

impl Db {
    /// Pick the visibility plan for a listing or aggregate by counting (up to a cap)
    /// the shares the viewer reaches: one indexed walk of at most a few thousand rows.
    /// The choice is remembered for a while ([`PlanCache`]).
    async fn visibility_plan(&self, tenant: &str, object: &str, viewer: &Viewer) -> StoreResult<Plan> {
        if viewer.all {
            return Ok(Plan::Probe);
        }
        if let Some(plan) = self.plans.get(tenant, object, &viewer.user_id) {
            return Ok(plan);
        }
        // The viewer's groups → everything below them → their shares of `object`, in
        // that order (as in `push_visibility_as`), stopping at the threshold. Shares
        // of other objects do not count: they are not listed.
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM {} LIMIT $3) AS capped",
            reachable_shares(self.dialect(), "$1", "$2", "$4")
        );
        let reachable: i64 = sqlx::query_scalar(&sql)
            .bind(tenant)
            .bind(&viewer.user_id)
            .bind(self.sparse_shares)
            .bind(object)
            .fetch_one(self.reader())
            .await?;
        let plan = if reachable < self.sparse_shares {
            Plan::FromShares
        } else {
            Plan::Probe
        };
        self.plans.put(tenant, object, &viewer.user_id, plan);
        Ok(plan)
    }

    /// Insert a new record.
    pub async fn insert_record(&self, tx: &mut Tx<'_>, r: &Record) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO records (tenant_id, id, object, owner_id, data, version, created_at, updated_at, created_by, updated_by) \
             VALUES ($1, $2, $3, $4, {}, $6, $7, $8, $9, $10)",
            data_param(self.dialect(), 5)
        );
        sqlx::query(&sql)
            .bind(&r.tenant_id)
            .bind(&r.id)
            .bind(&r.object)
            .bind(&r.owner_id)
            .bind(r.data.to_string())
            .bind(r.version)
            .bind(&r.created_at)
            .bind(&r.updated_at)
            .bind(&r.created_by)
            .bind(&r.updated_by)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// A record if `viewer` has `access` to it (deleted ones only with `include_deleted`).
    pub async fn record_for(
        &self,
        tx: Option<&mut Tx<'_>>,
        record: RecordRef<'_>,
        viewer: &Viewer,
        access: Access,
        include_deleted: bool,
    ) -> StoreResult<Option<Record>> {
        let mut b = Builder::new(&format!("SELECT {COLUMNS} FROM records r WHERE r.tenant_id = "));
        let t = b.text(record.tenant);
        let o = b.text(record.object);
        let i = b.text(record.id);
        b.push(&format!("{t} AND r.object = {o} AND r.id = {i}"));
        if !include_deleted {
            b.push(" AND r.deleted_at IS NULL");
        }
        push_visibility(&mut b, record.tenant, viewer, access);
        let row = match tx {
            Some(tx) => b.query().fetch_optional(&mut **tx).await?,
            None => b.query().fetch_optional(self.reader()).await?,
        };
        row.as_ref().map(from_row).transpose()
    }

    /// Write new data for a record if it is at `expected_version` (or at any version
    /// when `None`). Returns the new version, or `None` if the version did not match.
    pub async fn update_record(
        &self,
        tx: &mut Tx<'_>,
        record: RecordRef<'_>,
        owner_id: &str,
        data: &Value,
        expected_version: i64,
        stamp: Stamp<'_>,
    ) -> StoreResult<Option<i64>> {
        let sql = format!(
            "UPDATE records SET data = {}, owner_id = $4, version = version + 1, updated_at = $5, updated_by = $6 \
             WHERE tenant_id = $1 AND id = $2 AND version = $7 RETURNING version",
            data_param(self.dialect(), 3)
        );
        let version: Option<i64> = sqlx::query_scalar(&sql)
            .bind(record.tenant)
            .bind(record.id)
            .bind(data.to_string())
            .bind(owner_id)
            .bind(stamp.at)
            .bind(stamp.by)
            .bind(expected_version)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(version)
    }

    /// Soft-delete (`deleted = true`) or restore a record at `expected_version`.
    pub async fn set_record_deleted(
        &self,
        tx: &mut Tx<'_>,
        record: RecordRef<'_>,
        deleted: bool,
        expected_version: i64,
        stamp: Stamp<'_>,
    ) -> StoreResult<Option<i64>> {
        let deleted_at = deleted.then_some(stamp.at);
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE records SET deleted_at = $3, version = version + 1, updated_at = $4, updated_by = $5 \
             WHERE tenant_id = $1 AND id = $2 AND version = $6 RETURNING version",
        )
        .bind(record.tenant)
        .bind(record.id)
        .bind(deleted_at)
        .bind(stamp.at)
        .bind(stamp.by)
        .bind(expected_version)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(version)
    }

    /// Which of `ids` are live records of `object` in the tenant (for reference checks).
    pub async fn existing_records(
        &self,
        tx: &mut Tx<'_>,
        tenant: &str,
        object: &str,
        ids: &[String],
    ) -> StoreResult<Vec<String>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(500) {
            let mut b = Builder::new("SELECT r.id FROM records r WHERE r.tenant_id = ");
            let t = b.text(tenant);
            let o = b.text(object);
            let list: Vec<String> = chunk.iter().map(|id| b.text(id.clone())).collect();
            b.push(&format!(
                "{t} AND r.object = {o} AND r.deleted_at IS NULL AND r.id IN ({})",
                list.join(", ")
            ));
            for row in b.query().fetch_all(&mut **tx).await? {
                found.push(row.try_get::<String, _>(0)?);
            }
        }
        Ok(found)
    }

    /// Which of `ids` are active users of the tenant.
    pub async fn existing_users(&self, tx: &mut Tx<'_>, tenant: &str, ids: &[String]) -> StoreResult<Vec<String>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(500) {
            let mut b = Builder::new("SELECT id FROM users WHERE tenant_id = ");
            let t = b.text(tenant);
            let list: Vec<String> = chunk.iter().map(|id| b.text(id.clone())).collect();
            b.push(&format!("{t} AND status = 'active' AND id IN ({})", list.join(", ")));
            for row in b.query().fetch_all(&mut **tx).await? {
                found.push(row.try_get::<String, _>(0)?);
            }
        }
        Ok(found)
    }

    /// One page of the records of `object` that `viewer` may see, in sort order
    /// (then id), continuing after the query's cursor. Returns the page and the
    /// cursor of the next one.
    pub async fn list_records(
        &self,
        tenant: &str,
        object: &str,
        viewer: &Viewer,
        q: &ListQuery,
    ) -> StoreResult<(Vec<Record>, Option<String>)> {
        let dialect = self.dialect();
        let plan = self.visibility_plan(tenant, object, viewer).await?;
        // From the viewer's shares in id order on PostgreSQL: the shared ids are
        // sorted first and records looked up only until a page is full, instead of
        // every shared record (a country member's page at 101k territories: 11 ms ->
        // 4 ms). SQLite looks records up in process for a fraction of the cost and
        // would sort the joined rows again anyway.
        let from_shares_pg = plan == Plan::FromShares && !viewer.all && dialect == Dialect::Postgres;
        let ordered_ids = from_shares_pg && q.sort.is_empty();
        // Sorted by a field, from the viewer's shares on PostgreSQL: each shared record
        // is looked up by key (a `LATERAL` subquery with `OFFSET 0` cannot be
        // flattened), then filtered and sorted. The plan says the viewer reaches fewer
        // than `sparse_shares` shares, but PostgreSQL cannot know that and guesses the
        // JSON filters' selectivity: left to itself it scanned every account of the
        // tenant and hash-joined the shares (a member who sees 160 of 100,000 accounts:
        // 82 ms for a page filtered by country and sorted by name; 6 ms looked up).
        let lateral = from_shares_pg && !q.sort.is_empty();
        let mut b = if ordered_ids {
            let mut b = Builder::new(&format!("SELECT {COLUMNS} FROM (SELECT v.id FROM ("));
            let ids = shared_ids(&mut b, dialect, tenant, object, viewer);
            b.push(&format!("{ids}) v"));
            if let Some(cursor) = &q.cursor {
                let after = b.text(cursor.id.clone());
                b.push(&format!(" WHERE v.id > {after}"));
            }
            // Looked up by key, one id at a time in id order, so the page stops at its
            // size: PostgreSQL, which cannot know how few ids there are (it guesses
            // ~1/9 of the tenant's groups below each of the viewer's), otherwise
            // merge-joins them with every record of the object (an area member with 5
            // accounts: 10 ms at 20,000 accounts, 174 ms at 200,000).
            let t = b.text(tenant);
            b.push(&format!(
                " ORDER BY v.id) ids CROSS JOIN LATERAL (SELECT * FROM records x WHERE x.tenant_id = {t} \
                 AND x.id = ids.id OFFSET 0) r WHERE r.tenant_id = "
            ));
            b
        } else if lateral {
            let mut b = Builder::new(&format!("SELECT {COLUMNS} FROM ("));
            let ids = shared_ids(&mut b, dialect, tenant, object, viewer);
            let t = b.text(tenant);
            b.push(&format!(
                "{ids}) ids CROSS JOIN LATERAL (SELECT * FROM records x WHERE x.tenant_id = {t} \
                 AND x.id = ids.id OFFSET 0) r WHERE r.tenant_id = "
            ));
            b
        } else {
            Builder::new(&format!("SELECT {COLUMNS} FROM records r WHERE r.tenant_id = "))
        };
        let t = b.text(tenant);
        let o = b.text(object);
        b.push(&format!("{t} AND r.object = {o}"));
        b.push(deleted_clause(q.deleted));
        if !ordered_ids && !lateral {
            // In id order a page is found by walking the index and probing until it
            // fills; sorted by a field, every visible row is read and sorted anyway.
            let reading = if q.sort.is_empty() {
                Reading::FirstRows
            } else {
                Reading::AllRows
            };
            push_visibility_as(&mut b, dialect, tenant, object, viewer, plan, reading);
        }
        push_filters(&mut b, dialect, tenant, object, &q.filters);

        let exprs: Vec<String> = q.sort.iter().map(|k| expr(&mut b, dialect, &k.field)).collect();
        if let Some(cursor) = &q.cursor {
            // Lexicographic "after": for key i, all earlier keys equal and key i after;
            // finally all keys equal and a greater id. ASC sorts NULLs first and DESC
            // sorts them last, in both databases (explicit NULLS FIRST/LAST below).
            let mut alternatives = Vec::new();
            let mut equal_so_far: Vec<String> = Vec::new();
            for (i, key) in q.sort.iter().enumerate() {
                let e = &exprs[i];
                let v = json_bound(key.field.kind, &cursor.values[i]);
                let after = match (&v, key.desc) {
                    (None, false) => format!("{e} IS NOT NULL"),
                    (None, true) => "1 = 0".to_string(),
                    (Some(v), false) => {
                        let p = bind(&mut b, v);
                        format!("{e} > {p}")
                    }
                    (Some(v), true) => {
                        let p = bind(&mut b, v);
                        format!("({e} < {p} OR {e} IS NULL)")
                    }
                };
                let mut conj = equal_so_far.clone();
                conj.push(after);
                alternatives.push(format!("({})", conj.join(" AND ")));
                let eq = match &v {
                    None => format!("{e} IS NULL"),
                    Some(v) => {
                        let p = bind(&mut b, v);
                        format!("{e} = {p}")
                    }
                };
                equal_so_far.push(eq);
            }
            let id = b.text(cursor.id.clone());
            equal_so_far.push(format!("r.id > {id}"));
            alternatives.push(format!("({})", equal_so_far.join(" AND ")));
            b.push(&format!(" AND ({})", alternatives.join(" OR ")));
        }
        let mut order: Vec<String> = q
            .sort
            .iter()
            .zip(&exprs)
            .map(|(k, e)| {
                if k.desc {
                    format!("{e} DESC NULLS LAST")
                } else {
                    format!("{e} ASC NULLS FIRST")
                }
            })
            .collect();
        order.push(if ordered_ids { "ids.id ASC" } else { "r.id ASC" }.into());
        let limit = b.arg(Arg::Int(i64::from(q.limit) + 1));
        b.push(&format!(" ORDER BY {} LIMIT {limit}", order.join(", ")));

        let rows = b.query().fetch_all(self.reader()).await?;
        let mut records = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
        let next = if records.len() > q.limit as usize {
            records.truncate(q.limit as usize);
            records.last().map(|last| {
                Cursor {
                    values: q.sort.iter().map(|k| sort_value(last, &k.field)).collect(),
                    id: last.id.clone(),
                }
                .encode()
            })
        } else {
            None
        };
        Ok((records, next))
    }

    /// Group and measure the records of `object` that `viewer` may see, in SQL.
    /// Returns one JSON object per group: the group keys by name, then the measures.
    pub async fn aggregate_records(
        &self,
        tenant: &str,
        object: &str,
        viewer: &Viewer,
        q: &AggregateQuery,
        max_groups: u32,
    ) -> StoreResult<(Vec<serde_json::Map<String, Value>>, bool)> {
        let dialect = self.dialect();
        let plan = self.visibility_plan(tenant, object, viewer).await?;
        let mut b = Builder::new("SELECT ");
        let mut select = Vec::new();
        let mut keys = Vec::new();
        for (i, g) in q.group_by.iter().enumerate() {
            let e = expr(&mut b, dialect, &g.field);
            let e = match g.bucket {
                None => e,
                Some(Bucket::Day) => format!("substr({e}, 1, 10)"),
                Some(Bucket::Month) => format!("substr({e}, 1, 7)"),
                Some(Bucket::Year) => format!("substr({e}, 1, 4)"),
                Some(Bucket::Quarter) => format!(
                    "(substr({e}, 1, 4) || '-Q' || CAST(((CAST(substr({e}, 6, 2) AS INTEGER) + 2) / 3) AS TEXT))"
                ),
            };
            select.push(format!("{e} AS k{i}"));
            keys.push(format!("k{i}"));
        }
        for (i, m) in q.measures.iter().enumerate() {
            let e = match &m.field {
                Some(f) => expr(&mut b, dialect, f),
                None => String::new(),
            };
            let call = match m.func {
                Func::Count => "COUNT(*)".to_string(),
                Func::Sum => format!("SUM({e})"),
                Func::Avg => format!("AVG({e})"),
                Func::Min => format!("MIN({e})"),
                Func::Max => format!("MAX({e})"),
                Func::CountDistinct => format!("COUNT(DISTINCT {e})"),
            };
            // A measure's own filters: the aggregate sees only the rows that pass
            // them (standard SQL, in SQLite since 3.30 and in PostgreSQL).
            let only = filter_clauses(&mut b, dialect, tenant, object, &m.filters);
            if only.is_empty() {
                select.push(format!("{call} AS m{i}"));
            } else {
                select.push(format!("{call} FILTER (WHERE {}) AS m{i}", only.join(" AND ")));
            }
        }
        b.push(&select.join(", "));
        b.push(" FROM records r WHERE r.tenant_id = ");
        let t = b.text(tenant);
        let o = b.text(object);
        b.push(&format!("{t} AND r.object = {o} AND r.deleted_at IS NULL"));
        push_visibility_as(&mut b, dialect, tenant, object, viewer, plan, Reading::AllRows);
        push_filters(&mut b, dialect, tenant, object, &q.filters);
        if !keys.is_empty() {
            b.push(&format!(" GROUP BY {} ORDER BY {}", keys.join(", "), keys.join(", ")));
        }
        let limit = b.arg(Arg::Int(i64::from(max_groups) + 1));
        b.push(&format!(" LIMIT {limit}"));
        let rows = b.query().fetch_all(self.reader()).await?;
        let truncated = rows.len() > max_groups as usize;
        let out = rows
            .iter()
            .take(max_groups as usize)
            .map(|row| {
                let mut obj = serde_json::Map::new();
                for (i, g) in q.group_by.iter().enumerate() {
                    obj.insert(g.name.clone(), any_json(row, i));
                }
                for (i, m) in q.measures.iter().enumerate() {
                    obj.insert(m.alias.clone(), any_json(row, q.group_by.len() + i));
                }
                obj
            })
            .collect();
        Ok((out, truncated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_remembered_per_viewer_until_they_expire() {
        let cache = PlanCache::default();
        assert_eq!(cache.get("t", "account", "u1"), None);
        cache.put("t", "account", "u1", Plan::FromShares);
        cache.put("t", "account", "u2", Plan::Probe);
        assert_eq!(cache.get("t", "account", "u1"), Some(Plan::FromShares));
        assert_eq!(cache.get("t", "account", "u2"), Some(Plan::Probe));
        assert_eq!(cache.get("t", "contact", "u1"), None, "per object");
        assert_eq!(cache.get("t2", "account", "u1"), None, "per tenant");

        let old = Instant::now().checked_sub(PLAN_TTL + Duration::from_secs(1));
        let Some(old) = old else { return };
        let key = ("t".to_string(), "account".to_string(), "u1".to_string());
        cache.plans.lock().unwrap().insert(key, (Plan::FromShares, old));
        assert_eq!(cache.get("t", "account", "u1"), None, "expired");
    }

    #[test]
    fn a_full_cache_drops_expired_plans_first_then_everything() {
        let cache = PlanCache::default();
        let Some(old) = Instant::now().checked_sub(PLAN_TTL + Duration::from_secs(1)) else {
            return;
        };
        {
            let mut plans = cache.plans.lock().unwrap();
            for i in 0..PLAN_CACHE_MAX - 1 {
                plans.insert(("t".into(), "account".into(), format!("old{i}")), (Plan::Probe, old));
            }
        }
        cache.put("t", "account", "fresh", Plan::Probe);
        cache.put("t", "account", "newer", Plan::FromShares);
        assert_eq!(cache.plans.lock().unwrap().len(), 2, "expired ones dropped");
        assert_eq!(cache.get("t", "account", "fresh"), Some(Plan::Probe));

        for i in 0..PLAN_CACHE_MAX {
            cache.put("t", "account", &format!("u{i}"), Plan::Probe);
        }
        assert!(cache.plans.lock().unwrap().len() <= PLAN_CACHE_MAX);
        assert_eq!(
            cache.get("t", "account", &format!("u{}", PLAN_CACHE_MAX - 1)),
            Some(Plan::Probe)
        );
    }
}
