//! API versioning through the real server: selection precedence, refusals of unknown
//! and retired versions, lifecycle headers, `API-Version` on every response, the
//! operator's lifecycle endpoints and the public version list.
//!
//! Requests here send `Accept-Version` only where a test says so: without it the key's
//! pin or the tenant's default decides, and that is what is under test.

use plinth_tests::{Call, Client, Reply, TestServer};
use serde_json::{Value, json};

const OLD: &str = "2026-11-01";
const NEW: &str = "2027-01-15";
const PROBE: &str = "/api/v1/usage";
/// What a deprecated 2026-11-01 answers: `Deprecation` (RFC 9745: @<unix seconds> of
/// 2026-12-01T00:00:00Z) and `Sunset` (RFC 8594 / RFC 9110 IMF-fixdate).
const DEPRECATED_SINCE: &str = "@1796083200";
const SUNSET: &str = "Wed, 30 Jun 2027 00:00:00 GMT";
const SUCCESSOR_LINK: &str = "<https://plinth.dev/api/versions/2027-01-15>; rel=\"successor-version\"";

/// `GET path` asking for `version`, or sending no `Accept-Version` at all.
fn get_in(caller: &Client, path: &str, version: Option<&str>) -> Call {
    match version {
        Some(v) => caller.get(path).version(v),
        None => caller.get(path).unversioned(),
    }
}

/// A new key of `caller`'s user pinned to `version`, made through the keys API.
async fn pinned(caller: &Client, version: &str) -> Client {
    let created = caller
        .post("/api/v1/keys", json!({ "name": "pinned", "api_version": version }))
        .await
        .expect(201)
        .json();
    caller.with_key(created["secret"].as_str().expect("the new key's secret"))
}

/// The owner of a new tenant whose default version is `version` (operator API).
async fn tenant_defaulting_to(s: &TestServer, name: &str, version: &str) -> Client {
    let body = json!({
        "name": name,
        "owner_email": format!("owner@{}.test", name.to_lowercase()),
        "owner_name": "Owner",
        "default_api_version": version,
    });
    let created = s
        .operator()
        .await
        .post("/api/v1/operator/tenants", body)
        .await
        .expect(201)
        .json();
    s.client(created["secret"].as_str().expect("the owner's key"))
}

/// `PUT /api/v1/operator/versions/{version}`.
fn set_lifecycle(caller: &Client, version: &str, body: Value) -> Call {
    caller.put(&format!("/api/v1/operator/versions/{version}"), body)
}

/// Make 2027-01-15 current and 2026-11-01 deprecated (announced 2026-12-01, sunset
/// 2027-06-30).
async fn deprecate_first_version(op: &Client) {
    set_lifecycle(op, NEW, json!({"lifecycle": "current"}))
        .await
        .expect(200);
    set_lifecycle(
        op,
        OLD,
        json!({"lifecycle": "deprecated", "deprecation": "2026-12-01", "sunset": "2027-06-30"}),
    )
    .await
    .expect(200);
}

fn detail(r: &Reply) -> &str {
    r.body["detail"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn header_beats_key_pin_beats_tenant_default() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let a_new = pinned(&a, NEW).await;
    let b = tenant_defaulting_to(&s, "Beta", NEW).await;
    let b_old = pinned(&b, OLD).await;
    for (case, caller, asked, served) in [
        ("tenant default (2026-11-01)", &a.api, None, OLD),
        ("the header beats the tenant default", &a.api, Some(NEW), NEW),
        ("a key pin beats the tenant default", &a_new, None, NEW),
        ("the header beats the key pin", &a_new, Some(OLD), OLD),
        ("a tenant whose default is 2027-01-15", &b, None, NEW),
        ("a key pinned back to 2026-11-01", &b_old, None, OLD),
    ] {
        let r = get_in(caller, PROBE, asked).await.expect(200);
        assert_eq!(r.header("api-version"), Some(served), "{case}");
    }
    s.stop().await;
}

#[tokio::test]
async fn unknown_versions_are_400_listing_the_supported_ones() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let r = a
        .get(PROBE)
        .version("2025-01-01")
        .await
        .expect_problem(400, "unknown-api-version");
    assert_eq!(r.body["supported"], json!([OLD, NEW]));
    let said = detail(&r);
    assert!(
        said.contains("Accept-Version") && said.contains("2025-01-01") && said.contains("2026-11-01, 2027-01-15"),
        "{said}"
    );
    assert_eq!(r.header("api-version"), Some(OLD));

    // A key pinned to a version this host does not know is refused the same way,
    // naming the key as the source…
    let pinned = pinned(&a, "2024-01-01").await;
    let r = pinned.get(PROBE).unversioned().await.expect(400);
    assert!(detail(&r).contains("pinned"), "{}", r.text);
    // …unless the request names a good one.
    pinned.get(PROBE).version(NEW).await.expect(200);
    s.stop().await;
}

