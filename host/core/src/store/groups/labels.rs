//! Nested-interval labels of the group hierarchy (migration 0015).
//!
//! Every group owns `[lft, rgt]` in its tenant's label space; the tenant's roots are
//! the children of a virtual interval `[0, LABEL_MAX]`. Invariants, per tenant:
//! a child's interval lies strictly inside its parent's, siblings' intervals are
//! disjoint, no label is used twice, and `depth` is the parent's plus one (0 for a
//! root). So "A is D or one of its ancestors" is `A.lft <= D.lft <= A.rgt`, and a
//! subtree is one range of the `(tenant_id, lft)` index.
//!
//! Labels leave gaps. A new group, or a moved subtree, goes after its new parent's
//! last child, into the free labels before the parent's `rgt`: a leaf takes two of
//! them, one [`SHARE`]th of the gap apart (so a parent's gap takes many appends and the
//! leaf keeps room for children of its own); a moved
//! subtree is shifted as it is (one `UPDATE` over its range) when the gap is wider
//! than its interval, or else gets fresh labels, in order, in the room made for it.
//!
//! Room is made as in list labelling (the order-maintenance problem; Bender, Cole,
//! Demaine, Farach-Colton, Zito, "Two simplified algorithms for maintaining order in
//! a list", ESA 2002): when the gap is too narrow, take the smallest aligned block of
//! labels (2^i labels) around the insertion point that would hold at most
//! (4/3)^i labels with the new ones, and spread its labels evenly, leaving the needed
//! ones free at the insertion point. That costs O(log n) rewritten labels per
//! inserted label, amortised. A structural change so rewrites the rows of the
//! subtree that moves and, now and then, those of one block of neighbours — never a
//! row per (group, ancestor) pair as a closure table must.

use sqlx::{AnyConnection, Row};

use crate::store::{StoreError, StoreResult, Tx};

/// The tenant's label space: real labels lie strictly between 0 and `LABEL_MAX`, the
/// ends of the virtual root whose children are the tenant's roots.
pub(crate) const LABEL_MAX: i64 = 1 << 62;
/// Bits in a label: the largest block spans every label.
const LEVELS: u32 = 62;
/// A new leaf's labels are a `1/SHARE`th of the free gap apart. Measured by replaying
/// the groups benchmark's build (102k groups, depth 1,004): a third of the gap (each
/// append takes two thirds of what is left) spread labels 1,281 times; a 16th, 417
/// times — and capping the step at a constant, which crowded a whole tree into a
/// sliver of the label space, 2,481 times with windows of up to 34k labels.
const SHARE: i64 = 16;
/// Rows per batched label update.
const BATCH: usize = 500;

/// How many labels a block of 2^level labels may hold after making room: (4/3)^level.
fn capacity(level: u32) -> f64 {
    (4.0_f64 / 3.0).powi(level as i32)
}

/// A group's interval and depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub lft: i64,
    pub rgt: i64,
    pub depth: i64,
}

impl Span {
    /// The virtual parent of a tenant's roots.
    pub(crate) const TENANT: Span = Span {
        lft: 0,
        rgt: LABEL_MAX,
        depth: -1,
    };

    fn contains(&self, label: i64) -> bool {
        self.lft <= label && label <= self.rgt
    }
}

