//! Audit ledger benchmarks on SQLite (the embedded default), printed as a table:
//! - append throughput with the hash chain: one event per transaction (sequential,
//!   and from 8 concurrent tasks), and batched (100 and 1,000 events per transaction);
//! - verification of a 1,000,000-event chain through `audit::verify::verify_chain`.
//!
//! Run: `cargo bench -p plinth-host --bench audit`
//! (`AUDIT_BENCH_EVENTS=100000` for a shorter verify run; `AUDIT_BENCH_ONLY=append` or
//! `=verify` for one part; `AUDIT_BENCH_DATABASE_URL=postgres://…/db` to run the
//! append part against PostgreSQL too.)
//!
//! Besides wall time, each row shows the process's CPU time (all threads, from
//! `/proc/self/stat`), which stays meaningful on a machine busy with other work.

use std::time::{Duration, Instant};

use plinth_core::audit::verify::verify_chain;
use plinth_core::store::Db;
use plinth_core::store::audit::{Actor, NewEvent, append};
use serde_json::json;

/// A realistic event: a record update by a user through the API.
fn actor() -> Actor {
    Actor {
        user_id: Some("01JD3Q4ZJ8Y2V6W9X0A1B2C3D4".into()),
        key_id: Some("01JD3Q4ZJ8Y2V6W9X0A1B2C3D5".into()),
        plugin: None,
        request_id: Some("01JD3Q4ZJ8Y2V6W9X0A1B2C3D6".into()),
        api_version: Some("2026-11-01".into()),
        client: Some("bench/1.0".into()),
    }
}

fn states(i: u64) -> (serde_json::Value, serde_json::Value) {
    let before = json!({"name": format!("Deal {i}"), "stage": "proposal", "amount": 1000 + i, "currency": "EUR",
                        "owner_id": "01JD3Q4ZJ8Y2V6W9X0A1B2C3D4", "close_date": "2026-12-31"});
    let mut after = before.clone();
    after["stage"] = json!("negotiation");
    after["amount"] = json!(1200 + i);
    (before, after)
}

async fn tenant(db: &Db) -> String {
    plinth_core::tenancy::create_tenant(db, "Bench", "owner@bench.test", "Owner", "2026-11-01", &Actor::system())
        .await
        .expect("tenant")
        .tenant
        .id
}

/// Append `n` events in transactions of `per_tx` events; returns the elapsed time.
async fn append_batched(db: &Db, tenant: &str, n: u64, per_tx: u64, first: u64) -> Duration {
    let a = actor();
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let mut tx = db.writer().begin().await.expect("begin");
        for _ in 0..per_tx.min(n - i) {
            let (before, after) = states(first + i);
            let id = format!("opp{}", first + i);
            append(
                &mut tx,
                db.dialect(),
                tenant,
                &a,
                NewEvent {
                    action: "record.update",
                    entity_type: "record:opportunity",
                    entity_id: Some(&id),
                    before: Some(&before),
                    after: Some(&after),
                },
            )
            .await
            .expect("append");
            i += 1;
        }
        tx.commit().await.expect("commit");
    }
    started.elapsed()
}

/// `n` single-event transactions spread over `tasks` concurrent writers.
async fn append_concurrent(db: &Db, tenant: &str, n: u64, tasks: u64) -> Duration {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (db, tenant) = (db.clone(), tenant.to_string());
            tokio::spawn(async move { append_batched(&db, &tenant, n / tasks, 1, t * 1_000_000).await })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    started.elapsed()
}

/// CPU time of this process so far (user + system, all threads), where available.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 per second on every mainstream configuration.
    Some(Duration::from_millis(ticks * 10))
}

/// Run `f`, returning wall and CPU time.
async fn timed<F: std::future::Future<Output = Duration>>(f: F) -> (Duration, Option<Duration>) {
    let cpu0 = cpu_time();
    let wall = f.await;
    let cpu = cpu_time().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    (wall, cpu)
}

fn row(what: &str, events: u64, (wall, cpu): (Duration, Option<Duration>)) {
    let rate = events as f64 / wall.as_secs_f64();
    let cpu_rate = cpu.map_or("-".to_string(), |c| {
        format!("{:.0}", events as f64 / c.as_secs_f64().max(0.01))
    });
    println!(
        "| {what:<46} | {events:>8} | {:>7.2} s | {rate:>9.0} | {:>7} | {cpu_rate:>10} |",
        wall.as_secs_f64(),
        cpu.map_or("-".to_string(), |c| format!("{:.2} s", c.as_secs_f64())),
    );
}

async fn append_table(db: &Db, label: &str) {
    let t = tenant(db).await;
    println!("\nappend throughput ({label}, hash chain, realistic update events)\n");
    println!(
        "| {:<46} | {:>8} | {:>9} | {:>9} | {:>7} | {:>10} |",
        "case", "events", "wall", "events/s", "CPU", "events/CPU-s"
    );
    println!(
        "|{:-<48}|{:-<10}|{:-<11}|{:-<11}|{:-<9}|{:-<12}|",
        "", "", "", "", "", ""
    );
    // Warm up the connection and statement caches.
    append_batched(db, &t, 500, 1, 0).await;
    row(
        "1 event per transaction, 1 writer",
        20_000,
        timed(append_batched(db, &t, 20_000, 1, 10_000)).await,
    );
    row(
        "1 event per transaction, 8 concurrent writers",
        20_000,
        timed(append_concurrent(db, &t, 20_000, 8)).await,
    );
    row(
        "100 events per transaction",
        100_000,
        timed(append_batched(db, &t, 100_000, 100, 100_000)).await,
    );
    row(
        "1,000 events per transaction",
        100_000,
        timed(append_batched(db, &t, 100_000, 1_000, 200_000)).await,
    );
}

#[tokio::main]
async fn main() {
    let events: u64 = std::env::var("AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let only = std::env::var("AUDIT_BENCH_ONLY").unwrap_or_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_sqlite(&dir.path().join("bench.db")).await.expect("db");
    if only != "verify" {
        append_table(&db, "SQLite, WAL, synchronous=NORMAL").await;
        if let Ok(url) = std::env::var("AUDIT_BENCH_DATABASE_URL") {
            let pg = Db::connect(&url).await.expect("PostgreSQL");
            append_table(&pg, "PostgreSQL").await;
            pg.close().await;
        }
    }
    if only == "append" {
        db.close().await;
        return;
    }

    println!("\nverify ({events} events, SQLite)\n");
    let t = tenant(&db).await;
    let gen_time = append_batched(&db, &t, events - 3, 10_000, 0).await;
    println!(
        "generated {events} events in {:.1} s (10,000 per transaction)",
        gen_time.as_secs_f64()
    );
    // Twice, to show the spread; the file was just written, so the OS page cache
    // holds it in both runs, as it would on a server that has been running.
    for run in ["run 1", "run 2"] {
        let (took, cpu) = timed(async {
            let started = Instant::now();
            let report = verify_chain(&db, &t).await.expect("verify");
            assert!(report.ok, "{report:?}");
            assert_eq!(report.events, Some(events as i64));
            started.elapsed()
        })
        .await;
        println!(
            "verify ({run}): {events} events in {:.2} s wall ({:.0} events/s), CPU {}",
            took.as_secs_f64(),
            events as f64 / took.as_secs_f64(),
            cpu.map_or("-".to_string(), |c| format!("{:.2} s", c.as_secs_f64()))
        );
    }
    db.close().await;
}