#[tokio::test]
async fn every_api_v1_response_carries_api_version_even_errors() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let member = s.user(&a, "Member", "member").await;
    let (anonymous, bogus) = (s.anonymous(), s.client("plk_bogus"));
    let cases = [
        (&a.api, PROBE, None, 200, OLD),
        (&a.api, "/api/v1/no-such-thing", None, 404, OLD),
        (&anonymous, "/api/v1/no-such-thing", None, 404, OLD),
        (&anonymous, PROBE, None, 401, OLD),
        (&bogus, PROBE, Some(NEW), 401, NEW),
        (&member.api, PROBE, None, 403, OLD),
        (&a.api, "/api/v1/usage?group_by=tenant", None, 422, OLD),
        (&a.api, "/api/v1/usage?colour=red", None, 400, OLD),
        (&a.api, PROBE, Some("nonsense"), 400, OLD),
    ];
    for (i, (caller, path, asked, status, served)) in cases.into_iter().enumerate() {
        let r = get_in(caller, path, asked).await.expect(status);
        assert_eq!(r.header("api-version"), Some(served), "case {i}");
    }
    // Outside /api/v1 there is no version.
    for path in ["/healthz", "/api/versions"] {
        let r = anonymous.get(path).unversioned().await.expect(200);
        assert_eq!(r.header("api-version"), None, "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn operator_lifecycle_changes_take_effect_on_the_next_request() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let op = s.operator().await;

    // Not current → nothing is deprecated yet.
    let r = a.get(PROBE).unversioned().await.expect(200);
    assert_eq!(r.header("deprecation"), None);

    // The only current version cannot be deprecated.
    let r = set_lifecycle(&op, OLD, json!({"lifecycle": "deprecated"}))
        .await
        .expect(409);
    assert!(detail(&r).contains("only current"), "{}", r.text);

    deprecate_first_version(&op).await;
    let r = a.get(PROBE).unversioned().await.expect(200);
    assert_eq!(r.header("api-version"), Some(OLD));
    assert_eq!(r.header("deprecation"), Some(DEPRECATED_SINCE));
    assert_eq!(r.header("sunset"), Some(SUNSET));
    assert_eq!(r.header("link"), Some(SUCCESSOR_LINK));
    // Deprecation headers ride on errors too.
    let r = a.get("/api/v1/no-such-thing").unversioned().await.expect(404);
    assert_eq!(r.header("deprecation"), Some(DEPRECATED_SINCE));
    // The successor itself is not deprecated.
    let r = a.get(PROBE).version(NEW).await.expect(200);
    assert_eq!(
        (r.header("deprecation"), r.header("sunset"), r.header("link")),
        (None, None, None)
    );

    // Retired → 410 naming the successor, on the very next request.
    let r = set_lifecycle(&op, OLD, json!({"lifecycle": "retired"}))
        .await
        .expect(200);
    assert_eq!(r.body["sunset"], "2027-06-30", "retiring keeps the announced dates");
    let r = a
        .get(PROBE)
        .unversioned()
        .await
        .expect_problem(410, "api-version-retired");
    assert_eq!(r.body["successor"], NEW);
    assert!(detail(&r).contains("use 2027-01-15"), "{}", r.text);
    assert_eq!(r.header("link"), Some(SUCCESSOR_LINK));
    // With 2026-11-01 retired, the fallback moves to the newest current version.
    assert_eq!(r.header("api-version"), Some(NEW));
    a.get(PROBE).version(OLD).await.expect(410);
    a.get(PROBE).version(NEW).await.expect(200);
    // Retired versions are no longer listed as supported.
    let r = a.get(PROBE).version("1999-01-01").await.expect(400);
    assert_eq!(r.body["supported"], json!([NEW]));

    // A mistaken retirement can be undone.
    set_lifecycle(&op, OLD, json!({"lifecycle": "current"}))
        .await
        .expect(200);
    let r = a.get(PROBE).unversioned().await.expect(200);
    assert_eq!(r.header("deprecation"), None);
    s.stop().await;
}

#[tokio::test]
async fn operator_endpoints_validate_and_need_the_operator_token() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let op = s.operator().await;

    set_lifecycle(&op, "2030-01-01", json!({"lifecycle": "current"}))
        .await
        .expect(404);

    let r = set_lifecycle(&op, OLD, json!({"lifecycle": "gone", "sunset": "30/06/2027"}))
        .await
        .expect(422);
    assert_eq!(r.problem_fields(), ["lifecycle", "sunset"]);

    let r = set_lifecycle(&op, OLD, json!({"lifecycle": "current", "colour": "red"}))
        .await
        .expect(400);
    assert!(r.text.contains("colour"), "{}", r.text);

    set_lifecycle(&op, OLD, json!({"lifecycle": "preview"}))
        .await
        .expect(409);

    set_lifecycle(&op, NEW, json!({"lifecycle": "current"}))
        .await
        .expect(200);
    let r = set_lifecycle(
        &op,
        OLD,
        json!({"lifecycle": "deprecated", "deprecation": "2027-01-01", "sunset": "2026-12-31"}),
    )
    .await
    .expect(422);
    assert_eq!(r.problem_fields(), ["sunset"]);
    let r = set_lifecycle(&op, NEW, json!({"lifecycle": "deprecated"}))
        .await
        .expect(422);
    assert_eq!(r.problem_fields(), ["successor"]);

    // Tenant keys and anonymous callers are not operators.
    set_lifecycle(&a, OLD, json!({"lifecycle": "current"}))
        .await
        .expect(401);
    s.anonymous().get("/api/v1/operator/versions").await.expect(401);

    let listed = op.get("/api/v1/operator/versions").await.expect(200).json();
    assert_eq!(listed["versions"][1]["lifecycle"], "current");
    assert!(listed["versions"][1]["overridden_at"].is_string());
    assert!(listed["versions"][0]["overridden_at"].is_null());
    s.stop().await;
}

