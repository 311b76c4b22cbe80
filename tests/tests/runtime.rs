//! The sandboxed runtime against real components built from source: the hello
//! example and a hostile guest. Every failure must be confined to its call, carry its
//! own error, and leave the runtime serving the next call.

use std::time::{Duration, Instant};

use plinth_core::manifest::Role;
use plinth_runtime::engine::{CallError, HostLimits, RuntimeConfig};
use plinth_runtime::sandbox::{Sandbox, SandboxPlugin, request};
use plinth_tests::{bundled, load_guest, sandbox, test_runtime_config};
use serde_json::Value;

async fn get(sandbox: &Sandbox, plugin: &SandboxPlugin, path: &str) -> Result<(u16, Value), CallError> {
    let outcome = sandbox
        .request(plugin, Role::Owner, request("GET", path, vec![], vec![]))
        .await
        .expect("routed");
    outcome
        .result
        .map(|r| (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null)))
}

async fn assert_still_serves(sandbox: &Sandbox, plugin: &SandboxPlugin) {
    let (status, body) = get(sandbox, plugin, "/ok")
        .await
        .expect("a normal call after the failure succeeds");
    assert_eq!((status, body), (200, serde_json::json!({ "ok": true })));
}

#[tokio::test]
async fn hello_greets_and_counts_per_tenant() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let (manifest, component) = bundled("hello");
    let hello = sb.load(manifest, component).await.unwrap();

    let (status, body) = get(&sb, &hello, "/greet/Ada").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["greeting"], "Hello, Ada!");

    let post = |sb: Sandbox| {
        let hello = hello.clone();
        async move {
            let out = sb
                .request(&hello, Role::Member, request("POST", "/count", vec![], vec![]))
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&out.result.unwrap().body).unwrap()["count"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(post(sb.clone()).await, 1);
    assert_eq!(post(sb.clone()).await, 2);
    // Another tenant has its own storage: the plugin cannot name a tenant.
    assert_eq!(post(sb.acting_as("other-tenant", Some("someone"))).await, 1);
    assert_eq!(post(sb.clone()).await, 3);
}

/// A component built against an older minor version of the WIT world (whose
/// `records` interface lacked functions the host now has) links and runs unchanged.
#[tokio::test]
async fn components_built_against_an_older_minor_wit_still_run() {
    let old = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/crm-probe-wit-1.2.0.wasm"
    ))
    .unwrap();
    let (manifest, current) = plinth_tests::guest("crm-probe");
    assert_ne!(old, current, "the fixture is the old build, not today's");
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let probe = sb.load(manifest, old).await.expect("a 1.2.0 component loads");
    let body = serde_json::to_vec(&serde_json::json!({ "name": "Acme", "country": "DE" })).unwrap();
    let out = sb
        .request(
            &probe,
            Role::Member,
            request(
                "POST",
                "/accounts",
                vec![("content-type".into(), "application/json".into())],
                body,
            ),
        )
        .await
        .unwrap();
    let created = out.result.unwrap();
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let id = serde_json::from_slice::<Value>(&created.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = get(&sb, &probe, &format!("/accounts/{id}")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["fields"]["name"], "Acme");
}

