//! Assignment driven by record events (`on-event`): accounts are (re)assigned when they
//! are created or a field the rules test changes; opportunities and contacts follow
//! their account into its territories when they are created or their `account_id`
//! changes. Every handler reads the record as it is now (not the payload's copy), so a
//! redelivery or a late event converges on the current state.

use std::collections::BTreeSet;

use plinth_sdk::records;
use plinth_sdk::sharing::{self, Share};
use plinth_sdk::storage::Collection;
use plinth_sdk::{Error, ErrorKind, Event, serde_json};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assign::{self, CHILD_OBJECTS};
use crate::model::{self, Model};

/// `<object>/<id>` of an opportunity or contact → what the plugin last shared it for.
pub const CHILD_SHARES: &str = "child_shares";

/// The account an opportunity or contact was last shared for, and with which territories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChildShares {
    pub account_id: Option<String>,
    pub territories: Vec<String>,
}

pub fn child_shares() -> Collection<ChildShares> {
    Collection::new(CHILD_SHARES)
}

/// The parts of a record event the handlers use.
struct RecordEvent {
    object: String,
    verb: String,
    id: String,
    changed: Option<Vec<String>>,
    /// `previous.account_id` of an update that moved a record between accounts.
    previous_account: Option<String>,
}

fn parse(event: &Event) -> Result<Option<RecordEvent>, Error> {
    let mut parts = event.name.splitn(3, '.');
    let (Some("record"), Some(object), Some(verb)) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(None);
    };
    let payload: Value = event.payload_json()?;
    let id = payload
        .get("id")
        .or_else(|| payload.get("record").and_then(|r| r.get("id")))
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("record event without an id"))?;
    let changed = payload
        .get("changed")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect());
    let previous_account = payload
        .get("previous")
        .and_then(|p| p.get("account_id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Some(RecordEvent {
        object: object.to_string(),
        verb: verb.to_string(),
        id: id.to_string(),
        changed,
        previous_account,
    }))
}

/// Whether the event names one of `fields` as changed (a payload without `changed`
/// counts as "anything may have changed").
fn touches(e: &RecordEvent, fields: &[&str]) -> bool {
    e.changed
        .as_ref()
        .is_none_or(|c| c.iter().any(|f| fields.contains(&f.as_str())))
}

/// The record as it is now; `None` when it is gone (deleted since the event).
fn current(object: &str, id: &str) -> Result<Option<records::Record>, Error> {
    match records::get(object, id) {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Handle one delivered event.
pub fn on_event(event: &Event) -> Result<(), Error> {
    // The plugin's own record writes (none today: it shares, it does not edit records)
    // never re-trigger assignment.
    if event.cause.as_deref() == Some("territories") {
        return Ok(());
    }
    let Some(e) = parse(event)? else { return Ok(()) };
    if e.verb != "created" && e.verb != "updated" {
        return Ok(());
    }
    match e.object.as_str() {
        "account" => on_account(&e),
        o if CHILD_OBJECTS.contains(&o) => on_child(&e),
        _ => Ok(()),
    }
}

/// An account created, or one of the fields rules test changed: evaluate it against
/// the rules and move its shares (with its opportunities and contacts) if its
/// territories changed.
fn on_account(e: &RecordEvent) -> Result<(), Error> {
    let fields = assign::rule_fields();
    if e.verb == "updated" && !touches(e, &fields) {
        return Ok(());
    }
    let Some(account) = current("account", &e.id)? else {
        return Ok(());
    };
    let model = Model::load_for_assignment()?;
    assign::evaluate_and_apply(&model, &[(account.id, account.fields)], false)?;
    Ok(())
}

/// An opportunity or contact created, or its `account_id` changed: share it with its
/// account's territories (at each territory's access level for the object) and remove
/// the shares it had through its previous account — the one this handler recorded, and
/// the one the event names in `previous` (which covers records it never handled: made
/// before the install, or shared only by runs).
fn on_child(e: &RecordEvent) -> Result<(), Error> {
    if e.verb == "updated" && !touches(e, &["account_id"]) {
        return Ok(());
    }
    let key = format!("{}/{}", e.object, e.id);
    let before = child_shares().get(&key)?.map(|v| v.value).unwrap_or_default();
    let Some(record) = current(&e.object, &e.id)? else {
        return Ok(());
    };
    let account = record.field::<String>("account_id");
    let store = model::assignments();
    let to: Vec<String> = match &account {
        Some(a) => store.get(a)?.map(|v| v.value.territories).unwrap_or_default(),
        None => Vec::new(),
    };
    // What it may still be shared with: what this handler shared last time, and the
    // previous accounts' territories now (account moves re-share their children).
    let mut from: BTreeSet<String> = before.territories.iter().cloned().collect();
    let previous: BTreeSet<&String> = [before.account_id.as_ref(), e.previous_account.as_ref()]
        .into_iter()
        .flatten()
        .filter(|p| Some(*p) != account.as_ref())
        .collect();
    for prev in previous {
        if let Some(v) = store.get(prev)? {
            from.extend(v.value.territories);
        }
    }
    let keep: BTreeSet<&String> = to.iter().collect();
    let remove: Vec<(&str, &str, &str)> = from
        .iter()
        .filter(|t| !keep.contains(t))
        .map(|t| (e.object.as_str(), e.id.as_str(), t.as_str()))
        .collect();
    if !remove.is_empty() {
        sharing::remove_shares(&remove)?;
    }
    let mut add: Vec<Share> = Vec::new();
    for t in &to {
        if let Some(terr) = model::territories().get(t)? {
            let level = terr.value.access.for_object(&e.object);
            add.push(Share::new(&e.object, &e.id, t, level.access()));
        }
    }
    if !add.is_empty() {
        sharing::add_shares(&add)?;
    }
    let after = ChildShares {
        account_id: account,
        territories: to,
    };
    if after != before {
        if after == ChildShares::default() {
            child_shares().delete(&key, None)?;
        } else {
            child_shares().put(&key, &after)?;
        }
    }
    Ok(())
}
