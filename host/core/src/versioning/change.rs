//! The `VersionChange` trait and the chain of changes: how a record in the newest
//! shape is downgraded to an older version's shape, and how an older version's input
//! is upgraded to the newest shape. Handlers only ever speak the newest version; every
//! breaking difference lives in one module under `changes/`.

use serde_json::Value;

use super::changes;

/// One breaking difference between a version and the one before it.
///
/// A change is *introduced by* a version: requests made with an older version pass
/// through it (input upgraded, output downgraded); requests made with that version
/// or a newer one do not.
pub trait VersionChange: Send + Sync {
    /// The version that introduced the change, e.g. `2027-01-15`.
    fn introduced(&self) -> &'static str;

    /// What changed, for the public changelog at `GET /api/versions`.
    fn description(&self) -> &'static str;

    /// Rewrite one record (`{"id", "object", …, "fields": {…}}`) from the shape of
    /// [`Self::introduced`] to the shape of the version before it.
    fn record_out(&self, record: &mut Value);

    /// Rewrite the `fields` object of a create or update body of `object` from the
    /// shape of the version before [`Self::introduced`] to its shape.
    fn fields_in(&self, object: &str, fields: &mut Value) -> Result<(), InputError>;

    /// Map a field name of `object` used in a filter, sort or field selection from the
    /// previous version's vocabulary to this one's; `None` when unchanged.
    fn field_name_in(&self, _object: &str, _field: &str) -> Option<String> {
        None
    }

    /// Rewrite the JSON Schema `properties` of `object`'s fields from the shape of
    /// [`Self::introduced`] to the shape of the version before it (for the OpenAPI
    /// document of older versions). Default: unchanged.
    fn fields_schema_out(&self, _object: &str, _properties: &mut serde_json::Map<String, Value>) {}
}

/// Old-shape input that cannot be upgraded: a 422 with one entry per field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct InputError {
    /// Summary.
    pub detail: String,
    /// The offending fields: (path, message).
    pub fields: Vec<(String, String)>,
}

impl InputError {
    /// An error about one field.
    pub fn field(field: &str, message: impl Into<String>) -> InputError {
        InputError {
            detail: "the fields are not valid for the requested API version".into(),
            fields: vec![(field.to_string(), message.into())],
        }
    }

    /// Prefix every field path, e.g. with `records[3]` in a bulk body.
    pub fn prefixed(mut self, prefix: &str) -> InputError {
        for (field, _) in &mut self.fields {
            *field = format!("{prefix}.{field}");
        }
        self
    }
}

/// Every change, oldest first.
pub fn all() -> &'static [&'static dyn VersionChange] {
    changes::ALL
}

/// The changes a request made with `version` passes through, oldest first.
fn newer_than(version: &str) -> impl DoubleEndedIterator<Item = &'static dyn VersionChange> + '_ {
    // Versions are ISO dates, so text order is time order.
    all().iter().copied().filter(move |c| c.introduced() > version)
}

/// Downgrade one record from the newest shape to `version`'s (newest change first).
pub fn record_out(version: &str, record: &mut Value) {
    for change in newer_than(version).rev() {
        change.record_out(record);
    }
}

/// Upgrade the `fields` of a request made with `version` to the newest shape
/// (oldest change first).
pub fn fields_in(version: &str, object: &str, fields: &mut Value) -> Result<(), InputError> {
    for change in newer_than(version) {
        change.fields_in(object, fields)?;
    }
    Ok(())
}

/// Downgrade the JSON Schema `properties` of `object`'s fields from the newest shape
/// to `version`'s (newest change first).
pub fn fields_schema_out(version: &str, object: &str, properties: &mut serde_json::Map<String, Value>) {
    for change in newer_than(version).rev() {
        change.fields_schema_out(object, properties);
    }
}

/// Map a field name from `version`'s vocabulary to the newest one.
pub fn field_name_in(version: &str, object: &str, field: &str) -> String {
    let mut name = field.to_string();
    for change in newer_than(version) {
        if let Some(mapped) = change.field_name_in(object, &name) {
            name = mapped;
        }
    }
    name
}
