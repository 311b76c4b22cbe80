//! Record shares: a record shared with a group is visible to the group's members and
//! to the members of every ancestor of the group (see `groups` for the nested
//! intervals that make that one comparison). This module stores the shares and answers who may
//! manage them; the visibility of records themselves is computed by the records store.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::rollups::ShareChange;
use super::{StoreError, StoreResult, Tx, time};
use crate::manifest::Role;

/// The level of access a share grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// See the record.
    Read,
    /// See and change the record.
    ReadWrite,
}

impl Access {
    /// The stored spelling: `read` or `read-write`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::ReadWrite => "read-write",
        }
    }

    /// Parse the stored spelling.
    pub fn parse(s: &str) -> Option<Access> {
        match s {
            "read" => Some(Access::Read),
            "read-write" => Some(Access::ReadWrite),
            _ => None,
        }
    }
}

/// The parts of a record that sharing decisions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// Record id.
    pub id: String,
    /// Its object (`account`, `opportunity`…).
    pub object: String,
    /// Its owner.
    pub owner_id: String,
}

/// A record shared with a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Share {
    /// The record.
    pub record_id: String,
    /// The group it is shared with.
    pub group_id: String,
    /// `read` or `read-write`.
    pub access: String,
    /// Who shared it (a user id), if known.
    pub created_by: Option<String>,
    /// When.
    pub created_at: String,
}

fn share_from(r: &sqlx::any::AnyRow) -> StoreResult<Share> {
    Ok(Share {
        record_id: r.try_get("record_id")?,
        group_id: r.try_get("group_id")?,
        access: r.try_get("access")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

const SHARE_COLUMNS: &str = "record_id, group_id, access, created_by, created_at";

/// A live (not soft-deleted) record of `object` in the tenant.
pub async fn record_ref(
    conn: &mut AnyConnection,
    tenant: &str,
    object: &str,
    id: &str,
) -> StoreResult<Option<RecordRef>> {
    let row = sqlx::query(
        "SELECT id, object, owner_id FROM records \
         WHERE tenant_id = $1 AND id = $2 AND object = $3 AND deleted_at IS NULL",
    )
    .bind(tenant)
    .bind(id)
    .bind(object)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(RecordRef {
            id: r.try_get("id")?,
            object: r.try_get("object")?,
            owner_id: r.try_get("owner_id")?,
        })
    })
    .transpose()
}

/// What a caller may do with a record's shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareRights {
    /// List, add and remove shares.
    Manage,
    /// The caller sees the record but may not change its shares (→ 403).
    View,
    /// The caller may not see the record at all (→ 404, so its existence is not revealed).
    Hidden,
}

/// Who may manage a record's shares: its owner and tenant admins/owners manage them
/// (read-only users only look, even at their own records). Anyone else who can see the
/// record — through a share with one of their groups or an ancestor of it, at either
/// access level — may list its shares but not change them: re-sharing is the owner's
/// decision, not an editor's. Everyone else gets `Hidden`, which never reveals that the
/// record exists.
pub async fn can_manage_shares(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
    role: Role,
    record: &RecordRef,
) -> StoreResult<ShareRights> {
    if role.at_least(Role::Admin) || (record.owner_id == user && role != Role::ReadOnly) {
        return Ok(ShareRights::Manage);
    }
    if record.owner_id == user {
        return Ok(ShareRights::View);
    }
    let viewer = super::records::Viewer {
        user_id: user.to_string(),
        all: false,
    };
    if super::records::has_access(conn, tenant, &record.id, &viewer, super::records::Access::Read).await? {
        Ok(ShareRights::View)
    } else {
        Ok(ShareRights::Hidden)
    }
}

