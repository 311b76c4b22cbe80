//! Execution tracking: per tenant × plugin × version × entry point, invocations,
//! errors by kind, latency percentiles, peak memory and host calls. Recording is a
//! short critical section on an in-memory table (no I/O on the call path); the
//! operator-wide view is also exported as Prometheus metrics (without the tenant
//! label, to bound cardinality). Figures are per host process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;

use crate::engine::{CallError, CallReport};

/// Latency bucket upper bounds in microseconds (log-spaced, ~12% apart).
fn bucket_bounds() -> &'static [u64] {
    static BOUNDS: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(|| {
        let mut v = Vec::new();
        let mut b = 10.0f64;
        while b < 120_000_000.0 {
            v.push(b as u64);
            b *= 1.12;
        }
        v
    })
}

/// Entry points a plugin is called through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// An endpoint request.
    Endpoint,
    /// An event delivery.
    Event,
    /// A timer.
    Timer,
    /// Install or upgrade.
    Install,
    /// A job step.
    JobStep,
}

impl Entry {
    fn as_str(self) -> &'static str {
        match self {
            Entry::Endpoint => "endpoint",
            Entry::Event => "event",
            Entry::Timer => "timer",
            Entry::JobStep => "job_step",
            Entry::Install => "install",
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Cell {
    invocations: u64,
    errors: BTreeMap<&'static str, u64>,
    buckets: Vec<u64>,
    peak_memory: u64,
    host_calls: u64,
    total_micros: u64,
}

/// One series: its figures and its Prometheus handles, created once, so recording
/// a call allocates nothing and contends only with calls of the same series.
struct Series {
    cell: Mutex<Cell>,
    invocations: metrics::Counter,
    host_calls: metrics::Counter,
    seconds: metrics::Histogram,
    labels: [(&'static str, String); 3],
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl Series {
    fn new(plugin: &str, version: &str, entry: Entry) -> Series {
        let labels = [
            ("plugin", plugin.to_string()),
            ("version", version.to_string()),
            ("entry", entry.as_str().to_string()),
        ];
        Series {
            cell: Mutex::new(Cell {
                buckets: vec![0; bucket_bounds().len()],
                ..Cell::default()
            }),
            invocations: metrics::counter!("plinth_plugin_invocations_total", &labels),
            host_calls: metrics::counter!("plinth_plugin_host_calls_total", &labels),
            seconds: metrics::histogram!("plinth_plugin_call_seconds", &labels),
            labels,
        }
    }
}

/// Series of one plugin of one tenant: version → entry → series.
type PluginSeries = HashMap<String, BTreeMap<Entry, Arc<Series>>>;

/// The in-memory table: tenant → plugin → version → entry (nested so that a lookup
/// borrows the caller's strings instead of building a key).
#[derive(Debug, Default)]
pub struct ExecMetrics {
    series: RwLock<HashMap<String, HashMap<String, PluginSeries>>>,
}

/// The figures of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecStats {
    /// Plugin version.
    pub version: String,
    /// Entry point.
    pub entry: Entry,
    /// Calls.
    pub invocations: u64,
    /// Failures by kind: trap, timeout, memory, denied, plugin-error, …
    pub errors: BTreeMap<String, u64>,
    /// Latency percentiles, milliseconds (bucketed, ±12%).
    pub latency_ms: Percentiles,
    /// Largest linear memory any call reached, bytes.
    pub peak_memory_bytes: u64,
    /// Host calls made by the guest in total.
    pub host_calls: u64,
}

/// p50/p95/p99.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Kind of an outcome for counting: `ok` is not an error.
pub fn error_kind(result: &Result<(), &CallError>, denied_calls: u32) -> Option<&'static str> {
    match result {
        Err(e) => Some(match e {
            CallError::Timeout { .. } => "timeout",
            CallError::MemoryExhausted { .. } => "memory",
            CallError::Trap { .. } => "trap",
            CallError::Plugin(_) => "plugin-error",
            CallError::ResponseTooLarge { .. } | CallError::InvalidResponse(_) => "invalid-response",
            CallError::Host(_) => "host",
        }),
        Ok(()) if denied_calls > 0 => Some("denied"),
        Ok(()) => None,
    }
}

impl ExecMetrics {
    /// The series of one tenant × plugin × version × entry, created on first use.
    fn series(&self, tenant: &str, plugin: &str, version: &str, entry: Entry) -> Arc<Series> {
        let found = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .and_then(|t| t.get(plugin))
            .and_then(|p| p.get(version))
            .and_then(|v| v.get(&entry))
            .cloned();
        if let Some(s) = found {
            return s;
        }
        let mut all = self.series.write().unwrap_or_else(|p| p.into_inner());
        all.entry(tenant.to_string())
            .or_default()
            .entry(plugin.to_string())
            .or_default()
            .entry(version.to_string())
            .or_default()
            .entry(entry)
            .or_insert_with(|| Arc::new(Series::new(plugin, version, entry)))
            .clone()
    }

    /// Record one call.
    pub fn record(
        &self,
        tenant: &str,
        plugin: &str,
        version: &str,
        entry: Entry,
        report: &CallReport,
        error: Option<&'static str>,
    ) {
        let micros = u64::try_from(report.elapsed.as_micros()).unwrap_or(u64::MAX);
        let bounds = bucket_bounds();
        let bucket = bounds.partition_point(|b| *b < micros).min(bounds.len() - 1);
        let series = self.series(tenant, plugin, version, entry);
        {
            let mut cell = series.cell.lock().unwrap_or_else(|p| p.into_inner());
            cell.invocations += 1;
            cell.buckets[bucket] += 1;
            cell.total_micros = cell.total_micros.saturating_add(micros);
            cell.peak_memory = cell.peak_memory.max(report.peak_memory);
            cell.host_calls += u64::from(report.stats.host_calls);
            if let Some(kind) = error {
                *cell.errors.entry(kind).or_default() += 1;
            }
        }
        series.invocations.increment(1);
        if let Some(kind) = error {
            // Rare: the handle is looked up per error.
            let mut l = series.labels.to_vec();
            l.push(("kind", kind.to_string()));
            metrics::counter!("plinth_plugin_errors_total", &l).increment(1);
        }
        series.seconds.record(report.elapsed.as_secs_f64());
        series.host_calls.increment(u64::from(report.stats.host_calls));
    }

    /// Every series of one tenant's plugin.
    pub fn for_plugin(&self, tenant: &str, plugin: &str) -> Vec<ExecStats> {
        let all = self.series.read().unwrap_or_else(|p| p.into_inner());
        let Some(versions) = all.get(tenant).and_then(|t| t.get(plugin)) else {
            return Vec::new();
        };
        let mut out: Vec<ExecStats> = versions
            .iter()
            .flat_map(|(version, entries)| entries.iter().map(move |(entry, s)| (version, entry, s)))
            .map(|(version, entry, series)| {
                let cell = series.cell.lock().unwrap_or_else(|p| p.into_inner());
                ExecStats {
                    version: version.clone(),
                    entry: *entry,
                    invocations: cell.invocations,
                    errors: cell.errors.iter().map(|(k, v)| ((*k).to_string(), *v)).collect(),
                    latency_ms: Percentiles {
                        p50: percentile(&cell.buckets, 0.50),
                        p95: percentile(&cell.buckets, 0.95),
                        p99: percentile(&cell.buckets, 0.99),
                    },
                    peak_memory_bytes: cell.peak_memory,
                    host_calls: cell.host_calls,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.version, a.entry).cmp(&(&b.version, b.entry)));
        out
    }
}

/// The upper bound (ms) of the bucket holding quantile `q`.
fn percentile(buckets: &[u64], q: f64) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Duration::from_micros(bucket_bounds()[i]).as_secs_f64() * 1000.0;
        }
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ms: u64) -> CallReport {
        CallReport {
            elapsed: Duration::from_millis(ms),
            peak_memory: ms * 1000,
            ..CallReport::default()
        }
    }

    #[test]
    fn percentiles_errors_and_isolation() {
        let m = ExecMetrics::default();
        for ms in 1..=100 {
            let error = (ms % 10 == 0).then_some("timeout");
            m.record("t1", "p", "1.0.0", Entry::Endpoint, &report(ms), error);
        }
        m.record("t2", "p", "1.0.0", Entry::Endpoint, &report(5), None);
        let stats = m.for_plugin("t1", "p");
        assert_eq!(stats.len(), 1);
        let s = &stats[0];
        assert_eq!(s.invocations, 100);
        assert_eq!(s.errors.get("timeout"), Some(&10));
        assert!((s.latency_ms.p50 - 50.0).abs() / 50.0 < 0.15, "{:?}", s.latency_ms);
        assert!((s.latency_ms.p99 - 99.0).abs() / 99.0 < 0.15, "{:?}", s.latency_ms);
        assert_eq!(s.peak_memory_bytes, 100_000);
        assert_eq!(m.for_plugin("t2", "p")[0].invocations, 1);
    }
}
