//! Tenancy and identity end to end, over HTTP on a real server (SQLite, or PostgreSQL
//! with `PLINTH_TEST_DATABASE_URL`): users, roles, API keys, operator endpoints, the
//! audit event of every mutation (read through the audit API), and the isolation
//! matrix for every endpoint of this area (tenant B's key on tenant A's ids → 404 and
//! nothing changes) plus the read-only matrix (every write → 403).

mod support;

use plinth_tests::{Client, TestServer, TestTenant, TestUser};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sqlx::Row;
use support::{audit_mark, dump, events_since, id, nothing_recorded_since, one_event, record, request};

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `data` of a list answer.
fn data(page: &Value) -> &Vec<Value> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data list in {page}"))
}

#[tokio::test]
async fn users_are_created_listed_and_patched_with_etags_and_audit() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;

    let mark = audit_mark(&t).await;
    let r = t
        .post(
            "/api/v1/users",
            json!({ "email": "  Ada@Example.COM ", "name": "  Ada Lovelace ", "role": "manager" }),
        )
        .await
        .expect(201);
    assert_eq!(r.header("etag"), Some("\"1\""));
    let created = r.json();
    assert_eq!(created["email"], "ada@example.com");
    assert_eq!(created["name"], "Ada Lovelace");
    assert_eq!(created["status"], "active");
    let ada = id(&created);
    let e = one_event(&t, mark, "user.create", "user").await;
    assert_eq!(e["entity_id"], ada.as_str());
    assert_eq!(e["before"], Value::Null);
    assert_eq!(e["after"]["role"], "manager");
    assert_eq!(e["actor"]["user"], t.owner_id.as_str());

    // Same email in another case: one user.
    t.post(
        "/api/v1/users",
        json!({ "email": "ADA@example.com", "name": "Ada 2", "role": "member" }),
    )
    .await
    .expect(409);

    // Every invalid field reported at once; unknown fields refused by name.
    let r = t
        .post(
            "/api/v1/users",
            json!({ "email": "not-an-email", "name": " ", "role": "boss" }),
        )
        .await
        .expect(422);
    assert_eq!(r.problem_fields(), ["email", "name", "role"]);
    let r = t
        .post(
            "/api/v1/users",
            json!({ "email": "x@example.com", "name": "X", "role": "member", "admin": true }),
        )
        .await
        .expect(400);
    assert!(r.body["detail"].as_str().unwrap().contains("admin"), "{}", r.text);
    t.post(
        "/api/v1/users",
        json!({ "email": "x@example.com", "name": "x".repeat(201), "role": "member" }),
    )
    .await
    .expect(422);

    // Pagination: 2 users (owner + Ada) in pages of 1.
    let page = t.get("/api/v1/users?limit=1").await.expect(200).json();
    assert_eq!(data(&page).len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let page = t
        .get(&format!("/api/v1/users?limit=1&cursor={cursor}"))
        .await
        .expect(200)
        .json();
    assert_eq!(data(&page).len(), 1);
    assert_eq!(page["next_cursor"], Value::Null);
    for bad in ["limit=0", "limit=501", "limit=x", "cursor=%2F..", "colour=red"] {
        let r = t.get(&format!("/api/v1/users?{bad}")).await;
        assert!(matches!(r.status, 400 | 422), "{bad}: {}", r.text);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }

    // PATCH with If-Match: stale → 412 and nothing changes; current → 200, version 2.
    let path = format!("/api/v1/users/{ada}");
    let mark = audit_mark(&t).await;
    t.patch(&path, json!({ "name": "Countess" }))
        .if_match(7)
        .await
        .expect(412);
    nothing_recorded_since(&t, mark).await;
    let r = t
        .patch(&path, json!({ "name": "Countess", "role": "member" }))
        .if_match(1)
        .await
        .expect(200);
    assert_eq!(r.header("etag"), Some("\"2\""));
    let e = one_event(&t, mark, "user.update", "user").await;
    assert_eq!(
        (e["before"]["name"].as_str(), e["after"]["name"].as_str()),
        (Some("Ada Lovelace"), Some("Countess"))
    );
    assert_eq!(
        (e["before"]["role"].as_str(), e["after"]["role"].as_str()),
        (Some("manager"), Some("member"))
    );

    // A PATCH that changes nothing bumps nothing and records nothing.
    let r = t.patch(&path, json!({ "name": "Countess" })).await.expect(200);
    assert_eq!(r.header("etag"), Some("\"2\""));
    one_event(&t, mark, "user.update", "user").await;

    let r = t.get(&path).await.expect(200);
    assert_eq!(r.header("etag"), Some("\"2\""));
    t.get("/api/v1/users/01NOSUCHUSER0000000000000").await.expect(404);
    s.stop().await;
}

