//! The sandboxed runtime against real components built from source: the hello
//! example and a hostile guest. Every failure must be confined to its call, carry its
//! own error, and leave the runtime serving the next call.

use std::time::{Duration, Instant};

use plinth_core::manifest::Role;
use plinth_runtime::bindings::Response;
use plinth_runtime::engine::{CallError, CallOutcome, HostLimits, RuntimeConfig};
use plinth_runtime::sandbox::{Sandbox, SandboxPlugin, request};
use plinth_tests::{Guest, sandbox, test_runtime_config};
use serde_json::{Value, json};

/// Load `guest` into `sb`.
async fn load(sb: &Sandbox, guest: &Guest) -> SandboxPlugin {
    sb.load(guest.manifest(), guest.component().to_vec())
        .await
        .unwrap_or_else(|e| panic!("{} loads: {e}", guest.id()))
}

/// Send a request to `plugin` as `role` (with `body` as JSON, if any); it must pass
/// the routing and role checks.
async fn send(
    sb: &Sandbox,
    plugin: &SandboxPlugin,
    role: Role,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> CallOutcome<Response> {
    let (headers, body) = match body {
        Some(body) => (
            vec![("content-type".into(), "application/json".into())],
            serde_json::to_vec(&body).unwrap(),
        ),
        None => (vec![], vec![]),
    };
    sb.request(plugin, role, request(method, path, headers, body))
        .await
        .unwrap_or_else(|e| panic!("{method} {path} is routed: {e}"))
}

/// `GET path` as the owner: the status and JSON body, or the call's error.
async fn get(sb: &Sandbox, plugin: &SandboxPlugin, path: &str) -> Result<(u16, Value), CallError> {
    send(sb, plugin, Role::Owner, "GET", path, None)
        .await
        .result
        .map(|r| (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null)))
}

/// The hostile test guest, loaded in a sandbox of its own.
struct Hostile {
    sb: Sandbox,
    plugin: SandboxPlugin,
    _dir: tempfile::TempDir,
}

impl Hostile {
    /// As written, in the test runtime configuration.
    async fn load() -> Hostile {
        Hostile::load_with(test_runtime_config(), Guest::named("hostile")).await
    }

    /// With another runtime configuration and manifest.
    async fn load_with(config: RuntimeConfig, guest: Guest) -> Hostile {
        let (sb, dir) = sandbox(config).await;
        let plugin = load(&sb, &guest).await;
        Hostile { sb, plugin, _dir: dir }
    }

    async fn get(&self, path: &str) -> Result<(u16, Value), CallError> {
        get(&self.sb, &self.plugin, path).await
    }

    /// `GET path` fails, and the failure is confined to its call: the next call is
    /// served normally. Returns the failure.
    async fn failure(&self, path: &str) -> CallError {
        let err = match self.get(path).await {
            Ok((status, body)) => panic!("GET {path} answered {status}: {body}"),
            Err(err) => err,
        };
        self.assert_still_serves().await;
        err
    }

    async fn assert_still_serves(&self) {
        let (status, body) = self.get("/ok").await.expect("a normal call after the failure succeeds");
        assert_eq!((status, body), (200, json!({ "ok": true })));
    }
}

