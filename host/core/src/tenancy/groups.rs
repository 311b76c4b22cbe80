//! Group services: create, rename, move, delete groups and manage memberships — each
//! validated, checked against who manages the group, and audited in the same
//! transaction as the change. The REST API and the `sharing` capability both call
//! these, naming themselves with [`GroupOwner`].
//!
//! Ownership rule: a group is changed only by whoever manages it — groups created
//! through REST by REST callers, groups created by a plugin by that plugin. A group's
//! parent must have the same manager, so a plugin's hierarchy (territories) and the
//! tenant's own groups never interleave and neither can re-arrange the other.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::error::{TenancyError, TenancyResult};
use super::validate::{self, Problems};
use super::{event, snapshot};
use crate::store::audit::{self, Actor};
use crate::store::groups::{self as store, Group, Member};
use crate::store::{Db, Tx};

/// Who is changing groups: the REST API (tenant users) or a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOwner<'a> {
    /// Tenant users through the REST API; manages groups with no `owner_plugin`.
    Rest,
    /// A plugin (its id); manages the groups it created.
    Plugin(&'a str),
}

impl<'a> GroupOwner<'a> {
    /// The `owner_plugin` value of groups this owner creates.
    pub fn as_plugin(&self) -> Option<&'a str> {
        match self {
            GroupOwner::Rest => None,
            GroupOwner::Plugin(p) => Some(p),
        }
    }

    fn manages(&self, g: &Group) -> bool {
        g.owner_plugin.as_deref() == self.as_plugin()
    }
}

fn describe_manager(g: &Group) -> String {
    match &g.owner_plugin {
        Some(p) => format!("plugin {p}"),
        None => "the REST API".into(),
    }
}

fn require_manages(owner: GroupOwner<'_>, g: &Group) -> TenancyResult<()> {
    if owner.manages(g) {
        Ok(())
    } else {
        Err(TenancyError::ManagedElsewhere {
            group: g.id.clone(),
            manager: describe_manager(g),
        })
    }
}

fn check_version(g: &Group, if_match: Option<i64>) -> TenancyResult<()> {
    match if_match {
        Some(v) if v != g.version => Err(TenancyError::VersionMismatch { current: g.version }),
        _ => Ok(()),
    }
}

/// The parent a group is created or moved under: it must exist and share the manager.
async fn usable_parent(tx: &mut Tx<'_>, tenant: &str, owner: GroupOwner<'_>, parent: &str) -> TenancyResult<Group> {
    let p = store::group(tx, tenant, parent)
        .await?
        .ok_or_else(|| TenancyError::NotFound(format!("parent group {parent} not found")))?;
    require_manages(owner, &p)?;
    Ok(p)
}

