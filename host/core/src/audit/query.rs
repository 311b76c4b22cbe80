//! Querying the ledger: the filters of `GET /api/v1/audit/events` (and of export),
//! seq-cursor pagination, and the JSON view of an event with its states parsed.

use serde::{Deserialize, Serialize};

use super::params::{self, Params};
use super::{AuditResult, Page, order_param};
use crate::store::Db;
use crate::store::audit::AuditEvent;
use crate::store::audit_query::{self, EventFilter, Order};

/// Cursor family of event lists.
const CURSOR_KIND: &str = "e1";

/// The filter parameters shared by the event list, export and anything else that
/// selects events: `actor` (user id), `key` (API key id), `plugin` (`id@version`),
/// `entity_type`, `entity_id`, `action` (all exact matches), `from` (inclusive) and
/// `to` (exclusive) as RFC 3339 times compared at millisecond precision, and
/// `changed_field` (a top-level field name among the event's changed fields, exact
/// and case-sensitive).
pub const FILTER_PARAMS: [&str; 9] = [
    "actor",
    "key",
    "plugin",
    "entity_type",
    "entity_id",
    "action",
    "from",
    "to",
    "changed_field",
];

/// Every parameter of the event list.
pub const LIST_PARAMS: [&str; 12] = [
    "actor",
    "key",
    "plugin",
    "entity_type",
    "entity_id",
    "action",
    "from",
    "to",
    "changed_field",
    "order",
    "cursor",
    "limit",
];

/// A validated event query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// What to select.
    pub filter: EventFilter,
    /// Newest (default) or oldest first.
    pub order: Order,
    /// Continue after this seq (decoded from the cursor).
    pub after: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// Read the filter parameters (see [`FILTER_PARAMS`]).
pub fn filter_from(c: &mut params::Checker<'_>) -> EventFilter {
    let filter = EventFilter {
        actor_user: c.text("actor"),
        actor_key: c.text("key"),
        actor_plugin: c.text("plugin"),
        entity_type: c.text("entity_type"),
        entity_id: c.text("entity_id"),
        action: c.text("action"),
        from: c.time("from"),
        to: c.time("to"),
        changed_field: c.text("changed_field"),
        max_seq: None,
    };
    if let (Some(from), Some(to)) = (&filter.from, &filter.to)
        && from >= to
    {
        c.issue("to", "must be later than `from`");
    }
    filter
}

impl EventQuery {
    /// Validate list parameters (see [`LIST_PARAMS`]).
    pub fn from_params(p: &Params) -> AuditResult<EventQuery> {
        let mut c = p.check();
        let filter = filter_from(&mut c);
        let order = order_param(&mut c, Order::Desc);
        let limit = c.limit();
        let after = c.cursor(CURSOR_KIND).and_then(|v| {
            let seq = v
                .strip_prefix(&format!("{}:", order.as_str()))
                .and_then(|s| s.parse::<i64>().ok());
            if seq.is_none() {
                c.issue("cursor", "was made for the other `order`, or is damaged");
            }
            seq
        });
        c.finish()?;
        Ok(EventQuery {
            filter,
            order,
            after,
            limit,
        })
    }
}

/// Who acted, as shown in an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorView {
    /// User id.
    pub user: Option<String>,
    /// API key id.
    pub key: Option<String>,
    /// Plugin, `id@version`.
    pub plugin: Option<String>,
}

/// An event as the API shows it: states and changed fields as JSON, not text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    /// Position in the tenant's chain.
    pub seq: i64,
    /// Id.
    pub id: String,
    /// Time (RFC 3339, UTC, ms).
    pub occurred_at: String,
    /// Who.
    pub actor: ActorView,
    /// Action.
    pub action: String,
    /// Entity type.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: Option<String>,
    /// State before (absent for creations).
    pub before: Option<serde_json::Value>,
    /// State after (absent for deletions).
    pub after: Option<serde_json::Value>,
    /// Changed top-level fields.
    pub changed_fields: serde_json::Value,
    /// Request id.
    pub request_id: Option<String>,
    /// API version of the request.
    pub api_version: Option<String>,
    /// Client name.
    pub client: Option<String>,
    /// Previous event's hash.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

/// Stored JSON text as a value. Text that does not parse (only possible if someone
/// altered the row, which verify reports) is shown as a string rather than hidden.
fn json_or_text(s: String) -> serde_json::Value {
    serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))
}

impl From<AuditEvent> for EventView {
    fn from(e: AuditEvent) -> EventView {
        EventView {
            seq: e.seq,
            id: e.id,
            occurred_at: e.occurred_at,
            actor: ActorView {
                user: e.actor_user,
                key: e.actor_key,
                plugin: e.actor_plugin,
            },
            action: e.action,
            entity_type: e.entity_type,
            entity_id: e.entity_id,
            before: e.before_state.map(json_or_text),
            after: e.after_state.map(json_or_text),
            changed_fields: json_or_text(e.changed_fields),
            request_id: e.request_id,
            api_version: e.api_version,
            client: e.client,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// One page of `tenant`'s events matching `q`.
pub async fn list_events(db: &Db, tenant: &str, q: &EventQuery) -> AuditResult<Page<EventView>> {
    // One extra row tells whether another page follows without a COUNT.
    let mut rows = audit_query::events_page(db, tenant, &q.filter, q.after, q.order, q.limit + 1).await?;
    let more = rows.len() as i64 > q.limit;
    rows.truncate(usize::try_from(q.limit).unwrap_or(0));
    let next_cursor = match rows.last() {
        Some(last) if more => Some(params::encode_cursor(
            CURSOR_KIND,
            &format!("{}:{}", q.order.as_str(), last.seq),
        )),
        _ => None,
    };
    Ok(Page {
        data: rows.into_iter().map(EventView::from).collect(),
        next_cursor,
    })
}
