//! The marketplace over HTTP on a real server: publish → catalog → install → call →
//! disable (404) → enable → upgrade with capability expansion → rollback →
//! uninstall → purge; trust failures with their reasons; revocation; two tenants
//! on two versions; dependencies; grants; and concurrency during lifecycle changes.

use plinth_tests::{TestPublisher, TestServer, TestTenant, guest_files};
use serde_json::{Value, json};

async fn publish_counter(s: &TestServer, p: &TestPublisher, crate_name: &str) -> Value {
    let (manifest, component) = guest_files(crate_name);
    let r = s.publish(&p.token, p.pack(&manifest, &component)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn hit(s: &TestServer, t: &TestTenant) -> (u16, Value) {
    let r = s.call("POST", "/api/v1/plugins/counter/hit", Some(&t.key), None).await;
    (r.status, r.body)
}

#[tokio::test]
async fn full_lifecycle_over_http() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    let t = s.tenant("Tenant").await;
    publish_counter(&s, &acme, "counter-v1").await;

    // Catalog.
    let r = s
        .call(
            "GET",
            "/api/v1/marketplace/plugins?q=count&category=analytics",
            None,
            None,
        )
        .await;
    assert_eq!(r.body["data"][0]["id"], "counter", "{}", r.text);
    let r = s.call("GET", "/api/v1/marketplace/plugins/counter", None, None).await;
    assert_eq!(
        r.body["versions"][0]["capabilities"],
        json!(["config", "storage"]),
        "{}",
        r.text
    );

    // Install: the grant must be chosen; then the endpoint works.
    let r = s
        .call(
            "POST",
            "/api/v1/installations",
            Some(&t.key),
            Some(json!({ "plugin": "counter" })),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["requested"], json!(["config", "storage"]));
    let r = s
        .call(
            "POST",
            "/api/v1/installations",
            Some(&t.key),
            Some(json!({ "plugin": "counter", "grants": "all" })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(hit(&s, &t).await, (200, json!({ "version": "1.0.0", "count": 1 })));
    assert_eq!(hit(&s, &t).await.1["count"], 2);

    // Disable: 404 naming the plugin as disabled. Enable: data intact.
    let r = s
        .call("POST", "/api/v1/installations/counter/disable", Some(&t.key), None)
        .await;
    assert_eq!((r.status, r.body["state"].as_str()), (200, Some("disabled")));
    let r = s.call("POST", "/api/v1/plugins/counter/hit", Some(&t.key), None).await;
    assert_eq!(
        (r.status, r.body["type"].as_str()),
        (404, Some("https://plinth.dev/problems/plugin-disabled"))
    );
    assert_eq!(r.body["plugin"], "counter");
    s.call("POST", "/api/v1/installations/counter/enable", Some(&t.key), None)
        .await;
    assert_eq!(hit(&s, &t).await.1["count"], 3);

    // Upgrade to v2, which also requests `audit`: refused without the grant.
    publish_counter(&s, &acme, "counter-v2").await;
    let r = s
        .call(
            "POST",
            "/api/v1/installations/counter/upgrade",
            Some(&t.key),
            Some(json!({ "version": "2.0.0" })),
        )
        .await;
    assert_eq!(
        (r.status, r.body["missing"].clone()),
        (403, json!(["audit"])),
        "{}",
        r.text
    );
    assert_eq!(hit(&s, &t).await.1["version"], "1.0.0");
    let r = s
        .call(
            "POST",
            "/api/v1/installations/counter/upgrade",
            Some(&t.key),
            Some(json!({ "version": "2.0.0", "grants": ["audit"] })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["grants"], json!(["audit", "config", "storage"]));
    assert_eq!(hit(&s, &t).await, (200, json!({ "version": "2.0.0", "count": 5 })));
    let r = s
        .call("GET", "/api/v1/plugins/counter/installed-from", Some(&t.key), None)
        .await;
    assert_eq!(
        r.body["installed_from"], "1.0.0",
        "on-install ran with the previous version"
    );

    // Rollback.
    let r = s
        .call("POST", "/api/v1/installations/counter/rollback", Some(&t.key), None)
        .await;
    assert_eq!((r.status, r.body["version"].as_str()), (200, Some("1.0.0")));
    assert_eq!(hit(&s, &t).await.1["version"], "1.0.0");

    // History of every step, oldest last.
    let r = s.call("GET", "/api/v1/installations/counter", Some(&t.key), None).await;
    let actions: Vec<&str> = r.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "plugin.rollback",
            "plugin.upgrade",
            "plugin.enable",
            "plugin.disable",
            "plugin.install"
        ]
    );

    // Uninstall keeps data; re-install finds it. Purge deletes it.
    assert_eq!(
        s.call("DELETE", "/api/v1/installations/counter", Some(&t.key), None)
            .await
            .status,
        204
    );
    let r = s.call("POST", "/api/v1/plugins/counter/hit", Some(&t.key), None).await;
    assert_eq!(r.status, 404);
    let r = s
        .call(
            "POST",
            "/api/v1/installations",
            Some(&t.key),
            Some(json!({ "plugin": "counter", "version": "1.0.0", "grants": "all" })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(hit(&s, &t).await.1["count"], 7, "re-install finds the kept data");
    assert_eq!(
        s.call("DELETE", "/api/v1/installations/counter?purge=true", Some(&t.key), None)
            .await
            .status,
        204
    );
    let r = s.call("GET", "/api/v1/installations/counter", Some(&t.key), None).await;
    assert_eq!(r.status, 404);
    s.call(
        "POST",
        "/api/v1/installations",
        Some(&t.key),
        Some(json!({ "plugin": "counter", "grants": "all" })),
    )
    .await;
    assert_eq!(hit(&s, &t).await.1["count"], 1, "purged data is gone");
    s.stop().await;
}

#[tokio::test]
async fn trust_failures_are_rejected_with_their_reason() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    let (manifest, component) = guest_files("counter-v1");
    let reason = |r: &plinth_tests::Reply| r.body["reason"].as_str().unwrap_or_default().to_string();

    let r = s.publish(&acme.token, b"not a package at all".to_vec()).await;
    assert_eq!((r.status, reason(&r)), (400, "malformed".into()), "{}", r.text);

    let mut tampered = acme.pack(&manifest, &component);
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    let r = s.publish(&acme.token, tampered).await;
    assert_eq!(reason(&r), "bad-signature", "{}", r.text);

    // Signed by a key acme never registered.
    let stranger = plinth_core::package::SecretKey::generate();
    let foreign = TestPublisher {
        id: "acme".into(),
        key: stranger,
        token: acme.token.clone(),
    };
    let r = s.publish(&acme.token, foreign.pack(&manifest, &component)).await;
    assert_eq!(reason(&r), "unknown-key", "{}", r.text);

    // A manifest naming a publisher that is not registered.
    let nobody = manifest.replace("publisher = \"acme\"", "publisher = \"nobody\"");
    let r = s.publish(&acme.token, acme.pack(&nobody, &component)).await;
    assert_eq!(reason(&r), "unknown-publisher", "{}", r.text);

    // Another publisher's token cannot upload acme's package.
    let other = s.publisher("other").await;
    let r = s.publish(&other.token, acme.pack(&manifest, &component)).await;
    assert_eq!(r.status, 403, "{}", r.text);

    // Retired key: no new packages, existing ones stay installable.
    let op = s.operator_token().await;
    let key_id = acme.key.key_id().to_string();
    publish_counter(&s, &acme, "counter-v1").await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/operator/publishers/acme/keys/{key_id}/retire"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (v2_manifest, v2_component) = guest_files("counter-v2");
    let r = s.publish(&acme.token, acme.pack(&v2_manifest, &v2_component)).await;
    assert_eq!(reason(&r), "retired-key", "{}", r.text);
    let t = s.tenant("T").await;
    let r = s
        .call(
            "POST",
            "/api/v1/installations",
            Some(&t.key),
            Some(json!({ "plugin": "counter", "grants": "all" })),
        )
        .await;
    assert_eq!(r.status, 201, "a retired key's package still installs: {}", r.text);

    // Duplicates and older versions.
    let rotated = plinth_core::package::SecretKey::generate();
    let r = s
        .call(
            "POST",
            "/api/v1/operator/publishers/acme/keys",
            Some(&op),
            Some(json!({ "public_key": rotated.public_key().to_text() })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let acme2 = TestPublisher {
        id: "acme".into(),
        key: rotated,
        token: acme.token.clone(),
    };
    let r = s.publish(&acme.token, acme2.pack(&manifest, &component)).await;
    assert_eq!(r.status, 409, "{}", r.text);
    publish_counter(&s, &acme2, "counter-v2").await;

    // Revoked key: its packages cannot be installed any more.
    let r = s
        .call(
            "POST",
            &format!("/api/v1/operator/publishers/acme/keys/{key_id}/revoke"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t2 = s.tenant("T2").await;
    let r = s
        .call(
            "POST",
            "/api/v1/installations",
            Some(&t2.key),
            Some(json!({ "plugin": "counter", "version": "1.0.0", "grants": "all" })),
        )
        .await;
    assert_eq!((r.status, reason(&r)), (422, "revoked-key".into()), "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn revoking_a_key_disables_installed_versions_in_every_tenant() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    publish_counter(&s, &acme, "counter-v1").await;
    let tenants = [s.tenant("A").await, s.tenant("B").await];
    for t in &tenants {
        s.call(
            "POST",
            "/api/v1/installations",
            Some(&t.key),
            Some(json!({ "plugin": "counter", "grants": "all" })),
        )
        .await;
        assert_eq!(hit(&s, t).await.0, 200);
    }
    let op = s.operator_token().await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/operator/publishers/acme/keys/{}/revoke", acme.key.key_id()),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(r.body["disabled"].as_array().map(Vec::len), Some(2), "{}", r.text);
    for t in &tenants {
        let r = s.call("POST", "/api/v1/plugins/counter/hit", Some(&t.key), None).await;
        assert_eq!(r.status, 404);
        assert!(r.body["detail"].as_str().unwrap().contains("revoked"), "{}", r.text);
        let r = s
            .call("POST", "/api/v1/installations/counter/enable", Some(&t.key), None)
            .await;
        assert_eq!(r.status, 409, "{}", r.text);
        let audited: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE tenant_id = $1 AND action = 'plugin.revoked'")
                .bind(&t.id)
                .fetch_one(s.db().reader())
                .await
                .unwrap();
        assert_eq!(audited, 1);
        let alerts = s.call("GET", "/api/v1/audit/alerts", Some(&t.key), None).await;
        let kinds: Vec<&str> = alerts.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["key-revocation"], "{}", alerts.text);
    }
    s.stop().await;
}

#[tokio::test]
async fn two_tenants_on_two_versions_are_each_served_their_own() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    publish_counter(&s, &acme, "counter-v1").await;
    publish_counter(&s, &acme, "counter-v2").await;
    let (a, b) = (s.tenant("A").await, s.tenant("B").await);
    s.call(
        "POST",
        "/api/v1/installations",
        Some(&a.key),
        Some(json!({ "plugin": "counter", "version": "1.0.0", "grants": "all" })),
    )
    .await;
    s.call(
        "POST",
        "/api/v1/installations",
        Some(&b.key),
        Some(json!({ "plugin": "counter", "range": "^2", "grants": "all" })),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(hit(&s, &a).await.1["version"], "1.0.0");
        assert_eq!(hit(&s, &b).await.1["version"], "2.0.0");
    }
    assert_eq!(hit(&s, &a).await.1["count"], 6, "each tenant has its own storage");
    s.stop().await;
}

#[tokio::test]
async fn grants_schemas_roles_and_headers_apply_to_plugin_endpoints() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    publish_counter(&s, &acme, "counter-v1").await;
    let t = s.tenant("T").await;
    // Grant storage only: config is declared but not granted → the plugin gets `denied` (403).
    let r = s
        .call(
            "POST",
            "/api/v1/installations",
            Some(&t.key),
            Some(json!({ "plugin": "counter", "grants": ["storage"] })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = s
        .call("GET", "/api/v1/plugins/counter/config", Some(&t.key), None)
        .await;
    assert_eq!(
        (r.status, r.body["type"].as_str()),
        (403, Some("https://plinth.dev/problems/denied")),
        "{}",
        r.text
    );
    assert!(r.body["detail"].as_str().unwrap().contains("config"));
    let r = s
        .call(
            "POST",
            "/api/v1/installations",
            Some(&t.key),
            Some(json!({ "plugin": "counter", "grants": ["storage", "http:https://evil.test"] })),
        )
        .await;
    assert_eq!(r.status, 409, "already installed: {}", r.text);

    // JSON Schema validation before the plugin runs; role minimum; response headers filtered.
    let r = s
        .call(
            "POST",
            "/api/v1/plugins/counter/echo",
            Some(&t.key),
            Some(json!({ "name": "far too long a name", "x": 1 })),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"].as_array().map(Vec::len), Some(2), "{}", r.text);
    let r = s
        .call(
            "POST",
            "/api/v1/plugins/counter/echo",
            Some(&t.key),
            Some(json!({ "name": "ok" })),
        )
        .await;
    assert_eq!(
        (r.status, r.header("x-echo"), r.header("set-cookie")),
        (200, Some("1"), None)
    );
    let member = s.user(&t, "Member", "member").await;
    let r = s
        .call(
            "POST",
            "/api/v1/plugins/counter/echo",
            Some(&member.key),
            Some(json!({ "name": "ok" })),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .call("GET", "/api/v1/plugins/counter/nowhere", Some(&t.key), None)
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call("DELETE", "/api/v1/plugins/counter/hit", Some(&t.key), None)
        .await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    // Members cannot manage installations; other tenants do not see this one.
    assert_eq!(
        s.call("POST", "/api/v1/installations/counter/disable", Some(&member.key), None)
            .await
            .status,
        403
    );
    let other = s.tenant("Other").await;
    assert_eq!(
        s.call("POST", "/api/v1/plugins/counter/hit", Some(&other.key), None)
            .await
            .status,
        404
    );
    assert_eq!(
        s.call("GET", "/api/v1/installations/counter", Some(&other.key), None)
            .await
            .status,
        404
    );

    // Execution tracking.
    for _ in 0..3 {
        hit(&s, &t).await;
    }
    let r = s
        .call("GET", "/api/v1/installations/counter/metrics", Some(&t.key), None)
        .await;
    let endpoint = r.body["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["entry"] == "endpoint")
        .unwrap()
        .clone();
    assert!(endpoint["invocations"].as_u64().unwrap() >= 5, "{endpoint}");
    assert_eq!(endpoint["errors"]["denied"], 1, "{endpoint}");
    assert!(endpoint["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    s.stop().await;
}

#[tokio::test]
async fn a_failed_upgrade_leaves_the_old_version_active() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    publish_counter(&s, &acme, "counter-v1").await;
    publish_counter(&s, &acme, "counter-v2").await;
    let t = s.tenant("T").await;
    s.call(
        "POST",
        "/api/v1/installations",
        Some(&t.key),
        Some(json!({ "plugin": "counter", "version": "1.0.0", "grants": "all" })),
    )
    .await;
    let r = s
        .call(
            "PUT",
            "/api/v1/installations/counter/settings/fail_install",
            Some(&t.key),
            Some(json!(true)),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s
        .call(
            "POST",
            "/api/v1/installations/counter/upgrade",
            Some(&t.key),
            Some(json!({ "version": "2.0.0", "grants": ["audit"] })),
        )
        .await;
    assert_eq!(
        (r.status, r.body["type"].as_str()),
        (422, Some("https://plinth.dev/problems/install-failed")),
        "{}",
        r.text
    );
    assert_eq!(hit(&s, &t).await.1["version"], "1.0.0");
    s.stop().await;
}

#[tokio::test]
async fn reviews_are_for_installers_bounded_and_plain_text() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    publish_counter(&s, &acme, "counter-v1").await;
    let (t, outsider) = (s.tenant("T").await, s.tenant("O").await);
    let review = json!({ "rating": 4, "text": "<script>alert(1)</script> Works\u{0007}" });
    assert_eq!(
        s.call(
            "PUT",
            "/api/v1/marketplace/plugins/counter/review",
            Some(&outsider.key),
            Some(review.clone())
        )
        .await
        .status,
        403
    );
    s.call(
        "POST",
        "/api/v1/installations",
        Some(&t.key),
        Some(json!({ "plugin": "counter", "grants": "all" })),
    )
    .await;
    let r = s
        .call(
            "PUT",
            "/api/v1/marketplace/plugins/counter/review",
            Some(&t.key),
            Some(review),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["body"], "<script>alert(1)</script> Works",
        "stored as plain text, control chars removed"
    );
    let r = s
        .call(
            "PUT",
            "/api/v1/marketplace/plugins/counter/review",
            Some(&t.key),
            Some(json!({ "rating": 9, "text": "x".repeat(5000) })),
        )
        .await;
    assert_eq!(r.body["errors"].as_array().map(Vec::len), Some(2), "{}", r.text);
    s.call(
        "PUT",
        "/api/v1/marketplace/plugins/counter/review",
        Some(&t.key),
        Some(json!({ "rating": 2 })),
    )
    .await;
    let r = s.call("GET", "/api/v1/marketplace/plugins/counter", None, None).await;
    assert_eq!(
        (r.body["rating"]["average"].as_f64(), r.body["rating"]["count"].as_i64()),
        (Some(2.0), Some(1))
    );
    let r = s
        .call("GET", "/api/v1/marketplace/plugins?sort=rating", None, None)
        .await;
    assert_eq!(r.body["data"][0]["installs"], 1);
    assert_eq!(
        s.call(
            "DELETE",
            "/api/v1/marketplace/plugins/counter/review",
            Some(&t.key),
            None
        )
        .await
        .status,
        204
    );
    s.stop().await;
}
