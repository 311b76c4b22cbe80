//! Background jobs end to end (docs/jobs.md) with the job probe: steps run to the end
//! with progress and a result; each step's writes are committed exactly once — across
//! a `kill -9` of the server and with two hosts sharing the database; cancel, retries
//! with backoff, pausing with a disabled plugin, who sees which job, the grant, the
//! event stream. And atomic batches (`batch.apply`): all or nothing.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use plinth_tests::child::ChildServer;
use plinth_tests::{Client, Guest, TestServer, TestTenant};
use serde_json::{Value, json};

#[tokio::test]
#[ignore = "the child server of the kill -9 test; run by it"]
async fn child_server() {
    plinth_tests::child::serve_if_child().await;
}

const PROBE: &str = "/api/v1/plugins/job-probe";

/// The job probe published and installed (with `grants`) in a tenant of `s`.
async fn probe_world(s: &TestServer, grants: Value) -> TestTenant {
    let publisher = s.publisher("plinth-tests").await;
    publisher.publish(s, &Guest::named("job-probe")).await.expect(201);
    let t = s.tenant("Acme").await;
    s.install(&t, "job-probe", grants).await.expect(201);
    t
}

/// Start a `count` job of `steps` steps (plus `extra` input) through the probe.
async fn start_count(c: &Client, steps: u64, extra: Value) -> String {
    let mut input = json!({ "steps": steps });
    if let (Some(i), Some(e)) = (input.as_object_mut(), extra.as_object()) {
        i.extend(e.clone());
    }
    let started = c
        .post(&format!("{PROBE}/jobs"), json!({ "kind": "count", "input": input }))
        .await
        .expect(201)
        .json();
    started["id"].as_str().unwrap().to_string()
}

/// Poll the job until `done` says so (or fail after `limit`, showing the job).
async fn wait_job(c: &Client, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let job = c.get(&format!("/api/v1/jobs/{id}")).await.expect(200).json();
        if done(&job) {
            return job;
        }
        assert!(
            started.elapsed() < limit,
            "the job did not get there in {limit:?}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn finished(job: &Value) -> bool {
    matches!(job["state"].as_str(), Some("succeeded" | "failed" | "cancelled"))
}

/// What the steps left: documents committed with steps, and runs per step.
async fn ledger(c: &Client) -> (u64, Vec<u64>) {
    let l = c.get(&format!("{PROBE}/ledger")).await.expect(200).json();
    let runs = l["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_u64().unwrap())
        .collect();
    (l["seen"].as_u64().unwrap(), runs)
}

#[tokio::test]
async fn a_job_runs_its_steps_to_the_end_with_progress_and_a_result() {
    let s = TestServer::start().await;
    let t = probe_world(&s, json!("all")).await;
    let id = start_count(&t, 50, json!({})).await;
    let job = wait_job(&t, &id, Duration::from_secs(60), finished).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["plugin"], "job-probe");
    assert_eq!(job["kind"], "count");
    assert_eq!(job["run_as"], t.owner_id.as_str());
    assert_eq!(job["steps"], 50);
    assert_eq!(
        job["progress"],
        json!({"done": 50, "total": 50, "percent": 100, "message": "step 50 of 50"})
    );
    assert_eq!(job["result"]["value"], json!({ "steps": 50 }));
    assert!(job["finished_at"].is_string() && job["error"].is_null(), "{job}");

    // Every step ran once and committed its document once.
    let (seen, runs) = ledger(&t).await;
    assert_eq!(seen, 50);
    assert!(runs.len() == 50 && runs.iter().all(|r| *r == 1), "{runs:?}");

    // The plugin reads its own job through the capability.
    let status = t.get(&format!("{PROBE}/jobs/{id}")).await.expect(200).json();
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["value"], "{\"steps\":50}");
    // Started jobs are audited.
    let audited = t.audit_events(&[("action", "job.start")]).await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["entity_id"], id.as_str());
    // Unknown ids are not found.
    t.get("/api/v1/jobs/01JNOSUCHJOB")
        .await
        .expect_problem(404, "not-found");
    s.stop().await;
}

