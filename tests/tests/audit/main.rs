//! The audit ledger through the real server: events and their filters, pagination,
//! verification against direct tampering, export round-trips, record history, as-of
//! reconstruction, policies raising alerts and outbox rows, the compliance report,
//! roles and tenant isolation. Runs on SQLite, and on PostgreSQL when
//! `PLINTH_TEST_DATABASE_URL` is set.
//!
//! Only tenant creation is a real mutation in this crate today, so other events are
//! appended with `store::audit::append` in a transaction, as every mutation does.
//! This file holds the shared helpers; the tests are in the modules below.

mod access;
mod ledger;
mod policies;

use plinth_core::store::audit::{self, Actor, AuditEvent, NewEvent};
use plinth_core::store::tenancy::{self, NewKey};
use plinth_tests::{TestServer, TestTenant};
use serde_json::{Value, json};

const ALL_TIME: &str = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";

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

/// Append one event in its own transaction, as a mutation would.
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

/// A user with `role` and an API key for them.
async fn key_with_role(s: &TestServer, tenant: &str, role: &str) -> (String, String) {
    let mut tx = s.db().writer().begin().await.expect("begin");
    let email = format!("{role}-{}@example.test", ulid::Ulid::new());
    let u = tenancy::insert_user(&mut tx, tenant, &email, role, role)
        .await
        .expect("user");
    let secret = plinth_core::tenancy::new_secret(plinth_core::tenancy::KEY_PREFIX);
    tenancy::insert_key(
        &mut tx,
        tenant,
        NewKey {
            user_id: &u.id,
            name: "test",
            secret_hash: &secret.hash,
            prefix: "plk_test",
            api_version: None,
            created_by: None,
            expires_at: None,
        },
    )
    .await
    .expect("key");
    tx.commit().await.expect("commit");
    (u.id, secret.plaintext)
}

async fn get_ok(s: &TestServer, t: &TestTenant, path: &str) -> Value {
    let r = s.call("GET", path, Some(&t.key), None).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text);
    r.body
}

/// Every event of a list, following cursors; also checks page sizes.
async fn all_pages(s: &TestServer, t: &TestTenant, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/audit/events?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let body = get_ok(s, t, &path).await;
        let data = body["data"].as_array().expect("data").clone();
        assert!(data.len() <= limit);
        out.extend(data.clone());
        match body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(data.len(), limit, "only full pages have a next cursor");
                cursor = Some(c.to_string());
            }
            None => return out,
        }
    }
}

fn seqs(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["seq"].as_i64().expect("seq")).collect()
}

async fn verify(s: &TestServer, t: &TestTenant) -> Value {
    get_ok(s, t, "/api/v1/audit/verify").await
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

async fn sql(s: &TestServer, statement: &str, tenant: &str, seq: i64) {
    let done = sqlx::query(statement)
        .bind(tenant)
        .bind(seq)
        .execute(s.db().writer())
        .await
        .expect("tamper");
    assert_eq!(done.rows_affected(), 1, "{statement}");
}

async fn create_policy(s: &TestServer, t: &TestTenant, body: Value) -> Value {
    let r = s.call("POST", "/api/v1/audit/policies", Some(&t.key), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn alerts(s: &TestServer, t: &TestTenant, query: &str) -> Vec<Value> {
    get_ok(s, t, &format!("/api/v1/audit/alerts?limit=500&{query}")).await["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

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
