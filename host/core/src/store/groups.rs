//! Hierarchical groups, their nested-interval labels and their memberships.
//!
//! Each group owns an interval of its tenant's label space, nested inside its
//! ancestors' ([`labels`]): "is A an ancestor of D" is one comparison, a subtree is
//! one range of the `(tenant_id, lft)` index, and a move rewrites one row per group
//! of the moved subtree, whatever the depth (docs/benchmarks/groups.md).
//! Ancestors are found by following parent links (one indexed step per level).
//!
//! Every function takes the tenant and filters on it. Writers take a [`Tx`]; readers
//! take any connection (`&mut *tx` or a pooled connection), so the `sharing`
//! capability and the REST services compose them inside their own transactions.
//! Structural writes (create, move, delete) first take the tenant's tree lock, so two
//! concurrent moves can never together build a cycle on PostgreSQL (SQLite has one
//! writer anyway).

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::{StoreError, StoreResult, Tx, time};

mod labels;
mod members;

pub use labels::{label_unlabelled, verify_labels};
use members::member_from;
pub use members::{Member, Membership, add_member, groups_of_user, member, members_of, remove_member, set_member_role};

/// A group of users in a tenant's hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Tenant.
    #[serde(skip)]
    pub tenant_id: String,
    /// Id (ULID).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Parent group; `None` for a root.
    pub parent_id: Option<String>,
    /// The plugin that manages this group (`None`: managed through REST).
    pub owner_plugin: Option<String>,
    /// Version for optimistic concurrency; bumped by rename and move.
    pub version: i64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// A group together with its distance from the group a query started at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupAtDepth {
    /// The group.
    #[serde(flatten)]
    pub group: Group,
    /// Number of edges between the two groups (1 = parent or child).
    pub depth: i64,
}

const GROUP_COLUMNS: &str =
    "g.tenant_id, g.id, g.name, g.parent_id, g.owner_plugin, g.version, g.created_at, g.updated_at";