#[tokio::test]
async fn the_event_stream_reports_progress_in_order_and_ends_with_the_job() {
    let s = TestServer::start().await;
    let t = probe_world(&s, json!("all")).await;
    let id = start_count(&t, 300, json!({})).await;
    let response = s
        .http
        .get(format!("{}/api/v1/jobs/{id}/events", s.url))
        .bearer_auth(&t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !text.contains("event: end") {
        assert!(Instant::now() < deadline, "no end event: {text}");
        match tokio::time::timeout(Duration::from_secs(30), body.next()).await {
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the stream stopped early ({other:?}): {text}"),
        }
    }
    // Events: `event`, `id` (steps committed) and the job as `data`.
    let mut events: Vec<(String, u64, Value)> = Vec::new();
    for block in text.split("\n\n").filter(|b| b.contains("data:")) {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .map(|v| v.trim().to_string())
        };
        let data: Value = serde_json::from_str(&field("data").unwrap()).unwrap();
        events.push((field("event").unwrap(), field("id").unwrap().parse().unwrap(), data));
    }
    assert!(events.len() >= 2, "{text}");
    let (last, progress) = events.split_last().unwrap();
    assert_eq!(last.0, "end");
    assert_eq!(last.2["state"], "succeeded");
    assert_eq!(last.1, 300);
    assert!(progress.iter().all(|e| e.0 == "progress"));
    let ids: Vec<u64> = events.iter().map(|e| e.1).collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "out of order: {ids:?}");
    let done: Vec<i64> = events
        .iter()
        .map(|e| e.2["progress"]["done"].as_i64().unwrap())
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "progress went back: {done:?}");
    s.stop().await;
}

#[tokio::test]
async fn plinth_jobs_watch_follows_a_job_to_its_outcome() {
    use plinth_host::cli::jobs::{WatchArgs, watch};
    let s = TestServer::start().await;
    let t = probe_world(&s, json!("all")).await;
    let args = |id: &str, token: &str| WatchArgs {
        id: id.to_string(),
        server: s.url.clone(),
        token: token.to_string(),
    };
    let id = start_count(&t, 40, json!({})).await;
    let outcome = watch(&args(&id, &t.key), false).await.unwrap();
    assert_eq!(outcome.state, "succeeded");
    assert_eq!(outcome.summary(), "succeeded after 40 steps: {\"steps\":40}");
    assert_eq!(outcome.exit_code(), std::process::ExitCode::SUCCESS);

    let id = start_count(&t, 10_000_000, json!({})).await;
    let cancel_me = args(&id, &t.key);
    let watching = tokio::spawn(async move { watch(&cancel_me, false).await });
    wait_job(&t, &id, Duration::from_secs(60), |j| {
        j["steps"].as_i64().unwrap_or(0) >= 3
    })
    .await;
    t.post(&format!("/api/v1/jobs/{id}/cancel"), json!({}))
        .await
        .expect(202);
    let outcome = watching.await.unwrap().unwrap();
    assert_eq!(outcome.state, "cancelled");
    assert_eq!(outcome.exit_code(), std::process::ExitCode::from(2));

    // Someone else's job, or a bad token: the problem, not a bar.
    let bob = s.user(&t, "Bob", "member").await;
    let refused = watch(&args(&id, &bob.key), false).await.unwrap_err().to_string();
    assert!(refused.contains("404"), "{refused}");
    let refused = watch(&args(&id, "plk_nonsense"), false).await.unwrap_err().to_string();
    assert!(refused.contains("401"), "{refused}");
    s.stop().await;
}

#[tokio::test]
async fn a_job_survives_kill_9_midway_and_commits_every_step_exactly_once() {
    let s = TestServer::start().await;
    let t = probe_world(&s, json!("all")).await;
    let stopped = s.stop_keeping_data().await;

    // A server in its own process, with short job claims so a restart resumes soon.
    let child = ChildServer::spawn(stopped.db_url(), Duration::from_secs(2));
    let c = t.api.rebased(&child.url);
    let id = start_count(&c, 2000, json!({})).await;
    let midway = wait_job(&c, &id, Duration::from_secs(120), |j| {
        j["steps"].as_i64().unwrap_or(0) >= 300
    })
    .await;
    assert_eq!(midway["state"], "running", "{midway}");
    child.kill9();

    let s = stopped.start().await;
    let c = t.api.rebased(&s.url);
    let interrupted = c.get(&format!("/api/v1/jobs/{id}")).await.expect(200).json();
    assert!(interrupted["steps"].as_i64().unwrap() < 2000, "{interrupted}");
    let job = wait_job(&c, &id, Duration::from_secs(180), finished).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["steps"], 2000);
    assert_eq!(job["result"]["value"], json!({ "steps": 2000 }));
    assert_eq!(job["failed_attempts"], 0, "{job}");
    // Each step's own document was committed once (a second commit would have failed
    // the job: they are created with `put_new`); at most the step running when the
    // server died ran twice.
    let (seen, runs) = ledger(&c).await;
    assert_eq!(seen, 2000);
    assert_eq!(runs.len(), 2000);
    assert!(runs.iter().filter(|r| **r > 1).count() <= 1, "{runs:?}");
    s.stop().await;
}