/// A group's span.
async fn node(conn: &mut AnyConnection, tenant: &str, id: &str) -> StoreResult<Span> {
    let row = sqlx::query("SELECT lft, rgt, depth FROM groups WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("group {id} not found")))?;
    let label = |col: &str| -> StoreResult<i64> {
        row.try_get::<Option<i64>, _>(col)?
            .ok_or_else(|| StoreError::Corrupt(format!("group {id} has no hierarchy labels")))
    };
    Ok(Span {
        lft: label("lft")?,
        rgt: label("rgt")?,
        depth: label("depth")?,
    })
}

/// The span of group `id` ([`Span::TENANT`] for `None`, the root level).
pub(crate) async fn span_of(conn: &mut AnyConnection, tenant: &str, id: Option<&str>) -> StoreResult<Span> {
    match id {
        Some(id) => node(conn, tenant, id).await,
        None => Ok(Span::TENANT),
    }
}

/// Number of labels (`lft`s and `rgt`s) in `lo ..= hi`.
async fn labels_in(conn: &mut AnyConnection, tenant: &str, lo: i64, hi: i64) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM groups WHERE tenant_id = $1 AND lft >= $2 AND lft <= $3) \
              + (SELECT COUNT(*) FROM groups WHERE tenant_id = $1 AND rgt >= $2 AND rgt <= $3)",
    )
    .bind(tenant)
    .bind(lo)
    .bind(hi)
    .fetch_one(conn)
    .await?)
}

/// The free labels after `parent`'s last child: `(last label used, parent's rgt)`,
/// ignoring the labels of `moving` (a subtree about to leave its place).
async fn gap(conn: &mut AnyConnection, tenant: &str, parent: Span, moving: Option<Span>) -> StoreResult<(i64, i64)> {
    // The last label inside a parent is its last child's `rgt`: one backwards step
    // of the (tenant_id, rgt) index.
    let mut below = parent.rgt;
    loop {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT rgt FROM groups WHERE tenant_id = $1 AND rgt < $2 ORDER BY rgt DESC LIMIT 1")
                .bind(tenant)
                .bind(below)
                .fetch_optional(&mut *conn)
                .await?;
        match (last, moving) {
            (Some(r), Some(m)) if r > parent.lft && m.contains(r) => below = m.lft,
            (Some(r), _) if r > parent.lft => return Ok((r, parent.rgt)),
            _ => return Ok((parent.lft, parent.rgt)),
        }
    }
}

/// Labels for a new leaf under `parent` (`None`: a new root).
pub(crate) async fn place_leaf(tx: &mut Tx<'_>, tenant: &str, parent: Option<&str>) -> StoreResult<Span> {
    let p = span_of(tx, tenant, parent).await?;
    let (prev, next) = gap(tx, tenant, p, None).await?;
    let (lft, rgt) = if next - prev >= 3 {
        let step = ((next - prev) / SHARE).max(1);
        (prev + step, prev + 2 * step)
    } else {
        let (start, spacing) = make_room(tx, tenant, prev, next, 2, None).await?;
        (start + spacing, start + 2 * spacing)
    };
    Ok(Span {
        lft,
        rgt,
        depth: p.depth + 1,
    })
}

/// Give the subtree of `id` labels after the last child of `new_parent` (`None`: the
/// root level) and the depths that go with them. The caller has checked that
/// `new_parent` is not inside the subtree.
pub(crate) async fn move_subtree(tx: &mut Tx<'_>, tenant: &str, id: &str, new_parent: Option<&str>) -> StoreResult<()> {
    let s = span_of(tx, tenant, Some(id)).await?;
    let p = span_of(tx, tenant, new_parent).await?;
    let shift_depth = p.depth + 1 - s.depth;
    let (prev, next) = gap(tx, tenant, p, Some(s)).await?;
    let width = s.rgt - s.lft;
    if next - prev - width >= 3 {
        // Room for the subtree as it is, with free labels left on both sides.
        let margin = ((next - prev - width) / SHARE).max(1);
        sqlx::query(
            "UPDATE groups SET lft = lft + $4, rgt = rgt + $4, depth = depth + $5 \
             WHERE tenant_id = $1 AND lft >= $2 AND lft <= $3",
        )
        .bind(tenant)
        .bind(s.lft)
        .bind(s.rgt)
        .bind(prev + margin - s.lft)
        .bind(shift_depth)
        .execute(&mut **tx)
        .await?;
        return Ok(());
    }
    // Fresh labels, in the same order, in the room made for them — depths first,
    // while the subtree's labels still name it.
    if shift_depth != 0 {
        sqlx::query("UPDATE groups SET depth = depth + $4 WHERE tenant_id = $1 AND lft >= $2 AND lft <= $3")
            .bind(tenant)
            .bind(s.lft)
            .bind(s.rgt)
            .bind(shift_depth)
            .execute(&mut **tx)
            .await?;
    }
    let mut tokens = tokens_in(tx, tenant, s.lft, s.rgt).await?;
    let (start, spacing) = make_room(tx, tenant, prev, next, tokens.len() as i64, Some(s)).await?;
    for (k, t) in (1..).zip(&mut tokens) {
        t.label = start + k * spacing;
    }
    write_tokens(tx, tenant, &tokens).await
}