#[tokio::test]
async fn endpoint_routing_and_roles_follow_the_manifest() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let (manifest, component) = bundled("hello");
    let hello = sb.load(manifest, component).await.unwrap();
    let err = sb
        .request(&hello, Role::ReadOnly, request("POST", "/count", vec![], vec![]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("requires role member"), "{err}");
    let err = sb
        .request(&hello, Role::Owner, request("GET", "/count", vec![], vec![]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("declared: POST"), "{err}");
    let err = sb
        .request(&hello, Role::Owner, request("GET", "/secret", vec![], vec![]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no endpoint at /secret"), "{err}");
}

#[tokio::test]
async fn infinite_loop_is_stopped_at_its_deadline() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let hostile = load_guest(&sb, "hostile").await;
    let started = Instant::now();
    let err = get(&sb, &hostile, "/loop").await.unwrap_err();
    let took = started.elapsed();
    let deadline = Duration::from_millis(500); // hostile's manifest: timeout_ms = 500
    assert!(
        matches!(err, CallError::Timeout { limit } if limit == deadline),
        "{err:?}"
    );
    assert!(took >= deadline && took < deadline * 2, "stopped after {took:?}");
    assert_still_serves(&sb, &hostile).await;
}

#[tokio::test]
async fn other_calls_carry_on_while_one_loops() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let hostile = load_guest(&sb, "hostile").await;
    let looping = {
        let (sb, hostile) = (sb.clone(), hostile.clone());
        tokio::spawn(async move { get(&sb, &hostile, "/loop").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..20 {
        assert_still_serves(&sb, &hostile).await;
    }
    assert!(
        !looping.is_finished(),
        "the normal calls finished while the loop was still running"
    );
    assert!(matches!(looping.await.unwrap(), Err(CallError::Timeout { .. })));
}

#[tokio::test]
async fn memory_bomb_is_refused_at_the_cap() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let hostile = load_guest(&sb, "hostile").await;
    let err = get(&sb, &hostile, "/memory-bomb").await.unwrap_err();
    assert!(
        matches!(err, CallError::MemoryExhausted { limit_bytes } if limit_bytes == 64 << 20),
        "{err:?}"
    );
    assert_still_serves(&sb, &hostile).await;
}

#[tokio::test]
async fn deep_recursion_traps_as_stack_overflow() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let hostile = load_guest(&sb, "hostile").await;
    let err = get(&sb, &hostile, "/recurse").await.unwrap_err();
    assert!(
        matches!(&err, CallError::Trap { reason, .. } if reason == "stack overflow"),
        "{err:?}"
    );
    assert_still_serves(&sb, &hostile).await;
}

#[tokio::test]
async fn panic_is_reported_as_a_crash_with_its_message_kept_for_logs() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let hostile = load_guest(&sb, "hostile").await;
    let err = get(&sb, &hostile, "/panic").await.unwrap_err();
    match &err {
        CallError::Trap { reason, detail } => {
            assert_eq!(reason, "panic");
            assert!(detail.contains("the hostile guest panics on purpose"), "{detail}");
            // The caller-facing message names the kind of crash, not the guest's internals.
            assert!(!err.to_string().contains("on purpose"));
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_still_serves(&sb, &hostile).await;
}

#[tokio::test]
async fn oversize_responses_fail_the_call() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let hostile = load_guest(&sb, "hostile").await;
    let err = get(&sb, &hostile, "/respond/10").await.unwrap_err();
    assert!(
        matches!(err, CallError::ResponseTooLarge { size, limit } if size == 10 << 20 && limit == 8 << 20),
        "{err:?}"
    );
    // 100 MiB cannot even be built inside the default 64 MiB memory cap.
    let err = get(&sb, &hostile, "/respond/100").await.unwrap_err();
    assert!(matches!(err, CallError::MemoryExhausted { .. }), "{err:?}");
    assert_still_serves(&sb, &hostile).await;
}

#[tokio::test]
async fn a_100_mib_response_hits_the_response_cap_when_memory_allows_it() {
    // Building 100 MiB takes seconds on a busy 2-core machine: allow the 20 s the
    // manifest asks for (the default host maximum of 2 s would clamp it).
    let limits = HostLimits {
        max_memory_bytes: 256 << 20,
        max_timeout: std::time::Duration::from_secs(20),
        ..HostLimits::default()
    };
    let (sb, _dir) = sandbox(RuntimeConfig {
        limits,
        ..test_runtime_config()
    })
    .await;
    let (mut manifest, component) = plinth_tests::guest("hostile");
    manifest.limits.memory_mib = Some(256);
    manifest.limits.timeout_ms = Some(20_000);
    let hostile = sb.load(manifest, component).await.unwrap();
    let err = get(&sb, &hostile, "/respond/100").await.unwrap_err();
    assert!(
        matches!(err, CallError::ResponseTooLarge { size, .. } if size == 100 << 20),
        "{err:?}"
    );
    assert_still_serves(&sb, &hostile).await;
}

#[tokio::test]
async fn undeclared_capability_is_denied_not_trapped() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let hostile = load_guest(&sb, "hostile").await;
    let (status, body) = get(&sb, &hostile, "/undeclared").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body["denied"].as_str().unwrap().contains("capability `config`"),
        "{body}"
    );
}

#[tokio::test]
async fn conflicting_storage_writes_get_conflict() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let hostile = load_guest(&sb, "hostile").await;
    let out = sb
        .request(&hostile, Role::Owner, request("POST", "/conflict", vec![], vec![]))
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&out.result.unwrap().body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "first": 1, "second": 2, "duplicate_insert": "conflict", "stale_replace": "conflict" })
    );
    assert_still_serves(&sb, &hostile).await;
}

#[tokio::test]
async fn invalid_status_is_a_distinct_error() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let hostile = load_guest(&sb, "hostile").await;
    let err = get(&sb, &hostile, "/bad-status").await.unwrap_err();
    assert!(matches!(err, CallError::InvalidResponse(_)), "{err:?}");
    assert_still_serves(&sb, &hostile).await;
}

#[tokio::test]
async fn a_chatty_guest_is_bounded_but_not_broken() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let hostile = load_guest(&sb, "hostile").await;
    let out = sb
        .request(&hostile, Role::Owner, request("GET", "/chatty", vec![], vec![]))
        .await
        .unwrap();
    assert_eq!(out.result.unwrap().status, 200);
    assert_eq!(out.report.stats.log_lines, 5000);
}
