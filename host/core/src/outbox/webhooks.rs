//! Tenants' webhooks: registration (URL, signing secret shown once and stored
//! encrypted, event patterns, alerts), audited changes, and fan-out of alerts and
//! events into one outbox row per subscribed webhook.
//!
//! **For the events service**: call [`enqueue_event`] inside the transaction that
//! records an event (or when dispatching it) to deliver it to every enabled webhook
//! whose patterns match its name. Patterns follow the manifest's grammar: `*`, an
//! exact name, or a prefix ending in `.*` (`record.account.*`).

use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use serde_json::{Value, json};

use crate::outbound::{AddressRules, FetchError, parse_url};
use crate::secrets::{Owner, Vault, VaultError};
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::outbox::{self, NewOutbox};
use crate::store::webhooks::{self as store, Delivery, WebhookRow};
use crate::store::{Db, StoreError, StoreResult, Tx, time};

/// Most webhooks per tenant.
pub const MAX_WEBHOOKS: i64 = 20;
/// Most event patterns per webhook.
pub const MAX_PATTERNS: usize = 50;
/// The `type` of audit-alert notifications.
pub const ALERT_TYPE: &str = "audit.alert";

/// Why a webhook operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No such webhook in this tenant.
    #[error("no webhook `{0}`")]
    NotFound(String),
    /// A field is malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Too many webhooks.
    #[error("{0}")]
    Limit(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secret could not be sealed.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> WebhookError {
    WebhookError::Invalid {
        field,
        message: message.into(),
    }
}

/// A webhook as the API shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookView {
    /// Id.
    pub id: String,
    /// Target URL.
    pub url: String,
    /// Event patterns.
    pub events: Vec<String>,
    /// Whether audit alerts are sent.
    pub alerts: bool,
    /// Whether it receives anything.
    pub enabled: bool,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<&WebhookRow> for WebhookView {
    fn from(w: &WebhookRow) -> Self {
        WebhookView {
            id: w.id.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            alerts: w.alerts,
            enabled: w.enabled,
            created_at: w.created_at.clone(),
            updated_at: w.updated_at.clone(),
        }
    }
}

/// A new webhook.
#[derive(Debug, Clone, Default)]
pub struct NewWebhook {
    /// Target URL.
    pub url: String,
    /// Signing secret; generated when `None`.
    pub secret: Option<String>,
    /// Event patterns.
    pub events: Vec<String>,
    /// Send audit alerts.
    pub alerts: bool,
    /// Enabled.
    pub enabled: bool,
}

/// Changes to a webhook; `None` keeps the field.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    /// New URL.
    pub url: Option<String>,
    /// New secret (rotation).
    pub secret: Option<String>,
    /// New patterns.
    pub events: Option<Vec<String>>,
    /// Alerts on/off.
    pub alerts: Option<bool>,
    /// Enabled on/off.
    pub enabled: Option<bool>,
}

/// A fresh signing secret: `whsec_` and 256 random bits, base64url.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn check_url(url: &str, rules: &AddressRules) -> Result<String, WebhookError> {
    if url.len() > 2048 {
        return Err(invalid("url", "at most 2048 characters"));
    }
    let parsed = parse_url(url).map_err(|e| match e {
        FetchError::Invalid(m) | FetchError::Denied(m) | FetchError::Limit(m) | FetchError::Network(m) => {
            invalid("url", m)
        }
    })?;
    if parsed.fragment().is_some() {
        return Err(invalid("url", "must not contain a fragment"));
    }
    // An address given literally can be judged now; names are judged at delivery,
    // on what they resolve to then.
    let literal = match parsed.host() {
        Some(url::Host::Ipv4(v4)) => Some(std::net::IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(std::net::IpAddr::V6(v6)),
        _ => None,
    };
    if let Some(ip) = literal
        && let Err(class) = rules.check(ip)
    {
        return Err(invalid(
            "url",
            format!("{ip} is {}; webhooks may not target it", class.describe()),
        ));
    }
    Ok(parsed.to_string())
}

fn check_secret(secret: &str) -> Result<(), WebhookError> {
    if !(16..=256).contains(&secret.len()) || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "secret",
            "must be 16–256 printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// Check a subscription pattern: `*`, or dot-separated `[a-z0-9_-]+` segments with an
/// optional final `.*`.
pub fn check_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let body = pattern.strip_suffix(".*").unwrap_or(pattern);
    body.split('.').all(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    })
}

/// Whether `name` matches `pattern` (`*`, exact, or `prefix.*` for any deeper name).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) if prefix.ends_with('.') => name.starts_with(prefix) && name.len() > prefix.len(),
        _ => pattern == name,
    }
}

fn check_patterns(events: &[String]) -> Result<(), WebhookError> {
    if events.len() > MAX_PATTERNS {
        return Err(invalid("events", format!("at most {MAX_PATTERNS} patterns")));
    }
    match events.iter().find(|p| !check_pattern(p)) {
        Some(p) => Err(invalid(
            "events",
            format!("`{p}`: use `*`, a dotted name of [a-z0-9_-] segments, or one ending in `.*`"),
        )),
        None => Ok(()),
    }
}