/// One group's labels and depth, as the start-up labelling writes them.
#[derive(Debug, Clone)]
struct Labelled {
    id: String,
    lft: i64,
    rgt: i64,
    depth: i64,
}

/// One label of a group: its `lft` or its `rgt`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Token {
    label: i64,
    id: String,
    rgt: bool,
}

/// Where to put `m` new labels right after label `prev`, whose next label is `next`
/// (ignoring the labels of `moving`, a subtree about to be given the new ones):
/// returns `(start, spacing)`, the new labels being `start + k × spacing` for
/// k = 1 ..= m. Evenly in the gap when it has room; else the smallest aligned block
/// of 2^i labels containing `prev` that can hold its labels and the new ones within
/// [`capacity`]`(i)` has its labels spread evenly, the new ones reserved after `prev`.
async fn make_room(
    tx: &mut Tx<'_>,
    tenant: &str,
    prev: i64,
    next: i64,
    m: i64,
    moving: Option<Span>,
) -> StoreResult<(i64, i64)> {
    if next - prev > m {
        return Ok((prev, (next - prev) / (m + 1)));
    }
    // The smallest block that could hold m + 1 labels at all.
    let first = (u64::BITS - (m as u64 + 1).leading_zeros()).min(LEVELS);
    for level in first..=LEVELS {
        let size = 1_i64 << level;
        let lo = prev & !(size - 1);
        let hi = lo + size - 1;
        let mut count = labels_in(tx, tenant, lo, hi).await?;
        if let Some(s) = moving {
            let (a, b) = (lo.max(s.lft), hi.min(s.rgt));
            if a <= b {
                count -= labels_in(tx, tenant, a, b).await?;
            }
        }
        let spacing = size / (count + m + 1);
        if (count + m) as f64 > capacity(level) && level < LEVELS {
            continue;
        }
        if spacing < 1 {
            return Err(StoreError::Conflict(
                "the tenant's group hierarchy has no room for more groups".into(),
            ));
        }
        let mut tokens = tokens_in(tx, tenant, lo, hi).await?;
        if let Some(s) = moving {
            tokens.retain(|t| !s.contains(t.label));
        }
        // New positions in order; the m free ones right after `prev` (at the start
        // when `prev` is the virtual root's 0).
        let mut k = 0;
        let mut start = None;
        if !tokens.iter().any(|t| t.label == prev) {
            start = Some(lo);
            k = m;
        }
        for t in &mut tokens {
            k += 1;
            let was = t.label;
            t.label = lo + k * spacing;
            if was == prev {
                start = Some(t.label);
                k += m;
            }
        }
        write_tokens(tx, tenant, &tokens).await?;
        tracing::debug!(tenant, level, labels = tokens.len(), spacing, "group labels spread");
        return Ok((start.unwrap_or(lo), spacing));
    }
    unreachable!("the last level always returns")
}