#[tokio::test]
async fn hello_greets_and_counts_per_tenant() {
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let hello = load(&sb, &Guest::bundled("hello")).await;

    let (status, body) = get(&sb, &hello, "/greet/Ada").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["greeting"], "Hello, Ada!");

    let count = |sb: Sandbox| {
        let hello = hello.clone();
        async move {
            let out = send(&sb, &hello, Role::Member, "POST", "/count", None).await;
            serde_json::from_slice::<Value>(&out.result.unwrap().body).unwrap()["count"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(count(sb.clone()).await, 1);
    assert_eq!(count(sb.clone()).await, 2);
    // Another tenant has its own storage: the plugin cannot name a tenant.
    assert_eq!(count(sb.acting_as("other-tenant", Some("someone"))).await, 1);
    assert_eq!(count(sb.clone()).await, 3);
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
    let probe = Guest::named("crm-probe");
    assert_ne!(old, probe.component(), "the fixture is the old build, not today's");
    let (sb, _dir) = sandbox(test_runtime_config()).await;
    let probe = load(&sb, &probe.with_component(old)).await;
    let out = send(
        &sb,
        &probe,
        Role::Member,
        "POST",
        "/accounts",
        Some(json!({ "name": "Acme", "country": "DE" })),
    )
    .await;
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
    let hello = load(&sb, &Guest::bundled("hello")).await;
    for (role, method, path, refusal) in [
        (Role::ReadOnly, "POST", "/count", "requires role member"),
        (Role::Owner, "GET", "/count", "declared: POST"),
        (Role::Owner, "GET", "/secret", "no endpoint at /secret"),
    ] {
        let err = sb
            .request(&hello, role, request(method, path, vec![], vec![]))
            .await
            .expect_err("refused before the plugin runs");
        assert!(err.to_string().contains(refusal), "{method} {path}: {err}");
    }
}

#[tokio::test]
async fn infinite_loop_is_stopped_at_its_deadline() {
    let hostile = Hostile::load().await;
    let started = Instant::now();
    let err = hostile.get("/loop").await.unwrap_err();
    let took = started.elapsed();
    let deadline = Duration::from_millis(500); // hostile's manifest: timeout_ms = 500
    assert!(
        matches!(err, CallError::Timeout { limit } if limit == deadline),
        "{err:?}"
    );
    assert!(took >= deadline && took < deadline * 2, "stopped after {took:?}");
    hostile.assert_still_serves().await;
}

#[tokio::test]
async fn other_calls_carry_on_while_one_loops() {
    let hostile = Hostile::load().await;
    let looping = {
        let (sb, plugin) = (hostile.sb.clone(), hostile.plugin.clone());
        tokio::spawn(async move { get(&sb, &plugin, "/loop").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..20 {
        hostile.assert_still_serves().await;
    }
    assert!(
        !looping.is_finished(),
        "the normal calls finished while the loop was still running"
    );
    assert!(matches!(looping.await.unwrap(), Err(CallError::Timeout { .. })));
}

#[tokio::test]
async fn memory_bomb_is_refused_at_the_cap() {
    let err = Hostile::load().await.failure("/memory-bomb").await;
    assert!(
        matches!(err, CallError::MemoryExhausted { limit_bytes } if limit_bytes == 64 << 20),
        "{err:?}"
    );
}

#[tokio::test]
async fn deep_recursion_traps_as_stack_overflow() {
    let err = Hostile::load().await.failure("/recurse").await;
    assert!(
        matches!(&err, CallError::Trap { reason, .. } if reason == "stack overflow"),
        "{err:?}"
    );
}

#[tokio::test]
async fn panic_is_reported_as_a_crash_with_its_message_kept_for_logs() {
    let err = Hostile::load().await.failure("/panic").await;
    match &err {
        CallError::Trap { reason, detail } => {
            assert_eq!(reason, "panic");
            assert!(detail.contains("the hostile guest panics on purpose"), "{detail}");
            // The caller-facing message names the kind of crash, not the guest's internals.
            assert!(!err.to_string().contains("on purpose"));
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn oversize_responses_fail_the_call() {
    let hostile = Hostile::load().await;
    let err = hostile.failure("/respond/10").await;
    assert!(
        matches!(err, CallError::ResponseTooLarge { size, limit } if size == 10 << 20 && limit == 8 << 20),
        "{err:?}"
    );
    // 100 MiB cannot even be built inside the default 64 MiB memory cap.
    let err = hostile.failure("/respond/100").await;
    assert!(matches!(err, CallError::MemoryExhausted { .. }), "{err:?}");
}

#[tokio::test]
async fn a_100_mib_response_hits_the_response_cap_when_memory_allows_it() {
    // Building 100 MiB takes seconds on a busy 2-core machine: allow the 20 s the
    // manifest asks for (the default host maximum of 2 s would clamp it).
    let limits = HostLimits {
        max_memory_bytes: 256 << 20,
        max_timeout: Duration::from_secs(20),
        ..HostLimits::default()
    };
    let config = RuntimeConfig {
        limits,
        ..test_runtime_config()
    };
    let roomy = Guest::named("hostile")
        .set("limits.memory_mib", 256)
        .set("limits.timeout_ms", 20_000);
    let err = Hostile::load_with(config, roomy).await.failure("/respond/100").await;
    assert!(
        matches!(err, CallError::ResponseTooLarge { size, .. } if size == 100 << 20),
        "{err:?}"
    );
}

#[tokio::test]
async fn undeclared_capability_is_denied_not_trapped() {
    let hostile = Hostile::load().await;
    let (status, body) = hostile.get("/undeclared").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body["denied"].as_str().unwrap().contains("capability `config`"),
        "{body}"
    );
}

#[tokio::test]
async fn conflicting_storage_writes_get_conflict() {
    let hostile = Hostile::load().await;
    let out = send(&hostile.sb, &hostile.plugin, Role::Owner, "POST", "/conflict", None).await;
    let body: Value = serde_json::from_slice(&out.result.unwrap().body).unwrap();
    assert_eq!(
        body,
        json!({ "first": 1, "second": 2, "duplicate_insert": "conflict", "stale_replace": "conflict" })
    );
    hostile.assert_still_serves().await;
}

#[tokio::test]
async fn invalid_status_is_a_distinct_error() {
    let err = Hostile::load().await.failure("/bad-status").await;
    assert!(matches!(err, CallError::InvalidResponse(_)), "{err:?}");
}

#[tokio::test]
async fn a_chatty_guest_is_bounded_but_not_broken() {
    let hostile = Hostile::load().await;
    let out = send(&hostile.sb, &hostile.plugin, Role::Owner, "GET", "/chatty", None).await;
    assert_eq!(out.result.unwrap().status, 200);
    assert_eq!(out.report.stats.log_lines, 5000);
}
