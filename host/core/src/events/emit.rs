//! Emitting events: always inside the caller's transaction, so an event is logged
//! exactly when its change commits.
//!
//! Every event carries its origin: the plugin whose write caused it (`cause`, from
//! the audit actor — set for every write made through a plugin's capabilities), the
//! user, request and API version of the write, and its chain depth
//! ([`super::chain::next_depth`]). An event deeper than [`MAX_DEPTH`] is not logged;
//! the host audits `event.chain_stopped` instead, in the same transaction, and the
//! write itself goes ahead.

use serde_json::{Value, json};

use super::{MAX_DEPTH, chain};
use crate::records::Who;
use crate::store::audit::{self, Actor, NewEvent as AuditEvent};
use crate::store::event_delivery;
use crate::store::events::{self as log, NewEvent, StoredEvent};
use crate::store::installations::{Installation, state};
use crate::store::records::Record;
use crate::store::{Db, StoreResult, Tx};

/// Names no plugin may emit under: the host's own event namespaces (a plugin with
/// one of these ids is refused `events.emit`).
pub const RESERVED_NAMESPACES: &[&str] = &["record", "plugin", "event", "events", "host", "system"];

/// Append an event named `name` to the tenant's log inside `tx`, attributed to
/// `actor`. Returns `None` when the chain is too deep (the stop is audited instead).
pub async fn append(
    tx: &mut Tx<'_>,
    db: &Db,
    tenant: &str,
    actor: &Actor,
    name: &str,
    payload: &Value,
) -> StoreResult<Option<StoredEvent>> {
    let cause = actor
        .plugin
        .as_deref()
        .map(|p| p.split_once('@').map_or(p, |(id, _)| id));
    let depth = chain::next_depth();
    if depth > MAX_DEPTH {
        let after = json!({ "name": name, "cause": cause, "depth": depth, "limit": MAX_DEPTH });
        let stop = AuditEvent {
            action: "event.chain_stopped",
            entity_type: "event",
            entity_id: None,
            before: None,
            after: Some(&after),
        };
        audit::append(tx, db.dialect(), tenant, actor, stop).await?;
        tracing::warn!(
            tenant,
            event = name,
            ?cause,
            depth,
            "event chain stopped at the depth limit"
        );
        return Ok(None);
    }
    let text = payload.to_string();
    let event = NewEvent {
        name,
        payload: &text,
        cause,
        depth: i64::from(depth),
        user_id: actor.user_id.as_deref(),
        request_id: actor.request_id.as_deref(),
        api_version: actor.api_version.as_deref(),
    };
    let stored = log::append(tx, tenant, &event).await?;
    // Webhooks subscribed to this name get it too, queued in the same transaction.
    let hook = crate::outbox::webhooks::WebhookEvent {
        id: &stored.id,
        name,
        occurred_at: &stored.occurred_at,
        payload,
    };
    crate::outbox::webhooks::enqueue_event(tx, tenant, &hook).await?;
    Ok(Some(stored))
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordChange {
    /// `record.<object>.created`
    Created,
    /// `record.<object>.updated`
    Updated,
    /// `record.<object>.deleted` (soft delete)
    Deleted,
    /// `record.<object>.restored`
    Restored,
}

impl RecordChange {
    fn verb(self) -> &'static str {
        match self {
            RecordChange::Created => "created",
            RecordChange::Updated => "updated",
            RecordChange::Deleted => "deleted",
            RecordChange::Restored => "restored",
        }
    }
}

