//! Plugin endpoint throughput through the full stack (authentication, version
//! selection, request log, routing, a fresh instance per request) against a native
//! axum handler returning the same body behind the same middleware, on loopback.
//!
//! Run: `cargo bench -p plinth-host --bench gateway` (`-- --seconds 5` for shorter runs).
//! Load comes from `wrk -t2 -c64` (Debian package `wrk`) when it is installed; without
//! it, from a built-in generator on a separate tokio runtime in this process (64
//! keep-alive connections), which costs far more CPU per request than wrk and so
//! understates both figures on a 2-core machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use plinth_core::store::Db;
use plinth_core::store::audit::Actor;
use plinth_host::api::{self, Ctx};
use plinth_host::server::{self, ServerConfig};
use plinth_runtime::bindings::Caller;
use plinth_runtime::marketplace::install::{self, Grant, Steward, VersionSpec};

/// The allocator the `plinth` binary uses (see `src/main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: usize = 64;

async fn native_greet(_ctx: Ctx, Path(name): Path<String>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "greeting": format!("Hello, {name}!") }))
}

struct Result {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn load(url: String, key: String, seconds: u64) -> Result {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(CONNECTIONS)
            .build()
            .unwrap();
        // Warm up: connections, caches, compiled code.
        for _ in 0..200 {
            let _ = client.get(&url).bearer_auth(&key).send().await.unwrap().bytes().await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let (client, url, key, stop) = (client.clone(), url.clone(), key.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::with_capacity(50_000), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match client.get(&url).bearer_auth(&key).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                        }
                        _ => errors += 1,
                    }
                    lat.push(t.elapsed());
                }
                (lat, errors)
            }));
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.unwrap();
            latencies.extend(l);
            errors += e;
        }
        let elapsed = started.elapsed();
        latencies.sort();
        Result {
            requests: latencies.len() as u64,
            errors,
            elapsed,
            latencies,
        }
    })
}

/// Requests/s and the p50/p99 latencies wrk reports (`None` if wrk is missing).
fn wrk(url: &str, key: &str, seconds: u64) -> Option<(f64, String, String, String)> {
    let out = std::process::Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .args(["-H", &format!("Authorization: Bearer {key}"), url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    let rate = find("Requests/sec:").parse().ok()?;
    let errors = find("Non-2xx or 3xx responses:");
    Some((
        rate,
        find("50%"),
        find("99%"),
        if errors.is_empty() { "0".into() } else { errors },
    ))
}

fn pct(v: &[Duration], p: f64) -> Duration {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (base, key) = server_rt.block_on(async {
        let db = Db::open_sqlite(&dir.path().join("plinth.db")).await.unwrap();
        let mut config = ServerConfig::new(dir.path().to_path_buf());
        // One key floods the server on purpose: measure throughput, not the limiter.
        config.api.rate_limit = None;
        let state = server::assemble(&config, db.clone()).unwrap().state;
        plinth_host::bundled::bootstrap::publish_first_party(&db, &state.runtime, dir.path())
            .await
            .unwrap();
        let created =
            plinth_core::tenancy::create_tenant(&db, "Bench", "o@b.test", "Owner", "2026-11-01", &Actor::system())
                .await
                .unwrap();
        let steward = Steward {
            tenant: created.tenant.id.clone(),
            actor: Actor::system(),
            caller: Caller {
                tenant_id: created.tenant.id.clone(),
                user_id: Some(created.owner.id.clone()),
                roles: vec!["owner".into()],
                api_version: "2026-11-01".into(),
                request_id: "bench".into(),
            },
        };
        install::install(
            &db,
            &state.plugins,
            &steward,
            "hello",
            VersionSpec::Range(semver::VersionReq::STAR),
            Grant::All,
            false,
        )
        .await
        .unwrap();
        let extra = Router::new().route("/api/v1/native/greet/{name}", get(native_greet));
        let app = api::app_with(state.clone(), extra);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        tokio::spawn(state.run_background(std::future::pending()));
        (format!("http://{addr}"), created.api_key)
    });

    let use_wrk = std::process::Command::new("wrk").arg("--version").output().is_ok();
    let generator = if use_wrk {
        "wrk -t2 -c64"
    } else {
        "built-in generator, 64 connections"
    };
    println!("## Plugin endpoint vs native handler ({generator}, {seconds} s each, loopback)\n");
    println!("| handler | requests/s | p50 | p99 | errors |");
    println!("|---|---|---|---|---|");
    let mut rates = Vec::new();
    for (label, path) in [
        ("native axum handler", "/api/v1/native/greet/Ada"),
        (
            "hello plugin (fresh instance per request)",
            "/api/v1/plugins/hello/greet/Ada",
        ),
    ] {
        if use_wrk {
            // Warm up caches and compiled code first.
            let _ = wrk(&format!("{base}{path}"), &key, 1);
            if let Some((rate, p50, p99, errors)) = wrk(&format!("{base}{path}"), &key, seconds) {
                rates.push(rate);
                println!("| {label} | {rate:.0} | {p50} | {p99} | {errors} |");
                continue;
            }
        }
        let r = load(format!("{base}{path}"), key.clone(), seconds);
        let rate = r.requests as f64 / r.elapsed.as_secs_f64();
        rates.push(rate);
        println!(
            "| {label} | {rate:.0} | {:.2?} | {:.2?} | {} |",
            pct(&r.latencies, 0.50),
            pct(&r.latencies, 0.99),
            r.errors
        );
    }
    println!(
        "\nplugin / native throughput: {:.2}× (goal ≥ 0.5×)",
        rates[1] / rates[0]
    );
    drop(server_rt);
}
