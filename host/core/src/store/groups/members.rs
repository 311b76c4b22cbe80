//! Memberships: which users belong directly to which groups, with a role in each.
//! (Membership of a group's ancestor reaches the group's records through the
//! closure table; that join is the records store's.)

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::{GROUP_COLUMNS, Group, group_from, map_missing, require_group};
use crate::store::{StoreError, StoreResult, Tx, time};

/// A user's membership of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The group.
    pub group_id: String,
    /// The user.
    pub user_id: String,
    /// The role in the group (`member`, `owner`, `forecast-manager`…).
    pub role: String,
    /// When the membership was created.
    pub added_at: String,
}

/// A group a user belongs to directly, with the user's role in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    /// The group.
    pub group: Group,
    /// The user's role in it.
    pub role: String,
    /// When the membership was created.
    pub added_at: String,
}

pub(super) fn member_from(r: &sqlx::any::AnyRow) -> StoreResult<Member> {
    Ok(Member {
        group_id: r.try_get("group_id")?,
        user_id: r.try_get("user_id")?,
        role: r.try_get("role")?,
        added_at: r.try_get("added_at")?,
    })
}

/// Direct members of a group in user-id order after `after`.
pub async fn members_of(
    conn: &mut AnyConnection,
    tenant: &str,
    group: &str,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<Member>> {
    let rows = sqlx::query(
        "SELECT group_id, user_id, role, added_at FROM group_members \
         WHERE tenant_id = $1 AND group_id = $2 AND user_id > $3 ORDER BY user_id LIMIT $4",
    )
    .bind(tenant)
    .bind(group)
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(member_from).collect()
}

/// One membership, if it exists.
pub async fn member(conn: &mut AnyConnection, tenant: &str, group: &str, user: &str) -> StoreResult<Option<Member>> {
    let row = sqlx::query(
        "SELECT group_id, user_id, role, added_at FROM group_members \
         WHERE tenant_id = $1 AND group_id = $2 AND user_id = $3",
    )
    .bind(tenant)
    .bind(group)
    .bind(user)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(member_from).transpose()
}

/// Make `user` a member of `group` with `role`. The group and the user must exist in
/// the tenant ([`StoreError::NotFound`]); an existing membership is a conflict.
pub async fn add_member(tx: &mut Tx<'_>, tenant: &str, group: &str, user: &str, role: &str) -> StoreResult<Member> {
    require_group(tx, tenant, group).await?;
    let user_exists: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(user)
        .fetch_optional(&mut **tx)
        .await?;
    if user_exists.is_none() {
        return Err(StoreError::NotFound(format!("user {user} not found")));
    }
    let m = Member {
        group_id: group.to_string(),
        user_id: user.to_string(),
        role: role.to_string(),
        added_at: time::now(),
    };
    let done = sqlx::query(
        "INSERT INTO group_members (tenant_id, group_id, user_id, role, added_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(group)
    .bind(user)
    .bind(role)
    .bind(&m.added_at)
    .execute(&mut **tx)
    .await;
    match done {
        Ok(_) => Ok(m),
        Err(e) if crate::store::is_unique_violation(&e) => Err(StoreError::Conflict(format!(
            "user {user} is already a member of group {group}"
        ))),
        Err(e) => Err(map_missing(e, "the group or the user no longer exists")),
    }
}

/// Remove a membership; returns it, or `None` if there was none.
pub async fn remove_member(tx: &mut Tx<'_>, tenant: &str, group: &str, user: &str) -> StoreResult<Option<Member>> {
    let Some(m) = member(tx, tenant, group, user).await? else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND user_id = $3")
        .bind(tenant)
        .bind(group)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(Some(m))
}

/// Groups `user` belongs to directly, in group-id order after `after`.
pub async fn groups_of_user(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<Membership>> {
    let rows = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS}, m.role AS member_role, m.added_at FROM group_members m \
         JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id \
         WHERE m.tenant_id = $1 AND m.user_id = $2 AND m.group_id > $3 ORDER BY m.group_id LIMIT $4"
    ))
    .bind(tenant)
    .bind(user)
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Membership {
                group: group_from(r)?,
                role: r.try_get("member_role")?,
                added_at: r.try_get("added_at")?,
            })
        })
        .collect()
}

/// Change the role of an existing membership; returns it before and after, or `None`
/// if `user` is not a member of `group`.
pub async fn set_member_role(
    tx: &mut Tx<'_>,
    tenant: &str,
    group: &str,
    user: &str,
    role: &str,
) -> StoreResult<Option<(Member, Member)>> {
    let Some(before) = member(tx, tenant, group, user).await? else {
        return Ok(None);
    };
    sqlx::query("UPDATE group_members SET role = $4 WHERE tenant_id = $1 AND group_id = $2 AND user_id = $3")
        .bind(tenant)
        .bind(group)
        .bind(user)
        .bind(role)
        .execute(&mut **tx)
        .await?;
    let after = Member {
        role: role.to_string(),
        ..before.clone()
    };
    Ok(Some((before, after)))
}
