//! Roll-up maintenance for share changes, a whole batch at a time.
//!
//! Sharing a record with a group counts it in that group and every ancestor not
//! already covering it through another of its shares; removing a share uncounts it
//! where no other share still covers it. For one record whose share groups were `B`
//! before the batch and are `A` after it, every group that is an ancestor-or-self of
//! a group in `A` but of none in `B` gains the record, and the reverse loses it —
//! whatever order the batch's adds and removes came in. [`shares_changed`] computes
//! that for up to [`RECORDS_PER_STATEMENT`] records in one statement per roll-up
//! (parent links walked upwards from both sets, one row per (record, ancestor) with
//! +1/-1 and the record's contribution, summed per (group, key)), where
//! one share at a time cost six or seven statements each — half of what assigning a
//! territory's accounts cost.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};
use sqlx::Row;

use super::{Contribution, RETURNING, UPSERT, delete_empty, emptied, guard, rollups_of_tenant};
use crate::store::records::{COLUMNS, Record, from_row};
use crate::store::sql::Builder;
use crate::store::{StoreResult, Tx};

/// Records whose share changes one statement maintains: as many as one sharing call
/// may change (`tenancy::shares::MAX_SHARES_PER_CALL`), so a call writes each roll-up's
/// rows in one statement, in (group, key) order, roll-ups in id order — the order of
/// every other writer of the totals, so that concurrent writers cannot deadlock on
/// them (PostgreSQL).
const RECORDS_PER_STATEMENT: usize = 1_000;

/// One share change: `record` shared with `group` (`added`) or no longer (`!added`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareChange {
    /// The record.
    pub record: String,
    /// The group.
    pub group: String,
    /// Shared (true) or unshared (false).
    pub added: bool,
}

/// The shares in `changes` were just written (added or removed, in this transaction):
/// keep `record_multi_shares` and every roll-up's totals in step with them.
pub async fn shares_changed(tx: &mut Tx<'_>, tenant: &str, changes: &[ShareChange]) -> StoreResult<()> {
    // The net change per (record, group): an add and a remove of the same share cancel.
    let mut net: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for c in changes {
        *net.entry((&c.record, &c.group)).or_default() += if c.added { 1 } else { -1 };
    }
    net.retain(|_, n| *n != 0);
    if net.is_empty() {
        return Ok(());
    }
    guard(tx, tenant).await?;
    let rollups = rollups_of_tenant(tx, tenant).await?;
    let records: Vec<&str> = net
        .keys()
        .map(|(r, _)| *r)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for chunk in records.chunks(RECORDS_PER_STATEMENT) {
        track_multi_shares(tx, tenant, chunk).await?;
        if rollups.is_empty() {
            continue;
        }
        let live = live_records(tx, tenant, chunk).await?;
        if live.is_empty() {
            continue;
        }
        let seeds = seeds(tx, tenant, &live, &net).await?;
        for rollup in &rollups {
            let contributions: HashMap<&str, Contribution> = live
                .iter()
                .filter(|r| r.object == rollup.object)
                .map(|r| (r.id.as_str(), rollup.definition.contribution(r)))
                .collect();
            apply(tx, tenant, &rollup.id, &seeds, &contributions).await?;
        }
    }
    Ok(())
}

