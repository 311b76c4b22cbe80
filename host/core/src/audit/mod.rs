//! The audit ledger's services, above the append-only chain that
//! [`crate::store::audit`] writes: querying events ([`query`]), record history and
//! as-of reconstruction (here), chain verification ([`verify`]), streaming export
//! ([`export`]), policies and their background evaluator ([`policy`]), alerts
//! ([`alerts`]) and the compliance report ([`compliance`]).
//!
//! Every function takes the tenant explicitly and every read filters on it; nothing
//! here knows HTTP. Input problems come back as [`AuditError::BadParams`] (query
//! parameters) or [`AuditError::Invalid`] (bodies), each naming its field.

pub mod alerts;
mod canonical;
pub mod compliance;
pub mod export;
pub mod params;
pub mod policy;
pub mod query;
pub mod verify;

use serde::Serialize;

use crate::store::audit_query::{self, EventFilter, Order};
use crate::store::{Db, StoreError, StoreResult, time};

pub use query::{EventQuery, EventView, list_events};

/// A problem with one named input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// Parameter or field path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Issue {
    /// An issue with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Issue {
        Issue {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Failures of audit services.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Query parameters are wrong (a 400), every problem listed.
    #[error("invalid query parameters: {0:?}")]
    BadParams(Vec<Issue>),
    /// A request body is well-formed but invalid (a 422), every problem listed.
    #[error("invalid input: {0:?}")]
    Invalid(Vec<Issue>),
    /// The addressed thing does not exist in this tenant.
    #[error("not found: {0}")]
    NotFound(String),
    /// The version the caller based a change on is no longer current.
    #[error("version mismatch: {0}")]
    VersionMismatch(String),
    /// A per-tenant count limit.
    #[error("limit: {0}")]
    Limit(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Result alias for audit services.
pub type AuditResult<T> = Result<T, AuditError>;

/// One page of a cursor-paginated list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The items.
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Longest object name (`record:<object>` entity types).
const MAX_OBJECT_LEN: usize = 64;

/// Whether `object` is a plausible object name: lowercase ASCII letters, digits and
/// `_`, starting with a letter.
pub fn valid_object_name(object: &str) -> bool {
    let mut chars = object.chars();
    object.len() <= MAX_OBJECT_LEN
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The audit events of one record (`entity_type = "record:<object>"`), oldest first,
/// `limit` (default 50, at most 500) per page after `cursor` (from a previous page).
///
/// Callers check that the caller may see the record first: history shows every
/// before/after state. A record without any event (never existed, or another
/// tenant's) is [`AuditError::NotFound`], as is an unknown object name.
pub async fn record_history(
    db: &Db,
    tenant: &str,
    object: &str,
    id: &str,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> AuditResult<Page<EventView>> {
    if !valid_object_name(object) || params::check_text(id, params::MAX_FILTER_LEN).is_err() {
        return Err(AuditError::NotFound(format!("no {object} record {id}")));
    }
    let limit_text = limit.map(|l| l.to_string());
    let mut pairs = vec![("order", "asc")];
    if let Some(c) = cursor {
        pairs.push(("cursor", c));
    }
    if let Some(l) = &limit_text {
        pairs.push(("limit", l.as_str()));
    }
    let mut q = EventQuery::from_params(&params::Params::from_pairs(pairs))?;
    q.filter = EventFilter {
        entity_type: Some(format!("record:{object}")),
        entity_id: Some(id.to_string()),
        ..EventFilter::default()
    };
    let page = list_events(db, tenant, &q).await?;
    if cursor.is_none() && page.data.is_empty() {
        return Err(AuditError::NotFound(format!("no {object} record {id}")));
    }
    Ok(page)
}

/// The state of an entity at time `at` (RFC 3339): the after-state of its last event
/// at or before `at`, or `None` if it did not exist yet or had been deleted by then
/// (the last event has no after-state or is a `*.delete` action — so a soft-deleted
/// record reads as absent). `at` is compared at millisecond precision.
///
/// An `at` that is not RFC 3339 is [`StoreError::Invalid`].
pub async fn state_as_of(
    db: &Db,
    tenant: &str,
    entity_type: &str,
    entity_id: &str,
    at: &str,
) -> StoreResult<Option<serde_json::Value>> {
    let at = time::parse(at)
        .map(time::format)
        .ok_or_else(|| StoreError::Invalid(format!("`{at}` is not an RFC 3339 time")))?;
    let Some((action, after)) = audit_query::last_event_at(db, tenant, entity_type, entity_id, &at).await? else {
        return Ok(None);
    };
    if action.ends_with(".delete") {
        return Ok(None);
    }
    after
        .map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("audit after-state: {e}"))))
        .transpose()
}

/// Walk order of an export or list.
pub(crate) fn order_param(c: &mut params::Checker<'_>, default: Order) -> Order {
    let default_str = default.as_str();
    match c.choice("order", &["asc", "desc"], default_str) {
        "asc" => Order::Asc,
        _ => Order::Desc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_restricted() {
        assert!(valid_object_name("opportunity"));
        assert!(valid_object_name("custom_2"));
        assert!(!valid_object_name("Opportunity"));
        assert!(!valid_object_name("2x"));
        assert!(!valid_object_name(""));
        assert!(!valid_object_name(&"a".repeat(65)));
    }
}
