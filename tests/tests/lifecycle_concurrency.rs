//! Enable/disable and upgrade while 50 requests are in flight: the only error is the
//! documented 404 while disabled, and no request that starts after the upgrade
//! completes is served by the old version.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use plinth_tests::{Call, Guest, TestServer};
use serde_json::json;

struct Sample {
    started: Instant,
    ended: Instant,
    status: u16,
    version: Option<String>,
    problem: Option<String>,
}

/// After a pause, `call` succeeds; returns when it was sent and when it was answered.
async fn step(call: Call) -> (Instant, Instant) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = Instant::now();
    call.await.expect(200);
    (before, Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lifecycle_changes_under_fifty_concurrent_requests() {
    let s = TestServer::start().await;
    let acme = s.publisher("acme").await;
    for guest in ["counter-v1", "counter-v2"] {
        acme.publish(&s, &Guest::named(guest)).await.expect(201);
    }
    let t = s.tenant("T").await;
    t.post(
        "/api/v1/installations",
        json!({ "plugin": "counter", "version": "1.0.0", "grants": "all" }),
    )
    .await
    .expect(201);

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..50 {
        let (client, stop) = (t.api.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let r = client.get("/api/v1/plugins/counter/version").unversioned().await;
                samples.push(Sample {
                    started,
                    ended: Instant::now(),
                    status: r.status,
                    version: r.body["version"].as_str().map(str::to_string),
                    problem: r.body["type"].as_str().map(str::to_string),
                });
            }
            samples
        }));
    }
    let (disable_start, disable_done) = step(t.request("POST", "/api/v1/installations/counter/disable")).await;
    let (enable_start, enable_done) = step(t.request("POST", "/api/v1/installations/counter/enable")).await;
    let (upgrade_start, upgrade_done) = step(t.post(
        "/api/v1/installations/counter/upgrade",
        json!({ "version": "2.0.0", "grants": ["audit"] }),
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await.unwrap());
    }
    assert!(samples.len() > 500, "only {} requests were made", samples.len());

    let disabled = "https://plinth.dev/problems/plugin-disabled";
    let mut seen_404 = 0;
    for x in &samples {
        match x.status {
            200 => assert!(matches!(x.version.as_deref(), Some("1.0.0" | "2.0.0"))),
            404 => {
                assert_eq!(x.problem.as_deref(), Some(disabled));
                assert!(
                    x.ended > disable_start && x.started < enable_done,
                    "404 outside the disabled window"
                );
                seen_404 += 1;
            }
            other => panic!("unexpected status {other}"),
        }
        if x.started > disable_done && x.ended < enable_start {
            assert_eq!(x.status, 404, "served while disabled");
        }
        if x.started > upgrade_done {
            assert_eq!(
                x.version.as_deref(),
                Some("2.0.0"),
                "old version served after the upgrade"
            );
        }
        if x.ended < upgrade_start {
            assert_ne!(
                x.version.as_deref(),
                Some("2.0.0"),
                "new version served before the upgrade"
            );
        }
    }
    assert!(seen_404 > 0, "the disabled window saw no requests");
    s.stop().await;
}
