//! Tenancy and identity end to end, over HTTP on a real server (SQLite, or PostgreSQL
//! with `PLINTH_TEST_DATABASE_URL`): users, roles, API keys, operator endpoints, the
//! audit event of every mutation, and the isolation matrix for every endpoint of this
//! area (tenant B's key on tenant A's ids → 404 and nothing changes) plus the
//! read-only matrix (every write → 403).

mod support;

use plinth_tests::{TestServer, TestTenant};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sqlx::Row;
use support::{TestUser, audit_seq, dump, events_after, one_event, record, user};

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn users_are_created_listed_and_patched_with_etags_and_audit() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;

    let seq = audit_seq(&s, &t.id).await;
    let r = s
        .call(
            "POST",
            "/api/v1/users",
            Some(&t.key),
            Some(json!({ "email": "  Ada@Example.COM ", "name": "  Ada Lovelace ", "role": "manager" })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["email"], "ada@example.com");
    assert_eq!(r.body["name"], "Ada Lovelace");
    assert_eq!(r.body["status"], "active");
    let ada = r.body["id"].as_str().unwrap().to_string();
    let e = one_event(&s, &t.id, seq, "user.create", "user").await;
    assert_eq!(e.entity_id.as_deref(), Some(ada.as_str()));
    assert_eq!(e.before, Value::Null);
    assert_eq!(e.after["role"], "manager");
    assert_eq!(e.actor_user.as_deref(), Some(t.owner_id.as_str()));

    // Same email in another case: one user.
    let r = s
        .call(
            "POST",
            "/api/v1/users",
            Some(&t.key),
            Some(json!({ "email": "ADA@example.com", "name": "Ada 2", "role": "member" })),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);

    // Every invalid field reported at once; unknown fields refused by name.
    let r = s
        .call(
            "POST",
            "/api/v1/users",
            Some(&t.key),
            Some(json!({ "email": "not-an-email", "name": " ", "role": "boss" })),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "name", "role"]);
    let r = s
        .call(
            "POST",
            "/api/v1/users",
            Some(&t.key),
            Some(json!({ "email": "x@example.com", "name": "X", "role": "member", "admin": true })),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body["detail"].as_str().unwrap().contains("admin"), "{}", r.text);
    let r = s
        .call(
            "POST",
            "/api/v1/users",
            Some(&t.key),
            Some(json!({ "email": "x@example.com", "name": "x".repeat(201), "role": "member" })),
        )
        .await;
    assert_eq!(r.status, 422);

    // Pagination: 2 users (owner + Ada) in pages of 1.
    let r = s.call("GET", "/api/v1/users?limit=1", Some(&t.key), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    let cursor = r.body["next_cursor"].as_str().unwrap().to_string();
    let r = s
        .call(
            "GET",
            &format!("/api/v1/users?limit=1&cursor={cursor}"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["next_cursor"], Value::Null);
    for bad in ["limit=0", "limit=501", "limit=x", "cursor=%2F..", "colour=red"] {
        let r = s.call("GET", &format!("/api/v1/users?{bad}"), Some(&t.key), None).await;
        assert!(matches!(r.status, 400 | 422), "{bad}: {}", r.text);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }

    // PATCH with If-Match: stale → 412 and nothing changes; current → 200, version 2.
    let path = format!("/api/v1/users/{ada}");
    let seq = audit_seq(&s, &t.id).await;
    let stale = s
        .http
        .patch(format!("{}{path}", s.url))
        .bearer_auth(&t.key)
        .header("If-Match", "\"7\"")
        .json(&json!({ "name": "Countess" }))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(audit_seq(&s, &t.id).await, seq);
    let ok = s
        .http
        .patch(format!("{}{path}", s.url))
        .bearer_auth(&t.key)
        .header("If-Match", "\"1\"")
        .json(&json!({ "name": "Countess", "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["etag"], "\"2\"");
    let e = one_event(&s, &t.id, seq, "user.update", "user").await;
    assert_eq!(
        (e.before["name"].as_str(), e.after["name"].as_str()),
        (Some("Ada Lovelace"), Some("Countess"))
    );
    assert_eq!(
        (e.before["role"].as_str(), e.after["role"].as_str()),
        (Some("manager"), Some("member"))
    );

    // A PATCH that changes nothing bumps nothing and records nothing.
    let r = s
        .call("PATCH", &path, Some(&t.key), Some(json!({ "name": "Countess" })))
        .await;
    assert_eq!((r.status, r.header("etag")), (200, Some("\"2\"")));
    assert_eq!(audit_seq(&s, &t.id).await, seq + 1);

    let r = s.call("GET", &path, Some(&t.key), None).await;
    assert_eq!((r.status, r.header("etag")), (200, Some("\"2\"")));
    let r = s
        .call("GET", "/api/v1/users/01NOSUCHUSER0000000000000", Some(&t.key), None)
        .await;
    assert_eq!(r.status, 404);
    s.stop().await;
}

#[tokio::test]
async fn roles_cannot_be_escalated() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let admin = user(&s, &t, "admin").await;
    let manager = user(&s, &t, "manager").await;
    let member = user(&s, &t, "member").await;
    let other_admin = user(&s, &t, "admin").await.id;
    let before = dump(&s, &t.id).await;

    let new_user = |role: &str| json!({ "email": format!("{role}@new.example.com"), "name": "New", "role": role });
    // Admins cannot create owners or admins; managers and members create nobody.
    for (key, role) in [
        (&admin.key, "owner"),
        (&admin.key, "admin"),
        (&manager.key, "member"),
        (&member.key, "read-only"),
    ] {
        let r = s.call("POST", "/api/v1/users", Some(key), Some(new_user(role))).await;
        assert_eq!(r.status, 403, "{role}: {}", r.text);
    }
    // Admins cannot touch owners or other admins, nor promote to admin.
    for (target, body) in [
        (&t.owner_id, json!({ "name": "Renamed" })),
        (&t.owner_id, json!({ "status": "disabled" })),
        (&other_admin, json!({ "role": "member" })),
        (&member.id, json!({ "role": "admin" })),
        (&admin.id, json!({ "role": "owner" })),
    ] {
        let r = s
            .call(
                "PATCH",
                &format!("/api/v1/users/{target}"),
                Some(&admin.key),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 403, "{body}: {}", r.text);
    }
    // Keys acting as someone more privileged cannot be minted.
    for (key, target) in [
        (&admin.key, &t.owner_id),
        (&admin.key, &other_admin),
        (&member.key, &manager.id),
    ] {
        let r = s
            .call(
                "POST",
                "/api/v1/keys",
                Some(key),
                Some(json!({ "name": "k", "user_id": target })),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    // Members cannot change users at all.
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/users/{}", member.id),
            Some(&member.key),
            Some(json!({ "name": "Me" })),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(dump(&s, &t.id).await, before, "refused requests changed nothing");

    // What admins may do: create and manage users below admin.
    let r = s
        .call("POST", "/api/v1/users", Some(&admin.key), Some(new_user("manager")))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/users/{}", member.id),
            Some(&admin.key),
            Some(json!({ "role": "manager" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The promotion applies to the member's next request at once (no stale cache).
    let r = s.call("GET", "/api/v1/me", Some(&member.key), None).await;
    assert_eq!(r.body["user"]["role"], "manager");
    let r = s
        .call(
            "POST",
            "/api/v1/groups",
            Some(&member.key),
            Some(json!({ "name": "Now allowed" })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn the_last_active_owner_cannot_be_demoted_or_disabled() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let me = format!("/api/v1/users/{}", t.owner_id);
    let seq = audit_seq(&s, &t.id).await;
    for body in [json!({ "role": "admin" }), json!({ "status": "disabled" })] {
        let r = s.call("PATCH", &me, Some(&t.key), Some(body)).await;
        assert_eq!(r.status, 409, "{}", r.text);
        assert_eq!(r.body["type"], "https://plinth.dev/problems/last-owner");
    }
    assert_eq!(audit_seq(&s, &t.id).await, seq);

    // With a second owner, the first may step down; then the second is the last.
    let second = user(&s, &t, "owner").await;
    let seq = audit_seq(&s, &t.id).await;
    let r = s
        .call("PATCH", &me, Some(&t.key), Some(json!({ "role": "admin" })))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    one_event(&s, &t.id, seq, "user.update", "user").await;
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/users/{}", second.id),
            Some(&second.key),
            Some(json!({ "status": "disabled" })),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);

    // Disabling a user: audited as user.disable, their keys stop working at once.
    let member = user(&s, &t, "member").await;
    assert_eq!(s.call("GET", "/api/v1/me", Some(&member.key), None).await.status, 200);
    let seq = audit_seq(&s, &t.id).await;
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/users/{}", member.id),
            Some(&second.key),
            Some(json!({ "status": "disabled" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = one_event(&s, &t.id, seq, "user.disable", "user").await;
    assert_eq!(
        (e.before["status"].as_str(), e.after["status"].as_str()),
        (Some("active"), Some("disabled"))
    );
    let r = s.call("GET", "/api/v1/me", Some(&member.key), None).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/users/{}", member.id),
            Some(&second.key),
            Some(json!({ "status": "asleep" })),
        )
        .await;
    assert_eq!(r.status, 422);
    s.stop().await;
}

#[tokio::test]
async fn api_keys_show_their_secret_once_store_only_its_hash_and_revoke_at_once() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let member = user(&s, &t, "member").await;

    let seq = audit_seq(&s, &t.id).await;
    let r = s
        .call(
            "POST",
            "/api/v1/keys",
            Some(&member.key),
            Some(json!({ "name": "  laptop ", "api_version": "2026-11-01" })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let secret = r.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("plk_") && secret.len() == 47, "{secret}");
    let key = r.body["key"].clone();
    let key_id = key["id"].as_str().unwrap().to_string();
    assert_eq!(key["name"], "laptop");
    assert_eq!(key["user_id"], member.id.as_str());
    assert_eq!(key["created_by"], member.id.as_str());
    assert_eq!(key["api_version"], "2026-11-01");
    assert!(secret.starts_with(key["prefix"].as_str().unwrap()));
    assert!(!r.text.contains("hash"), "no hash in the response: {}", r.text);
    let e = one_event(&s, &t.id, seq, "api_key.create", "api_key").await;
    assert_eq!(e.entity_id.as_deref(), Some(key_id.as_str()));
    assert!(
        !e.after.to_string().contains(&secret[10..]),
        "no secret in the audit event"
    );

    // Stored: only the SHA-256; no column holds the secret.
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
        let r = s.call("GET", &path, Some(&member.key), None).await;
        assert_eq!(r.status, 200);
        assert!(
            !r.text.contains(&secret) && !r.text.contains("hash") && !r.text.contains("secret"),
            "{}",
            r.text
        );
    }

    // Use it (and let the resolution be cached), then revoke: the next use is refused.
    let r = s.call("GET", "/api/v1/me", Some(&secret), None).await;
    assert_eq!((r.status, r.body["key"]["id"].as_str()), (200, Some(key_id.as_str())));
    let seq = audit_seq(&s, &t.id).await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/keys/{key_id}/revoke"),
            Some(&member.key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["revoked_at"].is_string());
    let e = one_event(&s, &t.id, seq, "api_key.revoke", "api_key").await;
    assert_eq!(
        (e.before["revoked_at"].is_null(), e.after["revoked_at"].is_string()),
        (true, true)
    );
    let r = s.call("GET", "/api/v1/me", Some(&secret), None).await;
    assert_eq!(r.status, 401);
    assert!(r.body["detail"].as_str().unwrap().contains("revoked"), "{}", r.text);
    let r = s
        .call(
            "POST",
            &format!("/api/v1/keys/{key_id}/revoke"),
            Some(&member.key),
            None,
        )
        .await;
    assert_eq!(r.status, 409);

    // last_used_at is recorded (batched off the request path, every few seconds).
    let used = s.call("GET", "/api/v1/me", Some(&member.key), None).await;
    let member_key_id = used.body["key"]["id"].as_str().unwrap().to_string();
    let mut last_used = Value::Null;
    for _ in 0..40 {
        let r = s
            .call("GET", &format!("/api/v1/keys/{member_key_id}"), Some(&member.key), None)
            .await;
        last_used = r.body["last_used_at"].clone();
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
        let r = s.call("POST", "/api/v1/keys", Some(&member.key), Some(body)).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(r.body["errors"][0]["field"], field);
    }
    let r = s
        .call(
            "POST",
            "/api/v1/keys",
            Some(&t.key),
            Some(json!({ "name": "k", "user_id": "01NOSUCHUSER" })),
        )
        .await;
    assert_eq!(r.status, 404);
    s.stop().await;
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let expiry = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let expiry = expiry.format(&time::format_description::well_known::Rfc3339).unwrap();
    let r = s
        .call(
            "POST",
            "/api/v1/keys",
            Some(&t.key),
            Some(json!({ "name": "short", "expires_at": expiry })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    assert_eq!(s.call("GET", "/api/v1/me", Some(&secret), None).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let r = s.call("GET", "/api/v1/me", Some(&secret), None).await;
    assert_eq!(r.status, 401);
    assert!(r.body["detail"].as_str().unwrap().contains("expired"), "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn key_listing_and_revocation_follow_roles() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let admin = user(&s, &t, "admin").await;
    let m1 = user(&s, &t, "member").await;
    let m2 = user(&s, &t, "member").await;

    // Members see only their own keys; admins see all (and may filter by user).
    let r = s.call("GET", "/api/v1/keys", Some(&m1.key), None).await;
    let owners: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(owners, [m1.id.as_str()]);
    let r = s
        .call("GET", &format!("/api/v1/keys?user_id={}", m2.id), Some(&m1.key), None)
        .await;
    assert_eq!(r.status, 403);
    let r = s.call("GET", "/api/v1/keys", Some(&admin.key), None).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 4, "owner, admin, m1, m2");
    let r = s
        .call(
            "GET",
            &format!("/api/v1/keys?user_id={}", m2.id),
            Some(&admin.key),
            None,
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    let m2_key = r.body["data"][0]["id"].as_str().unwrap().to_string();

    // Another member's key is invisible to m1: not found, not revoked.
    let r = s
        .call("GET", &format!("/api/v1/keys/{m2_key}"), Some(&m1.key), None)
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call("POST", &format!("/api/v1/keys/{m2_key}/revoke"), Some(&m1.key), None)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(s.call("GET", "/api/v1/me", Some(&m2.key), None).await.status, 200);
    // An admin revokes it.
    let r = s
        .call("POST", &format!("/api/v1/keys/{m2_key}/revoke"), Some(&admin.key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.call("GET", "/api/v1/me", Some(&m2.key), None).await.status, 401);
    // But not the owner's.
    let r = s
        .call(
            "GET",
            &format!("/api/v1/keys?user_id={}", t.owner_id),
            Some(&admin.key),
            None,
        )
        .await;
    let owner_key = r.body["data"][0]["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            "POST",
            &format!("/api/v1/keys/{owner_key}/revoke"),
            Some(&admin.key),
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    s.stop().await;
}

#[tokio::test]
async fn me_describes_the_caller() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let r = s.call("GET", "/api/v1/me", Some(&t.key), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["user"]["id"], t.owner_id.as_str());
    assert_eq!(r.body["user"]["role"], "owner");
    assert_eq!(r.body["tenant"]["id"], t.id.as_str());
    assert!(r.body["key"]["id"].is_string());
    assert_eq!(s.call("GET", "/api/v1/me", None, None).await.status, 401);
    s.stop().await;
}

async fn operator_call(
    s: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> plinth_tests::Reply {
    s.call(method, path, Some(token), body).await
}

#[tokio::test]
async fn operators_create_list_and_suspend_tenants() {
    let s = TestServer::start().await;
    let token = plinth_core::tenancy::create_operator_token(s.db()).await.unwrap();
    let r = operator_call(
        &s,
        &token,
        "POST",
        "/api/v1/operator/tenants",
        Some(json!({ "name": " Globex ", "owner_email": "Hank@Globex.example", "owner_name": "Hank" })),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let tenant = r.body["tenant"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["tenant"]["name"], "Globex");
    assert_eq!(r.body["owner"]["email"], "hank@globex.example");
    assert_eq!(r.body["owner"]["role"], "owner");
    let secret = r.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("plk_"));
    let actions: Vec<String> = events_after(&s, &tenant, 0)
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["tenant.create", "user.create", "api_key.create"]);

    let r = s.call("GET", "/api/v1/me", Some(&secret), None).await;
    assert_eq!(
        (r.status, r.body["tenant"]["id"].as_str()),
        (200, Some(tenant.as_str()))
    );

    // Validation and auth.
    let r = operator_call(
        &s,
        &token,
        "POST",
        "/api/v1/operator/tenants",
        Some(json!({ "name": "", "owner_email": "nope", "owner_name": "X" })),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 2, "{}", r.text);
    assert_eq!(s.call("GET", "/api/v1/operator/tenants", None, None).await.status, 401);
    assert_eq!(
        s.call("GET", "/api/v1/operator/tenants", Some(&secret), None)
            .await
            .status,
        401
    );
    assert_eq!(
        s.call("GET", "/api/v1/operator/tenants", Some("plo_forged"), None)
            .await
            .status,
        401
    );

    // Listing, paginated; reading one.
    let other = s.tenant("Initech").await;
    let r = operator_call(&s, &token, "GET", "/api/v1/operator/tenants?limit=1", None).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    let next = r.body["next_cursor"].as_str().unwrap().to_string();
    let r = operator_call(
        &s,
        &token,
        "GET",
        &format!("/api/v1/operator/tenants?limit=1&cursor={next}"),
        None,
    )
    .await;
    assert_eq!(r.body["data"][0]["id"], other.id.as_str());
    let r = operator_call(&s, &token, "GET", &format!("/api/v1/operator/tenants/{tenant}"), None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("active")));
    let r = operator_call(&s, &token, "GET", "/api/v1/operator/tenants/01NOSUCHTENANT", None).await;
    assert_eq!(r.status, 404);

    // Suspension: the tenant's keys get 401 at once; other tenants are unaffected.
    let seq = audit_seq(&s, &tenant).await;
    let path = format!("/api/v1/operator/tenants/{tenant}");
    let r = operator_call(&s, &token, "PATCH", &path, Some(json!({ "status": "suspended" }))).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("suspended")),
        "{}",
        r.text
    );
    let e = one_event(&s, &tenant, seq, "tenant.update", "tenant").await;
    assert_eq!(
        (e.before["status"].as_str(), e.after["status"].as_str()),
        (Some("active"), Some("suspended"))
    );
    let r = s.call("GET", "/api/v1/me", Some(&secret), None).await;
    assert_eq!(r.status, 401);
    assert!(r.body["detail"].as_str().unwrap().contains("suspended"));
    assert_eq!(s.call("GET", "/api/v1/me", Some(&other.key), None).await.status, 200);
    let r = operator_call(
        &s,
        &token,
        "PATCH",
        &path,
        Some(json!({ "status": "active", "name": "Globex 2" })),
    )
    .await;
    assert_eq!((r.status, r.body["name"].as_str()), (200, Some("Globex 2")));
    assert_eq!(s.call("GET", "/api/v1/me", Some(&secret), None).await.status, 200);
    let r = operator_call(&s, &token, "PATCH", &path, Some(json!({ "status": "deleted" }))).await;
    assert_eq!(r.status, 422);
    let r = operator_call(&s, &token, "PATCH", &path, Some(json!({ "plan": "gold" }))).await;
    assert_eq!(r.status, 400);
    s.stop().await;
}

/// Tenant A's ids, for the matrices.
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
    let member = user(s, &a, "member").await;
    let reader = user(s, &a, "read-only").await;
    let r = s.call("GET", "/api/v1/me", Some(&member.key), None).await;
    let key_id = r.body["key"]["id"].as_str().unwrap().to_string();
    let r = s
        .call("POST", "/api/v1/groups", Some(&a.key), Some(json!({ "name": "Sales" })))
        .await;
    let group = r.body["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            "POST",
            "/api/v1/groups",
            Some(&a.key),
            Some(json!({ "name": "EMEA", "parent_id": group })),
        )
        .await;
    let child = r.body["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            "POST",
            &format!("/api/v1/groups/{group}/members"),
            Some(&a.key),
            Some(json!({ "user_id": member.id })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let record = record(s, &a.id, "account", &member.id).await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/records/account/{record}/shares"),
            Some(&a.key),
            Some(json!({ "group_id": group, "access": "read" })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
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
}

/// Every endpoint of this area: (method, path template, body). Placeholders name
/// tenant A's ids. The integrator extends this table to every endpoint of the API.
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

fn fill_body(f: &Fixture, body: &Option<Value>) -> Option<Value> {
    body.as_ref()
        .map(|b| serde_json::from_str(&f.fill(&b.to_string())).unwrap())
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_and_nothing_changes() {
    let s = TestServer::start().await;
    let f = fixture(&s).await;
    let b = s.tenant("Tenant B").await;
    let b_member = user(&s, &b, "member").await;
    let before = dump(&s, &f.a.id).await;
    let a_ids = [&f.member.id, &f.key_id, &f.group, &f.child, &f.record];
    for (method, template, body) in endpoints() {
        let path = f.fill(template);
        let body = fill_body(&f, &body);
        let request = format!("{path} {}", body.as_ref().map(Value::to_string).unwrap_or_default());
        for key in [&b.key, &b_member.key] {
            let r = s.call(method, &path, Some(key), body.clone()).await;
            // Tenant B's owner reaches the handler and is told "not found"; B's member
            // may be stopped earlier by role (403), which reveals nothing either.
            let allowed: &[u16] = if key == &b.key { &[404] } else { &[403, 404] };
            assert!(
                allowed.contains(&r.status),
                "{method} {template} with tenant B's key: {} {}",
                r.status,
                r.text
            );
            // Nothing of A's beyond what the caller sent (a 404 may echo the id asked for).
            for secret in a_ids.iter().map(|i| i.as_str()).chain(["Sales", "EMEA"]) {
                if !request.contains(secret) {
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
        let r = s.call("GET", path, Some(&b.key), None).await;
        assert_eq!(r.status, 200, "{path}");
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
    let before = dump(&s, &f.a.id).await;
    let mut writes = 0;
    for (method, template, body) in endpoints() {
        let path = f.fill(template);
        let r = s.call(method, &path, Some(&f.reader.key), fill_body(&f, &body)).await;
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
            format!("/api/v1/users/{}", f.reader.id),
            Some(json!({ "name": "Me" })),
        ),
        ("POST", "/api/v1/groups".to_string(), Some(json!({ "name": "Mine" }))),
        (
            "POST",
            "/api/v1/users".to_string(),
            Some(json!({ "email": "r@x.example", "name": "R", "role": "read-only" })),
        ),
    ];
    for (method, path, body) in own {
        let r = s.call(method, &path, Some(&f.reader.key), body).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text);
        writes += 1;
    }
    let r = s.call("GET", "/api/v1/keys", Some(&f.reader.key), None).await;
    let own_key = r.body["data"][0]["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            "POST",
            &format!("/api/v1/keys/{own_key}/revoke"),
            Some(&f.reader.key),
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    let shared = record(&s, &f.a.id, "account", &f.reader.id).await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/records/account/{shared}/shares"),
            Some(&f.reader.key),
            Some(json!({ "group_id": f.group, "access": "read" })),
        )
        .await;
    assert_eq!(r.status, 403, "read-only owners of a record cannot share it either");
    assert!(writes >= 15);
    // (The record inserted above is not in the dumped tables.)
    assert_eq!(dump(&s, &f.a.id).await, before);
    s.stop().await;
}

#[tokio::test]
async fn the_demo_tenant_is_created_through_audited_services() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let info = plinth_host::demo::ensure(s.db(), dir.path()).await.unwrap();
    assert_eq!(info.users.len(), 5);
    for (role, _, key) in &info.users {
        let r = s.call("GET", "/api/v1/me", Some(key), None).await;
        assert_eq!(
            (r.status, r.body["user"]["role"].as_str()),
            (200, Some(role.as_str())),
            "{}",
            r.text
        );
    }
    let actions: Vec<String> = events_after(&s, &info.tenant_id, 0)
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions.iter().filter(|a| *a == "user.create").count(), 5, "{actions:?}");
    assert_eq!(
        actions.iter().filter(|a| *a == "api_key.create").count(),
        5,
        "{actions:?}"
    );
    // The data set, as each role sees it through REST: the owner sees everything;
    // the read-only user is in the root region and sees everything too; the manager
    // sees EMEA (below her group) and what she owns; the member sees DACH and his own.
    let key = |role: &str| info.users.iter().find(|(r, _, _)| r == role).unwrap().2.clone();
    let count = |object: &'static str, key: String| {
        let s = &s;
        async move {
            let req = serde_json::json!({ "measures": [{ "fn": "count" }] });
            let r = s
                .call(
                    "POST",
                    &format!("/api/v1/records/{object}/aggregate"),
                    Some(&key),
                    Some(req),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body["rows"][0]["count"].as_i64().unwrap()
        }
    };
    assert!(count("account", key("owner")).await >= 200);
    assert!(count("contact", key("owner")).await >= 1_000);
    assert!(count("opportunity", key("owner")).await >= 2_000);
    let all = count("opportunity", key("owner")).await;
    assert_eq!(count("opportunity", key("read-only")).await, all);
    let manager = count("opportunity", key("manager")).await;
    let member = count("opportunity", key("member")).await;
    assert!(
        0 < member && member < manager && manager < all,
        "{member} {manager} {all}"
    );
    // Outside DACH the member sees only the accounts he owns.
    let me = s.call("GET", "/api/v1/me", Some(&key("member")), None).await;
    let member_id = me.body["user"]["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            "GET",
            "/api/v1/records/account?filter[country]=US&limit=200",
            Some(&key("member")),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let us = r.body["data"].as_array().unwrap();
    assert!(!us.is_empty());
    assert!(us.iter().all(|a| a["owner_id"] == member_id.as_str()), "{}", r.text);
    // A second start reuses the tenant rather than making another.
    let again = plinth_host::demo::ensure(s.db(), dir.path()).await.unwrap();
    assert_eq!(again.tenant_id, info.tenant_id);
    s.stop().await;
}