/// Every label in `lo ..= hi`, in label order.
async fn tokens_in(conn: &mut AnyConnection, tenant: &str, lo: i64, hi: i64) -> StoreResult<Vec<Token>> {
    let rows = sqlx::query(
        "SELECT id, lft AS label, CAST(0 AS BIGINT) AS side FROM groups WHERE tenant_id = $1 AND lft >= $2 AND lft <= $3 \
         UNION ALL SELECT id, rgt AS label, CAST(1 AS BIGINT) AS side FROM groups WHERE tenant_id = $1 AND rgt >= $2 AND rgt <= $3",
    )
    .bind(tenant)
    .bind(lo)
    .bind(hi)
    .fetch_all(conn)
    .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(Token {
                label: r.try_get("label")?,
                id: r.try_get("id")?,
                rgt: r.try_get::<i64, _>("side")? == 1,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    out.sort_unstable();
    Ok(out)
}

/// Write single labels back, by id and side, in batches.
async fn write_tokens(tx: &mut Tx<'_>, tenant: &str, tokens: &[Token]) -> StoreResult<()> {
    for side in [false, true] {
        let column = if side { "rgt" } else { "lft" };
        let of_side: Vec<&Token> = tokens.iter().filter(|t| t.rgt == side).collect();
        for chunk in of_side.chunks(BATCH) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${})", 2 + 2 * i, 3 + 2 * i))
                .collect();
            // VALUES columns are column1… on both databases.
            let sql = format!(
                "UPDATE groups SET {column} = v.column2 FROM (VALUES {}) AS v \
                 WHERE groups.tenant_id = $1 AND groups.id = v.column1",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(tenant);
            for t in chunk {
                q = q.bind(&t.id).bind(t.label);
            }
            q.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Write labels and depths back, by id, in batches.
async fn write_rows(tx: &mut Tx<'_>, tenant: &str, rows: &[Labelled]) -> StoreResult<()> {
    for chunk in rows.chunks(BATCH) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = 2 + 4 * i;
                format!("(${n}, ${}, ${}, ${})", n + 1, n + 2, n + 3)
            })
            .collect();
        // VALUES columns are column1… on both databases.
        let sql = format!(
            "UPDATE groups SET lft = v.column2, rgt = v.column3, depth = v.column4 \
             FROM (VALUES {}) AS v WHERE groups.tenant_id = $1 AND groups.id = v.column1",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(tenant);
        for r in chunk {
            q = q.bind(&r.id).bind(r.lft).bind(r.rgt).bind(r.depth);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Label the groups of every tenant that has groups without labels (written before
/// migration 0015), from their parent links. Idempotent; run at start-up.
pub async fn label_unlabelled(pool: &sqlx::AnyPool) -> StoreResult<()> {
    let tenants: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM groups WHERE lft IS NULL")
        .fetch_all(pool)
        .await?;
    for tenant in tenants {
        let mut tx = pool.begin().await?;
        relabel_tenant(&mut tx, &tenant).await?;
        tx.commit().await?;
        tracing::info!(tenant, "group hierarchy labelled");
    }
    Ok(())
}

/// Labels for all of `tenant`'s groups from the parent links alone, spread evenly
/// over the label space, depth first, children in id order.
async fn relabel_tenant(tx: &mut Tx<'_>, tenant: &str) -> StoreResult<()> {
    let rows = sqlx::query("SELECT id, parent_id FROM groups WHERE tenant_id = $1 ORDER BY id")
        .bind(tenant)
        .fetch_all(&mut **tx)
        .await?;
    let mut ids: Vec<String> = Vec::with_capacity(rows.len());
    let mut parents: Vec<Option<String>> = Vec::with_capacity(rows.len());
    for r in &rows {
        ids.push(r.try_get("id")?);
        parents.push(r.try_get("parent_id")?);
    }
    let index: std::collections::HashMap<&str, usize> =
        ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); ids.len()];
    let mut roots = Vec::new();
    for (i, p) in parents.iter().enumerate() {
        match p.as_deref().and_then(|p| index.get(p)) {
            Some(&pi) => children[pi].push(i),
            None => roots.push(i),
        }
    }
    let spacing = LABEL_MAX / (2 * ids.len() as i64 + 1);
    let mut out: Vec<Labelled> = ids
        .iter()
        .map(|id| Labelled {
            id: id.clone(),
            lft: 0,
            rgt: 0,
            depth: 0,
        })
        .collect();
    // Iterative depth-first walk: (node, depth, children visited?).
    let mut k = 0;
    let mut stack: Vec<(usize, i64, bool)> = roots.iter().rev().map(|&r| (r, 0, false)).collect();
    while let Some((i, depth, closing)) = stack.pop() {
        k += 1;
        if closing {
            out[i].rgt = k * spacing;
            continue;
        }
        out[i].lft = k * spacing;
        out[i].depth = depth;
        stack.push((i, depth, true));
        stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1, false)));
    }
    if out.iter().any(|r| r.lft == 0) {
        return Err(StoreError::Corrupt(format!(
            "tenant {tenant}'s group parent links form a cycle"
        )));
    }
    write_rows(tx, tenant, &out).await
}

/// Check `tenant`'s labels against its parent links: every interval strictly inside
/// its parent's (within the label space for a root), siblings disjoint, no label used
/// twice, depth one more than the parent's. The first violation is a
/// [`StoreError::Corrupt`]. Reads every group of the tenant: for tests, benchmarks and
/// operators' checks, not for request paths.
pub async fn verify_labels(conn: &mut AnyConnection, tenant: &str) -> StoreResult<()> {
    let rows = sqlx::query("SELECT id, parent_id, lft, rgt, depth FROM groups WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(conn)
        .await?;
    let mut spans = std::collections::HashMap::new();
    let mut parents = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("id")?;
        let (lft, rgt, depth): (Option<i64>, Option<i64>, Option<i64>) =
            (r.try_get("lft")?, r.try_get("rgt")?, r.try_get("depth")?);
        let (Some(lft), Some(rgt), Some(depth)) = (lft, rgt, depth) else {
            return Err(StoreError::Corrupt(format!("group {id} has no labels")));
        };
        spans.insert(id.clone(), Span { lft, rgt, depth });
        parents.push((id, r.try_get::<Option<String>, _>("parent_id")?));
    }
    let bad = |msg: String| Err(StoreError::Corrupt(msg));
    let mut labels: Vec<(i64, &str)> = Vec::with_capacity(2 * spans.len());
    for (id, parent) in &parents {
        let s = spans[id];
        let p = match parent {
            Some(p) => *spans
                .get(p)
                .ok_or_else(|| StoreError::Corrupt(format!("group {id}: parent {p} missing")))?,
            None => Span::TENANT,
        };
        if !(p.lft < s.lft && s.lft < s.rgt && s.rgt < p.rgt) {
            return bad(format!("group {id} {s:?} is not strictly inside its parent {p:?}"));
        }
        if s.depth != p.depth + 1 {
            return bad(format!(
                "group {id} has depth {} under a parent at {}",
                s.depth, p.depth
            ));
        }
        labels.push((s.lft, id));
        labels.push((s.rgt, id));
    }
    labels.sort_unstable();
    if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
        return bad(format!("label {} is used by {} and {}", w[0].0, w[0].1, w[1].1));
    }
    // With distinct labels and every child inside its parent, siblings can still
    // overlap: each must close before the next one opens. Walk the labels in order
    // with a stack of open intervals.
    let mut open: Vec<&str> = Vec::new();
    for (label, id) in labels {
        if spans[id].lft == label {
            open.push(id);
        } else if open.pop() != Some(id) {
            return bad(format!("group {id}'s interval crosses another's"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_grows_from_one_label_to_tens_of_millions() {
        assert_eq!(capacity(0), 1.0);
        assert!(capacity(20) > 300.0 && capacity(20) < 320.0);
        assert!(capacity(LEVELS) > 5.0e7);
    }
}
