//! Client tracking: the request log's buffer and writer. The request path only hands
//! an entry to a bounded channel ([`RequestLog::record`] never waits: when the channel
//! is full the entry is dropped and counted); one background task
//! ([`RequestLog::run`]) writes entries in batches — every `flush_every` or
//! `batch_rows` entries, one transaction each — purges rows older than the retention
//! period every hour, and on shutdown waits for in-flight requests before its final
//! flush.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::store::request_log::LogEntry;
use crate::store::{Db, StoreResult, time as store_time};

/// How often expired rows are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Longest wait at shutdown for in-flight requests to finish and be logged.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Request-log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogConfig {
    /// Log requests at all (off only to measure what logging costs).
    pub enabled: bool,
    /// Days rows are kept; 0 keeps them forever.
    pub retention_days: u32,
    /// Entries buffered between the request path and the writer; more are dropped.
    pub capacity: usize,
    /// Entries written per transaction, at most.
    pub batch_rows: usize,
    /// Longest time an entry waits before it is written.
    pub flush_every: Duration,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        RequestLogConfig {
            enabled: true,
            retention_days: 30,
            capacity: 10_000,
            batch_rows: 500,
            flush_every: Duration::from_millis(500),
        }
    }
}

enum Msg {
    Entry(LogEntry),
    /// Answer once everything sent before has been written.
    Sync(oneshot::Sender<()>),
}

/// The request log: a bounded buffer in front of one batching writer.
#[derive(Debug)]
pub struct RequestLog {
    config: RequestLogConfig,
    tx: mpsc::Sender<Msg>,
    rx: Mutex<Option<mpsc::Receiver<Msg>>>,
    dropped: AtomicU64,
    in_flight: AtomicUsize,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Entry(e) => f.debug_tuple("Entry").field(e).finish(),
            Msg::Sync(_) => f.write_str("Sync"),
        }
    }
}

/// Marks a request in progress (so shutdown can wait for it to be logged).
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RequestLog {
    /// A log with an empty buffer; nothing is written until [`RequestLog::run`].
    pub fn new(config: RequestLogConfig) -> RequestLog {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        RequestLog {
            config,
            tx,
            rx: Mutex::new(Some(rx)),
            dropped: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Whether requests are logged.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The settings.
    pub fn config(&self) -> &RequestLogConfig {
        &self.config
    }

    /// Note a request in progress until the guard drops.
    pub fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(&self.in_flight)
    }

    /// Hand an entry to the writer without waiting; a full buffer drops it.
    pub fn record(&self, entry: LogEntry) {
        if self.tx.try_send(Msg::Entry(entry)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("plinth_request_log_dropped_total").increment(1);
        }
    }

    /// Entries dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Wait until every entry recorded before this call is in the database. Returns
    /// false if the writer is not running or does not answer within 10 s.
    pub async fn sync(&self) -> bool {
        let (done, wait) = oneshot::channel();
        let answered = async { self.tx.send(Msg::Sync(done)).await.is_ok() && wait.await.is_ok() };
        tokio::time::timeout(Duration::from_secs(10), answered)
            .await
            .unwrap_or(false)
    }

    /// Delete rows older than the retention period; returns how many.
    pub async fn purge_expired(&self, db: &Db) -> StoreResult<u64> {
        if self.config.retention_days == 0 {
            return Ok(0);
        }
        let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(self.config.retention_days));
        db.purge_request_log(&store_time::format(cutoff)).await
    }

    /// The writer: runs until `stop` turns true (or its sender goes away), then waits
    /// for in-flight requests (at most [`SHUTDOWN_GRACE`]) and flushes. Only the first
    /// call does anything.
    pub async fn run(&self, db: &Db, mut stop: watch::Receiver<bool>) {
        let Some(mut rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            tracing::warn!("the request-log writer is already running");
            return;
        };
        let mut writer = Writer {
            db,
            batch: Vec::with_capacity(self.config.batch_rows),
            waiters: Vec::new(),
        };
        let mut inbox = Vec::with_capacity(self.config.batch_rows);
        let mut flush_tick = tokio::time::interval(self.config.flush_every);
        flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut purge_tick = tokio::time::interval(PURGE_EVERY);
        purge_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut inbox, self.config.batch_rows.max(1)) => {
                    if n == 0 {
                        break;
                    }
                    writer.take(&mut inbox);
                    if writer.batch.len() >= self.config.batch_rows || !writer.waiters.is_empty() {
                        writer.flush().await;
                    }
                }
                _ = flush_tick.tick() => writer.flush().await,
                _ = purge_tick.tick() => match self.purge_expired(db).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "purged expired request-log rows"),
                    Err(e) => tracing::warn!(error = ?e, "could not purge the request log"),
                },
                () = stopped(&mut stop) => break,
            }
        }
        // Requests already inside the server finish after the stop signal; keep
        // collecting their entries until none is left (or the grace period ends).
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        loop {
            while let Ok(msg) = rx.try_recv() {
                inbox.push(msg);
            }
            writer.take(&mut inbox);
            if self.in_flight.load(Ordering::Acquire) == 0 || Instant::now() >= deadline {
                while let Ok(msg) = rx.try_recv() {
                    inbox.push(msg);
                }
                writer.take(&mut inbox);
                break;
            }
            if writer.batch.len() >= self.config.batch_rows {
                writer.flush().await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        writer.flush().await;
        // Put the receiver back so a later `run` (a restarted writer) can continue.
        *self.rx.lock().unwrap_or_else(|p| p.into_inner()) = Some(rx);
    }
}