/// Keep `record_multi_shares` (records shared with more than one group) in step with
/// the shares of `records`.
async fn track_multi_shares(tx: &mut Tx<'_>, tenant: &str, records: &[&str]) -> StoreResult<()> {
    for multi in [false, true] {
        let mut b = Builder::new("");
        let t = b.text(tenant);
        let list: Vec<String> = records.iter().map(|r| b.text(*r)).collect();
        let list = list.join(", ");
        b.push(&if multi {
            format!(
                "INSERT INTO record_multi_shares (tenant_id, record_id) SELECT tenant_id, record_id \
                 FROM record_shares WHERE tenant_id = {t} AND record_id IN ({list}) \
                 GROUP BY tenant_id, record_id HAVING COUNT(*) > 1 ON CONFLICT DO NOTHING"
            )
        } else {
            format!(
                "DELETE FROM record_multi_shares WHERE tenant_id = {t} AND record_id IN ({list}) \
                 AND (SELECT COUNT(*) FROM record_shares s WHERE s.tenant_id = {t} \
                 AND s.record_id = record_multi_shares.record_id) <= 1"
            )
        });
        b.query().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The live (not deleted) records among `ids`.
async fn live_records(tx: &mut Tx<'_>, tenant: &str, ids: &[&str]) -> StoreResult<Vec<Record>> {
    let mut b = Builder::new("");
    let t = b.text(tenant);
    let list: Vec<String> = ids.iter().map(|r| b.text(*r)).collect();
    b.push(&format!(
        "SELECT {COLUMNS} FROM records r WHERE r.tenant_id = {t} AND r.id IN ({}) AND r.deleted_at IS NULL",
        list.join(", ")
    ));
    b.query().fetch_all(&mut **tx).await?.iter().map(from_row).collect()
}

/// `(record, group, after, before)` for every group each record is shared with after
/// the batch (as stored now) or was before it (the stored ones, less those the batch
/// added, plus those it removed).
async fn seeds(
    tx: &mut Tx<'_>,
    tenant: &str,
    live: &[Record],
    net: &BTreeMap<(&str, &str), i64>,
) -> StoreResult<Vec<(String, String, bool, bool)>> {
    let mut b = Builder::new("");
    let t = b.text(tenant);
    let list: Vec<String> = live.iter().map(|r| b.text(r.id.clone())).collect();
    b.push(&format!(
        "SELECT record_id, group_id FROM record_shares WHERE tenant_id = {t} AND record_id IN ({})",
        list.join(", ")
    ));
    let mut sides: BTreeMap<(String, String), (bool, bool)> = BTreeMap::new();
    for row in b.query().fetch_all(&mut **tx).await? {
        let key = (row.try_get("record_id")?, row.try_get("group_id")?);
        sides.insert(key, (true, true));
    }
    for r in live {
        for ((_, group), n) in net
            .range((r.id.as_str(), "")..)
            .take_while(|((rec, _), _)| *rec == r.id)
        {
            let side = sides.entry((r.id.clone(), group.to_string())).or_insert((false, false));
            // Added by the batch: not there before; removed: there before only.
            side.1 = *n < 0;
        }
    }
    Ok(sides
        .into_iter()
        .filter(|(_, (after, before))| *after || *before)
        .map(|((record, group), (after, before))| (record, group, after, before))
        .collect())
}

/// Count each record into the groups that cover it after the batch and not before,
/// and out of those that covered it before and not after, with its contribution in
/// `contributions`, in one statement whose rows go in (group, key) order.
async fn apply(
    tx: &mut Tx<'_>,
    tenant: &str,
    rollup: &str,
    seeds: &[(String, String, bool, bool)],
    contributions: &HashMap<&str, Contribution>,
) -> StoreResult<()> {
    // Each seed carries its record's contribution, so no statement joins them (a
    // join with a second JSON list re-read that list for every row).
    let rows: Vec<Value> = seeds
        .iter()
        .filter_map(|(record, group, after, before)| {
            let c = contributions.get(record.as_str())?;
            Some(json!([
                record,
                group,
                i64::from(*after),
                i64::from(*before),
                c.dims,
                c.sums[0],
                c.sums[1],
                c.sums[2],
                c.sums[3]
            ]))
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let postgres = tx.backend_name().eq_ignore_ascii_case("postgresql");
    let mut b = Builder::new("");
    let t = b.text(tenant);
    let id = b.text(rollup);
    let list = b.text(Value::Array(rows).to_string());
    let seed_rows = if postgres {
        format!(
            "SELECT (e->>0) COLLATE \"C\", (e->>1) COLLATE \"C\", (e->>2)::bigint, (e->>3)::bigint, \
             (e->>4) COLLATE \"C\", (e->>5)::float8, (e->>6)::float8, (e->>7)::float8, (e->>8)::float8 \
             FROM jsonb_array_elements(CAST({list} AS jsonb)) AS e"
        )
    } else {
        let cols: Vec<String> = (0..9).map(|i| format!("json_extract(j.value, '$[{i}]')")).collect();
        format!("SELECT {} FROM json_each({list}) AS j", cols.join(", "))
    };
    // `up`: each seed group and its ancestors by parent links, with the seed's sides
    // and contribution; `cover`: per (record, group), 1 if covered after minus 1 if
    // covered before (the contribution is the same on every row of a record).
    b.push(&format!(
        "WITH RECURSIVE seed(rec, gid, a, b, dims, s0, s1, s2, s3) AS ({seed_rows}), \
         up(rec, id, parent_id, a, b, dims, s0, s1, s2, s3) AS (\
         SELECT s.rec, g.id, g.parent_id, s.a, s.b, s.dims, s.s0, s.s1, s.s2, s.s3 \
         FROM seed s CROSS JOIN groups g WHERE g.tenant_id = {t} AND g.id = s.gid \
         UNION SELECT up.rec, p.id, p.parent_id, up.a, up.b, up.dims, up.s0, up.s1, up.s2, up.s3 \
         FROM up CROSS JOIN groups p WHERE p.tenant_id = {t} AND p.id = up.parent_id), \
         cover(g, dims, d, s0, s1, s2, s3) AS (SELECT id, MAX(dims), MAX(a) - MAX(b), MAX(s0), MAX(s1), \
         MAX(s2), MAX(s3) FROM up GROUP BY rec, id) \
         INSERT INTO rollup_totals (tenant_id, rollup_id, group_id, dims, n, s0, s1, s2, s3) \
         SELECT {t}, {id}, c.g, c.dims, SUM(c.d), SUM(c.d * c.s0), SUM(c.d * c.s1), SUM(c.d * c.s2), \
         SUM(c.d * c.s3) FROM cover c WHERE c.d <> 0 \
         GROUP BY c.g, c.dims HAVING SUM(c.d) <> 0 OR SUM(c.d * c.s0) <> 0 \
         OR SUM(c.d * c.s1) <> 0 OR SUM(c.d * c.s2) <> 0 OR SUM(c.d * c.s3) <> 0 \
         ORDER BY c.g, c.dims{UPSERT}{RETURNING}"
    ));
    let emptied = emptied(b.query().fetch_all(&mut **tx).await?)?;
    delete_empty(tx, tenant, rollup, &emptied).await
}