/// Log `record.<object>.<change>` for a record write inside its transaction. The
/// payload is `{object, id, changed, previous, record}`: `changed` names the fields
/// (and `owner_id`/`deleted_at`) that differ between the audit snapshots `before` and
/// `after`; `previous` (not for `created`) holds each of them as it was before the
/// write (`null` where it was not set); `record` is the record as the newest API
/// shows it. An update that changed nothing is not an event.
pub async fn record_changed(
    tx: &mut Tx<'_>,
    db: &Db,
    who: &Who,
    change: RecordChange,
    record: &Record,
    before: Option<&Value>,
    after: &Value,
) -> StoreResult<()> {
    let changed = audit::changed_fields(before, Some(after));
    if change == RecordChange::Updated && changed.is_empty() {
        return Ok(());
    }
    let name = format!("record.{}.{}", record.object, change.verb());
    let mut payload = json!({
        "object": record.object,
        "id": record.id,
        "changed": changed,
        "record": crate::records::to_json(record, None),
    });
    if change != RecordChange::Created {
        payload["previous"] = previous_values(&changed, before);
    }
    append(tx, db, &who.tenant, &who.actor, &name, &payload).await?;
    Ok(())
}

/// The values the `changed` keys had in the `before` snapshot (`null` where absent),
/// so a subscriber can undo what it derived from them — e.g. the shares a record had
/// through the account it just left — even when it never saw the earlier state.
fn previous_values(changed: &[String], before: Option<&Value>) -> Value {
    let before = before.and_then(Value::as_object);
    Value::Object(
        changed
            .iter()
            .map(|k| (k.clone(), before.and_then(|b| b.get(k)).cloned().unwrap_or(Value::Null)))
            .collect(),
    )
}

/// Log the event of an installation lifecycle step (an audit `action` such as
/// `plugin.install`) inside its transaction, and keep the plugin's delivery cursor
/// in step: an install starts it after this event (a plugin sees only what is
/// published after it was installed); an uninstall or purge drops it with its
/// dead letters.
#[allow(clippy::too_many_arguments)]
pub async fn lifecycle(
    tx: &mut Tx<'_>,
    db: &Db,
    tenant: &str,
    actor: &Actor,
    action: &str,
    plugin: &str,
    before: Option<&Installation>,
    after: Option<&Installation>,
) -> StoreResult<()> {
    let was_uninstalled = before.is_some_and(|b| b.state == state::UNINSTALLED);
    let name = match action {
        "plugin.install" => "plugin.installed",
        "plugin.upgrade" => "plugin.upgraded",
        "plugin.rollback" => "plugin.rolled_back",
        "plugin.enable" => "plugin.enabled",
        "plugin.disable" => "plugin.disabled",
        "plugin.uninstall" => "plugin.uninstalled",
        "plugin.purge" if !was_uninstalled => "plugin.uninstalled",
        // A purge after an uninstall, or a step with no event of its own.
        _ => "",
    };
    if !name.is_empty() {
        let current = after.or(before);
        let payload = json!({
            "plugin": plugin,
            "version": current.map(|i| i.version.as_str()),
            "previous_version": before.zip(after).filter(|(b, a)| b.version != a.version).map(|(b, _)| b.version.as_str()),
            "state": after.map_or("uninstalled", |i| i.state.as_str()),
            "purged": action == "plugin.purge",
        });
        append(tx, db, tenant, actor, name, &payload).await?;
    }
    match action {
        "plugin.install" => {
            let head = log::head_in(tx, tenant).await?;
            event_delivery::start_cursor(tx, tenant, plugin, head).await
        }
        // Pending events and dead letters go with the installation; a re-install
        // starts afresh at the head.
        "plugin.uninstall" | "plugin.purge" => event_delivery::drop_cursor(tx, tenant, plugin).await,
        _ => Ok(()),
    }
}

/// Check a plugin-chosen event name (before namespacing): 1–100 characters of
/// dot-separated `a-z 0-9 _ -` segments.
pub fn check_plugin_event_name(name: &str) -> Result<(), String> {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if name.is_empty() || name.len() > 100 {
        return Err("the event name must be 1–100 characters".into());
    }
    if !name.split('.').all(segment_ok) {
        return Err(format!(
            "`{name}` must be dot-separated segments of a-z 0-9 _ - (e.g. `zone.moved`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_event_names_are_dotted_segments() {
        assert!(check_plugin_event_name("zone.moved").is_ok());
        assert!(check_plugin_event_name("a_b-c.d9").is_ok());
        for bad in ["", "Zone", "a..b", ".a", "a.", "a b", "a.*", &"x".repeat(101)] {
            assert!(check_plugin_event_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