#[tokio::test]
async fn roles_cannot_be_escalated() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let admin = s.user(&t, "Admin", "admin").await;
    let manager = s.user(&t, "Manager", "manager").await;
    let member = s.user(&t, "Member", "member").await;
    let other_admin = s.user(&t, "Other Admin", "admin").await.id;
    let before = dump(&s, &t.id).await;

    let new_user = |role: &str| json!({ "email": format!("{role}@new.example.com"), "name": "New", "role": role });
    // Admins cannot create owners or admins; managers and members create nobody.
    for (caller, role) in [
        (&admin, "owner"),
        (&admin, "admin"),
        (&manager, "member"),
        (&member, "read-only"),
    ] {
        caller.post("/api/v1/users", new_user(role)).await.expect(403);
    }
    // Admins cannot touch owners or other admins, nor promote to admin.
    for (target, body) in [
        (&t.owner_id, json!({ "name": "Renamed" })),
        (&t.owner_id, json!({ "status": "disabled" })),
        (&other_admin, json!({ "role": "member" })),
        (&member.id, json!({ "role": "admin" })),
        (&admin.id, json!({ "role": "owner" })),
    ] {
        admin.patch(&format!("/api/v1/users/{target}"), body).await.expect(403);
    }
    // Keys acting as someone more privileged cannot be minted.
    for (caller, target) in [(&admin, &t.owner_id), (&admin, &other_admin), (&member, &manager.id)] {
        caller
            .post("/api/v1/keys", json!({ "name": "k", "user_id": target }))
            .await
            .expect(403);
    }
    // Members cannot change users at all.
    member
        .patch(&format!("/api/v1/users/{}", member.id), json!({ "name": "Me" }))
        .await
        .expect(403);
    assert_eq!(dump(&s, &t.id).await, before, "refused requests changed nothing");

    // What admins may do: create and manage users below admin.
    admin.post("/api/v1/users", new_user("manager")).await.expect(201);
    admin
        .patch(&format!("/api/v1/users/{}", member.id), json!({ "role": "manager" }))
        .await
        .expect(200);
    // The promotion applies to the member's next request at once (no stale cache).
    let me = member.get("/api/v1/me").await.expect(200).json();
    assert_eq!(me["user"]["role"], "manager");
    member
        .post("/api/v1/groups", json!({ "name": "Now allowed" }))
        .await
        .expect(201);
    s.stop().await;
}

#[tokio::test]
async fn the_last_active_owner_cannot_be_demoted_or_disabled() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let me = format!("/api/v1/users/{}", t.owner_id);
    let mark = audit_mark(&t).await;
    for body in [json!({ "role": "admin" }), json!({ "status": "disabled" })] {
        t.patch(&me, body).await.expect_problem(409, "last-owner");
    }
    nothing_recorded_since(&t, mark).await;

    // With a second owner, the first may step down; then the second is the last.
    let second = s.user(&t, "Second Owner", "owner").await;
    let mark = audit_mark(&t).await;
    t.patch(&me, json!({ "role": "admin" })).await.expect(200);
    one_event(&t, mark, "user.update", "user").await;
    second
        .patch(&format!("/api/v1/users/{}", second.id), json!({ "status": "disabled" }))
        .await
        .expect_problem(409, "last-owner");

    // Disabling a user: audited as user.disable, their keys stop working at once.
    let member = s.user(&t, "Member", "member").await;
    member.get("/api/v1/me").await.expect(200);
    let mark = audit_mark(&t).await;
    let member_path = format!("/api/v1/users/{}", member.id);
    second
        .patch(&member_path, json!({ "status": "disabled" }))
        .await
        .expect(200);
    let e = one_event(&second, mark, "user.disable", "user").await;
    assert_eq!(
        (e["before"]["status"].as_str(), e["after"]["status"].as_str()),
        (Some("active"), Some("disabled"))
    );
    member.get("/api/v1/me").await.expect(401);
    second
        .patch(&member_path, json!({ "status": "asleep" }))
        .await
        .expect(422);
    s.stop().await;
}

