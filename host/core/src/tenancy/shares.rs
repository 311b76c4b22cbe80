//! Record share services: share a record with a group, or stop sharing it, audited.
//! Who may is decided by [`crate::store::shares::can_manage_shares`] (the single hook
//! the records engineer extends with visibility).

use serde_json::Value;
use sqlx::AnyConnection;

use super::error::{TenancyError, TenancyResult};
use super::groups::GroupOwner;
use super::{Caller, event};
use crate::store::Db;
use crate::store::audit::{self, Actor};
use crate::store::shares::{self as store, Access, RecordRef, Share, ShareRights};

/// The audit entity id of a share.
pub fn share_entity_id(record: &str, group: &str) -> String {
    format!("{record}:{group}")
}

fn share_snapshot(object: &str, s: &Share) -> Value {
    serde_json::json!({
        "record_id": s.record_id,
        "object": object,
        "group_id": s.group_id,
        "access": s.access,
        "created_by": s.created_by,
        "created_at": s.created_at,
    })
}

/// The record (of `object`, not deleted) and what `caller` may do with its shares:
/// not found when it does not exist *or* the caller may not see it; forbidden when
/// `need_manage` and the caller may only look.
pub async fn record_for(
    conn: &mut AnyConnection,
    tenant: &str,
    caller: Caller<'_>,
    object: &str,
    id: &str,
    need_manage: bool,
) -> TenancyResult<RecordRef> {
    let missing = || TenancyError::NotFound(format!("{object} {id} not found"));
    let record = store::record_ref(conn, tenant, object, id).await?.ok_or_else(missing)?;
    match store::can_manage_shares(conn, tenant, caller.user_id, caller.role, &record).await? {
        ShareRights::Manage => Ok(record),
        ShareRights::View if !need_manage => Ok(record),
        ShareRights::View => Err(TenancyError::Forbidden(format!(
            "you may not change who {object} {id} is shared with"
        ))),
        ShareRights::Hidden => Err(missing()),
    }
}

/// Share a record with a group at `access` (`read` or `read-write`).
pub async fn add_share(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    caller: Caller<'_>,
    record: (&str, &str),
    group: &str,
    access: &str,
) -> TenancyResult<Share> {
    let access =
        Access::parse(access).ok_or_else(|| TenancyError::invalid("access", "must be `read` or `read-write`"))?;
    let (object, id) = record;
    // Checked inside the transaction, so the record cannot change hands in between.
    let mut tx = db.writer().begin().await?;
    let record = record_for(&mut tx, tenant, caller, object, id, true).await?;
    let s = store::add_share(&mut tx, tenant, &record.id, group, access, Some(caller.user_id)).await?;
    let after = share_snapshot(&record.object, &s);
    let entity = share_entity_id(&record.id, group);
    audit::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        event("record_share.add", "record_share", &entity, None, Some(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(s)
}

/// Stop sharing a record with a group (not found if it was not shared with it).
pub async fn remove_share(
    db: &Db,
    tenant: &str,
    actor: &Actor,
    caller: Caller<'_>,
    record: (&str, &str),
    group: &str,
) -> TenancyResult<Share> {
    let (object, id) = record;
    // Checked inside the transaction, so the record cannot change hands in between.
    let mut tx = db.writer().begin().await?;
    let record = record_for(&mut tx, tenant, caller, object, id, true).await?;
    let s = store::remove_share(&mut tx, tenant, &record.id, group)
        .await?
        .ok_or_else(|| TenancyError::NotFound(format!("{object} {id} is not shared with group {group}")))?;
    let before = share_snapshot(&record.object, &s);
    let entity = share_entity_id(&record.id, group);
    audit::append(
        &mut tx,
        db.dialect(),
        tenant,
        actor,
        event("record_share.remove", "record_share", &entity, Some(&before), None),
    )
    .await?;
    tx.commit().await?;
    Ok(s)
}

/// Most shares one [`set_shares`] or [`remove_shares`] call takes.
pub const MAX_SHARES_PER_CALL: usize = 1_000;

/// One share of a batch (the `sharing` capability, the demo data set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShare {
    /// The record's object.
    pub object: String,
    /// The record.
    pub record_id: String,
    /// The group: one the acting manager manages.
    pub group_id: String,
    /// What the share allows.
    pub access: Access,
}

/// Who a batch of share changes acts for: the groups' manager (a plugin, or REST), and
/// — when a user made the call — that user's visibility, which every named record
/// must be within.
#[derive(Debug, Clone, Copy)]
pub struct ShareActor<'a> {
    /// The manager; only groups it manages may be named.
    pub owner: GroupOwner<'a>,
    /// The calling user's visibility (`None`: no user, e.g. events, timers, the demo).
    pub viewer: Option<&'a crate::store::records::Viewer>,
    /// The audit actor.
    pub actor: &'a Actor,
}

