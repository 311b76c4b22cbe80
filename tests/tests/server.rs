//! The server as a client meets it: health, errors as problem documents, auth.

use plinth_tests::TestServer;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = TestServer::start().await;
    let anonymous = s.anonymous();
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let r = anonymous.get(path).await.expect(200);
        assert_eq!(r.body["status"].as_str(), Some(status), "{path}");
    }
    let r = anonymous.get("/metrics").await.expect(200);
    assert!(r.text.contains("plinth_http_requests_total"), "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_bad_keys_are_problems_with_request_ids() {
    let s = TestServer::start().await;
    let r = s
        .anonymous()
        .get("/api/v1/nothing-here")
        .await
        .expect_problem(404, "not-found");
    // The whole `type` URI is stable API, not only its slug.
    assert_eq!(r.body["type"], "https://plinth.dev/problems/not-found");
    assert_eq!(r.header("x-request-id").map(str::len), Some(26));

    let r = s
        .client("plk_not-a-real-key")
        .get("/api/v1/nothing-here")
        .await
        .expect_problem(401, "unauthorized");
    assert_eq!(r.body["type"], "https://plinth.dev/problems/unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    s.stop().await;
}

#[tokio::test]
async fn every_error_is_a_problem_document_of_bounded_size() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let problem_json = |r: &plinth_tests::Reply| {
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{}", r.text);
    };
    // A path segment that is not UTF-8: the extractor's rejection, as a problem.
    let r = t.get("/api/v1/records/account/%ff").await.expect(400);
    problem_json(&r);
    assert_eq!(r.body["status"], 400);
    // A body over the limit.
    let big = serde_json::json!({ "fields": { "name": "x".repeat(3 * 1024 * 1024) } });
    let r = t.post("/api/v1/records/account", big).await.expect(413);
    problem_json(&r);
    // 100,000 unknown fields: the first 100 problems and the count, not megabytes.
    let mut fields = serde_json::Map::new();
    for i in 0..100_000 {
        fields.insert(format!("f{i}"), serde_json::json!(1));
    }
    let r = t
        .post("/api/v1/records/account", serde_json::json!({ "fields": fields }))
        .await
        .expect(422);
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 100);
    assert!(
        r.body["errors_total"].as_u64().unwrap() >= 100_000,
        "{}",
        r.body["errors_total"]
    );
    assert!(r.text.len() < 20_000, "{} bytes", r.text.len());
    s.stop().await;
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_configured(|c| {
        c.connections.header_read = Duration::from_millis(500);
        c.api.body_idle_timeout = Duration::from_millis(500);
    })
    .await;
    let t = s.tenant("Acme").await;
    let addr = s.url.trim_start_matches("http://").to_string();
    let read_all = |mut conn: tokio::net::TcpStream| async move {
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut out)).await;
        (read.is_ok(), String::from_utf8_lossy(&out).into_owned())
    };

    // Headers that never finish: the connection is closed.
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let (closed, _) = read_all(conn).await;
    assert!(closed, "a half-sent request head kept its connection");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // A body that stops: cut off with a problem, and the connection closed.
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/records/account HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{{\"fields\":",
        t.key
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (closed, answer) = read_all(conn).await;
    assert!(closed && started.elapsed() < Duration::from_secs(5), "{answer}");
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    // Nothing was created.
    assert_eq!(
        t.get("/api/v1/records/account").await.expect(200).json()["data"],
        serde_json::json!([])
    );
    s.stop().await;
}

#[tokio::test]
async fn each_api_key_is_rate_limited_with_headers_and_retry_after() {
    use plinth_host::api::ratelimit::RateLimit;
    let s = TestServer::start_configured(|c| {
        c.api.rate_limit = Some(RateLimit {
            per_second: 1.0,
            burst: 3,
        })
    })
    .await;
    let t = s.tenant("Acme").await;
    let max = s.user(&t, "Max", "member").await;
    for left in ["2", "1", "0"] {
        let r = t.get("/api/v1/records/account").await.expect(200);
        assert_eq!(r.header("ratelimit-policy"), Some("\"per-key\";q=3;w=3"));
        assert_eq!(
            r.header("ratelimit"),
            Some(format!("\"per-key\";r={left};t=0").as_str())
        );
    }
    let refused = t.get("/api/v1/records/account").await.expect(429);
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));
    assert_eq!(refused.header("retry-after"), Some("1"));
    // Another key has its own bucket; requests without a key are not counted.
    max.get("/api/v1/records/account").await.expect(200);
    s.anonymous().get("/healthz").await.expect(200);
    // A second later the key may go on.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    t.get("/api/v1/records/account").await.expect(200);
    s.stop().await;
}

#[tokio::test]
async fn a_flooded_plugin_fills_only_its_own_compartment() {
    use plinth_host::api::bulkhead::BulkheadConfig;
    let s = TestServer::start_configured(|c| {
        c.api.bulkheads = BulkheadConfig {
            per_plugin: 2,
            per_tenant: 4,
            queue_wait: std::time::Duration::from_millis(100),
        }
    })
    .await;
    let publisher = s.publisher("plinth-tests").await;
    // The hostile guest imports `config` undeclared on purpose; declare it to publish.
    let hostile = plinth_tests::Guest::named("hostile").set("capabilities.config", true);
    publisher.publish(&s, &hostile).await.expect(201);
    let a = s.tenant("Flooder").await;
    let b = s.tenant("Neighbour").await;
    for t in [&a, &b] {
        s.install(t, "hostile", serde_json::json!("all")).await.expect(201);
    }
    // Six calls that each spin until their 500 ms deadline: two run, the rest wait
    // 100 ms for a place and are told to come back.
    let calls: Vec<_> = (0..6)
        .map(|_| a.get("/api/v1/plugins/hostile/loop").into_future())
        .collect();
    let neighbour = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        b.get("/api/v1/plugins/hostile/ok").await
    };
    let (flood, quiet) = tokio::join!(futures_util::future::join_all(calls), neighbour);
    let busy: Vec<&plinth_tests::Reply> = flood.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        busy.len(),
        4,
        "{:?}",
        flood.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(busy[0].header("retry-after"), Some("1"));
    assert_eq!(busy[0].header("content-type"), Some("application/problem+json"));
    // The other tenant was served meanwhile.
    assert_eq!(quiet.status, 200, "{}", quiet.text);
    s.stop().await;
}