#[tokio::test]
async fn public_version_list_is_a_changelog() {
    let s = TestServer::start().await;
    let list = s.anonymous().get("/api/versions").await.expect(200).json();
    assert_eq!(list["default_version"], OLD);
    let versions = list["versions"].as_array().cloned().unwrap_or_default();
    let names: Vec<_> = versions.iter().filter_map(|v| v["version"].as_str()).collect();
    assert_eq!(names, [OLD, NEW]);
    assert_eq!(versions[0]["lifecycle"], "current");
    assert_eq!(versions[0]["successor"], NEW);
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
    // (Storage on purpose: through the API the process itself would make the change.)
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    for (version, lifecycle, deprecation, sunset) in [
        (NEW, "current", None, None),
        (OLD, "deprecated", Some("2026-12-01"), Some("2027-06-30")),
    ] {
        s.db()
            .put_version_override(&plinth_core::store::versions::VersionOverride {
                version: version.into(),
                lifecycle: lifecycle.into(),
                deprecation: deprecation.map(str::to_string),
                sunset: sunset.map(str::to_string),
                successor: deprecation.map(|_| NEW.to_string()),
                updated_at: plinth_core::store::time::now(),
            })
            .await
            .expect("override stored");
    }
    let r = a.get(PROBE).unversioned().await.expect(200);
    assert_eq!(r.header("deprecation"), Some(DEPRECATED_SINCE));
    assert_eq!(r.header("sunset"), Some(SUNSET));
    s.stop().await;
}
