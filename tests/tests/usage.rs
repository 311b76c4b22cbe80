//! Client tracking and usage analytics through the real server: what the request log
//! records, the numbers `/api/v1/usage` derives from it (per version, client and
//! route, with error rates and percentiles), tenant isolation, the clients still on
//! deprecated versions, retention, and the final flush at shutdown.
//!
//! Logged requests send `Accept-Version` only where a test says so (otherwise the
//! tenant's default, 2026-11-01, is what the log records); the reports themselves are
//! asked for on 2027-01-15, after the window they count.

use plinth_core::store::request_log::{LogEntry, LogGroup};
use plinth_core::store::time;
use plinth_tests::{Call, Client, TestServer, fresh_db_reopenable, reopen_db};
use serde_json::{Value, json};

const OLD: &str = "2026-11-01";
const NEW: &str = "2027-01-15";
const USAGE: &str = "/api/v1/usage";

/// `GET path` as client `name` (`X-Client-Name`), in the tenant's default version.
fn get_as(caller: &Client, path: &str, name: &str) -> Call {
    caller.get(path).unversioned().header("x-client-name", name)
}

/// A request-log row of `tenant`, as the request log would write it.
fn entry(tenant: &str, at: &str, client: &str, version: &str, status: i64, latency_us: i64) -> LogEntry {
    LogEntry {
        tenant_id: tenant.into(),
        at: at.into(),
        key_id: Some("seeded-key".into()),
        client: Some(client.into()),
        api_version: version.into(),
        method: "POST".into(),
        route: "/api/v1/records/{object}".into(),
        status,
        latency_us,
    }
}

/// Everything recorded so far is in the database; returns a time after it all.
async fn settle(s: &TestServer) -> String {
    assert!(
        s.server.state.request_log.sync().await,
        "the request-log writer answers"
    );
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let to = time::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    to
}

/// `caller`'s usage report over `[from, to)`, grouped by `group_by`.
async fn usage(caller: &Client, from: &str, to: &str, group_by: &str) -> Value {
    caller
        .get(&format!("{USAGE}?from={from}&to={to}&group_by={group_by}"))
        .await
        .expect(200)
        .json()
}

