//! API versioning through the real server: selection precedence, refusals of unknown
//! and retired versions, lifecycle headers, `API-Version` on every response, the
//! operator's lifecycle endpoints and the public version list.

use plinth_core::store::audit::Actor;
use plinth_core::store::tenancy::{NewKey, insert_key, insert_user};
use plinth_core::tenancy::{KEY_PREFIX, create_operator_token, create_tenant, display_prefix, new_secret};
use plinth_tests::{Reply, TestServer};
use serde_json::{Value, json};

/// A GET with extra headers.
async fn get(s: &TestServer, path: &str, key: Option<&str>, headers: &[(&str, &str)]) -> Reply {
    let mut req = s.http.get(format!("{}{path}", s.url));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    Reply::from(req.send().await.expect("request sent")).await
}

/// A new API key of `user` in `tenant`, optionally pinned to a version.
async fn key(s: &TestServer, tenant: &str, user: &str, pinned: Option<&str>) -> String {
    let secret = new_secret(KEY_PREFIX);
    let mut tx = s.db().writer().begin().await.expect("tx");
    insert_key(
        &mut tx,
        tenant,
        NewKey {
            user_id: user,
            name: "test key",
            secret_hash: &secret.hash,
            prefix: &display_prefix(&secret.plaintext),
            api_version: pinned,
            created_by: None,
            expires_at: None,
        },
    )
    .await
    .expect("key stored");
    tx.commit().await.expect("commit");
    secret.plaintext
}

/// A user with `role` in `tenant` and a key for them.
async fn user_key(s: &TestServer, tenant: &str, role: &str) -> String {
    let mut tx = s.db().writer().begin().await.expect("tx");
    let user = insert_user(&mut tx, tenant, &format!("{role}@example.test"), role, role)
        .await
        .expect("user stored");
    tx.commit().await.expect("commit");
    key(s, tenant, &user.id, None).await
}

async fn put_version(s: &TestServer, token: &str, version: &str, body: Value) -> Reply {
    s.call(
        "PUT",
        &format!("/api/v1/operator/versions/{version}"),
        Some(token),
        Some(body),
    )
    .await
}

