//! Plugin events in the tenant's audit ledger (capability `audit`).

use serde::Serialize;

use crate::__private::wit::plinth::plugin::audit as wit;
use crate::Error;

/// Append an event. The host namespaces `action` and `entity_type` as
/// `plugin.<id>.<…>` and records who, when, the request id and API version.
///
/// ```no_run
/// plinth_sdk::audit::append(
///     "territory.moved", "territory", Some("t-7"),
///     Some(&serde_json::json!({"parent": "t-1"})), Some(&serde_json::json!({"parent": "t-2"})),
/// )?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn append<B: Serialize, A: Serialize>(
    action: &str,
    entity_type: &str,
    entity_id: Option<&str>,
    before: Option<&B>,
    after: Option<&A>,
) -> Result<(), Error> {
    let before = before.map(serde_json::to_string).transpose()?;
    let after = after.map(serde_json::to_string).transpose()?;
    Ok(wit::append(
        action,
        entity_type,
        entity_id,
        before.as_deref(),
        after.as_deref(),
    )?)
}
