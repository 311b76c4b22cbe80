//! The OpenAPI 3.1 document: per API version, per tenant (custom objects, installed
//! plugins' endpoints with their body schemas), and valid according to an independent
//! validator (openapi-spec-validator, from PyPI).

use plinth_tests::{Guest, TestServer};
use serde_json::{Value, json};

const DOC: &str = "/api/v1/openapi.json";

/// Whether `doc` documents a path for which `wanted` holds.
fn has_path(doc: &Value, wanted: impl Fn(&str) -> bool) -> bool {
    doc["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("no `paths` in {doc}"))
        .keys()
        .any(|p| wanted(p))
}

/// `doc` is valid according to openapi-spec-validator, when it is installed (the
/// test fails without it if `PLINTH_REQUIRE_PYTHON_TOOLS` is set).
fn assert_valid_openapi(docs: &[(&str, &Value)]) {
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
        return;
    }
    for (name, doc) in docs {
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

#[tokio::test]
async fn the_document_is_per_version_per_tenant_and_valid() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    acme.publish(&s, &Guest::named("counter-v1")).await.expect(201);
    let t = s.tenant("T").await;
    s.install(&t, "counter", json!("all")).await.expect(201);
    let project = json!({ "name": "project", "label": "Project", "fields": [{ "name": "title", "type": "text", "required": true }] });
    t.post("/api/v1/objects", project).await.expect(201);

    let newest = t.get(DOC).version("2027-01-15").await.expect(200).json();
    assert_eq!(newest["openapi"], "3.1.0");
    assert_eq!(newest["info"]["version"], "2027-01-15");
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
        assert!(has_path(&newest, |k| k == p), "{p} missing");
    }
    let property_type = |doc: &Value, field: &str| {
        doc["components"]["schemas"]["Fields_opportunity"]["properties"][field]["type"].clone()
    };
    assert_eq!(property_type(&newest, "amount"), "object");
    // The plugin's declared endpoint, with its JSON Schema and minimum role.
    let echo = &newest["paths"]["/api/v1/plugins/counter/echo"]["post"];
    assert_eq!(echo["x-minimum-role"], "admin");
    assert_eq!(
        echo["requestBody"]["content"]["application/json"]["schema"]["required"],
        json!(["name"])
    );

    let old = t.get(DOC).version("2026-11-01").await.expect(200).json();
    assert_eq!(property_type(&old, "amount"), "number");
    assert_eq!(property_type(&old, "currency"), "string");
    // Anonymous callers get the standard objects only; other tenants do not see this one's plugin.
    let anonymous = s.anonymous().get(DOC).await.expect(200).json();
    assert!(!has_path(&anonymous, |k| k == "/api/v1/records/project"));
    let other = s.tenant("Other").await;
    let theirs = other.get(DOC).await.expect(200).json();
    assert!(!has_path(&theirs, |k| k.starts_with("/api/v1/plugins/counter")));

    assert_valid_openapi(&[("newest", &newest), ("old", &old)]);
    s.stop().await;
}
