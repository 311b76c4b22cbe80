//! Record share services: share a record with a group, or stop sharing it, audited.
//! Who may is decided by [`crate::store::shares::can_manage_shares`] (the single hook
//! the records engineer extends with visibility).

use serde_json::Value;
use sqlx::AnyConnection;

use super::error::{TenancyError, TenancyResult};
use super::{Caller, event};
use crate::store::Db;
use crate::store::audit::{self, Actor};
use crate::store::shares::{self as store, Access, RecordRef, Share, ShareRights};

/// The audit entity id of a share.
pub fn share_entity_id(record: &str, group: &str) -> String {
    format!("{record}:{group}")
}

fn share_snapshot(record: &RecordRef, s: &Share) -> Value {
    serde_json::json!({
        "record_id": s.record_id,
        "object": record.object,
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
    let after = share_snapshot(&record, &s);
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
    let before = share_snapshot(&record, &s);
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
