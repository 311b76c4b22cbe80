//! `batch`: record, share and storage writes applied in one transaction. Nothing to
//! declare for the batch itself; each write is checked against the grant the same
//! call made alone would need. The same checks turn a job step's writes into the
//! writes the job worker commits with the step.

use super::CapCtx;
use super::records::parse_json;
use crate::bindings::plinth::plugin::batch::Host;
use crate::bindings::plinth::plugin::sharing::Access;
use crate::bindings::{Applied, WitError, Write};
use plinth_core::batch::{self, MAX_WRITES, Write as CoreWrite};
use plinth_core::manifest::registry;
use plinth_core::records::Who;
use plinth_core::store::records::Viewer;
use plinth_core::store::shares::Access as StoreAccess;
use plinth_core::tenancy::shares::NewShare;

/// Writes checked against this call's grants, with the identity to apply them as.
#[derive(Debug, Clone)]
pub struct CheckedWrites {
    /// The writes, in order.
    pub writes: Vec<CoreWrite>,
    /// The records identity of the call.
    pub who: Who,
    /// The plugin's own identity, for objects granted `system-write`.
    pub system: Who,
    /// Those objects.
    pub system_objects: Vec<String>,
    /// The plugin.
    pub plugin: String,
    /// The calling user's visibility for share changes.
    pub share_viewer: Option<Viewer>,
}

impl CheckedWrites {
    /// The identity the core batch service applies them as.
    pub fn writer(&self) -> batch::Writer<'_> {
        batch::Writer {
            who: &self.who,
            system: &self.system,
            system_objects: &self.system_objects,
            plugin: &self.plugin,
            share_viewer: self.share_viewer.as_ref(),
        }
    }
}

fn version(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn at(i: usize, e: WitError) -> WitError {
    match e {
        WitError::NotFound(m) => WitError::NotFound(format!("writes[{i}]: {m}")),
        WitError::Invalid(m) => WitError::Invalid(format!("writes[{i}]: {m}")),
        WitError::Denied(m) => WitError::Denied(format!("writes[{i}]: {m}")),
        WitError::Conflict(m) => WitError::Conflict(format!("writes[{i}]: {m}")),
        WitError::Limit(m) => WitError::Limit(format!("writes[{i}]: {m}")),
        other => other,
    }
}

impl CapCtx {
    /// Check every write against the grants (one host call for the lot) and turn them
    /// into the core service's writes; the first refused write is named by index.
    pub(crate) fn check_writes(&mut self, writes: Vec<Write>) -> Result<CheckedWrites, WitError> {
        if writes.len() > MAX_WRITES {
            return Err(WitError::Limit(format!(
                "a batch holds at most {MAX_WRITES} writes, not {}",
                writes.len()
            )));
        }
        let mut checked = Vec::with_capacity(writes.len());
        for (i, w) in writes.into_iter().enumerate() {
            checked.push(self.check_write(w).map_err(|e| at(i, e))?);
        }
        let system_objects: Vec<String> = self
            .grants
            .records
            .iter()
            .filter(|(_, g)| g.system_write)
            .map(|(o, _)| o.clone())
            .collect();
        let system = match system_objects.first() {
            Some(o) => self.writer_of(o),
            None => self.who(),
        };
        Ok(CheckedWrites {
            writes: checked,
            who: self.who(),
            system,
            system_objects,
            plugin: self.plugin.id.clone(),
            share_viewer: self.share_viewer(),
        })
    }

    fn record_fields(&mut self, object: &str, fields: &str) -> Result<serde_json::Value, WitError> {
        let allowed = self.granted_records(object, true)?.fields.clone();
        let fields = parse_json("fields", fields)?;
        let names: Vec<String> = fields
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        self.check_fields(&allowed, names.iter().map(String::as_str))?;
        Ok(fields)
    }

    fn check_write(&mut self, w: Write) -> Result<CoreWrite, WitError> {
        Ok(match w {
            Write::RecordCreate((object, fields, owner_id)) => {
                let fields = self.record_fields(&object, &fields)?;
                if self.caller.user_id.is_none() && owner_id.is_none() {
                    return Err(WitError::Invalid("a call with no user must name the owner-id".into()));
                }
                CoreWrite::RecordCreate {
                    object,
                    fields,
                    owner_id,
                }
            }
            Write::RecordUpdate((object, id, fields, expected)) => {
                let fields = self.record_fields(&object, &fields)?;
                CoreWrite::RecordUpdate {
                    object,
                    id,
                    fields,
                    expected_version: version(expected),
                }
            }
            Write::RecordDelete((object, id, expected)) => {
                self.granted_records(&object, true)?;
                CoreWrite::RecordDelete {
                    object,
                    id,
                    expected_version: version(expected),
                }
            }
            Write::ShareAdd((object, record_id, group_id, read_write)) => {
                self.granted(&registry::SHARING)?;
                let access = if read_write { Access::ReadWrite } else { Access::Read };
                self.share_grant(&object, access)?;
                CoreWrite::ShareAdd(NewShare {
                    object,
                    record_id,
                    group_id,
                    access: if read_write {
                        StoreAccess::ReadWrite
                    } else {
                        StoreAccess::Read
                    },
                })
            }
            Write::ShareRemove((object, record_id, group_id)) => {
                self.granted(&registry::SHARING)?;
                self.share_grant(&object, Access::Read)?;
                CoreWrite::ShareRemove {
                    object,
                    record_id,
                    group_id,
                }
            }
            Write::StoragePut((collection, key, value, expected_version)) => {
                self.granted(&registry::STORAGE)?;
                CoreWrite::StoragePut {
                    collection,
                    key,
                    value,
                    expected_version,
                }
            }
            Write::StorageDelete((collection, key, expected_version)) => {
                self.granted(&registry::STORAGE)?;
                CoreWrite::StorageDelete {
                    collection,
                    key,
                    expected_version,
                }
            }
        })
    }
}

fn applied(a: batch::Applied) -> Applied {
    Applied {
        id: a.id,
        version: a.version,
        existed: a.existed,
    }
}

impl Host for CapCtx {
    async fn apply(&mut self, writes: Vec<Write>) -> wasmtime::Result<Result<Vec<Applied>, WitError>> {
        self.stats.host_calls += 1;
        let checked = match self.check_writes(writes) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let db = self.services.db.clone();
        let result = batch::apply(&db, checked.writer(), &checked.writes).await;
        Ok(result
            .map(|list| list.into_iter().map(applied).collect())
            .map_err(|e| self.wit_error(e)))
    }
}
