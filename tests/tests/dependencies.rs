//! Installing plugins with dependencies: a chain installs after confirmation, a
//! conflict and a cycle are refused with the chain that causes them, and a plugin
//! that others depend on cannot be uninstalled.

use plinth_tests::{TestPublisher, TestServer, bundled};
use serde_json::json;

fn manifest(id: &str, version: &str, deps: &[(&str, &str)]) -> String {
    let mut m = format!(
        "[plugin]\nid = \"{id}\"\nname = \"{id}\"\nversion = \"{version}\"\npublisher = \"acme\"\napi = \"^1\"\n\n\
         [capabilities]\nstorage = true\n\n[[endpoints]]\nmethod = \"GET\"\npath = \"/greet/{{name}}\"\n"
    );
    if !deps.is_empty() {
        m.push_str("\n[dependencies]\n");
        for (d, req) in deps {
            m.push_str(&format!("{d} = \"{req}\"\n"));
        }
    }
    m
}

async fn publish(s: &TestServer, p: &TestPublisher, id: &str, version: &str, deps: &[(&str, &str)]) {
    let (_, component) = bundled("hello");
    let r = s
        .publish(&p.token, p.pack(&manifest(id, version, deps), &component))
        .await;
    assert_eq!(r.status, 201, "{id} {version}: {}", r.text);
}

#[tokio::test]
async fn dependency_chains_conflicts_cycles_and_uninstall_refusal() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    publish(&s, &acme, "base", "1.0.0", &[]).await;
    publish(&s, &acme, "base", "2.0.0", &[]).await;
    publish(&s, &acme, "middle", "1.0.0", &[("base", "^1")]).await;
    publish(&s, &acme, "top", "1.0.0", &[("middle", "^1")]).await;
    publish(&s, &acme, "modern", "1.0.0", &[("base", "^2")]).await;
    // A cycle can be published (each version is valid alone) but never installed.
    publish(&s, &acme, "ping", "1.0.0", &[("pong", "^1")]).await;
    publish(&s, &acme, "pong", "1.0.0", &[("ping", "^1")]).await;
    let t = s.tenant("T").await;
    let install = |body: serde_json::Value| {
        let (s, key) = (&s, t.key.clone());
        async move { s.call("POST", "/api/v1/installations", Some(&key), Some(body)).await }
    };

    // The chain top -> middle -> base needs confirmation, shows the plan, then installs all.
    let r = install(json!({ "plugin": "top", "grants": "all" })).await;
    assert_eq!(
        (r.status, r.body["type"].as_str()),
        (409, Some("https://plinth.dev/problems/confirmation-required")),
        "{}",
        r.text
    );
    let plan: Vec<(String, String)> = r.body["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["plugin"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        plan,
        [
            ("base".into(), "1.0.0".into()),
            ("middle".into(), "1.0.0".into()),
            ("top".into(), "1.0.0".into())
        ]
    );
    assert_eq!(
        s.call("GET", "/api/v1/installations", Some(&t.key), None).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let r = install(json!({ "plugin": "top", "grants": "all", "confirm_dependencies": true })).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = s.call("GET", "/api/v1/plugins/base/greet/x", Some(&t.key), None).await;
    assert_eq!(r.status, 200, "the dependency works: {}", r.text);

    // modern needs base ^2 but base 1.0.0 is installed.
    let r = install(json!({ "plugin": "modern", "grants": "all", "confirm_dependencies": true })).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["chain"], json!(["modern"]));
    assert!(
        r.body["detail"].as_str().unwrap().contains("1.0.0 is installed"),
        "{}",
        r.text
    );

    // ping <-> pong.
    let r = install(json!({ "plugin": "ping", "grants": "all", "confirm_dependencies": true })).await;
    assert_eq!(
        (r.status, r.body["chain"].clone()),
        (409, json!(["ping", "pong", "ping"])),
        "{}",
        r.text
    );

    // base and middle are depended on.
    let r = s.call("DELETE", "/api/v1/installations/base", Some(&t.key), None).await;
    assert_eq!(
        (r.status, r.body["dependents"].clone()),
        (409, json!(["middle"])),
        "{}",
        r.text
    );
    assert_eq!(
        s.call("DELETE", "/api/v1/installations/top", Some(&t.key), None)
            .await
            .status,
        204
    );
    assert_eq!(
        s.call("DELETE", "/api/v1/installations/middle", Some(&t.key), None)
            .await
            .status,
        204
    );
    assert_eq!(
        s.call("DELETE", "/api/v1/installations/base", Some(&t.key), None)
            .await
            .status,
        204
    );
    s.stop().await;
}
