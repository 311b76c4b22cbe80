//! Execution tracking: per tenant × plugin × version × entry point, invocations,
//! errors by kind, latency percentiles, peak memory and host calls. Recording is a
//! short critical section on an in-memory table (no I/O on the call path); the
//! operator-wide view is also exported as Prometheus metrics (without the tenant
//! label, to bound cardinality). Figures are per host process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::runtime::{CallError, CallReport};

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
}

impl Entry {
    fn as_str(self) -> &'static str {
        match self {
            Entry::Endpoint => "endpoint",
            Entry::Event => "event",
            Entry::Timer => "timer",
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

/// Key of one series.
type Key = (String, String, String, Entry);

/// The in-memory table.
#[derive(Debug, Default)]
pub struct ExecMetrics {
    cells: Mutex<HashMap<Key, Cell>>,
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
        {
            let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            let cell = cells
                .entry((tenant.into(), plugin.into(), version.into(), entry))
                .or_default();
            if cell.buckets.is_empty() {
                cell.buckets = vec![0; bounds.len()];
            }
            cell.invocations += 1;
            cell.buckets[bucket] += 1;
            cell.total_micros = cell.total_micros.saturating_add(micros);
            cell.peak_memory = cell.peak_memory.max(report.peak_memory);
            cell.host_calls += u64::from(report.stats.host_calls);
            if let Some(kind) = error {
                *cell.errors.entry(kind).or_default() += 1;
            }
        }
        let labels = [
            ("plugin", plugin.to_string()),
            ("version", version.to_string()),
            ("entry", entry.as_str().to_string()),
        ];
        metrics::counter!("plinth_plugin_invocations_total", &labels).increment(1);
        if let Some(kind) = error {
            let mut l = labels.to_vec();
            l.push(("kind", kind.to_string()));
            metrics::counter!("plinth_plugin_errors_total", &l).increment(1);
        }
        metrics::histogram!("plinth_plugin_call_seconds", &labels).record(report.elapsed.as_secs_f64());
        metrics::counter!("plinth_plugin_host_calls_total", &labels).increment(u64::from(report.stats.host_calls));
    }

    /// Every series of one tenant's plugin.
    pub fn for_plugin(&self, tenant: &str, plugin: &str) -> Vec<ExecStats> {
        let cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<ExecStats> = cells
            .iter()
            .filter(|((t, p, _, _), _)| t == tenant && p == plugin)
            .map(|((_, _, version, entry), cell)| ExecStats {
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