#[tokio::test]
async fn two_hosts_share_a_job_without_running_a_step_twice() {
    let short_slices = |c: &mut plinth_host::server::ServerConfig| c.jobs.slice = Duration::from_millis(20);
    let s = TestServer::start_configured(short_slices).await;
    let t = probe_world(&s, json!("all")).await;
    let other = s.another_host_configured(short_slices).await;
    let id = start_count(&t, 2000, json!({})).await;
    // Follow it through the other host: either may run any step.
    let job = wait_job(&t.api.rebased(&other.url), &id, Duration::from_secs(180), finished).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["steps"], 2000);
    let (seen, runs) = ledger(&t).await;
    assert_eq!(seen, 2000);
    assert!(runs.len() == 2000 && runs.iter().all(|r| *r == 1), "a step ran twice");
    other.stop().await;
    s.stop().await;
}

#[tokio::test]
async fn cancel_stops_a_job_at_its_next_step() {
    let s = TestServer::start().await;
    let t = probe_world(&s, json!("all")).await;
    let id = start_count(&t, 10_000_000, json!({})).await;
    wait_job(&t, &id, Duration::from_secs(60), |j| {
        j["steps"].as_i64().unwrap_or(0) >= 5
    })
    .await;
    let asked = t
        .post(&format!("/api/v1/jobs/{id}/cancel"), json!({}))
        .await
        .expect(202)
        .json();
    assert_eq!(asked["cancel_requested"], true);
    let job = wait_job(&t, &id, Duration::from_secs(60), finished).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert_eq!(job["progress"]["message"], "cancelled");
    assert!(job["steps"].as_i64().unwrap() < 10_000_000);
    assert!(job["result"].is_null());
    // Cancelling a finished job changes nothing.
    let again = t
        .post(&format!("/api/v1/jobs/{id}/cancel"), json!({}))
        .await
        .expect(200)
        .json();
    assert_eq!(again["state"], "cancelled");
    assert_eq!(t.audit_events(&[("action", "job.cancel")]).await.len(), 1);

    // The plugin may cancel its own job too.
    let id = start_count(&t, 10_000_000, json!({})).await;
    let cancelled = t
        .post(&format!("{PROBE}/jobs/{id}/cancel"), json!({}))
        .await
        .expect(200)
        .json();
    assert_eq!(cancelled["cancelled"], true);
    let job = wait_job(&t, &id, Duration::from_secs(60), finished).await;
    assert_eq!(job["state"], "cancelled");
    s.stop().await;
}

#[tokio::test]
async fn a_failing_step_is_retried_with_backoff_then_fails_the_job() {
    let s = TestServer::start_configured(|c| c.jobs.backoff = Duration::from_millis(20)).await;
    let t = probe_world(&s, json!("all")).await;

    // Step 1 fails twice, then goes through: the job succeeds, step 1 ran three times.
    let id = start_count(&t, 3, json!({ "fail_step": 1, "fail_times": 2 })).await;
    let job = wait_job(&t, &id, Duration::from_secs(60), finished).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(job["error"].is_null());
    let (seen, runs) = ledger(&t).await;
    assert_eq!((seen, runs), (3, vec![1, 3, 1]));

    // Step 0 always fails: after five tries the job fails with the plugin's error.
    let id = start_count(&t, 3, json!({ "fail_step": 0, "fail_times": 99 })).await;
    let job = wait_job(&t, &id, Duration::from_secs(60), finished).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["failed_attempts"], 5);
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("planned failure of step 0, try 5"),
        "{job}"
    );
    assert_eq!(job["steps"], 0);
    s.stop().await;
}