#[tokio::test]
async fn api_keys_show_their_secret_once_store_only_its_hash_and_revoke_at_once() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let member = s.user(&t, "Member", "member").await;

    let mark = audit_mark(&t).await;
    let r = member
        .post(
            "/api/v1/keys",
            json!({ "name": "  laptop ", "api_version": "2026-11-01" }),
        )
        .await
        .expect(201);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(!r.text.contains("hash"), "no hash in the response: {}", r.text);
    let created = r.json();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("plk_") && secret.len() == 47, "{secret}");
    let key = &created["key"];
    let key_id = id(key);
    assert_eq!(key["name"], "laptop");
    assert_eq!(key["user_id"], member.id.as_str());
    assert_eq!(key["created_by"], member.id.as_str());
    assert_eq!(key["api_version"], "2026-11-01");
    assert!(secret.starts_with(key["prefix"].as_str().unwrap()));
    let e = one_event(&t, mark, "api_key.create", "api_key").await;
    assert_eq!(e["entity_id"], key_id.as_str());
    assert!(!e.to_string().contains(&secret[10..]), "no secret in the audit event");

    // Stored: only the SHA-256; no column holds the secret. (Read from storage: the
    // point is what the table holds.)
    let row = sqlx::query("SELECT * FROM api_keys WHERE tenant_id = $1 AND id = $2")
        .bind(&t.id)
        .bind(&key_id)
        .fetch_one(s.db().reader())
        .await
        .unwrap();
    let hash: String = row.get("secret_hash");
    assert_eq!(hash, sha256_hex(&secret));
    for col in ["id", "user_id", "name", "secret_hash", "prefix", "created_at"] {
        let v: String = row.get(col);
        assert!(!v.contains(&secret[10..]), "column {col} holds the secret");
    }

    // Never shown again.
    for path in [format!("/api/v1/keys/{key_id}"), "/api/v1/keys".to_string()] {
        let r = member.get(&path).await.expect(200);
        assert!(
            !r.text.contains(&secret) && !r.text.contains("hash") && !r.text.contains("secret"),
            "{}",
            r.text
        );
    }

    // Use it (and let the resolution be cached), then revoke: the next use is refused.
    let laptop = s.client(&secret);
    let me = laptop.get("/api/v1/me").await.expect(200).json();
    assert_eq!(me["key"]["id"], key_id.as_str());
    let mark = audit_mark(&t).await;
    let revoke = format!("/api/v1/keys/{key_id}/revoke");
    let revoked = member.request("POST", &revoke).await.expect(200).json();
    assert!(revoked["revoked_at"].is_string());
    let e = one_event(&t, mark, "api_key.revoke", "api_key").await;
    assert_eq!(
        (
            e["before"]["revoked_at"].is_null(),
            e["after"]["revoked_at"].is_string()
        ),
        (true, true)
    );
    let r = laptop.get("/api/v1/me").await.expect(401);
    assert!(r.body["detail"].as_str().unwrap().contains("revoked"), "{}", r.text);
    member.request("POST", &revoke).await.expect(409);

    // last_used_at is recorded (batched off the request path, every few seconds).
    let me = member.get("/api/v1/me").await.expect(200).json();
    let member_key = format!("/api/v1/keys/{}", me["key"]["id"].as_str().unwrap());
    let mut last_used = Value::Null;
    for _ in 0..40 {
        last_used = member.get(&member_key).await.expect(200).json()["last_used_at"].clone();
        if last_used.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(last_used.is_string(), "last_used_at was never recorded");

    // Bad input.
    for (body, field) in [
        (json!({ "name": "" }), "name"),
        (
            json!({ "name": "k", "expires_at": "2001-01-01T00:00:00Z" }),
            "expires_at",
        ),
        (json!({ "name": "k", "expires_at": "soon" }), "expires_at"),
        (json!({ "name": "k", "api_version": "latest" }), "api_version"),
    ] {
        let r = member.post("/api/v1/keys", body).await.expect(422);
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.text);
    }
    t.post("/api/v1/keys", json!({ "name": "k", "user_id": "01NOSUCHUSER" }))
        .await
        .expect(404);
    s.stop().await;
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let expiry = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let expiry = expiry.format(&time::format_description::well_known::Rfc3339).unwrap();
    let created = t
        .post("/api/v1/keys", json!({ "name": "short", "expires_at": expiry }))
        .await
        .expect(201)
        .json();
    let short = s.client(created["secret"].as_str().unwrap());
    short.get("/api/v1/me").await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let r = short.get("/api/v1/me").await.expect(401);
    assert!(r.body["detail"].as_str().unwrap().contains("expired"), "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn key_listing_and_revocation_follow_roles() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let admin = s.user(&t, "Admin", "admin").await;
    let m1 = s.user(&t, "Member One", "member").await;
    let m2 = s.user(&t, "Member Two", "member").await;
    let keys_of = |user: &str| format!("/api/v1/keys?user_id={user}");

    // Members see only their own keys; admins see all (and may filter by user).
    let page = m1.get("/api/v1/keys").await.expect(200).json();
    let owners: Vec<&str> = data(&page).iter().map(|k| k["user_id"].as_str().unwrap()).collect();
    assert_eq!(owners, [m1.id.as_str()]);
    m1.get(&keys_of(&m2.id)).await.expect(403);
    let page = admin.get("/api/v1/keys").await.expect(200).json();
    assert_eq!(data(&page).len(), 4, "owner, admin, m1, m2");
    let page = admin.get(&keys_of(&m2.id)).await.expect(200).json();
    assert_eq!(data(&page).len(), 1);
    let m2_key = id(&data(&page)[0]);

    // Another member's key is invisible to m1: not found, not revoked.
    m1.get(&format!("/api/v1/keys/{m2_key}")).await.expect(404);
    let revoke = format!("/api/v1/keys/{m2_key}/revoke");
    m1.request("POST", &revoke).await.expect(404);
    m2.get("/api/v1/me").await.expect(200);
    // An admin revokes it.
    admin.request("POST", &revoke).await.expect(200);
    m2.get("/api/v1/me").await.expect(401);
    // But not the owner's.
    let page = admin.get(&keys_of(&t.owner_id)).await.expect(200).json();
    let owner_key = id(&data(&page)[0]);
    admin
        .request("POST", &format!("/api/v1/keys/{owner_key}/revoke"))
        .await
        .expect(403);
    s.stop().await;
}

