//! Writes that belong together: record writes, share changes and plugin-storage
//! writes applied in **one transaction** — all or nothing.
//!
//! A plugin submits a batch through the WIT `batch.apply`, and a job step returns one
//! with its next state (the job worker commits both together, so a step's writes are
//! applied exactly once). Each write is checked and audited as the same write made on
//! its own would be — record writes through the records service (validation, locks,
//! roll-ups, one audit entry per change, a `record.*` event), share changes through the
//! sharing service — and events reach subscribers only after the commit. The first
//! write that fails aborts the batch and is named by its index (`writes[3]: …`).
//!
//! What a plugin may write is checked by the runtime against its grants before the
//! batch reaches this module; here every write is bound to the caller's tenant and the
//! plugin's own storage and groups.

use serde_json::Value;

use crate::problem::{IntoProblem, Problem, ProblemKind};
use crate::records::{self, Change, NewRecord, Who};
use crate::store::records::Viewer;
use crate::store::{Db, Scope, Tx};
use crate::tenancy::TenancyError;
use crate::tenancy::groups::GroupOwner;
use crate::tenancy::shares::{self, NewShare, ShareActor};

/// Most writes in one batch.
pub const MAX_WRITES: usize = 1000;

/// One write of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create a record of `object` (owner: the caller, unless named).
    RecordCreate {
        /// The object.
        object: String,
        /// Field values (a JSON object).
        fields: Value,
        /// The owner.
        owner_id: Option<String>,
    },
    /// Change fields of a record (`null` clears a field).
    RecordUpdate {
        /// The object.
        object: String,
        /// The record.
        id: String,
        /// Fields to set.
        fields: Value,
        /// The version the record must be at.
        expected_version: Option<i64>,
    },
    /// Soft-delete a record.
    RecordDelete {
        /// The object.
        object: String,
        /// The record.
        id: String,
        /// The version the record must be at.
        expected_version: Option<i64>,
    },
    /// Share a record with one of the plugin's groups (or change the access).
    ShareAdd(NewShare),
    /// Remove a share; removing one that does not exist is not an error.
    ShareRemove {
        /// The record's object.
        object: String,
        /// The record.
        record_id: String,
        /// The group.
        group_id: String,
    },
    /// Write a document of the plugin's storage.
    StoragePut {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// The JSON value.
        value: String,
        /// The version it must be at (`Some(0)`: must not exist).
        expected_version: Option<u64>,
    },
    /// Delete a document of the plugin's storage.
    StorageDelete {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// The version it must be at.
        expected_version: Option<u64>,
    },
}

/// What one write did, in the order of the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The record written (record writes).
    pub id: Option<String>,
    /// The record's or document's new version (creates, updates, puts).
    pub version: Option<u64>,
    /// Whether a delete or share removal found something to remove.
    pub existed: Option<bool>,
}

/// Who applies a batch: the records identity of the call and the plugin whose storage
/// and groups it may touch.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// The caller as the records service sees it (tenant, user, role, audit actor).
    pub who: &'a Who,
    /// The identity record writes of `system_objects` run as (the plugin itself).
    pub system: &'a Who,
    /// Objects whose record writes run as [`Writer::system`] (granted `system-write`).
    pub system_objects: &'a [String],
    /// The plugin.
    pub plugin: &'a str,
    /// The calling user's visibility for share changes (`None` when no user called).
    pub share_viewer: Option<&'a Viewer>,
}

/// A batch that failed: the index of the first failing write and why. Nothing of the
/// batch was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// The failing write (`None`: the batch as a whole, e.g. too many writes).
    pub index: Option<usize>,
    /// What went wrong.
    pub problem: Problem,
}

impl BatchError {
    fn at(index: usize, problem: impl IntoProblem) -> BatchError {
        BatchError {
            index: Some(index),
            problem: problem.into_problem(),
        }
    }
}

impl IntoProblem for BatchError {
    fn into_problem(self) -> Problem {
        let mut p = self.problem;
        if let Some(i) = self.index {
            // Field problems carry the index in their paths; others in the detail.
            if p.kind != ProblemKind::Internal && p.fields.is_empty() {
                p.detail = format!("writes[{i}]: {}", p.detail);
            }
            for f in &mut p.fields {
                f.field = format!("writes[{i}].{}", f.field);
            }
        }
        p
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "writes[{i}]: {}", self.problem.detail),
            None => f.write_str(&self.problem.detail),
        }
    }
}

