//! Installing plugins with dependencies: a chain installs after confirmation, a
//! conflict and a cycle are refused with the chain that causes them, and a plugin
//! that others depend on cannot be uninstalled.

use plinth_tests::{Guest, TestServer};
use serde_json::{Value, json};

/// hello's component under another id and version, depending on `deps`.
fn plugin(id: &str, version: &str, deps: &[(&str, &str)]) -> Guest {
    let deps: serde_json::Map<String, Value> = deps.iter().map(|(d, req)| (d.to_string(), json!(req))).collect();
    Guest::bundled("hello")
        .set("plugin.id", id)
        .set("plugin.name", id)
        .set("plugin.version", version)
        .set("plugin.publisher", "acme")
        .set("dependencies", deps)
}

#[tokio::test]
async fn dependency_chains_conflicts_cycles_and_uninstall_refusal() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    for (id, version, deps) in [
        ("base", "1.0.0", &[][..]),
        ("base", "2.0.0", &[]),
        ("middle", "1.0.0", &[("base", "^1")]),
        ("top", "1.0.0", &[("middle", "^1")]),
        ("modern", "1.0.0", &[("base", "^2")]),
        // A cycle can be published (each version is valid alone) but never installed.
        ("ping", "1.0.0", &[("pong", "^1")]),
        ("pong", "1.0.0", &[("ping", "^1")]),
    ] {
        acme.publish(&s, &plugin(id, version, deps)).await.expect(201);
    }
    let t = s.tenant("T").await;

    // The chain top -> middle -> base needs confirmation, shows the plan, then installs all.
    let r = t
        .post("/api/v1/installations", json!({ "plugin": "top", "grants": "all" }))
        .await
        .expect_problem(409, "confirmation-required");
    let plan: Vec<(&str, &str)> = r.body["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["plugin"].as_str().unwrap(), p["version"].as_str().unwrap()))
        .collect();
    assert_eq!(plan, [("base", "1.0.0"), ("middle", "1.0.0"), ("top", "1.0.0")]);
    let installed = t.get("/api/v1/installations").await.expect(200).json();
    assert_eq!(installed["data"], json!([]), "nothing is installed before confirmation");
    let confirmed = |plugin: &str| json!({ "plugin": plugin, "grants": "all", "confirm_dependencies": true });
    t.post("/api/v1/installations", confirmed("top")).await.expect(201);
    t.get("/api/v1/plugins/base/greet/x").await.expect(200);

    // modern needs base ^2 but base 1.0.0 is installed.
    let r = t.post("/api/v1/installations", confirmed("modern")).await.expect(409);
    assert_eq!(r.body["chain"], json!(["modern"]));
    assert!(
        r.body["detail"].as_str().unwrap().contains("1.0.0 is installed"),
        "{}",
        r.text
    );

    // ping <-> pong.
    let r = t.post("/api/v1/installations", confirmed("ping")).await.expect(409);
    assert_eq!(r.body["chain"], json!(["ping", "pong", "ping"]));

    // base and middle are depended on; once their dependents go, they can go too.
    let r = t.delete("/api/v1/installations/base").await.expect(409);
    assert_eq!(r.body["dependents"], json!(["middle"]));
    for plugin in ["top", "middle", "base"] {
        t.delete(&format!("/api/v1/installations/{plugin}")).await.expect(204);
    }
    s.stop().await;
}
