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
