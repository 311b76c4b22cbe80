//! Helpers shared by the tenancy and group end-to-end tests: users with keys made
//! through the API, audit-ledger checks straight from the database, records inserted
//! by SQL (the records API lives elsewhere), and table dumps for "nothing changed".

#![allow(dead_code)]

use plinth_tests::{TestServer, TestTenant};
use serde_json::{Value, json};
use sqlx::Row;

/// A user created through the API, with an API key of their own.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// User id.
    pub id: String,
    /// Their key's secret.
    pub key: String,
}

/// Create a user with `role` (as the tenant owner) and a key for them.
pub async fn user(s: &TestServer, t: &TestTenant, role: &str) -> TestUser {
    let email = format!("{}-{}@example.com", role, ulid::Ulid::new().to_string().to_lowercase());
    let r = s
        .call(
            "POST",
            "/api/v1/users",
            Some(&t.key),
            Some(json!({ "email": email, "name": format!("A {role}"), "role": role })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().expect("user id").to_string();
    let r = s
        .call(
            "POST",
            "/api/v1/keys",
            Some(&t.key),
            Some(json!({ "name": "test key", "user_id": id })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    TestUser {
        id,
        key: r.body["secret"].as_str().expect("secret").to_string(),
    }
}

/// A stored audit event, as the tests look at it.
#[derive(Debug, Clone)]
pub struct Event {
    /// Chain position.
    pub seq: i64,
    /// Action.
    pub action: String,
    /// Entity type.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: Option<String>,
    /// Parsed `before_state`.
    pub before: Value,
    /// Parsed `after_state`.
    pub after: Value,
    /// Acting user.
    pub actor_user: Option<String>,
}

/// Head of a tenant's audit chain (number of events).
pub async fn audit_seq(s: &TestServer, tenant: &str) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_events WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(s.db().reader())
        .await
        .expect("audit seq")
}

/// Events of a tenant after `seq`.
pub async fn events_after(s: &TestServer, tenant: &str, seq: i64) -> Vec<Event> {
    let rows = sqlx::query(
        "SELECT seq, action, entity_type, entity_id, before_state, after_state, actor_user FROM audit_events \
         WHERE tenant_id = $1 AND seq > $2 ORDER BY seq",
    )
    .bind(tenant)
    .bind(seq)
    .fetch_all(s.db().reader())
    .await
    .expect("audit events");
    let parse = |v: Option<String>| v.map_or(Value::Null, |t| serde_json::from_str(&t).expect("JSON state"));
    rows.iter()
        .map(|r| Event {
            seq: r.get("seq"),
            action: r.get("action"),
            entity_type: r.get("entity_type"),
            entity_id: r.get("entity_id"),
            before: parse(r.get("before_state")),
            after: parse(r.get("after_state")),
            actor_user: r.get("actor_user"),
        })
        .collect()
}

/// The one event appended since `seq` (panics unless exactly one), checked for its
/// action and entity.
pub async fn one_event(s: &TestServer, tenant: &str, seq: i64, action: &str, entity_type: &str) -> Event {
    let events = events_after(s, tenant, seq).await;
    assert_eq!(
        events.len(),
        1,
        "expected exactly one audit event ({action}), got {:?}",
        events.iter().map(|e| &e.action).collect::<Vec<_>>()
    );
    let e = events.into_iter().next().expect("one event");
    assert_eq!((e.action.as_str(), e.entity_type.as_str()), (action, entity_type));
    e
}

/// Insert a live record directly (the records API is another module's).
pub async fn record(s: &TestServer, tenant: &str, object: &str, owner: &str) -> String {
    let id = ulid::Ulid::new().to_string();
    let now = "2026-01-01T00:00:00.000Z";
    sqlx::query(
        "INSERT INTO records (tenant_id, id, object, owner_id, data, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, '{}', 1, $5, $5)",
    )
    .bind(tenant)
    .bind(&id)
    .bind(object)
    .bind(owner)
    .bind(now)
    .execute(s.db().writer())
    .await
    .expect("insert record");
    id
}

/// Every tenant-owned row of `tenant` in the tables this area writes, as text, so a
/// test can assert that a request changed nothing.
pub async fn dump(s: &TestServer, tenant: &str) -> Vec<String> {
    let queries = [
        "SELECT id || '|' || email || '|' || name || '|' || role || '|' || status || '|' || version FROM users \
         WHERE tenant_id = $1 ORDER BY id",
        "SELECT id || '|' || user_id || '|' || name || '|' || COALESCE(revoked_at, '-') || '|' || \
         COALESCE(expires_at, '-') FROM api_keys WHERE tenant_id = $1 ORDER BY id",
        "SELECT id || '|' || name || '|' || COALESCE(parent_id, '-') || '|' || version FROM groups \
         WHERE tenant_id = $1 ORDER BY id",
        "SELECT id || '|' || CAST(lft AS TEXT) || '|' || CAST(rgt AS TEXT) || '|' || CAST(depth AS TEXT) \
         FROM groups WHERE tenant_id = $1 ORDER BY id",
        "SELECT group_id || '|' || user_id || '|' || role FROM group_members WHERE tenant_id = $1 \
         ORDER BY group_id, user_id",
        "SELECT record_id || '|' || group_id || '|' || access FROM record_shares WHERE tenant_id = $1 \
         ORDER BY record_id, group_id",
        "SELECT id || '|' || name || '|' || status FROM tenants WHERE id = $1",
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE tenant_id = $1",
    ];
    let mut out = Vec::new();
    for q in queries {
        let rows: Vec<String> = sqlx::query_scalar(q)
            .bind(tenant)
            .fetch_all(s.db().reader())
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
        out.push(rows.join("\n"));
    }
    out
}

/// Every (ancestor, descendant, distance) pair of a tenant's groups — the closure —
/// as the stored labels imply it (a is d or an ancestor when d's `lft` lies in a's
/// interval), sorted.
pub async fn closure(s: &TestServer, tenant: &str) -> Vec<(String, String, i64)> {
    let rows = sqlx::query(
        "SELECT a.id AS ancestor_id, d.id AS descendant_id, d.depth - a.depth AS depth \
         FROM groups a JOIN groups d ON d.tenant_id = a.tenant_id AND d.lft >= a.lft AND d.lft <= a.rgt \
         WHERE a.tenant_id = $1 ORDER BY a.id, d.id",
    )
    .bind(tenant)
    .fetch_all(s.db().reader())
    .await
    .expect("closure");
    rows.iter()
        .map(|r| (r.get("ancestor_id"), r.get("descendant_id"), r.get("depth")))
        .collect()
}

/// The closure rows implied by the groups' parent links, computed the slow way.
pub async fn expected_closure(s: &TestServer, tenant: &str) -> Vec<(String, String, i64)> {
    let rows = sqlx::query("SELECT id, parent_id FROM groups WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(s.db().reader())
        .await
        .expect("groups");
    let parent: std::collections::HashMap<String, Option<String>> = rows
        .iter()
        .map(|r| (r.get::<String, _>("id"), r.get::<Option<String>, _>("parent_id")))
        .collect();
    let mut out = Vec::new();
    for id in parent.keys() {
        let (mut at, mut depth) = (Some(id.clone()), 0);
        while let Some(a) = at {
            out.push((a.clone(), id.clone(), depth));
            at = parent.get(&a).cloned().flatten();
            depth += 1;
            assert!(depth < 10_000, "cycle in parent links");
        }
    }
    out.sort();
    out
}

/// Assert the hierarchy labels are well formed and imply exactly the closure the
/// parent links do.
pub async fn assert_closure_consistent(s: &TestServer, tenant: &str) {
    let mut conn = s.db().reader().acquire().await.expect("connection");
    plinth_core::store::groups::verify_labels(&mut conn, tenant)
        .await
        .expect("well-formed labels");
    drop(conn);
    assert_eq!(closure(s, tenant).await, expected_closure(s, tenant).await);
}
