//! Events: what the host and plugins emit into a tenant's event log, and the rules
//! their delivery to subscribed plugins follows.
//!
//! - **Emission** ([`emit`]): record changes, installation lifecycle steps and
//!   plugin-emitted events are appended to the tenant's event log *inside the
//!   transaction of the change*, with the plugin that caused them and their chain
//!   depth; chains deeper than [`MAX_DEPTH`] are stopped with an audit event.
//! - **Delivery** (the server's `workers::events`): a background worker moves each
//!   installation's cursor through the log, calling `on-event` for the events its
//!   effective grants subscribe to ([`subscribed`]) — in seq (commit) order, at least
//!   once, with retries and exponential backoff, then the dead-letter list
//!   ([`dead_letters`]).
//!
//! The semantics are documented for plugin authors and operators in `docs/events.md`.

pub mod chain;
pub mod dead_letters;
pub mod emit;

pub use emit::{RecordChange, append, lifecycle, record_changed};

/// Deepest event chain delivered: an event caused while handling an event of depth
/// `MAX_DEPTH` is not logged (the host audits `event.chain_stopped` instead).
pub const MAX_DEPTH: u32 = 8;
/// Largest plugin-emitted payload, in bytes of JSON text.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// Whether subscription `pattern` covers event `name`: exact, a trailing `.*` (any
/// name below that prefix, at any depth), or `*` (everything).
pub fn matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.')),
        None => pattern == name,
    }
}

/// Whether any of `patterns` covers `name`.
pub fn subscribed(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| matches(p, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_prefix_and_all() {
        assert!(matches("record.opportunity.updated", "record.opportunity.updated"));
        assert!(!matches("record.opportunity.updated", "record.opportunity.created"));
        assert!(matches("record.account.*", "record.account.created"));
        assert!(matches("territories.*", "territories.zone.moved"));
        assert!(!matches("record.account.*", "record.account"));
        assert!(!matches("record.account.*", "record.accounts.created"));
        assert!(!matches("record.account.*", "record.account."));
        assert!(matches("*", "anything.at.all"));
    }
}
