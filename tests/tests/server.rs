//! The server as a client meets it: health, errors as problem documents, auth.

use plinth_tests::TestServer;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = TestServer::start().await;
    let r = s.call("GET", "/healthz", None, None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ok")));
    let r = s.call("GET", "/readyz", None, None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ready")));
    let r = s.call("GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("plinth_http_requests_total"), "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_bad_keys_are_problems_with_request_ids() {
    let s = TestServer::start().await;
    let r = s.call("GET", "/api/v1/nothing-here", None, None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.body["type"], "https://plinth.dev/problems/not-found");
    assert_eq!(r.header("x-request-id").map(str::len), Some(26));

    let r = s
        .call("GET", "/api/v1/nothing-here", Some("plk_not-a-real-key"), None)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["type"], "https://plinth.dev/problems/unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    s.stop().await;
}