#[tokio::test]
async fn me_describes_the_caller() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let me = t.get("/api/v1/me").await.expect(200).json();
    assert_eq!(me["user"]["id"], t.owner_id.as_str());
    assert_eq!(me["user"]["role"], "owner");
    assert_eq!(me["tenant"]["id"], t.id.as_str());
    assert!(me["key"]["id"].is_string());
    s.anonymous().get("/api/v1/me").await.expect(401);
    s.stop().await;
}

#[tokio::test]
async fn operators_create_list_and_suspend_tenants() {
    let s = TestServer::start().await;
    let op = s.operator().await;
    let created = op
        .post(
            "/api/v1/operator/tenants",
            json!({ "name": " Globex ", "owner_email": "Hank@Globex.example", "owner_name": "Hank" }),
        )
        .await
        .expect(201)
        .json();
    let tenant = id(&created["tenant"]);
    assert_eq!(created["tenant"]["name"], "Globex");
    assert_eq!(created["owner"]["email"], "hank@globex.example");
    assert_eq!(created["owner"]["role"], "owner");
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("plk_"));
    let hank = s.client(secret);
    let actions: Vec<Value> = hank
        .audit_events(&[])
        .await
        .into_iter()
        .map(|e| e["action"].clone())
        .collect();
    assert_eq!(actions, ["tenant.create", "user.create", "api_key.create"]);

    let me = hank.get("/api/v1/me").await.expect(200).json();
    assert_eq!(me["tenant"]["id"], tenant.as_str());

    // Validation and auth.
    let r = op
        .post(
            "/api/v1/operator/tenants",
            json!({ "name": "", "owner_email": "nope", "owner_name": "X" }),
        )
        .await
        .expect(422);
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 2, "{}", r.text);
    for not_an_operator in [s.anonymous(), hank.clone(), s.client("plo_forged")] {
        not_an_operator.get("/api/v1/operator/tenants").await.expect(401);
    }

    // Listing, paginated; reading one.
    let other = s.tenant("Initech").await;
    let page = op.get("/api/v1/operator/tenants?limit=1").await.expect(200).json();
    assert_eq!(data(&page).len(), 1);
    let next = page["next_cursor"].as_str().unwrap();
    let page = op
        .get(&format!("/api/v1/operator/tenants?limit=1&cursor={next}"))
        .await
        .expect(200)
        .json();
    assert_eq!(page["data"][0]["id"], other.id.as_str());
    let path = format!("/api/v1/operator/tenants/{tenant}");
    let globex = op.get(&path).await.expect(200).json();
    assert_eq!(globex["status"], "active");
    op.get("/api/v1/operator/tenants/01NOSUCHTENANT").await.expect(404);

    // Suspension: the tenant's keys get 401 at once; other tenants are unaffected.
    let mark = audit_mark(&hank).await;
    let suspended = op
        .patch(&path, json!({ "status": "suspended" }))
        .await
        .expect(200)
        .json();
    assert_eq!(suspended["status"], "suspended");
    let r = hank.get("/api/v1/me").await.expect(401);
    assert!(r.body["detail"].as_str().unwrap().contains("suspended"), "{}", r.text);
    other.get("/api/v1/me").await.expect(200);
    let resumed = op
        .patch(&path, json!({ "status": "active", "name": "Globex 2" }))
        .await
        .expect(200)
        .json();
    assert_eq!(resumed["name"], "Globex 2");
    hank.get("/api/v1/me").await.expect(200);
    // Each change is one tenant.update event (read once the owner may read again).
    let events = events_since(&hank, mark).await;
    let changes: Vec<_> = events
        .iter()
        .map(|e| {
            [
                &e["action"],
                &e["entity_type"],
                &e["before"]["status"],
                &e["after"]["status"],
            ]
            .map(Value::as_str)
        })
        .collect();
    assert_eq!(
        changes,
        [
            ["tenant.update", "tenant", "active", "suspended"].map(Some),
            ["tenant.update", "tenant", "suspended", "active"].map(Some),
        ]
    );
    op.patch(&path, json!({ "status": "deleted" })).await.expect(422);
    op.patch(&path, json!({ "plan": "gold" })).await.expect(400);
    s.stop().await;
}