/// Check that every group is the manager's (else not found, naming the first one that
/// is not: other managers' groups are not revealed).
async fn require_managed(
    conn: &mut AnyConnection,
    tenant: &str,
    owner: GroupOwner<'_>,
    groups: &[&str],
) -> TenancyResult<()> {
    let owned = crate::store::groups::managed_by(conn, tenant, owner.as_plugin(), groups).await?;
    match groups.iter().find(|g| !owned.contains(**g)) {
        Some(g) => Err(TenancyError::NotFound(format!("group {g} not found"))),
        None => Ok(()),
    }
}

/// Check that the caller may see `record` (when a user made the call).
async fn require_visible(
    conn: &mut AnyConnection,
    tenant: &str,
    who: ShareActor<'_>,
    object: &str,
    id: &str,
) -> TenancyResult<()> {
    if let Some(viewer) = who.viewer.filter(|v| !v.all) {
        let visible =
            crate::store::records::has_access(conn, tenant, id, viewer, crate::store::records::Access::Read).await?;
        if !visible {
            return Err(TenancyError::NotFound(format!("{object} {id} not found")));
        }
    }
    Ok(())
}

/// Create or update up to [`MAX_SHARES_PER_CALL`] shares atomically: every group must
/// be one the manager manages and every record a live record of its object that the
/// caller may see; otherwise nothing changes. Each created or changed share is audited
/// (`record_share.add` / `record_share.update`) as `who.actor`.
pub async fn set_shares(db: &Db, tenant: &str, who: ShareActor<'_>, shares: &[NewShare]) -> TenancyResult<()> {
    let mut tx = db.writer().begin().await?;
    set_shares_in(db, &mut tx, tenant, who, shares).await?;
    tx.commit().await?;
    Ok(())
}

/// [`set_shares`] inside the caller's transaction (an atomic batch, a job step's commit).
pub async fn set_shares_in(
    db: &Db,
    tx: &mut crate::store::Tx<'_>,
    tenant: &str,
    who: ShareActor<'_>,
    shares: &[NewShare],
) -> TenancyResult<()> {
    if shares.len() > MAX_SHARES_PER_CALL {
        return Err(TenancyError::invalid(
            "shares",
            format!("at most {MAX_SHARES_PER_CALL} shares per call, got {}", shares.len()),
        ));
    }
    let groups: Vec<&str> = dedup(shares.iter().map(|s| s.group_id.as_str()));
    require_managed(tx, tenant, who.owner, &groups).await?;
    let mut by_object: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for s in shares {
        by_object.entry(&s.object).or_default().push(s.record_id.clone());
    }
    for (object, ids) in &by_object {
        let found: std::collections::HashSet<String> = db
            .existing_records(tx, tenant, object, ids)
            .await?
            .into_iter()
            .collect();
        if let Some(missing) = ids.iter().find(|id| !found.contains(*id)) {
            return Err(TenancyError::NotFound(format!("{object} {missing} not found")));
        }
    }
    let mut batch = store::ShareBatch::default();
    let mut audited: Vec<ShareEvent> = Vec::new();
    for s in shares {
        require_visible(tx, tenant, who, &s.object, &s.record_id).await?;
        let (before, after) = batch
            .upsert(
                tx,
                tenant,
                &s.record_id,
                &s.group_id,
                s.access,
                who.actor.user_id.as_deref(),
            )
            .await?;
        if before.as_ref() == Some(&after) {
            continue;
        }
        let action = if before.is_some() {
            "record_share.update"
        } else {
            "record_share.add"
        };
        audited.push((
            action,
            share_entity_id(&s.record_id, &s.group_id),
            before.as_ref().map(|b| share_snapshot(&s.object, b)),
            Some(share_snapshot(&s.object, &after)),
        ));
    }
    batch.finish(tx, tenant).await?;
    append_share_events(tx, db, tenant, who.actor, &audited).await?;
    Ok(())
}

