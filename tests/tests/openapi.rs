//! The OpenAPI 3.1 document: per API version, per tenant (custom objects, installed
//! plugins' endpoints with their body schemas), and valid according to an independent
//! validator (openapi-spec-validator, from PyPI).

use plinth_tests::{TestServer, guest_files};
use serde_json::json;

#[tokio::test]
async fn the_document_is_per_version_per_tenant_and_valid() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    let (manifest, component) = guest_files("counter-v1");
    assert_eq!(
        s.publish(&acme.token, acme.pack(&manifest, &component)).await.status,
        201
    );
    let t = s.tenant("T").await;
    s.call(
        "POST",
        "/api/v1/installations",
        Some(&t.key),
        Some(json!({ "plugin": "counter", "grants": "all" })),
    )
    .await;
    let project = json!({ "name": "project", "label": "Project", "fields": [{ "name": "title", "type": "text", "required": true }] });
    assert_eq!(
        s.call("POST", "/api/v1/objects", Some(&t.key), Some(project))
            .await
            .status,
        201
    );

    let newest = s
        .call_in("2027-01-15", "GET", "/api/v1/openapi.json", Some(&t.key), None)
        .await;
    assert_eq!(newest.status, 200, "{}", newest.text);
    let doc = &newest.body;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], "2027-01-15");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/records/opportunity",
        "/api/v1/records/project/{id}",
        "/api/v1/installations/{plugin}/upgrade",
        "/api/v1/events",
        "/api/v1/events/subscriptions",
        "/api/v1/events/dead-letters",
        "/api/v1/events/dead-letters/{id}",
        "/api/v1/events/dead-letters/{id}/replay",
        "/api/v1/installations/{plugin}/timers",
        "/api/v1/installations/{plugin}/timers/{key}",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert_eq!(
        doc["components"]["schemas"]["Fields_opportunity"]["properties"]["amount"]["type"],
        "object"
    );
    // The plugin's declared endpoint, with its JSON Schema and minimum role.
    let echo = &doc["paths"]["/api/v1/plugins/counter/echo"]["post"];
    assert_eq!(echo["x-minimum-role"], "admin");
    assert_eq!(
        echo["requestBody"]["content"]["application/json"]["schema"]["required"],
        json!(["name"])
    );

    let old = s
        .call_in("2026-11-01", "GET", "/api/v1/openapi.json", Some(&t.key), None)
        .await;
    assert_eq!(
        old.body["components"]["schemas"]["Fields_opportunity"]["properties"]["amount"]["type"],
        "number"
    );
    assert_eq!(
        old.body["components"]["schemas"]["Fields_opportunity"]["properties"]["currency"]["type"],
        "string"
    );
    // Anonymous callers get the standard objects only; other tenants do not see this one's plugin.
    let anon = s.call("GET", "/api/v1/openapi.json", None, None).await;
    assert!(
        !anon.body["paths"]
            .as_object()
            .unwrap()
            .contains_key("/api/v1/records/project")
    );
    let other = s.tenant("Other").await;
    let theirs = s.call("GET", "/api/v1/openapi.json", Some(&other.key), None).await;
    assert!(
        !theirs.body["paths"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("/api/v1/plugins/counter"))
    );

    // Independent validation.
    let has_validator = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_validator {
        assert!(
            std::env::var_os("PLINTH_REQUIRE_PYTHON_TOOLS").is_none(),
            "pip install openapi-spec-validator"
        );
        eprintln!("skipping the independent validation: pip install openapi-spec-validator");
    } else {
        for (name, doc) in [("newest", &newest.body), ("old", &old.body)] {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), doc.to_string()).unwrap();
            let out = std::process::Command::new("python3")
                .args(["-m", "openapi_spec_validator"])
                .arg(file.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    s.stop().await;
}