/// Tenant A: a member in group Sales (with a child group EMEA), the member's key, a
/// read-only user, and an account of the member's shared with Sales — the ids the
/// matrices aim at.
struct Fixture {
    a: TestTenant,
    member: TestUser,
    reader: TestUser,
    key_id: String,
    group: String,
    child: String,
    record: String,
}

async fn fixture(s: &TestServer) -> Fixture {
    let a = s.tenant("Tenant A").await;
    let member = s.user(&a, "Member", "member").await;
    let reader = s.user(&a, "Reader", "read-only").await;
    let key_id = id(&member.get("/api/v1/me").await.expect(200).json()["key"]);
    let group = id(&a
        .post("/api/v1/groups", json!({ "name": "Sales" }))
        .await
        .expect(201)
        .json());
    let child = a
        .post("/api/v1/groups", json!({ "name": "EMEA", "parent_id": group }))
        .await
        .expect(201)
        .json();
    let child = id(&child);
    a.post(
        &format!("/api/v1/groups/{group}/members"),
        json!({ "user_id": member.id }),
    )
    .await
    .expect(201);
    let record = record(
        &a,
        "account",
        json!({ "fields": { "name": "Initrode" }, "owner_id": member.id }),
    )
    .await;
    a.post(
        &format!("/api/v1/records/account/{record}/shares"),
        json!({ "group_id": group, "access": "read" }),
    )
    .await
    .expect(201);
    Fixture {
        a,
        member,
        reader,
        key_id,
        group,
        child,
        record,
    }
}

impl Fixture {
    fn fill(&self, template: &str) -> String {
        template
            .replace("{user}", &self.member.id)
            .replace("{key}", &self.key_id)
            .replace("{group}", &self.group)
            .replace("{child}", &self.child)
            .replace("{record}", &self.record)
    }

    fn fill_body(&self, body: &Option<Value>) -> Option<Value> {
        body.as_ref()
            .map(|b| serde_json::from_str(&self.fill(&b.to_string())).unwrap())
    }
}

