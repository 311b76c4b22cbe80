//! Client tracking and usage analytics through the real server: what the request log
//! records, the numbers `/api/v1/usage` derives from it (per version, client and
//! route, with error rates and percentiles), tenant isolation, the clients still on
//! deprecated versions, retention, and the final flush at shutdown.

use plinth_core::store::Db;
use plinth_core::store::request_log::{LogEntry, LogGroup};
use plinth_core::store::tenancy::{NewKey, insert_key, insert_user};
use plinth_core::store::time;
use plinth_core::tenancy::{KEY_PREFIX, create_operator_token, display_prefix, new_secret};
use plinth_host::server::{self, ServerConfig};
use plinth_tests::{Reply, TestServer};
use serde_json::{Value, json};

async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = s.http.request(method, format!("{}{path}", s.url)).bearer_auth(key);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    Reply::from(req.send().await.expect("request sent")).await
}

async fn get(s: &TestServer, path: &str, key: &str, headers: &[(&str, &str)]) -> Reply {
    send(s, "GET", path, key, headers, None).await
}

/// A member of `tenant` and their key.
async fn member_key(s: &TestServer, tenant: &str) -> String {
    let secret = new_secret(KEY_PREFIX);
    let mut tx = s.db().writer().begin().await.expect("tx");
    let user = insert_user(&mut tx, tenant, "member@example.test", "Member", "member")
        .await
        .expect("user");
    insert_key(
        &mut tx,
        tenant,
        NewKey {
            user_id: &user.id,
            name: "member key",
            secret_hash: &secret.hash,
            prefix: &display_prefix(&secret.plaintext),
            api_version: None,
            created_by: None,
            expires_at: None,
        },
    )
    .await
    .expect("key");
    tx.commit().await.expect("commit");
    secret.plaintext
}

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

