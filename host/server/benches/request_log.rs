//! What request logging costs a request: the same authenticated requests through
//! the whole application (`api::app`, every middleware layer, the batching writer
//! running in the background) with the request log on and off.
//!
//! ```text
//! cargo bench -p plinth-host --bench request_log
//! PLINTH_BENCH_DATABASE_URL=postgres://… cargo bench -p plinth-host --bench request_log
//! ```
//!
//! Requests go through `tower::ServiceExt::oneshot` rather than a socket, so the
//! figures are the server's own time, undiluted by loopback networking. Off and on
//! alternate round by round so that drift (other processes, SQLite checkpoints)
//! hits both alike; each figure is the median over rounds.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use plinth_core::store::Db;
use plinth_core::store::audit::Actor;
use plinth_core::store::request_log::LogEntry;
use plinth_host::api::{self, AppState};
use plinth_host::server::{self, ServerConfig};
use tower::ServiceExt;

const WARMUP: usize = 500;
/// 500-row batches written into each database's log before measuring.
const SEED_BATCHES: usize = 400;
const ROUNDS: usize = 9;
const SEQUENTIAL: usize = 4_000;
const CONCURRENCY: usize = 16;
const PER_TASK: usize = 1_000;

/// A hot 404 under /api/v1 (auth, selection, tracking — no handler work) and the
/// usage endpoint over an empty window (a handler that reads the database).
const PATHS: [(&str, StatusCode); 2] = [
    ("/api/v1/no-such-endpoint", StatusCode::NOT_FOUND),
    (
        "/api/v1/usage?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z",
        StatusCode::OK,
    ),
];

/// The application and a key to call it with.
#[derive(Clone)]
struct Client {
    app: axum::Router,
    key: String,
}

impl Client {
    async fn call(&self, path: &str, want: StatusCode) -> Duration {
        let request = Request::builder()
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header("x-client-name", "bench/1.0")
            .body(Body::empty())
            .expect("request");
        let started = Instant::now();
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
        let took = started.elapsed();
        assert_eq!(status, want, "{path}");
        took
    }
}

struct Setup {
    client: Client,
    state: AppState,
    stop: tokio::sync::watch::Sender<bool>,
    background: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn setup(url: Option<&str>, logging: bool) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = match url {
        Some(url) => Db::connect(url).await.expect("database"),
        None => Db::open_sqlite(&dir.path().join("plinth.db")).await.expect("SQLite"),
    };
    let tenant = plinth_core::tenancy::create_tenant(&db, "Bench", "o@bench.test", "O", "2026-11-01", &Actor::system())
        .await
        .expect("tenant");
    // Both databases start with the same sizeable log, so that the usage endpoint
    // reads equally large tables with logging off and on (the "on" table grows by a
    // few percent during the run).
    let seed: Vec<LogEntry> = (0..500).map(|_| log_entry(&tenant.tenant.id)).collect();
    for _ in 0..SEED_BATCHES {
        db.insert_request_log(&seed).await.expect("seed");
    }
    let mut config = ServerConfig::new(dir.path().to_path_buf());
    config.max_concurrent_calls = 8;
    config.api.request_log.enabled = logging;
    config.api.rate_limit = None;
    let state = server::assemble(&config, db).expect("assembled").state;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(state.clone().run_background(async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    }));
    Setup {
        client: Client {
            app: api::app(state.clone()),
            key: tenant.api_key,
        },
        state,
        stop,
        background,
        _dir: dir,
    }
}

struct Round {
    p50: f64,
    p95: f64,
    mean: f64,
    rps: f64,
}

async fn round(client: &Client, path: &str, want: StatusCode) -> Round {
    let mut lat: Vec<Duration> = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        lat.push(client.call(path, want).await);
    }
    lat.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = lat.iter().map(|d| us(*d)).sum::<f64>() / lat.len() as f64;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let client = client.clone();
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_TASK {
                client.call(&path, want).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let rps = (CONCURRENCY * PER_TASK) as f64 / started.elapsed().as_secs_f64();
    Round {
        p50: us(lat[lat.len() / 2]),
        p95: us(lat[lat.len() * 95 / 100]),
        mean,
        rps,
    }
}

fn log_entry(tenant: &str) -> LogEntry {
    LogEntry {
        tenant_id: tenant.into(),
        at: plinth_core::store::time::now(),
        key_id: Some("01JBENCHKEY".into()),
        client: Some("bench/1.0".into()),
        api_version: "2026-11-01".into(),
        method: "GET".into(),
        route: "/api/v1/records/{object}/{id}".into(),
        status: 200,
        latency_us: 100,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn bench(label: &str, url: Option<&str>) {
    let off = setup(url, false).await;
    let on = setup(url, true).await;
    println!("\n{label}: {ROUNDS} rounds, each {SEQUENTIAL} sequential requests + {CONCURRENCY}×{PER_TASK} concurrent");
    println!(
        "{:<64} {:>4} {:>9} {:>9} {:>9} {:>10}",
        "endpoint", "log", "p50 µs", "p95 µs", "mean µs", "req/s"
    );
    let mut dropped_before = 0;
    for (path, want) in PATHS {
        // Warm both (key cache, statement caches, allocator).
        for s in [&off, &on] {
            for _ in 0..WARMUP {
                s.client.call(path, want).await;
            }
        }
        let mut results: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            for (i, s) in [&off, &on].into_iter().enumerate() {
                results[i].push(round(&s.client, path, want).await);
            }
        }
        for (i, name) in ["off", "on"].into_iter().enumerate() {
            let r = &results[i];
            println!(
                "{:<64} {:>4} {:>9.1} {:>9.1} {:>9.1} {:>10.0}",
                path,
                name,
                median(r.iter().map(|x| x.p50).collect()),
                median(r.iter().map(|x| x.p95).collect()),
                median(r.iter().map(|x| x.mean).collect()),
                median(r.iter().map(|x| x.rps).collect()),
            );
        }
        let diff = |f: fn(&Round) -> f64| {
            median(
                results[1]
                    .iter()
                    .zip(&results[0])
                    .map(|(on, off)| f(on) - f(off))
                    .collect(),
            )
        };
        println!(
            "{:<64} {:>4} {:>+9.1} {:>+9.1} {:>+9.1} {:>+10.0}",
            "  on − off (median of per-round differences)",
            "Δ",
            diff(|r| r.p50),
            diff(|r| r.p95),
            diff(|r| r.mean),
            diff(|r| r.rps),
        );
        assert!(on.state.request_log.sync().await, "writer answers");
        let dropped = on.state.request_log.dropped();
        println!(
            "{:<64} entries dropped (buffer full): {} of {}",
            "",
            dropped - dropped_before,
            WARMUP + ROUNDS * (SEQUENTIAL + CONCURRENCY * PER_TASK)
        );
        dropped_before = dropped;
    }
    // What the writer can absorb: rows/s of 500-row batches with nothing else running.
    let batch: Vec<LogEntry> = (0..500).map(|_| log_entry("bench")).collect();
    let started = Instant::now();
    for _ in 0..200 {
        on.state.db.insert_request_log(&batch).await.expect("insert");
    }
    println!(
        "writer capacity: {:.0} rows/s (100,000 rows in 500-row transactions)",
        100_000.0 / started.elapsed().as_secs_f64()
    );
    for s in [off, on] {
        let _ = s.stop.send(true);
        let _ = s.background.await;
        s.state.db.close().await;
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        bench("SQLite", None).await;
        if let Ok(url) = std::env::var("PLINTH_BENCH_DATABASE_URL") {
            bench("PostgreSQL", Some(&url)).await;
        }
    });
}