/// Make 2027-01-15 current and 2026-11-01 deprecated (announced 2026-12-01, sunset
/// 2027-06-30).
async fn deprecate_first_version(s: &TestServer, token: &str) {
    let r = put_version(s, token, "2027-01-15", json!({"lifecycle": "current"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = put_version(
        s,
        token,
        "2026-11-01",
        json!({"lifecycle": "deprecated", "deprecation": "2026-12-01", "sunset": "2027-06-30"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

const PROBE: &str = "/api/v1/usage";

#[tokio::test]
async fn header_beats_key_pin_beats_tenant_default() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let version = |r: &Reply| r.header("api-version").map(str::to_string);

    // Tenant default (2026-11-01).
    let r = get(&s, PROBE, Some(&a.key), &[]).await;
    assert_eq!(
        (r.status, version(&r).as_deref()),
        (200, Some("2026-11-01")),
        "{}",
        r.text
    );
    // Header beats the tenant default.
    let r = get(&s, PROBE, Some(&a.key), &[("accept-version", "2027-01-15")]).await;
    assert_eq!((r.status, version(&r).as_deref()), (200, Some("2027-01-15")));

    // A key pinned to 2027-01-15 beats the tenant default; the header beats the pin.
    let pinned = key(&s, &a.id, &a.owner_id, Some("2027-01-15")).await;
    let r = get(&s, PROBE, Some(&pinned), &[]).await;
    assert_eq!((r.status, version(&r).as_deref()), (200, Some("2027-01-15")));
    let r = get(&s, PROBE, Some(&pinned), &[("accept-version", "2026-11-01")]).await;
    assert_eq!((r.status, version(&r).as_deref()), (200, Some("2026-11-01")));

    // A tenant whose default is 2027-01-15, with a key pinned back to 2026-11-01.
    let b = create_tenant(
        s.db(),
        "Beta",
        "owner@beta.test",
        "Owner",
        "2027-01-15",
        &Actor::system(),
    )
    .await
    .expect("tenant");
    let r = get(&s, PROBE, Some(&b.api_key), &[]).await;
    assert_eq!((r.status, version(&r).as_deref()), (200, Some("2027-01-15")));
    let old = key(&s, &b.tenant.id, &b.owner.id, Some("2026-11-01")).await;
    let r = get(&s, PROBE, Some(&old), &[]).await;
    assert_eq!((r.status, version(&r).as_deref()), (200, Some("2026-11-01")));
    s.stop().await;
}

#[tokio::test]
async fn unknown_versions_are_400_listing_the_supported_ones() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let r = get(&s, PROBE, Some(&a.key), &[("accept-version", "2025-01-01")]).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.body["type"], "https://plinth.dev/problems/unknown-api-version");
    assert_eq!(r.body["supported"], json!(["2026-11-01", "2027-01-15"]));
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("Accept-Version") && detail.contains("2025-01-01") && detail.contains("2026-11-01, 2027-01-15"),
        "{detail}"
    );
    assert_eq!(r.header("api-version"), Some("2026-11-01"));

    // A key pinned to a version this host does not know is refused the same way,
    // naming the key as the source.
    let pinned = key(&s, &a.id, &a.owner_id, Some("2024-01-01")).await;
    let r = get(&s, PROBE, Some(&pinned), &[]).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["detail"].as_str().unwrap_or_default().contains("pinned"),
        "{}",
        r.text
    );
    // …unless the request names a good one.
    let r = get(&s, PROBE, Some(&pinned), &[("accept-version", "2027-01-15")]).await;
    assert_eq!(r.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn every_api_v1_response_carries_api_version_even_errors() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let member = user_key(&s, &a.id, "member").await;
    let cases = [
        (get(&s, PROBE, Some(&a.key), &[]).await, 200, "2026-11-01"),
        (
            get(&s, "/api/v1/no-such-thing", Some(&a.key), &[]).await,
            404,
            "2026-11-01",
        ),
        (get(&s, "/api/v1/no-such-thing", None, &[]).await, 404, "2026-11-01"),
        (get(&s, PROBE, None, &[]).await, 401, "2026-11-01"),
        (
            get(&s, PROBE, Some("plk_bogus"), &[("accept-version", "2027-01-15")]).await,
            401,
            "2027-01-15",
        ),
        (get(&s, PROBE, Some(&member), &[]).await, 403, "2026-11-01"),
        (
            get(&s, "/api/v1/usage?group_by=tenant", Some(&a.key), &[]).await,
            422,
            "2026-11-01",
        ),
        (
            get(&s, "/api/v1/usage?colour=red", Some(&a.key), &[]).await,
            400,
            "2026-11-01",
        ),
        (
            get(&s, PROBE, Some(&a.key), &[("accept-version", "nonsense")]).await,
            400,
            "2026-11-01",
        ),
    ];
    for (i, (r, status, version)) in cases.iter().enumerate() {
        assert_eq!(r.status, *status, "case {i}: {}", r.text);
        assert_eq!(r.header("api-version"), Some(*version), "case {i}");
    }
    // Outside /api/v1 there is no version.
    for path in ["/healthz", "/api/versions"] {
        let r = get(&s, path, None, &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("api-version"), None, "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn operator_lifecycle_changes_take_effect_on_the_next_request() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let token = create_operator_token(s.db()).await.expect("token");

    // Not current → nothing is deprecated yet.
    let r = get(&s, PROBE, Some(&a.key), &[]).await;
    assert_eq!((r.status, r.header("deprecation")), (200, None));

    // The only current version cannot be deprecated.
    let r = put_version(&s, &token, "2026-11-01", json!({"lifecycle": "deprecated"})).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(
        r.body["detail"].as_str().unwrap_or_default().contains("only current"),
        "{}",
        r.text
    );

    deprecate_first_version(&s, &token).await;
    let r = get(&s, PROBE, Some(&a.key), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("api-version"), Some("2026-11-01"));
    // RFC 9745: @<unix seconds> of 2026-12-01T00:00:00Z.
    assert_eq!(r.header("deprecation"), Some("@1796083200"));
    // RFC 8594 / RFC 9110 IMF-fixdate.
    assert_eq!(r.header("sunset"), Some("Wed, 30 Jun 2027 00:00:00 GMT"));
    assert_eq!(
        r.header("link"),
        Some("<https://plinth.dev/api/versions/2027-01-15>; rel=\"successor-version\"")
    );
    // Deprecation headers ride on errors too.
    let r = get(&s, "/api/v1/no-such-thing", Some(&a.key), &[]).await;
    assert_eq!((r.status, r.header("deprecation")), (404, Some("@1796083200")));
    // The successor itself is not deprecated.
    let r = get(&s, PROBE, Some(&a.key), &[("accept-version", "2027-01-15")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.header("deprecation"), r.header("sunset"), r.header("link")),
        (None, None, None)
    );

    // Retired → 410 naming the successor, on the very next request.
    let r = put_version(&s, &token, "2026-11-01", json!({"lifecycle": "retired"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["sunset"], "2027-06-30", "retiring keeps the announced dates");
    let r = get(&s, PROBE, Some(&a.key), &[]).await;
    assert_eq!(r.status, 410, "{}", r.text);
    assert_eq!(r.body["type"], "https://plinth.dev/problems/api-version-retired");
    assert_eq!(r.body["successor"], "2027-01-15");
    assert!(
        r.body["detail"].as_str().unwrap_or_default().contains("use 2027-01-15"),
        "{}",
        r.text
    );
    assert_eq!(
        r.header("link"),
        Some("<https://plinth.dev/api/versions/2027-01-15>; rel=\"successor-version\"")
    );
    // With 2026-11-01 retired, the fallback moves to the newest current version.
    assert_eq!(r.header("api-version"), Some("2027-01-15"));
    let r = get(&s, PROBE, Some(&a.key), &[("accept-version", "2026-11-01")]).await;
    assert_eq!(r.status, 410);
    let r = get(&s, PROBE, Some(&a.key), &[("accept-version", "2027-01-15")]).await;
    assert_eq!(r.status, 200);
    // Retired versions are no longer listed as supported.
    let r = get(&s, PROBE, Some(&a.key), &[("accept-version", "1999-01-01")]).await;
    assert_eq!(r.body["supported"], json!(["2027-01-15"]));

    // A mistaken retirement can be undone.
    let r = put_version(&s, &token, "2026-11-01", json!({"lifecycle": "current"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get(&s, PROBE, Some(&a.key), &[]).await;
    assert_eq!((r.status, r.header("deprecation")), (200, None));
    s.stop().await;
}

#[tokio::test]
async fn operator_endpoints_validate_and_need_the_operator_token() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let token = create_operator_token(s.db()).await.expect("token");

    let r = put_version(&s, &token, "2030-01-01", json!({"lifecycle": "current"})).await;
    assert_eq!(r.status, 404, "{}", r.text);

    let r = put_version(
        &s,
        &token,
        "2026-11-01",
        json!({"lifecycle": "gone", "sunset": "30/06/2027"}),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let fields: Vec<_> = r.body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|p| p["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["lifecycle", "sunset"]);

    let r = put_version(
        &s,
        &token,
        "2026-11-01",
        json!({"lifecycle": "current", "colour": "red"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("colour"));

    let r = put_version(&s, &token, "2026-11-01", json!({"lifecycle": "preview"})).await;
    assert_eq!(r.status, 409, "{}", r.text);

    let r = put_version(&s, &token, "2027-01-15", json!({"lifecycle": "current"})).await;
    assert_eq!(r.status, 200);
    let r = put_version(
        &s,
        &token,
        "2026-11-01",
        json!({"lifecycle": "deprecated", "deprecation": "2027-01-01", "sunset": "2026-12-31"}),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "sunset");
    let r = put_version(&s, &token, "2027-01-15", json!({"lifecycle": "deprecated"})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "successor");

    // Tenant keys and anonymous callers are not operators.
    let r = put_version(&s, &a.key, "2026-11-01", json!({"lifecycle": "current"})).await;
    assert_eq!(r.status, 401);
    let r = s.call("GET", "/api/v1/operator/versions", None, None).await;
    assert_eq!(r.status, 401);

    let r = s.call("GET", "/api/v1/operator/versions", Some(&token), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["versions"][1]["lifecycle"], "current");
    assert!(r.body["versions"][1]["overridden_at"].is_string());
    assert!(r.body["versions"][0]["overridden_at"].is_null());
    s.stop().await;
}

#[tokio::test]
async fn public_version_list_is_a_changelog() {
    let s = TestServer::start().await;
    let r = s.call("GET", "/api/versions", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["default_version"], "2026-11-01");
    let versions = r.body["versions"].as_array().cloned().unwrap_or_default();
    let names: Vec<_> = versions.iter().filter_map(|v| v["version"].as_str()).collect();
    assert_eq!(names, ["2026-11-01", "2027-01-15"]);
    assert_eq!(versions[0]["lifecycle"], "current");
    assert_eq!(versions[0]["successor"], "2027-01-15");
    assert_eq!(versions[1]["lifecycle"], "preview");
    assert_eq!(versions[0]["changes"], json!([]));
    let change = versions[1]["changes"][0]["description"].as_str().unwrap_or_default();
    assert!(change.contains("amount") && change.contains("currency"), "{change}");
    assert!(
        versions[0].get("overridden_at").is_none(),
        "operator detail stays private"
    );
    s.stop().await;
}

#[tokio::test]
async fn stored_lifecycles_apply_from_the_first_request() {
    // As after `plinth admin version set` (or another host's change) and a restart:
    // the override is in the database before this process serves any versioned call.
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    for (version, lifecycle, deprecation, sunset) in [
        ("2027-01-15", "current", None, None),
        ("2026-11-01", "deprecated", Some("2026-12-01"), Some("2027-06-30")),
    ] {
        s.db()
            .put_version_override(&plinth_core::store::versions::VersionOverride {
                version: version.into(),
                lifecycle: lifecycle.into(),
                deprecation: deprecation.map(str::to_string),
                sunset: sunset.map(str::to_string),
                successor: deprecation.map(|_| "2027-01-15".to_string()),
                updated_at: plinth_core::store::time::now(),
            })
            .await
            .expect("override stored");
    }
    let r = get(&s, PROBE, Some(&a.key), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("deprecation"), Some("@1796083200"));
    assert_eq!(r.header("sunset"), Some("Wed, 30 Jun 2027 00:00:00 GMT"));
    s.stop().await;
}