#[tokio::test]
async fn usage_counts_errors_and_latencies_per_group_for_one_tenant_only() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let b = s.tenant("Beta").await;
    let member = member_key(&s, &a.id).await;
    let from = time::now();

    let alpha = [("x-client-name", "alpha")];
    let beta_new = [("x-client-name", "beta"), ("accept-version", "2027-01-15")];
    for _ in 0..3 {
        assert_eq!(get(&s, "/api/v1/usage", &a.key, &alpha).await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(&s, "/api/v1/usage", &a.key, &beta_new).await.status, 200);
    }
    assert_eq!(get(&s, "/api/v1/usage?group_by=nope", &a.key, &alpha).await.status, 422);
    assert_eq!(get(&s, "/api/v1/nothing/01JABCDEF", &a.key, &alpha).await.status, 404);
    let unknown = [("x-client-name", "beta"), ("accept-version", "1999-01-01")];
    assert_eq!(get(&s, "/api/v1/usage", &a.key, &unknown).await.status, 400);
    let r = send(
        &s,
        "PUT",
        "/api/v1/operator/versions/2026-11-01",
        &a.key,
        &alpha,
        Some(json!({"lifecycle": "current"})),
    )
    .await;
    assert_eq!(r.status, 401, "a tenant key is no operator token");
    assert_eq!(
        get(&s, "/api/v1/usage", &member, &[("user-agent", "gamma/1.0")])
            .await
            .status,
        403
    );
    for _ in 0..2 {
        assert_eq!(
            get(&s, "/api/v1/usage", &b.key, &[("x-client-name", "bravo")])
                .await
                .status,
            200
        );
    }
    // Server errors cannot be provoked on demand: seed them, with known latencies.
    let now = time::now();
    let seeded = [(201, 100), (500, 200), (503, 300), (200, 10_000)]
        .map(|(status, us)| entry(&a.id, &now, "seeded", "2027-01-15", status, us));
    let outside = entry(&a.id, "2020-01-01T00:00:00.000Z", "ancient", "2026-11-01", 200, 1);
    let other = entry(&b.id, &now, "seeded-b", "2026-11-01", 500, 5);
    s.db()
        .insert_request_log(&[seeded.as_slice(), &[outside, other]].concat())
        .await
        .expect("seeded");
    let to = settle(&s).await;

    let server = &s;
    let usage = |group_by: &str, key: String| {
        let path = format!("/api/v1/usage?from={from}&to={to}&group_by={group_by}");
        async move { get(server, &path, &key, &[]).await }
    };

    let r = usage("version", a.key.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["group_by"], "version");
    assert_eq!(
        counts(&r.body),
        vec![
            (json!("2026-11-01"), 7, 4, 0),
            (json!("2027-01-15"), 6, 2, 2),
            (json!("1999-01-01"), 1, 1, 0),
        ]
    );
    let v1 = group(&r.body, "2026-11-01");
    assert!(
        (v1["error_rate"].as_f64().unwrap_or(-1.0) - 4.0 / 7.0).abs() < 1e-9,
        "{v1}"
    );
    assert_eq!(v1["server_error_rate"], 0.0);
    let v2 = group(&r.body, "2027-01-15");
    assert!(
        (v2["server_error_rate"].as_f64().unwrap_or(-1.0) - 2.0 / 6.0).abs() < 1e-9,
        "{v2}"
    );
    assert_eq!(r.body["latency_sampled"], false);

    let r = usage("client", a.key.clone()).await;
    assert_eq!(
        counts(&r.body),
        vec![
            (json!("alpha"), 6, 3, 0),
            (json!("seeded"), 4, 2, 2),
            (json!("beta"), 3, 1, 0),
            (json!("gamma/1.0"), 1, 1, 0),
        ],
        "{}",
        r.text
    );
    let seeded = group(&r.body, "seeded");
    assert_eq!(
        (seeded["p50_us"].as_i64(), seeded["p95_us"].as_i64()),
        (Some(200), Some(10_000))
    );
    let alpha = group(&r.body, "alpha");
    let (p50, p95) = (
        alpha["p50_us"].as_i64().unwrap_or(0),
        alpha["p95_us"].as_i64().unwrap_or(0),
    );
    assert!(p50 > 0 && p50 <= p95, "real requests take time: {alpha}");

    let r = usage("route", a.key.clone()).await;
    assert_eq!(
        counts(&r.body),
        vec![
            (json!("GET /api/v1/usage"), 8, 3, 0),
            (json!("POST /api/v1/records/{object}"), 4, 2, 2),
            (json!("GET unmatched"), 1, 1, 0),
            (json!("PUT /api/v1/operator/versions/{version}"), 1, 1, 0),
        ],
        "route templates, never raw paths: {}",
        r.text
    );

    // Tenant B sees only its own requests.
    let r = usage("client", b.key.clone()).await;
    assert_eq!(
        counts(&r.body),
        vec![(json!("bravo"), 2, 0, 0), (json!("seeded-b"), 1, 1, 1)],
        "{}",
        r.text
    );

    // Only admins and owners.
    let r = get(&s, "/api/v1/usage", &member, &[]).await;
    assert_eq!(r.status, 403);
    // Bad windows are field problems.
    let r = get(&s, "/api/v1/usage?from=yesterday", &a.key, &[]).await;
    assert_eq!((r.status, r.body["errors"][0]["field"].as_str()), (422, Some("from")));
    let r = get(&s, &format!("/api/v1/usage?from={to}&to={from}"), &a.key, &[]).await;
    assert_eq!((r.status, r.body["errors"][0]["field"].as_str()), (422, Some("from")));
    s.stop().await;
}