/// Every endpoint of this area: (method, path template, body). Placeholders name
/// tenant A's ids. (The OpenAPI-driven matrix of every endpoint is `isolation.rs`.)
fn endpoints() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/api/v1/users/{user}", None),
        ("PATCH", "/api/v1/users/{user}", Some(json!({ "name": "Pwned" }))),
        ("GET", "/api/v1/users/{user}/groups", None),
        ("GET", "/api/v1/keys/{key}", None),
        ("GET", "/api/v1/keys?user_id={user}", None),
        (
            "POST",
            "/api/v1/keys",
            Some(json!({ "name": "stolen", "user_id": "{user}" })),
        ),
        ("POST", "/api/v1/keys/{key}/revoke", None),
        ("GET", "/api/v1/groups/{group}", None),
        ("GET", "/api/v1/groups?parent_id={group}", None),
        ("PATCH", "/api/v1/groups/{child}", Some(json!({ "name": "Pwned" }))),
        ("PATCH", "/api/v1/groups/{child}", Some(json!({ "parent_id": null }))),
        ("DELETE", "/api/v1/groups/{child}", None),
        (
            "POST",
            "/api/v1/groups",
            Some(json!({ "name": "Intruder", "parent_id": "{group}" })),
        ),
        ("GET", "/api/v1/groups/{child}/ancestors", None),
        ("GET", "/api/v1/groups/{group}/descendants", None),
        ("GET", "/api/v1/groups/{group}/tree", None),
        ("GET", "/api/v1/groups/{group}/members", None),
        (
            "POST",
            "/api/v1/groups/{group}/members",
            Some(json!({ "user_id": "{user}" })),
        ),
        ("DELETE", "/api/v1/groups/{group}/members/{user}", None),
        ("GET", "/api/v1/records/account/{record}/shares", None),
        (
            "POST",
            "/api/v1/records/account/{record}/shares",
            Some(json!({ "group_id": "{child}", "access": "read" })),
        ),
        ("DELETE", "/api/v1/records/account/{record}/shares/{group}", None),
    ]
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_and_nothing_changes() {
    let s = TestServer::start().await;
    let f = fixture(&s).await;
    let b = s.tenant("Tenant B").await;
    let b_member = s.user(&b, "Member", "member").await;
    let before = dump(&s, &f.a.id).await;
    let a_ids = [&f.member.id, &f.key_id, &f.group, &f.child, &f.record];
    // Tenant B's owner reaches the handler and is told "not found"; B's member may be
    // stopped earlier by role (403), which reveals nothing either.
    let callers: [(&Client, &[u16]); 2] = [(&b, &[404]), (&b_member, &[403, 404])];
    for (method, template, body) in endpoints() {
        let path = f.fill(template);
        let body = f.fill_body(&body);
        let sent = format!("{path} {}", body.as_ref().map(Value::to_string).unwrap_or_default());
        for (caller, allowed) in callers {
            let r = request(caller, method, &path, body.clone()).await;
            assert!(
                allowed.contains(&r.status),
                "{method} {template} with tenant B's key: {} {}",
                r.status,
                r.text
            );
            // Nothing of A's beyond what the caller sent (a 404 may echo the id asked for).
            for secret in a_ids.iter().map(|i| i.as_str()).chain(["Sales", "EMEA"]) {
                if !sent.contains(secret) {
                    assert!(
                        !r.text.contains(secret),
                        "{method} {template} leaked {secret}: {}",
                        r.text
                    );
                }
            }
        }
    }
    // Tenant-wide lists show B's own data only.
    for path in [
        "/api/v1/users",
        "/api/v1/keys",
        "/api/v1/groups",
        "/api/v1/groups?root=true",
    ] {
        let r = b.get(path).await.expect(200);
        for id in a_ids {
            assert!(!r.text.contains(id.as_str()), "{path} leaked {id}");
        }
    }
    assert_eq!(dump(&s, &f.a.id).await, before, "tenant B changed tenant A");
    s.stop().await;
}

