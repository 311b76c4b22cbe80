//! Serving one cursor (one plugin in one tenant) under its lease: re-queued dead
//! letters first, then the next events its effective grants subscribe to, strictly
//! one after the other. A failure schedules a retry with backoff and stops this
//! cursor until then (so nothing overtakes the failing event); the last allowed
//! failure parks the event as a dead letter and moves on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use super::EventsConfig;
use plinth_core::events::{chain, subscribed};
use plinth_core::manifest::Capabilities;
use plinth_core::store::event_delivery::{Cursor, DeadLetter, Lease, NewDeadLetter};
use plinth_core::store::events::StoredEvent;
use plinth_core::store::installations::state as install_state;
use plinth_core::store::{Db, StoreError, StoreResult, time};
use plinth_runtime::bindings::{Caller, Event};
use plinth_runtime::plugins::{Active, PluginError, PluginHost, Resolved};

/// Events read per query while looking for the next subscribed one.
const SCAN: i64 = 200;
/// Longest error text kept with a failure.
const MAX_ERROR: usize = 2000;
/// Metadata of a record that any plugin granted its object sees.
const RECORD_META: &[&str] = &["id", "owner_id", "created_at", "updated_at", "version", "deleted_at"];

/// What serving a cursor achieved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Served {
    /// Successful `on-event` calls.
    pub delivered: u32,
    /// Whether the cursor moved at all (delivered, skipped or dead-lettered).
    pub progressed: bool,
}

/// What a worker needs to serve cursors.
pub(super) struct Deliverer<'a> {
    /// The database holding the log and the cursors.
    pub db: &'a Db,
    /// Resolves installations and calls `on-event`.
    pub plugins: &'a PluginHost,
    /// Backoff, attempts and batch sizes for this pass.
    pub config: &'a EventsConfig,
    /// How long a lease lasts (renewed as deliveries go on).
    pub lease_for: Duration,
    /// Set when the host shuts down: stop before the next delivery.
    pub stopping: &'a watch::Receiver<bool>,
}

/// Why a pass could not serve a cursor, on the host's side. The tenant admin sees a
/// short notice with a reference (`GET /api/v1/events/subscriptions`, `stalled`); the
/// detail, which may name tables or files, goes to the host's log only.
enum Stall {
    /// The database failed.
    Store(StoreError),
    /// The installed package could not be prepared (its trust, its component).
    Plugin(PluginError),
}

impl From<StoreError> for Stall {
    fn from(e: StoreError) -> Self {
        Stall::Store(e)
    }
}

impl Stall {
    fn notice(&self, reference: &str) -> String {
        match self {
            Stall::Store(_) => format!(
                "the host could not deliver events to this plugin because of an internal error \
                 (reference {reference}); it keeps trying"
            ),
            Stall::Plugin(_) => format!(
                "the host could not load the installed package of this plugin (reference {reference}); \
                 its events are held and it keeps trying"
            ),
        }
    }
}

/// The outcome of one `on-event` call.
enum Attempt {
    Delivered,
    Failed(String),
}

