//! Roll-up changes of subtree moves, deferred (migration 0016).
//!
//! Moving a subtree takes its totals out of every ancestor it loses and adds them to
//! every ancestor it gains. Written through, that is one upsert per (total key ×
//! changed ancestor): ~700 keys of a pipeline roll-up moved under a 200-deep chain
//! and back took 3 s on SQLite, 18 s on PostgreSQL. Here a move writes the subtree's
//! totals once, as a *delta* (`rollup_deltas`), and one *reference* per changed
//! ancestor (`rollup_pending`: sign -1 for an ancestor lost, +1 for one gained) —
//! (keys + ancestors) rows, whatever the depth.
//!
//! The subtree totals of a group are its `rollup_totals` rows plus sign × the rows of
//! each delta it references, summed per key ([`subtree_rows`]). Every change adds to
//! those totals and addition commutes, so the sum is exact at every moment — whether
//! or not a reference has been folded yet — and the `rollup_totals` rows alone may go
//! negative in between (a record counted through a pending delta and deleted before
//! the fold), or reach a count of zero with sums the deltas still need: such a row is
//! kept while its group references deltas (`delete_empty`) and cleared by the fold.
//! Readers never wait for the fold.
//!
//! [`fold_pending`] (run in the background by [`run_folder`]) moves references into
//! `rollup_totals` a few at a time, each batch in its own short transaction, and
//! deletes the deltas no reference needs any more. It only bounds what a read has to
//! add up; nothing depends on when it runs.
//!
//! Locking (PostgreSQL): a fold takes the roll-up guard (a share lock on the tenant
//! row), so it never runs while a move or a roll-up build holds the tree lock, and it
//! upserts in (roll-up, group, key) order, as every other writer of `rollup_totals`
//! does. Two hosts folding at once delete each reference once (`DELETE … RETURNING`);
//! a delta both think still referenced is swept by the next pass.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use super::{GROUP_CHUNK, Groups, RETURNING, UPSERT, delete_empty, emptied, guard, rollups_of_tenant};
use crate::store::sql::{Arg, Builder};
use crate::store::{Db, StoreResult, Tx};

/// How often [`run_folder`] looks for pending references.
pub const FOLD_INTERVAL: Duration = Duration::from_secs(1);
/// Groups whose references are folded per transaction: a region's delta is ~700
/// rows, so a batch writes a few thousand rows and holds SQLite's writer for tens of
/// milliseconds.
const GROUPS_PER_FOLD: i64 = 8;

/// The rows whose per-key sums are the subtree totals of group `$3` in roll-up `$2` of
/// tenant `$1`: its own rows and sign × those of the deltas it references.
pub(super) fn subtree_rows(postgres: bool) -> String {
    format!(
        "SELECT dims, n, s0, s1, s2, s3 FROM rollup_totals \
         WHERE tenant_id = $1 AND rollup_id = $2 AND group_id = $3 \
         UNION ALL SELECT d.dims, p.sign * d.n, p.sign * d.s0, p.sign * d.s1, p.sign * d.s2, p.sign * d.s3 \
         FROM rollup_pending p {} WHERE p.tenant_id = $1 AND p.rollup_id = $2 AND p.group_id = $3",
        join_delta(postgres, "$1", "$2", "p")
    )
}

/// `… d`: the rows of the delta that `{outer}.delta_id` names, each delta read by its
/// key. PostgreSQL's statistics of these tables, empty most of the time, are mostly
/// stale; with a plain join it read every delta of the roll-up once per reference
/// (24 references: 170 ms instead of 17).
fn join_delta(postgres: bool, t: &str, r: &str, outer: &str) -> String {
    if postgres {
        format!(
            "CROSS JOIN LATERAL (SELECT dims, n, s0, s1, s2, s3 FROM rollup_deltas \
             WHERE tenant_id = {t} AND rollup_id = {r} AND delta_id = {outer}.delta_id OFFSET 0) d"
        )
    } else {
        format!("JOIN rollup_deltas d ON d.tenant_id = {t} AND d.rollup_id = {r} AND d.delta_id = {outer}.delta_id")
    }
}

fn is_postgres(conn: &sqlx::AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("postgresql")
}

