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

use super::canonical::{Fields, Packed, leading_seq};
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
    tenant: String,
    next_seq: i64,
    prev_hash: String,
    checked: i64,
    broken: Option<Broken>,
    /// Reused buffer for canonical forms: no allocation per event.
    scratch: Vec<u8>,
}

/// Where checking a page of packed events stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The page is done, or the chain is broken (see `Walk::broken`).
    Done,
    /// The packed row at this index did not check out; the exact path decides.
    Suspect(usize),
}

impl Walk {
    fn new(tenant: &str) -> Walk {
        Walk {
            tenant: tenant.to_string(),
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            checked: 0,
            broken: None,
            scratch: Vec::with_capacity(4096),
        }
    }

    /// Judge one event; true if it extends the chain, false if it breaks it (and
    /// `broken` says how) or — when `trusted` is false — if its hash did not check
    /// out, which the caller then confirms on the exact path.
    fn step(&mut self, f: &Fields<'_>, trusted: bool) -> Result<(), Option<Broken>> {
        if f.seq != self.next_seq {
            return Err(Some(Broken {
                seq: self.next_seq,
                id: None,
                reason: "sequence gap",
            }));
        }
        let reason = if f.prev_hash != self.prev_hash {
            "broken link"
        } else if !super::canonical::hash_matches(f, &mut self.scratch) {
            if !trusted {
                return Err(None);
            }
            "hash mismatch"
        } else {
            self.checked += 1;
            self.next_seq += 1;
            self.prev_hash.clear();
            self.prev_hash.push_str(f.hash);
            return Ok(());
        };
        Err(Some(Broken {
            seq: f.seq,
            id: Some(f.id.to_string()),
            reason,
        }))
    }

    /// Check whole events (the exact path); stops at the first break.
    fn check(&mut self, page: &[AuditEvent]) {
        for e in page {
            if let Err(b) = self.step(&Fields::of_event(e), true) {
                self.broken = b;
                return;
            }
        }
    }

    /// Check packed events from index `from`. A row that does not decode, or whose
    /// hash does not match, is handed back as a suspect rather than reported: the
    /// database's JSON encoding is trusted for speed, never for a verdict.
    fn check_packed(&mut self, page: &[String], from: usize) -> Stop {
        let tenant = std::mem::take(&mut self.tenant);
        let mut stop = Stop::Done;
        for (i, text) in page.iter().enumerate().skip(from) {
            let Ok(p) = serde_json::from_str::<Packed<'_>>(text) else {
                stop = Stop::Suspect(i);
                break;
            };
            match self.step(&Fields::of_packed(&tenant, &p), false) {
                Ok(()) => {}
                Err(None) => {
                    stop = Stop::Suspect(i);
                    break;
                }
                Err(broken) => {
                    self.broken = broken;
                    break;
                }
            }
        }
        self.tenant = tenant;
        stop
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

/// Chain walks running at once in this process. A walk of a large chain keeps a
/// core busy for seconds; more would only slow every request on the host.
const CONCURRENT_WALKS: usize = 2;
static WALKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_WALKS);