fn group_from(r: &sqlx::any::AnyRow) -> StoreResult<Group> {
    Ok(Group {
        tenant_id: r.try_get("tenant_id")?,
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        parent_id: r.try_get("parent_id")?,
        owner_plugin: r.try_get("owner_plugin")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn at_depth_from(r: &sqlx::any::AnyRow, depth: &str) -> StoreResult<GroupAtDepth> {
    Ok(GroupAtDepth {
        group: group_from(r)?,
        depth: r.try_get(depth)?,
    })
}

fn is_postgres(conn: &AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("postgresql")
}

/// Serialise structural changes of `tenant`'s hierarchy until the transaction ends.
///
/// On PostgreSQL this row-locks the tenant with `FOR NO KEY UPDATE`, which does not
/// block the `FOR KEY SHARE` locks that foreign-key checks of ordinary inserts take.
/// On SQLite the single writer connection already serialises all writes.
pub async fn lock_tree(tx: &mut Tx<'_>, tenant: &str) -> StoreResult<()> {
    if is_postgres(tx) {
        sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE")
            .bind(tenant)
            .fetch_optional(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A group by id.
pub async fn group(conn: &mut AnyConnection, tenant: &str, id: &str) -> StoreResult<Option<Group>> {
    let row = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS} FROM groups g WHERE g.tenant_id = $1 AND g.id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(group_from).transpose()
}

/// A group by id, row-locked until the transaction ends (PostgreSQL), for
/// read-check-write sequences such as `If-Match`.
pub async fn lock_group(tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<Option<Group>> {
    let lock = if is_postgres(tx) { " FOR UPDATE" } else { "" };
    let row = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS} FROM groups g WHERE g.tenant_id = $1 AND g.id = $2{lock}"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(group_from).transpose()
}

async fn require_group(conn: &mut AnyConnection, tenant: &str, id: &str) -> StoreResult<Group> {
    group(conn, tenant, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("group {id} not found")))
}

/// Create a group under `parent` (a root when `None`), managed by `owner_plugin`
/// (`None`: managed through REST). It takes free labels after the parent's last child.
pub async fn create_group(
    tx: &mut Tx<'_>,
    tenant: &str,
    name: &str,
    parent: Option<&str>,
    owner_plugin: Option<&str>,
) -> StoreResult<Group> {
    lock_tree(tx, tenant).await?;
    if let Some(parent) = parent {
        require_group(tx, tenant, parent).await?;
    }
    let span = labels::place_leaf(tx, tenant, parent).await?;
    let now = time::now();
    let g = Group {
        tenant_id: tenant.to_string(),
        id: ulid::Ulid::new().to_string(),
        name: name.to_string(),
        parent_id: parent.map(str::to_string),
        owner_plugin: owner_plugin.map(str::to_string),
        version: 1,
        created_at: now.clone(),
        updated_at: now,
    };
    sqlx::query(
        "INSERT INTO groups (tenant_id, id, name, parent_id, owner_plugin, version, created_at, updated_at, lft, rgt, depth) \
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, $10)",
    )
    .bind(tenant)
    .bind(&g.id)
    .bind(&g.name)
    .bind(&g.parent_id)
    .bind(&g.owner_plugin)
    .bind(&g.created_at)
    .bind(&g.updated_at)
    .bind(span.lft)
    .bind(span.rgt)
    .bind(span.depth)
    .execute(&mut **tx)
    .await?;
    Ok(g)
}

/// Rename a group (bumps its version).
pub async fn rename_group(tx: &mut Tx<'_>, tenant: &str, id: &str, name: &str) -> StoreResult<Group> {
    update_group(tx, tenant, id, Some(name), None).await
}

/// Re-parent group `id` — and with it its whole subtree — under `new_parent` (to the
/// root level when `None`); bumps the group's version. Moving a group under itself or
/// one of its descendants is a [`StoreError::Conflict`] (callers that want to name the
/// cycle check [`is_ancestor`] first).
pub async fn move_group(tx: &mut Tx<'_>, tenant: &str, id: &str, new_parent: Option<&str>) -> StoreResult<Group> {
    update_group(tx, tenant, id, None, Some(new_parent)).await
}

/// Rename and/or re-parent a group in one change (one version bump). `new_parent`:
/// `None` leaves the parent alone, `Some(None)` makes the group a root.
///
/// The subtree gets labels after the new parent's last child: shifted as it is in one
/// statement when there is room, spread again otherwise ([`labels`]).
pub async fn update_group(
    tx: &mut Tx<'_>,
    tenant: &str,
    id: &str,
    name: Option<&str>,
    new_parent: Option<Option<&str>>,
) -> StoreResult<Group> {
    lock_tree(tx, tenant).await?;
    let current = require_group(tx, tenant, id).await?;
    if let Some(Some(p)) = new_parent {
        require_group(tx, tenant, p).await?;
        if is_ancestor(tx, tenant, id, p).await? {
            return Err(StoreError::Conflict(format!(
                "cannot move group {id} under {p}: {p} is the group itself or one of its descendants"
            )));
        }
    }
    // Roll-up totals follow a moved subtree: out of the ancestors it leaves before
    // the move, into the ones it joins after (parent link and labels both changed:
    // ancestors are found by parent links, containment by labels).
    let pending = match new_parent {
        Some(parent) => super::rollups::before_move(tx, tenant, id, parent).await?,
        None => None,
    };
    if let Some(parent) = new_parent
        && parent != current.parent_id.as_deref()
    {
        labels::move_subtree(tx, tenant, id, parent).await?;
    }
    let parent = match new_parent {
        Some(p) => p.map(str::to_string),
        None => current.parent_id,
    };
    sqlx::query(
        "UPDATE groups SET name = $3, parent_id = $4, version = version + 1, updated_at = $5 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(name.unwrap_or(&current.name))
    .bind(parent)
    .bind(time::now())
    .execute(&mut **tx)
    .await?;
    if let Some(pending) = pending {
        super::rollups::after_move(tx, tenant, pending).await?;
    }
    require_group(tx, tenant, id).await
}

/// Delete a group that has no children and no record shares, with its memberships
/// (its labels are simply free again). Returns the deleted group and the memberships it had; a group
/// with children or shares is a [`StoreError::Conflict`].
pub async fn delete_group(tx: &mut Tx<'_>, tenant: &str, id: &str) -> StoreResult<(Group, Vec<Member>)> {
    lock_tree(tx, tenant).await?;
    let g = lock_group(tx, tenant, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("group {id} not found")))?;
    let children: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM groups WHERE tenant_id = $1 AND parent_id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    if children > 0 {
        return Err(StoreError::Conflict(format!(
            "group {id} has {children} child group(s); move or delete them first"
        )));
    }
    let shares: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM record_shares WHERE tenant_id = $1 AND group_id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    if shares > 0 {
        return Err(StoreError::Conflict(format!(
            "group {id} has {shares} record share(s); remove them first"
        )));
    }
    let members = sqlx::query(
        "SELECT group_id, user_id, role, added_at FROM group_members WHERE tenant_id = $1 AND group_id = $2 \
         ORDER BY user_id",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(member_from)
    .collect::<StoreResult<Vec<_>>>()?;
    super::rollups::group_deleted(tx, tenant, id).await?;
    for sql in [
        "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2",
        "DELETE FROM groups WHERE tenant_id = $1 AND id = $2",
    ] {
        sqlx::query(sql).bind(tenant).bind(id).execute(&mut **tx).await?;
    }
    Ok((g, members))
}

/// Groups of the tenant in id order after `after`, at most `limit`.
pub async fn groups(
    conn: &mut AnyConnection,
    tenant: &str,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<Group>> {
    let rows = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS} FROM groups g WHERE g.tenant_id = $1 AND g.id > $2 ORDER BY g.id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(group_from).collect()
}

/// Direct children of `parent` (root groups when `None`) in id order after `after`.
pub async fn children(
    conn: &mut AnyConnection,
    tenant: &str,
    parent: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<Group>> {
    // Two statements rather than `parent_id = $n OR $n IS NULL`, so each uses the
    // (tenant_id, parent_id, id) index as one ordered range.
    let rows = match parent {
        Some(p) => {
            sqlx::query(&format!(
                "SELECT {GROUP_COLUMNS} FROM groups g WHERE g.tenant_id = $1 AND g.parent_id = $2 AND g.id > $3 \
                 ORDER BY g.id LIMIT $4"
            ))
            .bind(tenant)
            .bind(p)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {GROUP_COLUMNS} FROM groups g WHERE g.tenant_id = $1 AND g.parent_id IS NULL AND g.id > $2 \
                 ORDER BY g.id LIMIT $3"
            ))
            .bind(tenant)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(conn)
            .await?
        }
    };
    rows.iter().map(group_from).collect()
}

/// Root groups of the tenant managed by `plugin`, in id order after `after`.
pub async fn plugin_roots(
    conn: &mut AnyConnection,
    tenant: &str,
    plugin: &str,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<Group>> {
    let rows = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS} FROM groups g WHERE g.tenant_id = $1 AND g.parent_id IS NULL \
         AND g.owner_plugin = $2 AND g.id > $3 ORDER BY g.id LIMIT $4"
    ))
    .bind(tenant)
    .bind(plugin)
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(group_from).collect()
}

/// Descendants of `id` (not itself), breadth first: ordered by depth, then id, after
/// the cursor `after = (depth, id)`, down to `max_depth` levels (all when `None`).
pub async fn descendants(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
    max_depth: Option<i64>,
    after: Option<(i64, &str)>,
    limit: i64,
) -> StoreResult<Vec<GroupAtDepth>> {
    let (after_depth, after_id) = after.unwrap_or((0, ""));
    // Relative depths compared as absolute ones (a.depth + n), so the bounds need no
    // arithmetic on the column side.
    let rows = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS}, g.depth - a.depth AS rel FROM groups a CROSS JOIN groups g \
         WHERE a.tenant_id = $1 AND a.id = $2 \
           AND g.tenant_id = a.tenant_id AND g.lft > a.lft AND g.lft < a.rgt \
           AND g.depth - a.depth <= $3 \
           AND (g.depth - a.depth > $4 OR (g.depth - a.depth = $4 AND g.id > $5)) \
         ORDER BY g.depth, g.id LIMIT $6"
    ))
    .bind(tenant)
    .bind(id)
    .bind(max_depth.unwrap_or(i64::MAX))
    .bind(after_depth)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| at_depth_from(r, "rel")).collect()
}