async fn audit_change(
    tx: &mut Tx<'_>,
    db: &Db,
    tenant: &str,
    actor: &Actor,
    action: &str,
    id: &str,
    (before, after): (Option<Value>, Option<Value>),
) -> StoreResult<()> {
    let event = NewEvent {
        action,
        entity_type: "webhook",
        entity_id: Some(id),
        before: before.as_ref(),
        after: after.as_ref(),
    };
    audit::append(tx, db.dialect(), tenant, actor, event).await?;
    Ok(())
}

fn view_json(w: &WebhookRow) -> Value {
    serde_json::to_value(WebhookView::from(w)).unwrap_or(Value::Null)
}

/// Register a webhook; returns it and its secret (the only time the secret is shown).
pub async fn create(
    db: &Db,
    vault: &Vault,
    rules: &AddressRules,
    tenant: &str,
    actor: &Actor,
    input: NewWebhook,
) -> Result<(WebhookView, String), WebhookError> {
    let url = check_url(&input.url, rules)?;
    check_patterns(&input.events)?;
    let secret = match input.secret {
        Some(s) => {
            check_secret(&s)?;
            s
        }
        None => generate_secret(),
    };
    let id = ulid::Ulid::new().to_string();
    let now = time::now();
    let row = WebhookRow {
        secret: vault.seal(Owner::Webhook { tenant, webhook: &id }, secret.as_bytes())?,
        id,
        url,
        events: input.events,
        alerts: input.alerts,
        enabled: input.enabled,
        created_at: now.clone(),
        updated_at: now,
    };
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    if store::count(&mut tx, tenant).await? >= MAX_WEBHOOKS {
        return Err(WebhookError::Limit(format!(
            "a tenant has at most {MAX_WEBHOOKS} webhooks"
        )));
    }
    store::insert(&mut tx, tenant, &row).await?;
    audit_change(
        &mut tx,
        db,
        tenant,
        actor,
        "webhook.create",
        &row.id,
        (None, Some(view_json(&row))),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok((WebhookView::from(&row), secret))
}

/// Every webhook of a tenant.
pub async fn list(db: &Db, tenant: &str) -> Result<Vec<WebhookView>, WebhookError> {
    Ok(store::list(db, tenant).await?.iter().map(WebhookView::from).collect())
}

/// One webhook.
pub async fn get(db: &Db, tenant: &str, id: &str) -> Result<WebhookView, WebhookError> {
    store::get(db, tenant, id)
        .await?
        .map(|w| WebhookView::from(&w))
        .ok_or_else(|| WebhookError::NotFound(id.to_string()))
}

/// Change a webhook.
pub async fn update(
    db: &Db,
    vault: &Vault,
    rules: &AddressRules,
    tenant: &str,
    actor: &Actor,
    id: &str,
    patch: WebhookPatch,
) -> Result<WebhookView, WebhookError> {
    let url = patch.url.as_deref().map(|u| check_url(u, rules)).transpose()?;
    if let Some(events) = &patch.events {
        check_patterns(events)?;
    }
    let sealed = match &patch.secret {
        Some(s) => {
            check_secret(s)?;
            Some(vault.seal(Owner::Webhook { tenant, webhook: id }, s.as_bytes())?)
        }
        None => None,
    };
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    let before = store::get_tx(&mut tx, tenant, id)
        .await?
        .ok_or_else(|| WebhookError::NotFound(id.to_string()))?;
    let mut after = before.clone();
    if let Some(u) = url {
        after.url = u;
    }
    if let Some(e) = patch.events {
        after.events = e;
    }
    if let Some(a) = patch.alerts {
        after.alerts = a;
    }
    if let Some(e) = patch.enabled {
        after.enabled = e;
    }
    let rotated = sealed.is_some();
    if let Some(s) = sealed {
        after.secret = s;
    }
    let changed = WebhookView::from(&after) != WebhookView::from(&before) || rotated;
    if changed {
        after.updated_at = time::now();
        store::update(&mut tx, tenant, &after).await?;
        let mut after_json = view_json(&after);
        if rotated {
            after_json["secret_rotated"] = json!(true);
        }
        audit_change(
            &mut tx,
            db,
            tenant,
            actor,
            "webhook.update",
            id,
            (Some(view_json(&before)), Some(after_json)),
        )
        .await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(WebhookView::from(&after))
}

/// Delete a webhook and its delivery log. Rows already queued for it fail at
/// delivery ("webhook deleted").
pub async fn delete(db: &Db, tenant: &str, actor: &Actor, id: &str) -> Result<(), WebhookError> {
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    let before = store::get_tx(&mut tx, tenant, id)
        .await?
        .ok_or_else(|| WebhookError::NotFound(id.to_string()))?;
    store::delete(&mut tx, tenant, id).await?;
    store::delete_deliveries(&mut tx, tenant, id).await?;
    audit_change(
        &mut tx,
        db,
        tenant,
        actor,
        "webhook.delete",
        id,
        (Some(view_json(&before)), None),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// Delivery attempts of one webhook, newest first.
pub async fn deliveries(
    db: &Db,
    tenant: &str,
    id: &str,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<Delivery>, WebhookError> {
    if store::get(db, tenant, id).await?.is_none() {
        return Err(WebhookError::NotFound(id.to_string()));
    }
    Ok(store::deliveries(db, tenant, id, before, limit).await?)
}

/// An event to deliver to subscribed webhooks.
#[derive(Debug, Clone, Copy)]
pub struct WebhookEvent<'a> {
    /// The event's id, stable across redeliveries (receivers deduplicate on it).
    pub id: &'a str,
    /// Its dotted name, matched against the webhooks' patterns.
    pub name: &'a str,
    /// When it happened (RFC 3339).
    pub occurred_at: &'a str,
    /// Its JSON payload.
    pub payload: &'a Value,
}

/// What one webhook row carries; the worker wraps it in the signed envelope.
fn notification(id: &str, kind: &str, created_at: &str, data: &Value) -> String {
    json!({ "id": id, "type": kind, "created_at": created_at, "data": data }).to_string()
}

async fn queue_for(
    tx: &mut Tx<'_>,
    tenant: &str,
    hooks: impl Iterator<Item = &WebhookRow>,
    payload: &str,
    now: &str,
) -> StoreResult<usize> {
    let mut n = 0;
    for w in hooks {
        let row = NewOutbox {
            tenant,
            kind: outbox::kind::WEBHOOK,
            payload,
            plugin: None,
            webhook: Some(&w.id),
            now,
        };
        outbox::insert(tx, row).await?;
        n += 1;
    }
    Ok(n)
}

/// Queue `event` for every enabled webhook of `tenant` subscribed to its name, inside
/// `tx` (nothing is sent unless `tx` commits). Returns how many webhooks it goes to.
///
/// The body each webhook receives is
/// `{"id": event.id, "type": event.name, "tenant_id", "created_at": event.occurred_at,
/// "data": event.payload, "delivery_id"}`, signed as `docs/outbox.md` describes.
pub async fn enqueue_event(tx: &mut Tx<'_>, tenant: &str, event: &WebhookEvent<'_>) -> StoreResult<usize> {
    let hooks = store::enabled_tx(tx, tenant).await?;
    let subscribed = hooks
        .iter()
        .filter(|w| w.events.iter().any(|p| pattern_matches(p, event.name)));
    let payload = notification(event.id, event.name, event.occurred_at, event.payload);
    queue_for(tx, tenant, subscribed, &payload, &time::now()).await
}

/// Fan an alert row (kind `webhook`, no target, payload `{type: "audit.alert",
/// alert}` as the policy evaluator writes it) out to the tenant's webhooks that take
/// alerts. Returns how many.
pub(crate) async fn fan_out_alert(
    tx: &mut Tx<'_>,
    tenant: &str,
    source_id: &str,
    payload: &str,
    now: &str,
) -> StoreResult<usize> {
    let parsed: Value =
        serde_json::from_str(payload).map_err(|e| StoreError::Corrupt(format!("alert payload: {e}")))?;
    let kind = parsed["type"].as_str().unwrap_or(ALERT_TYPE);
    let data = parsed.get("alert").unwrap_or(&parsed);
    let created_at = data["created_at"].as_str().unwrap_or(now);
    let hooks = store::enabled_tx(tx, tenant).await?;
    let body = notification(source_id, kind, created_at, data);
    queue_for(tx, tenant, hooks.iter().filter(|w| w.alerts), &body, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "record.account.created"));
        assert!(pattern_matches("record.account.*", "record.account.created"));
        assert!(pattern_matches("record.*", "record.account.created"));
        assert!(!pattern_matches("record.account.*", "record.accounts.created"));
        assert!(!pattern_matches("record.account.*", "record.account"));
        assert!(pattern_matches("territories.realigned", "territories.realigned"));
        assert!(!pattern_matches("territories.realigned", "territories.realigned.x"));
        for ok in ["*", "a.b", "record.account.*", "x-y_z.1"] {
            assert!(check_pattern(ok), "{ok}");
        }
        for bad in ["", "a..b", "A.b", "a.*.b", "*.a", "a.b*", "a b"] {
            assert!(!check_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn urls_and_secrets() {
        let strict = AddressRules::default();
        assert!(check_url("https://hooks.example.com/plinth", &strict).is_ok());
        assert!(check_url("https://127.0.0.1/x", &strict).is_err());
        assert!(check_url("http://[::1]/x", &strict).is_err());
        assert!(check_url("http://169.254.169.254/latest", &strict).is_err());
        assert!(check_url("ftp://example.com/", &strict).is_err());
        assert!(check_url("https://u:p@example.com/", &strict).is_err());
        assert!(check_url("https://example.com/#frag", &strict).is_err());
        let s = generate_secret();
        assert!(s.starts_with("whsec_") && s.len() > 40);
        assert!(check_secret(&s).is_ok());
        assert!(check_secret("short").is_err());
        assert!(check_secret("has a space in it, long enough").is_err());
    }
}
