//! What the tenancy, group and isolation specs share: the audit trail read through the
//! audit API ("exactly one event since this mark"), records made through the records
//! API, requests built from a table row, and a dump of a tenant's stored rows for
//! "nothing changed".

#![allow(dead_code)]

use plinth_tests::{Call, Client, TestServer};
use serde_json::Value;

/// The `id` of a created thing.
pub fn id(created: &Value) -> String {
    created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {created}"))
        .to_string()
}

/// `method path`, with `body` as JSON when there is one (a row of a request table).
pub fn request(client: &Client, method: &str, path: &str, body: Option<Value>) -> Call {
    let call = client.request(method, path);
    match body {
        Some(body) => call.json(body),
        None => call,
    }
}

/// Create a record of `object` as `by` (`body`: `{fields, owner_id?}`); its id.
pub async fn record(by: &Client, object: &str, body: Value) -> String {
    id(&by
        .post(&format!("/api/v1/records/{object}"), body)
        .await
        .expect(201)
        .json())
}

/// The position of the tenant's newest audit event (0 when there is none): a mark to
/// look for what a request records.
pub async fn audit_mark(admin: &Client) -> i64 {
    admin
        .audit_events(&[])
        .await
        .last()
        .map_or(0, |e| e["seq"].as_i64().expect("seq"))
}

/// The audit events recorded after `mark`, oldest first.
pub async fn events_since(admin: &Client, mark: i64) -> Vec<Value> {
    admin
        .audit_events(&[])
        .await
        .into_iter()
        .filter(|e| e["seq"].as_i64().expect("seq") > mark)
        .collect()
}

/// The one audit event recorded after `mark` (fails unless there is exactly one),
/// checked for its action and entity type.
pub async fn one_event(admin: &Client, mark: i64, action: &str, entity_type: &str) -> Value {
    let events = events_since(admin, mark).await;
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap_or("?")).collect();
    assert_eq!(actions, [action], "expected exactly one audit event");
    let event = events[0].clone();
    assert_eq!(event["entity_type"], entity_type, "{event}");
    event
}

/// Fail unless the tenant's audit trail is where it was at `mark`.
pub async fn nothing_recorded_since(admin: &Client, mark: i64) {
    let actions: Vec<Value> = events_since(admin, mark)
        .await
        .into_iter()
        .map(|e| e["action"].clone())
        .collect();
    assert_eq!(actions, [] as [Value; 0], "expected no audit events");
}

/// Every tenant-owned row of `tenant` in the tables this area writes, as text, so a
/// test can assert that a request changed nothing. (Read from storage on purpose:
/// "nothing changed" means no row changed, whatever the API would show.)
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
    rows(s, tenant, &queries).await
}

/// The text rows each of `queries` (one `$1`: the tenant) returns, one string a query.
pub async fn rows(s: &TestServer, tenant: &str, queries: &[&str]) -> Vec<String> {
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