/// The ids of `id`'s ancestors, nearest first, with `id` itself first when
/// `inclusive` (none for an unknown group) — by following parent links, one indexed
/// step per level.
pub(crate) async fn ancestor_ids(
    conn: &mut AnyConnection,
    tenant: &str,
    id: &str,
    inclusive: bool,
) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "WITH RECURSIVE up(id, parent_id, n) AS (\
           SELECT id, parent_id, CAST(0 AS BIGINT) FROM groups WHERE tenant_id = $1 AND id = $2 \
           UNION ALL SELECT g.id, g.parent_id, up.n + 1 FROM up CROSS JOIN groups g \
           WHERE g.tenant_id = $1 AND g.id = up.parent_id) \
         SELECT up.id FROM up WHERE up.n >= $3 ORDER BY up.n",
    )
    .bind(tenant)
    .bind(id)
    .bind(if inclusive { 0_i64 } else { 1 })
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// Ancestors of `id` (not itself), root first, each with its distance from `id`:
/// parent links followed upwards, each step one primary-key lookup that also reads
/// the row returned.
pub async fn ancestors(conn: &mut AnyConnection, tenant: &str, id: &str) -> StoreResult<Vec<GroupAtDepth>> {
    let rows = sqlx::query(
        "WITH RECURSIVE up(tenant_id, id, name, parent_id, owner_plugin, version, created_at, updated_at, rel) AS (\
           SELECT p.tenant_id, p.id, p.name, p.parent_id, p.owner_plugin, p.version, p.created_at, p.updated_at, \
                  CAST(1 AS BIGINT) \
           FROM groups c CROSS JOIN groups p \
           WHERE c.tenant_id = $1 AND c.id = $2 AND p.tenant_id = $1 AND p.id = c.parent_id \
           UNION ALL \
           SELECT g.tenant_id, g.id, g.name, g.parent_id, g.owner_plugin, g.version, g.created_at, g.updated_at, up.rel + 1 \
           FROM up CROSS JOIN groups g WHERE g.tenant_id = $1 AND g.id = up.parent_id) \
         SELECT * FROM up ORDER BY rel DESC",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| at_depth_from(r, "rel")).collect()
}