/// Resolve once `stop` turns true or its sender is gone. (Wrapping `wait_for` keeps
/// its non-`Send` borrow guard out of the caller's future.)
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

struct Writer<'a> {
    db: &'a Db,
    batch: Vec<LogEntry>,
    waiters: Vec<oneshot::Sender<()>>,
}

impl Writer<'_> {
    fn take(&mut self, inbox: &mut Vec<Msg>) {
        for msg in inbox.drain(..) {
            match msg {
                Msg::Entry(e) => self.batch.push(e),
                Msg::Sync(w) => self.waiters.push(w),
            }
        }
    }

    async fn flush(&mut self) {
        if !self.batch.is_empty() {
            let rows = self.batch.len() as u64;
            match self.db.insert_request_log(&self.batch).await {
                Ok(()) => metrics::counter!("plinth_request_log_written_total").increment(rows),
                Err(e) => {
                    // The log is telemetry: a failed batch is counted and let go rather
                    // than retried into an ever-growing backlog.
                    metrics::counter!("plinth_request_log_failed_total").increment(rows);
                    tracing::warn!(error = ?e, rows, "could not write request-log entries");
                }
            }
            self.batch.clear();
        }
        for w in self.waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> LogEntry {
        LogEntry {
            tenant_id: "t".into(),
            at: store_time::now(),
            key_id: None,
            client: None,
            api_version: "2026-11-01".into(),
            method: "GET".into(),
            route: "/api/v1/usage".into(),
            status: 200,
            latency_us: 1,
        }
    }

    #[test]
    fn a_full_buffer_drops_and_counts_instead_of_waiting() {
        let log = RequestLog::new(RequestLogConfig {
            capacity: 2,
            ..RequestLogConfig::default()
        });
        let started = Instant::now();
        for _ in 0..5 {
            log.record(entry());
        }
        assert_eq!(log.dropped(), 3);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn in_flight_guards_count_requests() {
        let log = RequestLog::new(RequestLogConfig::default());
        let a = log.begin();
        let b = log.begin();
        assert_eq!(log.in_flight.load(Ordering::Acquire), 2);
        drop(a);
        drop(b);
        assert_eq!(log.in_flight.load(Ordering::Acquire), 0);
    }
}