/// One audited share change: action, entity id, before, after.
type ShareEvent = (&'static str, String, Option<Value>, Option<Value>);

/// Audit a call's share changes, in order, with one chain append.
async fn append_share_events(
    tx: &mut crate::store::Tx<'_>,
    db: &Db,
    tenant: &str,
    actor: &Actor,
    audited: &[ShareEvent],
) -> TenancyResult<()> {
    let events: Vec<_> = audited
        .iter()
        .map(|(action, entity, before, after)| event(action, "record_share", entity, before.as_ref(), after.as_ref()))
        .collect();
    audit::append_all(tx, db.dialect(), tenant, actor, &events).await?;
    Ok(())
}

/// Remove up to [`MAX_SHARES_PER_CALL`] shares `(object, record, group)` atomically;
/// returns how many existed. Groups must be the manager's; records that are not of the
/// named object, or that the caller may not see, count as not shared. Each removal is
/// audited (`record_share.remove`) as `who.actor`.
pub async fn remove_shares(
    db: &Db,
    tenant: &str,
    who: ShareActor<'_>,
    shares: &[(String, String, String)],
) -> TenancyResult<u32> {
    let mut tx = db.writer().begin().await?;
    let removed = remove_shares_in(db, &mut tx, tenant, who, shares).await?;
    tx.commit().await?;
    Ok(removed)
}

/// [`remove_shares`] inside the caller's transaction (an atomic batch, a job step's commit).
pub async fn remove_shares_in(
    db: &Db,
    tx: &mut crate::store::Tx<'_>,
    tenant: &str,
    who: ShareActor<'_>,
    shares: &[(String, String, String)],
) -> TenancyResult<u32> {
    if shares.len() > MAX_SHARES_PER_CALL {
        return Err(TenancyError::invalid(
            "shares",
            format!("at most {MAX_SHARES_PER_CALL} shares per call, got {}", shares.len()),
        ));
    }
    let groups: Vec<&str> = dedup(shares.iter().map(|(_, _, g)| g.as_str()));
    require_managed(tx, tenant, who.owner, &groups).await?;
    let mut removed = 0u32;
    let mut batch = store::ShareBatch::default();
    let mut audited: Vec<ShareEvent> = Vec::new();
    for (object, id, group) in shares {
        if require_visible(tx, tenant, who, object, id).await.is_err() {
            continue;
        }
        let Some(s) = batch.remove_of(tx, tenant, object, id, group).await? else {
            continue;
        };
        removed += 1;
        audited.push((
            "record_share.remove",
            share_entity_id(id, group),
            Some(share_snapshot(object, &s)),
            None,
        ));
    }
    batch.finish(tx, tenant).await?;
    append_share_events(tx, db, tenant, who.actor, &audited).await?;
    Ok(removed)
}

/// The distinct values of `items`, in first-seen order.
fn dedup<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    items.filter(|i| seen.insert(*i)).collect()
}
