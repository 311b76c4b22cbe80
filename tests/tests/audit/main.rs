//! The audit ledger through the real server: events and their filters, pagination,
//! verification against direct tampering, export round-trips, record history, as-of
//! reconstruction, policies raising alerts and outbox rows, the compliance report,
//! roles and tenant isolation. Runs on SQLite, and on PostgreSQL when
//! `PLINTH_TEST_DATABASE_URL` is set.
//!
//! The tests need events with chosen actors, actions and states that no API writes,
//! so they append them with `store::audit::append` in a transaction, as every
//! mutation does; everything else goes through the API as the tenant's owner (or a
//! user of the role under test). Raw SQL is left only where the storage itself is the
//! subject: tampering with rows, records with fixed ids and no events of their own,
//! and outbox payloads. This file holds the shared helpers; the tests are in the
//! modules below.

mod access;
mod ledger;
mod policies;

use plinth_core::store::audit::{self, Actor, AuditEvent, NewEvent};
use plinth_tests::{Client, TestServer, TestTenant};
use serde_json::{Value, json};

const ALL_TIME: &str = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
const POLICIES: &str = "/api/v1/audit/policies";

fn user(id: &str) -> Actor {
    Actor {
        user_id: Some(id.into()),
        key_id: Some(format!("key-of-{id}")),
        request_id: Some("req".into()),
        api_version: Some("2026-11-01".into()),
        client: Some("tests".into()),
        ..Actor::default()
    }
}

fn plugin(p: &str) -> Actor {
    Actor {
        plugin: Some(p.into()),
        ..Actor::default()
    }
}

/// Append one event in its own transaction, as a mutation would. (Through the store:
/// the API cannot write events with arbitrary actors, actions and states.)
async fn append(
    s: &TestServer,
    tenant: &str,
    actor: &Actor,
    action: &str,
    entity: (&str, &str),
    before: Option<Value>,
    after: Option<Value>,
) -> AuditEvent {
    let mut tx = s.db().writer().begin().await.expect("begin");
    let e = audit::append(
        &mut tx,
        s.db().dialect(),
        tenant,
        actor,
        NewEvent {
            action,
            entity_type: entity.0,
            entity_id: Some(entity.1),
            before: before.as_ref(),
            after: after.as_ref(),
        },
    )
    .await
    .expect("append");
    tx.commit().await.expect("commit");
    e
}

/// Append `changes` by `actor`, each in its own transaction, in order. Each change
/// is a row `[action, entity type, entity id, before, after]`, `null` for no state.
async fn append_all(s: &TestServer, tenant: &str, actor: &Actor, changes: Value) -> Vec<AuditEvent> {
    let state = |v: &Value| (!v.is_null()).then(|| v.clone());
    let mut out = Vec::new();
    for row in changes.as_array().expect("a list of changes") {
        let text = |i: usize| row[i].as_str().unwrap_or_else(|| panic!("{row}: item {i} is text"));
        let entity = (text(1), text(2));
        out.push(append(s, tenant, actor, text(0), entity, state(&row[3]), state(&row[4])).await);
    }
    out
}

/// Every event of a list, following cursors; also checks page sizes.
async fn all_pages(t: &Client, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = t
            .get(&format!("/api/v1/audit/events?{query}&limit={limit}{cursor}"))
            .await
            .expect(200)
            .json();
        let data = page["data"].as_array().expect("data").clone();
        assert!(data.len() <= limit);
        out.extend(data.clone());
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(data.len(), limit, "only full pages have a next cursor");
                cursor = format!("&cursor={c}");
            }
            None => return out,
        }
    }
}

fn seqs(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["seq"].as_i64().expect("seq")).collect()
}

async fn verify(t: &Client) -> Value {
    t.get("/api/v1/audit/verify").await.expect(200).json()
}

async fn with_events(s: &TestServer, name: &str, n: usize) -> TestTenant {
    let t = s.tenant(name).await;
    for i in 0..n {
        let id = format!("acc{i}");
        append(
            s,
            &t.id,
            &user("u"),
            "record.create",
            ("record:account", &id),
            None,
            Some(json!({"name": id})),
        )
        .await;
    }
    t
}

/// Tamper with one stored event of `tenant` (the test is about the verifier seeing
/// it, so this goes around the API on purpose).
async fn tamper(s: &TestServer, statement: &str, tenant: &str, seq: i64) {
    let done = sqlx::query(statement)
        .bind(tenant)
        .bind(seq)
        .execute(s.db().writer())
        .await
        .expect("tamper");
    assert_eq!(done.rows_affected(), 1, "{statement}");
}

async fn create_policy(t: &Client, body: Value) -> Value {
    t.post(POLICIES, body).await.expect(201).json()
}

async fn alerts(t: &Client, query: &str) -> Vec<Value> {
    t.get(&format!("/api/v1/audit/alerts?limit=500&{query}"))
        .await
        .expect(200)
        .json()["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The outbox rows of `tenant` with their payloads. Straight from the table: the
/// outbox API never shows a payload, and these tests check what an alert queued.
async fn outbox(s: &TestServer, tenant: &str) -> Vec<(String, Value)> {
    use sqlx::Row as _;
    let rows = sqlx::query("SELECT kind, payload, status FROM outbox WHERE tenant_id = $1 ORDER BY id")
        .bind(tenant)
        .fetch_all(s.db().reader())
        .await
        .expect("outbox");
    rows.iter()
        .map(|r| {
            // The server's outbox worker may already have delivered them.
            let status: String = r.get("status");
            assert!(["pending", "sending", "sent"].contains(&status.as_str()), "{status}");
            let payload: String = r.get("payload");
            (r.get("kind"), serde_json::from_str(&payload).expect("payload JSON"))
        })
        .collect()
}