#[tokio::test]
async fn deprecated_clients_lists_exactly_the_clients_on_deprecated_versions() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let b = s.tenant("Beta").await;
    let token = create_operator_token(s.db()).await.expect("token");
    let from = time::now();

    // Nothing is deprecated yet: nobody is listed.
    for _ in 0..2 {
        get(&s, "/api/v1/usage", &a.key, &[("x-client-name", "legacy-app")]).await;
    }
    let to = settle(&s).await;
    let path = format!("/api/v1/usage/deprecated-clients?from={from}&to={to}");
    // (Asked on 2027-01-15, so that the question itself is not a 2026-11-01 client.)
    let r = get(&s, &path, &a.key, &[("accept-version", "2027-01-15")]).await;
    assert_eq!((r.status, r.body["data"].clone()), (200, json!([])), "{}", r.text);

    for (version, body) in [
        ("2027-01-15", json!({"lifecycle": "current"})),
        ("2026-11-01", json!({"lifecycle": "deprecated", "sunset": "2027-06-30"})),
    ] {
        let r = s
            .call(
                "PUT",
                &format!("/api/v1/operator/versions/{version}"),
                Some(&token),
                Some(body),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    for _ in 0..3 {
        let r = get(&s, "/api/v1/usage", &a.key, &[("x-client-name", "legacy-app")]).await;
        assert!(r.header("deprecation").is_some());
    }
    for _ in 0..2 {
        get(
            &s,
            "/api/v1/usage",
            &a.key,
            &[("x-client-name", "modern-app"), ("accept-version", "2027-01-15")],
        )
        .await;
    }
    get(&s, "/api/v1/usage", &b.key, &[("x-client-name", "other-tenant-legacy")]).await;
    let to = settle(&s).await;

    let keys = s.db().api_keys(&a.id, None, 10).await.expect("keys");
    let path = format!("/api/v1/usage/deprecated-clients?from={from}&to={to}");
    let r = get(&s, &path, &a.key, &[("accept-version", "2027-01-15")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = r.body["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(data.len(), 1, "{}", r.text);
    let c = &data[0];
    assert_eq!(c["client"], "legacy-app");
    assert_eq!(c["key_id"], json!(keys[0].id));
    assert_eq!(c["api_version"], "2026-11-01");
    assert_eq!(c["lifecycle"], "deprecated");
    assert_eq!(c["sunset"], "2027-06-30");
    assert_eq!(c["successor"], "2027-01-15");
    // Deprecation applies to the version, so earlier requests on it count too.
    assert_eq!(c["requests"], 5);
    assert!(c["last_seen"].as_str().is_some_and(|t| t < to.as_str()));

    let path = format!("/api/v1/usage/deprecated-clients?from={from}&to={to}");
    let r = get(&s, &path, &b.key, &[("accept-version", "2027-01-15")]).await;
    let clients: Vec<_> = r.body["data"]
        .as_array()
        .map(|d| d.iter().map(|c| c["client"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(clients, [json!("other-tenant-legacy")]);
    s.stop().await;
}

#[tokio::test]
async fn expired_rows_are_purged_after_the_retention_period() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    let days_ago = |d: i64| time::format(::time::OffsetDateTime::now_utc() - ::time::Duration::days(d));
    let rows = [
        entry(&a.id, "2020-01-01T00:00:00.000Z", "ancient", "2026-11-01", 200, 1),
        entry(&a.id, &days_ago(31), "expired", "2026-11-01", 200, 1),
        entry(&a.id, &days_ago(29), "kept", "2026-11-01", 200, 1),
        entry(&a.id, &time::now(), "new", "2026-11-01", 200, 1),
    ];
    s.db().insert_request_log(&rows).await.expect("seeded");
    // (The writer also purges once at startup, which may race with the insert, so
    // the count returned here is not asserted; what is left is.)
    s.server.state.request_log.purge_expired(s.db()).await.expect("purged");
    let left = s
        .db()
        .request_counts(
            &a.id,
            "2000-01-01T00:00:00.000Z",
            "2100-01-01T00:00:00.000Z",
            LogGroup::Client,
            10,
        )
        .await
        .expect("counts");
    let mut left: Vec<_> = left.into_iter().filter_map(|g| g.key).collect();
    left.sort();
    assert_eq!(left, ["kept", "new"]);
    s.stop().await;
}

/// A database URL for a fresh database that outlives one server (SQLite file in
/// `dir`, or a new PostgreSQL database).
async fn fresh_url(dir: &std::path::Path) -> String {
    match std::env::var("PLINTH_TEST_DATABASE_URL") {
        Ok(admin_url) => {
            use sqlx::Connection as _;
            let name = format!("plinth_test_{}", ulid::Ulid::new().to_string().to_lowercase());
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("connect");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .expect("create database");
            let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b);
            format!("{base}/{name}")
        }
        Err(_) => format!("sqlite://{}", dir.join("plinth.db").display()),
    }
}

#[tokio::test]
async fn pending_entries_are_written_at_shutdown() {
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_url(dir.path()).await;
    let mut config = ServerConfig::new(dir.path().to_path_buf());
    config.listen = "127.0.0.1:0".parse().expect("addr");
    // Nothing is flushed on a timer within this test: only the shutdown flush writes.
    config.api.request_log.flush_every = std::time::Duration::from_secs(3600);
    let db = Db::connect(&url).await.expect("db");
    let tenant = plinth_core::tenancy::create_tenant(
        &db,
        "Acme",
        "owner@acme.test",
        "Owner",
        "2026-11-01",
        &plinth_core::store::audit::Actor::system(),
    )
    .await
    .expect("tenant");
    let running = server::start_with_db(config, db).await.expect("server");
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let r = http
            .get(format!("{}/api/v1/usage", running.url()))
            .bearer_auth(&tenant.api_key)
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 200);
    }
    running.shutdown().await.expect("clean shutdown");

    let db = Db::connect(&url).await.expect("reopen");
    let rows = db
        .request_counts(
            &tenant.tenant.id,
            "2000-01-01T00:00:00.000Z",
            "2100-01-01T00:00:00.000Z",
            LogGroup::Route,
            10,
        )
        .await
        .expect("counts");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].key.as_deref(), rows[0].requests),
        (Some("GET /api/v1/usage"), 5)
    );
    db.close().await;
}
