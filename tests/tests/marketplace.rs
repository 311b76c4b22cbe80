//! The marketplace over HTTP on a real server: publish → catalog → install → call →
//! disable (404) → enable → upgrade with capability expansion → rollback →
//! uninstall → purge; trust failures with their reasons; revocation; two tenants
//! on two versions; grants, schemas and roles on plugin endpoints; a failed upgrade;
//! reviews.

use plinth_tests::{Call, Client, Guest, Reply, TestPublisher, TestServer};
use serde_json::{Value, json};

const INSTALLATIONS: &str = "/api/v1/installations";

/// `POST /api/v1/plugins/counter/hit` (no body) as `c`: counts, and answers the
/// version serving it and the count so far.
fn hit(c: &Client) -> Call {
    c.request("POST", "/api/v1/plugins/counter/hit")
}

/// The test guest `counter-v1` (1.0.0: `config`, `storage`) or `counter-v2` (2.0.0:
/// also `audit`), published by acme.
fn counter(version: u8) -> Guest {
    Guest::named(&format!("counter-v{version}"))
}

/// A server where acme has published the counter `versions` (1, 2), and acme.
async fn published(versions: &[u8]) -> (TestServer, TestPublisher) {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    for v in versions {
        acme.publish(&s, &counter(*v)).await.expect(201);
    }
    (s, acme)
}

/// An installation of counter `version` with every grant.
fn pinned(version: &str) -> Value {
    json!({ "plugin": "counter", "version": version, "grants": "all" })
}

