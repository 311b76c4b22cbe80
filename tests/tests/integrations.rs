//! The integration framework from inside a real component: outbound HTTP only to the
//! origins the manifest lists and the tenant granted, judged on the resolved request
//! (addresses, redirects, Host header), with timeouts and size caps; and per
//! tenant+plugin secrets that the plugin reads, REST never returns, and the database
//! holds only encrypted.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use plinth_tests::receivers::serve_http;
use plinth_tests::{Client, Guest, TestServer};
use serde_json::{Value, json};

const PROBE: &str = "integrations-probe";
/// The tenant admin's view of the probe's secrets.
const SECRETS: &str = "/api/v1/installations/integrations-probe/secrets";

/// Publish `tests/guests/integrations-probe` allowed to call `origins`.
async fn publish_probe(s: &TestServer, origins: &[&str]) {
    let probe = Guest::named(PROBE).set("capabilities.http", json!(origins));
    s.publisher("plinth-tests").await.publish(s, &probe).await.expect(201);
}

/// Ask the probe to make an outbound request; its answer (`ok`, `result` or `kind`).
async fn fetch(c: &Client, spec: Value) -> Value {
    c.post(&format!("/api/v1/plugins/{PROBE}/fetch"), spec)
        .await
        .expect(200)
        .json()
}

fn denied(v: &Value, why: &str) {
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["kind"], "denied", "{v}");
    assert!(v["message"].as_str().unwrap().contains(why), "`{why}` in {v}");
}

#[tokio::test]
async fn outbound_http_reaches_only_granted_origins_on_allowed_addresses() {
    let other = serve_http(axum::Router::new().route("/ok", get(|| async { "other" }))).await;
    let app = axum::Router::new()
        .route("/ok", get(|| async { axum::Json(json!({"hello": "world"})) }))
        .route(
            "/host",
            get(|h: HeaderMap| async move { h[header::HOST].to_str().unwrap().to_string() }),
        )
        .route(
            "/same",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")]) }),
        )
        .route(
            "/elsewhere",
            get(move || async move {
                (StatusCode::FOUND, [(header::LOCATION, format!("http://{other}/ok"))]).into_response()
            }),
        )
        .route("/big", get(|| async { vec![b'x'; 100 * 1024] }))
        .route(
            "/big-chunked",
            get(|| async {
                let chunks = (0..100).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1024]));
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        );
    let addr = serve_http(app).await;
    let port = addr.port();
    let s = TestServer::start_configured(|c| {
        // The operator lets outbound HTTP reach 127.0.0.1 only (not all loopback).
        c.http.addresses.allow_networks = vec!["127.0.0.1/32".parse().unwrap()];
        c.http.max_response_bytes = 64 * 1024;
    })
    .await;
    let localhost = format!("http://localhost:{port}");
    publish_probe(
        &s,
        &[&localhost, &format!("http://127.0.0.2:{port}"), "http://10.1.2.3"],
    )
    .await;
    let a = s.tenant("Acme").await;
    let b = s.tenant("Globex").await;
    s.install(&a, PROBE, json!("all")).await.expect(201);
    s.install(&b, PROBE, json!(["email", "secrets"])).await.expect(201);

    // The granted origin works; the Host header is the URL's.
    let r = fetch(&a, json!({"url": format!("{localhost}/ok")})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["status"], 200);
    assert_eq!(
        serde_json::from_str::<Value>(r["result"]["body"].as_str().unwrap()).unwrap(),
        json!({"hello": "world"})
    );
    let r = fetch(&a, json!({"url": format!("{localhost}/host")})).await;
    assert_eq!(r["result"]["body"], format!("localhost:{port}"), "{r}");
    // Same-origin redirects are followed.
    let r = fetch(&a, json!({"url": format!("{localhost}/same")})).await;
    assert_eq!(
        (r["result"]["status"].clone(), r["result"]["body"].clone()),
        (json!(200), json!("{\"hello\":\"world\"}")),
        "{r}"
    );

    // Host-header tricks are refused outright.
    let r = fetch(
        &a,
        json!({"url": format!("{localhost}/ok"), "headers": [["Host", other.to_string()]]}),
    )
    .await;
    assert_eq!(r["kind"], "invalid", "{r}");
    for (url, why) in [
        // Other origins: another port, the same server by IP literal, a redirect away.
        (format!("http://{other}/ok"), "not an origin this plugin may call"),
        (format!("http://localhost:{}/ok", other.port()), "not an origin"),
        (format!("http://127.0.0.1:{port}/ok"), "IP-literal"),
        (format!("{localhost}/elsewhere"), "redirect to another origin"),
        // Listed, but loopback and private addresses stay closed unless the operator
        // opens them.
        (format!("http://127.0.0.2:{port}/ok"), "loopback"),
        ("http://10.1.2.3/".to_string(), "private"),
    ] {
        denied(&fetch(&a, json!({ "url": url })).await, why);
    }
    // Schemes other than http(s).
    assert_eq!(fetch(&a, json!({"url": "file:///etc/passwd"})).await["ok"], false);

    // Size caps, with and without a Content-Length; timeouts.
    for path in ["/big", "/big-chunked"] {
        let r = fetch(&a, json!({"url": format!("{localhost}{path}")})).await;
        assert_eq!(r["kind"], "limit", "{path}: {r}");
    }
    let started = std::time::Instant::now();
    let r = fetch(&a, json!({"url": format!("{localhost}/slow"), "timeout_ms": 300})).await;
    assert_eq!(r["kind"], "limit", "{r}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A tenant that did not grant http: denied.
    denied(&fetch(&b, json!({"url": format!("{localhost}/ok")})).await, "http");
    s.stop().await;
}