/// Shares of a record in group-id order after `after`.
pub async fn shares_of(
    conn: &mut AnyConnection,
    tenant: &str,
    record: &str,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<Share>> {
    let rows = sqlx::query(&format!(
        "SELECT {SHARE_COLUMNS} FROM record_shares \
         WHERE tenant_id = $1 AND record_id = $2 AND group_id > $3 ORDER BY group_id LIMIT $4"
    ))
    .bind(tenant)
    .bind(record)
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(share_from).collect()
}

/// Records shared directly with a group, in record-id order after `after`, each with
/// its record's object (stored on the share since migration 0010).
pub async fn shares_of_group(
    conn: &mut AnyConnection,
    tenant: &str,
    group: &str,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<(String, Share)>> {
    let rows = sqlx::query(&format!(
        "SELECT {SHARE_COLUMNS}, object FROM record_shares \
         WHERE tenant_id = $1 AND group_id = $2 AND record_id > $3 ORDER BY record_id LIMIT $4"
    ))
    .bind(tenant)
    .bind(group)
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("object")?, share_from(r)?)))
        .collect()
}

/// One share, if it exists.
pub async fn share(conn: &mut AnyConnection, tenant: &str, record: &str, group: &str) -> StoreResult<Option<Share>> {
    let row = sqlx::query(&format!(
        "SELECT {SHARE_COLUMNS} FROM record_shares WHERE tenant_id = $1 AND record_id = $2 AND group_id = $3"
    ))
    .bind(tenant)
    .bind(record)
    .bind(group)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(share_from).transpose()
}

/// Share `record` with `group`. The group must exist in the tenant (NotFound); an
/// existing share with the group is a conflict (remove it first to change access).
pub async fn add_share(
    tx: &mut Tx<'_>,
    tenant: &str,
    record: &str,
    group: &str,
    access: Access,
    created_by: Option<&str>,
) -> StoreResult<Share> {
    let mut batch = ShareBatch::default();
    let s = batch.add(tx, tenant, record, group, access, created_by).await?;
    batch.finish(tx, tenant).await?;
    Ok(s)
}

/// Remove a share; returns it, or `None` if there was none.
pub async fn remove_share(tx: &mut Tx<'_>, tenant: &str, record: &str, group: &str) -> StoreResult<Option<Share>> {
    let mut batch = ShareBatch::default();
    let s = batch.remove(tx, tenant, record, group).await?;
    batch.finish(tx, tenant).await?;
    Ok(s)
}

/// Share changes made together in one transaction, whose roll-up totals (and the
/// tracking of records shared with several groups) are maintained together by
/// [`ShareBatch::finish`]: a few set-based statements per 200 records instead of six
/// or seven per share. Finish it before the transaction commits.
#[derive(Debug, Default)]
#[must_use = "finish the batch, or the roll-up totals miss its changes"]
pub struct ShareBatch {
    changes: Vec<ShareChange>,
}

impl ShareBatch {
    /// Remember that `record` was shared with `group` (`added`) or unshared.
    fn note(&mut self, record: &str, group: &str, added: bool) {
        self.changes.push(ShareChange {
            record: record.to_string(),
            group: group.to_string(),
            added,
        });
    }

    /// Bring the roll-up totals in step with every change of the batch.
    pub async fn finish(self, tx: &mut Tx<'_>, tenant: &str) -> StoreResult<()> {
        super::rollups::shares_changed(tx, tenant, &self.changes).await
    }

    /// [`add_share`], its roll-up maintenance left to [`ShareBatch::finish`].
    pub async fn add(
        &mut self,
        tx: &mut Tx<'_>,
        tenant: &str,
        record: &str,
        group: &str,
        access: Access,
        created_by: Option<&str>,
    ) -> StoreResult<Share> {
        match self.insert(tx, tenant, record, group, access, created_by).await? {
            Some(s) => Ok(s),
            None => Err(not_inserted(tx, tenant, record, group).await?),
        }
    }

