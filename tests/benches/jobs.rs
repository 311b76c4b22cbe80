//! Per-step overhead of a job: a `noop` job of the job probe (each step returns the
//! next counter and progress, nothing else) run to the end through a real server, so
//! each step is one claim-free `on-job-step` call plus the commit of its progress and
//! state (and the read-back of a cancel). Side by side in the same run, the same number
//! of no-op plugin calls through the REST gateway (`GET /jobs/{id}` of the probe, one
//! storage-free capability call) gives the ratio.
//!
//! Run: `cargo bench -p plinth-tests --bench jobs` (SQLite in a temp dir; set
//! `PLINTH_TEST_DATABASE_URL=postgres://…` for PostgreSQL). Steps:
//! `PLINTH_BENCH_STEPS` (default 5,000).

use std::time::{Duration, Instant};

use plinth_tests::{Guest, TestServer};
use serde_json::json;

const PROBE: &str = "/api/v1/plugins/job-probe";

#[tokio::main]
async fn main() {
    let steps: u64 = std::env::var("PLINTH_BENCH_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let s = TestServer::start().await;
    let publisher = s.publisher("plinth-tests").await;
    publisher.publish(&s, &Guest::named("job-probe")).await.expect(201);
    let t = s.tenant("Bench").await;
    s.install(&t, "job-probe", json!("all")).await.expect(201);
    println!("database: {}", plinth_tests::database_kind());

    for round in 1..=3 {
        // A job of `steps` no-op steps, from start to `succeeded`.
        let started = Instant::now();
        let id = t
            .post(
                &format!("{PROBE}/jobs"),
                json!({ "kind": "noop", "input": { "steps": steps } }),
            )
            .await
            .expect(201)
            .json()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let job = loop {
            let job = s.db().job(&t.id, &id).await.unwrap().unwrap();
            if job.finished_at.is_some() {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let total = started.elapsed();
        assert_eq!(job.status, "succeeded", "{job:?}");
        assert_eq!(job.steps as u64, steps);
        let per_step = total.as_secs_f64() * 1000.0 / steps as f64;

        // The same number of plugin calls through the gateway, one at a time.
        let calls = steps.min(2_000);
        let started = Instant::now();
        for _ in 0..calls {
            t.get(&format!("{PROBE}/jobs/{id}")).await.expect(200);
        }
        let per_call = started.elapsed().as_secs_f64() * 1000.0 / calls as f64;
        println!(
            "round {round}: {steps} no-op steps in {:.2} s = {per_step:.3} ms per step; \
             a gateway call of the same plugin {per_call:.3} ms (ratio {:.2}×); 1M rows at 5k rows a step: {:.2} s of overhead",
            total.as_secs_f64(),
            per_step / per_call,
            per_step * 200.0 / 1000.0
        );
    }
    s.stop().await;
}