/// The `reason` of a refused upload or installation.
fn reason(r: &Reply) -> &str {
    r.body["reason"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn full_lifecycle_over_http() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    let t = s.tenant("Tenant").await;
    acme.publish(&s, &counter(1)).await.expect(201);

    // Catalog.
    let anyone = s.anonymous();
    let r = anyone
        .get("/api/v1/marketplace/plugins?q=count&category=analytics")
        .await
        .expect(200);
    assert_eq!(r.body["data"][0]["id"], "counter", "{}", r.text);
    let r = anyone.get("/api/v1/marketplace/plugins/counter").await.expect(200);
    assert_eq!(
        r.body["versions"][0]["capabilities"],
        json!(["config", "storage"]),
        "{}",
        r.text
    );

    // Install: the grant must be chosen; then the endpoint works.
    let r = t.post(INSTALLATIONS, json!({ "plugin": "counter" })).await.expect(422);
    assert_eq!(r.body["requested"], json!(["config", "storage"]));
    t.post(INSTALLATIONS, json!({ "plugin": "counter", "grants": "all" }))
        .await
        .expect(201);
    assert_eq!(
        hit(&t).await.expect(200).json(),
        json!({ "version": "1.0.0", "count": 1 })
    );
    assert_eq!(hit(&t).await.expect(200).json()["count"], 2);

    // Disable: 404 naming the plugin as disabled. Enable: data intact.
    let r = t
        .request("POST", "/api/v1/installations/counter/disable")
        .await
        .expect(200);
    assert_eq!(r.body["state"], "disabled");
    let r = hit(&t).await.expect_problem(404, "plugin-disabled");
    assert_eq!(r.body["plugin"], "counter");
    t.request("POST", "/api/v1/installations/counter/enable")
        .await
        .expect(200);
    assert_eq!(hit(&t).await.expect(200).json()["count"], 3);

    // Upgrade to v2, which also requests `audit`: refused without the grant.
    acme.publish(&s, &counter(2)).await.expect(201);
    let upgrade = "/api/v1/installations/counter/upgrade";
    let r = t.post(upgrade, json!({ "version": "2.0.0" })).await.expect(403);
    assert_eq!(r.body["missing"], json!(["audit"]), "{}", r.text);
    assert_eq!(hit(&t).await.expect(200).json()["version"], "1.0.0");
    let r = t
        .post(upgrade, json!({ "version": "2.0.0", "grants": ["audit"] }))
        .await
        .expect(200);
    assert_eq!(r.body["grants"], json!(["audit", "config", "storage"]));
    assert_eq!(
        hit(&t).await.expect(200).json(),
        json!({ "version": "2.0.0", "count": 5 })
    );
    let r = t.get("/api/v1/plugins/counter/installed-from").await.expect(200);
    assert_eq!(
        r.body["installed_from"], "1.0.0",
        "on-install ran with the previous version"
    );

    // Rollback.
    let r = t
        .request("POST", "/api/v1/installations/counter/rollback")
        .await
        .expect(200);
    assert_eq!(r.body["version"], "1.0.0");
    assert_eq!(hit(&t).await.expect(200).json()["version"], "1.0.0");

    // History of every step, oldest last.
    let r = t.get("/api/v1/installations/counter").await.expect(200);
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
    t.delete("/api/v1/installations/counter").await.expect(204);
    hit(&t).await.expect(404);
    t.post(INSTALLATIONS, pinned("1.0.0")).await.expect(201);
    assert_eq!(
        hit(&t).await.expect(200).json()["count"],
        7,
        "re-install finds the kept data"
    );
    t.delete("/api/v1/installations/counter?purge=true").await.expect(204);
    t.get("/api/v1/installations/counter")
        .await
        .expect_problem(404, "not-found");
    s.install(&t, "counter", json!("all")).await.expect(201);
    assert_eq!(hit(&t).await.expect(200).json()["count"], 1, "purged data is gone");
    s.stop().await;
}

#[tokio::test]
async fn trust_failures_are_rejected_with_their_reason() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    let v1 = counter(1);

    let r = s
        .publish(&acme.token, b"not a package at all".to_vec())
        .await
        .expect(400);
    assert_eq!(reason(&r), "malformed", "{}", r.text);

    let mut tampered = acme.pack(&v1.manifest_text(), v1.component());
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    let r = s.publish(&acme.token, tampered).await;
    assert_eq!(reason(&r), "bad-signature", "{}", r.text);

    // Signed by a key acme never registered.
    let foreign = TestPublisher {
        id: "acme".into(),
        key: plinth_core::package::SecretKey::generate(),
        token: acme.token.clone(),
    };
    let r = foreign.publish(&s, &v1).await;
    assert_eq!(reason(&r), "unknown-key", "{}", r.text);

    // A manifest naming a publisher that is not registered.
    let r = acme.publish(&s, &v1.clone().set("plugin.publisher", "nobody")).await;
    assert_eq!(reason(&r), "unknown-publisher", "{}", r.text);

    // Another publisher's token cannot upload acme's package.
    let other = s.publisher("other").await;
    let signed_by_acme = acme.pack(&v1.manifest_text(), v1.component());
    s.publish(&other.token, signed_by_acme).await.expect(403);

    // Retired key: no new packages, existing ones stay installable.
    let op = s.operator().await;
    let keys = "/api/v1/operator/publishers/acme/keys";
    let key_id = acme.key.key_id().to_string();
    acme.publish(&s, &v1).await.expect(201);
    op.request("POST", &format!("{keys}/{key_id}/retire")).await.expect(200);
    let r = acme.publish(&s, &counter(2)).await;
    assert_eq!(reason(&r), "retired-key", "{}", r.text);
    let t = s.tenant("T").await;
    s.install(&t, "counter", json!("all")).await.expect(201);

    // Duplicates and older versions.
    let rotated = plinth_core::package::SecretKey::generate();
    op.post(keys, json!({ "public_key": rotated.public_key().to_text() }))
        .await
        .expect(201);
    let acme2 = TestPublisher {
        id: "acme".into(),
        key: rotated,
        token: acme.token.clone(),
    };
    acme2.publish(&s, &v1).await.expect(409);
    acme2.publish(&s, &counter(2)).await.expect(201);

    // Revoked key: its packages cannot be installed any more.
    op.request("POST", &format!("{keys}/{key_id}/revoke")).await.expect(200);
    let t2 = s.tenant("T2").await;
    let r = t2.post(INSTALLATIONS, pinned("1.0.0")).await.expect(422);
    assert_eq!(reason(&r), "revoked-key", "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn revoking_a_key_disables_installed_versions_in_every_tenant() {
    let (s, acme) = published(&[1]).await;
    let tenants = [s.tenant("A").await, s.tenant("B").await];
    for t in &tenants {
        s.install(t, "counter", json!("all")).await.expect(201);
        hit(t).await.expect(200);
    }
    let r = s
        .operator()
        .await
        .request(
            "POST",
            &format!("/api/v1/operator/publishers/acme/keys/{}/revoke", acme.key.key_id()),
        )
        .await
        .expect(200);
    assert_eq!(r.body["disabled"].as_array().map(Vec::len), Some(2), "{}", r.text);
    for t in &tenants {
        let r = hit(t).await.expect(404);
        assert!(r.body["detail"].as_str().unwrap().contains("revoked"), "{}", r.text);
        t.request("POST", "/api/v1/installations/counter/enable")
            .await
            .expect(409);
        let revoked = t.audit_events(&[("action", "plugin.revoked")]).await;
        assert_eq!(revoked.len(), 1, "{revoked:?}");
        let alerts = t.get("/api/v1/audit/alerts").await.expect(200);
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
    let (s, _) = published(&[1, 2]).await;
    let (a, b) = (s.tenant("A").await, s.tenant("B").await);
    a.post(INSTALLATIONS, pinned("1.0.0")).await.expect(201);
    b.post(
        INSTALLATIONS,
        json!({ "plugin": "counter", "range": "^2", "grants": "all" }),
    )
    .await
    .expect(201);
    for _ in 0..5 {
        assert_eq!(hit(&a).await.expect(200).json()["version"], "1.0.0");
        assert_eq!(hit(&b).await.expect(200).json()["version"], "2.0.0");
    }
    assert_eq!(
        hit(&a).await.expect(200).json()["count"],
        6,
        "each tenant has its own storage"
    );
    s.stop().await;
}

#[tokio::test]
async fn grants_schemas_roles_and_headers_apply_to_plugin_endpoints() {
    let (s, _) = published(&[1]).await;
    let t = s.tenant("T").await;
    // Grant storage only: config is declared but not granted → the plugin gets `denied` (403).
    s.install(&t, "counter", json!(["storage"])).await.expect(201);
    let r = t
        .get("/api/v1/plugins/counter/config")
        .await
        .expect_problem(403, "denied");
    assert!(r.body["detail"].as_str().unwrap().contains("config"), "{}", r.text);
    s.install(&t, "counter", json!(["storage", "http:https://evil.test"]))
        .await
        .expect(409);

    // JSON Schema validation before the plugin runs; role minimum; response headers filtered.
    let echo = "/api/v1/plugins/counter/echo";
    let r = t
        .post(echo, json!({ "name": "far too long a name", "x": 1 }))
        .await
        .expect(422);
    assert_eq!(r.body["errors"].as_array().map(Vec::len), Some(2), "{}", r.text);
    let r = t.post(echo, json!({ "name": "ok" })).await.expect(200);
    assert_eq!((r.header("x-echo"), r.header("set-cookie")), (Some("1"), None));
    let member = s.user(&t, "Member", "member").await;
    member
        .post(echo, json!({ "name": "ok" }))
        .await
        .expect_problem(403, "forbidden");
    t.get("/api/v1/plugins/counter/nowhere")
        .await
        .expect_problem(404, "not-found");
    let r = t
        .delete("/api/v1/plugins/counter/hit")
        .await
        .expect_problem(405, "method-not-allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    // Members cannot manage installations; other tenants do not see this one.
    member
        .request("POST", "/api/v1/installations/counter/disable")
        .await
        .expect_problem(403, "forbidden");
    let other = s.tenant("Other").await;
    hit(&other).await.expect(404);
    other
        .get("/api/v1/installations/counter")
        .await
        .expect_problem(404, "not-found");

    // Execution tracking.
    for _ in 0..3 {
        hit(&t).await.expect(200);
    }
    let r = t.get("/api/v1/installations/counter/metrics").await.expect(200);
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
    let (s, _) = published(&[1, 2]).await;
    let t = s.tenant("T").await;
    t.post(INSTALLATIONS, pinned("1.0.0")).await.expect(201);
    t.put("/api/v1/installations/counter/settings/fail_install", json!(true))
        .await
        .expect(204);
    t.post(
        "/api/v1/installations/counter/upgrade",
        json!({ "version": "2.0.0", "grants": ["audit"] }),
    )
    .await
    .expect_problem(422, "install-failed");
    assert_eq!(hit(&t).await.expect(200).json()["version"], "1.0.0");
    s.stop().await;
}

#[tokio::test]
async fn reviews_are_for_installers_bounded_and_plain_text() {
    let (s, _) = published(&[1]).await;
    let (t, outsider) = (s.tenant("T").await, s.tenant("O").await);
    let review_path = "/api/v1/marketplace/plugins/counter/review";
    let review = json!({ "rating": 4, "text": "<script>alert(1)</script> Works\u{0007}" });
    outsider.put(review_path, review.clone()).await.expect(403);
    s.install(&t, "counter", json!("all")).await.expect(201);
    let r = t.put(review_path, review).await.expect(200);
    assert_eq!(
        r.body["body"], "<script>alert(1)</script> Works",
        "stored as plain text, control chars removed"
    );
    let r = t
        .put(review_path, json!({ "rating": 9, "text": "x".repeat(5000) }))
        .await
        .expect(422);
    assert_eq!(r.body["errors"].as_array().map(Vec::len), Some(2), "{}", r.text);
    t.put(review_path, json!({ "rating": 2 })).await.expect(200);
    let anyone = s.anonymous();
    let r = anyone.get("/api/v1/marketplace/plugins/counter").await.expect(200);
    assert_eq!(
        (r.body["rating"]["average"].as_f64(), r.body["rating"]["count"].as_i64()),
        (Some(2.0), Some(1))
    );
    let r = anyone.get("/api/v1/marketplace/plugins?sort=rating").await.expect(200);
    assert_eq!(r.body["data"][0]["installs"], 1);
    t.delete(review_path).await.expect(204);
    s.stop().await;
}

#[tokio::test]
async fn only_admins_see_grants_and_packages_others_see_which_plugins_are_on() {
    let (s, _acme) = published(&[1]).await;
    let t = s.tenant("Acme").await;
    t.post(INSTALLATIONS, pinned("1.0.0")).await.expect(201);
    let member = s.user(&t, "Max", "member").await;
    let reader = s.user(&t, "Rita", "read-only").await;

    let full = t.get(INSTALLATIONS).await.expect(200).json();
    assert!(
        full["data"][0]["grants"].is_array() && full["data"][0]["digest"].is_string(),
        "{full}"
    );
    for who in [&member, &reader] {
        let seen = who.get(INSTALLATIONS).await.expect(200).json();
        assert_eq!(
            seen["data"],
            json!([{ "plugin_id": "counter", "version": "1.0.0", "state": "enabled" }])
        );
        let one = who.get(&format!("{INSTALLATIONS}/counter")).await.expect(200).json();
        assert_eq!(
            one,
            json!({ "plugin_id": "counter", "version": "1.0.0", "state": "enabled" })
        );
    }
    // A disabled plugin is not theirs to know of.
    t.request("POST", &format!("{INSTALLATIONS}/counter/disable"))
        .await
        .expect(200);
    assert_eq!(member.get(INSTALLATIONS).await.expect(200).json()["data"], json!([]));
    member
        .get(&format!("{INSTALLATIONS}/counter"))
        .await
        .expect_problem(404, "not-found");
    s.stop().await;
}
