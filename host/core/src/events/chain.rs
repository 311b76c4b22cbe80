//! The event chain a call belongs to: while the worker runs a plugin's `on-event`
//! for an event of depth `d`, every write that plugin makes — records through its
//! capability, `events.emit` — logs its events at depth `d + 1`.
//!
//! The depth travels as a tokio task-local around the delivery call rather than as
//! an argument: host calls run inside the delivery's future (wasmtime polls the
//! guest, and through it the host functions, from that task), and this way the
//! records service, the REST API and the capability code need no extra parameter
//! that only events care about. Writes outside a delivery (REST requests, endpoint
//! calls, timers) see no depth and start a new chain at 0.

use std::future::Future;

tokio::task_local! {
    static DEPTH: u32;
}

/// Run `f` as the handling of an event of `depth`.
pub async fn within<F: Future>(depth: u32, f: F) -> F::Output {
    DEPTH.scope(depth, f).await
}

/// The depth of the event being handled by the current task, if any.
pub fn current() -> Option<u32> {
    DEPTH.try_with(|d| *d).ok()
}

/// The depth an event written now gets: one more than the event being handled, or
/// 0 outside any delivery.
pub fn next_depth() -> u32 {
    current().map_or(0, |d| d.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn depth_is_seen_inside_the_scope_only() {
        assert_eq!(next_depth(), 0);
        let inside = within(3, async {
            tokio::task::yield_now().await;
            next_depth()
        })
        .await;
        assert_eq!(inside, 4);
        assert_eq!(current(), None);
    }
}