#[tokio::test]
async fn read_only_users_cannot_write_anything() {
    let s = TestServer::start().await;
    let f = fixture(&s).await;
    let reader = &f.reader;
    // An account the read-only user owns (made before the "nothing changed" snapshot).
    let shared = record(
        &f.a,
        "account",
        json!({ "fields": { "name": "Reader's" }, "owner_id": reader.id }),
    )
    .await;
    let own_key = id(&reader.get("/api/v1/me").await.expect(200).json()["key"]);
    let before = dump(&s, &f.a.id).await;
    let mut writes = 0;
    for (method, template, body) in endpoints() {
        let r = request(reader, method, &f.fill(template), f.fill_body(&body)).await;
        if method == "GET" {
            continue;
        }
        writes += 1;
        // Refused by role before anything is looked up.
        assert_eq!(r.status, 403, "{method} {template}: {}", r.text);
    }
    // Their own things, too.
    let own = [
        ("POST", "/api/v1/keys".to_string(), Some(json!({ "name": "mine" }))),
        (
            "PATCH",
            format!("/api/v1/users/{}", reader.id),
            Some(json!({ "name": "Me" })),
        ),
        ("POST", "/api/v1/groups".to_string(), Some(json!({ "name": "Mine" }))),
        (
            "POST",
            "/api/v1/users".to_string(),
            Some(json!({ "email": "r@x.example", "name": "R", "role": "read-only" })),
        ),
        ("POST", format!("/api/v1/keys/{own_key}/revoke"), None),
    ];
    for (method, path, body) in own {
        request(reader, method, &path, body).await.expect(403);
        writes += 1;
    }
    let r = reader
        .post(
            &format!("/api/v1/records/account/{shared}/shares"),
            json!({ "group_id": f.group, "access": "read" }),
        )
        .await;
    assert_eq!(r.status, 403, "read-only owners of a record cannot share it either");
    assert!(writes >= 16);
    assert_eq!(dump(&s, &f.a.id).await, before);
    s.stop().await;
}

/// How many `object` records `client` sees.
async fn count(client: &Client, object: &str) -> i64 {
    let r = client
        .post(
            &format!("/api/v1/records/{object}/aggregate"),
            json!({ "measures": [{ "fn": "count" }] }),
        )
        .await
        .expect(200)
        .json();
    r["rows"][0]["count"].as_i64().unwrap()
}

#[tokio::test]
async fn the_demo_tenant_is_created_through_audited_services() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let info = plinth_host::demo::ensure(s.db(), dir.path()).await.unwrap();
    assert_eq!(info.users.len(), 5);
    for (role, _, key) in &info.users {
        let me = s.client(key).get("/api/v1/me").await.expect(200).json();
        assert_eq!(me["user"]["role"], role.as_str());
    }
    let as_role = |role: &str| s.client(&info.users.iter().find(|(r, _, _)| r == role).unwrap().2);
    let owner = as_role("owner");
    for action in ["user.create", "api_key.create"] {
        assert_eq!(owner.audit_events(&[("action", action)]).await.len(), 5, "{action}");
    }
    // The data set, as each role sees it through REST: the owner sees everything;
    // the read-only user is in the root region and sees everything too; the manager
    // sees EMEA (below her group) and what she owns; the member sees DACH and his own.
    assert!(count(&owner, "account").await >= 200);
    assert!(count(&owner, "contact").await >= 1_000);
    assert!(count(&owner, "opportunity").await >= 2_000);
    let all = count(&owner, "opportunity").await;
    assert_eq!(count(&as_role("read-only"), "opportunity").await, all);
    let manager = count(&as_role("manager"), "opportunity").await;
    let member = as_role("member");
    let member_sees = count(&member, "opportunity").await;
    assert!(
        0 < member_sees && member_sees < manager && manager < all,
        "{member_sees} {manager} {all}"
    );
    // Outside DACH the member sees only the accounts he owns.
    let member_id = id(&member.get("/api/v1/me").await.expect(200).json()["user"]);
    let page = member
        .get("/api/v1/records/account?filter[country]=US&limit=200")
        .await
        .expect(200)
        .json();
    let us = data(&page);
    assert!(!us.is_empty());
    assert!(us.iter().all(|a| a["owner_id"] == member_id.as_str()), "{page}");
    // A second start reuses the tenant rather than making another.
    let again = plinth_host::demo::ensure(s.db(), dir.path()).await.unwrap();
    assert_eq!(again.tenant_id, info.tenant_id);
    s.stop().await;
}