/// `caller`'s clients on deprecated versions over `[from, to)`.
async fn deprecated_clients(caller: &Client, from: &str, to: &str) -> Vec<Value> {
    let r = caller
        .get(&format!("{USAGE}/deprecated-clients?from={from}&to={to}"))
        .await
        .expect(200);
    r.body["data"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no `data` list: {}", r.text))
}

/// `(key, requests, errors, server_errors)` of every group.
fn counts(report: &Value) -> Vec<(Value, i64, i64, i64)> {
    report["groups"]
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .map(|g| {
                    (
                        g["key"].clone(),
                        g["requests"].as_i64().unwrap_or(-1),
                        g["errors"].as_i64().unwrap_or(-1),
                        g["server_errors"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn group<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["key"] == key))
        .unwrap_or(&Value::Null)
}

/// Each group's key and request count in `tenant`'s request log over all time, read
/// from storage.
async fn logged_counts(db: &plinth_core::store::Db, tenant: &str, by: LogGroup) -> Vec<(Option<String>, i64)> {
    db.request_counts(tenant, "2000-01-01T00:00:00.000Z", "2100-01-01T00:00:00.000Z", by, 10)
        .await
        .expect("counts")
        .into_iter()
        .map(|g| (g.key, g.requests))
        .collect()
}

#[tokio::test]
async fn usage_counts_errors_and_latencies_per_group_for_one_tenant_only() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let b = s.tenant("Beta").await;
    let member = s.user(&a, "Member", "member").await;
    let from = time::now();

    for _ in 0..3 {
        get_as(&a, USAGE, "alpha").await.expect(200);
    }
    for _ in 0..2 {
        get_as(&a, USAGE, "beta").version(NEW).await.expect(200);
    }
    get_as(&a, "/api/v1/usage?group_by=nope", "alpha").await.expect(422);
    get_as(&a, "/api/v1/nothing/01JABCDEF", "alpha").await.expect(404);
    get_as(&a, USAGE, "beta").version("1999-01-01").await.expect(400);
    // A tenant key is no operator token.
    a.put("/api/v1/operator/versions/2026-11-01", json!({"lifecycle": "current"}))
        .unversioned()
        .header("x-client-name", "alpha")
        .await
        .expect(401);
    member
        .get(USAGE)
        .unversioned()
        .header("user-agent", "gamma/1.0")
        .await
        .expect(403);
    for _ in 0..2 {
        get_as(&b, USAGE, "bravo").await.expect(200);
    }
    // Server errors cannot be provoked on demand: seed them, with known latencies.
    let now = time::now();
    let seeded = [(201, 100), (500, 200), (503, 300), (200, 10_000)]
        .map(|(status, us)| entry(&a.id, &now, "seeded", NEW, status, us));
    let outside = entry(&a.id, "2020-01-01T00:00:00.000Z", "ancient", OLD, 200, 1);
    let other = entry(&b.id, &now, "seeded-b", OLD, 500, 5);
    s.db()
        .insert_request_log(&[seeded.as_slice(), &[outside, other]].concat())
        .await
        .expect("seeded");
    let to = settle(&s).await;

    let report = usage(&a, &from, &to, "version").await;
    assert_eq!(report["group_by"], "version");
    assert_eq!(
        counts(&report),
        vec![
            (json!(OLD), 7, 4, 0),
            (json!(NEW), 6, 2, 2),
            (json!("1999-01-01"), 1, 1, 0),
        ]
    );
    let v1 = group(&report, OLD);
    assert!(
        (v1["error_rate"].as_f64().unwrap_or(-1.0) - 4.0 / 7.0).abs() < 1e-9,
        "{v1}"
    );
    assert_eq!(v1["server_error_rate"], 0.0);
    let v2 = group(&report, NEW);
    assert!(
        (v2["server_error_rate"].as_f64().unwrap_or(-1.0) - 2.0 / 6.0).abs() < 1e-9,
        "{v2}"
    );
    assert_eq!(report["latency_sampled"], false);

    let report = usage(&a, &from, &to, "client").await;
    assert_eq!(
        counts(&report),
        vec![
            (json!("alpha"), 6, 3, 0),
            (json!("seeded"), 4, 2, 2),
            (json!("beta"), 3, 1, 0),
            (json!("gamma/1.0"), 1, 1, 0),
        ],
        "{report}"
    );
    let seeded = group(&report, "seeded");
    assert_eq!(
        (seeded["p50_us"].as_i64(), seeded["p95_us"].as_i64()),
        (Some(200), Some(10_000))
    );
    let alpha = group(&report, "alpha");
    let (p50, p95) = (
        alpha["p50_us"].as_i64().unwrap_or(0),
        alpha["p95_us"].as_i64().unwrap_or(0),
    );
    assert!(p50 > 0 && p50 <= p95, "real requests take time: {alpha}");

    let report = usage(&a, &from, &to, "route").await;
    assert_eq!(
        counts(&report),
        vec![
            (json!("GET /api/v1/usage"), 8, 3, 0),
            (json!("POST /api/v1/records/{object}"), 4, 2, 2),
            (json!("GET unmatched"), 1, 1, 0),
            (json!("PUT /api/v1/operator/versions/{version}"), 1, 1, 0),
        ],
        "route templates, never raw paths: {report}"
    );

    // Tenant B sees only its own requests.
    let report = usage(&b, &from, &to, "client").await;
    assert_eq!(
        counts(&report),
        vec![(json!("bravo"), 2, 0, 0), (json!("seeded-b"), 1, 1, 1)],
        "{report}"
    );

    // Only admins and owners.
    member.get(USAGE).unversioned().await.expect(403);
    // Bad windows are field problems.
    for path in [
        format!("{USAGE}?from=yesterday"),
        format!("{USAGE}?from={to}&to={from}"),
    ] {
        let r = a.get(&path).unversioned().await.expect(422);
        assert_eq!(r.problem_fields().first().map(String::as_str), Some("from"), "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn deprecated_clients_lists_exactly_the_clients_on_deprecated_versions() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let b = s.tenant("Beta").await;
    let op = s.operator().await;
    let owner_key = a.get("/api/v1/me").await.expect(200).json()["key"]["id"].clone();
    let from = time::now();

    // Nothing is deprecated yet: nobody is listed.
    for _ in 0..2 {
        get_as(&a, USAGE, "legacy-app").await.expect(200);
    }
    let to = settle(&s).await;
    assert_eq!(deprecated_clients(&a, &from, &to).await, Vec::<Value>::new());

    for (version, body) in [
        (NEW, json!({"lifecycle": "current"})),
        (OLD, json!({"lifecycle": "deprecated", "sunset": "2027-06-30"})),
    ] {
        op.put(&format!("/api/v1/operator/versions/{version}"), body)
            .await
            .expect(200);
    }
    for _ in 0..3 {
        let r = get_as(&a, USAGE, "legacy-app").await.expect(200);
        assert!(r.header("deprecation").is_some(), "{}", r.request);
    }
    for _ in 0..2 {
        get_as(&a, USAGE, "modern-app").version(NEW).await.expect(200);
    }
    get_as(&b, USAGE, "other-tenant-legacy").await.expect(200);
    let to = settle(&s).await;

    let data = deprecated_clients(&a, &from, &to).await;
    assert_eq!(data.len(), 1, "{data:?}");
    let c = &data[0];
    assert_eq!(c["client"], "legacy-app");
    assert_eq!(c["key_id"], owner_key);
    assert_eq!(c["api_version"], OLD);
    assert_eq!(c["lifecycle"], "deprecated");
    assert_eq!(c["sunset"], "2027-06-30");
    assert_eq!(c["successor"], NEW);
    // Deprecation applies to the version, so earlier requests on it count too.
    assert_eq!(c["requests"], 5);
    assert!(c["last_seen"].as_str().is_some_and(|t| t < to.as_str()));

    let clients: Vec<_> = deprecated_clients(&b, &from, &to)
        .await
        .iter()
        .map(|c| c["client"].clone())
        .collect();
    assert_eq!(clients, [json!("other-tenant-legacy")]);
    s.stop().await;
}

#[tokio::test]
async fn expired_rows_are_purged_after_the_retention_period() {
    // Storage on purpose: rows dated weeks back cannot be made through requests.
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let days_ago = |d: i64| time::format(::time::OffsetDateTime::now_utc() - ::time::Duration::days(d));
    let rows = [
        entry(&a.id, "2020-01-01T00:00:00.000Z", "ancient", OLD, 200, 1),
        entry(&a.id, &days_ago(31), "expired", OLD, 200, 1),
        entry(&a.id, &days_ago(29), "kept", OLD, 200, 1),
        entry(&a.id, &time::now(), "new", OLD, 200, 1),
    ];
    s.db().insert_request_log(&rows).await.expect("seeded");
    // (The writer also purges once at startup, which may race with the insert, so
    // the count returned here is not asserted; what is left is.)
    s.server.state.request_log.purge_expired(s.db()).await.expect("purged");
    let mut left: Vec<_> = logged_counts(s.db(), &a.id, LogGroup::Client)
        .await
        .into_iter()
        .filter_map(|(client, _)| client)
        .collect();
    left.sort();
    assert_eq!(left, ["kept", "new"]);
    s.stop().await;
}

#[tokio::test]
async fn pending_entries_are_written_at_shutdown() {
    // The database outlives the server, to be read (storage on purpose) after it stopped.
    let dir = tempfile::tempdir().expect("dir");
    let (db, url) = fresh_db_reopenable(dir.path()).await;
    let s = TestServer::start_on(db, |config| {
        // Nothing is flushed on a timer within this test: only the shutdown flush writes.
        config.api.request_log.flush_every = std::time::Duration::from_secs(3600);
    })
    .await;
    let a = s.tenant("Acme").await;
    for _ in 0..5 {
        a.get(USAGE).unversioned().await.expect(200);
    }
    s.stop().await;

    let db = reopen_db(&url, dir.path()).await;
    assert_eq!(
        logged_counts(&db, &a.id, LogGroup::Route).await,
        [(Some("GET /api/v1/usage".to_string()), 5)]
    );
    db.close().await;
}