/// Create a group named `name` under `parent` (a root when `None`).
pub async fn create_group(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    owner: GroupOwner<'_>,
    name: &str,
    parent: Option<&str>,
) -> TenancyResult<Group> {
    let name = validate::name(name).map_err(|m| TenancyError::invalid("name", m))?;
    let mut tx = db.writer().begin().await?;
    store::lock_tree(&mut tx, tenant).await?;
    if let Some(p) = parent {
        usable_parent(&mut tx, tenant, owner, p).await?;
    }
    let g = store::create_group(&mut tx, tenant, &name, parent, owner.as_plugin()).await?;
    let after = snapshot(&g);
    audit::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        event("group.create", "group", &g.id, None, Some(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(g)
}

/// A change to a group: a new name and/or a new parent (`Some(None)`: make it a root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPatch {
    /// New name.
    pub name: Option<String>,
    /// New parent; `Some(None)` moves the group to the root level.
    pub parent_id: Option<Option<String>>,
}

/// Rename and/or move a group (with its whole subtree). `if_match` is the version the
/// caller last saw. A move under the group itself or a descendant is a
/// [`TenancyError::Cycle`] naming the path. A change to nothing changes nothing (no
/// version bump, no audit event). Audited as `group.move` when the parent changes,
/// else `group.update`.
pub async fn update_group(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    owner: GroupOwner<'_>,
    id: &str,
    if_match: Option<i64>,
    patch: GroupPatch,
) -> TenancyResult<Group> {
    let mut problems = Problems::default();
    let name = match &patch.name {
        Some(n) => problems.check("name", validate::name(n)),
        None => None,
    };
    problems.finish()?;
    let mut tx = db.writer().begin().await?;
    store::lock_tree(&mut tx, tenant).await?;
    let before = store::lock_group(&mut tx, tenant, id)
        .await?
        .ok_or_else(|| TenancyError::NotFound(format!("group {id} not found")))?;
    require_manages(owner, &before)?;
    check_version(&before, if_match)?;
    let rename = name.filter(|n| *n != before.name);
    let new_parent = patch.parent_id.filter(|p| *p != before.parent_id);
    if rename.is_none() && new_parent.is_none() {
        return Ok(before);
    }
    if let Some(Some(p)) = &new_parent {
        usable_parent(&mut tx, tenant, owner, p).await?;
        if store::is_ancestor(&mut tx, tenant, id, p).await? {
            let path = cycle_path(&mut tx, tenant, id, p).await?;
            return Err(TenancyError::Cycle {
                group: id.to_string(),
                new_parent: p.clone(),
                path,
            });
        }
    }
    let after = store::update_group(
        &mut tx,
        tenant,
        id,
        rename.as_deref(),
        new_parent.as_ref().map(|p| p.as_deref()),
    )
    .await?;
    let action = if new_parent.is_some() {
        "group.move"
    } else {
        "group.update"
    };
    let (b, a) = (snapshot(&before), snapshot(&after));
    audit::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        event(action, "group", id, Some(&b), Some(&a)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Ids from `group` down to its descendant `target` (both included).
async fn cycle_path(tx: &mut Tx<'_>, tenant: &str, group: &str, target: &str) -> TenancyResult<Vec<String>> {
    if group == target {
        return Ok(vec![group.to_string()]);
    }
    // Ancestors of the target come root first; keep those at or below `group`.
    let ancestors = store::ancestors(tx, tenant, target).await?;
    let mut path: Vec<String> = ancestors
        .into_iter()
        .map(|a| a.group.id)
        .skip_while(|a| a != group)
        .collect();
    path.push(target.to_string());
    Ok(path)
}

/// Delete a group with no children and no record shares (else a conflict), with its
/// memberships; the audit event's `before` lists the memberships it had.
pub async fn delete_group(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    owner: GroupOwner<'_>,
    id: &str,
    if_match: Option<i64>,
) -> TenancyResult<Group> {
    let mut tx = db.writer().begin().await?;
    store::lock_tree(&mut tx, tenant).await?;
    let current = store::lock_group(&mut tx, tenant, id)
        .await?
        .ok_or_else(|| TenancyError::NotFound(format!("group {id} not found")))?;
    require_manages(owner, &current)?;
    check_version(&current, if_match)?;
    let (g, members) = store::delete_group(&mut tx, tenant, id).await?;
    let mut before = snapshot(&g);
    if let Value::Object(map) = &mut before {
        map.insert("members".into(), snapshot(&members));
    }
    audit::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        event("group.delete", "group", id, Some(&before), None),
    )
    .await?;
    tx.commit().await?;
    Ok(g)
}

/// The audit entity id of a membership.
pub fn member_entity_id(group: &str, user: &str) -> String {
    format!("{group}:{user}")
}

/// Make `user` a member of `group` with `role` (default `member`).
pub async fn add_member(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    owner: GroupOwner<'_>,
    group: &str,
    user: &str,
    role: Option<&str>,
) -> TenancyResult<Member> {
    let role = validate::member_role(role.unwrap_or("member")).map_err(|m| TenancyError::invalid("role", m))?;
    let mut tx = db.writer().begin().await?;
    let g = store::lock_group(&mut tx, tenant, group)
        .await?
        .ok_or_else(|| TenancyError::NotFound(format!("group {group} not found")))?;
    require_manages(owner, &g)?;
    let m = store::add_member(&mut tx, tenant, group, user, &role).await?;
    let entity = member_entity_id(group, user);
    let after = snapshot(&m);
    let e = event("group_member.add", "group_member", &entity, None, Some(&after));
    audit::append(&mut tx, db.dialect(), tenant, actor, e).await?;
    tx.commit().await?;
    Ok(m)
}

/// Make `user` a member of `group` with `role`, or change the role of their existing
/// membership, in one transaction (audited as `group_member.add` or
/// `group_member.update`; an unchanged membership is left alone).
pub async fn set_member(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    owner: GroupOwner<'_>,
    group: &str,
    user: &str,
    role: &str,
) -> TenancyResult<Member> {
    let role = validate::member_role(role).map_err(|m| TenancyError::invalid("role", m))?;
    let mut tx = db.writer().begin().await?;
    let g = store::lock_group(&mut tx, tenant, group)
        .await?
        .ok_or_else(|| TenancyError::NotFound(format!("group {group} not found")))?;
    require_manages(owner, &g)?;
    let entity = member_entity_id(group, user);
    let m = match store::set_member_role(&mut tx, tenant, group, user, &role).await? {
        Some((before, after)) if before == after => return Ok(after),
        Some((before, after)) => {
            let (b, a) = (snapshot(&before), snapshot(&after));
            let e = event("group_member.update", "group_member", &entity, Some(&b), Some(&a));
            audit::append(&mut tx, db.dialect(), tenant, actor, e).await?;
            after
        }
        None => {
            let m = store::add_member(&mut tx, tenant, group, user, &role).await?;
            let after = snapshot(&m);
            let e = event("group_member.add", "group_member", &entity, None, Some(&after));
            audit::append(&mut tx, db.dialect(), tenant, actor, e).await?;
            m
        }
    };
    tx.commit().await?;
    Ok(m)
}

/// End `user`'s membership of `group` (not found if there is none).
pub async fn remove_member(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    owner: GroupOwner<'_>,
    group: &str,
    user: &str,
) -> TenancyResult<Member> {
    let mut tx = db.writer().begin().await?;
    let g = store::lock_group(&mut tx, tenant, group)
        .await?
        .ok_or_else(|| TenancyError::NotFound(format!("group {group} not found")))?;
    require_manages(owner, &g)?;
    let m = store::remove_member(&mut tx, tenant, group, user)
        .await?
        .ok_or_else(|| TenancyError::NotFound(format!("user {user} is not a member of group {group}")))?;
    let entity = member_entity_id(group, user);
    let before = snapshot(&m);
    let e = event("group_member.remove", "group_member", &entity, Some(&before), None);
    audit::append(&mut tx, db.dialect(), tenant, actor, e).await?;
    tx.commit().await?;
    Ok(m)
}

/// Largest number of groups [`tree`] returns.
pub const TREE_MAX_NODES: i64 = 5_000;
/// Deepest nesting [`tree`] returns (nested JSON stays well within stack limits).
pub const TREE_MAX_DEPTH: i64 = 100;

/// A group with its subtree, nested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeNode {
    /// The group.
    #[serde(flatten)]
    pub group: Group,
    /// Its children (in id order), each with theirs.
    pub children: Vec<TreeNode>,
}

/// The subtree of `id`, `max_depth` levels deep (at most [`TREE_MAX_DEPTH`]), nested;
/// more than [`TREE_MAX_NODES`] groups is an `Invalid` problem on `max_depth`.
/// One query (breadth-first over the subtree's interval), assembled bottom-up.
pub async fn tree(db: &Db, tenant: &str, id: &str, max_depth: i64) -> TenancyResult<TreeNode> {
    let mut conn = db.reader().acquire().await?;
    let root = store::group(&mut conn, tenant, id)
        .await?
        .ok_or_else(|| TenancyError::NotFound(format!("group {id} not found")))?;
    let nodes = store::descendants(&mut conn, tenant, id, Some(max_depth), None, TREE_MAX_NODES + 1).await?;
    if nodes.len() as i64 > TREE_MAX_NODES {
        return Err(TenancyError::invalid(
            "max_depth",
            format!(
                "the subtree has more than {TREE_MAX_NODES} groups within {max_depth} levels; \
                 use a smaller max_depth or page through /descendants"
            ),
        ));
    }
    // Deepest first: every node's children are complete before the node is built.
    let mut children: HashMap<String, Vec<TreeNode>> = HashMap::new();
    for n in nodes.into_iter().rev() {
        let mut kids = children.remove(&n.group.id).unwrap_or_default();
        kids.reverse();
        let parent = n.group.parent_id.clone().unwrap_or_default();
        children.entry(parent).or_default().push(TreeNode {
            group: n.group,
            children: kids,
        });
    }
    let mut kids = children.remove(&root.id).unwrap_or_default();
    kids.reverse();
    Ok(TreeNode {
        group: root,
        children: kids,
    })
}