/// A sharing failure as a plugin sees it: another manager's group is not revealed.
fn share_problem(e: TenancyError) -> Problem {
    match e {
        TenancyError::NotFound(m) => Problem::new(ProblemKind::NotFound, m),
        TenancyError::ManagedElsewhere { group, .. } => {
            Problem::new(ProblemKind::NotFound, format!("group {group} not found"))
        }
        TenancyError::Forbidden(m) => Problem::new(ProblemKind::Denied, m),
        TenancyError::Invalid(fields) => Problem::new(
            ProblemKind::BadRequest,
            fields
                .iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        TenancyError::Store(e) => e.into_problem(),
        other => Problem::new(ProblemKind::Conflict, other.to_string()),
    }
}

/// Apply `writes` in one transaction of its own.
pub async fn apply(db: &Db, writer: Writer<'_>, writes: &[Write]) -> Result<Vec<Applied>, BatchError> {
    let whole = |e: crate::store::StoreError| BatchError {
        index: None,
        problem: e.into_problem(),
    };
    let mut tx = db.writer().begin().await.map_err(|e| whole(e.into()))?;
    let applied = apply_in(db, &mut tx, writer, writes).await?;
    tx.commit().await.map_err(|e| whole(e.into()))?;
    Ok(applied)
}

/// Apply `writes`, in order, inside the caller's transaction; the caller commits (or
/// drops `tx` on an error, which undoes every write).
pub async fn apply_in(
    db: &Db,
    tx: &mut Tx<'_>,
    writer: Writer<'_>,
    writes: &[Write],
) -> Result<Vec<Applied>, BatchError> {
    if writes.len() > MAX_WRITES {
        return Err(BatchError {
            index: None,
            problem: Problem::new(
                ProblemKind::Limit,
                format!("a batch holds at most {MAX_WRITES} writes, not {}", writes.len()),
            ),
        });
    }
    let who = writer.who;
    let scope = Scope {
        tenant: &who.tenant,
        plugin: writer.plugin,
    };
    let sharer = ShareActor {
        owner: GroupOwner::Plugin(writer.plugin),
        viewer: writer.share_viewer,
        actor: &who.actor,
    };
    let writer_of = |object: &str| {
        if writer.system_objects.iter().any(|o| o == object) {
            writer.system
        } else {
            who
        }
    };
    let mut applied = Vec::with_capacity(writes.len());
    for (i, write) in writes.iter().enumerate() {
        let done = match write {
            Write::RecordCreate {
                object,
                fields,
                owner_id,
            } => {
                let item = NewRecord {
                    fields: fields.clone(),
                    owner_id: owner_id.clone(),
                };
                let created = records::create_in(db, tx, writer_of(object), object, vec![item], false)
                    .await
                    .map_err(|e| BatchError::at(i, e))?;
                let r = created.first();
                Applied {
                    id: r.map(|r| r.id.clone()),
                    version: r.and_then(|r| u64::try_from(r.version).ok()),
                    existed: None,
                }
            }
            Write::RecordUpdate {
                object,
                id,
                fields,
                expected_version,
            } => {
                let change = Change {
                    id: id.clone(),
                    fields: fields.clone(),
                    owner_id: None,
                    expected_version: *expected_version,
                };
                let updated = records::update_in(db, tx, writer_of(object), object, vec![change], false)
                    .await
                    .map_err(|e| BatchError::at(i, e))?;
                Applied {
                    id: Some(id.clone()),
                    version: updated.first().and_then(|r| u64::try_from(r.version).ok()),
                    existed: None,
                }
            }
            Write::RecordDelete {
                object,
                id,
                expected_version,
            } => {
                records::set_deleted_in(db, tx, writer_of(object), object, id, true, *expected_version)
                    .await
                    .map_err(|e| BatchError::at(i, e))?;
                Applied {
                    id: Some(id.clone()),
                    version: None,
                    existed: Some(true),
                }
            }
            Write::ShareAdd(share) => {
                shares::set_shares_in(db, tx, &who.tenant, sharer, std::slice::from_ref(share))
                    .await
                    .map_err(|e| BatchError::at(i, share_problem(e)))?;
                Applied {
                    id: Some(share.record_id.clone()),
                    ..Applied::default()
                }
            }
            Write::ShareRemove {
                object,
                record_id,
                group_id,
            } => {
                let one = [(object.clone(), record_id.clone(), group_id.clone())];
                let removed = shares::remove_shares_in(db, tx, &who.tenant, sharer, &one)
                    .await
                    .map_err(|e| BatchError::at(i, share_problem(e)))?;
                Applied {
                    id: Some(record_id.clone()),
                    version: None,
                    existed: Some(removed > 0),
                }
            }
            Write::StoragePut {
                collection,
                key,
                value,
                expected_version,
            } => {
                let version = crate::store::put_document_in(tx, scope, collection, key, value, *expected_version)
                    .await
                    .map_err(|e| BatchError::at(i, e))?;
                Applied {
                    version: Some(version),
                    ..Applied::default()
                }
            }
            Write::StorageDelete {
                collection,
                key,
                expected_version,
            } => {
                let existed = crate::store::delete_document_in(tx, scope, collection, key, *expected_version)
                    .await
                    .map_err(|e| BatchError::at(i, e))?;
                Applied {
                    existed: Some(existed),
                    ..Applied::default()
                }
            }
        };
        applied.push(done);
    }
    Ok(applied)
}
