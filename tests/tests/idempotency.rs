//! `Idempotency-Key` (README, "Retrying safely"): a retried POST or PATCH returns the
//! first response instead of doing the work again; the same key with a different
//! request is refused (422); keys are per API key; bad keys are refused (400).

use plinth_tests::TestServer;
use serde_json::json;

#[tokio::test]
async fn a_retried_create_returns_the_first_response_and_creates_once() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let create = |name: &str, key: &str| {
        t.request("POST", "/api/v1/records/account")
            .header("Idempotency-Key", key)
            .json(json!({ "fields": { "name": name } }))
    };
    let first = create("Globex", "order-7").await.expect(201);
    assert!(first.header("idempotent-replayed").is_none());
    let again = create("Globex", "order-7").await.expect(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("etag"), first.header("etag"));
    let all = t.get("/api/v1/records/account").await.expect(200).json();
    assert_eq!(all["data"].as_array().unwrap().len(), 1);

    // The same key with another request is a client mistake.
    let r = create("Initech", "order-7").await.expect_problem(422, "validation");
    assert!(r.text.contains("different request"), "{}", r.text);
    // Keys belong to the API key that sent them: another user's "order-7" is theirs.
    let max = s.user(&t, "Max", "member").await;
    max.request("POST", "/api/v1/records/account")
        .header("Idempotency-Key", "order-7")
        .json(json!({ "fields": { "name": "Globex" } }))
        .await
        .expect(201);
    assert_eq!(
        t.get("/api/v1/records/account").await.expect(200).json()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A client error is kept too: the retry gets the same 422, not a second try.
    let bad = |key: &str| {
        t.request("POST", "/api/v1/records/account")
            .header("Idempotency-Key", key)
            .json(json!({ "fields": { "name": 42 } }))
    };
    bad("bad-1").await.expect(422);
    assert_eq!(
        bad("bad-1").await.expect(422).header("idempotent-replayed"),
        Some("true")
    );
    // Keys must be 1–255 visible characters; GETs ignore the header.
    create("Hooli", &"k".repeat(256))
        .await
        .expect_problem(400, "bad-request");
    t.request("GET", "/api/v1/records/account")
        .header("Idempotency-Key", "order-7")
        .await
        .expect(200);
    s.stop().await;
}

#[tokio::test]
async fn concurrent_duplicates_create_once() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let send = || {
        t.request("POST", "/api/v1/records/account")
            .header("Idempotency-Key", "burst")
            .json(json!({ "fields": { "name": "Globex" } }))
    };
    let (a, b, c) = tokio::join!(send().into_future(), send().into_future(), send().into_future());
    for r in [&a, &b, &c] {
        assert!(r.status == 201 || r.status == 409, "{} {}", r.status, r.text);
    }
    assert!([&a, &b, &c].iter().any(|r| r.status == 201));
    let all = t.get("/api/v1/records/account").await.expect(200).json();
    assert_eq!(all["data"].as_array().unwrap().len(), 1, "exactly one record");
    s.stop().await;
}