/// Store the subtree totals of `group` in `rollup` as a new delta, returning its id
/// (`None` when the subtree has no totals, so there is nothing to move).
pub(super) async fn snapshot(tx: &mut Tx<'_>, tenant: &str, rollup: &str, group: &str) -> StoreResult<Option<String>> {
    let id = ulid::Ulid::new().to_string();
    let written = sqlx::query(&format!(
        "INSERT INTO rollup_deltas (tenant_id, rollup_id, delta_id, dims, n, s0, s1, s2, s3) \
         SELECT $1, $2, $4, x.dims, SUM(x.n), SUM(x.s0), SUM(x.s1), SUM(x.s2), SUM(x.s3) \
         FROM ({}) x GROUP BY x.dims HAVING SUM(x.n) <> 0",
        subtree_rows(is_postgres(tx))
    ))
    .bind(tenant)
    .bind(rollup)
    .bind(group)
    .bind(&id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok((written > 0).then_some(id))
}

/// Make each of `groups` reference `delta` of `rollup` with `sign`.
pub(super) async fn refer(
    tx: &mut Tx<'_>,
    tenant: &str,
    rollup: &str,
    delta: &str,
    groups: &[String],
    sign: i64,
) -> StoreResult<()> {
    for chunk in groups.chunks(GROUP_CHUNK) {
        let mut b = Builder::new("");
        let t = b.text(tenant);
        let r = b.text(rollup);
        let d = b.text(delta);
        let s = b.arg(Arg::Int(sign));
        let select = Groups::Listed(chunk).select(&mut b, &t);
        b.push(&format!(
            "INSERT INTO rollup_pending (tenant_id, rollup_id, group_id, delta_id, sign) \
             SELECT {t}, {r}, x.g, {d}, {s} FROM ({select}) x"
        ));
        b.query().execute(&mut **tx).await?;
    }
    Ok(())
}

/// `group` was deleted (it had no children and no shares, so its subtree totals
/// are zero): drop its own rows and its references, which cancel out.
pub async fn group_deleted(tx: &mut Tx<'_>, tenant: &str, group: &str) -> StoreResult<()> {
    for rollup in rollups_of_tenant(tx, tenant).await? {
        for sql in [
            "DELETE FROM rollup_pending WHERE tenant_id = $1 AND rollup_id = $2 AND group_id = $3",
            "DELETE FROM rollup_totals WHERE tenant_id = $1 AND rollup_id = $2 AND group_id = $3",
        ] {
            sqlx::query(sql)
                .bind(tenant)
                .bind(&rollup.id)
                .bind(group)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// What one [`fold_pending`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FoldReport {
    /// References folded into `rollup_totals`.
    pub references: u64,
    /// Total rows written (inserted or updated) by the folds.
    pub rows: u64,
    /// Deltas deleted, no longer referenced.
    pub deltas: u64,
}

/// Fold every pending reference of every tenant into `rollup_totals`, a few per
/// transaction, and delete the deltas left unreferenced; returns when none is left
/// (references added meanwhile included). Tenants are independent: one failing does
/// not stop the others; the first failure is returned after all were tried.
pub async fn fold_pending(db: &Db) -> StoreResult<FoldReport> {
    let tenants: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT tenant_id FROM rollup_pending UNION SELECT DISTINCT tenant_id FROM rollup_deltas",
    )
    .fetch_all(db.reader())
    .await?;
    let mut report = FoldReport::default();
    let mut first_error = None;
    for tenant in tenants {
        if let Err(e) = fold_tenant(db, &tenant, &mut report).await {
            tracing::warn!(%tenant, error = ?e, "folding roll-up deltas failed");
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

async fn fold_tenant(db: &Db, tenant: &str, report: &mut FoldReport) -> StoreResult<()> {
    loop {
        let mut tx = db.writer().begin().await?;
        guard(&mut tx, tenant).await?;
        // A few groups with all their references, so a group's references net out
        // before anything is written (a subtree moved away and back cancels).
        let batch = sqlx::query(
            "SELECT DISTINCT rollup_id, group_id FROM rollup_pending WHERE tenant_id = $1 \
             ORDER BY rollup_id, group_id LIMIT $2",
        )
        .bind(tenant)
        .bind(GROUPS_PER_FOLD)
        .fetch_all(&mut *tx)
        .await?;
        if batch.is_empty() {
            report.deltas += sqlx::query(
                "DELETE FROM rollup_deltas WHERE tenant_id = $1 AND NOT EXISTS (SELECT 1 FROM rollup_pending p \
                 WHERE p.tenant_id = rollup_deltas.tenant_id AND p.rollup_id = rollup_deltas.rollup_id \
                 AND p.delta_id = rollup_deltas.delta_id)",
            )
            .bind(tenant)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            return Ok(());
        }
        // Take their references out; another host may have taken some already.
        let mut b = Builder::new("");
        let keys: Vec<String> = batch
            .iter()
            .map(|row| {
                // Arguments of their own in every branch, as in `delete_empty`.
                let t = b.text(tenant);
                let r = b.text(row.try_get::<String, _>("rollup_id")?);
                let g = b.text(row.try_get::<String, _>("group_id")?);
                Ok(format!("(tenant_id = {t} AND rollup_id = {r} AND group_id = {g})"))
            })
            .collect::<StoreResult<_>>()?;
        b.push(&format!(
            "DELETE FROM rollup_pending WHERE {} RETURNING rollup_id, group_id, delta_id, sign",
            keys.join(" OR ")
        ));
        let mut taken: BTreeMap<String, Vec<(String, String, i64)>> = BTreeMap::new();
        for row in b.query().fetch_all(&mut *tx).await? {
            taken.entry(row.try_get("rollup_id")?).or_default().push((
                row.try_get("group_id")?,
                row.try_get("delta_id")?,
                row.try_get("sign")?,
            ));
        }
        for (rollup, refs) in &taken {
            report.rows += fold(&mut tx, tenant, rollup, refs).await?;
            report.references += refs.len() as u64;
            let mut deltas: Vec<&str> = refs.iter().map(|(_, d, _)| d.as_str()).collect();
            deltas.sort_unstable();
            deltas.dedup();
            for delta in deltas {
                report.deltas += sqlx::query(
                    "DELETE FROM rollup_deltas WHERE tenant_id = $1 AND rollup_id = $2 AND delta_id = $3 \
                     AND NOT EXISTS (SELECT 1 FROM rollup_pending \
                     WHERE tenant_id = $1 AND rollup_id = $2 AND delta_id = $3)",
                )
                .bind(tenant)
                .bind(rollup)
                .bind(delta)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
        }
        tx.commit().await?;
        tokio::task::yield_now().await;
    }
}

/// Add sign × each referenced delta to its group's rows, in one statement whose rows
/// go in (group, key) order; references of one group are netted first, and keys they
/// leave unchanged are not written (a subtree moved in and out again cancels).
/// Returns the rows written.
async fn fold(tx: &mut Tx<'_>, tenant: &str, rollup: &str, refs: &[(String, String, i64)]) -> StoreResult<u64> {
    let mut b = Builder::new("");
    let t = b.text(tenant);
    let r = b.text(rollup);
    let list: Vec<String> = refs
        .iter()
        .map(|(g, d, s)| {
            let g = b.text(g.clone());
            let d = b.text(d.clone());
            let s = b.arg(Arg::Int(*s));
            format!("SELECT {g} AS g, {d} AS delta_id, {s} AS sign")
        })
        .collect();
    b.push(&format!(
        "INSERT INTO rollup_totals (tenant_id, rollup_id, group_id, dims, n, s0, s1, s2, s3) \
         SELECT {t}, {r}, x.g, d.dims, SUM(x.sign * d.n), SUM(x.sign * d.s0), SUM(x.sign * d.s1), \
         SUM(x.sign * d.s2), SUM(x.sign * d.s3) FROM ({}) x {} WHERE TRUE \
         GROUP BY x.g, d.dims HAVING SUM(x.sign * d.n) <> 0 OR SUM(x.sign * d.s0) <> 0 \
         OR SUM(x.sign * d.s1) <> 0 OR SUM(x.sign * d.s2) <> 0 OR SUM(x.sign * d.s3) <> 0 \
         ORDER BY x.g, d.dims{UPSERT}{RETURNING}",
        list.join(" UNION ALL "),
        join_delta(is_postgres(tx), &t, &r, "x")
    ));
    let rows = b.query().fetch_all(&mut **tx).await?;
    let written = rows.len() as u64;
    let emptied = emptied(rows)?;
    delete_empty(tx, tenant, rollup, &emptied).await?;
    // Rows left at a zero count while the groups referenced deltas (see
    // `delete_empty`) are exact zeros now that the groups reference none.
    let mut groups: Vec<&str> = refs.iter().map(|(g, _, _)| g.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    for g in groups {
        sqlx::query(
            "DELETE FROM rollup_totals WHERE tenant_id = $1 AND rollup_id = $2 AND group_id = $3 AND n = 0 \
             AND NOT EXISTS (SELECT 1 FROM rollup_pending p \
             WHERE p.tenant_id = $1 AND p.rollup_id = $2 AND p.group_id = $3)",
        )
        .bind(tenant)
        .bind(rollup)
        .bind(g)
        .execute(&mut **tx)
        .await?;
    }
    Ok(written)
}

/// Fold pending references ([`fold_pending`]) every [`FOLD_INTERVAL`] until
/// `shutdown` resolves, which also abandons a pass under way (its open transaction
/// rolls back; what it committed stays). Failures are logged and retried on the next
/// tick. The server runs one per process.
pub async fn run_folder(db: Db, shutdown: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(FOLD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut shutdown => return,
        }
        tokio::select! {
            r = fold_pending(&db) => match r {
                Ok(r) if r.references > 0 => tracing::debug!(?r, "folded roll-up deltas"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "folding roll-up deltas failed; retrying"),
            },
            () = &mut shutdown => return,
        }
    }
}