/// Whether `ancestor` is `descendant` or one of its ancestors.
pub async fn is_ancestor(
    conn: &mut AnyConnection,
    tenant: &str,
    ancestor: &str,
    descendant: &str,
) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT d.depth FROM groups a CROSS JOIN groups d \
         WHERE a.tenant_id = $1 AND a.id = $2 AND d.tenant_id = $1 AND d.id = $3 \
           AND d.lft >= a.lft AND d.lft <= a.rgt",
    )
    .bind(tenant)
    .bind(ancestor)
    .bind(descendant)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// Number of groups in the subtree of `id`, itself included (0 if it does not exist).
pub async fn subtree_size(conn: &mut AnyConnection, tenant: &str, id: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM groups a CROSS JOIN groups d \
         WHERE a.tenant_id = $1 AND a.id = $2 AND d.tenant_id = $1 AND d.lft >= a.lft AND d.lft <= a.rgt",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(conn)
    .await?)
}

/// A foreign-key violation means a referenced row vanished under a concurrent delete:
/// report it as not found rather than as a database failure.
pub(crate) fn map_missing(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if matches!(db.kind(), sqlx::error::ErrorKind::ForeignKeyViolation) => {
            StoreError::NotFound(what.to_string())
        }
        _ => e.into(),
    }
}

/// How many levels `id` is below its root (0 for a root or an unknown group).
pub async fn depth_of(conn: &mut AnyConnection, tenant: &str, id: &str) -> StoreResult<i64> {
    let depth: Option<Option<i64>> = sqlx::query_scalar("SELECT depth FROM groups WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(depth.flatten().unwrap_or(0))
}

/// Which of `ids` are groups of the tenant managed by `plugin` (`None`: managed
/// through REST).
pub async fn managed_by(
    conn: &mut AnyConnection,
    tenant: &str,
    plugin: Option<&str>,
    ids: &[&str],
) -> StoreResult<std::collections::HashSet<String>> {
    let mut found = std::collections::HashSet::new();
    for chunk in ids.chunks(500) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        // `owner_plugin IS NOT DISTINCT FROM $2` is not SQLite; `COALESCE` is both.
        let sql = format!(
            "SELECT id FROM groups WHERE tenant_id = $1 AND COALESCE(owner_plugin, '') = $2 AND id IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql)
            .bind(tenant)
            .bind(plugin.unwrap_or_default());
        for id in chunk {
            q = q.bind(*id);
        }
        found.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}