#[tokio::test]
async fn jobs_of_a_disabled_plugin_pause_and_resume_on_enable() {
    let s = TestServer::start().await;
    let t = probe_world(&s, json!("all")).await;
    let id = start_count(&t, 10_000_000, json!({})).await;
    wait_job(&t, &id, Duration::from_secs(60), |j| {
        j["steps"].as_i64().unwrap_or(0) >= 3
    })
    .await;
    t.request("POST", "/api/v1/installations/job-probe/disable")
        .await
        .expect(200);
    let paused = wait_job(&t, &id, Duration::from_secs(30), |j| j["state"] == "paused").await;
    // No step runs while it is paused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = t.get(&format!("/api/v1/jobs/{id}")).await.expect(200).json();
    assert!(
        held["steps"].as_i64().unwrap() <= paused["steps"].as_i64().unwrap() + 1,
        "{paused} then {held}"
    );
    t.request("POST", "/api/v1/installations/job-probe/enable")
        .await
        .expect(200);
    let before = held["steps"].as_i64().unwrap();
    wait_job(&t, &id, Duration::from_secs(60), |j| {
        j["state"] == "running" && j["steps"].as_i64().unwrap() > before + 3
    })
    .await;
    t.post(&format!("/api/v1/jobs/{id}/cancel"), json!({}))
        .await
        .expect(202);
    wait_job(&t, &id, Duration::from_secs(60), finished).await;
    s.stop().await;
}

#[tokio::test]
async fn people_see_their_own_jobs_and_admins_see_every_job() {
    let s = TestServer::start().await;
    let t = probe_world(&s, json!("all")).await;
    let ann = s.user(&t, "Ann", "member").await;
    let bob = s.user(&t, "Bob", "member").await;
    let id = start_count(&ann, 2, json!({})).await;
    wait_job(&ann, &id, Duration::from_secs(60), finished).await;

    bob.get(&format!("/api/v1/jobs/{id}"))
        .await
        .expect_problem(404, "not-found");
    bob.post(&format!("/api/v1/jobs/{id}/cancel"), json!({}))
        .await
        .expect_problem(404, "not-found");
    assert_eq!(bob.get("/api/v1/jobs").await.expect(200).json()["data"], json!([]));
    let mine = ann.get("/api/v1/jobs").await.expect(200).json();
    assert_eq!(mine["data"][0]["id"], id.as_str());
    // The owner (an admin) sees every job, or only their own with `mine=true`.
    let all = t.get("/api/v1/jobs?plugin=job-probe").await.expect(200).json();
    assert_eq!(all["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        t.get("/api/v1/jobs?mine=true").await.expect(200).json()["data"],
        json!([])
    );
    t.get("/api/v1/jobs?limit=0").await.expect_problem(422, "validation");
    t.get("/api/v1/jobs?colour=red").await.expect(400);

    // Paging: newest first, with a cursor.
    for _ in 0..2 {
        start_count(&ann, 1, json!({})).await;
    }
    let first = ann.get("/api/v1/jobs?limit=2").await.expect(200).json();
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = ann
        .get(&format!("/api/v1/jobs?limit=2&cursor={cursor}"))
        .await
        .expect(200)
        .json();
    assert_eq!(rest["data"][0]["id"], id.as_str());
    assert!(rest["next_cursor"].is_null());
    s.stop().await;
}

#[tokio::test]
async fn starting_a_job_needs_the_grant() {
    let s = TestServer::start().await;
    let t = probe_world(&s, json!(["storage", "records:account:read", "records:account:write"])).await;
    let refused = t
        .post(
            &format!("{PROBE}/jobs"),
            json!({ "kind": "count", "input": { "steps": 1 } }),
        )
        .await
        .expect(403);
    assert!(refused.text.contains("jobs"), "{}", refused.text);
    assert_eq!(t.get("/api/v1/jobs").await.expect(200).json()["data"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn a_batch_applies_every_write_or_none() {
    let s = TestServer::start().await;
    let t = probe_world(&s, json!("all")).await;
    let applied = t
        .post(
            &format!("{PROBE}/batch"),
            json!({ "names": ["Initech", "Umbrella"], "note": "first" }),
        )
        .await
        .expect(200)
        .json();
    let ids = applied["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 3, "two records and the note: {applied}");
    for id in &ids[..2] {
        let record = t
            .get(&format!("/api/v1/records/account/{}", id.as_str().unwrap()))
            .await
            .expect(200)
            .json();
        assert_eq!(record["created_by"], t.owner_id.as_str());
    }
    // One audit entry per record written.
    assert_eq!(t.audit_events(&[("action", "record.create")]).await.len(), 2);

    // The second write is invalid: the first is undone, and the error names it.
    let refused = t
        .post(
            &format!("{PROBE}/batch"),
            json!({ "names": ["Hooli", 42], "note": "second" }),
        )
        .await
        .expect(400);
    assert!(refused.text.contains("writes[1]"), "{}", refused.text);
    let names: Vec<Value> = t.get("/api/v1/records/account").await.expect(200).json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["fields"]["name"].clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.contains(&json!("Hooli")));
    assert_eq!(t.audit_events(&[("action", "record.create")]).await.len(), 2);
    s.stop().await;
}