/// The probe reads its secret `name` through the secrets capability; its answer
/// (`result.value`, `null` when unset, or `kind`).
async fn plugin_reads(c: &Client, name: &str) -> Value {
    c.get(&format!("/api/v1/plugins/{PROBE}/secrets/{name}"))
        .await
        .expect(200)
        .json()
}

/// The probe sets its secret `name`; its answer (`ok`).
async fn plugin_writes(c: &Client, name: &str, value: &str) -> Value {
    c.put(
        &format!("/api/v1/plugins/{PROBE}/secrets/{name}"),
        json!({ "value": value }),
    )
    .await
    .expect(200)
    .json()
}

#[tokio::test]
async fn secrets_reach_only_their_plugin_and_are_stored_encrypted() {
    const VALUE: &str = "tok-PLAINTEXT-SENTINEL-4242";
    const ROTATED: &str = "refresh-PLAINTEXT-SENTINEL-77";
    let s = TestServer::start().await;
    publish_probe(&s, &["https://api.example.com"]).await;
    let a = s.tenant("Acme").await;
    let b = s.tenant("Globex").await;
    let c = s.tenant("Initech").await;
    s.install(&a, PROBE, json!("all")).await.expect(201);
    s.install(&b, PROBE, json!("all")).await.expect(201);
    s.install(&c, PROBE, json!(["email"])).await.expect(201);

    // The tenant admin sets it; the answer carries no value.
    let r = a
        .put(&format!("{SECRETS}/api_token"), json!({"value": VALUE}))
        .await
        .expect(204);
    assert!(r.text.is_empty());
    let member = s.user(&a, "Mia", "member").await;
    member
        .put(&format!("{SECRETS}/x"), json!({"value": "v"}))
        .await
        .expect(403);
    a.put(&format!("{SECRETS}/bad name"), json!({"value": "v"}))
        .await
        .expect(422);
    a.put("/api/v1/installations/not-installed/secrets/x", json!({"value": "v"}))
        .await
        .expect(404);

    // The plugin reads it, and rotates another; only in this tenant.
    assert_eq!(plugin_reads(&a, "api_token").await["result"]["value"], VALUE);
    assert_eq!(plugin_writes(&a, "refresh_token", ROTATED).await["ok"], true);
    assert_eq!(plugin_reads(&a, "refresh_token").await["result"]["value"], ROTATED);
    assert_eq!(plugin_reads(&b, "api_token").await["result"]["value"], Value::Null);
    // Without the grant: denied.
    assert_eq!(plugin_reads(&c, "api_token").await["kind"], "denied");

    // REST lists names and times, never values; other tenants see their own only.
    let r = a.get(SECRETS).await.expect(200);
    let names: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert_eq!(names, ["api_token", "refresh_token"]);
    assert!(r.body["data"][0]["updated_at"].is_string());
    assert!(
        !r.text.contains("SENTINEL") && !r.text.contains("\"value\""),
        "{}",
        r.text
    );
    assert_eq!(b.get(SECRETS).await.expect(200).json()["data"], json!([]));
    // Nor does the audit trail carry them.
    let trail = a.audit_events(&[]).await;
    assert!(trail.iter().any(|e| e["action"] == "plugin_secret.set"), "{trail:?}");
    assert!(!json!(trail).to_string().contains("SENTINEL"));

    // The database holds ciphertext only. (Raw SQL and files: storage is the point.)
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT value FROM plugin_secrets WHERE tenant_id = $1")
        .bind(&a.id)
        .fetch_all(s.db().reader())
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    for v in &stored {
        assert!(!v.windows(9).any(|w| w == b"PLAINTEXT"), "ciphertext only");
    }
    if plinth_tests::database_kind() == "sqlite" {
        // Every byte the embedded database wrote: main file and write-ahead log.
        let mut found = Vec::new();
        for entry in std::fs::read_dir(s.data_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && std::fs::read(&path).unwrap().windows(9).any(|w| w == b"SENTINEL-") {
                found.push(path);
            }
        }
        assert!(found.is_empty(), "plaintext secrets in {found:?}");
    }
    // The key sealing them was created private in the data directory.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = s.data_dir().join("secret.key");
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Removal.
    a.delete(&format!("{SECRETS}/api_token")).await.expect(204);
    assert_eq!(plugin_reads(&a, "api_token").await["result"]["value"], Value::Null);
    a.delete(&format!("{SECRETS}/api_token")).await.expect(404);
    s.stop().await;
}

#[tokio::test]
async fn secrets_survive_a_restart_with_the_configured_key() {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let db_dir = tempfile::tempdir().unwrap();
    let (db, url) = plinth_tests::fresh_db_reopenable(db_dir.path()).await;
    let configure = |key: String| {
        move |c: &mut plinth_host::server::ServerConfig| c.secret_key = Some(plinth_core::secrets::KeyText::new(key))
    };
    let s = TestServer::start_on(db.clone(), configure(key.clone())).await;
    publish_probe(&s, &["https://api.example.com"]).await;
    let a = s.tenant("Acme").await;
    s.install(&a, PROBE, json!("all")).await.expect(201);
    assert_eq!(plugin_writes(&a, "token", "v1").await["ok"], true);
    s.stop().await;

    // Another host (own data directory, no key file) with the same PLINTH_SECRET_KEY.
    let db = plinth_tests::reopen_db(&url, db_dir.path()).await;
    let s = TestServer::start_on(db, configure(key)).await;
    assert!(!s.data_dir().join("secret.key").exists());
    // The same owner, on the new host's address.
    let a = s.client(&a.key);
    assert_eq!(plugin_reads(&a, "token").await["result"]["value"], "v1");
    s.stop().await;
}
