//! How large a territories realignment fits in one plugin call: a real server with the
//! first-party catalog, `territories` installed from it, `N` accounts (each with one
//! opportunity) assigned to a territory by a rule; then a rules change that moves every
//! account out of it is previewed, applied and rolled back through the plugin's REST
//! endpoints, each of which is one plugin call limited to the manifest's 60 s.
//!
//! Run: `cargo bench -p plinth-tests --bench realign` (SQLite in a temp dir; set
//! `PLINTH_TEST_DATABASE_URL=postgres://…` for PostgreSQL). Size:
//! `PLINTH_BENCH_ACCOUNTS` (default 20,000).

use std::time::{Duration, Instant};

use plinth_tests::{TestServer, TestTenant};
use serde_json::{Value, json};

const P: &str = "/api/v1/plugins/territories";

struct Bench {
    s: TestServer,
    t: TestTenant,
}

impl Bench {
    /// Call the plugin; panics on anything but 2xx, with the problem.
    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let call = self.t.request(method, &format!("{P}{path}"));
        let r = match body {
            Some(body) => call.json(body).await,
            None => call.await,
        };
        assert!((200..300).contains(&r.status), "{}: {} {}", r.request, r.status, r.text);
        r.body
    }

    async fn bulk(&self, object: &str, items: Vec<Value>) -> Vec<String> {
        let created = self
            .t
            .post(&format!("/api/v1/records/{object}/bulk"), json!({ "create": items }))
            .await
            .expect(201)
            .json();
        created["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    }
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed())
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("PLINTH_BENCH_ACCOUNTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let s = TestServer::start_with_first_party().await;
    let t = s.tenant("Realign").await;
    let b = Bench { s, t };

    // Records first, so no record event waits for the plugin.
    let started = Instant::now();
    let mut accounts = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let items = chunk
            .iter()
            .map(|i| json!({"fields": {"name": format!("Account {i:06}"), "country": "DE"}}))
            .collect();
        accounts.extend(b.bulk("account", items).await);
    }
    for chunk in accounts.chunks(1000) {
        let items = chunk
            .iter()
            .map(|a| {
                json!({"fields": {"name": "Deal", "account_id": a, "stage": "proposal",
                        "close_date": "2027-03-31", "amount": {"value": 1000.0, "currency": "EUR"}}})
            })
            .collect();
        b.bulk("opportunity", items).await;
    }
    let setup = started.elapsed();

    let r = b.s.install(&b.t, "territories", json!("all")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let member = b.s.user(&b.t, "north", "member").await;
    let world = b
        .ok("POST", "/territories", Some(json!({"name": "World", "type": "global"})))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let north = b
        .ok(
            "POST",
            "/territories",
            Some(json!({"name": "North", "type": "region", "parent_id": world})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.ok(
        "PUT",
        &format!("/territories/{north}/members/{}", member.id),
        Some(json!({"role": "member"})),
    )
    .await;
    let rules = |country: &str| json!([{"criteria": [{"op": "equals", "field": "country", "value": country}]}]);
    b.ok(
        "PUT",
        &format!("/territories/{north}/rules"),
        Some(json!({"rules": rules("DE")})),
    )
    .await;

    let (steps, run_time) = timed(async {
        let mut run = b.ok("POST", "/assignment/run", Some(json!({"batch_size": 5000}))).await;
        let mut steps = 1;
        while run["status"] == "running" {
            let id = run["id"].as_str().unwrap().to_string();
            run = b.ok("POST", &format!("/assignment/runs/{id}/continue"), None).await;
            steps += 1;
        }
        assert_eq!(run["changed"].as_u64(), Some(n as u64), "{run}");
        steps
    })
    .await;

    let proposal = json!({"kind": "rules", "territory_id": north, "rules": rules("FR")});
    let (preview, preview_time) = timed(b.ok("POST", "/realignments", Some(proposal))).await;
    assert_eq!(
        preview["diff"]["account_moves_total"].as_u64(),
        Some(n as u64),
        "{}",
        preview["diff"]["account_moves_total"]
    );
    let rid = preview["id"].as_str().unwrap().to_string();
    let (_, apply_time) = timed(b.ok("POST", &format!("/realignments/{rid}/apply"), None)).await;
    let (_, rollback_time) = timed(b.ok("POST", &format!("/realignments/{rid}/rollback"), None)).await;

    let per_sec = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "## Territories realignment of {n} accounts ({} opportunities), {}\n",
        n,
        plinth_tests::database_kind()
    );
    println!("| step | seconds | accounts per second |");
    println!("|---|---:|---:|");
    println!(
        "| set-up: {} records through the bulk API | {:.1} | |",
        2 * n,
        setup.as_secs_f64()
    );
    println!(
        "| assignment run, {steps} calls of 5,000 accounts | {:.1} | {:.0} |",
        run_time.as_secs_f64(),
        per_sec(run_time)
    );
    println!(
        "| preview of a rules change moving every account (one call) | {:.1} | {:.0} |",
        preview_time.as_secs_f64(),
        per_sec(preview_time)
    );
    println!(
        "| apply (one call) | {:.1} | {:.0} |",
        apply_time.as_secs_f64(),
        per_sec(apply_time)
    );
    println!(
        "| rollback (one call) | {:.1} | {:.0} |",
        rollback_time.as_secs_f64(),
        per_sec(rollback_time)
    );
    b.s.stop().await;
}
