//! Files (issue 20): upload and download of one large file through the real server on
//! 127.0.0.1, streamed both ways, with the server process's resident memory before
//! and after — the content must never sit in memory.
//!
//! ```text
//! cargo bench -p plinth-host --bench files                 # 1 GiB on SQLite
//! PLINTH_BENCH_MIB=256 cargo bench -p plinth-host --bench files
//! PLINTH_BENCH_DATABASE_URL=postgres://…/empty_db cargo bench -p plinth-host --bench files
//! ```
//!
//! The client (reqwest) runs in the same process, so the RSS growth printed includes
//! its buffers too: an upper bound on the server's. Goal: ≥ 300 MB/s each way and
//! RSS growth < 64 MiB.

use std::time::Instant;

use futures_util::StreamExt;
use plinth_core::store::Db;
use plinth_core::store::audit::Actor;
use plinth_host::server::{self, ServerConfig};

/// Resident set size of this process, in bytes (Linux).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let mib: u64 = std::env::var("PLINTH_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = mib << 20;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, kind) = match std::env::var("PLINTH_BENCH_DATABASE_URL") {
            Ok(url) => (Db::connect(&url).await.expect("PostgreSQL"), "PostgreSQL"),
            Err(_) => (
                Db::open_sqlite(&dir.path().join("plinth.db")).await.expect("SQLite"),
                "SQLite",
            ),
        };
        let mut config = ServerConfig::new(dir.path().to_path_buf());
        config.listen = "127.0.0.1:0".parse().expect("address");
        config.first_party = false;
        config.api.files.max_size = size.max(1 << 30);
        config.api.rate_limit = None;
        let created =
            plinth_core::tenancy::create_tenant(&db, "Bench", "o@b.test", "Owner", "2026-11-01", &Actor::system())
                .await
                .expect("tenant");
        let running = server::start_with_db(config, db).await.expect("server");
        let base = running.url();
        let http = reqwest::Client::new();
        let key = created.api_key;

        // 1 MiB of varied bytes, sent `mib` times as a stream.
        let block: Vec<u8> = (0..1 << 20).map(|i: usize| (i * 31 % 251) as u8).collect();
        let rss_before = rss();
        let body = futures_util::stream::iter((0..mib).map(move |_| Ok::<_, std::io::Error>(block.clone())));
        let started = Instant::now();
        let response = http
            .post(format!("{base}/api/v1/files?name=bench.bin"))
            .bearer_auth(&key)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .expect("upload sent");
        assert_eq!(response.status().as_u16(), 201, "upload refused");
        let file: serde_json::Value = response.json().await.expect("file");
        let upload = started.elapsed();
        let rss_upload = rss();

        let started = Instant::now();
        let response = http
            .get(format!("{base}/api/v1/files/{}", file["id"].as_str().expect("id")))
            .bearer_auth(&key)
            .send()
            .await
            .expect("download sent");
        let mut stream = response.bytes_stream();
        let mut received = 0u64;
        while let Some(piece) = stream.next().await {
            received += piece.expect("download piece").len() as u64;
        }
        let download = started.elapsed();
        let rss_download = rss();
        assert_eq!(received, size, "the download is as long as the upload");
        running.shutdown().await.expect("shutdown");

        let rate = |d: std::time::Duration| size as f64 / 1e6 / d.as_secs_f64();
        let growth = |after: u64| after.saturating_sub(rss_before) as f64 / (1 << 20) as f64;
        println!("## Files: one {mib} MiB file through the server on loopback ({kind})\n");
        println!("| direction | time | MB/s | RSS growth |");
        println!("|---|---:|---:|---:|");
        println!(
            "| upload (streamed, 1 MiB chunks) | {:.2} s | {:.0} | {:.1} MiB |",
            upload.as_secs_f64(),
            rate(upload),
            growth(rss_upload)
        );
        println!(
            "| download (streamed) | {:.2} s | {:.0} | {:.1} MiB |",
            download.as_secs_f64(),
            rate(download),
            growth(rss_download)
        );
        println!("\ngoal: ≥ 300 MB/s each way, RSS growth < 64 MiB");
    });
}
