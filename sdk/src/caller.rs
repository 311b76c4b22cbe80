//! Who a call runs for, as the host established it.

use crate::__private::wit::plinth::plugin::types as wit;

/// The tenant, user and roles a call runs for. Filled by the host from the
/// authenticated request; a plugin cannot change it, and every host call it makes is
/// confined to `tenant_id`.
///
/// ```
/// let caller = plinth_sdk::Caller {
///     tenant_id: "t1".into(),
///     user_id: Some("u1".into()),
///     roles: vec!["manager".into()],
///     api_version: "2026-11-01".into(),
///     request_id: "r1".into(),
/// };
/// assert!(caller.has_role("manager"));
/// assert!(caller.is_at_least("member"));
/// assert!(!caller.is_at_least("admin"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant the call runs in.
    pub tenant_id: String,
    /// The user, or `None` for system work (timers, events no user caused).
    pub user_id: Option<String>,
    /// Roles: `owner`, `admin`, `manager`, `member`, `read-only`.
    pub roles: Vec<String>,
    /// The REST API version of the request, e.g. `2026-11-01`.
    pub api_version: String,
    /// Unique id of the request, also in host logs and audit events.
    pub request_id: String,
}

/// Role names from most to least privileged.
const ROLE_ORDER: [&str; 5] = ["owner", "admin", "manager", "member", "read-only"];

fn rank(role: &str) -> Option<usize> {
    ROLE_ORDER.iter().position(|r| *r == role).map(|i| ROLE_ORDER.len() - i)
}

impl Caller {
    /// Whether the caller holds exactly this role.
    ///
    /// ```
    /// # let caller = plinth_sdk::Caller { tenant_id: "t".into(), user_id: None, roles: vec!["admin".into()], api_version: "2026-11-01".into(), request_id: "r".into() };
    /// assert!(caller.has_role("admin"));
    /// ```
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether any of the caller's roles is `min` or more privileged
    /// (owner > admin > manager > member > read-only).
    ///
    /// ```
    /// # let caller = plinth_sdk::Caller { tenant_id: "t".into(), user_id: None, roles: vec!["admin".into()], api_version: "2026-11-01".into(), request_id: "r".into() };
    /// assert!(caller.is_at_least("manager"));
    /// ```
    pub fn is_at_least(&self, min: &str) -> bool {
        let Some(min) = rank(min) else { return false };
        self.roles.iter().filter_map(|r| rank(r)).any(|r| r >= min)
    }
}

impl From<wit::Caller> for Caller {
    fn from(c: wit::Caller) -> Self {
        Caller {
            tenant_id: c.tenant_id,
            user_id: c.user_id,
            roles: c.roles,
            api_version: c.api_version,
            request_id: c.request_id,
        }
    }
}

/// An event delivered to [`crate::Plugin::on_event`].
///
/// ```
/// let e = plinth_sdk::Event {
///     id: "e1".into(),
///     name: "record.account.updated".into(),
///     payload: r#"{"id":"a1"}"#.into(),
///     occurred_at: "2026-11-24T10:00:00Z".into(),
///     cause: None,
///     depth: 0,
/// };
/// let v: serde_json::Value = e.payload_json().unwrap();
/// assert_eq!(v["id"], "a1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique id, stable across redeliveries; use it for idempotency.
    pub id: String,
    /// Dotted name such as `record.opportunity.updated`.
    pub name: String,
    /// JSON payload.
    pub payload: String,
    /// When it happened (RFC 3339, UTC).
    pub occurred_at: String,
    /// The plugin whose write caused the event, if any.
    pub cause: Option<String>,
    /// How many event hops led here.
    pub depth: u32,
}

impl Event {
    /// Decode the payload.
    ///
    /// ```
    /// # let e = plinth_sdk::Event { id: "e".into(), name: "n".into(), payload: "[1,2]".into(), occurred_at: "".into(), cause: None, depth: 0 };
    /// let v: Vec<u32> = e.payload_json().unwrap();
    /// assert_eq!(v, vec![1, 2]);
    /// ```
    pub fn payload_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::Error> {
        serde_json::from_str(&self.payload).map_err(|e| crate::Error::invalid(format!("event payload: {e}")))
    }
}

impl From<wit::Event> for Event {
    fn from(e: wit::Event) -> Self {
        Event {
            id: e.id,
            name: e.name,
            payload: e.payload,
            occurred_at: e.occurred_at,
            cause: e.cause,
            depth: e.depth,
        }
    }
}