impl Deliverer<'_> {
    fn until(&self) -> String {
        let lease = ::time::Duration::try_from(self.lease_for).unwrap_or(::time::Duration::MINUTE);
        time::format(::time::OffsetDateTime::now_utc() + lease)
    }

    /// Claim `plugin`'s cursor in `tenant` and deliver what is due, then let go.
    pub(super) async fn serve(&self, tenant: &str, plugin: &str) -> StoreResult<Served> {
        let token = ulid::Ulid::new().to_string();
        let Some(cursor) = self.db.claim_cursor(tenant, plugin, &token, &self.until()).await? else {
            return Ok(Served::default());
        };
        let lease = Lease {
            tenant_id: tenant.to_string(),
            plugin_id: plugin.to_string(),
            token,
        };
        let stalled_since = cursor.stalled_since.clone();
        let (served, released) = match self.run(&lease, cursor).await {
            Ok(served) => (served, self.db.release_lease(&lease).await),
            Err(stall) => {
                let reference = ulid::Ulid::new().to_string();
                let detail = match &stall {
                    Stall::Store(e) => format!("{e:?}"),
                    Stall::Plugin(e) => format!("{e:?}"),
                };
                let retry_at = self.stall_retry_at(stalled_since.as_deref());
                tracing::warn!(tenant, plugin, %reference, %retry_at, error = %detail,
                    "event delivery stalled on the host's side; the cursor is retried");
                let released = self
                    .db
                    .release_stalled(&lease, &stall.notice(&reference), &retry_at)
                    .await;
                (Served::default(), released)
            }
        };
        if let Err(e) = released {
            tracing::warn!(tenant, plugin, error = ?e, "could not release an event cursor lease; it will expire");
        }
        Ok(served)
    }

    /// When to try a stalled cursor again: after as long as it has been stalled
    /// (so the waits double), between the backoff's base and its maximum.
    fn stall_retry_at(&self, stalled_since: Option<&str>) -> String {
        let now = ::time::OffsetDateTime::now_utc();
        let stalled_for = stalled_since
            .and_then(time::parse)
            .and_then(|since| Duration::try_from(now - since).ok())
            .unwrap_or_default();
        let delay = stalled_for.clamp(
            self.config.backoff_base,
            self.config.backoff_max.max(self.config.backoff_base),
        );
        time::format(now + ::time::Duration::try_from(delay).unwrap_or(::time::Duration::HOUR))
    }

    async fn run(&self, lease: &Lease, mut cursor: Cursor) -> Result<Served, Stall> {
        let (tenant, plugin) = (lease.tenant_id.as_str(), lease.plugin_id.as_str());
        let active = match self.plugins.resolve(tenant, plugin).await {
            Ok(Resolved::Active(active)) => active,
            // Disabled, revoked or uninstalled meanwhile: held where it is.
            Ok(_) => return Ok(Served::default()),
            Err(PluginError::Store(e)) => return Err(Stall::Store(e)),
            Err(e) => return Err(Stall::Plugin(e)),
        };
        let mut served = Served::default();
        let mut users = HashMap::new();
        let mut renew_at = Instant::now() + self.lease_for / 2;
        for _ in 0..self.config.events_per_cursor.max(1) {
            if *self.stopping.borrow() {
                break;
            }
            if Instant::now() >= renew_at {
                if !self.db.renew_lease(lease, &self.until()).await? {
                    break;
                }
                renew_at = Instant::now() + self.lease_for / 2;
            }
            // Re-queued dead letters go before everything still pending.
            if let Some(letter) = self.db.next_replay(tenant, plugin).await? {
                if !self.still_current(&active).await? {
                    break;
                }
                match self.replay(lease, &active, &letter, &mut users).await? {
                    Some(delivered) => {
                        served.delivered += u32::from(delivered);
                        served.progressed = true;
                        continue;
                    }
                    None => break,
                }
            }
            let patterns = &active.grants.events;
            if patterns.is_empty() {
                // Subscribed to nothing: skip to the head without reading the log.
                let head = self.db.event_head(tenant).await?;
                if head > cursor.position && self.db.advance_cursor(lease, head).await? {
                    served.progressed = true;
                }
                break;
            }
            let batch = self.db.events_after(tenant, cursor.position, SCAN).await?;
            let Some(last) = batch.last().map(|e| e.seq) else { break };
            let Some(event) = batch.into_iter().find(|e| subscribed(patterns, &e.name)) else {
                if !self.db.advance_cursor(lease, last).await? {
                    break;
                }
                cursor.position = last;
                served.progressed = true;
                continue;
            };
            if !self.still_current(&active).await? {
                break;
            }
            let seq = event.seq;
            match self.attempt(&active, &event, &mut users).await? {
                Attempt::Delivered => {
                    if !self.db.advance_cursor(lease, seq).await? {
                        break;
                    }
                    served.delivered += 1;
                }
                Attempt::Failed(error) => {
                    let failures = failures_before(&cursor, seq) + 1;
                    if failures < i64::from(self.config.max_attempts.max(1)) {
                        self.retry_later(lease, seq, failures, &error).await?;
                        break;
                    }
                    let letter = NewDeadLetter {
                        event_seq: seq,
                        event_id: &event.id,
                        event_name: &event.name,
                        attempts: failures,
                        error: &error,
                    };
                    if !self.db.park_dead_letter(lease, &letter).await? {
                        break;
                    }
                    tracing::warn!(tenant, plugin, event = %event.id, name = %event.name, failures,
                        "event moved to the dead-letter list");
                }
            }
            cursor.position = seq;
            cursor.attempt_seq = None;
            cursor.attempts = 0;
            served.progressed = true;
        }
        Ok(served)
    }

    /// Deliver a re-queued dead letter. `Some(true)`: delivered (removed from the
    /// list); `Some(false)`: failed for the last time and parked again; `None`: a
    /// retry is scheduled (or the lease was lost) — stop serving this cursor.
    async fn replay(
        &self,
        lease: &Lease,
        active: &Active,
        letter: &DeadLetter,
        users: &mut HashMap<String, Option<String>>,
    ) -> StoreResult<Option<bool>> {
        let attempt = match self.db.event_at(&lease.tenant_id, letter.event_seq).await? {
            Some(event) => self.attempt(active, &event, users).await?,
            // Cannot happen while the log is kept in full; settle rather than spin.
            None => Attempt::Delivered,
        };
        let seq = letter.event_seq;
        let delivered = matches!(attempt, Attempt::Delivered);
        let settled = match attempt {
            Attempt::Delivered => self.db.settle_replay(lease, letter, true, letter.attempts, "").await?,
            Attempt::Failed(error) => {
                // Counted on the letter: the cursor's count is the head event's.
                let failures = letter.replay_attempts + 1;
                if failures < i64::from(self.config.max_attempts.max(1)) {
                    let retry_at = self.retry_at(failures);
                    self.db
                        .replay_failed(lease, letter, failures, &retry_at, &error)
                        .await?;
                    tracing::info!(tenant = %lease.tenant_id, plugin = %lease.plugin_id, seq, failures, %retry_at,
                        "replay of a dead letter failed; retrying later");
                    return Ok(None);
                }
                self.db
                    .settle_replay(lease, letter, false, letter.attempts + failures, &error)
                    .await?
            }
        };
        Ok(settled.then_some(delivered))
    }

    /// Whether the installation is, in the database, still enabled as `active` was
    /// prepared. Read *after* the event about to be delivered: an event committed
    /// after a disable must be held, yet the plugin cache (and a serve that began
    /// before the disable) may still say "active". When it changed, the cache entry
    /// is dropped and this cursor waits for the next pass, which resolves afresh.
    async fn still_current(&self, active: &Active) -> StoreResult<bool> {
        let i = &active.installation;
        let now = self.db.installation(None, &i.tenant_id, &i.plugin_id).await?;
        let same =
            now.is_some_and(|n| n.state == install_state::ENABLED && n.digest == i.digest && n.grants == i.grants);
        if !same {
            self.plugins.invalidate(&i.tenant_id, &i.plugin_id);
        }
        Ok(same)
    }

    /// When to try again after the `failures`-th failure in a row (backoff).
    fn retry_at(&self, failures: i64) -> String {
        let delay = self.config.backoff(u32::try_from(failures).unwrap_or(u32::MAX));
        let delay = ::time::Duration::try_from(delay).unwrap_or(::time::Duration::HOUR);
        time::format(::time::OffsetDateTime::now_utc() + delay)
    }

    async fn retry_later(&self, lease: &Lease, seq: i64, failures: i64, error: &str) -> StoreResult<()> {
        let retry_at = self.retry_at(failures);
        self.db.cursor_failed(lease, seq, failures, &retry_at, error).await?;
        tracing::info!(tenant = %lease.tenant_id, plugin = %lease.plugin_id, seq, failures, %retry_at,
            "event delivery failed; retrying later");
        Ok(())
    }

    /// Call `on-event` once, as the user whose write caused the event (while they
    /// are still an active user of the tenant) and at the event's chain depth.
    async fn attempt(
        &self,
        active: &Active,
        event: &StoredEvent,
        users: &mut HashMap<String, Option<String>>,
    ) -> StoreResult<Attempt> {
        let caller = self.caller(event, users).await?;
        let depth = u32::try_from(event.depth).unwrap_or(u32::MAX);
        let wit = Event {
            id: event.id.clone(),
            name: event.name.clone(),
            payload: visible_payload(&active.grants, event),
            occurred_at: event.occurred_at.clone(),
            cause: event.cause.clone(),
            depth,
        };
        let outcome = chain::within(depth, self.plugins.event(active, caller, wit)).await;
        Ok(match outcome.result {
            Ok(()) => Attempt::Delivered,
            Err(e) => Attempt::Failed(truncate(&e.to_string(), MAX_ERROR)),
        })
    }

    async fn caller(&self, event: &StoredEvent, users: &mut HashMap<String, Option<String>>) -> StoreResult<Caller> {
        let tenant = &event.tenant_id;
        let role = match &event.user_id {
            None => None,
            Some(id) => match users.get(id) {
                Some(role) => role.clone(),
                None => {
                    let role = self
                        .db
                        .user(tenant, id)
                        .await?
                        .filter(|u| u.status == "active")
                        .map(|u| u.role);
                    users.insert(id.clone(), role.clone());
                    role
                }
            },
        };
        Ok(Caller {
            tenant_id: tenant.clone(),
            user_id: role.as_ref().and(event.user_id.clone()),
            roles: role.into_iter().collect(),
            api_version: event
                .api_version
                .clone()
                .unwrap_or_else(|| plinth_core::versioning::DEFAULT_VERSION.to_string()),
            request_id: event
                .request_id
                .clone()
                .unwrap_or_else(|| format!("event-{}", event.id)),
        })
    }
}

