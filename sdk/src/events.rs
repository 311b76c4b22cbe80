//! Emit events for other plugins of the tenant (capability `emit`).
//!
//! Subscribers receive them through [`crate::Plugin::on_event`] after the emitting
//! call's write commits, in commit order per tenant, at least once. The host
//! namespaces the name by your plugin id and records your plugin as the event's
//! `cause` (so a plugin can recognise, and ignore, events it caused itself).

use serde::Serialize;

use crate::__private::wit::plinth::plugin::events as wit;
use crate::Error;

/// Emit `<your-plugin-id>.<name>` with `payload` as its JSON payload (at most
/// 256 KiB). `name` is 1–100 characters of dot-separated `a-z 0-9 _ -` segments.
///
/// Called while handling an event, the new event is one hop deeper; past the
/// host's depth limit it is dropped (and audited) while the call still succeeds, so
/// a chain of plugins reacting to each other ends instead of running forever.
///
/// Declare `emit = true` under `[capabilities]` in `plugin.toml`.
///
/// ```no_run
/// use plinth_sdk::serde_json::json;
/// // From the plugin `territories`, subscribers see `territories.zone.moved`.
/// plinth_sdk::events::emit("zone.moved", &json!({ "zone": "z-7", "from": "emea", "to": "apac" }))?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn emit<T: Serialize + ?Sized>(name: &str, payload: &T) -> Result<(), Error> {
    let payload = serde_json::to_string(payload)?;
    Ok(wit::emit(name, &payload)?)
}
