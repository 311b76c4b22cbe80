//! The outbox: email and webhook notifications, queued durably in the same
//! transaction as whatever caused them and delivered by a background [`Worker`].
//!
//! - [`email`]: what plugins (WIT `email`) and the host queue; audit-alert emails
//!   from the policy evaluator use the same payload and delivery path.
//! - [`webhooks`]: tenants' webhooks, and the fan-out of alerts and events to them
//!   ([`webhooks::enqueue_event`] is the entry point for the events service).
//! - [`mail`]: SMTP (lettre) or `.eml` files when no SMTP server is configured.
//! - [`signing`]: the webhook signature scheme (`docs/outbox.md`).
//! - [`worker`]: claims (multi-host safe), retries with exponential backoff, final
//!   failures recorded; the webhook delivery log.

pub mod email;
pub mod mail;
pub mod signing;
pub mod webhooks;
pub mod worker;

use std::time::Duration;

pub use mail::SmtpUrl;
pub use worker::{Worker, WorkerError};

/// Outbox delivery settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// SMTP server; `None` writes `.eml` files to `<data-dir>/outbox/`.
    pub smtp_url: Option<SmtpUrl>,
    /// Sender of every email (`Plinth <plinth@example.com>`).
    pub from: String,
    /// How often the worker looks for due rows.
    pub poll_interval: Duration,
    /// Attempts before a row is marked `failed`.
    pub max_attempts: u32,
    /// Delay after the first failed attempt; doubles each time.
    pub backoff_base: Duration,
    /// Longest delay between attempts.
    pub backoff_max: Duration,
    /// How long a claim lasts before another worker may take the row over.
    pub lease: Duration,
    /// Rows claimed (and attempted concurrently) at a time.
    pub batch: i64,
    /// SMTP connection and command timeout.
    pub smtp_timeout: Duration,
    /// Total time a webhook receiver has to answer.
    pub webhook_timeout: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            smtp_url: None,
            from: "Plinth <plinth@localhost>".into(),
            poll_interval: Duration::from_secs(1),
            max_attempts: 8,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(6 * 3600),
            lease: Duration::from_secs(300),
            batch: 16,
            smtp_timeout: Duration::from_secs(30),
            webhook_timeout: Duration::from_secs(10),
        }
    }
}