/// Failures already counted against `seq` at the head of `cursor`.
fn failures_before(cursor: &Cursor, seq: i64) -> i64 {
    if cursor.attempt_seq == Some(seq) {
        cursor.attempts
    } else {
        0
    }
}

/// The payload a subscriber may see. A record event's `record` and `previous` show
/// only the fields the plugin's `records` grant for that object allows (and are left
/// out without one); `changed` is narrowed the same way when there is a grant.
pub(super) fn visible_payload(grants: &Capabilities, event: &StoredEvent) -> String {
    if !event.name.starts_with("record.") {
        return event.payload.clone();
    }
    let Ok(Value::Object(mut payload)) = serde_json::from_str::<Value>(&event.payload) else {
        return event.payload.clone();
    };
    let object = payload.get("object").and_then(Value::as_str).unwrap_or_default();
    match grants.records.get(object) {
        None => {
            payload.remove("record");
            payload.remove("previous");
        }
        Some(grant) => {
            let allowed = |k: &str| RECORD_META.contains(&k) || grant.fields.allows(k);
            if let Some(Value::Object(fields)) = payload.get_mut("record").and_then(|r| r.get_mut("fields")) {
                fields.retain(|k, _| allowed(k));
            }
            if let Some(Value::Array(changed)) = payload.get_mut("changed") {
                changed.retain(|k| k.as_str().is_some_and(allowed));
            }
            if let Some(Value::Object(previous)) = payload.get_mut("previous") {
                previous.retain(|k, _| allowed(k));
            }
        }
    }
    Value::Object(payload).to_string()
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use plinth_core::manifest::{Access, FieldSet, RecordAccess};

    fn event(payload: Value) -> StoredEvent {
        StoredEvent {
            tenant_id: "t".into(),
            seq: 1,
            id: "e".into(),
            name: "record.opportunity.updated".into(),
            payload: payload.to_string(),
            cause: None,
            depth: 0,
            user_id: None,
            request_id: None,
            api_version: None,
            occurred_at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn record_payloads_show_only_granted_fields() {
        let e = event(serde_json::json!({
            "object": "opportunity", "id": "o1", "changed": ["amount", "stage", "owner_id"],
            "previous": { "amount": 4, "stage": "open", "owner_id": "u0" },
            "record": { "id": "o1", "owner_id": "u1", "fields": { "amount": 5, "stage": "won", "name": "Big" } }
        }));
        let mut grants = Capabilities::default();
        let none: Value = serde_json::from_str(&visible_payload(&grants, &e)).unwrap();
        assert!(none.get("record").is_none());
        assert!(none.get("previous").is_none());
        assert_eq!(none["changed"], serde_json::json!(["amount", "stage", "owner_id"]));

        let only: BTreeSet<String> = ["stage".to_string()].into();
        grants.records.insert(
            "opportunity".into(),
            RecordAccess {
                access: Access::Read,
                fields: FieldSet::Only(only),
                lock: false,
                read_as: false,
                system_write: false,
            },
        );
        let some: Value = serde_json::from_str(&visible_payload(&grants, &e)).unwrap();
        assert_eq!(some["record"]["fields"], serde_json::json!({ "stage": "won" }));
        assert_eq!(some["record"]["owner_id"], "u1");
        assert_eq!(some["changed"], serde_json::json!(["stage", "owner_id"]));
        assert_eq!(
            some["previous"],
            serde_json::json!({ "stage": "open", "owner_id": "u0" })
        );
    }
}
