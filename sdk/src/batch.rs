//! Writes that belong together: record writes, share changes and storage writes the
//! host applies in **one transaction** — all or nothing. Each write needs the grant
//! the same call alone would need; nothing to declare for the batch itself.
//!
//! ```no_run
//! use plinth_sdk::batch::Batch;
//! use plinth_sdk::serde_json::json;
//! let mut batch = Batch::new();
//! batch
//!     .update("opportunity", "01J…", json!({"territory": "EMEA"}), None)
//!     .unshare("opportunity", "01J…", "group-old")
//!     .share("opportunity", "01J…", "group-new", false)
//!     .put("realignments", "run-7", &json!({"moved": 1}))?;
//! let applied = batch.apply()?; // one transaction: every write or none
//! assert_eq!(applied.len(), 4);
//! # Ok::<(), plinth_sdk::Error>(())
//! ```
//!
//! A job step returns a batch with its next state ([`crate::jobs::Step::writes`]): the
//! host commits both together, so those writes are applied exactly once. Needs
//! `plinth:plugin@1.5.0` (`api = "^1.5"`).

use serde::Serialize;
use serde_json::Value;

use crate::__private::wit::plinth::plugin::batch as wit;
use crate::__private::wit::plinth::plugin::types::{Applied as WitApplied, Write};
use crate::Error;

/// Most writes in one batch.
pub const MAX_WRITES: usize = 1000;

/// What one write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The record written (record writes and shares).
    pub id: Option<String>,
    /// The new version of the record or document (creates, updates, puts).
    pub version: Option<u64>,
    /// Whether a delete or share removal found something to remove.
    pub existed: Option<bool>,
}

impl From<WitApplied> for Applied {
    fn from(a: WitApplied) -> Self {
        Applied {
            id: a.id,
            version: a.version,
            existed: a.existed,
        }
    }
}

/// A list of writes, applied in order in one transaction.
///
/// ```
/// use plinth_sdk::batch::Batch;
/// let mut b = Batch::new();
/// b.create("account", plinth_sdk::serde_json::json!({"name": "Globex"}), None).remove("cache", "accounts");
/// assert_eq!(b.len(), 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub(crate) writes: Vec<Write>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// How many writes it holds.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Create a record (owner: the caller, unless named; a call with no user must
    /// name one).
    pub fn create(&mut self, object: &str, fields: Value, owner_id: Option<&str>) -> &mut Batch {
        self.writes.push(Write::RecordCreate((
            object.to_string(),
            fields.to_string(),
            owner_id.map(str::to_string),
        )));
        self
    }

    /// Change fields of a record (`null` clears one), optionally only at `expected_version`.
    pub fn update(&mut self, object: &str, id: &str, fields: Value, expected_version: Option<u64>) -> &mut Batch {
        self.writes.push(Write::RecordUpdate((
            object.to_string(),
            id.to_string(),
            fields.to_string(),
            expected_version,
        )));
        self
    }

    /// Soft-delete a record.
    pub fn delete(&mut self, object: &str, id: &str, expected_version: Option<u64>) -> &mut Batch {
        self.writes.push(Write::RecordDelete((
            object.to_string(),
            id.to_string(),
            expected_version,
        )));
        self
    }

    /// Share a record with one of the plugin's groups (read, or read-write).
    pub fn share(&mut self, object: &str, record_id: &str, group_id: &str, read_write: bool) -> &mut Batch {
        self.writes.push(Write::ShareAdd((
            object.to_string(),
            record_id.to_string(),
            group_id.to_string(),
            read_write,
        )));
        self
    }

    /// Remove a share (absent is no error).
    pub fn unshare(&mut self, object: &str, record_id: &str, group_id: &str) -> &mut Batch {
        self.writes.push(Write::ShareRemove((
            object.to_string(),
            record_id.to_string(),
            group_id.to_string(),
        )));
        self
    }

    /// Write a document of this plugin's storage.
    pub fn put<T: Serialize>(&mut self, collection: &str, key: &str, value: &T) -> Result<&mut Batch, Error> {
        self.put_at(collection, key, value, None)
    }

    /// Write a document only if it does not exist yet (else the batch fails with a
    /// conflict).
    pub fn put_new<T: Serialize>(&mut self, collection: &str, key: &str, value: &T) -> Result<&mut Batch, Error> {
        self.put_at(collection, key, value, Some(0))
    }

    /// Write a document only if it is at `expected_version` (`Some(0)`: absent).
    pub fn put_at<T: Serialize>(
        &mut self,
        collection: &str,
        key: &str,
        value: &T,
        expected_version: Option<u64>,
    ) -> Result<&mut Batch, Error> {
        let value = serde_json::to_string(value)?;
        self.writes.push(Write::StoragePut((
            collection.to_string(),
            key.to_string(),
            value,
            expected_version,
        )));
        Ok(self)
    }

    /// Delete a document.
    pub fn remove(&mut self, collection: &str, key: &str) -> &mut Batch {
        self.writes
            .push(Write::StorageDelete((collection.to_string(), key.to_string(), None)));
        self
    }

    /// Apply every write in one transaction; what each did, in order. The first write
    /// that fails undoes the batch; its index leads the message (`writes[3]: …`).
    pub fn apply(self) -> Result<Vec<Applied>, Error> {
        let applied = wit::apply(&self.writes)?;
        Ok(applied.into_iter().map(Applied::from).collect())
    }
}
