//! Notifications in users' inboxes (capability `notify`): tell a user that something
//! needs them, with a link to it. Users read their inbox at
//! `/api/v1/me/notifications` and choose per category whether they also get an email.
//!
//! Each notification has a key unique to this plugin: sending the same key again
//! notifies nobody, so an event handler that fails after notifying and is retried
//! does not notify twice. Use the event id, or a key naming the thing and step
//! (`approval:7:step:2`).
//!
//! ```no_run
//! use plinth_sdk::notify::Notification;
//! let sent = Notification::new("user-7", "approval:7:step:2", "approvals.request", "Approve a 25% discount")
//!     .body("Globex asks for 25% off its renewal.")
//!     .link("/api/v1/records/opportunity/01JD…")
//!     .send()?;
//! # Ok::<(), plinth_sdk::Error>(())
//! ```
//!
//! Declare `[capabilities] notify = true`; needs `plinth:plugin@1.5.0` (`api = "^1.5"`).

use crate::__private::wit::plinth::plugin::notify as wit;
use crate::Error;

/// A notification to send.
///
/// ```
/// let n = plinth_sdk::notify::Notification::new("u1", "k1", "sync.broken", "Calendar sync stopped")
///     .body("Reconnect your calendar.");
/// assert_eq!(n.category, "sync.broken");
/// assert_eq!(n.link, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The user to notify.
    pub user_id: String,
    /// This plugin's idempotency key (1–200 characters).
    pub key: String,
    /// Category (`^[a-z][a-z0-9_.-]{0,63}$`), for the user's email choice.
    pub category: String,
    /// Title: one line, 1–200 characters.
    pub title: String,
    /// Plain-text body, at most 4,000 characters.
    pub body: String,
    /// A path on this server the notification is about.
    pub link: Option<String>,
}

impl Notification {
    /// A notification with an empty body and no link.
    pub fn new(user_id: &str, key: &str, category: &str, title: &str) -> Notification {
        Notification {
            user_id: user_id.to_string(),
            key: key.to_string(),
            category: category.to_string(),
            title: title.to_string(),
            body: String::new(),
            link: None,
        }
    }

    /// With this body.
    pub fn body(mut self, body: &str) -> Notification {
        self.body = body.to_string();
        self
    }

    /// With a link: a path on this server, like `/api/v1/records/opportunity/01J…`.
    pub fn link(mut self, path: &str) -> Notification {
        self.link = Some(path.to_string());
        self
    }

    /// Send it: `true` when sent now, `false` when this plugin already sent one with
    /// this key (nothing is sent again).
    pub fn send(&self) -> Result<bool, Error> {
        Ok(wit::send(&wit::Notification {
            user_id: self.user_id.clone(),
            key: self.key.clone(),
            category: self.category.clone(),
            title: self.title.clone(),
            body: self.body.clone(),
            link: self.link.clone(),
        })?)
    }
}