    /// Insert the share in one statement, which also reads the record's object (shares
    /// carry it since migration 0010) and checks the group: `None`, and nothing
    /// written, when the share already exists or the record or the group does not.
    async fn insert(
        &mut self,
        tx: &mut Tx<'_>,
        tenant: &str,
        record: &str,
        group: &str,
        access: Access,
        created_by: Option<&str>,
    ) -> StoreResult<Option<Share>> {
        let row = sqlx::query(&format!(
            "INSERT INTO record_shares (tenant_id, record_id, group_id, access, created_by, created_at, object) \
             SELECT $1, $2, g.id, $4, $5, $6, r.object FROM records r CROSS JOIN groups g \
             WHERE r.tenant_id = $1 AND r.id = $2 AND g.tenant_id = $1 AND g.id = $3 \
             ON CONFLICT DO NOTHING RETURNING {SHARE_COLUMNS}"
        ))
        .bind(tenant)
        .bind(record)
        .bind(group)
        .bind(access.as_str())
        .bind(created_by)
        .bind(time::now())
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| super::groups::map_missing(e, "the record or the group no longer exists"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        self.note(record, group, true);
        share_from(&row).map(Some)
    }

    /// [`remove_share`], its roll-up maintenance left to [`ShareBatch::finish`].
    pub async fn remove(
        &mut self,
        tx: &mut Tx<'_>,
        tenant: &str,
        record: &str,
        group: &str,
    ) -> StoreResult<Option<Share>> {
        self.remove_where(tx, tenant, None, record, group).await
    }

    /// [`ShareBatch::remove`] of a share whose record is of `object` (a share of a
    /// record of another object is left alone: `None`).
    pub async fn remove_of(
        &mut self,
        tx: &mut Tx<'_>,
        tenant: &str,
        object: &str,
        record: &str,
        group: &str,
    ) -> StoreResult<Option<Share>> {
        self.remove_where(tx, tenant, Some(object), record, group).await
    }

    /// One statement: the share is deleted and returned (shares carry their record's
    /// object since migration 0010).
    async fn remove_where(
        &mut self,
        tx: &mut Tx<'_>,
        tenant: &str,
        object: Option<&str>,
        record: &str,
        group: &str,
    ) -> StoreResult<Option<Share>> {
        let of_object = if object.is_some() { " AND object = $4" } else { "" };
        let sql = format!(
            "DELETE FROM record_shares WHERE tenant_id = $1 AND record_id = $2 AND group_id = $3{of_object} \
             RETURNING {SHARE_COLUMNS}"
        );
        let mut q = sqlx::query(&sql).bind(tenant).bind(record).bind(group);
        if let Some(object) = object {
            q = q.bind(object);
        }
        let Some(row) = q.fetch_optional(&mut **tx).await? else {
            return Ok(None);
        };
        self.note(record, group, false);
        share_from(&row).map(Some)
    }

    /// Share `record` with `group` at `access`, or change the access of an existing
    /// share. Returns the share before (if any) and after; an unchanged share is not
    /// rewritten. The record and the group must exist in the tenant (the caller checks
    /// who may).
    pub async fn upsert(
        &mut self,
        tx: &mut Tx<'_>,
        tenant: &str,
        record: &str,
        group: &str,
        access: Access,
        created_by: Option<&str>,
    ) -> StoreResult<(Option<Share>, Share)> {
        // Most shares a call makes are new: one statement for those.
        if let Some(s) = self.insert(tx, tenant, record, group, access, created_by).await? {
            return Ok((None, s));
        }
        let before = share(tx, tenant, record, group).await?;
        match &before {
            Some(b) if b.access == access.as_str() => Ok((before.clone(), b.clone())),
            Some(b) => {
                sqlx::query(
                    "UPDATE record_shares SET access = $4 WHERE tenant_id = $1 AND record_id = $2 AND group_id = $3",
                )
                .bind(tenant)
                .bind(record)
                .bind(group)
                .bind(access.as_str())
                .execute(&mut **tx)
                .await?;
                let after = Share {
                    access: access.as_str().to_string(),
                    ..b.clone()
                };
                Ok((before, after))
            }
            None => Err(not_inserted(tx, tenant, record, group).await?),
        }
    }
}

/// Why a share of `record` with `group` was not inserted: the group does not exist, the
/// record does not, or the share already does.
async fn not_inserted(tx: &mut Tx<'_>, tenant: &str, record: &str, group: &str) -> StoreResult<StoreError> {
    let group_exists: Option<String> = sqlx::query_scalar("SELECT id FROM groups WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(group)
        .fetch_optional(&mut **tx)
        .await?;
    if group_exists.is_none() {
        return Ok(StoreError::NotFound(format!("group {group} not found")));
    }
    if share(tx, tenant, record, group).await?.is_some() {
        return Ok(StoreError::Conflict(format!(
            "record {record} is already shared with group {group}; remove the share to change its access"
        )));
    }
    Ok(StoreError::NotFound(format!("record {record} not found")))
}
