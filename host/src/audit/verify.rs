//! Chain verification: walk a tenant's events in seq order, page by page (memory is
//! bounded by one page whatever the chain's length), recompute every hash and link,
//! and report the first break.
//!
//! The walk covers the chain as it stood when verification began: the head row and
//! the highest stored seq are read in one statement, events appended meanwhile are
//! beyond that head and not judged. What is detected, at the first event concerned:
//! - `sequence gap`: a seq is missing (a deleted row) — `id` is then `null`;
//! - `broken link`: `prev_hash` differs from the previous event's hash (a row
//!   replaced or reordered with its hash recomputed);
//! - `hash mismatch`: the row's contents no longer hash to its `hash` (any column
//!   altered in place);
//! - `head mismatch`: the chain does not end where its head row says (a truncated
//!   tail, events beyond the head, or a head row altered).
//!
//! Hashing runs on the blocking pool while the next page is fetched, so a long walk
//! neither stalls the async workers nor waits on the database between pages.

use serde::Serialize;

use crate::store::audit::{AuditEvent, GENESIS_HASH};
use crate::store::audit_query;
use crate::store::{Db, StoreError, StoreResult};

/// Events fetched per page.
pub const PAGE: i64 = 5_000;

/// A chain position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeadRef {
    /// Seq of the last event.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// The first event at which the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// The seq concerned (for a gap, the missing seq).
    pub seq: i64,
    /// The event's id, when there is an event at that seq.
    pub id: Option<String>,
    /// `hash mismatch`, `broken link`, `sequence gap` or `head mismatch`.
    pub reason: &'static str,
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Whether the whole chain is intact.
    pub ok: bool,
    /// Number of events (when intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<i64>,
    /// The verified head (when intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<HeadRef>,
    /// Events found intact before the break (when broken).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_checked: Option<i64>,
    /// The first break (when broken).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken: Option<Broken>,
}

/// The walk's state between pages.
#[derive(Debug)]
struct Walk {
    next_seq: i64,
    prev_hash: String,
    checked: i64,
    broken: Option<Broken>,
}

impl Walk {
    fn new() -> Walk {
        Walk {
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            checked: 0,
            broken: None,
        }
    }

    /// Check one page (in seq order); stops at the first break.
    fn check(&mut self, page: &[AuditEvent]) {
        for e in page {
            let reason = if e.seq != self.next_seq {
                self.broken = Some(Broken {
                    seq: self.next_seq,
                    id: None,
                    reason: "sequence gap",
                });
                return;
            } else if e.prev_hash != self.prev_hash {
                "broken link"
            } else if e.compute_hash() != e.hash {
                "hash mismatch"
            } else {
                self.checked += 1;
                self.next_seq += 1;
                self.prev_hash.clone_from(&e.hash);
                continue;
            };
            self.broken = Some(Broken {
                seq: e.seq,
                id: Some(e.id.clone()),
                reason,
            });
            return;
        }
    }

    fn report(self) -> VerifyReport {
        match self.broken {
            Some(b) => VerifyReport {
                ok: false,
                events: None,
                head: None,
                events_checked: Some(self.checked),
                first_broken: Some(b),
            },
            None => VerifyReport {
                ok: true,
                events: Some(self.checked),
                head: Some(HeadRef {
                    seq: self.next_seq - 1,
                    hash: self.prev_hash,
                }),
                events_checked: None,
                first_broken: None,
            },
        }
    }

    fn head_mismatch(&mut self, seq: i64) {
        self.broken = Some(Broken {
            seq,
            id: None,
            reason: "head mismatch",
        });
    }
}

/// Verify `tenant`'s whole chain.
pub async fn verify_chain(db: &Db, tenant: &str) -> StoreResult<VerifyReport> {
    let mut walk = Walk::new();
    let Some(snap) = audit_query::chain_snapshot(db, tenant).await? else {
        // Every tenant gets a head row when it is created: none means it was removed.
        walk.head_mismatch(0);
        return Ok(walk.report());
    };
    let upto = snap.head_seq;
    let fetch = |after: i64| {
        let (db, tenant) = (db.clone(), tenant.to_string());
        tokio::spawn(async move { audit_query::chain_page(&db, &tenant, after, upto, PAGE).await })
    };
    let mut pending = (upto > 0).then(|| fetch(0));
    while let Some(handle) = pending.take() {
        let page = joined(handle.await)??;
        let full = page.len() as i64 == PAGE;
        if let (true, Some(last)) = (full, page.last()) {
            pending = Some(fetch(last.seq));
        }
        walk = joined(
            tokio::task::spawn_blocking(move || {
                walk.check(&page);
                walk
            })
            .await,
        )?;
        if walk.broken.is_some() {
            if let Some(h) = pending.take() {
                h.abort();
            }
            return Ok(walk.report());
        }
    }
    let last_seq = walk.next_seq - 1;
    if last_seq != upto {
        // Fewer events than the head claims: the tail was cut off.
        walk.head_mismatch(last_seq + 1);
    } else if walk.prev_hash != snap.head_hash {
        walk.head_mismatch(upto);
    } else if snap.max_event_seq.is_some_and(|m| m > upto) {
        // Rows beyond the head: not appended through the chain.
        walk.head_mismatch(upto + 1);
    }
    Ok(walk.report())
}

fn joined<T>(r: Result<T, tokio::task::JoinError>) -> StoreResult<T> {
    r.map_err(|e| StoreError::Corrupt(format!("verification task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEvent {
                    tenant_id: "t".into(),
                    seq,
                    id: format!("e{seq}"),
                    occurred_at: "2026-01-01T00:00:00.000Z".into(),
                    actor_user: None,
                    actor_key: None,
                    actor_plugin: None,
                    action: "record.create".into(),
                    entity_type: "record:account".into(),
                    entity_id: Some(format!("r{seq}")),
                    before_state: None,
                    after_state: Some("{}".into()),
                    changed_fields: "[]".into(),
                    request_id: None,
                    api_version: None,
                    client: None,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.compute_hash();
                prev.clone_from(&e.hash);
                e
            })
            .collect()
    }

    fn first_break(events: &[AuditEvent]) -> Option<(i64, &'static str)> {
        let mut w = Walk::new();
        w.check(events);
        w.broken.map(|b| (b.seq, b.reason))
    }

    #[test]
    fn an_intact_chain_passes_and_each_tampering_is_named() {
        let c = chain(5);
        assert_eq!(first_break(&c), None);

        let mut altered = c.clone();
        altered[2].action = "x".into();
        assert_eq!(first_break(&altered), Some((3, "hash mismatch")));

        let mut gap = c.clone();
        gap.remove(1);
        assert_eq!(first_break(&gap), Some((2, "sequence gap")));

        // A forged event with a self-consistent hash still breaks the next link.
        let mut forged = c.clone();
        forged[1].action = "x".into();
        forged[1].hash = forged[1].compute_hash();
        assert_eq!(first_break(&forged), Some((3, "broken link")));
    }

    #[test]
    fn checking_in_pages_equals_checking_at_once() {
        let c = chain(7);
        let mut w = Walk::new();
        w.check(&c[..3]);
        w.check(&c[3..]);
        let r = w.report();
        assert!(r.ok);
        assert_eq!(r.events, Some(7));
        assert_eq!(r.head.map(|h| h.hash), Some(c[6].hash.clone()));
    }
}