/// Verify `tenant`'s whole chain. At most two verifications run at
/// once per process; further ones wait their turn.
pub async fn verify_chain(db: &Db, tenant: &str) -> StoreResult<VerifyReport> {
    let _slot = WALKS
        .acquire()
        .await
        .map_err(|e| StoreError::Corrupt(format!("verification slots closed: {e}")))?;
    let mut walk = Walk::new(tenant);
    let Some(snap) = audit_query::chain_snapshot(db, tenant).await? else {
        // Every tenant gets a head row when it is created: none means it was removed.
        walk.head_mismatch(0);
        return Ok(walk.report());
    };
    let upto = snap.head_seq;
    let fetch = |after: i64| {
        let (db, tenant) = (db.clone(), tenant.to_string());
        tokio::spawn(async move { audit_query::chain_page_packed(&db, &tenant, after, upto, PAGE).await })
    };
    let mut pending = (upto > 0).then(|| fetch(0));
    while let Some(handle) = pending.take() {
        let mut page = joined(handle.await)??;
        let full = page.len() as i64 == PAGE;
        // Fetch the next page while this one is hashed.
        let mut prefetched = false;
        if let (true, Some(last)) = (full, page.last().and_then(|p| leading_seq(p))) {
            pending = Some(fetch(last));
            prefetched = true;
        }
        let mut from = 0;
        loop {
            let (w, p, stop) = joined(
                tokio::task::spawn_blocking(move || {
                    let stop = walk.check_packed(&page, from);
                    (walk, page, stop)
                })
                .await,
            )?;
            walk = w;
            let Stop::Suspect(i) = stop else {
                break;
            };
            // The exact path: the event as sqlx decodes its columns, hashed by
            // `AuditEvent::canonical`'s rules.
            match audit_query::event_at_seq(db, tenant, walk.next_seq).await? {
                Some(e) => walk.check(std::slice::from_ref(&e)),
                None => {
                    walk.broken = Some(Broken {
                        seq: walk.next_seq,
                        id: None,
                        reason: "sequence gap",
                    })
                }
            }
            if walk.broken.is_some() {
                break;
            }
            (page, from) = (p, i + 1);
        }
        if walk.broken.is_some() {
            if let Some(h) = pending.take() {
                h.abort();
            }
            return Ok(walk.report());
        }
        if full && !prefetched {
            pending = Some(fetch(walk.next_seq - 1));
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
        let mut w = Walk::new("t");
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

    fn packed(e: &AuditEvent) -> String {
        serde_json::json!([
            e.seq,
            e.id,
            e.occurred_at,
            e.actor_user,
            e.actor_key,
            e.actor_plugin,
            e.action,
            e.entity_type,
            e.entity_id,
            e.before_state,
            e.after_state,
            e.changed_fields,
            e.request_id,
            e.api_version,
            e.client,
            e.prev_hash,
            e.hash
        ])
        .to_string()
    }

    #[test]
    fn packed_rows_are_checked_and_doubtful_ones_handed_back() {
        let mut c = chain(4);
        c[1].before_state = Some("{\"q\":\"a \\\" b\"}".into());
        c[1].hash = c[1].compute_hash();
        // Re-link after changing event 2.
        for i in 2..4 {
            c[i].prev_hash = c[i - 1].hash.clone();
            c[i].hash = c[i].compute_hash();
        }
        let page: Vec<String> = c.iter().map(packed).collect();
        assert_eq!(leading_seq(&page[3]), Some(4));
        assert_eq!(leading_seq("[12, \"x\"]"), Some(12));
        let mut w = Walk::new("t");
        assert_eq!(w.check_packed(&page, 0), Stop::Done);
        assert_eq!((w.checked, w.broken.is_none()), (4, true));

        // A row that does not decode, or does not hash, is a suspect, not a verdict.
        let mut bad = page.clone();
        bad[2] = "not json".into();
        let mut w = Walk::new("t");
        assert_eq!(w.check_packed(&bad, 0), Stop::Suspect(2));
        assert!(w.broken.is_none());
        w.check(&c[2..3]);
        assert_eq!(w.check_packed(&bad, 3), Stop::Done);
        assert_eq!(w.checked, 4);

        let mut altered = c.clone();
        altered[2].action = "x".into();
        let page: Vec<String> = altered.iter().map(packed).collect();
        let mut w = Walk::new("t");
        assert_eq!(w.check_packed(&page, 0), Stop::Suspect(2));
        w.check(&altered[2..3]);
        assert_eq!(w.broken.map(|b| (b.seq, b.reason)), Some((3, "hash mismatch")));

        // Gaps and broken links are verdicts straight away.
        let mut gap = c.iter().map(packed).collect::<Vec<_>>();
        gap.remove(1);
        let mut w = Walk::new("t");
        assert_eq!(w.check_packed(&gap, 0), Stop::Done);
        assert_eq!(w.broken.map(|b| (b.seq, b.reason)), Some((2, "sequence gap")));
    }

    #[test]
    fn checking_in_pages_equals_checking_at_once() {
        let c = chain(7);
        let mut w = Walk::new("t");
        w.check(&c[..3]);
        w.check(&c[3..]);
        let r = w.report();
        assert!(r.ok);
        assert_eq!(r.events, Some(7));
        assert_eq!(r.head.map(|h| h.hash), Some(c[6].hash.clone()));
    }
}
